"""Fit a law to one or more loss curves, with bootstrap intervals, and predict any schedule.

Objective: sum (not mean: a mean stops L-BFGS-B early) of Huber(log L_obs - log L_pred, delta)
over all points of all curves, divided by delta^2 so the tolerances see O(1) numbers. L-BFGS-B with
analytic gradients starts from the best points of a variable-projection scan (non-negative least
squares for the linear parameters at each alpha on a grid), so the result is deterministic.
"""

from __future__ import annotations

import json
import math
import warnings as pywarnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize, nnls
from scipy.stats import norm

from llmkit.errors import LlmkitError, did_you_mean
from llmkit.io import atomic_write_text, write_json
from llmkit.scaling.calibration import DIFF, DISTANCE, EXTRAP, EXTRAP_SINGLE, JACKKNIFE, MISSPEC
from llmkit.scaling.laws import LAWS, warmup_end


@dataclass
class Curve:
    """One training run: absolute LR at every step 0..horizon, and the observed (step, loss) points."""

    name: str
    lr: np.ndarray
    step: np.ndarray
    loss: np.ndarray
    target: str = "loss"  # which logged series `loss` holds: the train loss or eval_loss

    @property
    def horizon(self) -> int:
        return len(self.lr) - 1


@dataclass
class Fit:
    """A fitted law: parameters, bootstrap draws, and what the fit saw (for out-of-support warnings)."""

    law: str
    options: dict
    theta: np.ndarray
    boot: np.ndarray  # [n_boot, n_params]
    resid: np.ndarray  # in-sample log residuals (fits written before the residual profile kept LOCO residuals here)
    loco: np.ndarray  # [n_refits, n_params] identifiable refits without one curve each, with a loss > 0: the jackknife
    lr_peak: float
    horizon: int
    objective: float
    converged: bool
    r2: float
    n_points: int
    warnings: list[str] = field(default_factory=list)
    # the fitted curves' own log-loss predictions on a step grid up to each horizon: the distance term's anchors
    anchors: list = field(default_factory=list)
    # (steps, variance): the in-sample squared log residual as it varies with the step (see `_residual_profile`)
    noise: tuple = ()
    rel_error: list = field(default_factory=list)  # in-sample |fit/data - 1|: [mean, max]
    cv_error: float | None = None  # mean |prediction/data - 1| of the identifiable leave-one-curve-out refits
    # the band's fixed error terms (llmkit.scaling.calibration), stored so a fit keeps the band it was made with
    misspec: float = 0.0
    jackknife: float = 1.0
    distance: float = 0.0
    diff: float = 0.0
    extrap: float = 0.0  # log-loss error per unit of ln(step / last fitted step) past it, with a jackknife
    extrap_single: float = 0.0  # the same without one (e.g. one curve)

    def params(self) -> dict:
        """Parameter name -> value."""
        return dict(zip(LAWS[self.law].params, map(float, self.theta)))

    def intervals(self, level: float = 0.9) -> dict:
        """Parameter name -> [lo, hi] bootstrap percentile interval."""
        if len(self.boot) == 0:
            return {}
        q = np.quantile(self.boot, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return {name: [float(q[0, j]), float(q[1, j])] for j, name in enumerate(LAWS[self.law].params)}

    def authors_params(self, level: float = 0.9) -> dict:
        """The parameters the law's authors report where llmkit fits others (multi_power's B = Bbeta/beta):
        name -> {"value", "interval_90"}; the interval only where every bootstrap draw has the parameter."""
        form = LAWS[self.law].authors_form
        if form is None:
            return {}
        draws = [form(b) for b in self.boot]
        out = {}
        for name, value in form(self.theta).items():
            values = [d[name] for d in draws if name in d]
            ok = len(values) == len(draws) > 0
            q = np.quantile(values, [(1 - level) / 2, (1 + level) / 2]).tolist() if ok else None
            out[name] = {"value": value, "interval_90": q}
        return out

    def to_json(self) -> dict:
        """Everything `predict` needs, as plain JSON."""
        return {
            "law": self.law,
            "options": self.options,
            "params": self.params(),
            "intervals_90": self.intervals(),
            "authors_params": self.authors_params(),
            "lr_peak": self.lr_peak,
            "horizon": self.horizon,
            "objective": self.objective,
            "converged": self.converged,
            "r2": self.r2,
            "n_points": self.n_points,
            "warnings": self.warnings,
            "bootstrap": self.boot.tolist(),
            "residuals": self.resid.tolist(),
            "leave_one_curve_out": self.loco.tolist(),
            "anchors": [{"step": s.tolist(), "log_loss": v.tolist()} for s, v in self.anchors],
            "residual_profile": {"step": self.noise[0].tolist(), "var": self.noise[1].tolist()} if len(self.noise) else None,
            "fit_error": self.rel_error,
            "cv_error": self.cv_error,
            "band_terms": {"misspec": self.misspec, "jackknife": self.jackknife, "distance": self.distance, "diff": self.diff,
                           "extrap": self.extrap, "extrap_single": self.extrap_single},
        }

    @classmethod
    def from_json(cls, doc: dict, source: str = "params.json") -> "Fit":
        """Inverse of to_json."""
        try:
            law = get_law(doc["law"])
            params, boot = doc["params"], np.array(doc["bootstrap"], dtype=np.float64).reshape(-1, len(law.params))
            # fits written before the jackknife band have no refits: their band is bootstrap + residuals only
            loco = np.array(doc.get("leave_one_curve_out", []), dtype=np.float64).reshape(-1, len(law.params))
            if law.name == "multi_power" and "Bbeta" not in params:  # written before Bbeta: the authors' B, in its slot
                params = {**params, "Bbeta": params["B"] * params["beta"]}
                for rows in (boot, loco):
                    rows[:, law.params.index("Bbeta")] *= rows[:, law.params.index("beta")]
            return cls(
                law=law_name(doc["law"]), options=doc["options"], theta=np.array([params[p] for p in law.params]),
                boot=boot, resid=np.array(doc["residuals"], dtype=np.float64), loco=loco,
                lr_peak=float(doc["lr_peak"]), horizon=int(doc["horizon"]),
                objective=float(doc["objective"]), converged=bool(doc["converged"]), r2=float(doc["r2"]),
                n_points=int(doc["n_points"]), warnings=list(doc["warnings"]),
                anchors=[(np.array(a["step"], dtype=np.int64), np.array(a["log_loss"], dtype=np.float64)) for a in doc.get("anchors", [])],
                rel_error=list(doc.get("fit_error", [])), cv_error=doc.get("cv_error"),
                noise=(np.array(doc["residual_profile"]["step"], dtype=np.int64), np.array(doc["residual_profile"]["var"]))
                if doc.get("residual_profile") else (),
                **{k: float(v) for k, v in doc.get("band_terms", {}).items()},
            )
        except KeyError as err:
            raise LlmkitError(f"{source}: missing field {err.args[0]!r}") from None


def law_name(name: str) -> str:
    """Validated law name (did-you-mean on a typo)."""
    if name not in LAWS:
        raise LlmkitError(f"unknown law {name!r}" + (did_you_mean(name, LAWS) or f"; choose from {sorted(LAWS)}"))
    return name


def get_law(name: str):
    """LAWS[name] with a did-you-mean on a typo."""
    return LAWS[law_name(name)]


def _huber(r: np.ndarray, delta: float):
    """Huber value and derivative, both divided by delta^2."""
    a = np.abs(r)
    value = np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta)) / delta**2
    return value, np.clip(r, -delta, delta) / delta**2


