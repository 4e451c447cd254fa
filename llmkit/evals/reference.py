"""Retain/retrain-model reference files: what forget quality (TOFU) and PrivLeak (MUSE) compare against.

Evaluating a retain model writes `<out>/eval/<suite>_reference.json`; a later run takes it with `--reference`.
Also read, so users can bring the logs they already have: open-unlearning's `TOFU_EVAL.json` / `MUSE_EVAL.json`
(`forget_truth_ratio.value_by_index`, `mia_min_k.agg_value`, always open-unlearning's Min-k variant: ou_compat with
k = 0.4) and legacy TOFU's `eval_log_aggregated.json`
(`eval_log_forget.json` -> `avg_paraphrased_loss`, `average_perturb_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmkit.errors import LlmkitError
from llmkit.evals.muse import OU_MIN_K
from llmkit.io import read_json_object, write_json

FORMAT_VERSION = 1
# metrics that open-unlearning's TOFU / MUSE evaluators put in <NAME>_SUMMARY.json by default
OU_SUMMARY_KEYS = {"forget_quality", "model_utility", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE",
                   "privleak", "extraction_strength", "forget_knowmem_ROUGE", "retain_knowmem_ROUGE",
                   "forget_verbmem_ROUGE"}


@dataclass
class Reference:
    """What a later run needs from the retain/retrain model's evaluation."""

    path: str
    forget_split: str | None  # None for foreign logs, which do not record it
    truth_ratios: np.ndarray | None = None  # per forget item, geometric R (TOFU)
    mink_auc: float | None = None  # forget vs holdout, MUSE convention (MUSE; TOFU's privleak)
    item_nll: dict | None = None  # {"forget": [...], "holdout": [...]} mean answer NLL per item (TOFU's mia_reference)
    min_k_variant: dict | None = None  # {"ou_compat", "k"} the Min-k AUC was computed with (MUSE)


def write_reference(path: str | Path, *, benchmark: str, suite: str, forget_split: str, model: str,
                    truth_ratios=None, mink_auc: float | None = None, item_nll: dict | None = None,
                    min_k_variant: dict | None = None) -> None:
    """Write the reference file of a retain (TOFU) or retrain (MUSE) model's evaluation."""
    obj = {"llmkit_reference": FORMAT_VERSION, "benchmark": benchmark, "suite": suite, "forget_split": forget_split,
           "model": model}
    if truth_ratios is not None:
        obj["forget_truth_ratios"] = [float(r) for r in truth_ratios]
    if mink_auc is not None:
        obj["mink_auc"] = float(mink_auc)
        obj.update(min_k_variant or {})
    if item_nll is not None:
        obj["item_nll"] = {part: [float(v) for v in values] for part, values in item_nll.items()}
    write_json(path, obj)


def check_reference_file(path: str | Path) -> dict:
    """Read a reference before anything is loaded: a missing, malformed or summary-only file fails in one line."""
    obj = read_json_object(path, "--reference")
    # open-unlearning's <NAME>_SUMMARY.json maps metric names to bare numbers; the per-item logs are in <NAME>_EVAL.json
    numbers_only = all(v is None or isinstance(v, (int, float)) for v in obj.values())
    if numbers_only and OU_SUMMARY_KEYS & set(obj):
        name = Path(path).name
        other = name.replace("SUMMARY", "EVAL") if "SUMMARY" in name else "the TOFU_EVAL.json (or MUSE_EVAL.json) beside it"
        raise LlmkitError(f"--reference {path}: this is an open-unlearning summary (aggregate numbers only); pass "
                          f"{other}, which holds the per-item logs that forget quality and privleak need")
    return obj


