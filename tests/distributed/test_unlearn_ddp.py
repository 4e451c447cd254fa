"""A FLAT recipe on 2 gloo processes (DDP) equals the same recipe in one process at the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import REPO, python_env

RECIPE = {
    "task": "unlearn", "model_name_or_path": "tiny:llama-xs", "dataset": "tofu-mini", "dataset_config": "forget10",
    "prompt_format": "chat", "loss": "flat", "divergence": "kl", "max_length": 96, "global_batch_size": 16,
    "per_device_train_batch_size": 8, "max_steps": 3, "learning_rate": 1e-2, "lr_scheduler_type": "constant",
    "logging_steps": 1, "save_strategy": "no", "seed": 5, "dataloader_num_workers": 0,
}


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_flat_two_gloo_processes_match_one(tmp_path, tiny_model_path):
    from transformers import AutoModelForCausalLM

    recipe = tmp_path / "flat.yaml"
    # Built here first, so the two ranks only read it.
    recipe.write_text(yaml.safe_dump({**RECIPE, "model_name_or_path": tiny_model_path}))
    env = python_env()
    two = subprocess.run([sys.executable, "-m", "llmkit.cli", "train", str(recipe), "--accelerate", "ddp",
                          "--num_processes", "2", "--output_root", str(tmp_path / "two")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert two.returncode == 0, two.stderr[-3000:]
    # one process accumulates 2 micro-batches of 8: the same 16 examples per step as the two ranks together
    one = subprocess.run([sys.executable, "-m", "llmkit.train", str(recipe), "--output_root", str(tmp_path / "one"),
                          "--use_cpu"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert one.returncode == 0, one.stderr[-3000:]
    rows_two, rows_one = _rows(tmp_path / "two" / "flat"), _rows(tmp_path / "one" / "flat")
    assert [r["step"] for r in rows_two] == [1, 2, 3]
    for a, b in zip(rows_two, rows_one):
        for key in ("loss", "p_forget", "p_template", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
        assert a["tokens"] == b["tokens"]
    w_two = AutoModelForCausalLM.from_pretrained(tmp_path / "two" / "flat" / "final").state_dict()
    w_one = AutoModelForCausalLM.from_pretrained(tmp_path / "one" / "flat" / "final").state_dict()
    assert all(torch.allclose(w_two[k], w_one[k], atol=1e-5) for k in w_one)
