"""The TOFU trade-off: forget quality against model utility, one trajectory per unlearning method.

The plot follows the papers (TOFU Fig. 6, open-unlearning): model utility on x, forget quality on a log y axis,
the target (before unlearning) and retain (the goal) models as reference points. Each method's checkpoints are joined
in step order, starting from the target, with an arrow per segment and the checkpoint's label (its epoch) beside
it; collapsed checkpoints (evals/collapse.py) are drawn hollow and red, since their forget quality is gamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FQ_FLOOR = 1e-300  # a KS p-value that underflowed to 0 still needs a place on the log axis


@dataclass
class Checkpoint:
    """One evaluated checkpoint of an unlearning run: its method, step, TOFU summary and plot label."""

    method: str
    step: int
    summary: dict
    label: str | None = None


def _as_checkpoints(rows) -> list[Checkpoint]:
    return [row if isinstance(row, Checkpoint) else Checkpoint(*row) for row in rows]


TABLE_COLUMNS = (  # header, summary key, float format
    ("forget quality", "forget_quality", ".3g"),
    ("model utility", "model_utility", ".3f"),
    ("forget ROUGE", "forget_Q_A_ROUGE", ".3f"),
    ("retain ROUGE", "retain_Q_A_ROUGE", ".3f"),
    ("collapsed", "collapsed", ""),
)


def tradeoff_table(rows: Sequence[tuple[str, dict | None]]) -> str:
    """Markdown table of (model name, TOFU summary or None): FQ, MU, forget/retain ROUGE-L recall, collapsed."""
    from llmkit.report import cell

    lines = ["| model | " + " | ".join(h for h, _, _ in TABLE_COLUMNS) + " |",
             "|---|" + "---:|" * len(TABLE_COLUMNS)]
    for name, summary in rows:
        summary = summary or {}
        lines.append(f"| {name} | " + " | ".join(cell(summary.get(key), spec) for _, key, spec in TABLE_COLUMNS) + " |")
    return "\n".join(lines)


def _xy(summary: dict) -> tuple[float, float] | None:
    fq, mu = summary.get("forget_quality"), summary.get("model_utility")
    if fq is None or mu is None:
        return None
    return float(mu), max(float(fq), FQ_FLOOR)


def tradeoff_figure(checkpoints, target: dict | None = None, retain: dict | None = None, title: str | None = None):
    """The trade-off figure; checkpoints are Checkpoint or (method, step, summary[, label]) tuples, any order.

    Points without forget quality (no reference) or model utility are left out and named in the legend title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints = _as_checkpoints(checkpoints)
    fig, ax = plt.subplots(figsize=(7, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    start = _xy(target) if target else None
    skipped = []
    methods = list(dict.fromkeys(c.method for c in checkpoints))
    for i, method in enumerate(methods):
        color = colors[i % len(colors)]
        path = [start] if start else []
        placed = []
        for c in sorted((c for c in checkpoints if c.method == method), key=lambda c: c.step):
            xy = _xy(c.summary)
            if xy is None:
                skipped.append(f"{method}@{c.step}")
                continue
            path.append(xy)
            placed.append((c, xy))
        for (x0, y0), (x1, y1) in zip(path, path[1:]):
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "->", "color": color, "lw": 1.2, "shrinkA": 3, "shrinkB": 4})
        ok = [(c, xy) for c, xy in placed if not c.summary.get("collapsed")]
        bad = [(c, xy) for c, xy in placed if c.summary.get("collapsed")]
        ax.scatter([xy[0] for _, xy in ok], [xy[1] for _, xy in ok], color=color, s=36, zorder=3, label=method)
        if bad:
            ax.scatter([xy[0] for _, xy in bad], [xy[1] for _, xy in bad], facecolors="none", edgecolors="red",
                       linewidths=1.5, s=44, zorder=3, label=f"{method} (collapsed)")
        for c, (x, y) in placed:
            ax.annotate(c.label or str(c.step), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7,
                        color=color)
    for name, summary, marker, color in (("target", target, "*", "black"), ("retain", retain, "P", "green")):
        xy = _xy(summary) if summary else None
        if summary and xy is None:
            skipped.append(name)
        if xy is not None:
            ax.scatter([xy[0]], [xy[1]], marker=marker, s=160, color=color, zorder=4, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("model utility")
    ax.set_ylabel("forget quality (KS p-value, log)")
    ax.set_title(title or "TOFU trade-off: forget quality vs model utility")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, title=f"not plotted (no FQ/MU): {', '.join(skipped)}" if skipped else None,
              title_fontsize=7)
    fig.tight_layout()
    return fig


def save_tradeoff_plot(checkpoints, path: str | Path, target: dict | None = None, retain: dict | None = None,
                       title: str | None = None) -> Path:
    """Write the trade-off figure to a PNG, atomically."""
    from llmkit.io import save_figure

    return save_figure(tradeoff_figure(checkpoints, target, retain, title), path, dpi=120)


def run_trajectory(run_dir: str | Path, suite: str, method: str | None = None) -> list[Checkpoint]:
    """The evaluated checkpoints of one run (checkpoint-<step>/eval/<suite>_summary.json), labelled by epoch."""
    from llmkit.report import checkpoint_dirs, read_summaries

    run_dir = Path(run_dir)
    out = []
    for step, label, model_dir in checkpoint_dirs(run_dir):
        summary = read_summaries(model_dir).get(suite)
        if summary is not None:
            out.append(Checkpoint(method or run_dir.name, step, summary, label))
    return out
