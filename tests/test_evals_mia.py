"""Membership-inference attacks, PrivLeak, extraction strength and exact memorisation against hand computation.

Hand values follow open-unlearning's definitions (src/evals/metrics/mia/*.py, memorization.py, privacy.py) on fixed
per-token log-probs: LOSS over every answer token with the EOS, Min-K%/Min-K%++/ES/EM without the EOS position.
"""

import math
import zlib
from itertools import product

import numpy as np
import pytest

from llmkit.evals import mia, tofu
from llmkit.evals.reference import Reference
from llmkit.evals.scoring import TokenStats

# five answer tokens and the EOS: probabilities 0.5, 0.1, 0.8, 0.05, 0.9 | EOS 0.6
PROBS = [0.5, 0.1, 0.8, 0.05, 0.9, 0.6]
MEAN = [-1.0, -2.0, -0.5, -3.0, -0.2, -0.7]
VAR = [0.25, 4.0, 1e-9, 1.0, 0.04, 0.09]  # 1e-9 is under open-unlearning's 1e-6 floor


def stats(probs=PROBS, greedy=(True,) * 6, mean=MEAN, var=VAR) -> TokenStats:
    return TokenStats(ids=np.arange(len(probs)), logprob=np.log(probs), greedy=np.array(greedy, dtype=bool),
                      vocab_mean=np.array(mean, dtype=float), vocab_var=np.array(var, dtype=float))


class FakeTokenizer:
    """decode(ids) -> a fixed text per item, as the scoring pass's ids would decode."""

    def __init__(self, texts):
        self.texts = texts

    def decode(self, ids, skip_special_tokens=True):
        return self.texts[len(ids)]


def test_attack_scores_by_hand():
    text = "Jane Doe was born in Lyon."
    got = mia.attack_scores(stats(), text)
    loss = -(sum(math.log(p) for p in PROBS)) / 6  # EOS included
    assert got["mia_loss"] == pytest.approx(loss)
    assert got["mia_zlib"] == pytest.approx(loss / len(zlib.compress(text.encode())))
    # 5 tokens without the EOS, k = 0.4 -> int(2.0) = 2 lowest: 0.05 and 0.1
    assert got["mia_min_k"] == pytest.approx(-(math.log(0.05) + math.log(0.1)) / 2)
    z = [(math.log(p) - m) / math.sqrt(max(v, 1e-6)) for p, m, v in zip(PROBS[:5], MEAN[:5], VAR[:5])]
    assert got["mia_min_k_plus_plus"] == pytest.approx(-sum(sorted(z)[:2]) / 2)
    # k = 0.1 keeps max(1, int(0.5)) = 1 token
    assert mia.attack_scores(stats(), text, k=0.1)["mia_min_k"] == pytest.approx(-math.log(0.05))


def test_eos_only_answer_scores_zero_like_open_unlearning():
    got = mia.attack_scores(stats(probs=[0.5], greedy=[True], mean=[-1.0], var=[1.0]), "")
    assert got["mia_min_k"] == 0.0 and got["mia_min_k_plus_plus"] == 0.0
    assert got["mia_loss"] == pytest.approx(-math.log(0.5))


def pairwise_auc(forget, holdout):
    """P(holdout score > forget score) + ties/2, counted pair by pair."""
    wins = [1.0 if h > f else 0.5 if h == f else 0.0 for f, h in product(forget, holdout)]
    return sum(wins) / len(wins)


def test_attack_auc_orientation_and_ties():
    assert mia.attack_auc([1.0, 2.0], [3.0, 1.5]) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    forget, holdout = rng.integers(0, 5, 9).astype(float), rng.integers(0, 5, 7).astype(float)  # many ties
    assert mia.attack_auc(forget, holdout) == pytest.approx(pairwise_auc(forget, holdout))
    assert mia.attack_auc([0.1, 0.2], [5.0, 6.0]) == 1.0  # forget far more likely than holdout


