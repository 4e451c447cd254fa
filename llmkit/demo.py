"""`llmkit demo [--out DIR]`: the whole pipeline on the embedded default, on CPU, in minutes.

Each stage runs the same commands a user would (`python -m llmkit.train RECIPE`, `llmkit eval`, `llmkit fit`,
`llmkit predict`), training and evaluation as subprocesses, two at a time where they are independent (2 cores, 1
thread each; the three scaling runs all at once, which ends sooner than 2 + 1). A stage whose output is
already complete is skipped, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from llmkit.errors import LlmkitError
from llmkit.io import write_json
from llmkit.scaling.schedules import spec_settings

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"


class Demo:
    """Runs the stages, logs each subprocess to DIR/logs/, and reports where things went."""

    def __init__(self, out: Path):
        self.out = out
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.start = time.time()

    def say(self, text: str) -> None:
        print(f"[{time.time() - self.start:6.1f}s] {text}", flush=True)

    def run_parallel(self, jobs: dict[str, list[str]], max_parallel: int = 2) -> None:
        """Run `python -m ...` jobs, at most `max_parallel` at once; any failure stops the demo with its log."""
        env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        pending, running = list(jobs.items()), {}
        while pending or running:
            while pending and len(running) < max_parallel:
                name, args = pending.pop(0)
                log = self.logs / f"{name}.log"
                self.say(f"  start {name} (log: {log})")
                handle = log.open("w")
                running[name] = (subprocess.Popen([sys.executable, *args], env=env, stdout=handle,
                                                  stderr=subprocess.STDOUT), handle, log)
            time.sleep(0.2)
            for name, (proc, handle, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                handle.close()
                del running[name]
                if proc.returncode != 0:
                    for other, _, _ in running.values():
                        other.kill()
                    tail = "\n".join(log.read_text().splitlines()[-15:])
                    raise LlmkitError(f"demo stage {name} failed (exit {proc.returncode}); see {log}\n{tail}")
                self.say(f"  done  {name}")


def finetune_stage(demo: Demo, model: str) -> dict[str, Path]:
    """Target (tofu-mini full) and retain (retain90) models, trained side by side."""
    runs = {"target": demo.out / "tofu_mini_full", "retain": demo.out / "tofu_mini_retain90"}
    jobs = {}
    for role, recipe in (("target", "tofu_mini_full"), ("retain", "tofu_mini_retain90")):
        if (runs[role] / "final" / "COMPLETE").is_file():
            demo.say(f"  {role}: {runs[role]}/final exists, skipped")
            continue
        jobs[f"finetune_{role}"] = ["-m", "llmkit.train", str(RECIPES / "finetune" / f"{recipe}.yaml"),
                                    "--output_root", str(demo.out), "--model_name_or_path", model]
    demo.run_parallel(jobs)
    return runs


UNLEARN_METHODS = {"flat_kl": "FLAT (KL)", "grad_ascent": "grad ascent"}
SUITE = "tofu_forget10"
# 10 epochs, a checkpoint each; every other one is evaluated, which keeps the demo's evaluation cost at 5 per method
# while still showing each method's path through forgetting into collapse.
EVAL_EVERY = 2


def unlearn_stage(demo: Demo, target: Path) -> dict[str, Path]:
    """FLAT (KL) and one baseline on the forget10 authors, starting from the target, a checkpoint per epoch."""
    runs, jobs = {}, {}
    for method in UNLEARN_METHODS:
        name = f"tofu_mini_forget10_{method}"
        runs[method] = demo.out / name
        if (runs[method] / "final" / "COMPLETE").is_file():
            demo.say(f"  {method}: {runs[method]}/final exists, skipped")
            continue
        jobs[f"unlearn_{method}"] = ["-m", "llmkit.train", str(RECIPES / "unlearn" / f"{name}.yaml"),
                                     "--output_root", str(demo.out), "--model_name_or_path", str(target / "final")]
    demo.run_parallel(jobs)
    return runs


def evaluate_models(jobs: list[str]) -> None:
    """Worker: evaluate each `model_dir[:reference]` in this process, so the imports are paid once."""
    from llmkit.evals.cli import main as eval_main

    for job in jobs:
        model_dir, _, reference = job.partition("::")
        argv = [str(REPO / "eval" / f"{SUITE}.yaml"), "--model", model_dir, "--dataset", "tofu-mini"]
        if reference:
            argv += ["--reference", reference]
        if eval_main(argv) != 0:
            raise SystemExit(f"eval of {model_dir} failed")


def evaluated_checkpoints(run_dir: Path, every: int) -> list[Path]:
    """Every `every`-th checkpoint of a run (epochs every, 2·every, ...), and always the last one."""
    from llmkit.report import checkpoint_dirs

    paths = [path for _, _, path in checkpoint_dirs(run_dir)]
    return [path for i, path in enumerate(paths) if (i + 1) % every == 0 or i == len(paths) - 1]


def evaluate_retain(demo: Demo, retain_final: Path) -> Path:
    """Evaluate the retain model, which writes the forget-quality reference; returns the reference file."""
    demo.run_parallel({"eval_retain": ["-c", _WORKER, str(retain_final)]})
    return retain_final / "eval" / f"{SUITE}_reference.json"


def evaluate_against(demo: Demo, models: list[Path], reference: Path) -> None:
    """Evaluate `models` against the retain reference in two worker processes."""
    jobs = [f"{model}::{reference}" for model in models]
    demo.run_parallel({f"eval_part{i}": ["-c", _WORKER, *jobs[i::2]] for i in range(2) if jobs[i::2]})


def eval_stage(demo: Demo, runs: dict[str, Path]) -> Path:
    """The retain model first (it writes the forget-quality reference), then everything else against it."""
    retain_final = runs["retain"] / "final"
    reference = evaluate_retain(demo, retain_final)
    models = [runs["target"] / "final", retain_final]  # the retain model again: its own FQ (1.0) places it on the plot
    for method in UNLEARN_METHODS:
        models += evaluated_checkpoints(runs[method], EVAL_EVERY)
    evaluate_against(demo, models, reference)
    return reference


_WORKER = "import sys; from llmkit.demo import evaluate_models; evaluate_models(sys.argv[1:])"


def report_stage(demo: Demo, runs: dict[str, Path]) -> Path:
    """Print the table (FQ, MU, forget/retain ROUGE, collapsed) and save the trade-off plot."""
    from llmkit.evals.tradeoff import run_trajectory, save_tradeoff_plot, tradeoff_table
    from llmkit.report import read_summaries

    target = read_summaries(runs["target"] / "final").get(SUITE)
    retain = read_summaries(runs["retain"] / "final").get(SUITE)
    trajectory = []
    for method, label in UNLEARN_METHODS.items():
        trajectory += run_trajectory(runs[method], SUITE, label)
    rows = [("target", target), ("retain", retain)]
    rows += [(f"{c.method} {c.label or c.step}", c.summary) for c in trajectory]
    print(tradeoff_table(rows), flush=True)
    return save_tradeoff_plot(trajectory, demo.out / "tradeoff.png", target=target, retain=retain,
                              title="tofu-mini forget10: forget quality vs model utility")


def embed_stage(demo: Demo) -> tuple[dict, dict]:
    """Mine embed_mini, train the tiny embedder, and score it on the local MTEB suite before and after."""
    from llmkit.embed.demo import suite_summary

    out = demo.out / "embed"
    if (out / "tiny_demo" / "final" / "eval" / "mteb_local_summary.json").is_file():
        demo.say(f"  {out}/tiny_demo/final is evaluated, skipped")
    else:
        demo.run_parallel({"embed": ["-c", "import sys; from llmkit.embed.demo import run; run(sys.argv[1])", str(out)]})
    before, after = suite_summary(out / "before" / "eval"), suite_summary(out / "tiny_demo" / "final" / "eval")
    print("| local MTEB task | before | after |\n|---|---:|---:|")
    for task, score in before["scores"].items():
        print(f"| {task} | {score:.1f} | {after['scores'][task]:.1f} |")
    print(f"| Mean(Task) | {before['mean_task']:.2f} | {after['mean_task']:.2f} |", flush=True)
    return before, after


# One recipe, three LR shapes with the same peak, warmup and horizon: the law is fitted on two, the third predicted.
SCHEDULES = {
    "constant": "constant:peak=1e-2,steps=160,warmup=10",
    "cosine": "cosine:peak=1e-2,steps=160,warmup=10,min=1e-3",
    "wsd": "wsd:peak=1e-2,steps=160,warmup=10,cooldown=0.3,shape=1-sqrt",
}
FITTED, PREDICTED = ("constant", "cosine"), "wsd"


def scaling_stage(demo: Demo, model: str) -> dict:
    """Pre-train the tiny model three times, fit the law on two runs, predict the third from its LR alone."""
    from llmkit.runs import read_metrics
    from llmkit.scaling.cli import predict_main
    from llmkit.scaling.fit import fit_run, holdout_metrics

    out = demo.out / "scaling"
    jobs = {}
    for name, spec in SCHEDULES.items():
        if (out / name / "final" / "COMPLETE").is_file():
            demo.say(f"  {name}: {out / name}/final exists, skipped")
            continue
        jobs[f"pretrain_{name}"] = ["-m", "llmkit.train", str(RECIPES / "pretrain" / "tiny_demo.yaml"), "--output_root",
                                    str(out), "--run_name", name, "--lr_schedule", spec, "--model_name_or_path", model]
    demo.run_parallel(jobs, max_parallel=3)  # 3 on 2 cores ends sooner than 2 + 1
    fit = fit_run([out / name for name in FITTED], "annealing", out_dir=out / "fit", n_boot=50)
    predict_main([str(out / "fit"), "--schedule", SCHEDULES[PREDICTED], "--out", str(out / f"{PREDICTED}_pred.csv")])
    pred = {int(r["step"]): r for r in csv.DictReader((out / f"{PREDICTED}_pred.csv").read_text().splitlines())}
    warmup = spec_settings(SCHEDULES[PREDICTED])["warmup"]
    rows = [(r["step"], r["eval_loss"], *(float(pred[r["step"]][k]) for k in ("loss", "lo", "hi")))
            for r in read_metrics(out / PREDICTED / "metrics.jsonl") if "eval_loss" in r and r["step"] > warmup]
    step, measured, predicted, lo, hi = map(np.array, zip(*rows))
    errors = holdout_metrics(measured, predicted, lo, hi)
    summary = {
        "fitted": list(FITTED), "predicted": PREDICTED, "schedules": SCHEDULES,
        "pred_e_percent": 100 * errors["pred_e"], "worst_e_percent": 100 * errors["worst_e"],
        "final_e_percent": float(100 * abs(errors["final_err"]) / measured[-1]), "coverage": errors["coverage_90"],
        "law": {"name": fit["law"], "params": fit["params"], "r2_fit": fit["r2"]},
        "final_measured": {name: [r["eval_loss"] for r in read_metrics(out / name / "metrics.jsonl") if "eval_loss" in r][-1]
                           for name in SCHEDULES},
        "points": [{"step": int(s), "measured": float(m), "predicted": float(p), "lo": float(a), "hi": float(b)}
                   for s, m, p, a, b in rows],
    }
    write_json(out / "summary.json", summary)
    _plot_prediction(out, rows)
    return summary


def _plot_prediction(out: Path, rows: list[tuple]) -> Path:
    """Measured eval loss of the three runs, the law fitted to two, and its prediction of the third with the band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmkit.io import save_figure
    from llmkit.runs import read_metrics

    fig, ax = plt.subplots(figsize=(7, 4.5))
    fitted_curves = list(csv.DictReader((out / "fit" / "pred.csv").read_text().splitlines()))
    for name, color in zip(SCHEDULES, ("C0", "C1", "C2")):
        obs = [(r["step"], r["eval_loss"]) for r in read_metrics(out / name / "metrics.jsonl") if "eval_loss" in r]
        role = "fitted" if name in FITTED else "held out"
        ax.plot(*zip(*obs), "o", ms=3, color=color, label=f"{name}: measured ({role})")
        if name in FITTED:
            law = [(int(r["step"]), float(r["loss"])) for r in fitted_curves if r["curve"] == name]
            ax.plot(*zip(*law), "-", color=color, lw=1, label=f"{name}: law fit")
    pred = list(csv.DictReader((out / f"{PREDICTED}_pred.csv").read_text().splitlines()))
    steps = [int(r["step"]) for r in pred]
    ax.plot(steps, [float(r["loss"]) for r in pred], "--", color="C2", lw=1.5, label=f"{PREDICTED}: predicted")
    ax.fill_between(steps, [float(r["lo"]) for r in pred], [float(r["hi"]) for r in pred], color="C2", alpha=0.2,
                    label="90% band")
    ax.set_ylim(min(r[1] for r in rows) - 0.3, max(r[1] for r in rows) + 0.6)
    ax.set(xlabel="step", ylabel="held-out loss", title="python-docs, tiny Llama: law fitted on 2 schedules, 3rd predicted")
    ax.legend(fontsize=7)
    return save_figure(fig, out / "predicted_vs_measured.png", dpi=120)


