"""The demo refuses to resume on runs built from another tiny model, and evaluates every other checkpoint."""

import pytest

from llmkit.demo import check_base_model
from llmkit.errors import LlmkitError


def test_resume_on_runs_from_another_base_model_is_refused(tmp_path):
    check_base_model(tmp_path, "llama-v1-aaaa")
    check_base_model(tmp_path, "llama-v1-aaaa")  # same build: resume
    assert (tmp_path / "BASE_MODEL").read_text() == "llama-v1-aaaa\n"
    with pytest.raises(LlmkitError, match="runs start from tiny model llama-v1-aaaa, this build is llama-v1-bbbb"):
        check_base_model(tmp_path, "llama-v1-bbbb")
    assert (tmp_path / "BASE_MODEL").read_text() == "llama-v1-aaaa\n"  # nothing overwritten


def test_scaling_stage_schedules_differ_in_shape_only():
    """The law is fitted for one peak LR, warmup and horizon: the predicted run must share them with the fitted two."""
    import yaml

    from conftest import REPO
    from llmkit.demo import FITTED, PREDICTED, SCHEDULES
    from llmkit.scaling.schedules import spec_settings

    settings = {name: spec_settings(spec) for name, spec in SCHEDULES.items()}
    shared = {key: settings[PREDICTED][key] for key in ("peak", "steps", "warmup")}
    assert all({key: settings[name][key] for key in shared} == shared for name in FITTED)
    recipe = yaml.safe_load((REPO / "recipes" / "pretrain" / "tiny_demo.yaml").read_text())
    assert recipe["lr_schedule"] == SCHEDULES["constant"]


def test_every_other_checkpoint_and_the_last_are_evaluated(tmp_path):
    from llmkit.demo import evaluated_checkpoints

    for step in (5, 10, 15, 20, 25, 30, 35, 40, 45):  # 9 epochs of 5 steps, listed out of order on purpose
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "final").mkdir()
    chosen = [p.name for p in evaluated_checkpoints(tmp_path, 2)]
    assert chosen == ["checkpoint-10", "checkpoint-20", "checkpoint-30", "checkpoint-40", "checkpoint-45"]
    assert len(evaluated_checkpoints(tmp_path, 1)) == 9