def _objective(theta, law, data, delta):
    """Sum of Huber on log loss over all curves, and its gradient."""
    total, grad = 0.0, np.zeros(len(theta))
    for feats, steps, logy in data:
        pred, jac = law.predict(theta, feats, steps)
        if not np.all(pred > 0) or not np.all(np.isfinite(jac)):
            return 1e30, np.zeros(len(theta))
        value, psi = _huber(logy - np.log(pred), delta)
        total += value.sum()
        grad -= (psi / pred) @ jac
    return float(total), grad


def _lbfgsb(theta0, law, data, delta, maxiter=2000):
    """L-BFGS-B in coordinates scaled by the start point, so every parameter moves on an O(1) scale."""
    scale = np.maximum(np.abs(theta0), 1e-3)
    lo = np.array([b[0] for b in law.bounds]) / scale
    hi = np.array([b[1] for b in law.bounds]) / scale

    def f(z):
        value, grad = _objective(z * scale, law, data, delta)
        return value, grad * scale

    z0 = np.clip(theta0 / scale, lo, hi)
    with np.errstate(all="ignore"):
        res = minimize(f, z0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                       options={"maxiter": maxiter, "ftol": 1e-13, "gtol": 1e-8, "maxcor": 20})
    return res.x * scale, float(res.fun), bool(res.success)


def _confirm_optimum(theta, value, ok, law, data, delta):
    """(theta, value, converged) after a Gauss-Newton refit from an L-BFGS-B stop that did not report convergence.

    L-BFGS-B also stops when its line search finds no decrease. On ill-conditioned fits (multi_power on the 25M MPL
    split: L0, A and alpha trade off) that happens at the optimum, where the gradient left is below what the
    objective's rounding resolves (another start reached the same point to 1e-13 and reported convergence); it also
    happens short of an optimum. Gauss-Newton, which solves the ill-conditioned step directly, tells them apart: if it
    cannot lower the objective by more than a relative 1e-9 the stop was the optimum; otherwise its point is kept and
    the fit stays flagged."""
    if ok:
        return theta, value, ok
    polished = _gauss_newton(theta, law, data, delta, max_iter=20)
    polished_value = _objective(polished, law, data, delta)[0]
    if value - polished_value <= 1e-9 * max(abs(value), 1.0):
        return theta, value, True
    return polished, polished_value, False


ALPHA_GRID = np.concatenate([np.linspace(0.02, 1.0, 25), np.linspace(1.1, 2.5, 8)])
# non-linear parameters of the multi-power law that variable projection cannot solve: (C, beta, gamma) seeds in
# peak-normalised units: the authors' start (C = 1, beta = gamma = 0.5 at their raw peak LR 3e-4, i.e. C = 3e-4^0.5
# here) and the region of their fitted values (C = 2.0-2.1 raw, i.e. ~0.1 here, beta ~0.6, gamma ~0.64)
MPL_SEEDS = [(3e-4**0.5, 0.5, 0.5), (0.1, 0.6, 0.6)]


def _starts(law, data, delta, n_starts):
    """Variable projection: for each alpha, NNLS (weighted by 1/loss, i.e. relative error) for the linear parameters."""
    candidates = []
    for alpha in ALPHA_GRID:
        rows = [law.linear_design(alpha, feats, steps) for feats, steps, _ in data]
        slots = rows[0][1]
        y = np.concatenate([np.exp(logy) for _, _, logy in data])
        X = np.concatenate([r[0] for r in rows])
        w = 1.0 / y
        with np.errstate(all="ignore"):
            if not np.all(np.isfinite(X)):
                continue
            coef, _ = nnls(X * w[:, None], y * w)
        extra = MPL_SEEDS if law.name == "multi_power" else [()]
        for seed in extra:
            theta = np.zeros(len(law.params))
            theta[list(slots)] = coef
            theta[law.params.index("alpha")] = alpha
            for name, value in zip(("C", "beta", "gamma"), seed):
                theta[law.params.index(name)] = value
            if seed:  # the design's coefficient is the authors' B: Bbeta = B * beta
                theta[law.params.index("Bbeta")] *= theta[law.params.index("beta")]
            candidates.append((_objective(theta, law, data, delta)[0], tuple(theta)))
    candidates.sort(key=lambda c: c[0])
    picked: list[np.ndarray] = []
    for _, theta in candidates:  # best distinct alphas
        theta = np.array(theta)
        if all(abs(theta[law.params.index("alpha")] - p[law.params.index("alpha")]) > 0.05 for p in picked):
            picked.append(theta)
        if len(picked) == n_starts:
            break
    return picked


