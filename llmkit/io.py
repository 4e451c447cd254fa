"""Small file helpers shared by every stage: results are written atomically so a crash never leaves half a file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def mark_complete(marker: str | Path, files: list[str | Path], **info) -> None:
    """Write `marker` (last, after every file it lists) with each file's digest, so a reader can trust them all."""
    marker = Path(marker)
    write_json(marker, {**info, "files": {Path(f).name: file_digest(f) for f in files}})


def is_complete(marker: str | Path, **info) -> bool:
    """True when `marker` exists with these `info` values and every file it lists is there, byte for byte."""
    marker = Path(marker)
    try:
        obj = json.loads(marker.read_text(encoding="utf-8"))
        return (all(obj.get(k) == v for k, v in info.items())
                and all((marker.parent / name).is_file() and file_digest(marker.parent / name) == digest
                        for name, digest in obj["files"].items()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # no marker, or not one llmkit wrote: not complete


def check_owned_dir(out_dir: str | Path, marker: str, field: str) -> None:
    """Refuse an `out_dir` that llmkit may not replace: a file, or a non-empty folder without llmkit's `marker`."""
    from llmkit.errors import LlmkitError

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LlmkitError(f"{field}: {out_dir} is a file, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / marker).is_file():
        raise LlmkitError(f"{field}: {out_dir} is not empty and holds no {marker}, so llmkit did not write it and "
                          f"will not replace it; name another folder or empty this one")


@contextmanager
def replace_owned_dir(out_dir: str | Path, marker: str, field: str) -> Iterator[Path]:
    """Yield a fresh temporary sibling of `out_dir` to fill; on success it takes `out_dir`'s place.

    llmkit deletes only what it created: an existing `out_dir` is replaced only when it is empty or holds `marker`
    (the file llmkit writes into every such folder), see check_owned_dir. A failure while filling leaves `out_dir`
    untouched and removes only the temporary folder.
    """
    out_dir = Path(out_dir)
    check_owned_dir(out_dir, marker, field)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # a name nobody else holds, beside out_dir so the final rename stays on one filesystem
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result gets the permissions of a plain mkdir
    try:
        yield tmp
        if not out_dir.exists():
            os.replace(tmp, out_dir)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)  # moved aside, not deleted, until the new folder is in place
        os.replace(tmp, out_dir)
        shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only there when filling failed


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
