"""Laws against direct loops, parameter recovery, the official example, and the fit/predict CLI end to end."""

import csv
import json
import math
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from llmkit.errors import LlmkitError
from llmkit.io import write_json
from llmkit.scaling.cli import fit_main, predict_main
from llmkit.scaling.fit import Curve, compare_schedules, fit, fit_run, held_at_peak, load_curves, load_fit, predict, summary
from llmkit.scaling.laws import LAWS, as_peak_warmup, s1, s2
from llmkit.scaling.optimize import optimize_schedule
from llmkit.scaling.schedules import parse_schedule, read_lr_csv, short_labels, wsd_sweep

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scaling"
if not DATA.is_dir():
    DATA = Path("/work/shared/data/scaling")


def _loop_s1_s2(lr, lam):
    """The official recursion, one step at a time."""
    out1, out2, m, a1, a2 = [], [], 0.0, 0.0, 0.0
    for i, eta in enumerate(lr):
        a1 += eta
        if i > 0:
            m = lam * m + (lr[i - 1] - eta)
        a2 += m
        out1.append(a1)
        out2.append(a2)
    return np.array(out1), np.array(out2)


@pytest.mark.parametrize("lam", [0.0, 0.9, 0.999])
def test_s1_s2_match_direct_loop(lam):
    rng = np.random.default_rng(1)
    lr = np.concatenate([np.linspace(0, 1, 7), rng.uniform(0.1, 1.0, 40), [0.0, 0.0, 0.5]])  # includes a re-warmup
    want1, want2 = _loop_s1_s2(lr, lam)
    np.testing.assert_allclose(s1(lr), want1, rtol=1e-12)
    np.testing.assert_allclose(s2(lr, lam), want2, rtol=1e-10, atol=1e-12)
    assert np.all(as_peak_warmup(lr)[:6] == 1.0) and as_peak_warmup(lr)[7] == lr[7]


def _loop_mpl(theta, lr, t):
    """Luo et al.'s LD sum, term by term, in their parameters (L0, A, alpha, B, C, beta, gamma); at beta = 0, G's log
    limit: B*G -> B*beta*log1p(C x), with B holding B*beta."""
    L0, A, alpha, B, C, beta, gamma = theta
    ld = span = 0.0
    for k in range(t, 0, -1):
        span += lr[k]  # S_k(t) = sum of lr[k..t]
        x = C * lr[k] ** -gamma * span
        ld += (lr[k - 1] - lr[k]) * ((1 - (x + 1) ** -beta) if beta else math.log(1 + x))
    return L0 + A * lr[: t + 1].sum() ** -alpha - B * ld


def _fitted_form(authors):
    """The authors' (L0, A, alpha, B, C, beta, gamma) as llmkit fits them: B*beta in B's slot."""
    theta = np.array(authors, dtype=np.float64)
    theta[3] *= theta[5]
    return theta


@pytest.mark.parametrize("bin_steps", [1, 16])
def test_multi_power_matches_direct_sum(bin_steps):
    lr = parse_schedule("cosine:peak=1,steps=300,warmup=20,min=0.1")
    lr = np.where(np.arange(301) > 250, 0.05, lr)  # plus a step drop
    theta = np.array([2.0, 3.0, 0.4, 0.8, 0.3, 0.6, 0.5])  # the authors' parameters
    steps = np.array([25, 100, 250, 251, 260, 300])
    feats = LAWS["multi_power"].features(lr, bin_steps=bin_steps)
    got = LAWS["multi_power"].predict(_fitted_form(theta), feats, steps)[0]
    want = np.array([_loop_mpl(theta, lr, t) for t in steps])
    np.testing.assert_allclose(got, want, rtol=1e-9 if bin_steps == 1 else 2e-4)


def test_multi_power_by_hand_on_a_four_step_schedule():
    # lr 1, 1, 0.5, 0.5; all parameters 1. t=2: S1 = 2.5, one drop of 0.5 at k=2 with eta_2^-1 * S_2(2) = 2 * 0.5 = 1,
    # G = 1 - 1/2; t=3: S1 = 3, S_2(3) = 1, G = 1 - 1/3. L = 1 + 1/S1 - 0.5 * G.
    lr = np.array([1.0, 1.0, 0.5, 0.5])
    got = LAWS["multi_power"].predict(np.ones(7), LAWS["multi_power"].features(lr), np.array([1, 2, 3]))[0]
    np.testing.assert_allclose(got, [1 + 1 / 2, 1 + 1 / 2.5 - 0.5 / 2, 1 + 1 / 3 - 0.5 * 2 / 3], rtol=1e-12)


def test_multi_power_dense_query_matches_direct_sum():
    """A per-step query evaluates LD on knots (dense right after a jump) and interpolates: within 2e-5 of the loss."""
    lr = parse_schedule("cosine:peak=1,steps=3000,warmup=100,min=0.1")
    lr = np.where(np.arange(3001) > 2000, 0.05, lr)
    theta = np.array([2.4, 21.0, 0.43, 0.16, 0.1, 0.6, 0.64])  # the authors' 400M fit in peak-normalised units
    steps = np.arange(150, 3001)
    got = LAWS["multi_power"].predict(_fitted_form(theta), LAWS["multi_power"].features(lr), steps)[0]
    check = np.array([150, 700, 1999, 2000, 2001, 2003, 2010, 2040, 2200, 2500, 3000])
    want = np.array([_loop_mpl(theta, lr, t) for t in check])
    np.testing.assert_allclose(got[check - 150], want, rtol=2e-5)


def test_multi_power_at_beta_0_is_the_log_limit_law_by_hand():
    lr = parse_schedule("cosine:peak=1,steps=300,warmup=20,min=0.1")
    lr = np.where(np.arange(301) > 250, 0.05, lr)
    theta = np.array([2.0, 3.0, 0.4, 0.48, 0.3, 0.0, 0.5])  # Bbeta = 0.48, beta = 0
    steps = np.array([25, 100, 250, 251, 260, 300])
    got = LAWS["multi_power"].predict(theta, LAWS["multi_power"].features(lr, bin_steps=1), steps)[0]
    np.testing.assert_allclose(got, [_loop_mpl(theta, lr, t) for t in steps], rtol=1e-12)


def _relative_power_exact(u: float, beta: float) -> tuple[float, float]:
    """(1 - (1 + u)^-beta) / beta and its beta-derivative in 60-digit decimal arithmetic; at beta = 0, the limits
    log(1 + u) and -log(1 + u)^2 / 2."""
    with localcontext() as ctx:
        ctx.prec = 60
        l, b = (Decimal(1) + Decimal(u)).ln(), Decimal(beta)
        if beta == 0:
            return float(l), float(-l * l / 2)
        p = (-b * l).exp()
        return float((1 - p) / b), float(l * p / b - (1 - p) / (b * b))


