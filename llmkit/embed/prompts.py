"""Instructions and in-context examples for the embedder's inputs.

Query side: k examples of the same task, then the E5 instruction (E5-Mistral arXiv 2401.00368; example block
after BGE-ICL, arXiv 2409.15700):
    Instruct: {task}\\nQuery: {q_1}\\nResponse: {p_1}\\n\\n ... Instruct: {task}\\nQuery: {q}
Documents get no instruction; symmetric tasks (STS, clustering, classification, pair classification) put the
instruction on both sides. Training draws k ~ U{0..k_max} from the task's own pairs, never the query itself,
and stops before the example prefix passes a token budget; evaluation uses a fixed example file per task.

Nothing here exists in sentence-transformers (its `prompts` are one static string per column) or mteb (one
instruction per task); the rendered strings are what both of them are then given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from llmkit.errors import LlmkitError, did_you_mean

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class TaskPrompt:
    """One task's instruction; `symmetric` puts it on documents too, `in_batch_negatives` feeds the loss mode."""

    instruction: str
    symmetric: bool = False
    in_batch_negatives: bool = True


def format_example(instruction: str, query: str, response: str) -> str:
    """One in-context example block, with its blank-line separator."""
    return f"Instruct: {instruction}\nQuery: {query}\nResponse: {response}\n\n"


def format_query(instruction: str, query: str, examples: Sequence[tuple[str, str]] = ()) -> str:
    """The query-side input: example blocks, then `Instruct: {task}\\nQuery: {q}`."""
    prefix = "".join(format_example(instruction, q, p) for q, p in examples)
    return f"{prefix}Instruct: {instruction}\nQuery: {query}"


def format_document(task: TaskPrompt, document: str) -> str:
    """The document-side input: raw text, or the instruction form for symmetric tasks."""
    return format_query(task.instruction, document) if task.symmetric else document


def truncate_tokens(text: str, max_tokens: int, tokenizer) -> str:
    """`text` cut to its first `max_tokens` tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def fit_examples(instruction: str, examples: Sequence[tuple[str, str]], count_tokens: TokenCounter,
                 budget: int) -> list[tuple[str, str]]:
    """The longest leading run of `examples` whose rendered blocks stay within `budget` tokens."""
    kept, used = [], 0
    for q, p in examples:
        used += count_tokens(format_example(instruction, q, p))
        if used > budget:
            break
        kept.append((q, p))
    return kept


def sample_examples(pool: Sequence[tuple[str, str]], query: str, rng, k_max: int = 5) -> list[tuple[str, str]]:
    """k ~ U{0..k_max} distinct (query, response) pairs from `pool`, never one whose query is `query`."""
    k = int(rng.integers(0, k_max + 1))
    others = [i for i, (q, _) in enumerate(pool) if q != query]
    picks = rng.choice(len(others), size=min(k, len(others)), replace=False) if others and k else []
    return [pool[others[i]] for i in picks]


def load_task_prompts(path: str | Path) -> dict[str, TaskPrompt]:
    """A JSON file {task: {instruction, symmetric?, in_batch_negatives?}} -> {task: TaskPrompt}."""
    path = Path(path)
    if not path.is_file():
        raise LlmkitError(f"task_prompts: {path} does not exist")
    out = {}
    for name, spec in json.loads(path.read_text(encoding="utf-8")).items():
        if "instruction" not in spec:
            raise LlmkitError(f"{path}: task {name!r} has no 'instruction'")
        out[name] = TaskPrompt(spec["instruction"], bool(spec.get("symmetric", False)),
                               bool(spec.get("in_batch_negatives", True)))
    return out


def load_example_file(path: str | Path) -> list[tuple[str, str]]:
    """A fixed evaluation example file (JSON list of {query, response}) -> [(query, response)]."""
    path = Path(path)
    if not path.is_file():
        raise LlmkitError(f"examples: {path} does not exist")
    rows = json.loads(path.read_text(encoding="utf-8"))
    for i, row in enumerate(rows):
        if "query" not in row or "response" not in row:
            raise LlmkitError(f"{path} item {i + 1}: needs 'query' and 'response'")
    return [(row["query"], row["response"]) for row in rows]


def task_prompt(tasks: dict[str, TaskPrompt], name: str, source: str) -> TaskPrompt:
    """tasks[name], or a one-line error naming the closest task."""
    if name not in tasks:
        raise LlmkitError(f"{source}: task {name!r} has no prompt{did_you_mean(name, tasks)}")
    return tasks[name]


def prompt_rows(rows: Sequence[dict], tasks: dict[str, TaskPrompt], tokenizer, rng, k_max: int = 5,
                example_budget: int = 1536, example_max_tokens: int = 256) -> list[dict]:
    """Render mined rows {task, query, positive, negatives, ...} into model inputs (other keys pass through).

    Examples for a row come from the (query, positive) pairs of its own task, cut to `example_max_tokens`
    each, and the whole example prefix stays within `example_budget` tokens (BGE-ICL: query_max_len - 512).
    """
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    pools: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        pools.setdefault(row["task"], []).append((row["query"], row["positive"]))
    out = []
    for i, row in enumerate(rows):
        task = task_prompt(tasks, row["task"], f"row {i + 1}")
        drawn = sample_examples(pools[row["task"]], row["query"], rng, k_max)
        cut = [(truncate_tokens(q, example_max_tokens, tokenizer), truncate_tokens(p, example_max_tokens, tokenizer))
               for q, p in drawn]
        examples = fit_examples(task.instruction, cut, count, example_budget)
        out.append({**row, "query": format_query(task.instruction, row["query"], examples),
                    "positive": format_document(task, row["positive"]),
                    "negatives": [format_document(task, n) for n in row["negatives"]]})
    return out
