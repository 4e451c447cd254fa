"""Resume: interrupted-and-resumed training equals uninterrupted training, and metrics.jsonl stays exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from conftest import finetune_recipe, python_env
from llmkit.errors import LlmkitError
from llmkit.runs import complete_checkpoints, read_metrics, resolve_resume
from llmkit.train import Session, main as train_main


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def test_two_steps_then_resume_equals_four_steps(tmp_path, tiny_model_path, monkeypatch):
    common = dict(max_steps=4, save_strategy="steps", save_steps=2, dataset_config="forget05")
    straight = finetune_recipe(tmp_path / "a", **common)
    assert train_main([str(straight)]) == 0

    resumed = finetune_recipe(tmp_path / "b", **common)
    original = Session.callbacks
    monkeypatch.setattr(Session, "callbacks", lambda self: original(self) + [StopAt(2)])
    train_main([str(resumed), "--save_final", "false"])
    monkeypatch.setattr(Session, "callbacks", original)
    run_b = tmp_path / "b" / "runs" / "recipe"
    assert [p.name for p in complete_checkpoints(run_b)] == ["checkpoint-2"]
    assert train_main([str(resumed)]) == 0  # resume: auto picks checkpoint-2

    rows_a = read_metrics(tmp_path / "a" / "runs" / "recipe" / "metrics.jsonl")
    rows_b = read_metrics(run_b / "metrics.jsonl")
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4]
    for a, b in zip(rows_a, rows_b):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
        assert b["lr"] == pytest.approx(a["lr"])
    weights_a = load_file(tmp_path / "a" / "runs" / "recipe" / "final" / "model.safetensors")
    weights_b = load_file(run_b / "final" / "model.safetensors")
    for key in weights_a:
        torch.testing.assert_close(weights_b[key], weights_a[key], rtol=1e-5, atol=1e-6)


def test_resume_path_must_be_a_complete_checkpoint(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(LlmkitError, match="not a complete checkpoint"):
        resolve_resume(str(tmp_path / "checkpoint-3"), tmp_path)
    assert resolve_resume("auto", tmp_path) is None  # incomplete checkpoints are ignored
    assert resolve_resume("never", tmp_path) is None


def test_sigkill_mid_run_then_resume_loses_and_duplicates_no_metrics_line(tmp_path, tiny_model_path):
    recipe = finetune_recipe(tmp_path, max_steps=60, save_strategy="steps", save_steps=5,
                             dataset_config="retain90", per_device_train_batch_size=4, global_batch_size=4)
    run = tmp_path / "runs" / "recipe"
    cmd = [sys.executable, "-m", "llmkit.train", str(recipe)]
    proc = subprocess.Popen(cmd, env=python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        rows = read_metrics(run / "metrics.jsonl")
        if complete_checkpoints(run) and rows and rows[-1]["step"] >= 7 and rows[-1]["step"] % 5 != 0:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = read_metrics(run / "metrics.jsonl")[-1]["step"]
    last_checkpoint = int(complete_checkpoints(run)[-1].name.split("-")[1])
    assert killed_at > last_checkpoint  # lines past the checkpoint exist and must not be duplicated

    subprocess.run(cmd, env=python_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl")]
    assert steps == list(range(1, 61))
    times = [r["time"] for r in read_metrics(run / "metrics.jsonl")]
    assert times == sorted(times)
