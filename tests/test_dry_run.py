"""`llmkit train --dry_run` on a machine without the target GPUs: every shipped recipe validates under its documented
preset and process count, lists what only the GPU node can check, and prints the plan."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import yaml

from conftest import REPO, finetune_recipe
from llmkit.cli import main as cli_main

RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")


def documented_launch(recipe: Path) -> tuple[str, int]:
    """The preset and process count recipes/README.md gives for this recipe."""
    if "mini" in recipe.stem or "tiny" in recipe.stem:
        return "ddp", 1
    if recipe.parent.name in ("embed", "pretrain"):
        return "zero2", 8
    if recipe.stem.endswith("_released"):  # its micro batch is part of the objective: 4 GPUs x 16 x 1 accumulation
        return "zero3", 4
    if recipe.parent.name == "unlearn" and recipe.stem.endswith("llama32_1b"):
        return "ddp", 8
    return "zero3", 8


def plan_value(err: str, prefix: str) -> str:
    return next(line for line in err.splitlines() if line.startswith(prefix))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_every_recipe_dry_runs_on_this_cpu_machine(recipe: Path, capsys):
    data = yaml.safe_load(recipe.read_text())
    preset, world = documented_launch(recipe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli_main(["train", str(recipe), "--accelerate", preset, "--num_processes", str(world), "--dry_run"])
    err = capsys.readouterr().err
    assert code == 0, err
    # llmkit's own recipes use no key transformers deprecates
    assert not [w for w in caught if "`gradient_checkpointing` is deprecated" in str(w.message)]
    gpu_only = [line for line in err.splitlines() if line.startswith("llmkit: checked on the GPU node only: ")]
    assert any(": bf16: " in line for line in gpu_only) == bool(data.get("bf16"))
    assert any("NCCL" in line for line in gpu_only) == (world > 1)
    micro, gbs = data["per_device_train_batch_size"], data["global_batch_size"]
    assert plan_value(err, "llmkit: plan: world size") == (
        f"llmkit: plan: world size {world}, micro batch {micro}/GPU, gradient accumulation {gbs // (micro * world)}")
    length = data.get("max_length") or data.get("max_seq_length") or data.get("block_size")
    assert plan_value(err, "llmkit: plan: global batch") == (
        f"llmkit: plan: global batch {gbs} sequences, {gbs * length:,} tokens at {length} tokens/sequence (at most)")
    assert plan_value(err, "llmkit: launch: ").endswith(f"--num_processes {world} --num_machines 1 --machine_rank 0 "
                                                        f"--main_process_port " + err.split("--main_process_port ")[1]
                                                        .split()[0] + f" -m llmkit.train {recipe}")


def test_steps_and_warmup_follow_the_dataset_size(tmp_path, capsys):
    """tofu-mini's forget10 is on this machine: steps per epoch are counted from its rows, as the Trainer does."""
    rows = sum(1 for _ in (REPO / "llmkit/assets/tofu_mini/forget10.jsonl").open())
    recipe = finetune_recipe(tmp_path, dataset_config="forget10", global_batch_size=8, per_device_train_batch_size=2,
                             max_steps=-1, num_train_epochs=3, warmup_steps=0.2, lr_scheduler_type="cosine")
    assert cli_main(["train", str(recipe), "--num_processes", "2", "--dry_run"]) == 0
    err = capsys.readouterr().err
    # 2 ranks × micro 2 × accumulation 2; each rank reads ceil(rows/2) rows in batches of 2
    per_epoch = math.ceil(math.ceil(math.ceil(rows / 2) / 2) / 2)
    total = 3 * per_epoch
    warmup = math.ceil(0.2 * total)
    assert plan_value(err, "llmkit: plan: optimizer steps") == (
        f"llmkit: plan: optimizer steps: {per_epoch} per epoch ({rows} rows), {total} in total")
    assert plan_value(err, "llmkit: plan: LR schedule") == (
        f"llmkit: plan: LR schedule cosine: warmup {warmup} steps, decay over {total - warmup} steps")


