"""A multi-task embed recipe trains on 2 gloo processes under the ddp and zero3 presets (ddp used to deadlock at the
first step whose two ranks drew different tasks; zero3 used to save empty, partitioned weights), and final/ loads as
a SentenceTransformer whose weights are all there, with the trained LoRA adapter folded in."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import REPO, python_env


@pytest.mark.parametrize("preset", ["ddp", "zero3"])
def test_embed_recipe_trains_on_two_processes(preset, tmp_path, tiny_model_path):
    from llmkit.embed.cli import mine_main

    recipe = str(REPO / "recipes" / "embed" / "tiny_demo.yaml")
    # The model is built here first, so the two ranks only read it.
    common = ["--output_root", str(tmp_path), "--model_name_or_path", tiny_model_path]
    assert mine_main([recipe, *common]) == 0
    cmd = [sys.executable, "-m", "llmkit.cli", "train", recipe, "--accelerate", preset, "--num_processes", "2",
           *common, "--max_steps", "12", "--per_device_train_batch_size", "8"]
    done = subprocess.run(cmd, env=python_env(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]

    from sentence_transformers import SentenceTransformer

    from safetensors.torch import load_file

    final = tmp_path / "tiny_demo" / "final"
    weights = {k: v for f in final.rglob("*.safetensors") for k, v in load_file(f).items()}
    assert weights and all(v.numel() > 0 for v in weights.values())
    # merge_lora folded the trained adapter in: the projections differ from the base model's (LoRA's B starts at 0)
    base = {k.removeprefix("model."): v for k, v in load_file(f"{tiny_model_path}/model.safetensors").items()}
    projections = [k for k in weights if k.endswith("q_proj.weight")]
    assert projections and not any(k.startswith("base_model") or "lora_" in k for k in weights)
    assert all(not torch.equal(weights[k], base[k.removeprefix("model.")].to(weights[k].dtype)) for k in projections)
    model = SentenceTransformer(str(final), device="cpu")
    assert model.encode(["a query", "a document"]).shape[0] == 2
