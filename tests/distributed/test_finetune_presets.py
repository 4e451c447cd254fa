"""2 CPU processes on gloo run the fine-tune recipe under the ddp, zero2 and zero3 presets.

Each run's per-step loss must match a single-process run at the same global batch, and final/ must load with
from_pretrained. FSDP does not run on CPU through accelerate; its preset is checked for validity instead.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO, finetune_recipe, python_env
from llmkit.runs import read_metrics

pytestmark = pytest.mark.distributed
STEPS = 3


@pytest.fixture(scope="module")
def single_process_losses(tmp_path_factory, tiny_model_path):
    from llmkit.train import main as train_main

    tmp = tmp_path_factory.mktemp("single")
    recipe = finetune_recipe(tmp, max_steps=STEPS, global_batch_size=8, per_device_train_batch_size=8)
    assert train_main([str(recipe)]) == 0
    return [r["loss"] for r in read_metrics(tmp / "runs" / "recipe" / "metrics.jsonl")]


@pytest.mark.parametrize("preset", ["ddp", "zero2", "zero3"])
def test_two_process_run_matches_single_process(preset, tmp_path, single_process_losses):
    recipe = finetune_recipe(tmp_path, max_steps=STEPS, global_batch_size=8, per_device_train_batch_size=4)
    cmd = [sys.executable, "-m", "llmkit.cli", "train", str(recipe), "--accelerate", preset, "--num_processes", "2"]
    done = subprocess.run(cmd, env=python_env(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"recipes/accelerate/{preset}.yaml --num_processes 2" in done.stderr  # the printed command
    run = tmp_path / "runs" / "recipe"
    losses = [r["loss"] for r in read_metrics(run / "metrics.jsonl")]
    assert len(losses) == STEPS
    assert losses == pytest.approx(single_process_losses, rel=2e-3)

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run / "final")
    assert sum(p.numel() for p in model.parameters()) > 0
    config = (run / "config.yaml").read_text()
    assert "gradient_accumulation_steps: 1" in config and "per_device_train_batch_size: 4" in config


def test_fsdp_preset_is_a_valid_accelerate_config_and_refused_on_cpu(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "recipes" / "accelerate" / "fsdp.yaml"))
    assert config.distributed_type == "FSDP" and config.fsdp_config["fsdp_version"] == 2
    recipe = finetune_recipe(tmp_path)
    cmd = [sys.executable, "-m", "llmkit.cli", "train", str(recipe), "--accelerate", "fsdp", "--num_processes", "2"]
    done = subprocess.run(cmd, env=python_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert "fsdp needs GPUs" in done.stderr and len(done.stderr.strip().splitlines()) == 1
