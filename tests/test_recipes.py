"""Every shipped recipe parses into its task's dataclasses, with a global batch that divides on its target world."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO
from llmkit.train import prepare

RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")


def test_accelerate_presets_exist():
    assert {p.stem for p in (REPO / "recipes" / "accelerate").glob("*.yaml")} == {"ddp", "zero2", "zero3", "fsdp"}
