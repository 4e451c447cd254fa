"""open-unlearning's output files from an llmkit TOFU result, for analysis scripts written against them.

`llmkit eval ... --format open-unlearning` writes, beside llmkit's own files, `TOFU_EVAL.json` (every metric with
its `agg_value` and, per item, `value_by_index` keyed by the item's index in its split, as open-unlearning's
evaluator caches them, pre-computed sub-metrics included) and `TOFU_SUMMARY.json` (metric name -> number). A metric
llmkit could not compute (forget quality or privleak without --reference) is null in TOFU_EVAL.json and left out
of TOFU_SUMMARY.json, as open-unlearning does. The per-item ROUGE entries carry the generation and the ground
truth, not open-unlearning's decoded `input` prompt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rouge_score import rouge_scorer

from llmkit.evals.mia import ATTACKS
from llmkit.io import write_json

# open-unlearning's default TOFU metrics (configs/eval/tofu.yaml), then the optional ones llmkit also computes
SUMMARY_KEYS = ("forget_truth_ratio", "forget_quality", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "model_utility",
                "privleak", "extraction_strength", "exact_memorization", *ATTACKS, "mia_reference")


def _by_index(values) -> dict:
    return {str(i): v for i, v in enumerate(values)}


def _prob(nll) -> dict:
    """open-unlearning's `evaluate_probability` entry: P~ = exp(-mean NLL) and the mean NLL (lists for many answers)."""
    nll = np.asarray(nll, dtype=float)
    return {"prob": np.exp(-nll).tolist(), "avg_loss": nll.tolist()}


def _prob_metric(nlls) -> dict:
    entries = [_prob(n) for n in nlls]
    return {"agg_value": float(np.mean([np.mean(e["prob"]) for e in entries])), "value_by_index": _by_index(entries)}


def _scores(agg, values) -> dict:
    return {"agg_value": agg, "value_by_index": _by_index({"score": float(v)} for v in values)}


def _rouge(agg, rows) -> dict:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)

    def entry(it):
        score = scorer.score(it["answer"], it["generation"])
        return {"rouge1_recall": score["rouge1"].recall, "rougeL_f1": score["rougeL"].fmeasure,
                "rougeL_recall": it["rougeL_recall"], "ground_truth": it["answer"], "generation": it["generation"]}
    return {"agg_value": agg, "value_by_index": _by_index(entry(it) for it in rows)}


def tofu_eval_logs(result: dict) -> dict:
    """TOFU_EVAL.json's content from llmkit's `<suite>.json` result (its metrics and per-item values)."""
    metrics, items = result["metrics"], result["items"]
    logs = {}
    for split in ("forget", "retain", "ra", "wf"):
        rows = items[split]
        logs[f"{split}_Q_A_ROUGE"] = _rouge(metrics[f"{split}_Q_A_ROUGE"], rows)
        logs[f"{split}_Q_A_PERT_Prob"] = _prob_metric(it["nll_perturbed"] for it in rows)
        if split in ("forget", "retain"):  # the truth ratio's true side is the paraphrased answer
            logs[f"{split}_Q_A_Prob"] = {**_prob_metric(it["nll_answer"] for it in rows),
                                         "agg_value": metrics[f"{split}_Q_A_Prob"]}
            logs[f"{split}_Q_A_PARA_Prob"] = _prob_metric(it["nll_base"] for it in rows)
        else:  # real authors / world facts: the answer itself, and the probability normalised over the options
            logs[f"{split}_Q_A_Prob"] = _prob_metric(it["nll_answer"] for it in rows)
            logs[f"{split}_Q_A_Prob_normalised"] = {
                "agg_value": metrics[f"{split}_Q_A_Prob_normalised"],
                "value_by_index": _by_index({"prob": it["prob_normalised"]} for it in rows)}
        if split == "forget":  # geometric ratios, the ones forget quality compares, in either reporting mode
            logs["forget_truth_ratio"] = _scores(metrics["forget_truth_ratio"],
                                                 [it["truth_ratio_geometric"] for it in rows])
        else:
            logs[f"{split}_Truth_Ratio"] = _scores(metrics[f"{split}_Truth_Ratio"], [it["truth_ratio"] for it in rows])
    for name in ("extraction_strength", "exact_memorization"):
        if name in metrics:  # a cached result of an llmkit older than these metrics has none
            logs[name] = _scores(metrics[name], [it[name] for it in items["forget"]])
    for name in (*ATTACKS, "mia_reference"):
        if name not in metrics:
            continue
        parts = {part: _scores(float(np.mean([it[name] for it in items[part]])), [it[name] for it in items[part]])
                 for part in ("forget", "holdout")}
        logs[name] = {**parts, "auc": metrics[name], "agg_value": metrics[name]}
    for name in ("model_utility", "forget_quality", "privleak"):
        logs[name] = {"agg_value": metrics.get(name)}
    return dict(sorted(logs.items()))


def write_open_unlearning(out_dir: str | Path, result: dict) -> list[Path]:
    """Write TOFU_EVAL.json and TOFU_SUMMARY.json into out_dir; returns their paths."""
    logs = tofu_eval_logs(result)
    summary = {k: logs[k]["agg_value"] for k in sorted(SUMMARY_KEYS) if k in logs and logs[k]["agg_value"] is not None}
    paths = [Path(out_dir) / "TOFU_EVAL.json", Path(out_dir) / "TOFU_SUMMARY.json"]
    write_json(paths[0], logs)
    write_json(paths[1], summary)
    return paths
