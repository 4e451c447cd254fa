"""`python -m llmkit.accelerate_child ARGS` is `accelerate launch ARGS`, run so that the workers die with it and a
failed worker ends it with the worker's exit code and no launcher traceback (the worker has said what went wrong)."""

from __future__ import annotations

import logging
import subprocess
import sys

from llmkit.procs import children_die_with_me, die_with_parent


def main(argv: list[str]) -> int:
    die_with_parent()
    children_die_with_me()
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # torch's elastic agent logs each failed rank in a block of its own; the worker's line is what matters.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        launch_command(launch_command_parser().parse_args(argv))
    except subprocess.CalledProcessError as err:
        return err.returncode
    except ChildFailedError as err:
        return next(iter(err.failures.values())).exitcode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
