"""The LR schedule a fitted law predicts to be best: monotone after warmup, with a fixed peak, horizon and floor.

The shape is free between `knots` evenly spaced points after warmup (linear in between). Each knot keeps a share
u_k in [0, 1] of the previous knot's height above the floor, so every candidate is non-increasing and stays inside
[floor, peak] by construction, and L-BFGS-B only needs box bounds (the monotone parameterisation of Luo et al.,
with products in place of cumulative softplus steps). The objective is the law's predicted loss at the last step.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from llmkit.errors import LlmkitError
from llmkit.scaling.fit import point_prediction
from llmkit.scaling.schedules import warmup_then


def knot_schedule(shares: np.ndarray, peak: float, steps: int, warmup: int, floor: float) -> np.ndarray:
    """LR per step 0..steps: warmup to `peak`, then through the knots whose heights are running products of `shares`."""
    heights = floor + (peak - floor) * np.concatenate([[1.0], np.cumprod(shares)])
    at = np.linspace(warmup, steps, len(heights))
    return warmup_then(peak, steps, warmup, lambda t: np.interp(t, at, heights))


def optimize_schedule(fitted, peak: float, steps: int, warmup: int = 0, floor: float = 0.0, knots: int = 24) -> np.ndarray:
    """The knot schedule with the lowest predicted final loss under `fitted` (a fit.Fit); LR per step 0..steps."""
    if not 0 <= floor < peak:
        raise LlmkitError(f"schedule optimisation needs 0 <= min < peak, got min={floor:g}, peak={peak:g}")
    if knots < 1:
        raise LlmkitError(f"schedule optimisation needs at least 1 knot, got {knots}")
    if steps - warmup < knots:
        raise LlmkitError(f"schedule optimisation: {steps - warmup} steps after warmup for {knots} knots")
    last = np.array([steps])

    def final_loss(shares: np.ndarray) -> float:
        return float(point_prediction(fitted, knot_schedule(shares, peak, steps, warmup, floor), last)[0])

    # Non-convex in the shares: start from a linear decay to the floor and from a 20% linear cooldown, keep the better.
    position = np.linspace(0, 1, knots + 1)[1:]
    best = None
    for heights in (1 - position, np.clip((1 - position) / 0.2, 0, 1)):
        previous = np.concatenate([[1.0], heights[:-1]])
        shares = np.divide(heights, previous, out=np.zeros(knots), where=previous > 0)
        result = minimize(final_loss, shares, method="L-BFGS-B", bounds=[(0.0, 1.0)] * knots,
                          options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-10})
        if best is None or result.fun < best.fun:
            best = result
    return knot_schedule(best.x, peak, steps, warmup, floor)
