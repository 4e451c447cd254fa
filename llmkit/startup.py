"""Cyclic garbage collection around a command's start-up and exit.

Importing torch and transformers and loading a model leave millions of long-lived objects (modules, functions,
classes, weights). CPython's cyclic collector walks all of them at every full collection, several times while they
are being created and once more when the interpreter exits: more than 2 of the 14.6 CPU-s of a one-thread TOFU eval
of the tiny model (scripts/bench/eval_speed.py --stages). A phase that builds long-lived objects therefore runs with
the collector off and freezes what it built (gc.freeze: left out of later collections, still freed by reference
counting), and a process about to exit freezes everything, so that the final collection has nothing to walk.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def long_lived():
    """Run a block that builds long-lived objects (imports, model load) without the cyclic GC, then freeze them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def before_exit() -> None:
    """The process ends next: keep every object out of the interpreter's final collection (the OS frees the memory)."""
    gc.freeze()
