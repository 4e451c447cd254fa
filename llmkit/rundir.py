"""Who owns a run directory, and what a (re-)run does with what it finds there.

One run owns its directory at a time (an exclusive lock beside it, held for the run's lifetime). Before training,
rank 0 decides, under that lock, from what is on disk:
- `--resume never`: an existing run directory is moved aside to <name>.prev-N/, and the run starts fresh;
- `--resume auto`: a finished run (final/ complete, or its last checkpoint at the end) is left untouched; otherwise
  the run resumes from its own newest checkpoint that verifies, if its result-changing config is unchanged;
- `--resume PATH`: that checkpoint, if it verifies.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from llmkit.checkpoints import CHECKPOINT_DIR, FINAL, checkpoint_problem, read_marker
from llmkit.errors import LlmkitError
from llmkit.io import read_json_object

RUN_INFO = "run_info.json"
CONFIG = "config.yaml"
# Keys that change nothing a run computes, so a resume may change them (the change goes into run_info.json).
# The global batch is compared; how it is split over devices (micro batch, accumulation) is not.
_NON_RESULT_KEYS = {
    "logging_steps", "logging_strategy", "logging_first_step", "logging_nan_inf_filter", "log_level",
    "log_level_replica", "log_on_each_node", "disable_tqdm", "report_to", "project", "trackio_space_id",
    "trackio_bucket_id", "trackio_static_space_id", "push_to_hub", "hub_model_id", "hub_strategy", "hub_private_repo",
    "hub_always_push", "hub_revision", "save_steps", "save_strategy", "save_total_limit", "save_only_model",
    "save_on_each_node", "output_dir", "output_root", "run_name", "resume", "resume_from_checkpoint", "local_rank",
    "ddp_backend", "ddp_timeout", "dataloader_num_workers", "dataloader_persistent_workers", "dataloader_pin_memory",
    "dataloader_prefetch_factor", "dataloader_multiprocessing_context", "skip_memory_metrics",
    "per_device_train_batch_size", "gradient_accumulation_steps", "save_final",
}


# Set by a task from its data after the resume decision (the embed task's column -> query/document router), so
# config.yaml has them and a fresh resolve does not: they follow from the other keys and are never compared.
_DERIVED_KEYS = {"router_mapping"}


def check_run_name(run_name: str, source: str) -> None:
    """A run name is one folder name: no path separator, no `..`, so the run stays inside output_root."""
    if not run_name or "/" in run_name or os.sep in run_name or (os.altsep and os.altsep in run_name) or ".." in run_name:
        raise LlmkitError(f"{source}: run_name {run_name!r} must be a plain folder name (no '/', no '..')")


def result_config(resolved: dict) -> dict:
    """The resolved config without the keys that cannot change results, as YAML would store it."""
    kept = {k: v for k, v in resolved.items() if k not in _NON_RESULT_KEYS | _DERIVED_KEYS}
    return yaml.safe_load(yaml.safe_dump(kept, sort_keys=True))


def config_hash(resolved: dict) -> str:
    text = json.dumps(result_config(resolved), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_changes(old: dict, new: dict) -> dict:
    """{key: (old, new)} for every key whose value differs (a key missing on one side reads as None)."""
    old, new = yaml.safe_load(yaml.safe_dump(old)), yaml.safe_load(yaml.safe_dump(new))
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


class RunLock:
    """An exclusive lock on .<name>.lock beside the run directory for the run's lifetime (beside it, so that
    `--resume never` can move the directory; hidden, so that `runs/*` still names only run directories). The
    holder's pid and host go into .<name>.lock.holder."""

    def __init__(self, run_dir: Path):
        from filelock import FileLock

        self.run_dir = run_dir
        self.path = run_dir.with_name(f".{run_dir.name}.lock")
        self.holder = run_dir.with_name(f".{run_dir.name}.lock.holder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path))

    def __enter__(self) -> RunLock:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            who = self.holder.read_text(encoding="utf-8").strip() if self.holder.is_file() else "another process"
            raise LlmkitError(f"run directory {self.run_dir} is in use by {who}; wait for it, "
                              "or give this run another run_name") from None
        self.holder.write_text(f"pid {os.getpid()} on host {socket.gethostname()}\n", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        self.holder.unlink(missing_ok=True)
        self._lock.release()


@dataclass
class Plan:
    """What rank 0 decided for this run; broadcast to every rank."""

    resume_from: str | None = None
    finished: str | None = None        # message for a run that is already complete (nothing is done)
    final_from: str | None = None      # training is done at this checkpoint, but final/ is missing
    identity: dict = field(default_factory=dict)  # run_id + config_hash, written into every checkpoint marker
    resumed_changes: dict = field(default_factory=dict)  # non-result keys changed since the run started
    fresh: bool = True


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := CHECKPOINT_DIR.match(p.name)) and p.is_dir()]
    return sorted(found)