@pytest.mark.parametrize("beta", [3.0, 0.6, 2e-3, 1e-4, 1e-7, 1e-13, 0.0])
def test_relative_power_is_the_authors_g_over_beta_down_to_its_log_limit(beta):
    """H = G/beta and dH/dbeta, with u = C x spanning a per-step fit's range: exact to ~1e-13 for every beta, at 0
    included (the direct formula loses ~eps/(beta*l) of dH/dbeta below beta*l = 1e-3, where the series takes over)."""
    from llmkit.scaling.laws import relative_power

    u = np.array([0.0, 1e-9, 1e-4, 0.3, 5.0, 700.0, 2e5])
    h, dh, pw = relative_power(np.log1p(u), beta)
    want = np.array([_relative_power_exact(float(v), beta) for v in u])
    np.testing.assert_allclose(h, want[:, 0], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(dh, want[:, 1], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(pw, (1 + u) ** -beta, rtol=1e-13)
    if beta > 0:  # the authors' G(x) = 1 - (C x + 1)^-beta, in plain numpy (whose subtraction is exact to ~eps)
        np.testing.assert_allclose(beta * h, 1 - (1 + u) ** -beta, rtol=1e-12, atol=5e-16)


def _loco_refits_with_runs(monkeypatch, law, data, theta):
    """`_loco_refits` from `theta`, and the (theta, objective, converged) of every L-BFGS-B run it made."""
    from llmkit.scaling import fit as fit_module

    runs = []
    lbfgsb = fit_module._lbfgsb
    monkeypatch.setattr(fit_module, "_lbfgsb", lambda *a, **k: runs.append(lbfgsb(*a, **k)) or runs[-1])
    refits = fit_module._loco_refits(law, data, 1e-3, theta)
    monkeypatch.undo()
    return refits, runs


def test_multi_power_fit_reaches_the_log_limit_and_says_so(monkeypatch):
    """Data from the beta -> 0 limit (LD = Bbeta*sum drop*log1p(C x)): in the authors' parameters no optimum exists (B
    grows, beta shrinks, B*beta fixed), so L-BFGS-B wandered to its iteration limit; with Bbeta free, beta ends on its
    bound 0, the fit converges, says so, and predicts an unseen schedule as the hand-summed law does. So does the
    leave-one-curve-out refit without the constant curve, from one start."""
    from llmkit.scaling import fit as fit_module

    law = LAWS["multi_power"]
    truth = np.array([2.4, 21.0, 0.43, 0.05, 0.2, 0.0, 0.6])  # L0, A, alpha, Bbeta, C, beta = 0, gamma
    curves = []
    for spec in ["cosine:peak=3e-4,steps=4000,warmup=300,min=3e-5", "constant:peak=3e-4,steps=4000,warmup=300",
                 "twostage:peak=3e-4,steps=3000,warmup=300,switch=1500,second=9e-5"]:
        lr = parse_schedule(spec)
        steps = np.arange(300, len(lr), 50)
        curves.append(Curve(spec, lr, steps, np.array([_loop_mpl(truth, lr / lr.max(), t) for t in steps])))  # noise-free
    got = fit(curves, "multi_power", n_boot=0)
    assert got.converged and got.params()["beta"] == 0.0, (got.params(), got.warnings)
    assert any(w.startswith("beta = 0 sits on its bound") and "log limit" in w for w in got.warnings), got.warnings
    assert got.authors_params() == {}  # no finite B
    np.testing.assert_allclose(got.theta, truth, rtol=0.01, atol=1e-12)
    unseen = parse_schedule("wsd:peak=3e-4,steps=4000,warmup=300,cooldown=0.2,shape=linear,min=3e-5")
    check = np.array([500, 3199, 3200, 3210, 3300, 3600, 4000])
    by_hand = [_loop_mpl(truth, unseen / unseen.max(), t) for t in check]
    np.testing.assert_allclose(predict(got, unseen, check)[0], by_hand, rtol=2e-4)  # the drop binning's own error
    _, data, _ = fit_module._prepare(curves, law, got.options, None)
    refits, runs = _loco_refits_with_runs(monkeypatch, law, data, got.theta)
    assert [j for j, _, _ in refits] == [0, 1, 2] and len(runs) == 3 and all(ok for _, _, ok in runs)
    assert refits[1][1][law.params.index("beta")] < 1e-6  # without the constant curve: at the log limit too
    np.testing.assert_allclose(np.exp(refits[1][2]), 1.0, atol=2e-4)  # the held-out constant curve, as predicted above


def test_multi_power_reports_the_authors_b_and_reads_fits_stored_with_it():
    """params.json carries B = Bbeta/beta with its bootstrap interval; a fit written before Bbeta (the authors' B in
    params, bootstrap and refits) reads back as the same law."""
    from llmkit.scaling.fit import Fit

    authors = np.array([[2.4, 21.0, 0.43, 0.16, 0.1, 0.6, 0.64], [2.4, 21.0, 0.43, 0.15, 0.1, 0.5, 0.64],
                        [2.4, 21.0, 0.43, 0.17, 0.1, 0.7, 0.64]])  # the fit, two bootstrap draws
    fitted_form = np.array([_fitted_form(a) for a in authors])
    got = Fit("multi_power", {"bin_steps": 128}, fitted_form[0], fitted_form[1:], np.zeros(3), fitted_form[1:2], 1.0, 100,
              0.0, True, 1.0, 3)
    doc = json.loads(json.dumps(got.to_json()))
    assert doc["params"]["Bbeta"] == pytest.approx(0.16 * 0.6) and doc["authors_params"]["B"]["value"] == pytest.approx(0.16)
    np.testing.assert_allclose(doc["authors_params"]["B"]["interval_90"], np.quantile([0.15, 0.17], [0.05, 0.95]))
    assert "  B      0.16 [0.151, 0.169] (the authors' form)" in summary(got, [])
    old = {**doc, "params": {**{k: v for k, v in doc["params"].items() if k != "Bbeta"}, "B": 0.16},
           "bootstrap": authors[1:].tolist(), "leave_one_curve_out": authors[1:2].tolist()}
    del old["authors_params"]
    again = Fit.from_json(old)
    np.testing.assert_allclose(again.theta, got.theta, rtol=1e-15)
    np.testing.assert_allclose(again.boot, got.boot, rtol=1e-15)
    np.testing.assert_allclose(again.loco, got.loco, rtol=1e-15)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_jacobians_match_finite_differences(name):
    law = LAWS[name]
    lr = parse_schedule("wsd:peak=1,steps=400,warmup=30,cooldown=0.3,shape=linear,min=0.1")
    feats = law.features(lr, **law.defaults)
    steps = np.arange(40, 401, 20)
    theta = {"annealing": [2.0, 3.0, 0.002, 0.5], "annealing_2scale": [2.0, 3.0, 0.002, 0.01, 0.5], "power": [2.0, 3.0, 0.5],
             "multi_power": [2.0, 3.0, 0.4, 0.8, 0.3, 0.6, 0.5]}[name]
    theta = np.array(theta, dtype=np.float64)
    _, jac = law.predict(theta, feats, steps)
    for j in range(len(theta)):
        h = 1e-6 * max(abs(theta[j]), 1e-3)
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        numeric = (law.predict(up, feats, steps)[0] - law.predict(down, feats, steps)[0]) / (2 * h)
        np.testing.assert_allclose(jac[:, j], numeric, rtol=1e-5, atol=1e-8)


def _synthetic(theta, spec, every, noise, seed):
    """Loss from the annealing law at known (peak-normalised) parameters, with multiplicative noise."""
    lr = parse_schedule(spec)
    feats = LAWS["annealing"].features(lr / lr.max(), lam=0.999, warmup="as_peak")
    steps = np.arange(every, len(lr), every)
    clean = LAWS["annealing"].predict(np.array(theta), feats, steps)[0]
    return Curve(spec.split(":")[0], lr, steps, clean * np.exp(np.random.default_rng(seed).normal(0, noise, len(steps))))


def test_parameter_recovery_and_determinism():
    truth = [2.5, 30.0, 2e-5, 0.5]  # L0, A, C, alpha
    curves = [
        _synthetic(truth, "cosine:peak=3e-4,steps=20000,warmup=500,min=0", 100, 0.002, 0),
        _synthetic(truth, "constant:peak=3e-4,steps=20000,warmup=500", 100, 0.002, 1),
    ]
    got = fit(curves, "annealing", n_boot=30)
    params = got.params()
    assert params["L0"] == pytest.approx(truth[0], rel=0.02)
    assert params["A"] == pytest.approx(truth[1], rel=0.25)
    assert params["C"] == pytest.approx(truth[2], rel=0.05)
    assert params["alpha"] == pytest.approx(truth[3], abs=0.04)
    ci = got.intervals()
    assert ci["C"][0] < params["C"] < ci["C"][1]
    assert np.array_equal(fit(curves, "annealing", n_boot=0).theta, got.theta)  # deterministic
    assert not any("not identified" in w for w in got.warnings)


def test_two_scale_law_matches_direct_loops():
    lr = parse_schedule("twostage:peak=1,steps=3000,warmup=200,switch=1200,second=0.3")
    theta = np.array([2.0, 3.0, 2e-4, 1e-3, 0.5])  # L0, A, C, C_fast, alpha
    steps = np.arange(10, 3001, 10)
    got = LAWS["annealing_2scale"].predict(theta, LAWS["annealing_2scale"].features(lr), steps)[0]
    area, slow = _loop_s1_s2(lr, 0.999)  # the default warmup is the actual LR, so no as_peak_warmup here
    fast = _loop_s1_s2(lr, 0.99)[1]
    want = 2.0 + 3.0 * area[steps] ** -0.5 - 2e-4 * slow[steps] - 1e-3 * fast[steps]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_two_scale_parameter_recovery():
    truth = np.array([2.5, 30.0, 2e-5, 2e-4, 0.5])  # L0, A, C, C_fast, alpha
    law, curves = LAWS["annealing_2scale"], []
    for seed, spec in enumerate(["cosine:peak=3e-4,steps=20000,warmup=500,min=0", "constant:peak=3e-4,steps=20000,warmup=500",
                                 "twostage:peak=3e-4,steps=16000,warmup=500,switch=8000,second=9e-5"]):
        lr = parse_schedule(spec)
        steps = np.arange(100, len(lr), 100)
        clean = law.predict(truth, law.features(lr / lr.max(), **law.defaults), steps)[0]
        curves.append(Curve(spec, lr, steps, clean * np.exp(np.random.default_rng(seed).normal(0, 0.002, len(steps)))))
    got = fit(curves, "annealing_2scale", min_step=500, n_boot=0).params()
    assert got["L0"] == pytest.approx(truth[0], rel=0.02)
    assert got["C"] == pytest.approx(truth[2], rel=0.1)
    assert got["C_fast"] == pytest.approx(truth[3], rel=0.2)
    assert got["alpha"] == pytest.approx(truth[4], abs=0.05)


def test_multi_power_parameter_recovery_with_no_parameter_on_a_bound():
    # the authors' 400M fit in peak-normalised units; beta = 12 is a near-exponential response to an LR drop, which the
    # old artificial bound beta <= 10 cut off (the authors' fit has no bounds)
    truth = np.array([2.4, 21.0, 0.43, 0.16, 0.01, 12.0, 0.64])  # L0, A, alpha, B, C, beta, gamma
    law, curves = LAWS["multi_power"], []
    for seed, spec in enumerate(["cosine:peak=3e-4,steps=6000,warmup=300,min=3e-5", "constant:peak=3e-4,steps=6000,warmup=300",
                                 "twostage:peak=3e-4,steps=5000,warmup=300,switch=2500,second=9e-5"]):
        lr = parse_schedule(spec)
        steps = np.arange(300, len(lr), 25)
        clean = law.predict(_fitted_form(truth), law.features(lr / lr.max()), steps)[0]
        curves.append(Curve(spec, lr, steps, clean * np.exp(np.random.default_rng(seed).normal(0, 2e-4, len(steps)))))
    got = fit(curves, "multi_power", n_boot=0)
    assert not any("bound" in w for w in got.warnings), got.warnings
    params = {**got.params(), "B": got.authors_params()["B"]["value"]}
    for name, want, tol in [("L0", 2.4, 0.02), ("alpha", 0.43, 0.1), ("B", 0.16, 0.1), ("beta", 12.0, 0.3), ("gamma", 0.64, 0.1)]:
        assert params[name] == pytest.approx(want, rel=tol), name
    assert params["C"] * params["beta"] == pytest.approx(0.12, rel=0.1)  # the drop response's initial rate


@pytest.mark.parametrize("law, truth", [("annealing", [2.5, 30.0, 3e-4, 0.5]), ("multi_power", [2.4, 21.0, 0.43, 0.16, 0.1, 0.6, 0.64])])
def test_bootstrap_gauss_newton_refit_reaches_the_lbfgsb_optimum(law, truth):
    """Bootstrap draws are refitted by Gauss-Newton from the fit: started 2% off, it must land on L-BFGS-B's optimum."""
    from llmkit.scaling.fit import _gauss_newton, _prepare

    law_, curves = LAWS[law], []
    for seed, spec in enumerate(["cosine:peak=3e-4,steps=6000,warmup=300,min=3e-5", "twostage:peak=3e-4,steps=5000,warmup=300,switch=2500,second=9e-5"]):
        lr = parse_schedule(spec)
        steps = np.arange(300, len(lr), 50)
        clean = law_.predict(np.array(truth), law_.features(lr / lr.max(), **law_.defaults), steps)[0]
        curves.append(Curve(spec, lr, steps, clean * np.exp(np.random.default_rng(seed).normal(0, 0.002, len(steps)))))
    fitted = fit(curves, law, n_boot=0)
    _, data, _ = _prepare(curves, law_, fitted.options, None)
    got = _gauss_newton(fitted.theta * 1.02, law_, data, 1e-3, max_iter=30)
    np.testing.assert_allclose(got, fitted.theta, rtol=1e-3)


def test_a_stop_at_the_optimum_is_confirmed_and_a_stop_short_of_it_stays_flagged():
    """L-BFGS-B ends "abnormally" when its line search finds no decrease: at an optimum whose gradient lies below the
    objective's rounding, or short of one. A Gauss-Newton refit from the stop tells which."""
    from llmkit.scaling.fit import _confirm_optimum, _objective, _prepare

    truth = [2.5, 30.0, 2e-5, 0.5]
    curves = [_synthetic(truth, "cosine:peak=3e-4,steps=8000,warmup=200,min=0", 100, 0.002, 0),
              _synthetic(truth, "constant:peak=3e-4,steps=8000,warmup=200", 100, 0.002, 1)]
    fitted = fit(curves, "annealing", n_boot=0)
    assert fitted.converged
    law = LAWS["annealing"]
    _, data, _ = _prepare(curves, law, fitted.options, None)
    theta, value, ok = _confirm_optimum(fitted.theta, fitted.objective, False, law, data, 1e-3)
    assert ok and value == pytest.approx(fitted.objective, rel=1e-12)
    off = fitted.theta * [1.0, 1.05, 1.0, 1.0]
    theta, value, ok = _confirm_optimum(off, _objective(off, law, data, 1e-3)[0], False, law, data, 1e-3)
    assert not ok and value < _objective(off, law, data, 1e-3)[0]  # flagged, and the refit's better point is kept


@pytest.mark.parametrize("law, truth", [("annealing", [2.5, 30.0, 3e-4, 0.5]), ("multi_power", [2.4, 21.0, 0.43, 0.16, 0.1, 0.6, 0.64])])
def test_warm_started_leave_one_curve_out_refits_run_once_and_reach_the_cold_optimum(law, truth, monkeypatch):
    """A refit started from the full fit's theta that converges skips the second (variable-projection) start, and
    lands where a cold fit of the remaining curves from the law's own starts does."""
    from llmkit.scaling import fit as fit_module

    law_, curves = LAWS[law], []
    for seed, spec in enumerate(["cosine:peak=3e-4,steps=6000,warmup=300,min=3e-5", "constant:peak=3e-4,steps=6000,warmup=300",
                                 "twostage:peak=3e-4,steps=5000,warmup=300,switch=2500,second=9e-5"]):
        lr = parse_schedule(spec)
        steps = np.arange(300, len(lr), 50)
        clean = law_.predict(np.array(truth), law_.features(lr / lr.max(), **law_.defaults), steps)[0]
        curves.append(Curve(spec, lr, steps, clean * np.exp(np.random.default_rng(seed).normal(0, 0.002, len(steps)))))
    fitted = fit(curves, law, n_boot=0)
    _, data, _ = fit_module._prepare(curves, law_, fitted.options, None)
    refits, runs = _loco_refits_with_runs(monkeypatch, law_, data, fitted.theta)
    assert [j for j, _, _ in refits] == [0, 1, 2]
    assert len(runs) == 3 and all(ok for _, _, ok in runs)  # one converged start per refit
    for j, theta, _ in refits:
        cold = fit(curves[:j] + curves[j + 1 :], law, n_boot=0)
        rest = data[:j] + data[j + 1 :]
        # the same objective; multi_power's parameters drift along a flat valley (gamma by ~1% here) that barely moves
        # the held-out curve's prediction, which is what the band and the CV error use
        assert fit_module._objective(theta, law_, rest, 1e-3)[0] == pytest.approx(cold.objective, rel=1e-6)
        feats, steps, _ = data[j]
        np.testing.assert_allclose(law_.predict(theta, feats, steps)[0], law_.predict(cold.theta, feats, steps)[0], rtol=1e-4)


def _mpl_split_25m() -> list:
    """The MPL split's three fitted curves (cosine, constant, two-stage) of the 25M model, as logged."""
    from llmkit.scaling.logs import read_log

    specs = {"cosine_24000": "cosine:peak=3e-4,steps=24000,warmup=2160,min=3e-5", "constant_24000": "constant:peak=3e-4,steps=24000,warmup=2160",
             "wsdcon_9": "twostage:peak=3e-4,steps=16000,warmup=2160,switch=8000,second=9e-5"}
    curves = []
    for name, spec in specs.items():
        log = read_log(DATA / "mpl_luo2025" / "csv_25" / f"{name}.csv")
        curves.append(Curve(name, parse_schedule(spec), log.loss.step, log.loss.value))
    return curves


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "mpl_luo2025").is_dir(), reason="shared scaling data not present")
def test_multi_power_fit_of_the_25m_mpl_split_is_not_flagged_as_unconverged():
    got = fit(_mpl_split_25m(), "multi_power", n_boot=0)
    # both starts reach the same optimum (objective equal to 1e-13); one of them stopped on a failed line search
    assert got.converged and not any("convergence" in w for w in got.warnings), got.warnings


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "mpl_luo2025").is_dir(), reason="shared scaling data not present")
def test_multi_power_25m_refit_without_the_constant_curve_converges_at_the_log_limit(monkeypatch):
    """Without the constant curve the 25M data prefer G's log limit: in the authors' parameters L-BFGS-B crept along B*beta
    = const for 15 CPU-s and stopped at beta = 4.5e-4, short of it; now beta ends on its bound 0 from one start, and the
    held-out constant curve is predicted as the log-limit law summed by hand predicts it."""
    from llmkit.scaling import fit as fit_module

    curves, law = _mpl_split_25m(), LAWS["multi_power"]
    got = fit(curves, "multi_power", n_boot=0)
    _, data, _ = fit_module._prepare(curves, law, got.options, None)
    refits, runs = _loco_refits_with_runs(monkeypatch, law, data, got.theta)
    refits = {j: (theta, resid) for j, theta, resid in refits}
    assert len(runs) == 3 and all(ok for _, _, ok in runs)  # one converged start per refit
    theta, resid = refits[1]
    assert theta[law.params.index("beta")] == 0.0, theta
    constant = curves[1]
    pick = np.flatnonzero(data[1][1] >= 0)[[0, 40, -1]]  # three fitted steps of the constant curve
    by_hand = [_loop_mpl(theta, constant.lr / constant.lr.max(), int(t)) for t in data[1][1][pick]]
    np.testing.assert_allclose(np.exp(data[1][2][pick] - resid[pick]), by_hand, rtol=2e-4)


