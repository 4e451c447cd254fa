"""Cyclic garbage collection around a command's start-up and exit.

Importing torch and transformers and loading a model create millions of long-lived objects (modules, functions,
classes, weights). CPython's cyclic collector walks all the objects it tracks at every full collection: several
times while these are being created, as their number keeps growing, and once more when the interpreter exits, about
2 of the 14.3 CPU-s of a one-thread TOFU eval of the tiny model (scripts/bench/eval_speed.py --stages). So a phase
that builds long-lived objects runs with the collector off (whatever cyclic garbage it leaves is collected by the
next collection after it), and a process about to exit freezes every object (gc.freeze), so that the interpreter's
final collection has nothing to walk.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def long_lived():
    """Run a block that builds long-lived objects (imports, model load) with the cyclic GC off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def before_exit() -> None:
    """The process ends next: keep every object out of the interpreter's final collection (the OS frees the memory)."""
    gc.freeze()
