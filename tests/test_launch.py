"""`llmkit train`: the accelerate command it prints, its checks before launch, and the Slurm template."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, finetune_recipe, pretrain_recipe, python_env
from llmkit.cli import main as cli_main
from llmkit.launch import free_port


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_dry_run_prints_the_exact_accelerate_command(tmp_path, capsys):
    recipe = finetune_recipe(tmp_path, global_batch_size=16, per_device_train_batch_size=4)
    code = cli_main(["train", str(recipe), "--accelerate", "zero3", "--num_processes", "2", "--dry_run",
                     "--learning_rate", "1e-4"])
    assert code == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"recipes/accelerate/zero3.yaml --num_processes 2 --num_machines 1 --machine_rank 0" in line
    assert line.endswith(f"-m llmkit.train {recipe} --learning_rate 1e-4")
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_bad_global_batch_fails_before_launch_with_one_line(tmp_path, capsys):
    recipe = finetune_recipe(tmp_path, global_batch_size=12, per_device_train_batch_size=4)
    assert cli_main(["train", str(recipe), "--num_processes", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("llmkit train: error: global_batch_size 12 is not a multiple of per_device_train_batch_size 4 "
                   "× 2 process(es) = 8")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override, message", [
    (["--model_name_or_path", "/nonexistent/model"], "model_name_or_path: /nonexistent/model does not exist"),
    (["--dataset_config", "forget99"], "'forget99' (split 'train') is not in the bundled copy"),
    (["--question_key", "query"], "missing column 'query'"),
    (["--lerning_rate", "1"], "unknown key 'lerning_rate'; did you mean 'learning_rate'?"),
])
def test_bad_input_is_one_line_and_leaves_no_run_directory(tmp_path, capsys, override, message, tiny_model_path):
    from llmkit.train import main as train_main
    from llmkit.cli import run_guarded

    recipe = finetune_recipe(tmp_path)
    assert run_guarded("train", train_main, [str(recipe), *override]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs" / "recipe").exists()


def test_empty_split_is_an_error(tmp_path):
    from llmkit.data import load_split
    from llmkit.errors import LlmkitError

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(LlmkitError):
        load_split(str(empty))
    header_only = tmp_path / "rows.jsonl"
    header_only.write_text('{"question": "q", "answer": "a"}\n')
    assert len(load_split(str(header_only), columns=("question", "answer"))) == 1


def test_slurm_template_builds_one_launch_per_node(tmp_path):
    """Fake srun/scontrol run the template for 2 nodes; each node's llmkit dry-run prints its command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # scontrol lists more hosts than a pipe holds (a large allocation): a reader that stops at the first line makes
    # it die of SIGPIPE, which under pipefail failed the template now and then (exit 141)
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho node-a\necho node-b\nseq 100000 | sed 's/^/node-x/'\n")
    # srun: run the command once per node with that node's SLURM_PROCID (flags before the command are dropped).
    (bin_dir / "srun").write_text('#!/bin/sh\nshift\nfor r in 0 1; do SLURM_PROCID=$r "$@" || exit 1; done\n')
    for name in ("scontrol", "srun"):
        (bin_dir / name).chmod(0o755)
    env = python_env() | {"SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_NNODES": "2"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    recipe = finetune_recipe(tmp_path, global_batch_size=16, per_device_train_batch_size=1)
    done = subprocess.run(["bash", str(REPO / "scripts/slurm/llmkit_train.slurm"), str(recipe), "--dry_run"],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    commands = [l for l in done.stderr.splitlines() if l.startswith("llmkit: ") and "accelerate launch" in l]
    assert len(commands) == 2
    for rank, line in enumerate(commands):
        assert "recipes/accelerate/zero3.yaml --num_processes 16 --num_machines 2" in line
        assert f"--machine_rank {rank} --main_process_port 29500 --main_process_ip node-a" in line


def _bad_inputs(tmp_path, model_path):
    """(recipe overrides, message) for inputs that fail at runtime today; all must fail in --dry_run."""
    import json

    model = Path(model_path)
    no_tokenizer = tmp_path / "no_tokenizer"
    shutil.copytree(model, no_tokenizer, ignore=shutil.ignore_patterns("tokenizer*", "vocab*", "*.model"))
    no_weights = tmp_path / "checkpoint-3"
    shutil.copytree(model, no_weights, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "base/model"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    folder = tmp_path / "qa"
    folder.mkdir()
    (folder / "train.jsonl").write_text("")
    (folder / "test.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    csv = tmp_path / "qa.csv"
    csv.write_text("question,answer\nq,a\n")
    return [
        ({"model_name_or_path": str(no_tokenizer)}, "holds no tokenizer"),
        ({"model_name_or_path": str(adapter)}, "is a LoRA adapter, not a model; train from its base model (base/model)"),
        ({"model_name_or_path": str(no_weights)}, "holds no weights"),
        ({"model_name_or_path": str(model / "config.json")}, "is a file; give the model's folder"),
        ({"dtype": "float33"}, "dtype: 'float33' is not a torch floating-point dtype"),
        ({"max_length": 0}, "max_length=0 must be a finite number >= 1"),
        ({"learning_rate": float("nan")}, "learning_rate=nan must be a finite number >= 0"),
        ({"per_device_train_batch_size": 0}, "per_device_train_batch_size=0 must be a finite number >= 1"),
        ({"dataset": str(tmp_path / "missing.jsonl")}, "missing.jsonl does not exist"),
        ({"dataset": str(empty)}, "the split is empty"),
        ({"dataset": str(folder)}, "the split is empty"),
        ({"dataset": str(csv)}, "qa.csv is not a .json/.jsonl/.parquet/.txt file"),
        ({"global_batch_size": 1.6e22}, "global_batch_size=1.6e+22 is not a valid int"),
    ]


def test_dry_run_catches_what_fails_at_runtime_in_one_line(tmp_path, capsys, tiny_model_path):
    for number, (override, message) in enumerate(_bad_inputs(tmp_path, tiny_model_path)):
        recipe = finetune_recipe(tmp_path / f"r{number}", **override)
        assert cli_main(["train", str(recipe), "--dry_run"]) == 2, override
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (override, err)


def test_dry_run_checks_a_pretrain_recipes_dataset(tmp_path, capsys):
    """A pre-training text source that cannot load fails the dry run on the login node, as a fine-tune's does."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.jsonl").write_text("")
    for number, (dataset, message) in enumerate([(tmp_path / "missing.jsonl", "missing.jsonl does not exist"),
                                                 (empty, "the split is empty")]):
        recipe = pretrain_recipe(tmp_path / f"r{number}", dataset)
        assert cli_main(["train", str(recipe), "--dry_run"]) == 2, dataset
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (dataset, err)


def test_a_failure_after_launch_is_one_line_and_exit_2(tmp_path):
    """The column check runs in the worker, after launch: its line reaches the user once, without tracebacks."""
    recipe = finetune_recipe(tmp_path, question_key="query")
    done = subprocess.run([sys.executable, "-m", "llmkit.cli", "train", str(recipe)], env=python_env(),
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert errors == [line for line in errors if line.startswith("llmkit train: error: ")], done.stderr[-3000:]
    assert len(errors) == 1 and "missing column 'query'" in errors[0]