@pytest.mark.parametrize("greedy, es", [
    ([1, 1, 1, 1], 1.0),
    ([0, 1, 1, 1], 0.75),  # right from position 1 on
    ([1, 0, 1, 1], 0.5),
    ([1, 1, 0, 1], 0.25),
    ([1, 1, 1, 0], 0.25),  # last token wrong: open-unlearning's search stops at k = n-1
    ([0, 0, 0, 0], 0.25),
])
def test_extraction_strength(greedy, es):
    assert mia.extraction_strength(np.array(greedy, dtype=bool)) == pytest.approx(es)


def test_exact_memorization():
    assert mia.exact_memorization(np.array([1, 0, 1, 1, 0], dtype=bool)) == pytest.approx(0.6)


def privacy(reference, forget_probs=((0.9, 0.8, 0.7), (0.2, 0.6, 0.5)), holdout_probs=((0.3, 0.2, 0.6), (0.1, 0.4, 0.5))):
    forget = [stats(probs=p, greedy=g, mean=[-1.0] * 3, var=[1.0] * 3)
              for p, g in zip(forget_probs, ([True, False, True], [True, True, False]))]
    holdout = [stats(probs=p, greedy=[True] * 3, mean=[-1.0] * 3, var=[1.0] * 3) for p in holdout_probs]
    return tofu.privacy_metrics(forget, holdout, FakeTokenizer({3: "some answer"}), 0.4, reference)


def test_privacy_metrics_without_reference():
    out = privacy(None)
    assert set(out["absent"]) == {"privleak", "mia_reference"}
    # EOS position left out: [right, wrong] and [right, right]
    assert out["metrics"]["exact_memorization"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["metrics"]["extraction_strength"] == pytest.approx((0.5 + 1.0) / 2)
    assert [it["extraction_strength"] for it in out["forget"]] == [0.5, 1.0]
    forget_minus_k = [-math.log(0.8), -math.log(0.2)]  # 2 body tokens, k = 0.4 -> 1 lowest
    holdout_minus_k = [-math.log(0.2), -math.log(0.1)]
    assert out["metrics"]["mia_min_k"] == pytest.approx(pairwise_auc(forget_minus_k, holdout_minus_k))
    assert out["reference"]["mink_auc"] == pytest.approx(1 - out["metrics"]["mia_min_k"])


def test_privleak_against_a_reference_and_its_fallback():
    auc = privacy(None)["metrics"]["mia_min_k"]
    ref_auc = 0.3  # the retain model's open-unlearning AUC
    out = privacy(Reference("ref.json", "forget01", mink_auc=1 - ref_auc))
    assert out["metrics"]["privleak"] == pytest.approx(((1 - auc) - (1 - ref_auc)) / (1 - ref_auc) * 100)
    fallback = privacy(Reference("ref.json", "forget01"))
    assert fallback["metrics"]["privleak"] == pytest.approx(((1 - auc) - 0.5) / 0.5 * 100)
    assert "0.5" in fallback["notes"]["privleak"] and "ref.json" in fallback["notes"]["privleak"]
    assert "per-item losses" in fallback["absent"]["mia_reference"]


def test_model_against_its_own_reference():
    own = privacy(None)["reference"]
    out = privacy(Reference("ref.json", "forget01", mink_auc=own["mink_auc"], item_nll=own["item_nll"]))
    assert out["metrics"]["privleak"] == 0.0
    assert out["metrics"]["mia_reference"] == 0.5  # every score is 0: no attack can tell them apart
    # a reference model that fits the holdout answers better than the forget ones: the attack separates them
    other = {"forget": [0.0, 0.0], "holdout": [-5.0, -5.0]}
    out = privacy(Reference("ref.json", "forget01", mink_auc=own["mink_auc"], item_nll=other))
    forget = [it["mia_loss"] for it in privacy(None)["forget"]]
    holdout = [it["mia_loss"] + 5.0 for it in privacy(None)["holdout"]]
    assert out["metrics"]["mia_reference"] == pytest.approx(pairwise_auc(forget, holdout))