def test_identifiability_warnings_for_one_constant_curve():
    curve = _synthetic([2.5, 30.0, 2e-5, 0.5], "constant:peak=3e-4,steps=5000,warmup=100", 50, 0.002, 2)
    got = fit([curve], "annealing", n_boot=0)
    assert any("one curve" in w for w in got.warnings)
    assert any("C (annealing terms) not identified" in w for w in got.warnings)


@pytest.mark.skipif(not (DATA / "tissue2024_example").is_dir(), reason="shared scaling data not present")
def test_official_example_fits_with_r2_above_0_999():
    rows = list(csv.DictReader((DATA / "tissue2024_example" / "official_example_losses.csv").open()))
    specs = {"cosine": "cosine:peak=2e-4,steps=20000,warmup=500,min=0", "constant": "constant:peak=2e-4,steps=20000,warmup=500"}
    curves = []
    for name, spec in specs.items():
        pts = [(int(r["step"]), float(r["loss"])) for r in rows if r["schedule"] == name]
        curves.append(Curve(name, parse_schedule(spec), np.array([p[0] for p in pts]), np.array([p[1] for p in pts])))
    got = fit(curves, "annealing", n_boot=0)
    assert got.r2 >= 0.999
    p = got.params()
    # the spec's reproduction of the official script (raw-LR units): L0=2.628, A=0.430, C=0.411, alpha=0.550
    assert p["L0"] == pytest.approx(2.628, abs=0.01)
    assert p["alpha"] == pytest.approx(0.550, abs=0.01)
    assert p["A"] * 2e-4 ** p["alpha"] == pytest.approx(0.430, rel=0.03)
    assert p["C"] / 2e-4 == pytest.approx(0.411, rel=0.03)


