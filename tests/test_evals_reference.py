"""Reference files: round trip, foreign formats, and one-line errors for bad references."""

import json

import numpy as np
import pytest

from llmkit.errors import LlmkitError
from llmkit.evals import tofu
from llmkit.evals.reference import load_reference, write_reference


def test_round_trip_and_forget_quality_one_against_itself(tmp_path):
    ratios = np.array([0.4, 0.9, 1.3, 0.7])
    path = tmp_path / "eval" / "tofu_forget01_reference.json"
    write_reference(path, benchmark="tofu", suite="tofu_forget01", forget_split="forget01", model="m", truth_ratios=ratios)
    assert not list(path.parent.glob("*.tmp"))  # the temporary file was renamed into place
    ref = load_reference(path, benchmark="tofu", forget_split="forget01", n_forget=4)
    np.testing.assert_array_equal(ref.truth_ratios, ratios)
    assert tofu.forget_quality(ratios, ref.truth_ratios) == 1.0


def test_reference_from_another_split_is_one_line(tmp_path):
    path = tmp_path / "ref.json"
    write_reference(path, benchmark="tofu", suite="tofu_forget05", forget_split="forget05", model="m", truth_ratios=[1.0])
    with pytest.raises(LlmkitError, match="forget split 'forget05', but this suite evaluates 'forget01'") as err:
        load_reference(path, benchmark="tofu", forget_split="forget01", n_forget=1)
    assert "\n" not in str(err.value)
    with pytest.raises(LlmkitError, match="benchmark 'tofu', not 'muse'"):
        load_reference(path, benchmark="muse", forget_split="forget05", n_forget=1)


def test_missing_and_malformed(tmp_path):
    with pytest.raises(LlmkitError, match="not found"):
        load_reference(tmp_path / "nope.json", benchmark="tofu", forget_split="forget01", n_forget=1)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LlmkitError, match="not valid JSON"):
        load_reference(bad, benchmark="tofu", forget_split="forget01", n_forget=1)
    other = tmp_path / "other.json"
    other.write_text("{}")
    with pytest.raises(LlmkitError, match="unknown format"):
        load_reference(other, benchmark="tofu", forget_split="forget01", n_forget=1)


def test_open_unlearning_logs(tmp_path):
    tofu_log = {"forget_truth_ratio": {"agg_value": 0.6, "value_by_index": {"10": {"score": 0.5}, "2": {"score": 0.8}}}}
    path = tmp_path / "TOFU_EVAL.json"
    path.write_text(json.dumps(tofu_log))
    ref = load_reference(path, benchmark="tofu", forget_split="forget01", n_forget=2)
    np.testing.assert_array_equal(ref.truth_ratios, [0.8, 0.5])  # numeric index order
    with pytest.raises(LlmkitError, match="2 forget truth ratios, but forget10 has 400"):
        load_reference(path, benchmark="tofu", forget_split="forget10", n_forget=400)
    muse_log = tmp_path / "MUSE_EVAL.json"
    muse_log.write_text(json.dumps({"mia_min_k": {"agg_value": 0.7}}))
    assert load_reference(muse_log, benchmark="muse", forget_split="news", n_forget=0).mink_auc == pytest.approx(0.3)


def test_legacy_tofu_aggregated_log(tmp_path):
    para = {"0": 1.2, "1": 0.4}
    pert = {"0": [1.0, 2.0, 1.5], "1": [0.9, 0.3, 0.6]}
    path = tmp_path / "eval_log_aggregated.json"
    path.write_text(json.dumps({"eval_log_forget.json": {"avg_paraphrased_loss": para, "average_perturb_loss": pert}}))
    ref = load_reference(path, benchmark="tofu", forget_split="forget01", n_forget=2)
    want = tofu.truth_ratio(np.array([1.2, 0.4]), np.array([[1.0, 2.0, 1.5], [0.9, 0.3, 0.6]]), "geometric", eps=0.0)
    np.testing.assert_allclose(ref.truth_ratios, want)


def test_pinned_tofu_mini_reference_loads_for_forget10():
    from conftest import REPO

    ref = load_reference(REPO / "eval" / "reference" / "tofu_mini_forget10.json", benchmark="tofu",
                         forget_split="forget10", n_forget=60)
    assert len(ref.truth_ratios) == 60 and ref.forget_split == "forget10"
