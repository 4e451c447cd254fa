"""What `llmkit train --dry_run` prints: the checks left for the GPU node, the batch/step plan, and memory per GPU.

A login node has no GPU, so the settings transformers checks against the current machine (bf16, tf32) are set
aside there while the rest of the recipe is validated, and each is listed as one line to be checked on the GPU
node. Memory comes from the libraries' own estimators (accelerate for DDP, DeepSpeed for ZeRO-2/3) on an empty
(meta-device) model built from the model's config; only activations, which no library estimates, use a formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from llmkit.config import load_recipe, parse_cli_overrides

GIB = 2**30
FLASH_ATTENTION = ("flash_attention_2", "flash_attention_3")


def _this_machine_checks_bf16() -> bool:
    from transformers.utils import is_torch_bf16_gpu_available

    return is_torch_bf16_gpu_available()


def login_node_overrides(recipe_path: str, overrides: list[str]) -> tuple[list[str], list[str]]:
    """(extra overrides for validating here, one line per check left for the GPU node).

    On a machine that can check bf16 itself nothing is set aside: the real checks run."""
    if _this_machine_checks_bf16():
        return [], []
    raw = load_recipe(recipe_path) | parse_cli_overrides(overrides)
    truthy = lambda key: str(raw.get(key, "")).lower() in {"true", "1", "yes", "on"}  # noqa: E731
    deferred = [f"{key}: needs a CUDA GPU with bf16 (Ampere or newer)" for key in ("bf16", "bf16_full_eval")
                if truthy(key)]
    if truthy("tf32"):
        deferred.append("tf32: needs an Ampere or newer CUDA GPU")
    if raw.get("attn_implementation") in FLASH_ATTENTION:
        deferred.append(f"attn_implementation {raw['attn_implementation']}: needs the flash-attn package and an "
                        "Ampere or newer GPU")
    # use_cpu only switches off transformers' "does this machine support bf16" check; tf32 has no such switch.
    extra = ["--use_cpu", "true"] + (["--tf32", "null"] if "tf32" in raw else [])
    return extra, deferred


def hardware_lines(deferred: list[str], world: int, preset: str, cuda: bool) -> list[str]:
    """Every check only the GPU node can make, one line each."""
    lines = list(deferred)
    if not cuda and world > 1:
        lines.append(f"NCCL: the process group over {world} GPUs")
    if not cuda and preset == "fsdp":
        lines.append("FSDP: accelerate runs it on GPUs only")
    if not cuda and preset in ("zero2", "zero3"):
        lines.append(f"DeepSpeed ({preset}): its CUDA ops (fused Adam) build on first use")
    return [f"llmkit: checked on the GPU node only: {line}" for line in lines]


def sequence_length(instances: tuple) -> int | None:
    """Tokens per sequence as the recipe sets them (max_length; max_seq_length for embedders; block_size, pretrain)."""
    for key in ("max_length", "max_seq_length", "block_size"):
        for obj in instances:
            if getattr(obj, key, None):
                return getattr(obj, key)
    return None


def dataset_rows(instances: tuple) -> int | None:
    """Rows of a question/answer dataset that is on this machine (a local file or llmkit's bundled alias).

    A hub dataset, even one llmkit has a mini stand-in for offline, is left unknown: its size is the real one's."""
    from llmkit.data import _ALIASES, load_qa

    data = next((obj for obj in instances if hasattr(obj, "question_key")), None)
    if data is None or getattr(next((o for o in instances if hasattr(o, "data_format")), None), "data_format", "qa") != "qa":
        return None
    if data.dataset not in _ALIASES and not Path(data.dataset).expanduser().exists():
        return None
    return len(load_qa(data))


@dataclass
class Steps:
    per_epoch: int
    total: int
    warmup: int


def optimizer_steps(rows: int | None, micro: int, world: int, accumulation: int, train_args) -> Steps | None:
    """Optimizer steps the way transformers' Trainer counts them (set_initial_training_values, get_warmup_steps)."""
    if train_args.max_steps > 0:
        total = train_args.max_steps
        per_epoch = None
    elif rows is None:
        return None
    else:
        # accelerate deals the micro batches out to the ranks, the last round filled up (even_batches)
        # unless dataloader_drop_last drops what does not make a full round
        batches = rows // (micro * world) if train_args.dataloader_drop_last else math.ceil(rows / (micro * world))
        per_epoch = max(math.ceil(batches / accumulation), 1)
        total = math.ceil(train_args.num_train_epochs * per_epoch)
    return Steps(per_epoch, total, train_args.get_warmup_steps(total))


def plan_lines(run, instances: tuple, world: int, command: str) -> list[str]:
    train_args = instances[-1]
    micro, accumulation = train_args.per_device_train_batch_size, train_args.gradient_accumulation_steps
    length = sequence_length(instances)
    tokens = f", {run.global_batch_size * length:,} tokens at {length} tokens/sequence (at most)" if length else ""
    lines = [f"world size {world}, micro batch {micro}/GPU, gradient accumulation {accumulation}",
             f"global batch {micro * world * accumulation} sequences{tokens}"]
    rows = dataset_rows(instances)
    steps = optimizer_steps(rows, micro, world, accumulation, train_args)
    schedule = train_args.lr_scheduler_type
    schedule = getattr(schedule, "value", schedule)
    if steps is None:
        warmup = (f"{train_args.warmup_steps:g} of the total" if train_args.warmup_steps < 1
                  else f"{int(train_args.warmup_steps)} steps")
        lines += ["optimizer steps: known once the dataset is loaded (its size is not on this machine)",
                  f"LR schedule {schedule}: warmup {warmup}, then decay to the end"]
    else:
        epoch = f"{steps.per_epoch} per epoch ({rows} rows), " if steps.per_epoch else ""
        lines += [f"optimizer steps: {epoch}{steps.total} in total",
                  f"LR schedule {schedule}: warmup {steps.warmup} steps, decay over {steps.total - steps.warmup} steps"]
    spec = next((obj.lr_schedule for obj in instances if getattr(obj, "lr_schedule", None)), None)
    if spec:  # pretrain: the spec grammar replaces the scheduler type, its warmup and decay
        lines[-1] = f"LR schedule {spec} (warmup and decay as the spec says, step for step)"
    return [f"llmkit: plan: {line}" for line in lines] + [f"llmkit: launch: {command}"]


def print_dry_run(opts, instances: tuple, deferred: list[str], command: str) -> None:
    """Everything `--dry_run` tells a researcher before submitting, on stderr, the launch command last."""
    import sys

    import torch

    from llmkit.memory import memory_lines

    run = instances[0]
    lines = hardware_lines(deferred, opts.num_processes, opts.accelerate, torch.cuda.is_available())
    lines += memory_lines(instances, opts.accelerate, opts.num_processes, opts.num_machines, opts.gpu_memory_gb)
    lines += plan_lines(run, instances, opts.num_processes, command)
    print("\n".join(lines), file=sys.stderr, flush=True)
