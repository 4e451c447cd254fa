"""Collapse flags: does a checkpoint still produce answers, or only degenerate text?

Unlearning that overshoots makes a model emit "." / EOS / a looping phrase for every question; forget quality then
looks good because every truth ratio is about 1 (specs/feasibility-tofu-mini.md §3). The flag is judged on the
generations for the questions the model must keep answering (TOFU: retain authors; MUSE: KnowMem retain), never on
forget, where degenerate text is what gradient ascent produces by design, nor on real authors / world facts, which a
tiny model never knew. A generation is degenerate when it is
  - blank: no letter or digit at all ("", whitespace, ".", "...."), or
  - looping: at least LOOP_MIN_WORDS words and fewer than half of its word 3-grams are distinct
    ("the the the the the the", "is born in is born in is born in"), or at least LOOP_MIN_CHARS characters and
    fewer than half of its character 6-grams distinct, for loops with no spaces ("TheTheTheThe...").
The checkpoint is collapsed when at least COLLAPSE_FRACTION of those generations are degenerate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

COLLAPSE_FRACTION = 0.5
LOOP_MIN_WORDS = 6
LOOP_DISTINCT_TRIGRAMS = 0.5
LOOP_MIN_CHARS = 30
LOOP_CHAR_GRAM = 6
_WORD = re.compile(r"\w+")


def degeneracy(text: str) -> str | None:
    """'blank' or 'looping' when a generation is degenerate, else None."""
    words = _WORD.findall(text.lower())
    if not words:
        return "blank"
    if len(words) >= LOOP_MIN_WORDS:
        trigrams = list(zip(words, words[1:], words[2:]))
        if len(set(trigrams)) < LOOP_DISTINCT_TRIGRAMS * len(trigrams):
            return "looping"
    compact = re.sub(r"\s+", " ", text.strip())
    if len(compact) >= LOOP_MIN_CHARS:
        grams = [compact[i:i + LOOP_CHAR_GRAM] for i in range(len(compact) - LOOP_CHAR_GRAM + 1)]
        if len(set(grams)) < LOOP_DISTINCT_TRIGRAMS * len(grams):
            return "looping"
    return None


def degenerate_fraction(generations: Sequence[str]) -> float:
    """Share of generations that are blank or looping (0.0 for none)."""
    return sum(degeneracy(g) is not None for g in generations) / len(generations) if generations else 0.0


def collapse_check(generations: Mapping[str, Sequence[str]], keep_split: str) -> dict:
    """{"collapsed", "collapse_reason", "degenerate_fraction" per split} judged on the `keep_split` generations."""
    fractions = {name: round(degenerate_fraction(gens), 4) for name, gens in generations.items()}
    kinds = [degeneracy(g) for g in generations[keep_split]]
    share = sum(k is not None for k in kinds) / len(kinds) if kinds else 0.0
    collapsed = share >= COLLAPSE_FRACTION
    reason = None
    if collapsed:
        reason = (f"{share:.0%} of {keep_split} generations are degenerate ({kinds.count('blank')} blank, "
                  f"{kinds.count('looping')} looping, of {len(kinds)}); threshold {COLLAPSE_FRACTION:.0%}")
    return {"collapsed": collapsed, "collapse_reason": reason, "degenerate_fraction": fractions}
