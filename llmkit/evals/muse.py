"""MUSE metrics (Shi et al. 2024, arXiv 2407.06460) as pure functions of generations and per-token log-probs.

Defaults follow the original `swj0419/muse_bench` code (metrics/{verbmem,knowmem,privleak}.py, eval.py):
ROUGE-L F1 without stemming x100, VerbMem reference cut to 128 tokens, Min-k with floor(k*n) tokens.
`ou_compat=True` gives open-unlearning's variants: stemmer on, [0, 1] scale, full VerbMem reference,
max(1, floor(k*n)) tokens. AUCs are kept in MUSE's convention (P(score_holdout < score_forget)); open-unlearning
reports 1 - that and flips both sides back in its privleak, so PrivLeak is the same formula in both.
extraction_strength (open-unlearning's default MUSE metric set) is computed the same way in both modes.
See ../shared/specs/unlearning.md §3.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
import numpy as np
from rouge_score import rouge_scorer
from sklearn.metrics import auc, roc_curve

from llmkit.errors import LlmkitError, did_you_mean
from llmkit.evals.scoring import answer_logprobs, answer_token_stats

STOP_STRINGS = ("\n\n", "\nQuestion", "Question:")  # metrics/knowmem.py
VERBMEM_TOKENS = 128
KNOWMEM_TOKENS = 32
MIN_K = 0.4
# constants.py AUC_RETRAIN[corpus]["forget_holdout_Min-40%"]: the published retrain models' AUC on the real MUSE data.
PUBLISHED_RETRAIN_AUC = {"news": 0.4772, "books": 0.5393}


def knowmem_prompt(icl_pairs: Sequence[tuple[str, str]], question: str) -> str:
    """The KnowMem prompt: the in-context QA pairs, then the question with an open answer."""
    shots = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in icl_pairs)
    return shots + f"Question: {question}\nAnswer: "


def cut_at_stops(text: str, stops: Sequence[str] = STOP_STRINGS) -> str:
    """Keep the text before the first occurrence of any stop string."""
    for stop in stops:
        text = text.split(stop)[0]
    return text


def rouge_l_f1(generations: Sequence[str], references: Sequence[str], ou_compat: bool = False) -> np.ndarray:
    """Per-item ROUGE-L F1 (stemmer off as in MUSE, on in open-unlearning), in [0, 1]."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=ou_compat)
    return np.array([scorer.score(ref, gen)["rougeL"].fmeasure for gen, ref in zip(generations, references, strict=True)])


def cut_to_tokens(tokenizer, text: str, n_tokens: int = VERBMEM_TOKENS) -> str:
    """MUSE's VerbMem reference: the first n token ids of `text` (special tokens included), decoded without them."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"][:n_tokens]
    return tokenizer.decode(ids, skip_special_tokens=True)


def min_k_score(token_logprobs: np.ndarray, k: float = MIN_K, ou_compat: bool = False) -> float:
    """Min-k% Prob score: minus the mean of the lowest floor(k*n) token log-probs (higher = less likely seen)."""
    lp = np.sort(np.asarray(token_logprobs, dtype=float))
    n_low = int(len(lp) * k)
    if ou_compat or n_low == 0:
        # MUSE would average an empty slice (NaN) for texts under 1/k tokens and its ROC would fail; take one token.
        n_low = max(1, n_low)
    return float(-np.mean(lp[:n_low]))


def mink_auc(forget_scores: Sequence[float], holdout_scores: Sequence[float]) -> float:
    """MUSE's forget-vs-holdout AUC: roc_curve on -score with forget labelled 0 and holdout 1."""
    scores = np.concatenate([np.asarray(forget_scores, dtype=float), np.asarray(holdout_scores, dtype=float)])
    labels = np.array([0] * len(forget_scores) + [1] * len(holdout_scores))
    fpr, tpr, _ = roc_curve(labels, -scores)
    return float(auc(fpr, tpr))


def privleak(auc_model: float, auc_retrain: float, ou_compat: bool = False) -> float:
    """PrivLeak = (AUC - AUC_retrain) / AUC_retrain x 100 (0 = like the retrain model, < 0 = leaks)."""
    return (auc_model - auc_retrain) / (auc_retrain + (1e-10 if ou_compat else 0.0)) * 100


# ---------------------------------------------------------------- the suite: data -> generations/scores -> metrics

