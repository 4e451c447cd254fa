"""The `tiny:` cache never hands out a directory without model weights."""

import shutil
from pathlib import Path

import torch


def _assert_same_weights(path, reference_path):
    from transformers import AutoModelForCausalLM

    got = AutoModelForCausalLM.from_pretrained(path).state_dict()
    want = AutoModelForCausalLM.from_pretrained(reference_path).state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_build_on_a_nonzero_rank_writes_the_weights(tmp_path, monkeypatch, tiny_model_path):
    """Under torch.distributed, whichever rank takes the build lock builds; save_pretrained skips ranks != 0."""
    import torch.distributed as dist

    from llmkit.tiny import resolve_model_path

    monkeypatch.setenv("LLMKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 1)
    path = resolve_model_path("tiny:llama-xs")
    monkeypatch.undo()
    # the build is seeded, so it must equal the session's build (made outside torch.distributed)
    _assert_same_weights(path, tiny_model_path)


def test_a_cached_dir_with_only_the_tokenizer_is_rebuilt(tmp_path, monkeypatch, tiny_model_path):
    """A directory left by a build whose weights were never written (as above, before the fix) is not trusted."""
    from llmkit.tiny import resolve_model_path

    monkeypatch.setenv("LLMKIT_CACHE", str(tmp_path))
    stale = tmp_path / "tiny" / Path(tiny_model_path).name
    stale.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(Path(tiny_model_path) / name, stale / name)
    assert resolve_model_path("tiny:llama-xs") == str(stale)
    _assert_same_weights(stale, tiny_model_path)
