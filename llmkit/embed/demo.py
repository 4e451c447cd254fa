"""The embedding stage of `llmkit demo`: mine embed_mini, score the untrained tiny embedder on the local MTEB suite,
train it briefly with LoRA (recipes/embed/tiny_demo.yaml), score it again, and report the gain.

Raw texts on both sides, no instructions: the tiny backbone is random-init and cannot read an instruction, whose
shared prefix would make every query embed alike (see the recipe's header), so the suite runs with `prompts: false`,
matching the recipe's `instructions: false`.

Every step is the user-facing command run in-process (`llmkit mine`, `llmkit eval`, `llmkit train`), so the demo
exercises the same code paths and leaves the same files: <out>/tiny_demo/{mined,final,metrics.jsonl},
<out>/before/eval and <out>/tiny_demo/final/eval (mteb result files + mteb_local_summary.json/.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

RECIPE = "recipes/embed/tiny_demo.yaml"
SUITE = "eval/mteb_local.yaml"
EVAL_OVERRIDES = ["--prompts", "false"]


def suite_summary(eval_dir: Path) -> dict:
    """Mean(Task), Mean(TaskType) and per-task main scores (×100) of a local-suite evaluation."""
    data = json.loads((eval_dir / "mteb_local_summary.json").read_text(encoding="utf-8"))
    return {"mean_task": data["mean_task"], "mean_task_type": data["mean_task_type"],
            "scores": {task: 100 * score for task, score in data["scores"].items()}}


def run(out_dir: str | Path, overrides: tuple[str, ...] = ()) -> dict:
    """Mine, evaluate before, train, evaluate after; returns {before, after, gain, seconds} (scores ×100)."""
    from llmkit.embed.cli import mine_main
    from llmkit.embed.task import bundled
    from llmkit.evals.cli import main as eval_main
    from llmkit.train import main as train_main

    out_dir = Path(out_dir)
    recipe, suite = bundled(RECIPE), bundled(SUITE)
    args = [recipe, "--output_root", str(out_dir), *overrides]
    start = time.time()
    mine_main(args)
    base = "tiny:llama"  # the recipe's backbone, untrained as an embedder
    eval_main([suite, "--model", base, "--out", str(out_dir / "before"), "--max_seq_length", "256", *EVAL_OVERRIDES])
    train_main(args)
    final = out_dir / "tiny_demo" / "final"
    eval_main([suite, "--model", str(final), *EVAL_OVERRIDES])
    before, after = suite_summary(out_dir / "before" / "eval"), suite_summary(final / "eval")
    result = {"before": before, "after": after, "gain": after["mean_task"] - before["mean_task"],
              "seconds": round(time.time() - start, 1)}
    print(f"llmkit demo (embed): local MTEB Mean(Task) {before['mean_task']:.2f} -> {after['mean_task']:.2f} "
          f"({result['gain']:+.2f}) in {result['seconds']} s", file=sys.stderr)
    return result
