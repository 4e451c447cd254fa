"""The prompted training datasets, rendered once by `llmkit mine` and cached beside the mined data.

Rendering (in-context example sampling, token budgets) is done on one process, once, and saved to
<mined_dir>/prepared/ with a key over everything it depends on: the mined data, the prompt settings, the task
instructions and the student's tokenizer. Training only loads it, so no rank repeats the work at launch or
resume; a cache made for other settings is refused with the command that remakes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.io import replace_owned_dir, write_json

FOLDER = "prepared"
META = "prepared.json"  # the key and task list, written last; also marks the folder as llmkit's own


def prepare_key(out_dir: Path, settings: dict, task_prompts: str, tokenizer) -> str:
    """What the prompted datasets depend on: mined fingerprint, prompt settings, instruction file, tokenizer vocab."""
    mined = json.loads((out_dir / "mining.json").read_text(encoding="utf-8"))["fingerprint"]
    digest = hashlib.sha256(json.dumps({"mined": mined, **settings}, sort_keys=True).encode())
    digest.update(Path(task_prompts).read_bytes())
    digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(str(tokenizer("a")["input_ids"]).encode())  # special tokens added around a text (BOS, EOS)
    return digest.hexdigest()[:16]


def save_prepared(datasets: dict, out_dir: Path, key: str) -> None:
    """Write {task: Dataset} to <out_dir>/prepared (complete or not at all: written aside, then swapped in)."""
    with replace_owned_dir(out_dir / FOLDER, META, "mined_dir") as tmp:
        for task, dataset in datasets.items():
            dataset.save_to_disk(str(tmp / task))
        write_json(tmp / META, {"key": key, "tasks": sorted(datasets)})


def load_prepared(out_dir: Path, key: str, recipe: str = "RECIPE") -> dict:
    """{task: Dataset} cached under this key, or a one-line error saying how to make it."""
    from datasets import load_from_disk

    meta = out_dir / FOLDER / META
    if not meta.is_file():
        raise LlmkitError(f"mined_dir: {out_dir / FOLDER} does not exist; run `llmkit mine {recipe}` first")
    info = json.loads(meta.read_text(encoding="utf-8"))
    if info["key"] != key:
        raise LlmkitError(f"mined_dir: {out_dir / FOLDER} was prepared with other prompt settings or another "
                          f"tokenizer; run `llmkit mine {recipe}` again")
    return {task: load_from_disk(str(out_dir / FOLDER / task)) for task in info["tasks"]}