METRICS = ("verbmem_f", "knowmem_f", "knowmem_r", "privleak", "extraction_strength")
GENERATION_METRICS = ("verbmem_f", "knowmem_f", "knowmem_r")
OU_MAX_TEXT_TOKENS = 2048  # open-unlearning's CompletionDataset max_length for the Min-k and VerbMem texts
OU_MIN_K = {"ou_compat": True, "k": MIN_K}  # the variant behind open-unlearning's MUSE_EVAL.json (mia_min_k, k: 0.4)
# the corpus of each dataset llmkit knows; a local copy is labelled by the suite's `corpus`
DATASET_CORPUS = {"muse-bench/MUSE-News": "news", "muse-news-mini": "news",
                  "muse-bench/MUSE-Books": "books", "muse-books-mini": "books"}


@dataclass
class MuseSuiteArgs:
    """A MUSE suite: which corpus, which metrics, which semantics."""

    benchmark: str = field(default="muse", metadata={"help": "muse"})
    dataset: str = field(default="muse-bench/MUSE-News", metadata={"help": "hub id, bundled alias or local copy"})
    corpus: str = field(default="news", metadata={"help": "news | books: what a reference must have been computed on"})
    metrics: str = field(default=",".join(METRICS), metadata={"help": "comma-separated subset of " + ", ".join(METRICS)})
    ou_compat: bool = field(default=False, metadata={"help": "open-unlearning's variants instead of MUSE's code"})
    k: float = field(default=MIN_K, metadata={"help": "Min-k% Prob fraction"})
    verbmem_max_new_tokens: int = VERBMEM_TOKENS
    knowmem_max_new_tokens: int = KNOWMEM_TOKENS
    retrain_auc: float | None = field(default=None, metadata={
        "help": "PrivLeak baseline when no --reference: MUSE's published 0.4772 (news) / 0.5393 (books), full data only"})
    batch_size: int = 8

    def __post_init__(self):
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size}")
        if not 0.0 < self.k <= 1.0:  # k = 0 would score no token, k > 1 more tokens than there are
            raise ValueError(f"k must lie in (0, 1], got {self.k}")
        known = DATASET_CORPUS.get(self.dataset)
        if known is not None and known != self.corpus:
            raise ValueError(f"dataset {self.dataset} holds MUSE {known}, but corpus is {self.corpus!r}: "
                             f"set corpus: {known} (or use the muse_{known} suite)")

    def min_k_variant(self) -> dict:
        """What a PrivLeak reference must have been computed with: the two Min-k definitions do not compare."""
        return {"ou_compat": self.ou_compat, "k": self.k}

    def metric_list(self) -> list[str]:
        names = [m.strip() for m in self.metrics.split(",") if m.strip()]
        for name in names:
            if name not in METRICS:
                raise ValueError(f"unknown MUSE metric {name!r}{did_you_mean(name, METRICS)}")
        return names


def _rouge_items(prompts, generations, references, ou_compat: bool) -> tuple[float, list[dict]]:
    scores = rouge_l_f1(generations, references, ou_compat)
    scale = 1.0 if ou_compat else 100.0
    items = [{"prompt": p, "reference": r, "generation": g, "rougeL_f1": float(s)}
             for p, g, r, s in zip(prompts, generations, references, scores)]
    return float(scores.mean() * scale), items


def extraction_strength_items(model, tokenizer, data: list[dict], batch_size: int) -> list[dict]:
    """open-unlearning's MUSE extraction strength on VerbMem: the model reads prompt + " " + gt; its greedy guesses
    of the first 2048 continuation tokens, but the last, are compared with the true ones."""
    from llmkit.evals.mia import extraction_strength  # mia builds on this module's Min-k score

    scored = answer_token_stats(model, tokenizer, [(d["prompt"], " " + d["gt"]) for d in data], add_eos=False,
                                batch_size=batch_size, desc="muse extraction_strength: scoring")
    # its labels stop at 2048 tokens and drop the last one
    return [{"prompt": d["prompt"], "extraction_strength": extraction_strength(s.greedy[:OU_MAX_TEXT_TOKENS][:-1])}
            for d, s in zip(data, scored)]


