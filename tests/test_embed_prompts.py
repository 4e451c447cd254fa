"""Prompt rendering: exact strings, the query never its own example, the token budget, symmetric tasks."""

import json

import numpy as np
import pytest

from llmkit.embed.prompts import (
    TaskPrompt, fit_examples, format_document, format_query, load_example_file, load_task_prompts, prompt_rows,
    sample_example_ids, task_prompt,
)
from llmkit.errors import LlmkitError


class WordTokenizer:
    """One token per whitespace-separated word: budgets become countable by eye."""

    def __call__(self, text, add_special_tokens=True):
        if isinstance(text, list):
            return {"input_ids": [self(t, add_special_tokens)["input_ids"] for t in text]}
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
    pool = [f"q{i}" for i in range(6)] + ["q3"]  # q3 twice: a query on two rows
    rng = np.random.default_rng(0)
    picks = sample_example_ids(pool, ["q3"] * 300, rng, k_max=5)
    assert all(pool[j] != "q3" for p in picks for j in p) and all(len(set(p)) == len(p) for p in picks)
    assert {len(p) for p in picks} == {0, 1, 2, 3, 4, 5}  # k ranges over 0..5, even when only 5 others exist
    assert sample_example_ids(["q3"], ["q3"], rng, k_max=5) == [[]]  # only itself: no example


def test_sampling_is_uniform_over_the_other_entries():
    pool = [f"q{i}" for i in range(50)]
    picks = sample_example_ids(pool, ["q0"] * 20000, np.random.default_rng(1), k_max=1)
    counts = np.bincount([j for p in picks for j in p], minlength=50)
    assert counts[0] == 0 and counts[1:].sum() > 9000
    assert counts[1:].min() > 0.7 * counts[1:].mean() and counts[1:].max() < 1.3 * counts[1:].mean()


def test_budget_stops_before_overflow():
    # 7, 6 and 8 tokens: the leading run that fits
    assert fit_examples([7, 6, 8], 13) == 2  # 7 + 6 = 13 fits, + 8 does not
    assert fit_examples([7, 6, 8], 20) == 2
    assert fit_examples([7, 6, 8], 21) == 3
    assert fit_examples([7, 6, 8], 6) == 0
    assert fit_examples([], 6) == 0


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


def test_rows_of_one_query_share_one_input():
    rows = [{"task": "qa", "query": f"question {i % 3}", "positive": f"answer {i}", "negatives": ["x"], "scores": [1, 0]}
            for i in range(9)]
    out = prompt_rows(rows, {"qa": TaskPrompt("T")}, WordTokenizer(), np.random.default_rng(0), k_max=3)
    by_query = {}
    for src, dst in zip(rows, out):
        by_query.setdefault(src["query"], set()).add(dst["query"])
    assert all(len(inputs) == 1 for inputs in by_query.values())  # same examples for every row of a query
    assert len({next(iter(v)) for v in by_query.values()}) == 3


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


def _eos_tokenizer(tiny_model_path):
    from llmkit.embed.model import append_eos_after_truncation
    from llmkit.models import load_tokenizer

    return append_eos_after_truncation(load_tokenizer(tiny_model_path))


def test_query_is_kept_whole_when_examples_overflow_the_window(tiny_model_path):
    """Examples far beyond the window: every tokenised query input still ends with the query, its instruction and EOS."""
    tok = _eos_tokenizer(tiny_model_path)
    words = "Tromso baker born in 1993 lives by the harbour and bakes bread".split()
    long = lambda i: " ".join(words[(i + j) % len(words)] for j in range(300))  # noqa: E731
    rows = [{"task": "qa", "query": f"Which baker number {i} lives in Tromso?", "positive": long(i), "negatives": [long(i + 1)],
             "scores": [1.0, 0.0]} for i in range(40)]
    tasks = {"qa": TaskPrompt("Find the person")}
    out = prompt_rows(rows, tasks, tok, np.random.default_rng(0), k_max=5, example_budget=1536, example_max_tokens=256,
                      query_max_length=96)
    drew = 0
    for src, dst in zip(rows, out):
        ids = tok(dst["query"], truncation=True, max_length=96)["input_ids"]  # what the embedder's window keeps
        assert ids[-1] == tok.eos_token_id
        assert tok.decode(ids[:-1]).endswith(format_query("Find the person", src["query"]))
        drew += "Response:" in dst["query"]
    assert drew > 10  # examples are still used where they fit (cut to the room left)


def test_head_lengths_equal_the_whole_texts_token_counts(tiny_model_path, monkeypatch):
    """The instruction is tokenised once per task (a byte-level regex BPE splits at "Query:" | " q"): the counts must
    equal tokenising each whole `Instruct: ...\\nQuery: q`, also for queries that start or end oddly."""
    from llmkit.embed.prompts import head_lengths

    tok = _eos_tokenizer(tiny_model_path)
    queries = ["Which baker lives in Tromso?", "", " leading space", "  two spaces", "'s contraction", "it's", "1993 born",
               ":colon", ": colon space", "\nnewline first", "tab\there", "ünïcödé naïve", "emoji 🎉 party", "trailing space ",
               "<|im_end|> an added token", "Query: nested", "-dash", "x" * 300]
    instruction = "Given a question about a person, retrieve the passage that answers it"
    by_hand = [len(tok(format_query(instruction, q), add_special_tokens=False)["input_ids"]) for q in queries]
    from llmkit.embed import prompts

    seen = []
    counted = prompts.token_lengths
    monkeypatch.setattr(prompts, "token_lengths", lambda t, texts: seen.extend(texts) or counted(t, texts))
    assert head_lengths(tok, instruction, queries) == by_hand
    assert sum(instruction in text for text in seen) == 1  # the shortcut was taken: the instruction tokenised once
