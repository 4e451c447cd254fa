"""Every shipped recipe parses into its task's dataclasses, with a global batch that divides on its target world."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO
from llmkit.train import prepare

RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_recipe_parses(recipe: Path):
    data = yaml.safe_load(recipe.read_text())
    tiny = str(data.get("model_name_or_path", "")).startswith("tiny:") or "mini" in recipe.stem
    # Real recipes target 8 GPUs; bf16 is only refused here because this machine has no GPU.
    overrides = [] if tiny else ["--bf16", "false"]
    module, instances = prepare(str(recipe), overrides, world=1 if tiny else 8)
    run, train_args = instances[0], instances[-1]
    assert run.task == data["task"]
    assert train_args.output_dir.endswith(data.get("run_name", recipe.stem))


def test_accelerate_presets_exist():
    assert {p.stem for p in (REPO / "recipes" / "accelerate").glob("*.yaml")} == {"ddp", "zero2", "zero3", "fsdp"}
