"""`llmkit train`: the accelerate command it prints, its checks before launch, and the Slurm template."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from conftest import REPO, finetune_recipe, python_env
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
    assert not (tmp_path / "runs").exists()


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
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho node-a\necho node-b\n")
    # srun: run the command once per node with that node's SLURM_PROCID (flags before the command are dropped).
    (bin_dir / "srun").write_text('#!/bin/sh\nshift\nfor r in 0 1; do SLURM_PROCID=$r "$@" || exit 1; done\n')
    for name in ("scontrol", "srun"):
        (bin_dir / name).chmod(0o755)
    env = python_env() | {"SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_NNODES": "2"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    recipe = finetune_recipe(tmp_path, global_batch_size=16, per_device_train_batch_size=1)
    done = subprocess.run(["bash", str(REPO / "scripts/slurm/llmkit_train.slurm"), str(recipe), "--dry_run"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    commands = [l for l in done.stderr.splitlines() if l.startswith("llmkit: ") and "accelerate launch" in l]
    assert len(commands) == 2
    for rank, line in enumerate(commands):
        assert "recipes/accelerate/zero3.yaml --num_processes 16 --num_machines 2" in line
        assert f"--machine_rank {rank} --main_process_port 29500 --main_process_ip node-a" in line
