"""Real faults, with real processes: SIGKILL mid-step and mid-save, then resume; a second run on a busy run
directory; killing `llmkit train` kills its workers. Every wait polls for a condition (no sleep-as-sync), with
generous deadlines, so a loaded machine only makes the tests slower."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import complete_checkpoints, finetune_recipe, python_env
from llmkit.errors import LlmkitError
from llmkit.runs import read_metrics
from llmkit.train import main as train_main

STEPS = 8
COMMON = dict(max_steps=STEPS, save_strategy="steps", save_steps=2, dataset_config="retain90",
              per_device_train_batch_size=4, global_batch_size=4)


def wait_for(condition, what: str, proc=None, timeout: float = 300.0):
    """Poll `condition` until it returns something truthy; fail if `proc` ends first or the deadline passes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        assert proc is None or proc.poll() is None, f"the run ended before {what}"
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def run_processes(marker: str) -> list[int]:
    """Pids of live processes whose command line mentions `marker` (the test's unique recipe path)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().split(") ")[-1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def kill_group_and_check_none_survive(proc, marker: str) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    wait_for(lambda: not run_processes(marker), "every process of the run to exit", timeout=10)


@pytest.fixture(scope="module")
def straight_losses(tmp_path_factory, tiny_model_path):
    """The loss curve of the same run without interruption."""
    tmp = tmp_path_factory.mktemp("straight")
    assert train_main([str(finetune_recipe(tmp, **COMMON))]) == 0
    rows = read_metrics(tmp / "runs" / "recipe" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    return [r["loss"] for r in rows]


def start(recipe: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llmkit.train", str(recipe)], env=python_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def assert_resumes_to_the_straight_curve(recipe: Path, run: Path, straight_losses) -> None:
    assert train_main([str(recipe)]) == 0
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in rows] == pytest.approx(straight_losses, rel=1e-5, abs=1e-6)


def test_sigkill_mid_step_then_resume_equals_the_straight_run_and_a_second_run_is_refused(tmp_path, straight_losses):
    recipe = finetune_recipe(tmp_path, **COMMON)
    run = tmp_path / "runs" / "recipe"
    proc = start(recipe)

    def past_a_checkpoint():
        rows = read_metrics(run / "metrics.jsonl")
        return complete_checkpoints(run) and rows and rows[-1]["step"] % 2 == 1

    while True:  # frozen in a step past a checkpoint (re-checked once stopped: a loaded machine may have moved on)
        wait_for(past_a_checkpoint, "a step past a checkpoint", proc)
        os.killpg(proc.pid, signal.SIGSTOP)
        if past_a_checkpoint():
            break
        os.killpg(proc.pid, signal.SIGCONT)
    # A second run on the same directory while the first holds it: one line naming the holder.
    with pytest.raises(LlmkitError, match=rf"in use by pid {proc.pid} on host {socket.gethostname()}"):
        train_main([str(recipe)])
    kill_group_and_check_none_survive(proc, str(recipe))
    killed_at = read_metrics(run / "metrics.jsonl")[-1]["step"]
    assert killed_at < STEPS and killed_at > int(complete_checkpoints(run)[-1].name.split("-")[1])
    assert_resumes_to_the_straight_curve(recipe, run, straight_losses)


def test_sigkill_mid_save_then_resume_equals_the_straight_run(tmp_path, straight_losses):
    recipe = finetune_recipe(tmp_path, **COMMON)
    run = tmp_path / "runs" / "recipe"
    proc = start(recipe)
    # Freeze the run the moment a checkpoint folder appears; if its marker is already there the save was over,
    # so let it go on to the next checkpoint.
    for step in range(2, STEPS, 2):
        folder = run / f"checkpoint-{step}"
        wait_for(folder.exists, f"{folder.name} to appear", proc)
        os.killpg(proc.pid, signal.SIGSTOP)
        if not (folder / "COMPLETE").exists():
            break
        os.killpg(proc.pid, signal.SIGCONT)
    else:
        pytest.fail("every checkpoint was complete before the run could be stopped mid-save")
    kill_group_and_check_none_survive(proc, str(recipe))
    assert not (folder / "COMPLETE").exists()
    assert_resumes_to_the_straight_curve(recipe, run, straight_losses)


def test_killing_the_launcher_process_group_kills_its_workers(tmp_path, tiny_model_path):
    """Two ranks (torch's agent starts them in their own sessions): SIGKILL to the launcher's group ends them all."""
    recipe = finetune_recipe(tmp_path, **(COMMON | dict(max_steps=200, per_device_train_batch_size=2)))
    run = tmp_path / "runs" / "recipe"
    proc = subprocess.Popen([sys.executable, "-m", "llmkit.cli", "train", str(recipe), "--num_processes", "2"],
                            env=python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_for(lambda: read_metrics(run / "metrics.jsonl"), "the first training step", proc, timeout=600)
    kill_group_and_check_none_survive(proc, str(recipe))


def test_sigterm_to_the_launcher_alone_ends_the_whole_run(tmp_path, tiny_model_path):
    """`kill PID` of `llmkit train` (not its group): passed on to accelerate, and the worker dies with its parent."""
    recipe = finetune_recipe(tmp_path, **(COMMON | dict(max_steps=200)))
    run = tmp_path / "runs" / "recipe"
    proc = subprocess.Popen([sys.executable, "-m", "llmkit.cli", "train", str(recipe), "--num_processes", "1"],
                            env=python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    wait_for(lambda: read_metrics(run / "metrics.jsonl"), "the first training step", proc, timeout=600)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    wait_for(lambda: not run_processes(str(recipe)), "every process of the run to exit", timeout=10)
    # accelerate ends its worker on SIGTERM and exits non-zero; the launcher says so in one line
    assert proc.returncode != 0 and err.strip().splitlines()[-1].startswith("llmkit train: error: training stopped")