def report_scaling(demo: Demo, scaling: dict) -> None:
    """Predicted against measured held-out loss of the predicted run, at nine evenly spaced eval steps, and the errors."""
    points = scaling["points"]
    print("| step | measured | predicted | 90% band | error |\n|---:|---:|---:|---|---:|")
    for p in [points[i] for i in sorted(set(np.linspace(0, len(points) - 1, 9).astype(int)))]:
        print(f"| {p['step']} | {p['measured']:.4f} | {p['predicted']:.4f} | {p['lo']:.4f}-{p['hi']:.4f} | "
              f"{100 * abs(p['predicted'] - p['measured']) / p['measured']:.2f}% |")
    demo.say(f"  {PREDICTED} predicted from its LR: mean error {scaling['pred_e_percent']:.2f}% of the loss "
             f"(final {scaling['final_e_percent']:.2f}%, worst {scaling['worst_e_percent']:.2f}%), "
             f"90% band covers {scaling['coverage']:.0%} of the measured points; law R2 on the fitted runs "
             f"{scaling['law']['r2_fit']:.4f}")
    demo.say("  final held-out loss measured: " + ", ".join(f"{name} {loss:.4f}" for name, loss in scaling["final_measured"].items()))


def check_base_model(out: Path, key: str) -> None:
    """Resuming on top of runs from another tiny-model build would mix models: refuse, in one line."""
    stamp = out / "BASE_MODEL"
    before = stamp.read_text().strip() if stamp.is_file() else key
    if before != key:
        raise LlmkitError(f"{out}: its runs start from tiny model {before}, this build is {key} "
                          f"(the bundled text changed); use another --out or delete {out}")
    stamp.write_text(key + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llmkit demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/demo", help="where every run directory goes (default runs/demo)")
    args = parser.parse_args(argv)
    demo = Demo(Path(args.out))

    demo.say("1. tiny model: random-init Llama (hidden 128, 4 layers) + byte-level BPE trained on the bundled text")
    from llmkit.tiny import resolve_model_path

    model = resolve_model_path("tiny:llama")
    demo.say(f"  built {model}")
    check_base_model(demo.out, Path(model).name)

    demo.say("2. fine-tune on tofu-mini: the target (all 100 authors) and the retain model (forget10 authors held out)")
    runs = finetune_stage(demo, model)

    demo.say("3. unlearn forget10 from the target with FLAT (KL, forget data only) and with gradient ascent, "
             "10 epochs each (through forgetting into collapse), a checkpoint per epoch")
    runs |= unlearn_stage(demo, runs["target"])

    demo.say(f"4. evaluate on TOFU forget10: retain (writes the reference), target, every {EVAL_EVERY}nd "
             "unlearning checkpoint")
    reference = eval_stage(demo, runs)
    plot = report_stage(demo, runs)

    demo.say("5. embeddings: mine embed_mini with the offline MiniLM teacher, train the tiny decoder embedder "
             "(EOS pooling, LoRA, InfoNCE + teacher KL), local MTEB suite before and after")
    before, after = embed_stage(demo)
    demo.say(f"  Mean(Task) {before['mean_task']:.2f} -> {after['mean_task']:.2f} "
             f"({after['mean_task'] - before['mean_task']:+.2f})")

    demo.say("6. scaling law on llmkit's own pre-training runs: the tiny model from scratch on python-docs (CPython's "
             f"documentation) under {', '.join(SCHEDULES)} LR; fit on {' + '.join(FITTED)}, predict {PREDICTED} from its LR alone")
    scaling = scaling_stage(demo, model)
    report_scaling(demo, scaling)

    demo.say("done. Outputs:")
    for role, path in runs.items():
        print(f"  {role:<8} {path}  (final/, metrics.jsonl, config.yaml)")
    print(f"  reference {reference}")
    print(f"  tradeoff {plot}")
    print(f"  embed    {demo.out / 'embed'}  (tiny_demo/final, before/eval, tiny_demo/final/eval)")
    print(f"  scaling  {demo.out / 'scaling'}  (constant/ cosine/ wsd/ runs, fit/, summary.json, predicted_vs_measured.png)")
    print(f"  logs     {demo.logs}")
    return 0