def fit_start(curve: Curve, min_step: int | None = None) -> int:
    """The first fitted step: `min_step` if given, else the end of warmup or 5% of the run, whichever is later. The
    first few % of a run are a transient (loss 10 -> 4) that no schedule law describes; the official procedure fits
    from step 1000 of 20000, and a log without warmup would otherwise be fitted from step 1."""
    if min_step is not None:
        return max(min_step, 1)
    return max(warmup_end(curve.lr), math.ceil(0.05 * curve.horizon), 1)


def _prepare(curves, law, options, min_step, max_step=None):
    """Per curve: law features on the peak-normalised LR, and the (step, log loss) points inside the fit window."""
    peak = max(float(c.lr.max()) for c in curves)
    data, kept = [], []
    for c in curves:
        feats = law.features(c.lr / peak, **options)
        keep = (c.step >= fit_start(c, min_step)) & (c.step <= c.horizon) & np.isfinite(c.loss) & (c.loss > 0)
        if max_step is not None:
            keep &= c.step <= max_step
        data.append((feats, c.step[keep].astype(np.int64), np.log(c.loss[keep])))
        kept.append(keep)
    return peak, data, kept


def _identified(law, data) -> bool:
    """llmkit's identifiability rule: an LR-aware law needs a curve that anneals (LR < 90% of peak after warmup) inside
    the fitted steps, or its annealing terms are not estimated at all (a warmup ramp does not count: it pins C to the
    warmup, not to a decay)."""
    if not law.uses_lr:
        return True
    for feats, steps, _ in data:
        after = steps[steps >= warmup_end(feats["lr"])]
        if len(after) and feats["lr"][after].min() < 0.9:
            return True
    return False


def _identifiability(curves, law, data, theta, peak, kept) -> list[str]:
    """Warnings for what the data cannot pin down."""
    notes = []
    if len(curves) == 1:
        notes.append("one curve only: the parameters trade off against each other and extrapolation to other schedules is "
                     "weak; the 90% band is not calibrated (per model size it covered 54-99% of unseen points for the "
                     "schedule-aware laws in scripts/bench/scaling_eval.py): fit two curves, one of them decaying, for a "
                     "band to rely on")
    if law.uses_lr:
        if not _identified(law, data):
            what = ", ".join(p for p in law.params if p not in ("L0", "A", "alpha")) + " (annealing terms)"
            notes.append(f"no curve anneals (LR < 90% of peak) inside the fitted steps: {what} not identified; predictions for decaying schedules are unreliable")
    n = sum(len(s) for _, s, _ in data)
    if n < 3 * len(theta):
        notes.append(f"only {n} fitted points for {len(theta)} parameters")
    for name, value, (lo, hi) in zip(law.params, theta, law.bounds):
        if np.isfinite(hi) and value >= hi * (1 - 1e-6) or value <= lo * (1 + 1e-6) + (1e-12 if lo == 0 else 0):
            what = f" ({law.at_lower_bound.get(name, 'its term is switched off')})" if lo == 0 and name not in ("L0", "alpha") else ""
            notes.append(f"{name} = {value:.4g} sits on its bound [{lo}, {hi}]{what}: the data did not pin it down")
    return notes


def fit(curves: list[Curve], law: str = "annealing", options: dict | None = None, min_step: int | None = None,
        max_step: int | None = None, delta: float = 1e-3, n_starts: int | None = None, n_boot: int = 100, seed: int = 0) -> Fit:
    """Fit `law` jointly to `curves` (points with min_step <= step <= max_step), then block-bootstrap the parameters."""
    name = law_name(law)
    law_ = LAWS[name]
    options = {**law_.defaults, **(options or {})}
    _check_options(options)
    if not curves:
        raise LlmkitError("fit: no curves given")
    if n_boot < 0:
        raise LlmkitError(f"fit: n_boot={n_boot} must be >= 0 (0: no intervals)")
    peak, data, kept = _prepare(curves, law_, options, min_step, max_step)
    n = sum(len(s) for _, s, _ in data)
    if n < len(law_.params) + 1:
        raise LlmkitError(f"fit: {n} points inside the fit window, law {name!r} needs at least {len(law_.params) + 1}")
    best = None
    for theta0 in _starts(law_, data, delta, n_starts or law_.starts):
        theta, value, ok = _lbfgsb(theta0, law_, data, delta)
        if best is None or value < best[1]:
            best = (theta, value, ok)
    theta, value, ok = _confirm_optimum(*best, law_, data, delta)
    resid = np.concatenate([logy - np.log(law_.predict(theta, f, s)[0]) for f, s, logy in data])
    noise = _residual_profile(data, resid)
    y = np.concatenate([np.exp(logy) for _, _, logy in data])
    pred = np.concatenate([law_.predict(theta, f, s)[0] for f, s, _ in data])
    r2 = 1.0 - float(np.sum((y - pred) ** 2) / max(np.sum((y - y.mean()) ** 2), 1e-300))
    boot = _bootstrap(theta, law_, data, delta, n_boot, seed)
    loco, cv_error = np.zeros((0, len(theta))), None
    if n_boot > 0 and len(data) >= 2:
        loco_resid, loco = _leave_one_curve_out(law_, data, delta, theta)
        cv_error = float(np.mean(np.abs(np.expm1(loco_resid)))) if len(loco_resid) else None
    notes = _identifiability(curves, law_, data, theta, peak, kept)
    if not ok:
        notes.append("L-BFGS-B did not report convergence; the parameters may be off")
    return Fit(name, options, theta, boot, resid, loco, peak, max(c.horizon for c in curves), value, ok, r2, n, notes,
               anchors=_anchors(theta, law_, data), noise=noise, rel_error=[float(np.mean(np.abs(pred / y - 1))), float(np.max(np.abs(pred / y - 1)))],
               cv_error=cv_error, misspec=MISSPEC[name], jackknife=JACKKNIFE[name], distance=DISTANCE[name], diff=DIFF[name],
               extrap=EXTRAP[name], extrap_single=EXTRAP_SINGLE[name])


