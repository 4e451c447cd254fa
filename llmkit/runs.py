"""The run directory, the only contract between stages.

runs/<name>/
  config.yaml, run_info.json   resolved recipe, versions, git sha, command
  metrics.jsonl                one JSON line per logging step (rank 0): the stable log format `llmkit fit` reads
  checkpoint-<step>/COMPLETE   written after every rank has finished saving: the run's identity and every file's size
                               (see checkpoints.py); resume only trusts its own checkpoints that still match it
  final/                       loads with from_pretrained (consolidated after ZeRO-3, LoRA merged on request)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback

from llmkit.checkpoints import COMPLETE, FINAL, write_marker
from llmkit.errors import LlmkitError
from llmkit.io import atomic_write_text
METRICS = "metrics.jsonl"
# Trainer log keys renamed into the stable format; every other logged number is kept under its own name.
_RENAMED = {"learning_rate": "lr"}
_DROPPED = {"total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss",
            "num_input_tokens_seen", "train_tokens_per_second"}


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class CheckpointMarker(TrainerCallback):
    """Writes checkpoint-<step>/COMPLETE (run identity + file list) once every rank has finished the checkpoint.

    A marker left in a folder that is about to be saved again (a resume that skipped a damaged checkpoint) is
    removed first, so a save killed half-way is never taken for the old, complete one.
    """

    def __init__(self, identity: dict):
        self.identity = identity

    def _drop_stale_marker(self, args, state, control, **kwargs):
        if control.should_save and state.is_world_process_zero:
            (Path(args.output_dir) / f"checkpoint-{state.global_step}" / COMPLETE).unlink(missing_ok=True)
        return control

    on_step_end = on_epoch_end = _drop_stale_marker

    def on_save(self, args, state, control, **kwargs):
        _barrier()
        if state.is_world_process_zero:
            write_marker(Path(args.output_dir) / f"checkpoint-{state.global_step}", self.identity)
        return control


class CurrentCadence(TrainerCallback):
    """On resume, log, evaluate and save at the cadence asked for now: the Trainer would keep the checkpoint's,
    while llmkit records the new one in run_info.json (these keys may change on a resume)."""

    def on_train_begin(self, args, state, control, **kwargs):
        state.compute_steps(args, state.max_steps)
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


# What a checkpoint holds beyond the model files Trainer.save_model wrote into it: the training state (DeepSpeed's
# global_step*/ and FSDP's pytorch_model_fsdp* are the engines' own copies of the model for resuming).
_TRAINING_STATE = shutil.ignore_patterns("optimizer*", "scheduler.pt", "scaler.pt", "rng_state*", "trainer_state.json",
                                         "global_step*", "latest", "zero_to_fp32.py", "pytorch_model_fsdp*", COMPLETE)


def save_final(trainer, run_dir: str | Path, tokenizer, merge_lora: bool | Callable, identity: dict,
               checkpoint: str | None = None) -> Path:
    """Write <run>/final/ so that it loads with from_pretrained: consolidated weights, tokenizer, LoRA merged if asked.

    It is written aside (final.partial/) and swapped in only once complete, carrying over an existing final/eval/.
    With `checkpoint` (training ended there, final/ was not written), its model files are final/'s: Trainer.save_model
    wrote them from the same weights, and a DeepSpeed trainer that did not train in this process cannot save.
    `merge_lora` True merges a causal-LM adapter (merge_adapter_dir); a task whose final/ is another kind of folder
    passes its own merge(adapter_dir, out_dir).
    """
    final = Path(run_dir) / FINAL
    partial = final.with_name(FINAL + ".partial")
    if trainer.is_world_process_zero() and partial.exists():
        shutil.rmtree(partial)  # our own leftover from a save that was killed
    _barrier()
    if checkpoint is None:
        # Trainer.save_model gathers ZeRO-3 shards (stage3_gather_16bit_weights_on_model_save) and writes on rank 0.
        trainer.save_model(str(partial))
    elif trainer.is_world_process_zero():
        shutil.copytree(checkpoint, partial, ignore=_TRAINING_STATE)
    _barrier()
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(partial)
        from llmkit.models import is_peft_dir, merge_adapter_dir

        if merge_lora and is_peft_dir(partial):
            merged = final.with_name(FINAL + ".merging")
            if merged.exists():
                shutil.rmtree(merged)
            (merge_lora if callable(merge_lora) else merge_adapter_dir)(partial, merged)
            tokenizer.save_pretrained(merged)
            shutil.rmtree(partial)
            os.replace(merged, partial)
        write_marker(partial, identity)
        _swap_in(partial, final)
    _barrier()
    return final


def _swap_in(new: Path, final: Path) -> None:
    """Replace `final` by the complete folder `new`, keeping final/eval/ (results of `llmkit eval`)."""
    if final.exists():
        if (final / "eval").exists():
            os.replace(final / "eval", new / "eval")
        old = final.with_name(FINAL + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old)
    else:
        os.replace(new, final)
