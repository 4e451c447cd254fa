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


def _bad_tofu_references(tmp_path, values):
    """The same per-item truth ratios in each format llmkit reads."""
    llmkit_ref = tmp_path / "llmkit.json"
    llmkit_ref.write_text(json.dumps({"llmkit_reference": 1, "benchmark": "tofu", "suite": "tofu_forget01",
                                      "forget_split": "forget01", "model": "m", "forget_truth_ratios": values}))
    ou = tmp_path / "TOFU_EVAL.json"
    ou.write_text(json.dumps({"forget_truth_ratio": {"value_by_index": {str(i): {"score": v} for i, v in enumerate(values)}}}))
    legacy = tmp_path / "eval_log_aggregated.json"
    legacy.write_text(json.dumps({"eval_log_forget.json": {
        "avg_paraphrased_loss": {str(i): v for i, v in enumerate(values)},
        "average_perturb_loss": {str(i): [1.0, 2.0] for i in range(len(values))}}}))
    return [llmkit_ref, ou, legacy]


@pytest.mark.parametrize("fmt", [0, 1, 2], ids=["llmkit", "open-unlearning", "legacy-tofu"])
def test_reference_item_count_is_checked_for_every_format(tmp_path, fmt):
    path = _bad_tofu_references(tmp_path, [0.5] * 10)[fmt]
    with pytest.raises(LlmkitError, match="has 10 forget truth ratios, but forget01 has 60 items") as err:
        load_reference(path, benchmark="tofu", forget_split="forget01", n_forget=60)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fmt", [0, 1, 2], ids=["llmkit", "open-unlearning", "legacy-tofu"])
@pytest.mark.parametrize("values, message", [
    ([float("nan")] * 4, "4 of its 4 forget truth ratios are not finite"),
    ([0.5, float("inf"), 0.5, None], "2 of its 4 forget truth ratios are not finite"),
    ([0.5, "abc", 0.5, 0.5], "'abc' is not a number"),
])
def test_reference_values_must_be_finite_numbers(tmp_path, fmt, values, message):
    path = _bad_tofu_references(tmp_path, values)[fmt]
    with pytest.raises(LlmkitError, match=message) as err:
        load_reference(path, benchmark="tofu", forget_split="forget01", n_forget=4)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("auc, message", [(float("nan"), "Min-k AUC nan is not a number in"),
                                          ("high", "Min-k AUC 'high' is not a number in"),
                                          (1.5, "Min-k AUC 1.5 is not a number in")])
def test_muse_reference_auc_must_be_a_number_in_unit_interval(tmp_path, auc, message):
    ou = tmp_path / "MUSE_EVAL.json"
    ou.write_text(json.dumps({"mia_min_k": {"agg_value": auc}}))
    with pytest.raises(LlmkitError, match=message) as err:
        load_reference(ou, benchmark="muse", forget_split="news", n_forget=0)
    assert "\n" not in str(err.value)


def test_muse_reference_without_its_min_k_variant_is_refused(tmp_path):
    path = tmp_path / "muse_news_reference.json"  # as llmkit wrote it before references recorded ou_compat and k
    path.write_text(json.dumps({"llmkit_reference": 1, "benchmark": "muse", "suite": "muse_news", "forget_split": "news",
                                "model": "m", "mink_auc": 0.5}))
    with pytest.raises(LlmkitError, match="does not record the Min-k variant"):
        load_reference(path, benchmark="muse", forget_split="news", n_forget=0, min_k_variant={"ou_compat": False, "k": 0.4})
    write_reference(path, benchmark="muse", suite="muse_news", forget_split="news", model="m", mink_auc=0.5,
                    min_k_variant={"ou_compat": True, "k": 0.3})
    ref = load_reference(path, benchmark="muse", forget_split="news", n_forget=0, min_k_variant={"ou_compat": True, "k": 0.3})
    assert ref.mink_auc == 0.5 and ref.min_k_variant == {"ou_compat": True, "k": 0.3}
