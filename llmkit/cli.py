"""`llmkit` console script: parses the sub-command and hands the rest of argv to one module.

Modules are imported lazily, because importing torch/transformers/trl costs seconds and
`llmkit fit` needs none of them.
"""

from __future__ import annotations

import importlib
import os
import sys

from llmkit.errors import LlmkitError, did_you_mean
from llmkit.startup import before_exit

# command -> ("module:function", one-line help). Each function takes argv (list[str]) and returns an exit code.
COMMANDS = {
    "train": ("llmkit.launch:main", "launch a recipe with accelerate (ddp, zero2, zero3, fsdp)"),
    "demo": ("llmkit.demo:main", "run the whole pipeline on the embedded tiny default (CPU, minutes)"),
    "mine": ("llmkit.embed.cli:mine_main", "mine hard negatives + teacher scores for an embed recipe (cached; --num_processes N: one teacher per GPU)"),
    "eval": ("llmkit.evals.cli:main", "evaluate a checkpoint on a TOFU, MUSE or MTEB suite (eval/*.yaml)"),
    "fit": ("llmkit.scaling.cli:fit_main", "fit a loss-curve law to training logs"),
    "predict": ("llmkit.scaling.cli:predict_main", "predict the loss curve of a fitted law under any LR schedule"),
    "report": ("llmkit.report:main", "compare run directories (config, eval summaries, fits) in one markdown table"),
    "env": ("llmkit.env:main", "print versions for bug reports"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: llmkit COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"llmkit: error: unknown command {name!r}{did_you_mean(name, COMMANDS)}", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name][0].split(":")
    return run_guarded(name, lambda args: getattr(importlib.import_module(module_name), func_name)(args), rest)


def console_main() -> int:
    """The `llmkit` console script (and `python -m llmkit.cli`): main, then the process exits."""
    code = main()
    before_exit()
    return code


def run_guarded(name: str, func, argv: list[str] | None = None) -> int:
    """Call `func(argv)`; bad input (LlmkitError) becomes one line on stderr and exit code 2 (LLMKIT_DEBUG=1 raises)."""
    try:
        return int(func(argv) or 0)
    except LlmkitError as err:
        if os.environ.get("LLMKIT_DEBUG"):
            raise
        print(f"llmkit {name}: error: {err}", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(console_main())