def load_reference(path: str | Path, *, benchmark: str, forget_split: str, n_forget: int,
                   min_k_variant: dict | None = None) -> Reference:
    """Read a reference for this suite's forget split (and MUSE's Min-k variant); any mismatch is one line naming the file."""
    path = Path(path)
    obj = read_json_object(path, "reference")
    if "llmkit_reference" in obj:
        ref = _from_llmkit(path, obj, benchmark)
    elif "forget_truth_ratio" in obj or "mia_min_k" in obj:
        ref = _from_open_unlearning(path, obj)
    elif "eval_log_forget.json" in obj:
        ref = _from_legacy_tofu(path, obj)
    else:
        raise LlmkitError(f"reference {path}: unknown format (expected an llmkit, open-unlearning or TOFU eval log)")
    if ref.forget_split is not None and ref.forget_split != forget_split:
        raise LlmkitError(f"reference {path} was computed on forget split {ref.forget_split!r}, "
                          f"but this suite evaluates {forget_split!r}")
    if benchmark == "tofu":
        if ref.truth_ratios is None:
            raise LlmkitError(f"reference {path} has no per-item forget truth ratios")
        # every format: a reference from another split (or a cut log) gives a wrong forget quality, not an error
        if len(ref.truth_ratios) != n_forget:
            raise LlmkitError(f"reference {path} has {len(ref.truth_ratios)} forget truth ratios, but {forget_split} "
                              f"has {n_forget} items: it is from another forget split or evaluation")
        bad = int(np.sum(~np.isfinite(ref.truth_ratios)))
        if bad:
            raise LlmkitError(f"reference {path}: {bad} of its {len(ref.truth_ratios)} forget truth ratios are not "
                              f"finite (NaN or inf); forget quality would be meaningless")
    if benchmark == "muse" and ref.mink_auc is None:
        raise LlmkitError(f"reference {path} has no Min-k AUC")
    if benchmark == "muse" and min_k_variant is not None and ref.min_k_variant != min_k_variant:
        if ref.min_k_variant is None:
            raise LlmkitError(f"reference {path} does not record the Min-k variant (ou_compat, k) it was computed with; "
                              f"evaluate the retrain model again with this llmkit")
        raise LlmkitError(f"reference {path} was computed with {_variant(ref.min_k_variant)}, but this run uses "
                          f"{_variant(min_k_variant)}; the two Min-k AUCs do not compare: evaluate the retrain model "
                          f"with the same ou_compat and k")
    return ref


def _variant(variant: dict) -> str:
    return f"ou_compat: {variant['ou_compat']}, k: {variant['k']}"


def _numbers(values, path: Path, what: str) -> np.ndarray:
    """Float array of `values`; a string or other non-number is one line naming it (None becomes NaN)."""
    for value in values:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise LlmkitError(f"reference {path}: {what} {value!r} is not a number")
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _auc(value, path: Path):
    """A Min-k AUC from a reference file: a finite number in [0, 1], or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise LlmkitError(f"reference {path}: Min-k AUC {value!r} is not a number in [0, 1]")
    return float(value)


def _from_llmkit(path: Path, obj: dict, benchmark: str) -> Reference:
    if obj.get("benchmark") != benchmark:
        raise LlmkitError(f"reference {path} is for benchmark {obj.get('benchmark')!r}, not {benchmark!r}")
    ratios = obj.get("forget_truth_ratios")
    if ratios is not None and not isinstance(ratios, list):
        raise LlmkitError(f"reference {path}: forget_truth_ratios is not a list")
    variant = {key: obj[key] for key in ("ou_compat", "k")} if {"ou_compat", "k"} <= obj.keys() else None
    return Reference(str(path), obj.get("forget_split"),
                     None if ratios is None else _numbers(ratios, path, "forget truth ratio"),
                     _auc(obj.get("mink_auc"), path), obj.get("item_nll"), variant)


def _from_open_unlearning(path: Path, obj: dict) -> Reference:
    ratios = None
    if "forget_truth_ratio" in obj:
        by_index = obj["forget_truth_ratio"].get("value_by_index") or {}
        try:
            scores = [by_index[k]["score"] for k in sorted(by_index, key=int)]
        except (KeyError, ValueError, TypeError) as err:
            raise LlmkitError(f"reference {path}: forget_truth_ratio.value_by_index is not {{index: {{score}}}} "
                              f"({err!r})") from None
        ratios = _numbers(scores, path, "forget truth ratio")
    auc_ou = _auc((obj.get("mia_min_k") or {}).get("agg_value"), path)
    # mia_loss, when it was run, scores every forget and holdout item by its mean NLL: the reference attack's input
    loss = obj.get("mia_loss") or {}
    item_nll = {part: [loss[part]["value_by_index"][k]["score"] for k in sorted(loss[part]["value_by_index"], key=int)]
                for part in ("forget", "holdout") if "value_by_index" in (loss.get(part) or {})} or None
    # open-unlearning's AUC is roc_auc_score(forget=0, holdout=1; score) = 1 - MUSE's
    return Reference(str(path), None, ratios, None if auc_ou is None else 1.0 - auc_ou, item_nll, OU_MIN_K)


def _from_legacy_tofu(path: Path, obj: dict) -> Reference:
    forget = obj["eval_log_forget.json"]
    try:
        para, pert = forget["avg_paraphrased_loss"], forget["average_perturb_loss"]
        keys = sorted(para, key=int)
        nll_para = _numbers([para[k] for k in keys], path, "avg_paraphrased_loss")
        nll_pert = np.array([_numbers(pert[k], path, "average_perturb_loss") for k in keys])  # [n, k]
    except (KeyError, ValueError, TypeError) as err:
        raise LlmkitError(f"reference {path}: eval_log_forget.json lacks per-item paraphrased/perturbed losses ({err})") from None
    return Reference(str(path), None, np.exp(nll_para - nll_pert.mean(axis=1)))
