"""`python-docs`: a real-text corpus that every machine with CPython already has, so pre-training works offline.

Documents are (1) the language-reference topics that `help()` shows (`pydoc_data.topics`, ~0.5M characters) and
(2) the triple-quoted strings that open a line in the standard library's source, i.e. its docstrings (~1.6M
characters on CPython 3.11). Varied English prose with code examples: far more than a ~1M-parameter model can
memorise in a few hundred steps. Licence: both are part of CPython, under the PSF License Agreement version 2
(the `LICENSE.txt` next to the standard library); llmkit ships none of it, it reads the interpreter's own copy.
The text differs between Python versions, so the cache file is named by the interpreter's build.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import sys
import sysconfig
from pathlib import Path

from filelock import FileLock

from llmkit.io import atomic_write_text

NAME = "python-docs"
MIN_CHARS = 80  # shorter strings are mostly one-line summaries and format templates
# Tests, IDLE, lib2to3's grammar fixtures and the demo scripts hold generated or fixture text, not documentation.
_SKIPPED_PARTS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo", "pydoc_data"}
# A docstring starts its own line; the pattern's C regex reads the whole standard library in seconds, where
# ast.parse takes a minute on a loaded 2-core machine.
_DOCSTRING = re.compile(r'^[ \t]*[rRuU]?("""|\'\'\')(.*?)\1', re.S | re.M)


def documents() -> list[str]:
    """The corpus's documents in a fixed order: the help() topics by name, then stdlib docstrings by file."""
    from pydoc_data.topics import topics

    docs = [topics[name].strip() for name in sorted(topics)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if _SKIPPED_PARTS.intersection(path.relative_to(stdlib).parts):
            continue
        source = path.read_text(encoding="utf-8", errors="replace")
        docs += [text for match in _DOCSTRING.finditer(source) if len(text := inspect.cleandoc(match.group(2))) >= MIN_CHARS]
    return docs


def corpus_file(cache: Path) -> Path:
    """The corpus as JSONL rows {"text": ...} under `cache`, written once per Python build (its text is fixed)."""
    build = hashlib.sha256(f"{sys.version}|{sysconfig.get_paths()['stdlib']}".encode()).hexdigest()[:10]
    path = cache / f"{NAME}-{'.'.join(map(str, sys.version_info[:3]))}-{build}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):  # parallel runs (the demo's three, or ranks) write it once
        if not path.is_file():
            atomic_write_text(path, "".join(json.dumps({"text": doc}) + "\n" for doc in documents()))
    return path
