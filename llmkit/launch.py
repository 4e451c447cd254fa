"""`llmkit train RECIPE [--accelerate PRESET] [--num_processes N] [--key value ...]`.

Validates the recipe in this process first (unknown keys, global batch divisibility), so a bad recipe fails in
one line before any rank starts, then runs `accelerate launch` with a named preset from recipes/accelerate/ on a
free port and prints the exact command. Multi-node flags go straight through to accelerate.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from llmkit import plan
from llmkit.errors import LlmkitError
from llmkit.procs import ERROR_DIR, PARENT_PID, first_error

PRESET_DIR = Path(__file__).resolve().parent.parent / "recipes" / "accelerate"
PRESETS = ("ddp", "zero2", "zero3", "fsdp")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmkit train", description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="recipe YAML (recipes/finetune/*.yaml, recipes/unlearn/*.yaml, ...)")
    parser.add_argument("--accelerate", default="ddp", choices=PRESETS, help="named preset in recipes/accelerate/")
    parser.add_argument("--num_processes", type=int, default=None,
                        help="total processes over all machines (default: visible GPUs, or 1)")
    parser.add_argument("--num_machines", type=int, default=1)
    parser.add_argument("--machine_rank", type=int, default=0)
    parser.add_argument("--main_process_ip", default=None)
    parser.add_argument("--main_process_port", type=int, default=None,
                        help="default: a free port on a single machine, 29500 across machines")
    parser.add_argument("--dry_run", action="store_true",
                        help="validate, print the plan, memory per GPU and the command; run nothing (works without GPUs)")
    parser.add_argument("--gpu_memory_gb", type=float, default=80.0,
                        help="--dry_run warns above this memory per GPU, in GiB (which accelerate prints as GB)")
    return parser


def default_num_processes() -> int:
    import torch

    return max(torch.cuda.device_count(), 1)


def launch_command(opts: argparse.Namespace, overrides: list[str]) -> tuple[list[str], dict]:
    """The accelerate command line and the extra environment it needs."""
    preset = PRESET_DIR / f"{opts.accelerate}.yaml"
    if not preset.is_file():
        raise LlmkitError(f"--accelerate: preset {preset} does not exist")
    if opts.num_machines > 1 and not opts.main_process_ip:
        raise LlmkitError("--main_process_ip is required with --num_machines > 1")
    port = opts.main_process_port or (free_port() if opts.num_machines == 1 else 29500)
    cmd = ["accelerate", "launch", "--config_file", str(preset), "--num_processes", str(opts.num_processes),
           "--num_machines", str(opts.num_machines), "--machine_rank", str(opts.machine_rank),
           "--main_process_port", str(port)]
    if opts.main_process_ip:
        cmd += ["--main_process_ip", opts.main_process_ip]
    cmd += ["-m", "llmkit.train", opts.recipe, *overrides]
    env = {}
    import torch

    if not torch.cuda.is_available() and opts.accelerate == "ddp":
        # `accelerate launch --cpu` would start a single process; this keeps N gloo processes instead.
        # (Not for DeepSpeed: it would silently turn ZeRO into plain DDP. llmkit.train sets up gloo for it.)
        env["ACCELERATE_USE_CPU"] = "1"
    return cmd, env


def main(argv: list[str]) -> int:
    opts, overrides = _parser().parse_known_args(argv)
    opts.num_processes = opts.num_processes or default_num_processes()
    if opts.accelerate == "fsdp" and opts.num_processes > 1 and not opts.dry_run:
        import torch

        if not torch.cuda.is_available():
            raise LlmkitError("--accelerate fsdp needs GPUs: accelerate does not run FSDP on CPU (use ddp or zero3)")

    from llmkit.train import check_paths, prepare

    extra, deferred = plan.login_node_overrides(opts.recipe, overrides) if opts.dry_run else ([], [])
    _, instances = prepare(opts.recipe, overrides + extra, world=opts.num_processes)
    deferred += check_paths(instances, stage_outputs_may_be_missing=opts.dry_run)
    cmd, env = launch_command(opts, overrides)
    printable = " ".join(f"{k}={v}" for k, v in env.items()) + (" " if env else "") + shlex.join(cmd)
    if opts.dry_run:
        plan.print_dry_run(opts, instances, deferred, printable)
        return 0
    print(f"llmkit: {printable}", file=sys.stderr, flush=True)
    return run_child([sys.executable, "-m", "llmkit.accelerate_child", *cmd[2:]], env)


def run_child(cmd: list[str], env: dict) -> int:
    """Run the accelerate child; SIGTERM/SIGINT are passed on, and a worker's one-line error is printed once (exit 2)."""
    with tempfile.TemporaryDirectory(prefix="llmkit-errors-") as errors:
        child = subprocess.Popen(cmd, env=os.environ | env | {ERROR_DIR: errors, PARENT_PID: str(os.getpid())})
        forward = lambda signum, frame: child.send_signal(signum)  # noqa: E731
        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            code = child.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        message = first_error(errors)
    if message:
        print(f"llmkit train: error: {message}", file=sys.stderr)
        return 2
    if code:
        reason = f"signal {-code}" if code < 0 else f"exit code {code}"
        print(f"llmkit train: error: training stopped ({reason}); its output is above", file=sys.stderr)
    return 128 - code if code < 0 else code