def _finetune_jsonl(path: Path, steps=200, seed=0):
    """A short noisy fine-tune log: warmup 20 steps then linear decay; loss from ~7 to ~0.1."""
    rng = np.random.default_rng(seed)
    lines = []
    for s in range(1, steps + 1):
        lr = 2e-5 * min(s / 20, (steps - s) / (steps - 20))
        loss = (0.1 + 6.9 * (s / 5 + 1) ** -1.3) * np.exp(rng.normal(0, 0.08))
        lines.append(json.dumps({"step": s, "epoch": s / steps, "lr": lr, "loss": loss, "grad_norm": 1.0, "tokens": 512 * s, "time": 0.1 * s}))
        if s % 50 == 0:
            lines.append(json.dumps({"step": s, "eval_loss": loss * 1.1, "p_forget": 0.5}))
    path.write_text("\n".join(lines) + "\n")


def test_fit_run_on_short_noisy_finetune_curve(tmp_path):
    run = tmp_path / "runs" / "ft"
    run.mkdir(parents=True)
    _finetune_jsonl(run / "metrics.jsonl")
    with pytest.warns(UserWarning, match="one curve"):
        params = fit_run([run], "annealing", holdout_after=120, out_dir=tmp_path / "fit", n_boot=20)
    for name in ("params.json", "pred.json", "pred.csv", "curve.png", "summary.txt"):
        assert (tmp_path / "fit" / name).is_file()
    assert params["target"] == "loss" and params["target_requested"] == "auto" and params["curves"][0]["name"] == "ft"
    pred = json.loads((tmp_path / "fit" / "pred.json").read_text())
    held = pred["curves"][0]["holdout"]
    assert held["n"] == 80 and np.isfinite(held["pred_e"])
    # the annealing gain: the fitted law's final loss with the LR held at its peak after warmup, minus the real one
    fitted, curve = load_fit(tmp_path / "fit"), load_curves([run])[0][0]
    lr_held = curve.lr.copy()
    lr_held[int(np.argmax(curve.lr)):] = curve.lr.max()
    np.testing.assert_array_equal(held_at_peak(curve.lr), lr_held)
    final = np.array([curve.horizon])
    gain = predict(fitted, lr_held, final)[0][0] - predict(fitted, curve.lr, final)[0][0]
    assert pred["curves"][0]["decay_gain_final"] == pytest.approx(gain)
    assert f"LR decay gains {gain:+.4f}" in (tmp_path / "fit" / "summary.txt").read_text()


def test_cli_fit_then_predict_roundtrip(tmp_path, capsys):
    lr = parse_schedule("cosine:peak=3e-4,steps=3000,warmup=100,min=0")
    feats = LAWS["annealing"].features(lr / lr.max())
    loss = LAWS["annealing"].predict(np.array([2.5, 30.0, 2e-4, 0.5]), feats, np.arange(3001))[0]
    rows = ["step,lr,loss"] + [f"{s},{lr[s]:.10g},{loss[s]:.6f}" if s % 50 == 0 and s >= 100 else f"{s},{lr[s]:.10g}," for s in range(3001)]
    (tmp_path / "run.csv").write_text("\n".join(rows) + "\n")
    assert fit_main([str(tmp_path / "run.csv"), "--out", str(tmp_path / "fit"), "--holdout-after", "2000", "--n-boot", "10"]) == 0
    params = json.loads((tmp_path / "fit" / "params.json").read_text())
    assert params["r2"] > 0.9999
    (tmp_path / "lr.csv").write_text("step,lr\n0,0\n100,3e-4\n2000,3e-4\n3000,0\n")
    out = tmp_path / "pred.csv"
    assert predict_main([str(tmp_path / "fit"), "--lr", str(tmp_path / "lr.csv"), "--out", str(out)]) == 0
    table = list(csv.DictReader(out.open()))
    assert list(table[0]) == ["step", "loss", "lo", "hi"] and len(table) == 3000
    assert all(float(r["lo"]) <= float(r["loss"]) <= float(r["hi"]) for r in table)
    assert predict_main([str(tmp_path / "fit"), "--schedule", "cosine:peak=6e-4,steps=10000", "--out", str(out)]) == 0
    assert "differs from the fitted" in capsys.readouterr().err
    with pytest.raises(LlmkitError, match="no such file"):
        predict_main([str(tmp_path / "nofit"), "--schedule", "constant:peak=1,steps=10"])
    specs = ["cosine:peak=3e-4,steps=3000,warmup=100,min=0", "wsd:peak=3e-4,steps=3000,warmup=100,cooldown=0.2,shape=1-sqrt"]
    assert predict_main([str(tmp_path / "fit"), "--schedule", specs[0], "--out", str(out), "--compare", specs[1]]) == 0
    table = json.loads((tmp_path / "pred_compare.json").read_text())
    fitted = load_fit(tmp_path / "fit")
    for row, spec in zip(table, specs):
        lr = parse_schedule(spec)
        assert row["schedule"] == spec and row["final_loss"] == pytest.approx(predict(fitted, lr, np.array([3000]))[0][0])
    assert sum(r["p_best"] for r in table) == pytest.approx(1.0)
    assert (tmp_path / "pred_compare.png").stat().st_size > 0
    bad = tmp_path / "bad.csv"
    with pytest.raises(LlmkitError, match="unknown key 'stps'"):
        predict_main([str(tmp_path / "fit"), "--schedule", specs[0], "--out", str(bad), "--compare", "cosine:peak=3e-4,stps=9"])
    assert not bad.exists()
    with pytest.raises(LlmkitError, match="--sweep-wsd takes its peak"):
        predict_main([str(tmp_path / "fit"), "--lr", str(tmp_path / "lr.csv"), "--sweep-wsd"])
    with pytest.raises(LlmkitError, match="--lam-fast: not used by --law annealing"):
        fit_main([str(tmp_path / "run.csv"), "--lam-fast", "0.98"])


