"""Loss-curve laws: L(step) from the per-step learning rate, with analytic Jacobians for the fitter.

A law is a plain record of functions. `features(lr, **options)` runs once per curve (O(steps),
vectorised) on the LR normalised by its peak; `predict(theta, feats, steps)` returns the predicted
loss at `steps` and its Jacobian [len(steps), n_params]; `linear_design(alpha, feats, steps)` gives
the columns that are linear in the other parameters, so the fitter can seed by variable projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.signal import lfilter

INF = np.inf


@dataclass(frozen=True)
class Law:
    """A fitted-law family: parameter names and bounds, plus the functions above."""

    name: str
    params: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    features: Callable
    predict: Callable
    linear_design: Callable  # (alpha, feats, steps) -> (X [n, k], map of X's coefficients into theta)
    uses_lr: bool = True
    defaults: dict = field(default_factory=dict)
    # parameter -> what it means when it ends on its lower bound (default: its term is switched off)
    at_lower_bound: dict = field(default_factory=dict)
    authors_form: Callable | None = None  # theta -> the parameters the law's authors report that differ from `params`
    starts: int = 4  # L-BFGS-B runs from the best distinct seeds of the variable-projection scan


def warmup_end(lr: np.ndarray) -> int:
    """Index of the first step at which the LR reaches its peak (0 when there is no warmup)."""
    return int(np.argmax(lr >= lr.max()))


def as_peak_warmup(lr: np.ndarray) -> np.ndarray:
    """The official Tissue et al. handling: warmup steps count as if they ran at the peak LR."""
    lr = lr.copy()
    lr[: warmup_end(lr)] = lr.max()
    return lr


def s1(lr: np.ndarray) -> np.ndarray:
    """Forward area S1(s) = sum_{i<=s} lr_i."""
    return np.cumsum(lr)


def s2(lr: np.ndarray, lam: float) -> np.ndarray:
    """Annealing area S2(s) = sum_{i<=s} m_i with m_i = lam*m_{i-1} + (lr_{i-1} - lr_i), m_0 = 0.

    The momentum recursion is a first-order IIR filter, so lfilter runs it in C in O(n).
    """
    drop = np.concatenate([[0.0], lr[:-1] - lr[1:]])
    return np.cumsum(lfilter([1.0], [1.0, -lam], drop))


# ---- annealing law (Tissue, Wang, Wang 2024, arXiv 2408.11029) -------------------------------------------------
def _annealing_features(lr: np.ndarray, lam: float = 0.999, warmup: str = "as_peak") -> dict:
    """S1 and S2 at every step; `warmup` is "as_peak" (official) or "actual" (the logged warmup LR)."""
    if warmup not in {"as_peak", "actual"}:
        from llmkit.errors import LlmkitError

        raise LlmkitError(f"annealing law: warmup must be 'as_peak' or 'actual', got {warmup!r}")
    lr = as_peak_warmup(lr) if warmup == "as_peak" else lr
    return {"S1": np.maximum(s1(lr), 1e-3), "S2": s2(lr, lam), "lr": lr}


def _annealing_predict(theta, feats, steps):
    """L = L0 + A*S1^-alpha - C*S2."""
    L0, A, C, alpha = theta
    x1, x2 = feats["S1"][steps], feats["S2"][steps]
    power = x1**-alpha
    pred = L0 + A * power - C * x2
    jac = np.stack([np.ones_like(pred), power, -x2, -A * power * np.log(x1)], axis=1)
    return pred, jac


def _annealing_design(alpha, feats, steps):
    x1, x2 = feats["S1"][steps], feats["S2"][steps]
    return np.stack([np.ones_like(x1), x1**-alpha, -x2], axis=1), (0, 1, 2)


# ---- two-scale annealing law (llmkit): S2 at a slow and a fast momentum --------------------------------------
def _two_scale_features(lr: np.ndarray, lam: float = 0.999, lam_fast: float = 0.99, warmup: str = "actual") -> dict:
    """The annealing features plus S2 at lam_fast: a mixture of two exponential responses to each LR drop."""
    feats = _annealing_features(lr, lam, warmup)
    return {**feats, "S2_fast": s2(feats["lr"], lam_fast)}


def _two_scale_predict(theta, feats, steps):
    """L = L0 + A*S1^-alpha - C*S2(lam) - C_fast*S2(lam_fast)."""
    L0, A, C, C_fast, alpha = theta
    pred, jac = _annealing_predict((L0, A, C, alpha), feats, steps)
    x_fast = feats["S2_fast"][steps]
    return pred - C_fast * x_fast, np.insert(jac, 3, -x_fast, axis=1)


def _two_scale_design(alpha, feats, steps):
    X, _ = _annealing_design(alpha, feats, steps)
    return np.column_stack([X, -feats["S2_fast"][steps]]), (0, 1, 2, 3)


# ---- plain power law in steps: the LR-blind baseline -----------------------------------------------------------
def _power_features(lr: np.ndarray) -> dict:
    return {"t": np.maximum(np.arange(len(lr), dtype=np.float64), 1.0)}


def _power_predict(theta, feats, steps):
    """L = L0 + A*step^-alpha."""
    L0, A, alpha = theta
    t = feats["t"][steps]
    power = t**-alpha
    return L0 + A * power, np.stack([np.ones_like(t), power, -A * power * np.log(t)], axis=1)


def _power_design(alpha, feats, steps):
    t = feats["t"][steps]
    return np.stack([np.ones_like(t), t**-alpha], axis=1), (0, 1)


# ---- multi-power law (Luo et al. 2025, arXiv 2503.12811) -------------------------------------------------------
# The authors' law: S1 counts the actual warmup LR, and LD sums over every LR change from step 1, warmup increases
# included; their fit leaves every parameter free (AdamW, no bounds), so the only bounds here are the law's domain
# (C, beta >= 0 keep (C x + 1)^-beta defined and decreasing), with beta = 0 the limit G(x)/beta -> log1p(C x). Fitted
# with Bbeta = B*beta in place of B (see `_mpl_predict`). Parameters are in peak-normalised LR units.
LEVEL = 0.03  # log-eta width of a drop bin: eta^-gamma varies by < 3% gamma inside one
MPL_KNOTS = 120  # evenly spaced steps at which LD is evaluated on a dense query, plus the steps right after LR jumps
_AFTER_EVENT = np.unique(np.round(1.2 ** np.arange(47)).astype(np.int64)) - 1  # offsets of the knots after an event: 0 .. ~5000


def _mpl_features(lr: np.ndarray, bin_steps: int = 128) -> dict:
    """S1 plus the LR drops grouped into bins of <= bin_steps steps, so LD costs O(points * bins) not O(points * steps)."""
    lr = np.maximum(lr, 0.0)
    drop = np.concatenate([[0.0], lr[:-1] - lr[1:]])
    return {"S1": np.maximum(s1(lr), 1e-3), "lr": lr, "drop": drop, "bin_steps": bin_steps}


def _mpl_bins(feats, steps):
    """Drop bins that never straddle a query step, a sign change or a 1% move of eta: (drop sum, eta, S1 before, first k) per bin."""
    drop, lr, S1 = feats["drop"], feats["lr"], feats["S1"]
    ks = np.flatnonzero(drop)
    if len(ks) == 0:
        return np.zeros(0), np.ones(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    # a new bin starts at every query step + 1, at every bin_steps-th k and where the drop changes sign
    cut = np.zeros(len(ks), dtype=bool)
    cut[0] = True
    cut[1:] |= np.sign(drop[ks[1:]]) != np.sign(drop[ks[:-1]])
    cut[1:] |= (ks[1:] // feats["bin_steps"]) != (ks[:-1] // feats["bin_steps"])
    # and where eta moves by > LEVEL (warmup), since eta^-gamma is far from linear there
    level = np.floor(np.log(np.maximum(lr[ks], 1e-12)) / LEVEL)
    cut[1:] |= level[1:] != level[:-1]
    cut[1:] |= np.searchsorted(steps, ks[1:], side="left") != np.searchsorted(steps, ks[:-1], side="left")
    start = np.flatnonzero(cut)
    w = np.abs(drop[ks])
    wsum = np.add.reduceat(w, start)
    dsum = np.add.reduceat(drop[ks], start)
    # Delta-weighted means of the in-bin eta_k and S1(k-1): the midpoint rule for the smooth G(.)
    eta = np.add.reduceat(w * np.maximum(lr[ks], 1e-12), start) / wsum
    s1_before = np.add.reduceat(w * (S1[ks] - lr[ks]), start) / wsum
    return dsum, eta, s1_before, ks[start]


def _mpl_knots(feats, steps):
    """Where LD is evaluated for a dense query: MPL_KNOTS evenly spaced steps, plus knots at geometric offsets after
    each of the (<= 32 largest) events in range, i.e. LR jumps and the starts of a decay, where LD bends within a few
    steps. LD is smooth between them, so linear interpolation onto the queried steps loses < 1e-5 of the loss."""
    lo, hi = int(steps.min()), int(steps.max())
    drop = feats["drop"]
    size = np.abs(drop)
    jump = size > 20 * np.median(size[size > 0]) if size.any() else np.zeros(len(drop), dtype=bool)
    onset = np.concatenate([[False], np.sign(drop[1:]) != np.sign(drop[:-1])])
    events = np.flatnonzero((jump | onset) & (np.arange(len(drop)) >= lo) & (np.arange(len(drop)) <= hi))
    if len(events) > 32:
        events = events[np.argsort(size[events])[-32:]]
    after = (events[:, None] - 1 + _AFTER_EVENT[None, :]).ravel()
    knots = np.unique(np.concatenate([np.linspace(lo, hi, MPL_KNOTS).round().astype(np.int64), after, [lo, hi]]))
    return knots[(knots >= lo) & (knots <= hi)]


def _interpolation(knots, steps):
    """Sparse [len(steps), len(knots)] matrix of linear interpolation from the knots onto the steps."""
    from scipy.sparse import csr_matrix

    i = np.clip(np.searchsorted(knots, steps, side="right") - 1, 0, len(knots) - 2)
    frac = (steps - knots[i]) / (knots[i + 1] - knots[i])
    rows = np.repeat(np.arange(len(steps)), 2)
    return csr_matrix((np.column_stack([1 - frac, frac]).ravel(), (rows, np.column_stack([i, i + 1]).ravel())), shape=(len(steps), len(knots)))


def _mpl_layout(feats, steps):
    """The theta-free part of LD: the steps it is evaluated at (the queried ones, or knots of a dense query) and the
    interpolation onto the queried steps (None: exact), the bin drop sums, -log(eta), and the LR area since each bin
    ([evaluated steps, bins], 0 for bins after the step). Fits evaluate the same steps hundreds of times: cached."""
    cache = feats.setdefault("layouts", {})
    key = steps.tobytes()
    if key in cache:
        return cache[key]
    at, interp = steps, None
    if len(steps) > 2 * MPL_KNOTS:
        at = _mpl_knots(feats, steps)
        interp = _interpolation(at, steps) if len(at) < len(np.unique(steps)) else None
        at = at if interp is not None else steps
    dsum, eta, s1_before, kfirst = _mpl_bins(feats, np.unique(at))
    span = np.where(kfirst[None, :] <= at[:, None], feats["S1"][at][:, None] - s1_before[None, :], 0.0)
    layout = (at, interp, dsum, -np.log(eta), span)
    if len(cache) >= 16:
        cache.clear()
    cache[key] = layout
    return layout


SERIES_BELOW = 1e-2  # z = beta*l under which G/beta and its beta-derivative come from their Taylor series


def relative_power(log_base: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H = (1 - exp(-beta*l)) / beta, dH/dbeta and exp(-beta*l) for l = log1p(u) >= 0: with u = C x, H is the authors'
    G(x) / beta, whose beta -> 0 limit is l itself (G's log limit), so H is defined, and exact, at beta = 0.

    With z = beta*l, 1 - exp(-z) and l*exp(-z) - H lose ~eps/z to cancellation: where 0 < z < SERIES_BELOW both come
    from their Taylor series in z instead (truncation < 1e-15 relative); at l = 0 the closed forms are exactly 0."""
    pw = np.multiply(log_base, -beta)
    np.exp(pw, out=pw)
    if abs(beta) * log_base.max(initial=0.0) < SERIES_BELOW:  # beta = 0 among others
        return (*_relative_power_series(log_base, log_base * beta), pw)
    h = np.subtract(1.0, pw)
    h /= beta
    dh_dbeta = np.multiply(log_base, pw)
    dh_dbeta -= h
    dh_dbeta /= beta
    small = np.flatnonzero((log_base < SERIES_BELOW / abs(beta)) & (log_base > 0))
    if len(small):
        l = log_base.ravel()[small]
        h.ravel()[small], dh_dbeta.ravel()[small] = _relative_power_series(l, l * beta)
    return h, dh_dbeta, pw