def _check_options(options: dict) -> None:
    """Momenta outside [0, 1) make S2 blow up or oscillate, and a "fast" momentum that is not faster swaps the two terms."""
    lam, fast = options.get("lam"), options.get("lam_fast")
    if lam is not None and not 0 <= lam < 1:
        raise LlmkitError(f"lam={lam:g}: the S2 momentum must lie in [0, 1)")
    if fast is not None and not 0 <= fast < lam:
        raise LlmkitError(f"lam_fast={fast:g} must lie in [0, lam={lam:g}): it is the faster-decaying momentum")
    if "bin_steps" in options and not (float(options["bin_steps"]).is_integer() and options["bin_steps"] >= 1):
        raise LlmkitError(f"bin_steps={options['bin_steps']}: must be a whole number >= 1")


def _leave_one_curve_out(law, data, delta, theta=None) -> tuple[np.ndarray, np.ndarray]:
    """Refit without each curve in turn: the held-out curve's log residuals, and the refitted parameters.

    The held-out residuals are the fit's cross-validation error (`cv_error`, `--law auto`). The refits disagree
    more the farther a query lies from the fitted schedules and horizon, which the band uses as a jackknife.
    A refit that fails the identifiability rule (e.g. only constant-LR curves left: C is whatever the start
    was) or predicts a loss <= 0 on the held-out curve says nothing about the full fit's error and is dropped.
    """
    refits = _loco_refits(law, data, delta, theta)
    out = [resid for _, _, resid in refits]
    return (np.concatenate(out) if out else np.zeros(0)), np.array([t for _, t, _ in refits]).reshape(-1, len(law.params))