def run_muse(suite_dict: dict, overrides: dict, suite_path: str, load, reference_path) -> dict:
    """Evaluate one MUSE suite; returns {"metrics", "absent", "items", "collapse", "reference", ...} for the caller to write.

    `load(batch_size)` gives (model, tokenizer, generator); it is called once the suite and reference are checked.
    """
    from llmkit.config import build_args
    from llmkit.data import load_rows
    from llmkit.evals.collapse import collapse_check
    from llmkit.evals.reference import load_reference

    (suite,) = build_args((MuseSuiteArgs,), suite_dict, overrides, suite_path)
    try:
        wanted = suite.metric_list()
    except ValueError as err:
        raise LlmkitError(f"{suite_path}: metrics: {err}") from None
    reference = None
    if reference_path:
        reference = load_reference(reference_path, benchmark="muse", forget_split=suite.corpus, n_forget=0,
                                   min_k_variant=suite.min_k_variant())
    model, tokenizer, generator = load(suite.batch_size)
    rows = lambda config, split, cols: load_rows(suite.dataset, config, split, columns=cols)  # noqa: E731
    metrics, absent, items, sizes, auc_model = {}, {}, {}, {}, None

    if "verbmem_f" in wanted:
        data = rows("verbmem", "forget", ("prompt", "gt"))
        prompts = [d["prompt"] for d in data]
        # MUSE scores against the first 128 tokens of the true continuation; open-unlearning against all of it
        refs = [d["gt"] if suite.ou_compat else cut_to_tokens(tokenizer, d["gt"], suite.verbmem_max_new_tokens) for d in data]
        gens = generator(prompts, max_new_tokens=suite.verbmem_max_new_tokens, desc="muse verbmem: generating")
        metrics["verbmem_f"], items["verbmem_f"] = _rouge_items(prompts, gens, refs, suite.ou_compat)
        sizes["verbmem_f"] = len(data)
    for name, part in (("knowmem_f", "forget"), ("knowmem_r", "retain")):
        if name not in wanted:
            continue
        qa = rows("knowmem", f"{part}_qa", ("question", "answer"))
        icl = [(d["question"], d["answer"]) for d in rows("knowmem", f"{part}_qa_icl", ("question", "answer"))]
        prompts = [knowmem_prompt(icl, d["question"]) for d in qa]
        gens = generator(prompts, max_new_tokens=suite.knowmem_max_new_tokens, stop=STOP_STRINGS,
                         desc=f"muse {name}: generating")
        metrics[name], items[name] = _rouge_items(prompts, gens, [d["answer"] for d in qa], suite.ou_compat)
        sizes[name] = len(qa)
    if "privleak" in wanted:
        forget = [d["text"] for d in rows("privleak", "forget", ("text",))]
        holdout = [d["text"] for d in rows("privleak", "holdout", ("text",))]
        max_length = None
        if suite.ou_compat:
            max_length = OU_MAX_TEXT_TOKENS + len(tokenizer("", add_special_tokens=True)["input_ids"])
        logprobs = answer_logprobs(model, tokenizer, [("", t) for t in forget + holdout], add_eos=False,
                                   max_length=max_length, batch_size=suite.batch_size, desc="muse privleak: scoring")
        if suite.ou_compat:  # open-unlearning's tokenwise_logprobs leaves out the last labelled token
            logprobs = [lp[:-1] if len(lp) > 1 else lp for lp in logprobs]
        scores = [min_k_score(lp, suite.k, suite.ou_compat) for lp in logprobs]
        auc_model = mink_auc(scores[:len(forget)], scores[len(forget):])
        metrics["mink_auc"] = auc_model
        items["privleak"] = [{"split": "forget" if i < len(forget) else "holdout", "text": t, "min_k": s}
                             for i, (t, s) in enumerate(zip(forget + holdout, scores))]
        baseline = reference.mink_auc if reference is not None else suite.retrain_auc
        if baseline is None:
            absent["privleak"] = "needs --reference (the reference file written by evaluating the retrain model) or --retrain_auc"
        else:
            metrics["privleak"] = privleak(auc_model, baseline, suite.ou_compat)
        sizes["privleak"] = {"forget": len(forget), "holdout": len(holdout)}
    if "extraction_strength" in wanted:
        data = rows("verbmem", "forget", ("prompt", "gt"))
        items["extraction_strength"] = extraction_strength_items(model, tokenizer, data, suite.batch_size)
        metrics["extraction_strength"] = float(np.mean([it["extraction_strength"] for it in items["extraction_strength"]]))
        sizes["extraction_strength"] = len(data)
    collapse = None
    if "knowmem_r" in items:
        collapse = collapse_check({name: [it["generation"] for it in items[name]] for name in GENERATION_METRICS
                                   if name in items}, "knowmem_r")
    else:
        absent["collapsed"] = "judged on the knowmem_r generations, which this suite's metrics leave out"
    return {"metrics": metrics, "absent": absent, "items": items, "sizes": sizes, "collapse": collapse,
            "reference": {"benchmark": "muse", "forget_split": suite.corpus, "mink_auc": auc_model,
                          "min_k_variant": suite.min_k_variant()},
            "config": dataclasses.asdict(suite)}