def test_cli_fit_takes_one_schedule_per_log(tmp_path):
    specs = ["cosine:peak=3e-4,steps=3000,warmup=100,min=0", "constant:peak=3e-4,steps=3000,warmup=100"]
    logs = []
    for spec in specs:  # loss only, no LR column: the schedules must come from the command line
        lr = parse_schedule(spec)
        loss = LAWS["annealing"].predict(np.array([2.5, 30.0, 2e-4, 0.5]), LAWS["annealing"].features(lr / lr.max()), np.arange(3001))[0]
        logs.append(tmp_path / f"{spec.split(':')[0]}.csv")
        logs[-1].write_text("step,loss\n" + "".join(f"{s},{loss[s]:.6f}\n" for s in range(100, 3001, 50)))
    args = [str(p) for p in logs] + ["--n-boot", "0"]
    assert fit_main(args + ["--schedule", specs[0], "--schedule", specs[1], "--out", str(tmp_path / "right")]) == 0
    assert fit_main(args + ["--schedule", specs[1], "--schedule", specs[0], "--out", str(tmp_path / "swapped")]) == 0
    r2 = {d: json.loads((tmp_path / d / "params.json").read_text())["r2"] for d in ("right", "swapped")}
    assert r2["right"] > 0.9999 > r2["swapped"]
    with pytest.raises(LlmkitError, match="--schedule given 3 times for 2 logs"):
        fit_main(args + ["--schedule", specs[0]] * 3 + ["--out", str(tmp_path / "refused")])
    assert not (tmp_path / "refused").exists()


def test_short_labels_drop_the_shared_parts():
    specs = ["wsd:peak=3e-4,steps=900,cooldown=0.2,shape=linear", "wsd:peak=3e-4,steps=900,cooldown=0.4,shape=linear",
             "cosine:peak=3e-4,steps=900,min=0"]
    assert short_labels(specs) == ["wsd cooldown=0.2 shape=linear", "wsd cooldown=0.4 shape=linear", "cosine min=0"]
    assert short_labels(["constant:peak=1,steps=5"]) == ["constant peak=1 steps=5"]


def test_wsd_sweep_keeps_the_query_schedule_shared_settings():
    specs = wsd_sweep("cosine:peak=3e-4,steps=900,warmup=50,min=3e-5", cooldowns=(0.1, 0.5), shapes=("linear", "1-sqrt"))
    assert specs == ["wsd:peak=3e-4,steps=900,warmup=50,min=3e-5,cooldown=0.1,shape=linear",
                     "wsd:peak=3e-4,steps=900,warmup=50,min=3e-5,cooldown=0.1,shape=1-sqrt",
                     "wsd:peak=3e-4,steps=900,warmup=50,min=3e-5,cooldown=0.5,shape=linear",
                     "wsd:peak=3e-4,steps=900,warmup=50,min=3e-5,cooldown=0.5,shape=1-sqrt"]
    lr = parse_schedule(specs[2])
    assert lr[449] == pytest.approx(3e-4) and lr[900] == pytest.approx(3e-5) and lr[675] < 3e-4  # cooldown = last 450 steps
    assert short_labels(specs[:2]) == ["wsd shape=linear", "wsd shape=1-sqrt"]


def test_compare_schedules_ranks_by_final_loss():
    curves = [
        _synthetic([2.5, 30.0, 2e-5, 0.5], "cosine:peak=3e-4,steps=20000,warmup=500,min=0", 200, 0.002, 0),
        _synthetic([2.5, 30.0, 2e-5, 0.5], "constant:peak=3e-4,steps=20000,warmup=500", 200, 0.002, 1),
    ]
    got = fit(curves, "annealing", n_boot=20)
    table = compare_schedules(got, {"constant": parse_schedule("constant:peak=3e-4,steps=20000,warmup=500"),
                                    "wsd": parse_schedule("wsd:peak=3e-4,steps=20000,warmup=500,cooldown=0.2,min=0")})
    by = {r["schedule"]: r for r in table}
    truth = {}
    for name, spec in [("constant", "constant:peak=3e-4,steps=20000,warmup=500"), ("wsd", "wsd:peak=3e-4,steps=20000,warmup=500,cooldown=0.2,min=0")]:
        truth[name] = _synthetic([2.5, 30.0, 2e-5, 0.5], spec, 20000, 0.0, 0).loss[0]
        assert by[name]["final_loss"] == pytest.approx(truth[name], abs=0.003)
    assert truth["wsd"] < truth["constant"]
    assert by["wsd"]["final_loss"] < by["constant"]["final_loss"] and by["wsd"]["p_best"] > 0.5
    assert by["wsd"]["p_best"] + by["constant"]["p_best"] == pytest.approx(1.0)
    mid = predict(got, parse_schedule("constant:peak=3e-4,steps=20000,warmup=500"), np.array([20000]))[0]
    assert mid[0] == pytest.approx(by["constant"]["final_loss"])
    # gain over the first schedule, paired per bootstrap draw, by hand
    final = {name: np.array([LAWS["annealing"].predict(b, LAWS["annealing"].features(parse_schedule(spec) / got.lr_peak, **got.options),
                                                         np.array([20000]))[0][0] for b in got.boot])
             for name, spec in [("constant", "constant:peak=3e-4,steps=20000,warmup=500"), ("wsd", "wsd:peak=3e-4,steps=20000,warmup=500,cooldown=0.2,min=0")]}
    gains = final["constant"] - final["wsd"]
    assert by["wsd"]["gain"] == pytest.approx(by["constant"]["final_loss"] - by["wsd"]["final_loss"])
    # Gaussian interval: paired bootstrap variance plus the law's difference error at the mean final loss
    sd = np.sqrt(np.var(gains) + (got.diff * (by["constant"]["final_loss"] + by["wsd"]["final_loss"]) / 2) ** 2)
    assert [by["wsd"]["gain_lo"], by["wsd"]["gain_hi"]] == pytest.approx([by["wsd"]["gain"] - 1.6448536269514722 * sd, by["wsd"]["gain"] + 1.6448536269514722 * sd])
    assert by["wsd"]["p_better"] == pytest.approx(norm.cdf(by["wsd"]["gain"] / sd)) and by["constant"]["gain"] == 0 == by["constant"]["p_better"]


def _annealing_fit(truth=(2.5, 30.0, 2e-5, 0.5)):
    curves = [_synthetic(list(truth), "cosine:peak=3e-4,steps=8000,warmup=200,min=0", 100, 0.002, 0),
              _synthetic(list(truth), "constant:peak=3e-4,steps=8000,warmup=200", 100, 0.002, 1)]
    return fit(curves, "annealing", n_boot=0)


def _final_loss(fitted, lr):
    law = LAWS[fitted.law]
    return law.predict(fitted.theta, law.features(lr / fitted.lr_peak, **fitted.options), np.array([len(lr) - 1]))[0][0]


