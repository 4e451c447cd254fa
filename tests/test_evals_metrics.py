"""TOFU and MUSE metric math against hand computation on fixed per-token log-probs and fixed generations."""

import math
from itertools import product

import numpy as np
import pytest

from llmkit.evals import muse, tofu

# Fixed per-token log-probs: three items, each with an answer, a paraphrase and three perturbed answers.
ANSWER = [np.log([0.5, 0.25, 0.8]), np.log([0.9, 0.9]), np.log([0.1, 0.2, 0.4, 0.8])]
PARA = [np.log([0.6, 0.3]), np.log([0.7, 0.7, 0.7]), np.log([0.05, 0.5])]
PERT = [
    [np.log([0.2, 0.2]), np.log([0.4]), np.log([0.1, 0.3, 0.3])],
    [np.log([0.9, 0.8]), np.log([0.6, 0.6]), np.log([0.95])],
    [np.log([0.01, 0.02]), np.log([0.3, 0.3]), np.log([0.2])],
]


def geo_prob(logprobs):
    """P(a|q)^(1/|a|) straight from the token probabilities."""
    probs = np.exp(logprobs)
    return math.prod(probs) ** (1 / len(probs))


def nll_pert():
    return np.array([[tofu.mean_nll([lp])[0] for lp in item] for item in PERT])


def test_probability_is_geometric_mean_token_probability():
    got = tofu.probability(tofu.mean_nll(ANSWER))
    want = [geo_prob(lp) for lp in ANSWER]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] == pytest.approx((0.5 * 0.25 * 0.8) ** (1 / 3))


def test_normalised_probability():
    got = tofu.normalised_probability(tofu.mean_nll(ANSWER), nll_pert())
    for i in range(3):
        true = geo_prob(ANSWER[i])
        wrong = sum(geo_prob(lp) for lp in PERT[i])
        assert got[i] == pytest.approx(true / (true + wrong), rel=1e-9)
    legacy = tofu.normalised_probability(tofu.mean_nll(ANSWER), nll_pert(), eps=0.0)
    np.testing.assert_allclose(legacy, got, rtol=1e-8)


def test_truth_ratio_geometric_and_arithmetic():
    base = tofu.mean_nll(PARA)
    geo = tofu.truth_ratio(base, nll_pert(), "geometric")
    ari = tofu.truth_ratio(base, nll_pert(), "arithmetic", eps=0.0)
    for i in range(3):
        p_base = geo_prob(PARA[i])
        pert = [geo_prob(lp) for lp in PERT[i]]
        assert geo[i] == pytest.approx(math.prod(pert) ** (1 / 3) / p_base, rel=1e-8)
        assert ari[i] == pytest.approx(sum(pert) / 3 / p_base, rel=1e-12)
    # AM >= GM, strictly unless the perturbed probabilities are equal
    assert np.all(ari > geo)
    with pytest.raises(ValueError):
        tofu.truth_ratio(base, nll_pert(), "harmonic")


def test_reported_truth_ratio_forms():
    ratios = np.array([0.5, 2.0, 1.0, 4.0, 0.1])
    assert tofu.forget_truth_ratio_score(ratios) == pytest.approx((0.5 + 0.5 + 1.0 + 0.25 + 0.1) / 5, rel=1e-8)
    assert tofu.kept_truth_ratio_score(ratios) == pytest.approx((0.5 + 0 + 0 + 0 + 0.9) / 5)


def test_kept_truth_ratio_matches_legacy_aggregate_form():
    # locuslab/tofu aggregate_eval_stat.py: s = exp(mean_j L_pert - L_para); report mean(max(0, 1 - 1/s))
    base, pert = tofu.mean_nll(PARA), nll_pert()
    s = np.exp(pert.mean(axis=1) - base)
    legacy = np.mean(np.maximum(0, 1 - 1 / s))
    assert tofu.kept_truth_ratio_score(tofu.truth_ratio(base, pert, "geometric", eps=0.0)) == pytest.approx(legacy)


def lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, j in product(range(len(a)), range(len(b))):
        table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_rouge_l_recall_with_stemmer():
    gen = "The cats were Running, quickly home!"
    gt = "A cat runs home"
    # rouge-score lowercases, splits on non-alphanumerics, Porter-stems tokens longer than 3 characters
    gen_tokens = ["the", "cat", "were", "run", "quickli", "home"]
    gt_tokens = ["a", "cat", "run", "home"]
    assert lcs(gen_tokens, gt_tokens) == 3
    got = tofu.rouge_l_recall([gen, "nothing alike"], [gt, "totally different words"])
    np.testing.assert_allclose(got, [3 / 4, 0.0])


def test_forget_quality_is_ks_p_value():
    same = np.array([0.3, 0.5, 0.7, 0.9, 1.1])
    assert tofu.forget_quality(same, same) == pytest.approx(1.0)
    # fully separated samples of 5 and 5: exact two-sided p = 2 / C(10, 5)
    assert tofu.forget_quality(same, same + 10) == pytest.approx(2 / math.comb(10, 5))
    # rank statistic: R and 1/R give the same p-value (legacy compares 1/R, open-unlearning R)
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(size=40), rng.lognormal(0.5, size=37)
    assert tofu.forget_quality(a, b) == pytest.approx(tofu.forget_quality(1 / a, 1 / b))


def test_model_utility_harmonic_mean():
    values = dict(zip(tofu.UTILITY_KEYS, [0.9, 0.8, 0.5, 0.6, 0.7, 0.4, 0.3, 0.95, 0.2]))
    assert tofu.model_utility(values) == pytest.approx(9 / sum(1 / v for v in values.values()))
    values["wf_Truth_Ratio"] = 0.0
    assert tofu.model_utility(values) == 0.0
    with pytest.raises(ValueError):
        tofu.model_utility({"retain_Q_A_Prob": 1.0})


