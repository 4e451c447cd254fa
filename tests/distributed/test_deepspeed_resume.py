"""ZeRO-2 on 2 CPU processes: checkpoint markers carry a SHA-256 of every file DeepSpeed unpickles, a changed file
is refused before DeepSpeed opens it, and the resume from the previous checkpoint retrains the same curve."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import finetune_recipe, python_env
from llmkit.runs import read_metrics

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def train(recipe) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "llmkit.cli", "train", str(recipe), "--accelerate", "zero2", "--num_processes", "2"]
    done = subprocess.run(cmd, env=python_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_zero2_resume_refuses_a_changed_deepspeed_file_and_retrains_the_same_curve(tmp_path, tiny_model_path):
    recipe = finetune_recipe(tmp_path, max_steps=4, save_strategy="steps", save_steps=2, global_batch_size=8,
                             per_device_train_batch_size=4, save_final=False)
    run = tmp_path / "runs" / "recipe"
    train(recipe)
    first = read_metrics(run / "metrics.jsonl")
    marker = json.loads((run / "checkpoint-4" / "COMPLETE").read_text())
    pickled = [name for name in marker["files"] if name.startswith("global_step4/") and name.endswith(".pt")]
    assert pickled and all("sha256" in marker["files"][name] for name in pickled)

    states = run / "checkpoint-4" / pickled[0]
    data = bytearray(states.read_bytes())
    data[-16] ^= 0xFF  # same size: only the digest can tell
    states.write_bytes(bytes(data))
    done = train(recipe)
    warnings = [line for line in done.stderr.splitlines() if "llmkit: warning" in line]
    assert len(warnings) == 1 and "SHA-256" in warnings[0] and "resuming from checkpoint-2" in warnings[0]
    again = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in again] == [1, 2, 3, 4]
    assert [r["loss"] for r in again] == pytest.approx([r["loss"] for r in first], rel=1e-4)


def test_zero2_run_stopped_before_final_gets_final_from_its_last_checkpoint(tmp_path, tiny_model_path):
    """Training had ended at checkpoint-2, final/ was not written: the re-run writes it from that checkpoint
    under DeepSpeed too (its engine exists only once training starts), without another step."""
    import torch
    from safetensors.torch import load_file

    recipe = finetune_recipe(tmp_path, max_steps=2, save_strategy="steps", save_steps=2, global_batch_size=8,
                             per_device_train_batch_size=4, save_final=False)
    run = tmp_path / "runs" / "recipe"
    train(recipe)
    cmd = [sys.executable, "-m", "llmkit.cli", "train", str(recipe), "--accelerate", "zero2", "--num_processes", "2",
           "--save_final", "true"]
    done = subprocess.run(cmd, env=python_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]
    final, last = load_file(run / "final" / "model.safetensors"), load_file(run / "checkpoint-2" / "model.safetensors")
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)
    assert not any(p.name.startswith(("global_step", "latest")) for p in (run / "final").iterdir())