def test_optimized_schedule_matches_a_brute_force_grid_with_one_knot():
    got = _annealing_fit()
    best = optimize_schedule(got, 3e-4, 8000, warmup=200, floor=3e-5, knots=1)
    # one knot: linear from the peak at the end of warmup to floor + share * (peak - floor) at the last step
    shares = np.linspace(0, 1, 2001)
    grid = [_final_loss(got, parse_schedule(f"linear:peak=3e-4,steps=8000,warmup=200,min={min(3e-5 + u * 2.7e-4, 3e-4):.17g}")) for u in shares]
    assert _final_loss(got, best) <= min(grid) + 1e-9
    assert (best[-1] - 3e-5) / 2.7e-4 == pytest.approx(shares[int(np.argmin(grid))], abs=1e-3)


def test_optimized_schedule_is_monotone_within_bounds_and_beats_the_usual_shapes():
    got = _annealing_fit()
    best = optimize_schedule(got, 3e-4, 8000, warmup=200, floor=3e-5, knots=16)
    np.testing.assert_array_equal(best[:200], parse_schedule("constant:peak=3e-4,steps=8000,warmup=200")[:200])
    after = best[200:]
    assert after[0] == pytest.approx(3e-4) and np.all(np.diff(after) <= 1e-15) and after.min() >= 3e-5 - 1e-15
    usual = ["cosine:peak=3e-4,steps=8000,warmup=200,min=3e-5", "linear:peak=3e-4,steps=8000,warmup=200,min=3e-5"]
    usual += wsd_sweep(usual[0])
    assert _final_loss(got, best) < min(_final_loss(got, parse_schedule(spec)) for spec in usual)
    with pytest.raises(LlmkitError, match="needs 0 <= min < peak"):
        optimize_schedule(got, 3e-4, 8000, floor=3e-4)


def test_cli_optimize_writes_a_reusable_schedule(tmp_path, capsys):
    spec = "cosine:peak=3e-4,steps=8000,warmup=200,min=3e-5"
    fitted = _annealing_fit()
    fitted.boot = np.repeat(fitted.theta[None], 3, axis=0)
    write_json(tmp_path / "fit" / "params.json", fitted.to_json())
    assert predict_main([str(tmp_path / "fit"), "--schedule", spec, "--optimize", "--knots", "8", "--out", str(tmp_path / "p.csv")]) == 0
    assert "optimized (8 knots)" in capsys.readouterr().out
    table = {r["schedule"]: r for r in json.loads((tmp_path / "p_compare.json").read_text())}
    optimized_lr = read_lr_csv(tmp_path / "p_optimized_lr.csv")
    assert len(optimized_lr) == 8001 and table["optimized (8 knots)"]["final_loss"] == pytest.approx(_final_loss(fitted, optimized_lr), rel=1e-6)
    assert table["optimized (8 knots)"]["gain"] > 0 and table["optimized (8 knots)"]["verdict"] == "better"
    with pytest.raises(LlmkitError, match="at least 1 knot"):
        predict_main([str(tmp_path / "fit"), "--schedule", spec, "--optimize", "--knots", "0", "--out", str(tmp_path / "p.csv")])
    with pytest.raises(LlmkitError, match="--optimize takes its peak"):
        predict_main([str(tmp_path / "fit"), "--lr", str(tmp_path / "p_optimized_lr.csv"), "--optimize"])


def test_band_is_bootstrap_plus_residual_plus_jackknife_and_widens_with_horizon():
    truth = [2.5, 30.0, 2e-5, 0.5]
    curves = [
        _synthetic(truth, "cosine:peak=3e-4,steps=8000,warmup=200,min=0", 100, 0.003, 0),
        _synthetic(truth, "constant:peak=3e-4,steps=8000,warmup=200", 100, 0.003, 1),
        _synthetic(truth, "twostage:peak=3e-4,steps=8000,warmup=200,switch=4000,second=1e-4", 100, 0.003, 2),
    ]
    got = fit(curves, "annealing", n_boot=20)
    assert got.loco.shape == (3, 4)
    got.jackknife = 0.5  # the calibrated factor may be 0: any other value shows the jackknife's share
    lr = parse_schedule("constant:peak=3e-4,steps=24000,warmup=200")
    steps = np.array([8000, 24000])
    mid, lo, hi = predict(got, lr, steps)
    # the same band by hand: z_0.95 * sqrt(bootstrap var + in-sample residual var at the step + misspecification^2
    # + factor * jackknife var + (extrapolation error * ln(step / 8000))^2), in log loss
    feats = LAWS["annealing"].features(lr / lr.max(), **got.options)
    logp = lambda t: np.log(LAWS["annealing"].predict(t, feats, steps)[0])  # noqa: E731
    boot_var = np.var([logp(b) for b in got.boot], axis=0)
    jack = np.array([logp(t) for t in got.loco])
    jack_var = 2 / 3 * ((jack - jack.mean(axis=0)) ** 2).sum(axis=0)
    half = 1.6448536269514722 * np.sqrt(boot_var + np.interp(steps, *got.noise) + got.misspec**2 + 0.5 * jack_var
                                        + (got.extrap * np.log(steps / 8000)) ** 2)
    np.testing.assert_allclose(np.log(hi / mid), half, rtol=1e-9)
    np.testing.assert_allclose(np.log(mid / lo), half, rtol=1e-9)
    assert half[1] > half[0]  # 3x the fitted horizon: wider than at the horizon
    again = type(got).from_json(json.loads(json.dumps(got.to_json())))
    np.testing.assert_allclose(predict(again, lr, steps)[2], hi)


def test_band_grows_with_the_log_extrapolation_past_the_last_fitted_step():
    fitted = _annealing_fit()  # cosine + constant, fitted up to step 8000
    fitted.boot = np.repeat(fitted.theta[None], 4, axis=0)  # no parameter spread
    fitted.noise = (np.array([0, 100_000]), np.array([1e-6, 1e-6]))  # in-sample residual variance 1e-6 at every step
    fitted.misspec, fitted.jackknife, fitted.distance = 0.001, 1.0, 0.0
    fitted.extrap, fitted.extrap_single = 0.004, 0.03
    lr = parse_schedule("cosine:peak=3e-4,steps=24000,warmup=200,min=0")
    steps = np.array([4000, 8000, 16000, 24000])
    # with a jackknife (three refits equal to the fit: no spread): 1e-6 + 0.001^2 + (0.004 * ln(step / 8000))^2
    # past step 8000, i.e. 2e-6, 2e-6, 2e-6 + (0.004 ln 2)^2 = 9.68725e-6, 2e-6 + (0.004 ln 3)^2 = 2.131118e-5
    fitted.loco = np.repeat(fitted.theta[None], 3, axis=0)
    mid, lo, hi = predict(fitted, lr, steps)
    np.testing.assert_allclose((np.log(hi / mid) / 1.6448536269514722) ** 2, [2e-6, 2e-6, 9.68725e-6, 2.131118e-5], rtol=1e-5)
    # without one (no trusted refit): the single-fit share, 2e-6 + (0.03 ln 2)^2 = 4.34408e-4, 2e-6 + (0.03 ln 3)^2 = 1.088254e-3
    fitted.loco = np.zeros((0, 4))
    mid, lo, hi = predict(fitted, lr, steps)
    np.testing.assert_allclose((np.log(mid / lo) / 1.6448536269514722) ** 2, [2e-6, 2e-6, 4.34408e-4, 1.088254e-3], rtol=1e-5)
    again = type(fitted).from_json(json.loads(json.dumps(fitted.to_json())))
    np.testing.assert_allclose(predict(again, lr, steps)[2], hi)


def test_no_band_where_the_law_predicts_a_loss_at_or_below_zero():
    truth = [2.5, 30.0, 2e-5, 0.5]
    curves = [_synthetic(truth, "cosine:peak=3e-4,steps=8000,warmup=200,min=0", 100, 0.003, 0),
              _synthetic(truth, "constant:peak=3e-4,steps=8000,warmup=200", 100, 0.003, 1)]
    got = fit(curves, "annealing", n_boot=10)
    # S2 grows with the peak: C*S2 ends at 0.013 on the fitted cosine and at 4.4 with a 333x peak, past L0 = 2.5
    lr = parse_schedule("cosine:peak=1e-1,steps=8000,warmup=200,min=0")
    steps = np.array([1000, 7999])
    with pytest.warns(UserWarning, match="predicts a loss <= 0"):
        mid, lo, hi = predict(got, lr, steps)
    assert mid[0] > 0 and np.isfinite([lo[0], hi[0]]).all() and lo[0] < mid[0] < hi[0]
    assert mid[1] <= 0 and np.isnan([lo[1], hi[1]]).all()