def _relative_power_series(log_base, z):
    """H = l*(1 - z/2 + z^2/6 - ...) to O(z^7) and dH/dbeta = l^2*(-1/2 + z/3 - z^2/8 + ...) to O(z^6)."""
    h = log_base * (1 + z * (-1 / 2 + z * (1 / 6 + z * (-1 / 24 + z * (1 / 120 + z * (-1 / 720 + z / 5040))))))
    dh = log_base**2 * (-1 / 2 + z * (1 / 3 + z * (-1 / 8 + z * (1 / 30 + z * (-1 / 144 + z / 840)))))
    return h, dh


def _mpl_predict(theta, feats, steps):
    """L = L0 + A*S1^-alpha - Bbeta*sum_k drop_k*H(C*eta_k^-gamma*(S1(t) - S1(k-1))), H(u) = (1 - (u + 1)^-beta)/beta.

    This is the authors' B*G with Bbeta = B*beta (see `_mpl_authors_form`): their B and beta trade off along a valley
    (B*beta fixed) whose end, beta -> 0 with B -> infinity, an optimiser cannot reach; here it is beta = 0, a bound."""
    L0, A, alpha, Bbeta, C, beta, gamma = theta
    steps = np.asarray(steps)
    at, interp, dsum, neg_log_eta, span = _mpl_layout(feats, steps)
    x = span * np.exp(gamma * neg_log_eta)[None, :]  # eta_k^-gamma * S_k(t)
    base = C * x
    h, dh_dbeta, pw = relative_power(np.log1p(base), beta)
    LD = h @ dsum
    pw /= base + 1.0
    pw *= x  # dH/dC = (C x + 1)^-beta * x / (C x + 1)
    dld = np.empty((len(at), 3))
    dld[:, 0] = pw @ dsum
    dld[:, 1] = dh_dbeta @ dsum
    pw *= C
    pw *= neg_log_eta[None, :]  # dH/dgamma = dH/dC * C * (-log eta)
    dld[:, 2] = pw @ dsum
    if interp is not None:  # LD and its derivatives from the knots; the S1 power term is exact at every step
        LD, dld = interp @ LD, interp @ dld
    x1 = feats["S1"][steps]
    power = x1**-alpha
    pred = L0 + A * power - Bbeta * LD
    jac = np.empty((len(steps), 7))
    jac[:, 0] = 1.0
    jac[:, 1] = power
    jac[:, 2] = -A * power * np.log(x1)
    jac[:, 3] = -LD
    np.multiply(dld, -Bbeta, out=jac[:, 4:])
    return pred, jac