def _loco_refits(law, data, delta, theta=None) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(held-out curve index, refitted parameters, its log residuals) for each refit that `_leave_one_curve_out` keeps.
    Each refit starts from the best variable-projection seeds of the remaining curves (two; one plus the full fit's
    `theta` where given: it is near the refit's optimum and saves a costly multi_power start). From `theta` the second
    seed runs only when L-BFGS-B does not report convergence: on the development curves the full fit's theta always
    reached the lower objective (or the same to 1e-12), and a multi_power start costs seconds per-step. (A
    Gauss-Newton check of such a stop, as in `fit`, cost more than it saved: the one unconverged refit there was short
    of an optimum.) Without `theta` both seeds run, as in `fit`: a multi_power start can report convergence on a
    flat stretch far from the other's optimum."""
    refits = []
    for j in range(len(data)):
        rest = data[:j] + data[j + 1 :]
        if sum(len(s) for _, s, _ in rest) <= len(law.params) or not _identified(law, rest):
            continue
        if theta is None:
            runs = [_lbfgsb(t0, law, rest, delta) for t0 in _starts(law, rest, delta, 2)]
        else:
            runs = [_lbfgsb(theta, law, rest, delta)]
            if not runs[0][2]:  # the scan's best seed only when the warm start did not converge
                runs += [_lbfgsb(t0, law, rest, delta) for t0 in _starts(law, rest, delta, 1)]
        refit = min(runs, key=lambda r: r[1])[0]
        feats, steps, logy = data[j]
        pred = law.predict(refit, feats, steps)[0]
        if np.all(pred > 0):
            refits.append((j, refit, logy - np.log(pred)))
    return refits


# --law auto chooses among these (multi_power's refits take seconds: 2 starts each, see scripts/bench/scaling_fit_time.py)
AUTO_LAWS = ("annealing", "annealing_2scale", "multi_power", "power")


def choose_law(curves: list[Curve], options: dict | None = None, min_step: int | None = None, max_step: int | None = None,
               delta: float = 1e-3) -> tuple[str, dict, str]:
    """`--law auto`: the law of AUTO_LAWS with the lowest leave-one-curve-out error (mean |prediction/data - 1|) on the
    curves whose refits every law can be trusted on; annealing where no such refit exists (one curve, or no curve
    left that anneals). Returns the law, its CV error per law (None: no trusted refit), and a line saying so."""
    held: dict[str, dict[int, np.ndarray]] = {}
    for name in AUTO_LAWS:
        law = LAWS[name]
        opts = {**law.defaults, **{k: v for k, v in (options or {}).items() if k in law.defaults}}
        _check_options(opts)
        _, data, _ = _prepare(curves, law, opts, min_step, max_step)
        held[name] = {j: resid for j, _, resid in _loco_refits(law, data, delta)} if len(data) >= 2 else {}
    common = sorted(set.intersection(*(set(h) for h in held.values())))
    cv = {name: float(np.mean(np.abs(np.expm1(np.concatenate([h[j] for j in common]))))) if common else None for name, h in held.items()}
    if not common:
        return "annealing", cv, "law auto: annealing (no identifiable leave-one-curve-out refit: needs >= 2 curves, with one that anneals left in each refit)"
    best = min(cv, key=cv.get)
    listed = ", ".join(f"{name} {100 * err:.3f}%" for name, err in sorted(cv.items(), key=lambda kv: kv[1]))
    return best, cv, f"law auto: {best}, by leave-one-curve-out error on {len(common)} held-out curve(s): {listed}"


def _anchors(theta, law, data, n: int = 400) -> list:
    """Per fitted curve, its own predicted log loss on <= n steps up to its last fitted step (see `_distance`)."""
    anchors = []
    for feats, steps, _ in data:
        if len(steps) == 0:
            continue
        grid = np.unique(np.linspace(steps[0], steps[-1], n).astype(np.int64))
        pred = law.predict(theta, feats, grid)[0]
        keep = pred > 0
        anchors.append((grid[keep], np.log(pred[keep])))
    return anchors


def _residual_profile(data, resid: np.ndarray, n: int = 200) -> tuple:
    """The in-sample squared log residual as a function of the step: a running mean over the pooled points sorted by
    step (window 5% of them), kept at <= n steps. A law misses some stretches (the first steps after warmup, right
    after a drop) far more than others, and so does its prediction of another schedule there."""
    steps = np.concatenate([s for _, s, _ in data])
    order = np.argsort(steps, kind="stable")
    steps, r2 = steps[order], resid[order] ** 2
    window = max(5, len(steps) // 20)
    kernel = np.ones(window) / window
    var = np.convolve(np.pad(r2, (window // 2, window - 1 - window // 2), mode="edge"), kernel, mode="valid")
    pick = np.unique(np.linspace(0, len(steps) - 1, min(n, len(steps))).astype(np.int64))
    return steps[pick], var[pick]


def _distance(anchors, steps, log_mid) -> np.ndarray:
    """Log-loss distance from each query point to the nearest point the fit saw: a fitted curve's predicted loss at
    the same step, or at its last fitted step for a query past it. 0 on a fitted schedule; it grows with the
    schedule's difference and with the extrapolation past the fitted horizon."""
    gaps = [np.abs(log_mid - np.interp(np.clip(steps, a_step[0], a_step[-1]), a_step, a_log)) for a_step, a_log in anchors if len(a_step)]
    return np.min(gaps, axis=0) if gaps else np.zeros(len(steps))


def _block_resample(resid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Moving-block bootstrap of one curve's residuals (blocks keep the serial correlation of a loss curve)."""
    n = len(resid)
    block = max(1, int(round(n ** (1 / 2))))
    starts = rng.integers(0, max(n - block, 0) + 1, size=math.ceil(n / block))
    return np.concatenate([resid[s : s + block] for s in starts])[:n]


def _gauss_newton(theta, law, data, delta, max_iter: int = 8):
    """Refit from theta by Gauss-Newton on the Huber objective (iteratively reweighted least squares), steps halved
    until the objective falls and clipped to the bounds. A bootstrap draw's data differ from the fitted curve by one
    residual resample, so its optimum lies a step or two from theta: a few Jacobians instead of an L-BFGS-B run of
    about a hundred evaluations, which is what made per-step multi_power bands take minutes."""
    lo = np.array([b[0] for b in law.bounds])
    hi = np.array([b[1] for b in law.bounds])
    scale = np.maximum(np.abs(theta), 1e-3)  # columns scaled like _lbfgsb's coordinates, so lstsq's cut-off is fair

    def linearise(t):
        """The objective at t, and the weighted least-squares system of its Gauss-Newton step (None: outside the domain)."""
        value, rows, rhs = 0.0, [], []
        for feats, steps, logy in data:
            pred, jac = law.predict(t, feats, steps)
            if not np.all(pred > 0) or not np.all(np.isfinite(jac)):
                return np.inf, None
            r = logy - np.log(pred)
            value += _huber(r, delta)[0].sum()
            w = np.sqrt(np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300)))  # Huber's IRLS weights
            rows.append(w[:, None] * jac / pred[:, None] * scale)
            rhs.append(w * r)
        return value, (np.concatenate(rows), np.concatenate(rhs))

    value, system = linearise(theta)
    for _ in range(max_iter if system is not None else 0):
        step = np.linalg.lstsq(*system, rcond=1e-10)[0] * scale
        for _ in range(20):  # halve the step until the objective does not rise
            trial = np.clip(theta + step, lo, hi)
            trial_value, trial_system = linearise(trial)
            if trial_value <= value:
                break
            step /= 2
        else:
            break
        moved = np.max(np.abs(trial - theta) / scale)
        theta, value, system = trial, trial_value, trial_system
        if moved < 1e-7:
            break
    return theta


def _bootstrap(theta, law, data, delta, n_boot, seed):
    """Refit on fitted-curve + resampled-residual data, from theta (residual block bootstrap)."""
    if n_boot <= 0:
        return np.zeros((0, len(theta)))
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    fitted = [(f, s, np.log(law.predict(theta, f, s)[0])) for f, s, _ in data]
    resid = [logy - fl for (_, _, logy), (_, _, fl) in zip(data, fitted)]
    draws = []
    # disable=None: a progress bar on a terminal only, never into a log or a pipe
    for _ in tqdm(range(n_boot), desc="bootstrap", leave=False, disable=True if n_boot < 50 else None):
        sample = [(f, s, fl + _block_resample(r, rng)) for (f, s, fl), r in zip(fitted, resid)]
        draws.append(_gauss_newton(theta, law, sample, delta))
    return np.array(draws)


def point_prediction(fitted: Fit, lr: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The fitted law's loss at `steps` for the absolute LR array `lr`, without a band (see `predict`)."""
    law = LAWS[fitted.law]
    return law.predict(fitted.theta, law.features(lr / fitted.lr_peak, **fitted.options), np.asarray(steps))[0]


def held_at_peak(lr: np.ndarray) -> np.ndarray:
    """The same run without annealing: its warmup, then the peak LR to the end. The law's loss gap between the two
    is the gain that the schedule's LR decay buys."""
    held = lr.copy()
    held[warmup_end(lr):] = lr.max()
    return held


def support_warnings(fitted: Fit, lr: np.ndarray) -> list[str]:
    """Where a query schedule leaves what the fit saw: another peak LR, LR increases after warmup, a much longer horizon."""
    notes = []
    peak = float(lr.max())
    if abs(peak - fitted.lr_peak) > 0.01 * fitted.lr_peak:
        notes.append(f"peak LR {peak:.3g} differs from the fitted {fitted.lr_peak:.3g}: the law is only valid at the fitted peak LR")
    after = lr[warmup_end(lr):]
    rises = np.flatnonzero(np.diff(after) > 1e-9 * peak)
    if len(rises):
        notes.append(f"LR increases after warmup (first at step {warmup_end(lr) + rises[0] + 1}): re-warmup is outside what most fits support")
    if len(lr) - 1 > 3 * fitted.horizon:
        notes.append(f"horizon {len(lr) - 1} is more than 3x the fitted {fitted.horizon} steps: extrapolation")
    if (lr[warmup_end(lr):] <= 0).sum() > 1:
        notes.append("the schedule has zero-LR steps: the law keeps lowering the loss there although nothing trains")
    return notes


def predict(fitted: Fit, lr: np.ndarray, steps: np.ndarray | None = None, level: float = 0.9):
    """Predicted loss with a `level` band at `steps` (default: every step) for the absolute LR array `lr`."""
    law = LAWS[fitted.law]
    steps = np.arange(1, len(lr)) if steps is None else np.asarray(steps, dtype=np.int64)
    feats = law.features(lr / fitted.lr_peak, **fitted.options)
    mid = law.predict(fitted.theta, feats, steps)[0]
    if np.any(mid <= 0):
        first = int(steps[np.argmax(mid <= 0)])
        pywarnings.warn(f"the {fitted.law} law predicts a loss <= 0 from step {first}: the curve is outside the regime "
                      "the law describes (e.g. a memorising fine-tune); the band there is meaningless")
    if len(fitted.boot) == 0:
        return mid, mid.copy(), mid.copy()
    half = norm.ppf((1 + level) / 2) * np.sqrt(band_variance(fitted, feats, steps, mid))  # Gaussian in log loss
    half[mid <= 0] = np.nan  # no log-loss band around a loss <= 0 (warned above)
    return mid, mid * np.exp(-half), mid * np.exp(half)


def _log_predictions(law, thetas, feats, steps) -> np.ndarray:
    """log L at `steps` for each parameter vector whose predicted loss stays > 0 there (a loss <= 0 has no log:
    such a draw or refit is dropped, never clipped into the variance)."""
    preds = [law.predict(t, feats, steps)[0] for t in thetas]
    return np.array([np.log(p) for p in preds if np.all(p > 0) and np.all(np.isfinite(p))]).reshape(-1, len(steps))


def band_variance(fitted: Fit, feats: dict, steps: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """Variance of log L at `steps`: bootstrap spread + the in-sample residual variance at that step + the law's fixed
    misspecification, plus either the jackknife over the refits (>= 2 of them; times a calibrated factor) or, without
    one, the calibrated share of the distance to the nearest fitted point; plus, past the last fitted step, a calibrated
    error per unit of ln(step / last fitted step) (one value with a jackknife, another without). The law's errors on
    unseen schedules are heavy-tailed, and extrapolation in steps is where the tail lies (3x the horizon misses by ~5x
    the median): a constant term wide enough to cover it there is needlessly wide everywhere else."""
    law = LAWS[fitted.law]
    log_mid = np.log(np.maximum(mid, 1e-300))
    boot = _log_predictions(law, fitted.boot, feats, steps)
    var = (boot.var(axis=0) if len(boot) >= 2 else np.zeros(len(steps))) + fitted.misspec**2
    if len(fitted.noise):
        var += np.interp(steps, *fitted.noise)
    elif len(fitted.resid):  # fits written before the residual profile
        var += float(np.mean(fitted.resid**2))
    jack = _log_predictions(law, fitted.loco, feats, steps)
    n = len(jack)
    if n >= 2:  # jackknife variance over curves
        var += fitted.jackknife * (n - 1) / n * np.sum((jack - jack.mean(axis=0)) ** 2, axis=0)
        extrap = fitted.extrap
    else:
        var += (fitted.distance * _distance(fitted.anchors, steps, log_mid)) ** 2
        extrap = fitted.extrap_single
    return var + (extrap * _extrapolation(fitted, steps)) ** 2


def _extrapolation(fitted: Fit, steps: np.ndarray) -> np.ndarray:
    """ln(step / last fitted step) past the last step any fitted curve was fitted to, 0 up to it (fits written before
    the anchors: the longest fitted horizon)."""
    last = max((int(a_step[-1]) for a_step, _ in fitted.anchors if len(a_step)), default=fitted.horizon)
    return np.log(np.maximum(steps / max(last, 1), 1.0))


def load_fit(fit_dir: str | Path) -> Fit:
    """Read FIT_DIR/params.json."""
    path = Path(fit_dir) / "params.json"
    if not path.is_file():
        raise LlmkitError(f"{path}: no such file (run `llmkit fit ... --out {fit_dir}` first)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise LlmkitError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
    return Fit.from_json(doc, str(path))


def warn(notes: list[str]) -> None:
    """Show fit/predict notes as Python warnings (visible on the CLI, catchable in code)."""
    for note in notes:
        pywarnings.warn(note, stacklevel=2)


def compare_schedules(fitted: Fit, schedules: dict, level: float = 0.9, n_draws: int = 4000, seed: int = 0) -> list[dict]:
    """Final loss per candidate schedule with the `level` band of `predict`; its gain over the first schedule
    (base - candidate: > 0 is better) with a Gaussian `level` interval, P(better), a verdict, and P(best).

    The bootstrap alone only knows the parameters' spread (a few 1e-4 in log loss), while the law misses the
    difference between two schedules' final losses by several times that on unseen schedules: the gain's variance is
    the paired bootstrap variance plus the law's calibrated error on schedule differences (`fitted.diff`, log loss),
    and P(best) draws each schedule's share of that error independently on top of the bootstrap draws.
    """
    law = LAWS[fitted.law]
    names = list(schedules)
    bands, finals = [], []
    for name in names:
        lr = schedules[name]
        last = np.array([len(lr) - 1])
        bands.append([float(v[0]) for v in predict(fitted, lr, last, level)])
        finals.append([float(law.predict(b, law.features(lr / fitted.lr_peak, **fitted.options), last)[0][0]) for b in fitted.boot])
    mids = np.array([b[0] for b in bands])
    draws = np.array(finals).reshape(len(names), -1) if len(fitted.boot) else mids[:, None]  # [schedules, boot]
    z = norm.ppf((1 + level) / 2)
    rng = np.random.default_rng(seed)
    pick = draws[:, rng.integers(0, draws.shape[1], n_draws)]
    noisy = pick * np.exp(rng.normal(0.0, fitted.diff / np.sqrt(2), pick.shape))  # each schedule's half of the difference error
    wins = np.bincount(noisy.argmin(axis=0), minlength=len(names)) / n_draws
    rows = []
    for i, n in enumerate(names):
        gain = bands[0][0] - bands[i][0]
        if i == 0:
            sd = 0.0
        else:
            sd = float(np.sqrt(np.var(draws[0] - draws[i]) + (fitted.diff * (mids[0] + mids[i]) / 2) ** 2))
        lo, hi = gain - z * sd, gain + z * sd
        verdict = "query" if i == 0 else "better" if lo > 0 else "worse" if hi < 0 else "indistinguishable"
        rows.append({"schedule": n, "final_loss": bands[i][0], "lo": bands[i][1], "hi": bands[i][2], "p_best": float(wins[i]),
                     "gain": gain, "gain_lo": lo, "gain_hi": hi, "p_better": float(norm.cdf(gain / sd)) if sd > 0 else 0.0,
                     "verdict": verdict, "warnings": support_warnings(fitted, schedules[n])})
    return rows


def holdout_metrics(obs: np.ndarray, mid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict:
    """PredE (mean |err|/loss), WorstE (max), final-point error, R2 and band coverage on held-out points."""
    if len(obs) == 0:
        return {}
    rel = np.abs(mid - obs) / obs
    ss = np.sum((obs - obs.mean()) ** 2)
    return {
        "n": int(len(obs)), "pred_e": float(rel.mean()), "worst_e": float(rel.max()), "final_err": float(mid[-1] - obs[-1]),
        "r2": float(1 - np.sum((obs - mid) ** 2) / ss) if ss > 0 else float("nan"),
        "coverage_90": float(np.mean((obs >= lo) & (obs <= hi))),
    }


def _curve_name(path: Path) -> str:
    if path.is_dir():
        return path.name
    return path.parent.name if path.name in {"metrics.jsonl", "trainer_state.json"} else path.stem


def load_curves(log_paths, target: str = "auto", schedules: list[str] | None = None, fmt: str | None = None,
                columns: dict | None = None) -> tuple[list[Curve], list[str]]:
    """Logs -> Curves, plus the notes on what was repaired or guessed.

    The LR at every step comes from the log, or from `schedules`: one spec for every log, or one per log in order.
    """
    from llmkit.scaling.logs import ALIASES, read_log
    from llmkit.scaling.schedules import lr_per_step, schedule_lr

    specs = list(schedules or [])
    if len(specs) not in (0, 1, len(log_paths)):
        raise LlmkitError(f"--schedule given {len(specs)} times for {len(log_paths)} logs: give one for all logs or one per log, in order")
    curves, notes, seen = [], [], set()
    for i, raw in enumerate(log_paths):
        schedule = specs[i if len(specs) > 1 else 0] if specs else None
        log = read_log(raw, fmt=fmt, columns=columns)
        notes += log.notes
        series = {"loss": log.loss, "eval_loss": log.eval_loss}
        if target == "auto":
            target_ = "eval_loss" if len(log.eval_loss) >= 10 else "loss"
        elif target in series:
            target_ = target
        else:
            raise LlmkitError(f"{raw}: unknown target {target!r}; use auto, loss or eval_loss")
        points = series[target_]
        if len(points) == 0:
            raise LlmkitError(f"{log.path}: no {target_} values found (looked for {', '.join(ALIASES[target_])}); fields present: "
                              f"{', '.join(log.fields) or 'none'}; map yours with --columns, e.g. --columns {_columns_hint(log.fields)}")
        if schedule:
            lr = schedule_lr(schedule)
            if len(lr) - 1 < points.step[-1]:
                raise LlmkitError(f"{log.path}: schedule {schedule!r} ends at step {len(lr) - 1}, the log goes to {points.step[-1]}")
        else:
            horizon = int(max(points.step[-1], log.lr.step[-1] if len(log.lr) else 0))
            lr, lr_notes = lr_per_step(log.lr.step, log.lr.value, horizon, log.path)
            notes += lr_notes
        name = _curve_name(Path(raw))
        while name in seen:
            name += "'"
        seen.add(name)
        curves.append(Curve(name, lr, points.step, points.value, target_))
    return curves, notes


def _columns_hint(fields: list[str]) -> str:
    """A --columns value guessed from the field names: the first with 'loss' in it, and one that looks like an LR."""
    loss = next((f for f in fields if "loss" in f.lower() and not any(k in f.lower() for k in ("eval", "val", "test"))), "LOSS_TAG")
    lr = next((f for f in fields if f.lower() in {"lr", "learning_rate"} or "lr" in f.lower().split("/")), None)
    return f"loss={loss}" + (f",lr={lr}" if lr else "")


def fit_run(log_paths, law: str = "annealing", holdout_after: int | None = None, out_dir: str | Path = "fit",
            options: dict | None = None, min_step: int | None = None, n_boot: int = 100, target: str = "auto",
            schedules: list[str] | None = None, fmt: str | None = None, columns: dict | None = None) -> dict:
    """Read logs, fit, predict each curve to its end, write params.json, pred.json, pred.csv, curve.png and summary.txt."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LlmkitError(f"--out {out}: is a file, not a directory; name a directory for params.json and the plots")
    curves, notes = load_curves(log_paths, target, schedules, fmt, columns)
    choice = None
    if law == "auto":
        law, cv, line = choose_law(curves, options, min_step=min_step, max_step=holdout_after)
        choice = {"law": law, "cv_error": cv, "note": line}
        options = {k: v for k, v in (options or {}).items() if k in LAWS[law].defaults}
    fitted = fit(curves, law, options, min_step=min_step, max_step=holdout_after, n_boot=n_boot)
    out.mkdir(parents=True, exist_ok=True)  # only now: bad input leaves no empty output directory behind
    fitted.warnings = notes + fitted.warnings
    starts = {c.name: fit_start(c, min_step) for c in curves}
    preds, per_curve, rows = {}, [], []
    for c in curves:
        steps = np.arange(1, c.horizon + 1)
        mid, lo, hi = predict(fitted, c.lr, steps)
        held = held_at_peak(c.lr)
        # the same run with the LR held at its peak: the law's answer to "what did the decay buy?"
        plateau = point_prediction(fitted, held, steps) if LAWS[fitted.law].uses_lr and not np.array_equal(held, c.lr) else None
        preds[c.name] = (steps, mid, lo, hi, plateau)
        at = c.step[(c.step >= 1) & (c.step <= c.horizon)]
        obs = c.loss[(c.step >= 1) & (c.step <= c.horizon)]
        held = at > holdout_after if holdout_after is not None else np.zeros(len(at), dtype=bool)
        idx = at - 1
        per_curve.append({
            "name": c.name, "horizon": c.horizon, "n_points": int(len(c.step)), "fit_start": starts[c.name],
            "holdout": holdout_metrics(obs[held], mid[idx[held]], lo[idx[held]], hi[idx[held]]),
            "observed": {"step": c.step.tolist(), "loss": c.loss.tolist()},
            "pred_at_observed": {"loss": mid[idx].tolist(), "lo": lo[idx].tolist(), "hi": hi[idx].tolist()},
            "pred_final": {"step": int(c.horizon), "loss": float(mid[-1]), "lo": float(lo[-1]), "hi": float(hi[-1])},
            # no gain below a loss of 0; none from an LR-blind law or a curve that never decays
            "decay_gain_final": None if mid[-1] <= 0 else 0.0 if plateau is None else float(plateau[-1] - mid[-1]),
        })
        rows += [f"{c.name},{s},{c.lr[s]:.8g},{m:.6f},{a:.6f},{b:.6f}" for s, m, a, b in zip(steps, mid, lo, hi)]
    targets = sorted({c.target for c in curves})
    params = {**fitted.to_json(), "holdout_after": holdout_after, "min_step": min_step, "target": ",".join(targets), "target_requested": target,
              "fit_start": starts,
              "law_choice": choice,
              "curves": [{"name": c.name, "source": str(p), "horizon": c.horizon} for c, p in zip(curves, log_paths)]}
    write_json(out / "params.json", params)
    write_json(out / "pred.json", {"law": fitted.law, "holdout_after": holdout_after, "curves": per_curve})
    atomic_write_text(out / "pred.csv", "curve,step,lr,loss,lo,hi\n" + "\n".join(rows) + "\n")
    from llmkit.scaling.plot import plot_fit

    plot_fit(curves, fitted, preds, out / "curve.png", holdout_after, starts)
    text = summary(fitted, per_curve, params["target"]) + "\n"
    atomic_write_text(out / "summary.txt", (choice["note"] + "\n" if choice else "") + text)
    warn(fitted.warnings)
    return params


def summary(fitted: Fit, per_curve: list[dict], target: str | None = None) -> str:
    """A readable few lines: parameters with intervals, fit quality, held-out errors, final-loss predictions."""
    ci = fitted.intervals()
    # R2 of a long per-step curve is ~1 whatever the fit: the error in % of the loss is what a reader can judge
    error = f"fit error {100 * fitted.rel_error[0]:.3f}% of loss (mean), {100 * fitted.rel_error[1]:.3f}% (max); " if fitted.rel_error else ""
    cv = f"leave-one-curve-out error {100 * fitted.cv_error:.3f}%; " if fitted.cv_error is not None else ""
    lines = [f"law {fitted.law} {fitted.options}; {error}{cv}{fitted.n_points} points" + (f" of {target}" if target else "")
             + f"; R2 {fitted.r2:.5f}; converged {fitted.converged}"]
    for name, value in fitted.params().items():
        band = f" [{ci[name][0]:.4g}, {ci[name][1]:.4g}]" if name in ci else ""
        lines.append(f"  {name:6s} {value:.6g}{band}")
    for name, got in fitted.authors_params().items():
        band = f" [{got['interval_90'][0]:.4g}, {got['interval_90'][1]:.4g}]" if got["interval_90"] else ""
        lines.append(f"  {name:6s} {got['value']:.6g}{band} (the authors' form)")
    for c in per_curve:
        h = c["holdout"]
        held = f"; held-out PredE {100 * h['pred_e']:.3f}% WorstE {100 * h['worst_e']:.3f}% cover90 {h['coverage_90']:.2f}" if h else ""
        f = c["pred_final"]
        gain = f" (LR decay gains {c['decay_gain_final']:+.4f} over holding the peak)" if c["decay_gain_final"] else ""  # 0 or None
        start = f"; fitted from step {c['fit_start']}" if "fit_start" in c else ""
        lines.append(f"  {c['name']}: final step {f['step']} loss {f['loss']:.4f} [{f['lo']:.4f}, {f['hi']:.4f}]{gain}{held}{start}")
    lines += [f"  warning: {w}" for w in fitted.warnings]
    return "\n".join(lines)