def test_split_metrics_modes():
    logs = {"nll_answer": tofu.mean_nll(ANSWER), "nll_base": tofu.mean_nll(PARA), "nll_perturbed": nll_pert(),
            "rouge": np.array([1.0, 0.5, 0.0])}
    forget = tofu.split_metrics("forget", logs)
    r_geo = [math.prod(geo_prob(lp) for lp in PERT[i]) ** (1 / 3) / geo_prob(PARA[i]) for i in range(3)]
    assert forget["metrics"]["forget_truth_ratio"] == pytest.approx(np.mean([min(r, 1 / r) for r in r_geo]), rel=1e-8)
    assert forget["metrics"]["forget_Q_A_Prob"] == pytest.approx(np.mean([geo_prob(lp) for lp in ANSWER]))
    assert forget["metrics"]["forget_Q_A_ROUGE"] == pytest.approx(0.5)
    legacy = tofu.split_metrics("forget", logs, legacy=True)
    r_ari = [sum(geo_prob(lp) for lp in PERT[i]) / 3 / geo_prob(PARA[i]) for i in range(3)]
    assert legacy["metrics"]["forget_truth_ratio"] == pytest.approx(np.mean([min(r, 1 / r) for r in r_ari]))
    # the ratios forget quality uses stay geometric in legacy mode
    np.testing.assert_allclose(legacy["per_item"]["truth_ratio_geometric"], r_geo, rtol=1e-8)
    ra = tofu.split_metrics("ra", {**logs, "nll_base": logs["nll_answer"]})
    assert set(ra["metrics"]) == {"ra_Q_A_Prob_normalised", "ra_Q_A_ROUGE", "ra_Truth_Ratio"}
    r_ra = [math.prod(geo_prob(lp) for lp in PERT[i]) ** (1 / 3) / geo_prob(ANSWER[i]) for i in range(3)]
    assert ra["metrics"]["ra_Truth_Ratio"] == pytest.approx(np.mean([max(0, 1 - r) for r in r_ra]), rel=1e-8)


# ---------------------------------------------------------------- MUSE


def test_knowmem_prompt_and_stops():
    prompt = muse.knowmem_prompt([("Q1?", "A1"), ("Q2?", "A2")], "Q3?")
    assert prompt == "Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\nQuestion: Q3?\nAnswer: "
    assert muse.cut_at_stops("Paris\nQuestion: next\n\nmore") == "Paris"
    assert muse.cut_at_stops("Paris.\n\nQuestion: x") == "Paris."
    assert muse.cut_at_stops("Paris Question: x") == "Paris "
    assert muse.cut_at_stops("no stop here") == "no stop here"


def test_rouge_l_f1_stemmer_switch():
    gen, ref = "the cats were running home", "a cat runs home today"
    plain = lcs(["the", "cats", "were", "running", "home"], ["a", "cat", "runs", "home", "today"])  # 1
    stemmed = lcs(["the", "cat", "were", "run", "home"], ["a", "cat", "run", "home", "today"])  # 3
    f1 = lambda m, n_gen, n_ref: 2 * (m / n_gen) * (m / n_ref) / (m / n_gen + m / n_ref)  # noqa: E731
    assert muse.rouge_l_f1([gen], [ref])[0] == pytest.approx(f1(plain, 5, 5))
    assert muse.rouge_l_f1([gen], [ref], ou_compat=True)[0] == pytest.approx(f1(stemmed, 5, 5))


def test_min_k_score():
    lp = np.log([0.9, 0.1, 0.5, 0.05, 0.7, 0.3, 0.2])  # n=7, floor(0.4*7)=2 lowest: 0.05, 0.1
    assert muse.min_k_score(lp) == pytest.approx(-(math.log(0.05) + math.log(0.1)) / 2)
    short = np.log([0.5, 0.25])  # floor(0.8) = 0: one token in both modes
    assert muse.min_k_score(short) == pytest.approx(-math.log(0.25))
    assert muse.min_k_score(short, ou_compat=True) == pytest.approx(-math.log(0.25))
    five = np.log([0.5, 0.4, 0.3, 0.2, 0.1])  # floor(2.0) = 2
    assert muse.min_k_score(five, k=0.4) == pytest.approx(-(math.log(0.1) + math.log(0.2)) / 2)


def test_mink_auc_is_probability_holdout_scores_lower():
    forget = [2.0, 3.5, 1.0, 4.0]
    holdout = [1.5, 3.5, 0.5]
    pairs = [(f, h) for f in forget for h in holdout]
    want = sum(1.0 if h < f else 0.5 if h == f else 0.0 for f, h in pairs) / len(pairs)
    assert muse.mink_auc(forget, holdout) == pytest.approx(want)
    # open-unlearning's roc_auc_score(labels, score) is the complement
    from sklearn.metrics import roc_auc_score

    ou = roc_auc_score([0] * 4 + [1] * 3, forget + holdout)
    assert muse.mink_auc(forget, holdout) == pytest.approx(1 - ou)


def test_privleak():
    assert muse.privleak(0.2, 0.4772) == pytest.approx((0.2 - 0.4772) / 0.4772 * 100)
    assert muse.privleak(0.4772, 0.4772) == 0.0
    # open-unlearning flips both AUCs to 1 - x and back: same number
    s_ou, r_ou = 1 - 0.3, 1 - 0.55
    ou = ((1 - s_ou) - (1 - r_ou)) / ((1 - r_ou) + 1e-10) * 100
    assert muse.privleak(0.3, 0.55, ou_compat=True) == pytest.approx(ou)
