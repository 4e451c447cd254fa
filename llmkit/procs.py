"""Processes of one run die together, and a worker's error reaches the user as one line.

`llmkit train` → accelerate (run in-process by `python -m llmkit.accelerate_child`) → one worker per rank.
torch's elastic agent starts the workers in their own sessions, so killing the launcher's process group (Ctrl-C,
`timeout -s KILL`, a scheduler) does not reach them. Each process below the launcher therefore asks the kernel to
kill it when its parent dies (PR_SET_PDEATHSIG), and the launcher forwards SIGTERM/SIGINT to its child.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PARENT_PID = "LLMKIT_PARENT_PID"  # set by a parent that wants its children to die with it
ERROR_DIR = "LLMKIT_ERROR_DIR"  # where workers leave their one-line error for the launcher to print once
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """If started by an llmkit parent, get SIGKILL when that parent dies (Linux); exit now if it already has."""
    expected = os.environ.get(PARENT_PID)
    if not expected or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(expected):  # the parent died before the request was in place
        os.kill(os.getpid(), signal.SIGKILL)


def children_die_with_me() -> None:
    """Ask every process started from here on to die with this one."""
    os.environ[PARENT_PID] = str(os.getpid())


def report_error(message: str) -> bool:
    """Leave a worker's one-line error for the launcher (which prints the first rank's); False when not launched."""
    folder = os.environ.get(ERROR_DIR)
    if not folder:
        return False
    rank = int(os.environ.get("RANK", 0))
    (Path(folder) / f"rank-{rank:05d}.txt").write_text(message + "\n", encoding="utf-8")
    return True


def first_error(folder: str | Path) -> str | None:
    """The lowest rank's error line, if any worker left one."""
    files = sorted(Path(folder).glob("rank-*.txt"))
    return files[0].read_text(encoding="utf-8").strip() if files else None
