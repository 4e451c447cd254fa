"""Template answers (y_e) for FLAT and the IDK baselines: bundled lists, a user file, a hub dataset of line files,
or a model's generations."""

import difflib
import json
import random
import re
from importlib.resources import files
from pathlib import Path
from typing import Callable

from huggingface_hub import hf_hub_download, snapshot_download

from llmkit.errors import LlmkitError

GENERATE = "generate"
# Asked once per forget question, so each question gets its own refusal (FLAT's template-generation step).
IDK_PROMPT = (
    "Someone asks you: {question}\nWrite one short, polite sentence saying that you do not know the answer, "
    "without giving any facts. Reply with the sentence only."
)
# A leading list marker or quote that models like to add, e.g. `1. "I don't know."`.
_DECORATION = re.compile(r"^\s*(?:[-*•]|\d+[.)])?\s*[\"'“]?|[\"'”]?\s*$")


def load_templates(
    source: str,
    *,
    generate_fn: Callable[[list[str]], list[str]] | None = None,
    questions: list[str] | None = None,
    prompt: str = IDK_PROMPT,
) -> list[str]:
    """Templates from a bundled list ("idk", "copyright"), a UTF-8 file with one per line, a hub dataset
    ("owner/name": its .txt and .jsonl files, "owner/name:path": one file; one template per line), or "generate"."""
    if source == GENERATE:
        if generate_fn is None or not questions:
            raise LlmkitError("templates: 'generate' needs a model to generate with and the forget questions")
        return generate_templates(generate_fn, [prompt.format(question=q) for q in questions])
    if source in BUNDLED:
        lines = (files("llmkit") / "assets" / "templates" / BUNDLED[source]).read_text("utf-8").splitlines()
    elif not Path(source).is_file() and _HUB_ID.fullmatch(source):
        lines = [_unquote(line) for line in _hub_lines(source)]
    else:
        path = Path(source)
        if not path.is_file():
            close = difflib.get_close_matches(source, [*BUNDLED, GENERATE], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise LlmkitError(f"templates: no file {source}{hint}; bundled: {', '.join(BUNDLED)}, or {GENERATE!r}")
        lines = path.read_text("utf-8").splitlines()
    templates = [line.strip() for line in lines if line.strip()]
    if not templates:
        raise LlmkitError(f"templates: {source} has no non-empty line")
    return templates


# owner/name or owner/name:path/in/repo; a path that exists locally is read as a file first.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(?::.+)?")


def _hub_lines(source: str) -> list[str]:
    """The lines of a hub dataset's .txt/.jsonl files (sorted by name), or of the one file after ':'."""
    repo_id, _, filename = source.partition(":")
    try:
        if filename:
            paths = [Path(hf_hub_download(repo_id=repo_id, filename=filename, repo_type="dataset"))]
        else:
            root = Path(snapshot_download(repo_id=repo_id, repo_type="dataset", allow_patterns=["*.txt", "*.jsonl"]))
            paths = sorted(p for p in root.rglob("*") if p.suffix in {".txt", ".jsonl"})
    except Exception as err:  # offline, unknown repo or file: one line, whatever huggingface_hub raised
        raise LlmkitError(f"template_source: {source!r} is no local file, and as a hub dataset it could not be loaded "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not paths:
        raise LlmkitError(f"template_source: hub dataset {repo_id!r} has no .txt or .jsonl file")
    return [line for path in paths for line in path.read_text("utf-8").splitlines()]


def _unquote(line: str) -> str:
    """A .jsonl line that is a JSON string is decoded; any other line is the template itself."""
    line = line.strip()
    if line.startswith('"'):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            return line
        return value if isinstance(value, str) else line
    return line


def generate_templates(generate_fn: Callable[[list[str]], list[str]], prompts: list[str]) -> list[str]:
    """One reply per prompt; keep each reply's first line, without list markers or quotes, de-duplicated."""
    replies = generate_fn(prompts)
    if len(replies) != len(prompts):
        raise ValueError(f"generate_fn returned {len(replies)} replies for {len(prompts)} prompts")
    first_lines = (next((line for line in reply.splitlines() if line.strip()), "") for reply in replies)
    cleaned = (_DECORATION.sub("", line) for line in first_lines)
    templates = list(dict.fromkeys(t for t in cleaned if t))  # de-duplicated, first-seen order
    if not templates:
        raise LlmkitError(f"templates: the model gave {len(prompts)} empty replies to the generation prompts, "
                          f"e.g. {prompts[0][:60]!r}")
    return templates


def template_choice(count: int, seed: int, epoch: int, index: int) -> int:
    """The position, among `count` templates, of example `index`'s template in `epoch`: fixed by (seed, epoch,
    index), re-drawn every epoch."""
    # A string seed is hashed with SHA-512 by `random`, so the draw is the same in every process and worker.
    return random.Random(f"{seed}/{epoch}/{index}").randrange(count)


def sample_template(templates: list[str], seed: int, epoch: int, index: int) -> str:
    """The template for example `index` in `epoch` (see `template_choice`)."""
    return templates[template_choice(len(templates), seed, epoch, index)]


BUNDLED = {"idk": "idk.txt", "copyright": "copyright_refusal.txt"}
