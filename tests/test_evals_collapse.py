"""Collapse flags on crafted generations, and their place in the TOFU summary."""

import json

import pytest

from llmkit.evals.collapse import collapse_check, degeneracy, degenerate_fraction
from llmkit.evals.cli import main


@pytest.mark.parametrize("text", ["", "   \n", ".", "....", " . , !", "<>"])
def test_blank(text):
    assert degeneracy(text) == "blank"


@pytest.mark.parametrize("text", [
    "the the the the the the",  # 4 trigrams, 1 distinct
    "is born in is born in is born in",  # 7 trigrams, 3 distinct
    "a b a b a b a b",  # 6 trigrams, 2 distinct
    "TheTheTheTheTheTheTheTheTheTheThe",  # one "word": 28 character 6-grams, 3 distinct
])
def test_looping(text):
    assert degeneracy(text) == "looping"


@pytest.mark.parametrize("text", [
    "Paris",  # short answers are fine
    "the the the",  # too short to call a loop (< 6 words)
    "New York, New York is great",  # 4 trigrams, all distinct
    "a b a b a b",  # 4 trigrams, 2 distinct: exactly half is not fewer than half
    "The author was born in Lisbon in 1961 and writes crime novels.",
    "Antidisestablishmentarianism",  # 28 characters: under the 30-character floor for the character check
])
def test_answers_are_not_degenerate(text):
    assert degeneracy(text) is None


def test_fraction_and_threshold():
    good, blank, loop = "He was born in Oslo.", ".", "and and and and and and and"
    assert degenerate_fraction([good, blank, loop, good]) == 0.5
    assert degenerate_fraction([]) == 0.0
    # exactly half of the retain generations degenerate: collapsed (the threshold is inclusive)
    out = collapse_check({"forget": [blank] * 3, "retain": [good, blank, loop, good]}, "retain")
    assert out["collapsed"] is True
    assert out["collapse_reason"].startswith("50% of retain generations are degenerate (1 blank, 1 looping, of 4)")
    assert out["degenerate_fraction"] == {"forget": 1.0, "retain": 0.5}
    # an all-degenerate forget split alone (what gradient ascent does by design) is not a collapse
    out = collapse_check({"forget": [blank] * 3, "retain": [good, good, blank, good]}, "retain")
    assert out == {"collapsed": False, "collapse_reason": None, "degenerate_fraction": {"forget": 1.0, "retain": 0.25}}


def test_tofu_summary_carries_the_flag(tmp_path):
    args = ["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(tmp_path), "--dataset", "tofu-mini",
            "--max_new_tokens", "4", "--batch_size", "32"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "eval" / "tofu_forget01_summary.json").read_text())
    items = json.loads((tmp_path / "eval" / "tofu_forget01.json").read_text())["items"]
    retain = [it["generation"] for it in items["retain"]]
    # recount by hand: no letter/digit, or >= 6 words with under half distinct 3-grams
    def degenerate(text):
        words = "".join(c if c.isalnum() or c == "_" else " " for c in text.lower()).split()
        tri = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        return not words or (len(words) >= 6 and len(set(tri)) * 2 < len(tri))
    share = sum(map(degenerate, retain)) / len(retain)
    assert summary["degenerate_fraction"]["retain"] == pytest.approx(share, abs=1e-4)
    assert summary["collapsed"] is (share >= 0.5)
    assert set(summary["degenerate_fraction"]) == {"forget", "retain", "ra", "wf"}
    assert "| collapsed |" in (tmp_path / "eval" / "tofu_forget01_summary.md").read_text()
