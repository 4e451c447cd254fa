"""Template answers (y_e) for FLAT and IDK fine-tuning: bundled lists, a user file, or a model's generations."""

import difflib
import random
import re
from importlib.resources import files
from pathlib import Path
from typing import Callable

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
    """Templates from a bundled list ("idk", "copyright"), a UTF-8 file with one per line, or "generate"."""
    if source == GENERATE:
        if generate_fn is None or not questions:
            raise LlmkitError("templates: 'generate' needs a model to generate with and the forget questions")
        return generate_templates(generate_fn, [prompt.format(question=q) for q in questions])
    if source in BUNDLED:
        lines = (files("llmkit") / "assets" / "templates" / BUNDLED[source]).read_text("utf-8").splitlines()
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
