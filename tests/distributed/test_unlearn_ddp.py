"""An unlearning recipe on 2 gloo processes (DDP) equals the same recipe in one process at the same global batch:
FLAT, IdkDPO (the starting model's reference log-probs, computed on every rank) and RMU (a frozen copy of the first
layers on every rank, a few trainable matrices)."""

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


CASES = {
    "flat": ({}, ("p_forget", "p_template")),
    "idk_dpo": ({"loss": "idk_dpo", "divergence": None, "beta": 0.5},
                ("log_ratio_template", "log_ratio_forget")),
    "rmu": ({"loss": "rmu", "divergence": None, "retain_config": "retain90", "layer": 0, "steering_coeff": 4.0,
             "trainable_params": r"model\.layers\.0\.mlp\.down_proj\.weight"}, ("rmu_forget", "rmu_retain")),
}


# FLAT stays in the default suite; the two baselines add ~2.5 min each on a loaded 2-core machine.
@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n == "flat" else pytest.mark.slow) for n in sorted(CASES)])
def test_two_gloo_processes_match_one(tmp_path, tiny_model_path, name):
    from transformers import AutoModelForCausalLM

    overrides, parts = CASES[name]
    recipe = tmp_path / f"{name}.yaml"
    # Built here first, so the two ranks only read it.
    keys = {k: v for k, v in {**RECIPE, **overrides, "model_name_or_path": tiny_model_path}.items() if v is not None}
    recipe.write_text(yaml.safe_dump(keys))
    env = python_env()
    two = subprocess.run([sys.executable, "-m", "llmkit.cli", "train", str(recipe), "--accelerate", "ddp",
                          "--num_processes", "2", "--output_root", str(tmp_path / "two")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert two.returncode == 0, two.stderr[-3000:]
    # one process accumulates 2 micro-batches of 8: the same 16 examples per step as the two ranks together
    one = subprocess.run([sys.executable, "-m", "llmkit.train", str(recipe), "--output_root", str(tmp_path / "one"),
                          "--use_cpu"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert one.returncode == 0, one.stderr[-3000:]
    rows_two, rows_one = _rows(tmp_path / "two" / name), _rows(tmp_path / "one" / name)
    assert [r["step"] for r in rows_two] == [1, 2, 3]
    for a, b in zip(rows_two, rows_one):
        for key in ("loss", "grad_norm", *parts):
            assert a[key] == pytest.approx(b[key], rel=1e-4), (key, a["step"])
        assert a["tokens"] == b["tokens"]
    w_two = AutoModelForCausalLM.from_pretrained(tmp_path / "two" / name / "final").state_dict()
    w_one = AutoModelForCausalLM.from_pretrained(tmp_path / "one" / name / "final").state_dict()
    assert all(torch.allclose(w_two[k], w_one[k], atol=1e-5) for k in w_one)
