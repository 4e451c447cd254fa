"""The run directory, the only contract between stages.

runs/<name>/
  config.yaml, run_info.json   resolved recipe, versions, git sha, command
  metrics.jsonl                one JSON line per logging step (rank 0): the stable log format `llmkit fit` reads
  checkpoint-<step>/COMPLETE   written after every rank has finished saving; resume only trusts marked checkpoints
  final/                       loads with from_pretrained (consolidated after ZeRO-3, LoRA merged on request)
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from transformers import TrainerCallback

from llmkit.errors import LlmkitError
from llmkit.io import atomic_write_text

COMPLETE = "COMPLETE"
METRICS = "metrics.jsonl"
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
# Trainer log keys renamed into the stable format; every other logged number is kept under its own name.
_RENAMED = {"learning_rate": "lr"}
_DROPPED = {"total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss",
            "num_input_tokens_seen", "train_tokens_per_second"}


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoints of a run that carry the completion marker, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for child in run_dir.iterdir():
        match = CHECKPOINT_DIR.match(child.name)
        if match and (child / COMPLETE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def resolve_resume(resume: str, run_dir: str | Path) -> str | None:
    """`auto` → last complete checkpoint (or None), `never` → None, a path → that checkpoint if complete."""
    if resume == "never":
        return None
    if resume == "auto":
        done = complete_checkpoints(run_dir)
        return str(done[-1]) if done else None
    path = Path(resume)
    if not (path / COMPLETE).is_file():
        raise LlmkitError(f"resume: {resume} is not a complete checkpoint (no {COMPLETE} marker)")
    return str(path)


def mark_complete(path: str | Path) -> None:
    (Path(path) / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")


class CheckpointMarker(TrainerCallback):
    """Writes checkpoint-<step>/COMPLETE once every rank has finished writing the checkpoint."""

    def on_save(self, args, state, control, **kwargs):
        _barrier()
        if state.is_world_process_zero:
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        return control


class MetricsJsonl(TrainerCallback):
    """Appends one line per logging step to <run>/metrics.jsonl on rank 0.

    On resume the file is cut back to the checkpoint's step first, so a killed and resumed run has each step
    exactly once; a line truncated by the kill is dropped. `time` is wall-clock seconds of training, summed
    across resumes.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / METRICS
        self._time_offset = 0.0
        self._start = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return control
        kept = [row for row in read_metrics(self.path) if row.get("step", 0) <= state.global_step]
        if state.global_step == 0:
            kept = []
        self._time_offset = max((row.get("time", 0.0) for row in kept), default=0.0)
        self._start = time.time()
        atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The end-of-training summary (it carries train_loss) is not a logging step.
        if not state.is_world_process_zero or not logs or "train_loss" in logs:
            return control
        row = {"step": state.global_step, "epoch": state.epoch}
        for key, value in logs.items():
            if key not in _DROPPED and isinstance(value, (int, float)):
                row[_RENAMED.get(key, key)] = value
        if args.include_num_input_tokens_seen not in ("no", False):
            row["tokens"] = state.num_input_tokens_seen
        row["time"] = round(self._time_offset + time.time() - self._start, 3)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        return control


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.jsonl; a truncated last line (from a kill) is skipped, a bad line elsewhere is an error."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise LlmkitError(f"{path} line {number}: not a JSON object") from None
    return rows


def save_final(trainer, run_dir: str | Path, tokenizer, merge_lora: bool) -> Path:
    """Write <run>/final/ so that it loads with from_pretrained: consolidated weights, tokenizer, LoRA merged if asked."""
    final = Path(run_dir) / "final"
    # Trainer.save_model gathers ZeRO-3 shards (stage3_gather_16bit_weights_on_model_save) and writes on rank 0.
    trainer.save_model(str(final))
    _barrier()
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(final)
        from llmkit.models import is_peft_dir, merge_adapter_dir

        if merge_lora and is_peft_dir(final):
            merged = final.with_name("final.merging")
            merge_adapter_dir(final, merged)
            tokenizer.save_pretrained(merged)
            for child in final.iterdir():
                child.unlink()
            final.rmdir()
            os.replace(merged, final)
        mark_complete(final)
    _barrier()
    return final
