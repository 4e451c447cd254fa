"""The forget-quality / model-utility trade-off of each unlearning method on tofu-mini forget10, across seeds.
Not a test: trains, evaluates every checkpoint, prints a table, writes a plot and a JSON line.

    PYTHONPATH=. OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/bench/unlearn_tradeoff.py \
        [--out runs/bench_unlearn_tradeoff] [--methods flat_kl flat_tv grad_ascent npo idk_dpo rmu] [--seeds 0 1 2] \
        [--epochs 10] [--eval_every 1]

It builds the tiny model, fine-tunes the target and retain models exactly as `llmkit demo` does (an --out that holds a
demo's runs reuses them), evaluates the retain model (the forget-quality reference), then runs
recipes/unlearn/tofu_mini_forget10_<method>.yaml from the target once per seed and evaluates every `eval_every`-th
epoch checkpoint on TOFU forget10. Finished runs and cached evaluations are reused on a re-run.

Outputs: <out>/tradeoff_seeds.png (per method, the median across seeds of MU and FQ at each epoch, joined in epoch
order, with bars spanning the seeds' range), a table of the best forget quality among non-collapsed checkpoints with
model utility >= 0.70, per seed and its median, and as the last line one JSON object
{"methods": {name: {"seeds": [...], "best_fq_at_mu70": [...]}}} (null where no checkpoint qualifies).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from llmkit.demo import (RECIPES, SUITE, Demo, check_base_model, evaluate_against, evaluate_retain,
                         evaluated_checkpoints, finetune_stage)

METHODS = ("flat_kl", "flat_tv", "grad_ascent", "npo", "idk_dpo", "rmu")
MU_MIN = 0.70


def best_fq(points: list[dict], mu_min: float = MU_MIN) -> float | None:
    """The highest forget quality among non-collapsed checkpoints whose model utility is >= mu_min, or None."""
    ok = [p["fq"] for p in points if p["mu"] is not None and p["fq"] is not None and p["mu"] >= mu_min
          and not p["collapsed"]]
    return max(ok) if ok else None


def median_or_none(values: list[float | None]) -> float | None:
    """The median of the values that exist (a seed with no qualifying checkpoint is left out), or None."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def by_epoch(per_seed: dict[int, list[dict]]) -> list[tuple[int, list[dict]]]:
    """[(epoch, the seeds' points at that epoch)] for the epochs every seed has, in order."""
    epochs = sorted(set.intersection(*(set(p["epoch"] for p in pts) for pts in per_seed.values())))
    return [(e, [p for pts in per_seed.values() for p in pts if p["epoch"] == e]) for e in epochs]


def result_line(results: dict[str, dict[int, list[dict]]]) -> dict:
    """The JSON object of the last line: per method its seeds and best FQ at MU >= 0.70 per seed."""
    return {"methods": {m: {"seeds": sorted(per_seed), "best_fq_at_mu70": [best_fq(per_seed[s]) for s in sorted(per_seed)]}
                        for m, per_seed in results.items()}}


def table(results: dict[str, dict[int, list[dict]]]) -> str:
    """Markdown: per method, best FQ at MU >= 0.70 for each seed, their median, and how many seeds qualify."""
    def fmt(v):
        return "—" if v is None else f"{v:.3g}"

    seeds = sorted({s for per_seed in results.values() for s in per_seed})
    lines = ["| method | " + " | ".join(f"seed {s}" for s in seeds) + " | median | seeds with MU ≥ 0.70 |",
             "|---|" + "---:|" * (len(seeds) + 2)]
    for method, per_seed in results.items():
        values = [best_fq(per_seed[s]) if s in per_seed else None for s in seeds]
        count = sum(v is not None for v in values)
        lines.append(f"| {method} | " + " | ".join(map(fmt, values)) + f" | {fmt(median_or_none(values))} | "
                     f"{count}/{len(per_seed)} |")
    return "\n".join(lines)


