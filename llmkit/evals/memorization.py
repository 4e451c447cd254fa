"""Memorization metrics on teacher-forced predictions, as pure functions of token ids.

Definitions follow open-unlearning (`src/evals/metrics/memorization.py`, Carlini et al. 2021 via Wang et al. 2024):
the model reads the true text and predicts each labelled token greedily from the tokens before it.
"""

from __future__ import annotations

from collections.abc import Sequence


def extraction_strength(target_ids: Sequence[int], generated_ids: Sequence[int]) -> float:
    """ES = 1 - k/n, k the first index from which the predicted ids equal the target ids to the end, n = len(target).

    `generated_ids[t]` is the model's argmax prediction of `target_ids[t]` given the true tokens before it.
    As in open-unlearning's loop, k never passes n - 1: when not even the last token matches, ES is 1/n, not 0.
    An empty target scores 0.
    """
    target, generated = list(target_ids), list(generated_ids)
    n = len(target)
    if len(generated) != n:
        raise ValueError(f"extraction_strength: {n} target ids but {len(generated)} predicted")
    if n == 0:
        return 0.0
    # the matching suffix starts right after the last mismatch
    last_miss = max((t for t in range(n) if generated[t] != target[t]), default=-1)
    k = min(last_miss + 1, n - 1)
    return 1.0 - k / n
