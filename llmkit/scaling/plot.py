"""One PNG per fit: data vs fit vs prediction with its band, relative residuals, and the LR / S1 / S2 inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmkit.io import save_figure


def plot_fit(curves, fitted, preds: dict, out_png: str | Path, holdout_after: int | None = None, starts: dict | None = None) -> None:
    """curves: fit.Curve list; preds: name -> (steps, mid, lo, hi, LR-held-at-peak prediction or None) at every step;
    starts: name -> first fitted step (earlier points are drawn hollow and left out of the frame)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmkit.scaling.laws import as_peak_warmup, s1, s2

    fig, (ax_loss, ax_res, ax_lr) = plt.subplots(3, 1, figsize=(9, 10), sharex=True, gridspec_kw={"height_ratios": [3, 1.3, 1.3]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lam = fitted.options.get("lam", 0.999)
    residuals = []
    for i, c in enumerate(curves):
        color = colors[i % len(colors)]
        steps, mid, lo, hi, plateau = preds[c.name]
        # where the law predicts loss <= 0 it no longer describes the curve (fit warns): draw nothing there
        valid = mid > 0
        start = (starts or {}).get(c.name, 0)
        early = c.step < start
        ax_loss.plot(c.step[early], c.loss[early], "o", ms=3, mfc="none", color=color, alpha=0.4,
                     label=f"{c.name}, before step {start} (not fitted)" if early.any() else None)
        _plot_data(ax_loss, c.step[~early], c.loss[~early], color, f"{c.name} (data)")
        ax_loss.plot(steps, np.where(valid, mid, np.nan), "-", lw=1.2, color=color, label=f"{c.name} ({fitted.law})")
        ax_loss.fill_between(steps, lo, hi, where=valid, color=color, alpha=0.15, lw=0)
        if plateau is not None:  # an annealed curve: show what the decay buys
            ax_loss.plot(steps, np.where(plateau > 0, plateau, np.nan), "--", lw=0.8, color=color, alpha=0.7,
                         label=f"{c.name}, LR held at peak")
        at = np.searchsorted(steps, c.step).clip(0, len(steps) - 1)
        ok = (steps[at] == c.step) & valid[at]
        residuals.append((c.step[ok], 100 * (c.loss[ok] / mid[at[ok]] - 1), color))
        lr = c.lr / fitted.lr_peak
        ax_lr.plot(np.arange(len(lr)), lr, "-", color=color, lw=1)
        if fitted.law.startswith("annealing"):  # S2 at the (slow) lam
            warm = as_peak_warmup(lr) if fitted.options.get("warmup") == "as_peak" else lr
            a1, a2 = s1(warm), s2(warm, lam)
            ax_lr.plot(np.arange(len(lr)), a1 / max(a1.max(), 1e-12), ":", color=color, lw=1)
            ax_lr.plot(np.arange(len(lr)), a2 / max(np.abs(a2).max(), 1e-12), "--", color=color, lw=1)
    _plot_residuals(ax_res, residuals, holdout_after)
    for ax in (ax_loss, ax_res, ax_lr):
        if holdout_after is not None:
            ax.axvline(holdout_after, color="grey", lw=0.8, ls="--")
    # early-step predictions and the initial transient shoot up: frame the fitted window's observed losses
    observed = np.concatenate([c.loss[c.step >= (starts or {}).get(c.name, 0)] for c in curves])
    low, high = float(observed.min()), float(observed.max())
    ax_loss.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low))
    ax_loss.set_ylabel("loss")
    error = f"fit error {100 * fitted.rel_error[0]:.2f}% of loss (mean)" if fitted.rel_error else f"R2={fitted.r2:.4f}"
    ax_loss.set_title(f"{fitted.law} fit, {error}" + ("" if holdout_after is None else f"; fitted up to step {holdout_after}"))
    first = min((starts or {0: 0}).values())
    if first > 0:  # frame the fitted window; the hollow points before it stay at the left edge
        ax_loss.set_xlim(left=0.8 * first)
    ax_loss.legend(fontsize=7, ncol=2)
    ax_res.set_ylabel("data/fit - 1 (%)")
    ax_lr.set_ylabel("LR/peak (-), S1 (:), S2 (--)\nscaled to max 1")
    ax_lr.set_xlabel("step")
    fig.tight_layout()
    save_figure(fig, out_png, dpi=110)


