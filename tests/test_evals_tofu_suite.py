"""The TOFU suite end to end on the tiny model and tofu-mini: outputs, caching, references and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import hmean

from llmkit.errors import LlmkitError
from llmkit.evals.cli import main

FAST = ["--dataset", "tofu-mini", "--max_new_tokens", "4", "--batch_size", "32"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tofu")
    assert main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(out), *FAST]) == 0
    return out / "eval"


def test_outputs_and_numbers_recomputed_from_items(first_run, capsys):
    result = json.loads((first_run / "tofu_forget01.json").read_text())
    summary = json.loads((first_run / "tofu_forget01_summary.json").read_text())
    assert summary["forget_quality"] is None and "--reference" in summary["absent"]["forget_quality"]
    assert result["sizes"] == {"forget": 6, "retain": 60, "ra": 16, "wf": 16, "holdout": 6}
    forget = result["items"]["forget"]
    assert {"question", "answer", "generation", "nll_perturbed", "truth_ratio"} <= set(forget[0])
    assert summary["forget_Q_A_Prob"] == pytest.approx(np.mean([np.exp(-it["nll_answer"]) for it in forget]))
    ratios = [np.exp(-np.mean(it["nll_perturbed"])) / np.exp(-it["nll_base"]) for it in forget]
    assert summary["forget_truth_ratio"] == pytest.approx(np.mean([min(r, 1 / r) for r in ratios]), rel=1e-6)
    ra = result["items"]["ra"]
    norm = [np.exp(-it["nll_answer"]) / (np.exp(-it["nll_answer"]) + np.exp(-np.array(it["nll_perturbed"])).sum()) for it in ra]
    assert summary["ra_Q_A_Prob_normalised"] == pytest.approx(np.mean(norm), rel=1e-6)
    nine = [summary[k] for k in ("retain_Q_A_Prob", "retain_Q_A_ROUGE", "retain_Truth_Ratio", "ra_Q_A_Prob_normalised",
                                 "ra_Q_A_ROUGE", "ra_Truth_Ratio", "wf_Q_A_Prob_normalised", "wf_Q_A_ROUGE", "wf_Truth_Ratio")]
    assert summary["model_utility"] == pytest.approx(hmean(nine))
    assert "forget_quality | n/a" in (first_run / "tofu_forget01_summary.md").read_text()


def pairwise_auc(forget, holdout):
    wins = [1.0 if h > f else 0.5 if h == f else 0.0 for f in forget for h in holdout]
    return sum(wins) / len(wins)


def test_open_unlearning_metrics_under_its_names(first_run):
    """privleak absent without --reference; ES, EM and the MIA AUCs recomputed from the per-item values."""
    result = json.loads((first_run / "tofu_forget01.json").read_text())
    summary = json.loads((first_run / "tofu_forget01_summary.json").read_text())
    assert summary["privleak"] is None and "--reference" in summary["absent"]["privleak"]
    assert "privleak | n/a" in (first_run / "tofu_forget01_summary.md").read_text()
    forget, holdout = result["items"]["forget"], result["items"]["holdout"]
    assert len(holdout) == 6 and {"question", "answer", "mia_min_k"} <= set(holdout[0])
    for name in ("extraction_strength", "exact_memorization"):
        assert 0 <= summary[name] <= 1
        assert summary[name] == pytest.approx(np.mean([it[name] for it in forget]))
    for name in ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus"):
        assert summary[name] == pytest.approx(pairwise_auc([it[name] for it in forget], [it[name] for it in holdout]))
    # LOSS is the mean answer NLL that the probability metrics use
    assert [it["mia_loss"] for it in forget] == pytest.approx([it["nll_answer"] for it in forget])


def test_vocab_statistics_only_for_min_k_plus_plus_and_metrics_unchanged(first_run, tmp_path, monkeypatch):
    """Min-K%++ alone needs the vocabulary mean/variance, on the forget answers and the holdout answers: the suite
    asks for them there and nowhere else, and every reported number and per-item value is what scoring every text
    with them (the behaviour before the switch) gives."""
    import llmkit.evals.tofu as tofu

    score, asked = tofu.answer_token_stats, []

    def everything(model, tokenizer, pairs, vocab_stats=False, **kwargs):
        asked.extend([vocab_stats] * len(pairs) if isinstance(vocab_stats, bool) else vocab_stats)
        return score(model, tokenizer, pairs, vocab_stats=True, **kwargs)

    monkeypatch.setattr(tofu, "answer_token_stats", everything)
    assert main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(tmp_path), *FAST]) == 0
    assert sum(asked) == 6 + 6 and len(asked) > 6 * 7 + 60 * 7  # forget answers + holdout answers of all the scored
    lean = json.loads((first_run / "tofu_forget01.json").read_text())
    full = json.loads((tmp_path / "eval" / "tofu_forget01.json").read_text())
    assert full["metrics"] == lean["metrics"] and full["items"] == lean["items"]


def test_cached_unless_forced(first_run, capsys):
    mtime = (first_run / "tofu_forget01.json").stat().st_mtime_ns
    assert main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(first_run.parent), *FAST]) == 0
    assert "cached result" in capsys.readouterr().out
    assert (first_run / "tofu_forget01.json").stat().st_mtime_ns == mtime


def test_model_against_its_own_reference_has_forget_quality_one(first_run, tmp_path):
    ref = first_run / "tofu_forget01_reference.json"
    assert json.loads(ref.read_text())["forget_split"] == "forget01"
    # legacy reports arithmetic truth ratios but forget quality stays geometric, so it still matches the reference
    # (legacy generates up to 200 total tokens; no tofu-mini forget item is long enough to be cut at 200 for scoring)
    assert main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(tmp_path), "--reference", str(ref),
                 "--legacy", "true", *FAST]) == 0
    summary = json.loads((tmp_path / "eval" / "tofu_forget01_summary.json").read_text())
    assert summary["forget_quality"] == 1.0 and summary["absent"] == {}
    first = json.loads((first_run / "tofu_forget01_summary.json").read_text())
    assert summary["forget_Q_A_Prob"] == pytest.approx(first["forget_Q_A_Prob"], rel=1e-6)
    assert summary["forget_truth_ratio"] != pytest.approx(first["forget_truth_ratio"], rel=1e-9)  # arithmetic vs geometric


def test_privleak_against_its_own_reference_is_zero(first_run, tmp_path):
    ref = first_run / "tofu_forget01_reference.json"
    assert main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(tmp_path), "--reference", str(ref),
                 *FAST]) == 0
    summary = json.loads((tmp_path / "eval" / "tofu_forget01_summary.json").read_text())
    assert summary["privleak"] == 0.0 and summary["forget_quality"] == 1.0
    assert summary["mia_reference"] == 0.5  # the same model's losses: every reference score is 0
    assert summary["absent"] == {} and "notes" not in summary


def test_open_unlearning_summary_as_reference_fails_before_loading(tmp_path, monkeypatch):
    import llmkit.evals.cli as cli

    summary = tmp_path / "TOFU_SUMMARY.json"
    summary.write_text(json.dumps({"forget_quality": 0.0005, "model_utility": 0.4, "privleak": -20.0}))
    monkeypatch.setattr(cli, "load_model", lambda *a: pytest.fail("the model was loaded"))
    monkeypatch.setattr("llmkit.model_files.check_model_path", lambda *a: pytest.fail("the model path was resolved"))
    with pytest.raises(LlmkitError, match="pass TOFU_EVAL.json") as err:
        main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--reference", str(summary), "--out", str(tmp_path)])
    assert "\n" not in str(err.value)


def test_ou_compat_generations_are_cleaned_up_and_stripped(first_run, tmp_path):
    from transformers import AutoTokenizer

    from llmkit.tiny import resolve_model_path

    assert main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(tmp_path), "--ou_compat", "true",
                 *FAST]) == 0
    tok = AutoTokenizer.from_pretrained(resolve_model_path("tiny:llama-xs"))
    plain = json.loads((first_run / "tofu_forget01.json").read_text())["items"]
    ou = json.loads((tmp_path / "eval" / "tofu_forget01.json").read_text())["items"]
    pairs = [(a["generation"], b["generation"]) for split in ("forget", "retain", "ra", "wf")
             for a, b in zip(plain[split], ou[split], strict=True)]
    assert all(o == tok.clean_up_tokenization(p).strip() for p, o in pairs)
    assert any(o != p for p, o in pairs)  # the default keeps today's text


def test_open_unlearning_format_round_trip(first_run, tmp_path):
    """TOFU_EVAL.json / TOFU_SUMMARY.json written on request; the EVAL file works as a reference again."""
    assert main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(first_run.parent),
                 "--format", "open-unlearning", *FAST]) == 0  # from the cached result
    summary = json.loads((first_run / "tofu_forget01_summary.json").read_text())
    ou_summary = json.loads((first_run / "TOFU_SUMMARY.json").read_text())
    assert "forget_quality" not in ou_summary and "privleak" not in ou_summary  # null: left out, as open-unlearning does
    for key in ("forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "model_utility", "extraction_strength"):
        assert ou_summary[key] == summary[key]
    logs = json.loads((first_run / "TOFU_EVAL.json").read_text())
    forget = json.loads((first_run / "tofu_forget01.json").read_text())["items"]["forget"]
    assert logs["forget_quality"] == {"agg_value": None}
    assert [logs["forget_truth_ratio"]["value_by_index"][str(i)]["score"] for i in range(6)] == \
        [it["truth_ratio_geometric"] for it in forget]
    para = logs["forget_Q_A_PARA_Prob"]["value_by_index"]["0"]
    assert para["prob"] == pytest.approx(np.exp(-forget[0]["nll_base"]))
    assert logs["forget_Q_A_PERT_Prob"]["value_by_index"]["0"]["avg_loss"] == forget[0]["nll_perturbed"]
    assert logs["mia_min_k"]["agg_value"] == logs["mia_min_k"]["auc"] == summary["mia_min_k"]
    assert set(logs["mia_min_k"]) == {"forget", "holdout", "auc", "agg_value"}
    assert logs["ra_Q_A_Prob_normalised"]["agg_value"] == summary["ra_Q_A_Prob_normalised"]
    assert main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(tmp_path),
                 "--reference", str(first_run / "TOFU_EVAL.json"), *FAST]) == 0
    again = json.loads((tmp_path / "eval" / "tofu_forget01_summary.json").read_text())
    assert again["forget_quality"] == 1.0 and again["privleak"] == pytest.approx(0.0, abs=1e-9)
    assert again["mia_reference"] == 0.5  # mia_loss's per-item scores are the reference model's losses


def test_bad_input_is_one_line(first_run, tmp_path):
    ref = str(first_run / "tofu_forget01_reference.json")
    cases = [
        (["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--forget_split", "forget03"], "forget03_perturbed"),
        (["eval/tofu_forget01.yaml", "--model", str(tmp_path / "no_such_model")], "does not exist"),
        (["eval/tofu_forget05.yaml", "--model", "tiny:llama-xs", "--reference", ref], "forget split 'forget01', but this suite evaluates 'forget05'"),
        (["tofu_forgt01", "--model", "tiny:llama-xs"], "did you mean 'tofu_forget01'"),
        (["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--forget_splt", "forget01"], "did you mean 'forget_split'"),
        (["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--reference", str(tmp_path / "none.json")], "--reference .*none.json not found"),
        (["eval/muse_news.yaml", "--model", "tiny:llama-xs", "--format", "open-unlearning"], "only TOFU suites"),
    ]
    for argv, message in cases:
        with pytest.raises(LlmkitError, match=message) as err:
            main([*argv, "--out", str(tmp_path), *FAST])
        assert "\n" not in str(err.value)


def test_suite_names_resolve_from_any_directory(monkeypatch, tmp_path):
    from llmkit.evals.cli import SUITE_DIRS, resolve_suite

    monkeypatch.chdir(tmp_path)  # no ./eval here: the checkout's suites answer
    assert resolve_suite("tofu_forget10") == SUITE_DIRS[1] / "tofu_forget10.yaml"
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "tofu_forget10.yaml").write_text("benchmark: tofu\n")
    assert resolve_suite("tofu_forget10") == Path("eval") / "tofu_forget10.yaml"  # a user's own suite wins


def test_local_copy_of_bundled_tofu_loads_like_it(tmp_path):
    import shutil

    from llmkit import data

    copy = tmp_path / "tofu"
    shutil.copytree(data.BUNDLED["tofu-mini"], copy)
    for config in ("forget01_perturbed", "retain_perturbed", "forget10", "full"):
        assert data.load_split(str(copy), config).to_list() == data.load_split("tofu-mini", config).to_list()
    with pytest.raises(LlmkitError, match="'forget03_perturbed' .* is not in the dataset folder"):
        data.load_split(str(copy / ".."), "forget03_perturbed")  # a folder holding the copy: no such file
    (copy / "forget05.jsonl").write_text("")
    with pytest.raises(LlmkitError, match=r"the split is empty \(.*forget05.jsonl\)"):  # not the other files instead
        data.load_split(str(copy), "forget05")


def test_batch_size_zero_is_one_line(tmp_path):
    with pytest.raises(LlmkitError, match="batch_size must be a positive integer") as err:
        main(["eval/tofu_forget01.yaml", "--model", "tiny:llama-xs", "--out", str(tmp_path), *FAST, "--batch_size", "0"])
    assert "\n" not in str(err.value)
