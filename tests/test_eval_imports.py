"""`llmkit eval` of a TOFU suite on the bundled data does not import what it does not use (issue 13, item 5)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_tofu_eval_leaves_trl_and_datasets_unimported(tmp_path):
    """trl reads every installed package's metadata on import (0.2 CPU-s) and datasets costs 0.7 CPU-s to import:
    neither is needed to check the model path, load the tokenizer or read the bundled copy's JSON-lines splits."""
    probe = ("import sys\n"
             "from llmkit.evals.cli import main\n"
             f"assert main(['eval/tofu_forget01.yaml', '--model', 'tiny:llama-xs', '--out', {str(tmp_path)!r}, "
             "'--dataset', 'tofu-mini', '--max_new_tokens', '4', '--batch_size', '32']) == 0\n"
             "print('MODULES', *sorted({m.split('.')[0] for m in sys.modules}))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=900,
                         env=env, check=True)
    loaded = set(next(line for line in out.stdout.splitlines() if line.startswith("MODULES ")).split()[1:])
    assert (tmp_path / "eval" / "tofu_forget01_summary.json").is_file() and "torch" in loaded
    assert "trl" not in loaded
    assert "datasets" not in loaded


def test_bundled_rows_read_directly_equal_the_datasets_rows(monkeypatch):
    """load_rows reads the bundled JSON-lines splits itself; every one gives the rows `datasets` gives."""
    from llmkit.data import BUNDLED, load_rows, load_split

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checked = 0
    for alias in ("tofu-mini", "muse-news-mini", "muse-books-mini"):
        folder = BUNDLED[alias]
        for path in sorted(folder.rglob("*.jsonl")):
            # <config>.jsonl holds the train split; <config>/<split>.jsonl one split of a config
            config, split = (path.stem, "train") if path.parent == folder else (path.parent.name, path.stem)
            want = load_split(alias, config, split).to_list()
            assert load_rows(alias, config, split) == want, path
            checked += 1
    assert checked > 20


def test_bundled_rows_missing_column_is_one_line():
    import pytest

    from llmkit.data import load_rows
    from llmkit.errors import LlmkitError

    with pytest.raises(LlmkitError, match="forget01.jsonl: missing column 'nope'; columns are"):
        load_rows("tofu-mini", "forget01", "train", columns=("question", "nope"))