@pytest.mark.parametrize("law, options, why", [
    ("annealing", {"lam": 1.0}, r"lam=1: the S2 momentum must lie in \[0, 1\)"),
    ("annealing", {"lam": -0.1}, "lam=-0.1"),
    ("annealing_2scale", {"lam_fast": 0.9995}, r"lam_fast=0.9995 must lie in \[0, lam=0.999\)"),
    ("multi_power", {"bin_steps": 0}, "bin_steps=0"),
])
def test_fit_rejects_options_outside_their_range(law, options, why):
    curve = _synthetic([2.5, 30.0, 2e-5, 0.5], "cosine:peak=3e-4,steps=2000,warmup=100,min=0", 100, 0.0, 0)
    with pytest.raises(LlmkitError, match=why):
        fit([curve], law, options, n_boot=0)
    with pytest.raises(LlmkitError, match="n_boot=-1"):
        fit([curve], "annealing", n_boot=-1)


def test_fit_out_naming_a_file_is_a_one_line_error_and_keeps_the_file(tmp_path):
    curve = _synthetic([2.5, 30.0, 2e-5, 0.5], "cosine:peak=3e-4,steps=2000,warmup=100,min=0", 100, 0.0, 0)
    (tmp_path / "run.csv").write_text("step,lr,loss\n" + "".join(f"{s},{curve.lr[s]:.8g},{v:.6f}\n" for s, v in zip(curve.step, curve.loss)))
    target = tmp_path / "taken"
    target.write_text("precious")
    with pytest.raises(LlmkitError, match=r"--out .*taken: is a file, not a directory"):
        fit_main([str(tmp_path / "run.csv"), "--out", str(target), "--n-boot", "0", "--schedule", "cosine:peak=3e-4,steps=2000,warmup=100,min=0"])
    assert target.read_text() == "precious"


