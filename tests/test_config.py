"""Recipe parsing: precedence, typing, and one-line errors for bad keys."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from llmkit.config import build_args, load_recipe, parse_cli_overrides
from llmkit.errors import LlmkitError
from llmkit.train import gradient_accumulation


@dataclass
class Alpha:
    learning_rate: float = 1e-3
    epochs: int = 1
    name: str = "a"
    use_peft: bool = False
    modules: list[str] | None = None
    report_to: str | list[str] | None = "all"


@dataclass
class Beta:
    epochs: int = 1  # shared with Alpha: set in both
    mode: str = field(default="x")


def test_precedence_default_then_yaml_then_cli(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 2.0e-4\nepochs: 3\nname: from_yaml\n")
    alpha, beta = build_args((Alpha, Beta), load_recipe(recipe), parse_cli_overrides(["--epochs", "5"]), recipe)
    assert alpha.learning_rate == 2e-4  # YAML over default
    assert alpha.epochs == 5 and beta.epochs == 5  # CLI over YAML, in every dataclass that has the key
    assert alpha.name == "from_yaml"
    assert beta.mode == "x"  # default kept


def test_values_are_typed_from_yaml_and_cli(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1e-5\nmodules: [q_proj, v_proj]\n")  # PyYAML reads 1e-5 as a string
    cli = parse_cli_overrides(["--use_peft", "--epochs=2", "--report_to", "none"])
    alpha, _ = build_args((Alpha, Beta), load_recipe(recipe), cli, recipe)
    assert alpha.learning_rate == pytest.approx(1e-5) and isinstance(alpha.learning_rate, float)
    assert alpha.modules == ["q_proj", "v_proj"]
    assert alpha.use_peft is True and alpha.epochs == 2
    assert alpha.report_to == "none"  # a real value of the option, not None
    alpha, _ = build_args((Alpha, Beta), {}, parse_cli_overrides(["--modules", "a,b", "--report_to", "null"]))
    assert alpha.modules == ["a", "b"] and alpha.report_to is None


def test_unknown_yaml_key_names_key_file_and_suggestion(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lerning_rate: 1.0e-4\n")
    with pytest.raises(LlmkitError) as err:
        build_args((Alpha, Beta), load_recipe(recipe), {}, recipe)
    message = str(err.value)
    assert "'lerning_rate'" in message and str(recipe) in message and "'learning_rate'" in message
    assert "\n" not in message


def test_unknown_cli_key_and_bad_value():
    with pytest.raises(LlmkitError, match=r"command line: unknown key 'epoch'; did you mean 'epochs'"):
        build_args((Alpha, Beta), {}, parse_cli_overrides(["--epoch", "2"]))
    with pytest.raises(LlmkitError, match=r"epochs='two' is not a valid int"):
        build_args((Alpha, Beta), {}, {"epochs": "two"})
    with pytest.raises(LlmkitError, match="expected --key value"):
        parse_cli_overrides(["epochs", "2"])


def test_recipe_file_errors(tmp_path):
    with pytest.raises(LlmkitError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")
    nested = tmp_path / "nested.yaml"
    nested.write_text(yaml.safe_dump({"model": {"name": "x"}}))
    with pytest.raises(LlmkitError, match="'model' is nested"):
        load_recipe(nested)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(LlmkitError, match="not valid YAML"):
        load_recipe(broken)


@pytest.mark.parametrize("global_batch, micro, world, expected", [(32, 4, 2, 4), (8, 8, 1, 1), (16, 2, 8, 1)])
def test_gradient_accumulation_from_global_batch(global_batch, micro, world, expected):
    assert gradient_accumulation(global_batch, micro, world) == expected


@pytest.mark.parametrize("global_batch, micro, world", [(30, 4, 2), (4, 8, 1), (0, 1, 1), (-8, 1, 1)])
def test_gradient_accumulation_that_does_not_divide_fails(global_batch, micro, world):
    with pytest.raises(LlmkitError, match="global_batch_size"):
        gradient_accumulation(global_batch, micro, world)


@dataclass
class ArgsBeforeRename:  # transformers 5.17's TrainingArguments: no activation_checkpointing field yet
    gradient_checkpointing: bool = False


def test_renamed_key_maps_to_the_older_name_where_only_that_exists(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("activation_checkpointing: true\n")
    (args,) = build_args((ArgsBeforeRename,), load_recipe(recipe), {}, recipe)
    assert args.gradient_checkpointing is True
    (args,) = build_args((ArgsBeforeRename,), {}, parse_cli_overrides(["--activation_checkpointing", "false"]))
    assert args.gradient_checkpointing is False
