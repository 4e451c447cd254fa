"""Learning rate at every step: rebuilt from a schedule spec, read from a step,lr CSV, or interpolated from a log.

Every array is indexed by step, 0..steps inclusive. A spec reads `name:key=value,...`, e.g.
`wsd:peak=3e-4,steps=24000,warmup=2160,cooldown=0.2,shape=1-sqrt,min=3e-5`; list values use `/`
(`multistep:...,milestones=8000/16000,gamma=0.3`). Fractions below 1 for `cooldown` mean a
share of `steps`; larger values are step counts.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from llmkit.errors import LlmkitError, did_you_mean


def warmup_then(peak: float, steps: int, warmup: int, after) -> np.ndarray:
    """Linear 0 -> peak over `warmup` steps (np.linspace(0, peak, warmup), as in MPL), then `after(t)` for t >= warmup."""
    t = np.arange(steps + 1, dtype=np.float64)
    lr = np.empty(steps + 1)
    w = min(warmup, steps + 1)
    lr[:w] = np.linspace(0.0, peak, warmup)[:w] if warmup > 1 else peak
    lr[w:] = after(t[w:])
    return lr


def constant(peak, steps, warmup=0):
    """Peak LR after warmup."""
    return warmup_then(peak, steps, warmup, lambda t: np.full_like(t, peak))


def cosine(peak, steps, warmup=0, min=0.0):
    """Cosine from peak at the end of warmup to `min` at `steps`."""
    span = max(steps - warmup, 1)
    return warmup_then(peak, steps, warmup, lambda t: min + 0.5 * (peak - min) * (1 + np.cos(np.pi * (t - warmup) / span)))


def linear(peak, steps, warmup=0, min=0.0):
    """Linear from peak at the end of warmup to `min` at `steps`."""
    span = max(steps - warmup, 1)
    return warmup_then(peak, steps, warmup, lambda t: peak - (peak - min) * (t - warmup) / span)


COOLDOWN_SHAPES = {
    "linear": lambda peak, low, u: peak - (peak - low) * u,
    "1-sqrt": lambda peak, low, u: low + (peak - low) * (1 - np.sqrt(u)),
    "cosine": lambda peak, low, u: low + 0.5 * (peak - low) * (1 + np.cos(np.pi * u)),
    "geometric": lambda peak, low, u: peak ** (1 - u) * low**u,
}


def wsd(peak, steps, warmup=0, cooldown=0.2, shape="linear", min=0.0):
    """Warmup-stable-decay: peak until the cooldown starts, then `shape` down to `min` at `steps`."""
    if shape not in COOLDOWN_SHAPES:
        raise LlmkitError(f"wsd schedule: unknown shape {shape!r}{did_you_mean(shape, COOLDOWN_SHAPES)}")
    if shape == "geometric" and min <= 0:
        raise LlmkitError("wsd schedule: shape=geometric needs min > 0")
    length = int(round(cooldown * steps)) if cooldown < 1 else int(cooldown)
    start = steps - max(length, 1)

    def after(t):
        u = np.clip((t - start) / max(length, 1), 0.0, 1.0)
        return np.where(t < start, peak, COOLDOWN_SHAPES[shape](peak, min, u))

    return warmup_then(peak, steps, warmup, after)


def multistep(peak, steps, warmup=0, milestones=(), gamma=0.1):
    """Peak, multiplied by `gamma` at each milestone step."""
    marks = np.sort(np.atleast_1d(np.asarray(milestones, dtype=np.float64)))
    return warmup_then(peak, steps, warmup, lambda t: peak * gamma ** np.searchsorted(marks, t, side="right"))


def twostage(peak, steps, warmup=0, switch=0, second=0.0):
    """Peak until `switch`, then the constant `second` (MPL's wsdcon curves)."""
    return warmup_then(peak, steps, warmup, lambda t: np.where(t < switch, peak, second))


def _value(text: str):
    """Spec value: a number, a `/`-separated list of numbers, or a bare word."""
    try:
        return [float(v) for v in text.split("/")] if "/" in text else float(text)
    except ValueError:
        return text


def _split_spec(spec: str) -> tuple[str, list[str]]:
    """`name:key=value,...` -> (name, ["key=value", ...]) as written."""
    name, _, rest = spec.partition(":")
    return name.strip(), [p.strip() for p in rest.split(",") if p.strip()]


def parse_schedule(spec: str) -> np.ndarray:
    """`name:key=value,...` -> LR per step (0..steps)."""
    name, kwargs = _spec_kwargs(spec)
    return SCHEDULES[name](**kwargs)


def _spec_kwargs(spec: str) -> tuple[str, dict]:
    """A spec's schedule name and its validated keyword values (steps and warmup as ints)."""
    name, items = _split_spec(spec)
    if name not in SCHEDULES:
        raise LlmkitError(f"schedule spec {spec!r}: unknown schedule {name!r}{did_you_mean(name, SCHEDULES)}")
    kwargs = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq:
            raise LlmkitError(f"schedule spec {spec!r}: {item!r} is not key=value")
        kwargs[key.strip()] = _value(text.strip())
    fn = SCHEDULES[name]
    allowed = fn.__code__.co_varnames[: fn.__code__.co_argcount]
    for key in kwargs:
        if key not in allowed:
            raise LlmkitError(f"schedule spec {spec!r}: unknown key {key!r}{did_you_mean(key, allowed)}")
    for key in ("peak", "steps"):
        if key not in kwargs:
            raise LlmkitError(f"schedule spec {spec!r}: missing {key}=")
    for key, value in kwargs.items():
        if isinstance(value, str) and key != "shape":  # shape is the only word-valued key
            raise LlmkitError(f"schedule spec {spec!r}: {key}={value!r} is not a number")
        if isinstance(value, list) and key != "milestones":  # and milestones the only list
            raise LlmkitError(f"schedule spec {spec!r}: {key} takes one number, got {'/'.join(f'{v:g}' for v in value)}")
    _check_ranges(spec, kwargs)
    for key in ("steps", "warmup"):
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
    return name, kwargs


MAX_STEPS = 10**8  # 800 MB of float64 LR: beyond that a typo, not a training run


def _check_ranges(spec: str, kwargs: dict) -> None:
    """Values that would build a meaningless schedule (or none at all) are one-line errors, not odd arrays or crashes."""

    def bad(why: str):
        raise LlmkitError(f"schedule spec {spec!r}: {why}")

    peak, steps = kwargs["peak"], kwargs["steps"]
    if not (np.isfinite(peak) and peak > 0):
        bad(f"peak={peak:g} must be a positive number")
    if not (np.isfinite(steps) and float(steps).is_integer() and 1 <= steps <= MAX_STEPS):
        bad(f"steps={steps:g} must be a whole number from 1 to {MAX_STEPS:.0e}")
    warmup = kwargs.get("warmup", 0)
    if not (np.isfinite(warmup) and float(warmup).is_integer() and 0 <= warmup < steps):
        bad(f"warmup={warmup:g} must be a whole number of steps below steps={steps:g}")
    for key in ("min", "second"):
        if key in kwargs and not 0 <= kwargs[key] <= peak:
            bad(f"{key}={kwargs[key]:g} must lie in [0, peak={peak:g}]")
    if "gamma" in kwargs and not 0 < kwargs["gamma"] <= 1:
        bad(f"gamma={kwargs['gamma']:g} must lie in (0, 1]: the LR never exceeds peak")
    if "cooldown" in kwargs and not 0 < kwargs["cooldown"] <= steps:
        bad(f"cooldown={kwargs['cooldown']:g} must be a share of steps in (0, 1) or a step count up to steps={steps:g}")
    for mark in np.atleast_1d(kwargs.get("milestones", [])).tolist() + [kwargs.get("switch", 0)]:
        if not 0 <= mark <= steps:
            bad(f"step {mark:g} (switch/milestones) lies outside 0..steps={steps:g}")


SHARED_KEYS = ("peak", "steps", "warmup", "min")  # what a what-if keeps from the user's schedule


def wsd_sweep(spec: str, cooldowns=(0.1, 0.2, 0.3, 0.4, 0.5), shapes=("linear", "1-sqrt", "cosine")) -> list[str]:
    """WSD specs with `spec`'s peak, steps, warmup and min, one per cooldown fraction and shape: the what-if grid.

    The shared parts keep the user's spelling, so `short_labels` can drop them; each spec is validated when parsed."""
    shared = ",".join(item for item in _split_spec(spec)[1] if item.partition("=")[0].strip() in SHARED_KEYS)
    return [f"wsd:{shared},cooldown={c:g},shape={shape}" for c in cooldowns for shape in shapes]


def spec_settings(spec: str) -> dict:
    """`spec`'s peak, steps, warmup and min as numbers (warmup and min default to 0), for a what-if built from it."""
    kwargs = {"warmup": 0, "min": 0.0} | _spec_kwargs(spec)[1]
    return {key: kwargs[key] for key in SHARED_KEYS}


def short_labels(specs: list[str]) -> list[str]:
    """Schedule specs without the key=value parts they all share: 'wsd:peak=3e-4,steps=9,cooldown=0.2' -> 'wsd cooldown=0.2'."""
    parts = [_split_spec(spec) for spec in specs]
    # names without parts (an LR CSV, the optimised schedule) don't stop the specs from sharing theirs
    specified = [set(items) for _, items in parts if items]
    shared = set.intersection(*specified) if len(specified) > 1 else set()
    return [" ".join([name] + [kv for kv in items if kv not in shared]) for name, items in parts]


def schedule_lr(spec: str) -> np.ndarray:
    """LR per step from a schedule spec, or from a `step,lr` CSV when `spec` names one: either is accepted anywhere."""
    return read_lr_csv(spec) if spec.endswith(".csv") or Path(spec).is_file() else parse_schedule(spec)


def read_lr_csv(path: str | Path) -> np.ndarray:
    """A `step,lr` CSV -> LR per step 0..last step; steps between rows are linearly interpolated, gaps flagged."""
    path = Path(path)
    if not path.is_file():
        raise LlmkitError(f"{path}: no such file")
    rows = list(csv.DictReader(path.read_text().splitlines()))
    if not rows or "step" not in rows[0] or "lr" not in rows[0]:
        raise LlmkitError(f"{path}: expected columns step,lr")
    steps, lrs = [], []
    for i, row in enumerate(rows, start=2):
        try:
            steps.append(int(float(row["step"])))
            lrs.append(float(row["lr"]))
        except (TypeError, ValueError, OverflowError):
            raise LlmkitError(f"{path}:{i}: step/lr is not a number: {row}") from None
        if not (np.isfinite(lrs[-1]) and lrs[-1] >= 0 and steps[-1] >= 0):
            raise LlmkitError(f"{path}:{i}: step must be >= 0 and lr a finite number >= 0, got step={row['step']} lr={row['lr']}")
    lr, _ = lr_per_step(np.array(steps), np.array(lrs), int(max(steps)), str(path))
    return lr


def lr_per_step(step: np.ndarray, lr: np.ndarray, horizon: int, source: str) -> tuple[np.ndarray, list[str]]:
    """Logged (step, lr) -> LR at every step 0..horizon by linear interpolation, with warnings for what was guessed."""
    if len(step) == 0:
        raise LlmkitError(f"{source}: no learning rate logged; pass a schedule spec or an LR CSV instead")
    order = np.argsort(step)
    step, lr = np.asarray(step)[order], np.asarray(lr, dtype=np.float64)[order]
    warnings = []
    if step[0] > 1:  # HF-style logs start at step 1; step 0 is not a gap
        warnings.append(f"{source}: LR not logged before step {step[0]}; held at {lr[0]:.3g} (as if warmup ran at that LR)")
    if step[-1] < horizon:
        warnings.append(f"{source}: LR not logged after step {step[-1]}; held at {lr[-1]:.3g} up to step {horizon}")
    if len(step) > 2:
        gaps = np.diff(step)
        typical = max(float(np.median(gaps)), 1.0)
        big = np.flatnonzero(gaps > 5 * typical)
        if len(big):
            spans = ", ".join(f"{step[i]}-{step[i + 1]}" for i in big[:3])
            warnings.append(f"{source}: LR gap(s) {spans} (> 5x the usual {typical:g} steps) filled by linear interpolation")
    return np.interp(np.arange(horizon + 1), step, lr), warnings


# Schedule name -> function(peak, steps, warmup, ...) returning LR per step.
SCHEDULES = {
    "constant": constant,
    "cosine": cosine,
    "linear": linear,
    "wsd": wsd,
    "multistep": multistep,
    "twostage": twostage,
}
