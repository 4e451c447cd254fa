"""Re-runs and resumes never lose or silently change a result: finished runs are left alone, a changed config is
refused, `--resume never` moves the old run aside, only the run's own verified checkpoints are resumed, final/ is
swapped in whole, and run names stay inside output_root."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import finetune_recipe, stop_at
from llmkit.checkpoints import checkpoint_problem
from llmkit.errors import LlmkitError
from llmkit.runs import read_metrics
from llmkit.train import Session, main as train_main

COMMON = dict(max_steps=6, save_strategy="steps", save_steps=2, dataset_config="forget05")


def train_stopped_at(step: int, argv: list[str]) -> int:
    """train_main, stopped after `step` steps as if killed right after that step's checkpoint."""
    original = Session.callbacks
    Session.callbacks = lambda self: original(self) + [stop_at(step)]
    try:
        return train_main(argv)
    finally:
        Session.callbacks = original


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, tiny_model_path) -> Path:
    """A 6-step run stopped at step 4: checkpoint-2 and checkpoint-4, no final/."""
    tmp = tmp_path_factory.mktemp("stopped")
    assert train_stopped_at(4, [str(finetune_recipe(tmp, **COMMON)), "--save_final", "false"]) == 0
    return tmp / "runs" / "recipe"


def copy_of(run: Path, tmp_path: Path, **overrides) -> tuple[Path, Path]:
    """(recipe, run dir) of a copy of `run` under tmp_path, with the same recipe."""
    shutil.copytree(run, tmp_path / "runs" / "recipe")
    return finetune_recipe(tmp_path, **(COMMON | overrides)), tmp_path / "runs" / "recipe"


def checkpoint_problem(folder):
    from llmkit.checkpoints import checkpoint_problem

    return checkpoint_problem(folder)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resume_records_non_result_changes_and_a_rerun_leaves_the_finished_run_untouched(stopped_run, tmp_path, capsys):
    recipe, run = copy_of(stopped_run, tmp_path)
    assert train_main([str(recipe), "--logging_steps", "2"]) == 0
    info = json.loads((run / "run_info.json").read_text())
    (changed,) = [r["changed"] for r in info["resumes"]]
    assert changed["logging_steps"] == [1, 2] and changed["save_final"] == [False, True]
    assert set(changed) == {"logging_steps", "save_final", "output_dir", "output_root"}  # the copy moved the run
    assert info["resumes"][0]["from"].endswith("checkpoint-4")
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 6]
    before = snapshot(run)
    capsys.readouterr()

    assert train_main([str(recipe), "--logging_steps", "2"]) == 0
    assert snapshot(run) == before  # no step 7, no checkpoint-7, final/ unchanged
    assert "is complete" in capsys.readouterr().err


def test_a_changed_config_is_refused_in_one_line_naming_old_and_new(stopped_run, tmp_path):
    recipe, run = copy_of(stopped_run, tmp_path)
    before = snapshot(run)
    with pytest.raises(LlmkitError) as err:
        train_main([str(recipe), "--learning_rate", "1.0", "--max_steps", "3", "--dataset_config", "retain90"])
    message = str(err.value)
    assert "dataset_config 'forget05' -> 'retain90'" in message and "learning_rate 0.003 -> 1.0" in message
    assert "max_steps 6 -> 3" in message and "--resume never" in message and "\n" not in message
    assert snapshot(run) == before


def test_resume_never_moves_the_old_run_aside_and_auto_resumes_only_the_new_runs_checkpoints(stopped_run, tmp_path):
    recipe, run = copy_of(stopped_run, tmp_path)
    old = snapshot(run)
    assert train_stopped_at(1, [str(recipe), "--resume", "never", "--save_steps", "1", "--save_final", "false"]) == 0
    assert snapshot(run.with_name("recipe.prev-1")) == old
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1"]
    assert train_main([str(recipe), "--save_steps", "1"]) == 0  # resume: auto
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_a_checkpoint_written_by_another_run_is_not_resumed(stopped_run, tmp_path):
    from llmkit.checkpoints import write_marker

    recipe, run = copy_of(stopped_run, tmp_path)
    write_marker(run / "checkpoint-4", {"run_id": "someone-else", "config_hash": "x"})
    with pytest.raises(LlmkitError, match="checkpoint-4 was written by another run"):
        train_main([str(recipe)])


@pytest.mark.parametrize("damage", ["weights deleted", "safetensors truncated", "optimizer truncated"])
def test_a_damaged_checkpoint_is_found(stopped_run, tmp_path, damage):
    checkpoint = tmp_path / "checkpoint-4"
    shutil.copytree(stopped_run / "checkpoint-4", checkpoint)
    assert checkpoint_problem(checkpoint) is None
    weights, optimizer = checkpoint / "model.safetensors", checkpoint / "optimizer.pt"
    if damage == "weights deleted":
        weights.unlink()
    else:
        target = weights if damage == "safetensors truncated" else optimizer
        target.write_bytes(target.read_bytes()[:1000])
    problem = checkpoint_problem(checkpoint)
    assert problem and (optimizer.name if damage == "optimizer truncated" else weights.name) in problem