def plot(results: dict[str, dict[int, list[dict]]], target: dict | None, retain: dict | None, path: Path) -> Path:
    """Median MU (x) and FQ (log y) per epoch across seeds, joined in epoch order, bars spanning min..max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmkit.evals.tradeoff import FQ_FLOOR
    from llmkit.io import save_figure

    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, per_seed) in enumerate(results.items()):
        rows = [(e, [p for p in pts if p["fq"] is not None and p["mu"] is not None]) for e, pts in by_epoch(per_seed)]
        rows = [(e, pts) for e, pts in rows if pts]
        if not rows:
            continue
        mu = [[p["mu"] for p in pts] for _, pts in rows]
        fq = [[max(p["fq"], FQ_FLOOR) for p in pts] for _, pts in rows]
        x, y = [statistics.median(v) for v in mu], [statistics.median(v) for v in fq]
        color = colors[i % len(colors)]
        ax.errorbar(x, y, xerr=[[a - min(v) for a, v in zip(x, mu)], [max(v) - a for a, v in zip(x, mu)]],
                    yerr=[[a - min(v) for a, v in zip(y, fq)], [max(v) - a for a, v in zip(y, fq)]],
                    color=color, marker="o", ms=4, lw=1.2, elinewidth=0.6, alpha=0.9,
                    label=f"{method} ({len(per_seed)} seeds)")
        for (epoch, _), xi, yi in zip(rows, x, y):
            ax.annotate(str(epoch), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=6, color=color)
    for name, summary, marker, color in (("target", target, "*", "black"), ("retain", retain, "P", "green")):
        if summary and summary.get("forget_quality") is not None and summary.get("model_utility") is not None:
            ax.scatter([summary["model_utility"]], [max(summary["forget_quality"], FQ_FLOOR)], marker=marker, s=160,
                       color=color, zorder=4, label=name)
    ax.axvline(MU_MIN, color="grey", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("model utility (median across seeds; bars: range)")
    ax.set_ylabel("forget quality (KS p-value, log; median, bars: range)")
    ax.set_title("tofu-mini forget10: each method's path by epoch, across seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def points(run_dir: Path) -> list[dict]:
    """{epoch, fq, mu, collapsed} of every evaluated checkpoint of a run."""
    from llmkit.evals.tradeoff import run_trajectory

    out = []
    for c in run_trajectory(run_dir, SUITE):
        epoch = round(float(c.label.split()[-1])) if c.label else c.step
        out.append({"epoch": epoch, "fq": c.summary.get("forget_quality"), "mu": c.summary.get("model_utility"),
                    "collapsed": bool(c.summary.get("collapsed"))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_unlearn_tradeoff")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--eval_every", type=int, default=1)
    args = parser.parse_args()

    from llmkit.report import read_summaries
    from llmkit.tiny import resolve_model_path

    demo = Demo(Path(args.out))
    model = resolve_model_path("tiny:llama")
    check_base_model(demo.out, Path(model).name)
    runs = finetune_stage(demo, model)
    reference = evaluate_retain(demo, runs["retain"] / "final")
    jobs, run_dirs = {}, {}
    for method in args.methods:
        for seed in args.seeds:
            name = f"tofu_mini_forget10_{method}_seed{seed}"
            run_dirs[method, seed] = demo.out / name
            if (demo.out / name / "final" / "COMPLETE").is_file():
                continue
            jobs[name] = ["-m", "llmkit.train", str(RECIPES / "unlearn" / f"tofu_mini_forget10_{method}.yaml"),
                          "--output_root", str(demo.out), "--run_name", name,
                          "--model_name_or_path", str(runs["target"] / "final"), "--seed", str(seed),
                          "--num_train_epochs", str(args.epochs)]
    demo.run_parallel(jobs)
    models = [runs["target"] / "final", runs["retain"] / "final"]  # retain against its own reference: FQ 1 on the plot
    for run_dir in run_dirs.values():
        models += evaluated_checkpoints(run_dir, args.eval_every)
    evaluate_against(demo, models, reference)  # cached evaluations are reused

    results = {m: {s: points(run_dirs[m, s]) for s in args.seeds} for m in args.methods}
    target = read_summaries(runs["target"] / "final").get(SUITE)
    retain = read_summaries(runs["retain"] / "final").get(SUITE)
    figure = plot(results, target, retain, demo.out / "tradeoff_seeds.png")
    print(table(results))
    print(f"plot: {figure}")
    print(json.dumps(result_line(results)))


if __name__ == "__main__":
    main()
