"""Shared fixtures: one tiny model per test session, built on demand; small recipes written to tmp dirs."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

# Before torch/transformers are imported anywhere: one thread (2 threads collapse under contention), no hub.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
# A per-session cache, so a stale tiny model from an older build recipe can never be picked up.
os.environ.setdefault("LLMKIT_CACHE", tempfile.mkdtemp(prefix="llmkit-test-cache-"))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    """The smallest tiny preset (hidden 64, 2 layers), built once per session."""
    from llmkit.tiny import resolve_model_path

    return resolve_model_path("tiny:llama-xs")


def finetune_recipe(tmp_path: Path, **overrides) -> Path:
    """A fast fine-tune recipe on tofu-mini with the tiny model; keys in `overrides` replace the defaults."""
    recipe = {
        "task": "finetune",
        "model_name_or_path": "tiny:llama-xs",
        "dataset": "tofu-mini",
        "dataset_config": "forget10",
        "max_length": 96,
        "global_batch_size": 8,
        "per_device_train_batch_size": 8,
        "max_steps": 4,
        "learning_rate": 3e-3,
        "lr_scheduler_type": "linear",
        "bf16": False,
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "no",
        "seed": 7,
        "output_root": str(tmp_path / "runs"),
        "dataloader_num_workers": 0,
    }
    recipe.update(overrides)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def python_env() -> dict:
    """Environment for subprocesses: this interpreter's venv first on PATH, repo importable."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env