def test_a_real_error_still_fails_in_one_line_on_a_login_node(tmp_path, capsys):
    """Setting the GPU checks aside must not hide the recipe's own errors (fp16 and bf16 together stay an error)."""
    recipe = finetune_recipe(tmp_path, bf16=True, fp16=True)
    assert cli_main(["train", str(recipe), "--dry_run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "At most one of fp16 and bf16" in err


def test_tf32_and_flash_attention_are_left_to_the_gpu_node(tmp_path, capsys):
    recipe = finetune_recipe(tmp_path, bf16=True, tf32=True, attn_implementation="flash_attention_2")
    assert cli_main(["train", str(recipe), "--dry_run"]) == 0
    gpu_only = [line.removeprefix("llmkit: checked on the GPU node only: ").split(":")[0]
                for line in capsys.readouterr().err.splitlines() if "checked on the GPU node only" in line]
    assert gpu_only == ["bf16", "tf32", "attn_implementation flash_attention_2"]


def test_memory_above_the_gpu_is_a_warning_not_an_error(tmp_path, capsys):
    recipe = finetune_recipe(tmp_path)
    assert cli_main(["train", str(recipe), "--dry_run"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert cli_main(["train", str(recipe), "--dry_run", "--gpu_memory_gb", "0.001"]) == 0
    assert "is above --gpu_memory_gb 0.001" in plan_value(capsys.readouterr().err, "llmkit: warning: ")


def test_fsdp_is_checked_on_the_gpu_node_only(tmp_path, capsys):
    recipe = finetune_recipe(tmp_path, global_batch_size=16)
    assert cli_main(["train", str(recipe), "--accelerate", "fsdp", "--num_processes", "2", "--dry_run"]) == 0
    assert "llmkit: checked on the GPU node only: FSDP: accelerate runs it on GPUs only" in capsys.readouterr().err
    # without --dry_run it still stops before launching, in one line
    assert cli_main(["train", str(recipe), "--accelerate", "fsdp", "--num_processes", "2"]) == 2
    assert "--accelerate fsdp needs GPUs" in capsys.readouterr().err


def test_lora_targets_are_not_judged_on_the_stand_in_config(tmp_path, capsys):
    """Phi-3 names its attention qkv_proj; the tiny Llama standing in for an unreachable config has no such module."""
    recipe = finetune_recipe(tmp_path, model_name_or_path="microsoft/Phi-3-mini-4k-instruct", use_peft=True,
                             lora_target_modules=["qkv_proj"])
    assert cli_main(["train", str(recipe), "--dry_run"]) == 0
    err = capsys.readouterr().err
    assert "LoRA targets are checked once the model's config is readable" in err


@pytest.mark.parametrize("drop_last", [False, True])
def test_planned_steps_are_the_steps_the_trainer_takes(tmp_path, capsys, tiny_model_path, drop_last):
    """30 rows in micro batches of 4: 8 batches, or 7 when the last, partial one is dropped."""
    from llmkit.runs import read_metrics
    from llmkit.train import main as train_main

    recipe = finetune_recipe(tmp_path, dataset_config="forget05", global_batch_size=4, per_device_train_batch_size=4,
                             max_steps=-1, num_train_epochs=1, dataloader_drop_last=drop_last, save_final=False)
    assert cli_main(["train", str(recipe), "--dry_run"]) == 0
    planned = plan_value(capsys.readouterr().err, "llmkit: plan: optimizer steps")
    assert train_main([str(recipe)]) == 0
    taken = read_metrics(tmp_path / "runs" / "recipe" / "metrics.jsonl")[-1]["step"]
    assert taken == (7 if drop_last else 8)
    assert planned == f"llmkit: plan: optimizer steps: {taken} per epoch (30 rows), {taken} in total"
