"""Speed: llmkit's annealing fit vs a re-implementation of the official Tissue et al. procedure, same data, same run.

The official procedure as published: per-step LR with warmup counted at peak, S1 and S2 built by a Python
loop over steps, raw (un-normalised) LR, objective = sum of Huber(delta=1e-3) on log loss, scipy L-BFGS-B
with finite-difference gradients, bounds [0, inf) on (L0, A, C, alpha), maxiter 100000, ftol 1e-9,
gtol 1e-6, eps 1e-8, from a 54-point grid (L0 in linspace(0.1, 2.1, 2), A and C in linspace(1, 22, 3),
alpha in linspace(0, 0.8, 3)); keep the best. Data: the three MPL training curves of one model size, as logged or,
with --points N, as per-step curves of about N points in all (log loss interpolated linearly between the logged steps
onto evenly spaced steps), the density of a per-step training log. Times are CPU seconds (both run single-threaded).

    python scripts/bench/scaling_speed.py [--size 400] [--repeat 3] [--points 33000]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from llmkit.scaling.fit import fit

from llmkit.scaling.fit import Curve
from scaling_eval import FIT_SETS, load_size  # noqa: E402  (same folder)

TRAIN = FIT_SETS["mpl_split"]


def per_step(curves: list, points: int) -> list:
    """The curves resampled onto evenly spaced steps between their first and last logged step, ~`points` in all."""
    span = sum(int(c.step[-1] - c.step[0]) for c in curves)
    out = []
    for c in curves:
        steps = np.unique(np.linspace(c.step[0], c.step[-1], round(points * (c.step[-1] - c.step[0]) / span)).astype(np.int64))
        out.append(Curve(c.name, c.lr, steps, np.exp(np.interp(steps, c.step, np.log(c.loss)))))
    return out


def official_s1_s2(lr: np.ndarray, lam: float = 0.999):
    """The published loop: warmup as peak, momentum of LR drops, both accumulated step by step."""
    peak = lr.max()
    warm = int(np.argmax(lr >= peak))
    lrs = [peak if i < warm else float(lr[i]) for i in range(len(lr))]
    S1, S2, m, a1, a2 = [], [], 0.0, 0.0, 0.0
    for i in range(len(lrs)):
        a1 += lrs[i]
        if i > 0:
            m = lam * m + (lrs[i - 1] - lrs[i])
        a2 += m
        S1.append(a1)
        S2.append(a2)
    return np.array(S1), np.array(S2)


def huber_sum(r, delta=1e-3):
    a = np.abs(r)
    return float(np.sum(np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


def official_fit(curves):
    """54 L-BFGS-B starts with numerical gradients on raw-LR S1/S2; returns (theta_raw, objective)."""
    data = []
    for c in curves:
        S1, S2 = official_s1_s2(c.lr)
        data.append((S1[c.step], S2[c.step], np.log(c.loss)))

    def objective(theta):
        L0, A, C, alpha = theta
        total = 0.0
        for x1, x2, logy in data:
            pred = L0 + A * x1 ** (-alpha) - C * x2
            total += huber_sum(logy - np.log(np.maximum(pred, 1e-300)))
        return total

    best = None
    grid = itertools.product(np.linspace(0.1, 2.1, 2), np.linspace(1, 22, 3), np.linspace(1, 22, 3), np.linspace(0, 0.8, 3))
    for start in grid:
        with np.errstate(all="ignore"):
            res = minimize(objective, np.array(start), method="L-BFGS-B", bounds=[(0, np.inf)] * 4,
                           options={"maxiter": 100000, "ftol": 1e-9, "gtol": 1e-6, "eps": 1e-8})
        if np.isfinite(res.fun) and (best is None or res.fun < best[1]):
            best = (res.x, float(res.fun))
    return best


def raw_objective(theta_raw, curves):
    """Sum of Huber on log loss for raw-LR parameters, the yardstick both fits are judged by."""
    total = 0.0
    for c in curves:
        S1, S2 = official_s1_s2(c.lr)
        L0, A, C, alpha = theta_raw
        pred = L0 + A * S1[c.step] ** (-alpha) - C * S2[c.step]
        total += huber_sum(np.log(c.loss) - np.log(np.maximum(pred, 1e-300)))
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data" / "scaling"))
    p.add_argument("--size", default="400")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--points", type=int, default=0, help="resample to per-step curves of about this many points in all (0: as logged)")
    args = p.parse_args()
    curves_all = load_size(Path(args.data) / "mpl_luo2025" / f"csv_{args.size}")
    curves = [curves_all[n] for n in TRAIN]
    if args.points:
        curves = per_step(curves, args.points)

    t0 = time.process_time()
    theta_off, _ = official_fit(curves)
    t_official = time.process_time() - t0

    times = []
    for _ in range(args.repeat):
        t0 = time.process_time()
        ours = fit(curves, "annealing", {"warmup": "as_peak"}, n_boot=0)
        times.append(time.process_time() - t0)
    peak = ours.lr_peak
    L0, A, C, alpha = ours.theta
    theta_ours = np.array([L0, A * peak**alpha, C / peak, alpha])  # peak-normalised -> raw-LR units
    t_ours = min(times)
    print(f"data: MPL {args.size}M, {', '.join(TRAIN)} ({sum(len(c.step) for c in curves)} points)")
    print(f"official re-implementation: {t_official:8.2f} CPU-s  objective {raw_objective(theta_off, curves):.6e}  theta_raw {np.round(theta_off, 6).tolist()}")
    print(f"llmkit annealing fit      : {t_ours:8.3f} CPU-s  objective {raw_objective(theta_ours, curves):.6e}  theta_raw {np.round(theta_ours, 6).tolist()}"
          f"  (best of {args.repeat}: {', '.join(f'{t:.3f}' for t in times)})")
    print(f"speed-up: {t_official / t_ours:.1f}x")


if __name__ == "__main__":
    main()
