"""Small file helpers shared by every stage: results are written atomically so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: str | Path, obj) -> None:
    """Atomically write `obj` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json_object(path: str | Path, what: str = "") -> dict:
    """A JSON object from `path`; anything else is a one-line LlmkitError naming the file."""
    from llmkit.errors import LlmkitError

    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    if not path.is_file():
        raise LlmkitError(f"{label} not found")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LlmkitError(f"{label} is not valid JSON: {err}") from None
    if not isinstance(obj, dict):
        raise LlmkitError(f"{label} is not a JSON object")
    return obj


def save_figure(fig, path: str | Path, dpi: int) -> Path:
    """Write a matplotlib figure to `path` atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)  # keeps the suffix, which picks the image format
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
    return path