# Inputs prepared inside the run directory before training (`llmkit mine` writes <run>/mined by default): they
# are not results, so a run started over keeps them.
_INPUTS = ("mined",)


def move_aside(run_dir: Path) -> Path:
    """Rename an existing run directory to <name>.prev-N (the first free N), keeping its inputs in place."""
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.prev-{n}")).exists():
        n += 1
    os.replace(run_dir, aside)
    run_dir.mkdir()
    for name in _INPUTS:
        if (aside / name).exists():
            os.replace(aside / name, run_dir / name)
    return aside


def _finished_at(checkpoint: Path) -> bool:
    """True when the checkpoint's trainer state says training had reached its last step."""
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return False
    data = json.loads(state.read_text(encoding="utf-8"))
    return data.get("max_steps", 0) > 0 and data.get("global_step", 0) >= data["max_steps"]


def plan_run(run_dir: Path, resume: str, resolved: dict, save_final: bool) -> Plan:
    """Decide fresh start / resume / already finished for `run_dir` (rank 0, under the run lock)."""
    identity = {"run_id": uuid.uuid4().hex[:12], "config_hash": config_hash(resolved)}
    if resume == "never":
        if run_dir.is_dir() and any(p.name not in _INPUTS for p in run_dir.iterdir()):
            aside = move_aside(run_dir)
            print(f"llmkit: --resume never: moved the previous run to {aside}", file=sys.stderr)
        return Plan(identity=identity)
    if resume != "auto":
        problem = checkpoint_problem(resume)
        if problem:
            raise LlmkitError(f"resume: {resume} is not a complete checkpoint: {problem}")
        return Plan(resume_from=str(resume), identity=identity)
    if not run_dir.is_dir():
        return Plan(identity=identity)
    info = read_json_object(run_dir / RUN_INFO) if (run_dir / RUN_INFO).is_file() else {}
    own = info.get("run_id")
    checkpoints = _checkpoints(run_dir)
    marked = [(step, path) for step, path in checkpoints if read_marker(path) is not None]
    final_marker = read_marker(run_dir / FINAL)
    foreign = [p.name for _, p in marked if read_marker(p).get("run_id") != own or own is None]
    if final_marker is not None and (final_marker.get("run_id") != own or own is None):
        foreign.append(FINAL)
    if foreign:
        raise LlmkitError(f"{run_dir}: {foreign[-1]} was written by another run (or an older llmkit), so it is not "
                          "resumed; use --resume never (moves the old run aside) or another run_name")
    if not marked and final_marker is None:
        return Plan(identity=identity)  # nothing of a previous run to continue
    stored = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8")) if (run_dir / CONFIG).is_file() else {}
    changed = config_changes(result_config(stored), result_config(resolved))
    if changed:
        listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise LlmkitError(f"{run_dir}: the config changed since this run started ({listed}); to start over use "
                          "--resume never (moves the old run aside) or another run_name")
    identity = {"run_id": own, "config_hash": info.get("config_hash", identity["config_hash"])}
    non_result = config_changes({k: v for k, v in stored.items() if k in _NON_RESULT_KEYS},
                                {k: v for k, v in resolved.items() if k in _NON_RESULT_KEYS})
    plan = Plan(identity=identity, resumed_changes=non_result, fresh=False)
    damaged = []
    if final_marker is not None:
        problem = checkpoint_problem(run_dir / FINAL)
        if not problem:
            plan.finished = f"{run_dir} is complete ({FINAL}/ written {final_marker.get('written', '?')}); nothing to do"
            return plan
        damaged.append(f"{FINAL}/ ({problem})")
    for step, path in reversed(marked):
        problem = checkpoint_problem(path)
        if problem:
            damaged.append(f"{path.name} ({problem})")
            continue
        if damaged:
            print(f"llmkit: warning: skipping damaged {'; '.join(damaged)}; resuming from {path.name}", file=sys.stderr)
        if _finished_at(path):
            if not save_final:
                plan.finished = f"{run_dir} is complete (training ended at {path.name}); nothing to do"
            else:
                plan.final_from = str(path)
            return plan
        plan.resume_from = str(path)
        return plan
    print(f"llmkit: warning: no checkpoint of {run_dir} verifies ({'; '.join(damaged)}); starting from step 0",
          file=sys.stderr)
    return plan


def record_start(run_dir: Path, plan: Plan, info: dict) -> dict:
    """run_info.json contents: this run's identity and, on each resume, the step and any non-result keys changed."""
    path = run_dir / RUN_INFO
    if plan.fresh or not path.is_file():
        return info | plan.identity | {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "resumes": []}
    old = read_json_object(path)
    entry = {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "from": plan.resume_from or plan.final_from,
             "argv": info.get("argv"), "changed": {k: list(v) for k, v in plan.resumed_changes.items()}}
    return old | {"resumes": [*old.get("resumes", []), entry]}