def _plot_data(ax, step: np.ndarray, loss: np.ndarray, color, label: str) -> None:
    """Observed losses: points, or for a per-step log (> 400 points) the raw points faint under a running median."""
    if len(step) <= 400:
        ax.plot(step, loss, ".", ms=3, color=color, alpha=0.6, label=label)
        return
    ax.plot(step, loss, ",", color=color, alpha=0.15)
    window = max(5, len(step) // 100) | 1  # odd, ~1% of the points
    pad = np.pad(loss, window // 2, mode="edge")
    smooth = np.median(np.lib.stride_tricks.sliding_window_view(pad, window), axis=1)
    ax.plot(step, smooth, "-", lw=0.9, color=color, alpha=0.8, label=f"{label}, running median")


def _plot_residuals(ax, residuals: list, holdout_after: int | None) -> None:
    """Relative residuals framed by the fitted part: a prediction that heads for zero would otherwise squash
    the panel into a flat line; points beyond the frame sit on its edge as triangles."""
    fitted_part = [np.abs(r[s <= holdout_after] if holdout_after is not None else r) for s, r, _ in residuals]
    fitted_part = np.concatenate(fitted_part) if fitted_part else np.zeros(0)
    # 95th percentile: the first steps, where the law shoots up as S1 -> 0, would set a useless frame
    limit = max(3 * float(np.percentile(fitted_part, 95)) if fitted_part.size else 0.0, 1.0)
    for s, r, color in residuals:
        inside = np.abs(r) <= limit
        ax.plot(s[inside], r[inside], ".", ms=3, color=color)
        ax.plot(s[r > limit], np.full(int((r > limit).sum()), limit), "^", ms=4, color=color)
        ax.plot(s[r < -limit], np.full(int((r < -limit).sum()), -limit), "v", ms=4, color=color)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylim(-1.08 * limit, 1.08 * limit)


def plot_schedules(fitted, schedules: dict, table: list[dict], out_png: str | Path, points: int = 400) -> None:
    """Candidate schedules side by side: predicted curves with bands and their LRs, and final losses with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmkit.scaling.fit import predict
    from llmkit.scaling.schedules import short_labels

    fig = plt.figure(figsize=(13, 6))
    grid = fig.add_gridspec(2, 2, width_ratios=[1.5, 1], height_ratios=[3, 1.2])
    ax_loss, ax_lr, ax_final = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[:, 1])
    ax_lr.sharex(ax_loss)
    # the default cycle repeats after 10 colours; a sweep needs distinct ones
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"] if len(schedules) <= 10 else list(plt.get_cmap("tab20").colors)
    labels = dict(zip(schedules, short_labels(list(schedules))))
    # the early steps shoot up (S1 -> 0): frame the last 80% of the longest schedule
    horizon = max(len(lr) for lr in schedules.values())
    shown = []
    for i, (name, lr) in enumerate(schedules.items()):
        color = colors[i % len(colors)]
        steps = np.unique(np.linspace(1, len(lr) - 1, points).astype(np.int64))
        mid, lo, hi = predict(fitted, lr, steps)
        ax_loss.plot(steps, mid, color=color, lw=1.2, label=labels[name])
        ax_loss.fill_between(steps, lo, hi, color=color, alpha=0.12, lw=0)
        ax_lr.plot(np.arange(len(lr)), lr, color=color, lw=1)
        shown.append(mid[steps >= 0.2 * horizon])
    ax_loss.set_xlim(0.2 * horizon, horizon)
    low, high = min(float(m.min()) for m in shown if len(m)), max(float(m.max()) for m in shown if len(m))
    ax_loss.set_ylim(low - 0.1 * (high - low), high + 0.05 * (high - low))
    ax_loss.set_ylabel(f"predicted loss ({fitted.law}, 90% band)")
    ax_loss.legend(fontsize=6 if len(schedules) > 8 else 7, ncol=2 if len(schedules) > 8 else 1)
    ax_lr.set_ylabel("LR")
    ax_lr.set_xlabel("step")
    order = sorted(range(len(table)), key=lambda j: table[j]["final_loss"], reverse=True)  # best at the top
    for y, j in enumerate(order):
        r = table[j]
        ax_final.errorbar(r["final_loss"], y, xerr=[[r["final_loss"] - r["lo"]], [r["hi"] - r["final_loss"]]], fmt="o",
                          color=colors[j % len(colors)], capsize=3)
        ax_final.annotate(f"P(best) {r['p_best']:.2f}", (r["hi"], y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
    ax_final.set_yticks(range(len(order)), [labels[table[j]["schedule"]] for j in order], fontsize=7)
    ax_final.set_xlabel("final loss, 90% interval\n(P(best): bootstrap refits plus the law's error on schedule differences)")
    fig.tight_layout()
    save_figure(fig, out_png, dpi=110)
