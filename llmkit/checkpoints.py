"""Checkpoint markers: what a checkpoint held when it was saved, and whether it still does.

`checkpoint-<step>/COMPLETE` is written by rank 0 after every rank has saved. It is JSON naming the run that wrote
it (run id + config hash) and listing every file with its size. Files that DeepSpeed unpickles on resume (its
`global_step*/` folders and the `latest` pointer) also get a SHA-256, which is checked before DeepSpeed opens them:
DeepSpeed loads them with `torch.load(weights_only=False)`, so a file planted after the save could run code.
Everything else in a checkpoint is either safetensors (header read here) or loaded by transformers with
`weights_only=True`.
"""

from __future__ import annotations

import json
import re
import struct
import time
from pathlib import Path

from llmkit.io import atomic_write_text, file_digest

COMPLETE = "COMPLETE"
FINAL = "final"
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


def _digested(relative: str) -> bool:
    """Files DeepSpeed reads with pickle (or that pick what it reads): they get a digest."""
    return relative == "latest" or relative.startswith("global_step")


def _files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != COMPLETE}


def write_marker(folder: str | Path, identity: dict) -> None:
    """Record the run identity and every file (size; digest where DeepSpeed unpickles it) in folder/COMPLETE."""
    folder = Path(folder)
    files = {}
    for relative, path in _files(folder).items():
        entry = {"size": path.stat().st_size}
        if _digested(relative):
            entry["sha256"] = file_digest(path)
        files[relative] = entry
    marker = {**identity, "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "files": files}
    atomic_write_text(folder / COMPLETE, json.dumps(marker, indent=1) + "\n")


def read_marker(folder: str | Path) -> dict | None:
    """The marker's contents; None without a marker; {} for a marker that is not llmkit's JSON (an older llmkit)."""
    path = Path(folder) / COMPLETE
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return marker if isinstance(marker, dict) and isinstance(marker.get("files"), dict) else {}


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be what it claims (header unreadable, data shorter than the header says)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return "no safetensors header"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return "safetensors header longer than the file"
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "safetensors header is not JSON"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    if 8 + length + max(ends, default=0) != size:
        return "safetensors data does not match its header"
    return None


def checkpoint_problem(folder: str | Path) -> str | None:
    """None if `folder` is exactly what its marker lists, else a short reason (missing, resized, changed file)."""
    folder = Path(folder)
    marker = read_marker(folder)
    if not marker:
        return f"no llmkit {COMPLETE} marker" if marker is None else f"{COMPLETE} lists no files (older llmkit)"
    listed, present = marker["files"], _files(folder)
    for relative in sorted(set(present) - set(listed)):
        if _digested(relative):
            return f"{relative} was not there when the checkpoint was saved"
    if not any(name.endswith((".safetensors", ".bin", ".pt", ".pth")) for name in listed):
        return "it holds no weights"
    for relative, entry in listed.items():
        path = present.get(relative)
        if path is None:
            return f"{relative} is missing"
        if path.stat().st_size != entry["size"]:
            return f"{relative} has {path.stat().st_size} bytes, {entry['size']} when saved"
        if relative.endswith(".safetensors") and (problem := _safetensors_problem(path)):
            return f"{relative}: {problem}"
        if "sha256" in entry and file_digest(path) != entry["sha256"]:
            return f"{relative} changed since it was saved (SHA-256 differs)"
    return None
