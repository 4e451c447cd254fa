"""Membership inference, PrivLeak, extraction strength and exact memorisation as functions of one scoring pass.

Definitions follow open-unlearning (`src/evals/metrics/mia/*.py`, `memorization.py`, `privacy.py`), checked on fixed
log-probs in tests/test_evals_mia.py. Every attack score is signed like a loss (higher = less likely a member), and
an attack's AUC is `roc_auc_score` with forget items labelled 0 and holdout items 1, so AUC 1 means the forget answers
are far more likely than the holdout ones. Token conventions of open-unlearning: LOSS, ZLib and the reference attack
use the mean NLL over every answer token with the EOS; Min-K%, Min-K%++, extraction strength and exact memorisation
leave the final EOS prediction out. PrivLeak itself is muse.privleak on 1 - AUC (MUSE's orientation), which is
open-unlearning's ((1 - auc) - (1 - ref_auc)) / (1 - ref_auc) x 100.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from llmkit.evals.muse import min_k_score
from llmkit.evals.scoring import TokenStats

MIN_K = 0.4  # open-unlearning's k for mia_min_k, mia_min_k_plus_plus and privleak
VAR_FLOOR = 1e-6  # open-unlearning's clamp of the vocabulary variance in Min-K%++
ATTACKS = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus")


def min_k_plus_plus_score(logprob: np.ndarray, vocab_mean: np.ndarray, vocab_var: np.ndarray, k: float = MIN_K) -> float:
    """Min-K%++ (Zhang et al. 2024): Min-K% over z_t = (log p(x_t) - mu_t) / sigma_t, mu/sigma over the vocabulary."""
    z = (np.asarray(logprob) - np.asarray(vocab_mean)) / np.sqrt(np.maximum(vocab_var, VAR_FLOOR))
    return min_k_score(z, k, ou_compat=True)


def zlib_score(nll: float, text: str) -> float:
    """ZLib attack (Carlini et al. 2021): mean NLL over the zlib-compressed length of the text in bytes."""
    return nll / len(zlib.compress(text.encode("utf-8")))


def attack_scores(stats: TokenStats, text: str, k: float = MIN_K) -> dict[str, float]:
    """The reference-free attack scores of one item; `text` is its answer decoded without special tokens."""
    nll = -float(np.mean(stats.logprob))  # LOSS: every answer token, EOS included
    body = slice(0, len(stats.logprob) - 1)  # the rest leave the EOS prediction out
    if body.stop == 0:  # nothing but the EOS: open-unlearning scores 0
        return {"mia_loss": nll, "mia_zlib": zlib_score(nll, text), "mia_min_k": 0.0, "mia_min_k_plus_plus": 0.0}
    return {"mia_loss": nll, "mia_zlib": zlib_score(nll, text),
            "mia_min_k": min_k_score(stats.logprob[body], k, ou_compat=True),
            "mia_min_k_plus_plus": min_k_plus_plus_score(stats.logprob[body], stats.vocab_mean[body],
                                                         stats.vocab_var[body], k)}


def attack_auc(forget_scores: Sequence[float], holdout_scores: Sequence[float]) -> float:
    """AUC of telling holdout from forget by the score: forget labelled 0, holdout 1 (open-unlearning's convention)."""
    scores = np.concatenate([np.asarray(forget_scores, dtype=float), np.asarray(holdout_scores, dtype=float)])
    labels = np.r_[np.zeros(len(forget_scores)), np.ones(len(holdout_scores))]
    return float(roc_auc_score(labels, scores))


def exact_memorization(greedy: np.ndarray) -> float:
    """Fraction of answer tokens (EOS left out) that the model's argmax predicts given the true prefix."""
    return float(np.mean(greedy))


def extraction_strength(greedy: np.ndarray) -> float:
    """ES = 1 - k/n, k the first answer position from which every argmax prediction is right (EOS left out).

    As open-unlearning computes it: k is searched over 0..n-1 only, so an item whose last token is wrong gets
    k = n-1 and ES = 1/n, the same as an item whose last token alone is right.
    """
    greedy = np.asarray(greedy, dtype=bool)
    n = len(greedy)
    if n == 0:
        return 0.0
    wrong = np.flatnonzero(~greedy)
    k = 0 if len(wrong) == 0 else min(int(wrong[-1]) + 1, n - 1)  # the suffix after the last miss
    return 1.0 - k / n
