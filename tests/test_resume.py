"""Resume: interrupted-and-resumed training equals uninterrupted training (kills with real processes: test_faults.py)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from conftest import complete_checkpoints, finetune_recipe, stop_at
from llmkit.errors import LlmkitError
from llmkit.rundir import plan_run
from llmkit.runs import read_metrics
from llmkit.train import Session, main as train_main


def test_two_steps_then_resume_equals_four_steps(tmp_path, tiny_model_path, monkeypatch):
    common = dict(max_steps=4, save_strategy="steps", save_steps=2, dataset_config="forget05")
    straight = finetune_recipe(tmp_path / "a", **common)
    assert train_main([str(straight)]) == 0

    resumed = finetune_recipe(tmp_path / "b", **common)
    original = Session.callbacks
    monkeypatch.setattr(Session, "callbacks", lambda self: original(self) + [stop_at(2)])
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


def test_resume_path_must_be_a_verified_checkpoint(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(LlmkitError, match="not a complete checkpoint: no llmkit COMPLETE marker"):
        plan_run(tmp_path, str(tmp_path / "checkpoint-3"), {}, save_final=True)
    assert plan_run(tmp_path, "auto", {}, save_final=True).resume_from is None  # incomplete checkpoints are ignored
    assert plan_run(tmp_path / "none", "never", {}, save_final=True).resume_from is None
