"""The launched entry point: `accelerate launch -m llmkit.train RECIPE [--key value ...]`.

Reads the recipe's `task`, fills that task's dataclasses, derives gradient accumulation from the global batch,
and hands over to the task module, whose `train()` reads top to bottom. Everything that can be wrong with the
input is checked before the run directory is created.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from llmkit.config import RunArgs, build_args, load_recipe, parse_cli_overrides, save_run_config
from llmkit.errors import LlmkitError
from llmkit.runs import CheckpointMarker, MetricsJsonl, resolve_resume, save_final

TASKS = {"finetune": "llmkit.finetune", "unlearn": "llmkit.unlearn.train", "embed": "llmkit.embed.task"}


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def gradient_accumulation(global_batch: int, micro_batch: int, world: int) -> int:
    """global = micro × world × accumulation, exactly, or a one-line error."""
    if global_batch <= 0:
        what = "missing recipe key 'global_batch_size'" if global_batch == 0 else f"global_batch_size {global_batch} must be > 0"
        raise LlmkitError(f"{what} (sequences per optimizer step over all devices)")
    steps, remainder = divmod(global_batch, micro_batch * world)
    if remainder or steps == 0:
        raise LlmkitError(f"global_batch_size {global_batch} is not a multiple of per_device_train_batch_size "
                          f"{micro_batch} × {world} process(es) = {micro_batch * world}")
    return steps


@dataclass
class Session:
    """What a task's train() needs from the launcher: callbacks, the resume point, and how to finish."""

    run_dir: Path
    resume_from: str | None
    save_final: bool
    instances: tuple
    recipe_path: str
    argv: list

    def callbacks(self) -> list:
        return [MetricsJsonl(self.run_dir), CheckpointMarker()]

    def train(self, trainer, tokenizer, merge_lora: bool = False) -> None:
        if trainer.is_world_process_zero():
            save_run_config(self.run_dir, self.instances, self.recipe_path, self.argv)
        trainer.train(resume_from_checkpoint=self.resume_from)
        if self.save_final:
            final = save_final(trainer, self.run_dir, tokenizer, merge_lora)
            if trainer.is_world_process_zero():
                print(f"llmkit: final model in {final}", file=sys.stderr)


def read_recipe(recipe_path: str, argv: list[str]):
    """Recipe + overrides → (task module, recipe with the run defaults filled in, overrides), task and keys checked."""
    overrides = parse_cli_overrides(argv)
    recipe = load_recipe(recipe_path)
    task = overrides.get("task", recipe.get("task"))
    if not task:
        raise LlmkitError(f"{recipe_path}: missing recipe key 'task' (one of {', '.join(TASKS)})")
    if task not in TASKS:
        raise LlmkitError(f"{recipe_path}: unknown task {task!r}; tasks are {', '.join(TASKS)}")
    for derived in ("gradient_accumulation_steps",):
        if derived in recipe or derived in overrides:
            raise LlmkitError(f"{recipe_path}: {derived} is derived from global_batch_size; remove it")
    module = importlib.import_module(TASKS[task])
    run_name = overrides.get("run_name", recipe.get("run_name")) or Path(recipe_path).stem
    defaults = {"run_name": run_name, "report_to": "none"}
    if "output_dir" not in recipe and "output_dir" not in overrides:
        root = overrides.get("output_root", recipe.get("output_root", RunArgs.output_root))
        defaults["output_dir"] = str(Path(root) / run_name)
    return module, defaults | recipe, overrides


def prepare(recipe_path: str, argv: list[str], world: int):
    """Recipe + overrides → (task module, run args, task args..., training args), validated for `world` processes."""
    module, recipe, overrides = read_recipe(recipe_path, argv)
    if world > 1 and "LOCAL_RANK" in os.environ and not _cuda_available():
        # On CPU, accelerate only builds a multi-process (gloo) state for DeepSpeed when asked for the backend.
        recipe = {"ddp_backend": "gloo"} | recipe
    instances = build_args((RunArgs, *module.ARG_TYPES), recipe, overrides, recipe_path)
    run, train_args = instances[0], instances[-1]
    train_args.gradient_accumulation_steps = gradient_accumulation(
        run.global_batch_size, train_args.per_device_train_batch_size, world)
    # `tokens` is part of metrics.jsonl; a task whose trainer cannot count them (sentence-transformers) opts out.
    if getattr(module, "COUNTS_TOKENS", True) and train_args.include_num_input_tokens_seen == "no":
        train_args.include_num_input_tokens_seen = "non_padding"
    return module, instances


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        raise LlmkitError("usage: python -m llmkit.train RECIPE.yaml [--key value ...]")
    module, instances = prepare(argv[0], argv[1:], world_size())
    run, train_args = instances[0], instances[-1]
    run_dir = Path(train_args.output_dir)
    session = Session(run_dir, resolve_resume(run.resume, run_dir), run.save_final, instances, argv[0], argv)
    module.train(run, *instances[1:], session)
    _close_process_group()
    return 0


def _close_process_group() -> None:
    """Leave the process group together: a rank that exits with gloo/DeepSpeed threads still alive can abort
    ("terminate called without an active exception") after a run that finished fine."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    from llmkit.cli import run_guarded

    sys.exit(run_guarded("train", main, sys.argv[1:]))