def _mpl_authors_form(theta) -> dict:
    """The authors' B = Bbeta/beta; none at beta = 0 (G's log limit: B would be infinite)."""
    beta = float(theta[5])
    return {"B": float(theta[3]) / beta} if beta > 0 else {}


def _mpl_design(alpha, feats, steps):
    """Seed design: MPL with G == 1, i.e. L0 + A*S1^-alpha - B*(eta_peak - eta_t) (the authors' simplified law): its
    third coefficient is the authors' B, i.e. Bbeta / beta (`fit._starts` converts it at each seed's beta)."""
    x1 = feats["S1"][steps]
    return np.stack([np.ones_like(x1), x1**-alpha, -(1.0 - feats["lr"][steps])], axis=1), (0, 1, 3)


# Law name -> Law. Parameters live in peak-normalised LR units (S1 counts "steps at peak LR").
LAWS = {
    "annealing": Law(
        name="annealing",
        params=("L0", "A", "C", "alpha"),
        bounds=((0.0, INF), (0.0, INF), (0.0, INF), (0.0, 3.0)),
        features=_annealing_features,
        predict=_annealing_predict,
        linear_design=_annealing_design,
        defaults={"lam": 0.999, "warmup": "as_peak"},
    ),
    # One momentum (lam = 0.999) realises an LR drop's gain over ~1000 steps; on step decays the loss falls faster
    # at first and keeps falling longer (the single-lam fit's residuals spike right after the drop). A second,
    # fast momentum lets the fit mix both responses; C and C_fast stay linear, so variable projection still seeds it.
    "annealing_2scale": Law(
        name="annealing_2scale",
        params=("L0", "A", "C", "C_fast", "alpha"),
        bounds=((0.0, INF), (0.0, INF), (0.0, INF), (0.0, INF), (0.0, 3.0)),
        features=_two_scale_features,
        predict=_two_scale_predict,
        linear_design=_two_scale_design,
        defaults={"lam": 0.999, "lam_fast": 0.99, "warmup": "actual"},
    ),
    "multi_power": Law(
        name="multi_power",
        params=("L0", "A", "alpha", "Bbeta", "C", "beta", "gamma"),
        bounds=((0.0, INF), (0.0, INF), (0.0, INF), (0.0, INF), (0.0, INF), (0.0, INF), (-INF, INF)),
        features=_mpl_features,
        predict=_mpl_predict,
        linear_design=_mpl_design,
        defaults={"bin_steps": 128},
        at_lower_bound={"beta": "G(x)/beta at its log limit log1p(C x), so the authors' B = Bbeta/beta is infinite"},
        authors_form=_mpl_authors_form,
        starts=2,  # on the development curves every start reached the same optimum; each costs seconds per-step
    ),
    "power": Law(
        name="power",
        params=("L0", "A", "alpha"),
        bounds=((0.0, INF), (0.0, INF), (0.0, 3.0)),
        features=_power_features,
        predict=_power_predict,
        linear_design=_power_design,
        uses_lr=False,
    ),
}
