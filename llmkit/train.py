"""The launched entry point: `accelerate launch -m llmkit.train RECIPE [--key value ...]`.

Reads the recipe's `task`, fills that task's dataclasses, derives gradient accumulation from the global batch,
and hands over to the task module, whose `train()` reads top to bottom. Everything that can be wrong with the
input is checked before the run directory is created.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from llmkit.config import RunArgs, build_args, load_recipe, parse_cli_overrides, resolved_dict, save_run_config
from llmkit.data import check_dataset
from llmkit.errors import LlmkitError
from llmkit.models import check_dtype, check_model_dir
from llmkit.procs import die_with_parent, report_error
from llmkit.rundir import Plan, RunLock, check_run_name, plan_run
from llmkit.runs import CheckpointMarker, CurrentCadence, MetricsJsonl, save_final

TASKS = {"finetune": "llmkit.finetune", "unlearn": "llmkit.unlearn.train", "embed": "llmkit.embed.task",
         "pretrain": "llmkit.pretrain"}


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


_MAX_BATCH = 2**31 - 1


def gradient_accumulation(global_batch: int, micro_batch: int, world: int) -> int:
    """global = micro × world × accumulation, exactly, or a one-line error."""
    if global_batch > _MAX_BATCH:
        raise LlmkitError(f"global_batch_size {global_batch} is larger than any batch llmkit can count (max {_MAX_BATCH})")
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
    plan: Plan
    save_final: bool
    instances: tuple
    recipe_path: str
    argv: list

    def callbacks(self) -> list:
        return [MetricsJsonl(self.run_dir), CheckpointMarker(self.plan.identity), CurrentCadence()]

    def train(self, trainer, tokenizer, merge_lora: bool | Callable = False) -> None:
        if trainer.is_world_process_zero():
            save_run_config(self.run_dir, self.instances, self.recipe_path, self.argv, self.plan)
        # final_from: training had ended at this checkpoint; only final/ was not written (the run stopped while saving)
        if not self.plan.final_from:
            trainer.train(resume_from_checkpoint=self.plan.resume_from)
        if self.save_final:
            final = save_final(trainer, self.run_dir, tokenizer, merge_lora, self.plan.identity,
                               checkpoint=self.plan.final_from)
            if trainer.is_world_process_zero():
                print(f"llmkit: final model in {final}", file=sys.stderr)


# field -> (smallest valid value, whether None is allowed)
_AT_LEAST = {"learning_rate": (0.0, False), "per_device_train_batch_size": (1, False), "max_length": (1, True),
             "max_seq_length": (1, True), "num_train_epochs": (0.0, False)}


def check_values(instances: tuple, source) -> None:
    """Numbers out of range and an unknown dtype, found before launch; `source(key)` names where a key came from."""
    for obj in instances:
        for key, (low, none_ok) in _AT_LEAST.items():
            if not hasattr(obj, key) or (getattr(obj, key) is None and none_ok):
                continue
            value = getattr(obj, key)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
                raise LlmkitError(f"{source(key)}: {key}={value!r} must be a finite number >= {low}")
        if hasattr(obj, "dtype") and hasattr(obj, "model_name_or_path"):
            check_dtype(obj.dtype)


def check_paths(instances: tuple, stage_outputs_may_be_missing: bool = False) -> list[str]:
    """Model folders and datasets that cannot load, found before launch (and by --dry_run) without a GPU.

    With `stage_outputs_may_be_missing` (a dry run on a login node), a model that an earlier stage writes
    (`.../final`, `.../checkpoint-N`) and that does not exist yet is returned as a line to check later, not an error."""
    later = []
    for obj in instances:
        if hasattr(obj, "model_name_or_path"):
            path = Path(str(obj.model_name_or_path)).expanduser()
            if stage_outputs_may_be_missing and not path.exists() and _is_stage_output(path):
                later.append(f"model_name_or_path: {obj.model_name_or_path} does not exist yet (an earlier stage "
                             "writes it); checked when the run starts")
                continue
            check_model_dir(obj.model_name_or_path)
        if hasattr(obj, "dataset") and hasattr(obj, "dataset_split"):  # QADataArgs, pretrain's PretrainArgs
            for config in [obj.dataset_config, *(getattr(obj, "extra_dataset_configs", None) or [])]:
                check_dataset(obj.dataset, config, obj.dataset_split)
    return later


def _is_stage_output(path: Path) -> bool:
    return path.name == "final" or path.name.startswith("checkpoint-")


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
    check_run_name(str(run_name), "command line" if "run_name" in overrides else recipe_path)
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
    check_values(instances, lambda key: "command line" if key in overrides else recipe_path)
    if hasattr(module, "resolve_args"):  # a task whose recipe keys set training arguments (pretrain's lr_schedule)
        module.resolve_args(instances, recipe_path)
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
    die_with_parent()
    module, instances = prepare(argv[0], argv[1:], world_size())
    check_paths(instances)
    run, train_args = instances[0], instances[-1]
    run_dir = Path(train_args.output_dir)
    rank0 = int(os.environ.get("RANK", 0)) == 0
    with RunLock(run_dir) if rank0 else contextlib.nullcontext():
        plan = _on_rank0(lambda: plan_run(run_dir, run.resume, resolved_dict(instances), run.save_final), rank0)
        if plan.finished:
            if rank0:
                print(f"llmkit: {plan.finished}", file=sys.stderr)
        else:
            session = Session(run_dir, plan, run.save_final, instances, argv[0], argv)
            module.train(run, *instances[1:], session)
        _close_process_group()
    return 0


def _on_rank0(decide, rank0: bool):
    """Run `decide` on rank 0 only and hand its result (or its LlmkitError) to every rank."""
    import torch.distributed as dist

    outcome = None
    if rank0:
        try:
            outcome = decide()
        except LlmkitError as err:
            outcome = err
    if dist.is_available() and dist.is_initialized():
        box = [outcome]
        dist.broadcast_object_list(box, src=0)
        outcome = box[0]
    if isinstance(outcome, LlmkitError):
        raise outcome
    return outcome


def _close_process_group() -> None:
    """Leave the process group together: a rank that exits with gloo/DeepSpeed threads still alive can abort
    ("terminate called without an active exception") after a run that finished fine."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def worker(argv: list[str]) -> int:
    """The launched process: main(), with bad input and known runtime failures (out of memory, a file that cannot
    be read or written) as one line, left for the launcher to print once; exit code 2."""
    import torch

    try:
        return main(argv)
    except (LlmkitError, torch.OutOfMemoryError, OSError) as err:
        if os.environ.get("LLMKIT_DEBUG"):
            raise
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        message = text if isinstance(err, LlmkitError) else f"{type(err).__name__}: {text}"
        if not report_error(message):
            print(f"llmkit train: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))
