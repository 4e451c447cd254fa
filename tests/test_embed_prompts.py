"""Prompt rendering: exact strings, the query never its own example, the token budget, symmetric tasks."""

import json

import numpy as np
import pytest

from llmkit.embed.prompts import (
    TaskPrompt, fit_examples, format_document, format_query, load_example_file, load_task_prompts, prompt_rows,
    sample_examples, task_prompt,
)
from llmkit.errors import LlmkitError


class WordTokenizer:
    """One token per whitespace-separated word: budgets become countable by eye."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(range(len(text.split())))}

    def decode(self, ids):
        raise AssertionError("decode is only called on texts over the per-example limit")


def test_exact_strings():
    assert format_query("Find the answer", "why?") == "Instruct: Find the answer\nQuery: why?"
    assert format_query("T", "q", [("q1", "p1"), ("q2", "p2")]) == (
        "Instruct: T\nQuery: q1\nResponse: p1\n\nInstruct: T\nQuery: q2\nResponse: p2\n\nInstruct: T\nQuery: q")
    assert format_document(TaskPrompt("T"), "a doc") == "a doc"
    assert format_document(TaskPrompt("T", symmetric=True), "a doc") == "Instruct: T\nQuery: a doc"


def test_sampled_examples_never_contain_the_query():
    pool = [(f"q{i}", f"p{i}") for i in range(6)]
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(300):
        ex = sample_examples(pool, "q3", rng, k_max=5)
        assert all(q != "q3" for q, _ in ex) and len(set(ex)) == len(ex)
        sizes.add(len(ex))
    assert sizes == {0, 1, 2, 3, 4, 5}  # k ranges over 0..5
    assert sample_examples([("q3", "p3")], "q3", rng, k_max=5) == []  # only itself: no example


def test_budget_stops_before_overflow():
    tok = WordTokenizer()
    count = lambda t: len(tok(t)["input_ids"])  # noqa: E731
    # "Instruct: T\nQuery: a b\nResponse: c\n\n" splits into 7 words; the next two blocks into 6 and 8
    examples = [("a b", "c"), ("d", "e"), ("f g h", "i")]
    assert fit_examples("T", examples, count, 13) == examples[:2]  # 7 + 6 = 13 fits, + 8 does not
    assert fit_examples("T", examples, count, 20) == examples[:2]
    assert fit_examples("T", examples, count, 21) == examples
    assert fit_examples("T", examples, count, 6) == []


def test_prompt_rows_render_and_exclude_self(tmp_path):
    rows = [{"task": "qa", "query": f"question {i}", "positive": f"answer {i}", "negatives": [f"wrong {i}"], "scores": [1.0, 0.0]}
            for i in range(4)] + [{"task": "sts", "query": "a cat", "positive": "a kitten", "negatives": ["a car"], "scores": [1, 0]}]
    tasks = {"qa": TaskPrompt("Answer the question"), "sts": TaskPrompt("Same meaning", symmetric=True)}
    out = prompt_rows(rows, tasks, WordTokenizer(), np.random.default_rng(1), k_max=5)
    for src, dst in zip(rows, out):
        assert dst["query"].endswith(f"Instruct: {tasks[src['task']].instruction}\nQuery: {src['query']}")
        assert f"Query: {src['query']}\nResponse" not in dst["query"]  # never its own example
        assert dst["scores"] == src["scores"]
    assert out[0]["positive"] == "answer 0" and out[0]["negatives"] == ["wrong 0"]  # documents: no instruction
    assert out[4]["positive"] == "Instruct: Same meaning\nQuery: a kitten"
    assert out[4]["query"] == "Instruct: Same meaning\nQuery: a cat"  # the only sts row: no other example exists
    assert "Response: answer" in "".join(r["query"] for r in out[:4])  # examples do get drawn


def test_files_and_unknown_task(tmp_path):
    (tmp_path / "tasks.json").write_text(json.dumps({"qa": {"instruction": "Answer"}, "clu": {"instruction": "Topic", "symmetric": True, "in_batch_negatives": False}}))
    tasks = load_task_prompts(tmp_path / "tasks.json")
    assert tasks["clu"] == TaskPrompt("Topic", True, False) and tasks["qa"] == TaskPrompt("Answer")
    (tmp_path / "ex.json").write_text(json.dumps([{"query": "q", "response": "r"}]))
    assert load_example_file(tmp_path / "ex.json") == [("q", "r")]
    with pytest.raises(LlmkitError, match="did you mean 'qa'"):
        task_prompt(tasks, "qaa", "row 3")
    (tmp_path / "bad.json").write_text(json.dumps([{"query": "q"}]))
    with pytest.raises(LlmkitError, match="item 1"):
        load_example_file(tmp_path / "bad.json")
