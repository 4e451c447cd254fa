"""`llmkit demo [--out DIR]`: the whole pipeline on the embedded default, on CPU, in minutes.

Each stage runs the same commands a user would (`python -m llmkit.train RECIPE`, `llmkit eval`, `llmkit fit`)
as subprocesses, two at a time where they are independent (2 cores, 1 thread each). A stage whose output is
already complete is skipped, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from llmkit.errors import LlmkitError

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


def fit_stage(demo: Demo, run_dir: Path) -> dict:
    """Fit the LR-annealing law on the first 60% of the target's loss curve and predict the rest."""
    import warnings

    from llmkit.runs import read_metrics
    from llmkit.scaling.fit import fit_run

    steps = [row["step"] for row in read_metrics(run_dir / "metrics.jsonl") if "loss" in row]
    holdout_after = steps[int(len(steps) * 0.6)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params = fit_run([run_dir], "annealing", holdout_after=holdout_after, out_dir=run_dir / "fit", n_boot=50)
    for warning in caught:
        demo.say(f"  fit warning: {warning.message}")
    pred = json.loads((run_dir / "fit" / "pred.json").read_text())
    return params | {"holdout": pred["curves"][0]["holdout"]}


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

    demo.say("6. fit the LR-annealing scaling law to the target's loss curve (first 60% fitted, rest predicted)")
    fit = fit_stage(demo, runs["target"])
    holdout = fit["holdout"]
    demo.say(f"  L0={fit['params']['L0']:.3g} A={fit['params']['A']:.3g} C={fit['params']['C']:.3g} "
             f"alpha={fit['params']['alpha']:.3g}; held-out mean error {holdout['pred_e']:.1%} "
             "(a memorising fine-tune is far from the pre-training curves the law describes)")

    demo.say("done. Outputs:")
    for role, path in runs.items():
        print(f"  {role:<8} {path}  (final/, metrics.jsonl, config.yaml)")
    print(f"  reference {reference}")
    print(f"  tradeoff {plot}")
    print(f"  embed    {demo.out / 'embed'}  (tiny_demo/final, before/eval, tiny_demo/final/eval)")
    print(f"  fit      {runs['target'] / 'fit'}  (params.json, pred.json, curve.png)")
    print(f"  logs     {demo.logs}")
    return 0