def test_resume_falls_back_to_the_newest_good_checkpoint_with_one_warning(stopped_run, tmp_path, capsys):
    recipe, run = copy_of(stopped_run, tmp_path)
    weights = run / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    assert train_main([str(recipe)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "checkpoint-4" in warnings[0] and "resuming from checkpoint-2" in warnings[0]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    assert checkpoint_problem(run / "checkpoint-4") is None  # saved again, whole, with a new marker


def test_deepspeed_files_are_checked_against_their_digest_before_loading(tmp_path):
    """A file DeepSpeed would unpickle, replaced by one of the same size or planted beside it, is refused."""
    from llmkit.checkpoints import write_marker
    from llmkit.rundir import plan_run

    checkpoint = tmp_path / "checkpoint-2"
    (checkpoint / "global_step2").mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, checkpoint / "model.safetensors")
    states = checkpoint / "global_step2" / "mp_rank_00_model_states.pt"
    torch.save({"module": {"w": torch.zeros(4)}}, states)
    (checkpoint / "latest").write_text("global_step2")
    write_marker(checkpoint, {"run_id": "r", "config_hash": "h"})
    assert checkpoint_problem(checkpoint) is None
    planted = checkpoint / "global_step2" / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt"
    planted.write_bytes(b"x")
    assert "was not there" in checkpoint_problem(checkpoint)
    planted.unlink()
    data = bytearray(states.read_bytes())
    data[-20] ^= 0xFF
    states.write_bytes(bytes(data))
    assert "SHA-256" in checkpoint_problem(checkpoint)
    with pytest.raises(LlmkitError, match="not a complete checkpoint.*SHA-256"):
        plan_run(tmp_path / "run", str(checkpoint), {}, save_final=True)


def test_merge_lora_swaps_final_in_whole_and_keeps_its_eval_results(tmp_path, tiny_model_path):
    recipe = finetune_recipe(tmp_path, max_steps=1, use_peft=True, lora_r=4, lora_alpha=8, merge_lora=True)
    final = tmp_path / "runs" / "recipe" / "final"
    (final / "eval").mkdir(parents=True)
    (final / "eval" / "tofu_forget10.json").write_text('{"forget_quality": 0.5}\n')
    assert train_main([str(recipe)]) == 0
    assert (final / "eval" / "tofu_forget10.json").read_text() == '{"forget_quality": 0.5}\n'
    assert (final / "model.safetensors").is_file() and not (final / "adapter_config.json").exists()
    assert checkpoint_problem(final) is None
    assert sorted(p.name for p in final.parent.iterdir() if p.name.startswith("final")) == ["final"]


@pytest.mark.parametrize("name", ["../../escaped", "ABSOLUTE", "a/b", ".."])
def test_a_run_name_must_stay_inside_output_root(tmp_path, name):
    recipe = finetune_recipe(tmp_path / "inner")
    name = str(tmp_path / "escaped") if name == "ABSOLUTE" else name
    with pytest.raises(LlmkitError, match="run_name .* must be a plain folder name"):
        train_main([str(recipe), "--run_name", name])
    assert not any(tmp_path.rglob("escaped"))


def test_a_run_stopped_while_writing_final_gets_final_from_its_last_checkpoint_without_another_step(tmp_path):
    recipe = finetune_recipe(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    run = tmp_path / "runs" / "recipe"
    assert train_main([str(recipe), "--save_final", "false"]) == 0  # as if killed before final/ was written
    assert not (run / "final").exists()
    assert train_main([str(recipe)]) == 0
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2"]
    final, last = load_file(run / "final" / "model.safetensors"), load_file(run / "checkpoint-2" / "model.safetensors")
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)
    assert {"optimizer.pt", "scheduler.pt", "trainer_state.json"} <= {p.name for p in (run / "checkpoint-2").iterdir()}
    assert not any(p.name in ("optimizer.pt", "scheduler.pt", "trainer_state.json") or p.name.startswith("rng_state")
                   for p in (run / "final").iterdir())  # the model, not the training state
    assert checkpoint_problem(run / "final") is None


def test_resume_never_keeps_the_inputs_mined_into_the_run_directory(tmp_path):
    from llmkit.rundir import plan_run

    run = tmp_path / "runs" / "embed"
    (run / "mined").mkdir(parents=True)
    (run / "mined" / "rows.jsonl").write_text("{}\n")
    plan_run(run, "never", {}, save_final=True)
    assert not run.with_name("embed.prev-1").exists()  # only inputs: nothing to move aside
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    plan_run(run, "never", {}, save_final=True)
    assert (run / "mined" / "rows.jsonl").read_text() == "{}\n" and not (run / "metrics.jsonl").exists()
    assert sorted(p.name for p in run.with_name("embed.prev-1").iterdir()) == ["metrics.jsonl"]
