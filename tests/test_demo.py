"""The demo refuses to resume on runs built from another tiny model."""

import pytest

from llmkit.demo import check_base_model
from llmkit.errors import LlmkitError


def test_resume_on_runs_from_another_base_model_is_refused(tmp_path):
    check_base_model(tmp_path, "llama-v1-aaaa")
    check_base_model(tmp_path, "llama-v1-aaaa")  # same build: resume
    assert (tmp_path / "BASE_MODEL").read_text() == "llama-v1-aaaa\n"
    with pytest.raises(LlmkitError, match="runs start from tiny model llama-v1-aaaa, this build is llama-v1-bbbb"):
        check_base_model(tmp_path, "llama-v1-bbbb")
    assert (tmp_path / "BASE_MODEL").read_text() == "llama-v1-aaaa\n"  # nothing overwritten