def test_predict_out_naming_a_directory_is_a_one_line_error_and_leaves_nothing(tmp_path):
    fitted = _annealing_fit()
    write_json(tmp_path / "fit" / "params.json", fitted.to_json())
    (tmp_path / "out").mkdir()
    with pytest.raises(LlmkitError, match=r"--out .*out: is a directory"):
        predict_main([str(tmp_path / "fit"), "--schedule", "cosine:peak=3e-4,steps=8000,warmup=200", "--out", str(tmp_path / "out")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit", "out"] and not any((tmp_path / "out").iterdir())


def test_compare_gains_carry_the_law_error_on_schedule_differences():
    fitted = _annealing_fit()
    fitted.boot = np.repeat(fitted.theta[None], 5, axis=0)  # no parameter spread at all
    fitted.diff = 0.003
    specs = {"cosine": "cosine:peak=3e-4,steps=8000,warmup=200,min=0", "linear": "linear:peak=3e-4,steps=8000,warmup=200,min=0",
             "wsd": "wsd:peak=3e-4,steps=8000,warmup=200,cooldown=0.25,min=0", "constant": "constant:peak=3e-4,steps=8000,warmup=200"}
    table = {r["schedule"]: r for r in compare_schedules(fitted, {k: parse_schedule(v) for k, v in specs.items()})}
    final = {k: _final_loss(fitted, parse_schedule(v)) for k, v in specs.items()}
    for name in ("linear", "wsd", "constant"):
        gain, sd = final["cosine"] - final[name], 0.003 * (final["cosine"] + final[name]) / 2
        assert table[name]["gain"] == pytest.approx(gain)
        assert table[name]["p_better"] == pytest.approx(norm.cdf(gain / sd))
        assert table[name]["gain_hi"] - table[name]["gain_lo"] == pytest.approx(2 * 1.6448536269514722 * sd)
    # cosine and linear decay differ by less than the law's error: no verdict, no certainty (the bootstrap alone said 0 or 1)
    assert abs(final["cosine"] - final["linear"]) < 0.003 * final["linear"]
    assert table["linear"]["verdict"] == "indistinguishable" and 0.05 < table["linear"]["p_better"] < 0.95
    # this fit's annealing term is tiny, so holding the peak wins by 0.118 and the 25% WSD by 0.104: clear verdicts
    assert table["wsd"]["verdict"] == "better" == table["constant"]["verdict"] and table["cosine"]["verdict"] == "query"
    assert table["constant"]["p_best"] + table["wsd"]["p_best"] > 0.99 and table["constant"]["p_best"] > table["wsd"]["p_best"]
    pair = compare_schedules(fitted, {k: parse_schedule(specs[k]) for k in ("cosine", "linear")})
    assert all(0.2 < r["p_best"] < 0.8 for r in pair)


def test_an_unidentified_refit_never_enters_a_band():
    truth = [2.5, 30.0, 2e-5, 0.5]
    cosine = _synthetic(truth, "cosine:peak=3e-4,steps=8000,warmup=200,min=0", 100, 0.003, 0)
    constant = _synthetic(truth, "constant:peak=3e-4,steps=8000,warmup=200", 100, 0.003, 1)
    got = fit([cosine, constant], "annealing", n_boot=10)
    # leaving out the cosine leaves a constant LR: C unidentified, so only the refit on the cosine remains
    assert got.loco.shape == (1, 4)
    alone = fit([cosine], "annealing", n_boot=0)
    np.testing.assert_allclose(got.loco[0], alone.theta, rtol=1e-3)
    # one refit is no jackknife: the band is bootstrap + noise at that step + misspecification + distance share, by hand
    lr = parse_schedule("wsd:peak=3e-4,steps=8000,warmup=200,cooldown=0.2,min=0")
    steps = np.array([3000, 7000, 8000])
    mid, lo, hi = predict(got, lr, steps)
    feats = LAWS["annealing"].features(lr / lr.max(), **got.options)
    boot_var = np.var([np.log(LAWS["annealing"].predict(b, feats, steps)[0]) for b in got.boot], axis=0)
    nearest = np.min([np.abs(np.log(mid) - np.interp(steps, a_step, a_log)) for a_step, a_log in got.anchors], axis=0)
    var = boot_var + np.interp(steps, *got.noise) + got.misspec**2 + (got.distance * nearest) ** 2
    np.testing.assert_allclose(np.log(hi / mid), 1.6448536269514722 * np.sqrt(var), rtol=1e-9)


def test_no_band_is_infinite_refits_and_draws_with_a_loss_at_or_below_zero_are_dropped():
    fitted = _annealing_fit()
    good = [fitted.theta * [1, 1, 1.05, 1], fitted.theta * [1, 1, 0.95, 1], fitted.theta * [1.001, 1, 1, 1]]
    bad = fitted.theta * [1, 1, 1, 1] - [3.0, 0, 0, 0]  # L0 < 0: this refit predicts a loss <= 0 late in the run
    lr = parse_schedule("cosine:peak=3e-4,steps=8000,warmup=200,min=0")
    steps = np.array([1000, 8000])
    assert _final_loss(type(fitted)(**{**fitted.__dict__, "theta": bad}), lr) <= 0
    fitted.boot, fitted.loco = np.array(good + [bad]), np.array(good + [bad])
    with_bad = predict(fitted, lr, steps)
    fitted.boot, fitted.loco = np.array(good), np.array(good)
    without = predict(fitted, lr, steps)
    assert np.all(np.isfinite(with_bad)) and np.all(with_bad[2] < 1.1 * with_bad[0])
    np.testing.assert_allclose(with_bad, without, rtol=1e-12)


def test_one_curve_band_widens_with_distance_from_the_fitted_schedule():
    truth = [2.5, 30.0, 2e-5, 0.5]
    got = fit([_synthetic(truth, "cosine:peak=3e-4,steps=8000,warmup=200,min=0", 100, 0.003, 0)], "annealing", n_boot=20)
    half = lambda spec, steps: np.log(predict(got, parse_schedule(spec), np.array(steps))[2]) - np.log(predict(got, parse_schedule(spec), np.array(steps))[0])  # noqa: E731
    same = half("cosine:peak=3e-4,steps=8000,warmup=200,min=0", [6000, 8000])
    other = half("wsd:peak=3e-4,steps=8000,warmup=200,cooldown=0.2,min=0", [6000, 8000])
    held = half("constant:peak=3e-4,steps=8000,warmup=200", [6000, 8000])
    longer = half("cosine:peak=3e-4,steps=24000,warmup=200,min=0", [8000, 24000])
    assert np.all(other > 1.5 * same) and np.all(held > 1.5 * same)  # another schedule: wider
    assert longer[1] > 2 * same[1]  # 3x the fitted horizon
    # ... but its width is set on other model sizes, where one-curve errors differ by up to 4x: the fit says so
    assert any("band is not calibrated" in warning for warning in got.warnings)


def _curve_csv(path: Path, spec: str, with_lr: bool = True) -> Curve:
    curve = _synthetic([2.5, 30.0, 2e-5, 0.5], spec, 50, 0.001, 0)
    rows = [f"{s},{curve.lr[s]:.8g},{v:.6f}" if with_lr else f"{s},{v:.6f}" for s, v in zip(curve.step, curve.loss)]
    path.write_text(("step,lr,loss\n" if with_lr else "step,loss\n") + "\n".join(rows) + "\n")
    return curve


def test_an_lr_csv_is_accepted_wherever_a_schedule_spec_is(tmp_path):
    spec = "cosine:peak=3e-4,steps=3000,warmup=100,min=0"
    _curve_csv(tmp_path / "run.csv", spec, with_lr=False)
    lr = parse_schedule(spec)
    (tmp_path / "cosine_lr.csv").write_text("step,lr\n" + "".join(f"{s},{v:.10g}\n" for s, v in enumerate(lr)))
    by_spec, _ = load_curves([tmp_path / "run.csv"], schedules=[spec])
    by_csv, _ = load_curves([tmp_path / "run.csv"], schedules=[str(tmp_path / "cosine_lr.csv")])
    np.testing.assert_allclose(by_csv[0].lr, by_spec[0].lr, rtol=1e-9)
    assert fit_main([str(tmp_path / "run.csv"), "--schedule", str(tmp_path / "cosine_lr.csv"), "--n-boot", "0", "--out", str(tmp_path / "fit")]) == 0
    out = tmp_path / "p.csv"
    assert predict_main([str(tmp_path / "fit"), "--schedule", str(tmp_path / "cosine_lr.csv"), "--out", str(out), "--compare", spec]) == 0
    table = json.loads((tmp_path / "p_compare.json").read_text())
    assert table[0]["final_loss"] == pytest.approx(table[1]["final_loss"], rel=1e-9)


def test_fit_target_is_resolved_printed_and_stored(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    lr = parse_schedule("cosine:peak=3e-4,steps=400,warmup=20,min=0")
    lines = [json.dumps({"step": s, "loss": 3 - s / 400, "learning_rate": lr[s]}) for s in range(1, 401)]
    lines += [json.dumps({"step": s, "eval_loss": 3.1 - s / 400}) for s in range(20, 401, 20)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert fit_main([str(run), "--n-boot", "0", "--out", str(tmp_path / "fit")]) == 0
    params = json.loads((tmp_path / "fit" / "params.json").read_text())
    assert params["target"] == "eval_loss" and params["target_requested"] == "auto"
    assert "points of eval_loss" in capsys.readouterr().out


def test_a_parameter_on_its_zero_bound_is_flagged():
    truth = [2.5, 30.0, 2e-5, 0.5]  # the single-momentum law: no fast component at all
    curves = [_synthetic(truth, "cosine:peak=3e-4,steps=8000,warmup=200,min=0", 100, 0.0, 0),
              _synthetic(truth, "constant:peak=3e-4,steps=8000,warmup=200", 100, 0.0, 1)]
    got = fit(curves, "annealing_2scale", {"warmup": "as_peak"}, n_boot=0)
    assert got.params()["C_fast"] == 0.0
    assert any(w.startswith("C_fast = 0 sits on its bound") for w in got.warnings)


def test_summary_reports_the_fit_error_in_percent_of_loss():
    curves = [_synthetic([2.5, 30.0, 2e-5, 0.5], "cosine:peak=3e-4,steps=8000,warmup=200,min=0", 100, 0.002, 0)]
    got = fit(curves, "annealing", n_boot=0)
    rel = np.abs(predict(got, curves[0].lr, curves[0].step)[0] / curves[0].loss - 1)
    keep = curves[0].step >= 400  # the end of warmup (200) or 5% of the 8000 steps, whichever is later
    text = summary(got, [])
    assert f"fit error {100 * rel[keep].mean():.3f}% of loss (mean), {100 * rel[keep].max():.3f}% (max)" in text.splitlines()[0]


def test_law_auto_picks_the_lowest_leave_one_curve_out_error_and_falls_back_to_annealing(tmp_path, capsys):
    from llmkit.scaling.fit import AUTO_LAWS, choose_law

    truth = [2.5, 30.0, 2e-5, 0.5]
    specs = ["cosine:peak=3e-4,steps=8000,warmup=200,min=0", "constant:peak=3e-4,steps=8000,warmup=200",
             "twostage:peak=3e-4,steps=8000,warmup=200,switch=4000,second=1e-4"]
    curves = [_synthetic(truth, spec, 100, 0.002, i) for i, spec in enumerate(specs)]
    law, cv, line = choose_law(curves)
    # by hand: refit without each curve whose rest still anneals (all three here), error on the held-out curve
    for name in AUTO_LAWS:
        errs = []
        for j in range(3):
            rest = fit(curves[:j] + curves[j + 1:], name, n_boot=0)
            keep = curves[j].step >= 400
            errs.append(np.abs(predict(rest, curves[j].lr, curves[j].step[keep])[0] / curves[j].loss[keep] - 1))
        assert cv[name] == pytest.approx(np.mean(np.concatenate(errs)), rel=0.05)
    assert law == min(cv, key=cv.get) and law != "power" and f"{law} {100 * cv[law]:.3f}%" in line
    # two curves, one constant: leaving out the cosine leaves nothing that anneals, leaving out the constant is fine
    assert choose_law(curves[:2])[1]["annealing"] is not None
    law, cv, line = choose_law([curves[0]])
    assert law == "annealing" and all(v is None for v in cv.values()) and "no identifiable" in line
    for i, c in enumerate(curves):
        (tmp_path / f"c{i}.csv").write_text("step,lr,loss\n" + "".join(f"{s},{c.lr[s]:.10g},{v:.6f}\n" for s, v in zip(c.step, c.loss)))
    assert fit_main([str(tmp_path / f"c{i}.csv") for i in range(3)] + ["--law", "auto", "--n-boot", "0", "--out", str(tmp_path / "fit")]) == 0
    params = json.loads((tmp_path / "fit" / "params.json").read_text())
    assert params["law"] == params["law_choice"]["law"] and "law auto:" in capsys.readouterr().out


def test_a_log_without_warmup_is_fitted_after_its_initial_transient(tmp_path, capsys):
    truth = [2.5, 30.0, 2e-5, 0.5]
    curve = _synthetic(truth, "cosine:peak=3e-4,steps=4000,min=0", 10, 0.001, 0)
    loss = curve.loss + 8.0 * np.exp(-curve.step / 40.0)  # loss ~10 at step 10, settled by step ~300
    (tmp_path / "run.csv").write_text("step,lr,loss\n" + "".join(f"{s},{curve.lr[s]:.10g},{v:.6f}\n" for s, v in zip(curve.step, loss)))
    assert fit_main([str(tmp_path / "run.csv"), "--n-boot", "0", "--out", str(tmp_path / "fit")]) == 0
    params = json.loads((tmp_path / "fit" / "params.json").read_text())
    assert params["fit_start"] == {"run": 200} and params["n_points"] == len(curve.step[curve.step >= 200])
    assert "fitted from step 200" in capsys.readouterr().out
    assert params["params"]["L0"] == pytest.approx(2.5, rel=0.02)
    assert fit_main([str(tmp_path / "run.csv"), "--n-boot", "0", "--min-step", "1", "--out", str(tmp_path / "all")]) == 0
    assert json.loads((tmp_path / "all" / "params.json").read_text())["n_points"] == len(curve.step)
