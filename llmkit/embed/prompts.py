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
from typing import Sequence

import numpy as np

from llmkit.errors import LlmkitError, did_you_mean

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


def named_prompts(tasks: dict[str, TaskPrompt]) -> dict[str, str]:
    """sentence-transformers prompts (config_sentence_transformers.json) that give llmkit's zero-shot inputs.

    One prompt per task, named after it (`encode_query(texts, prompt_name=task)`), with `{task}-document` empty
    for asymmetric tasks (mteb's key order reads `{Task}-document` first); "query", used by `encode_query` by
    default, is the first asymmetric task's instruction; "document" is empty.
    """
    prompts = {"query": "", "document": ""}
    for name, task in tasks.items():
        prompts[name] = format_query(task.instruction, "")
        if not task.symmetric:
            prompts[f"{name}-document"] = ""
    default = next((task for task in tasks.values() if not task.symmetric), None)
    if default is not None:
        prompts["query"] = format_query(default.instruction, "")
    return prompts


def is_instruction_prompt(prompt: str) -> bool:
    """True for a stored prompt in llmkit's instruction form (`Instruct: ...\\nQuery: `): a model trained with it."""
    return prompt.startswith("Instruct: ") and prompt.endswith("\nQuery: ")


def token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens. A fast tokenizer's Rust backend is called directly: transformers'
    per-text conversion of its output was a fifth of the tokenising time (scripts/bench/embed_scale.py); a backend
    with its own truncation or padding goes through transformers, which turns those off for the call."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.truncation or backend.padding:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [encoding.ids for encoding in backend.encode_batch(texts, add_special_tokens=False)]


def token_lengths(tokenizer, texts: Sequence[str], chunk: int = 4096) -> list[int]:
    """Token count of each text (no special tokens), tokenised in batches."""
    out: list[int] = []
    for i in range(0, len(texts), chunk):
        out += map(len, token_ids(tokenizer, list(texts[i:i + chunk])))
    return out


def cut_to_tokens(tokenizer, texts: Sequence[str], max_tokens: int, chunk: int = 4096) -> tuple[list[str], list[int]]:
    """Each text cut to its first `max_tokens` tokens (texts within the limit unchanged), and its token count."""
    out: list[str] = []
    lengths: list[int] = []
    max_tokens = max(max_tokens, 0)
    for i in range(0, len(texts), chunk):
        batch = list(texts[i:i + chunk])
        for text, ids in zip(batch, token_ids(tokenizer, batch)):
            out.append(text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens]))
            lengths.append(min(len(ids), max_tokens))
    return out, lengths


def fit_examples(lengths: Sequence[int], budget: int) -> int:
    """How many leading examples, of these token lengths, fit within `budget` tokens together."""
    used = 0
    for n, length in enumerate(lengths):
        used += length
        if used > budget:
            return n
    return len(lengths)


def sample_example_ids(pool_queries: Sequence[str], queries: Sequence[str], rng, k_max: int = 5) -> list[list[int]]:
    """For each query, k ~ U{0..k_max} distinct indices into the pool whose pool query is not that query.

    Linear in the rows (scanning the pool per row was quadratic: 11 h for a 500k-row task): each row draws a few
    indices at random and skips its own query's entries; only a row whose draws ran short (a pool barely larger
    than k) pays for a permutation of the pool.
    """
    n = len(pool_queries)
    ks = rng.integers(0, k_max + 1, size=len(queries)).tolist()
    draws = rng.integers(0, max(n, 1), size=(len(queries), 2 * k_max + 8))
    codes: dict[str, int] = {}  # each text -> an integer, so "not the row's own query" is one array comparison
    pool_codes = np.array([codes.setdefault(q, len(codes)) for q in pool_queries] or [-1])
    own = np.array([codes.setdefault(q, len(codes)) for q in queries])
    allowed = (pool_codes[draws] != own[:, None]) if n else np.zeros(draws.shape, dtype=bool)
    out = []
    for query, k, row, ok in zip(queries, ks, draws.tolist(), allowed.tolist()):
        picked: list[int] = []
        for j, good in zip(row, ok):  # the first k distinct allowed draws
            if len(picked) == k:
                break
            if good and j not in picked:
                picked.append(j)
        if len(picked) < k:
            picked = [j for j in rng.permutation(n).tolist() if pool_queries[j] != query][:k]
        out.append(picked)
    return out


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
                example_budget: int = 1536, example_max_tokens: int = 256, query_max_length: int = 512) -> list[dict]:
    """Render mined rows {task, query, positive, negatives, ...} into model inputs (other keys pass through).

    The query side is `examples + Instruct: {task}\\nQuery: {q}`; truncation cuts the right end, so the query and
    its instruction are kept whole and only examples give way: each example is cut to `example_max_tokens` per
    side, and a row keeps the leading examples that fit both `example_budget` and what `query_max_length` leaves
    after the query (BGE-ICL: query_max_len - 512). Lengths count the tokenizer's own special tokens (BOS, the
    appended EOS). Documents are left whole: the embedder cuts them at its own document length
    (sentence-transformers' `Transformer.document_length`). Examples come from the (query, positive) pairs of the
    row's own task, never with the row's own query text.
    """
    specials = len(tokenizer("", add_special_tokens=True)["input_ids"])
    out: list[dict] = [{} for _ in rows]
    by_task: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_task.setdefault(row["task"], []).append(i)
    for name, idx in by_task.items():
        task = task_prompt(tasks, name, f"row {idx[0] + 1}")
        # one input per distinct query: its rows (one per positive) share it, so the loss can tell they are one query
        queries = list(dict.fromkeys(rows[i]["query"] for i in idx))
        heads, head_lengths = _fitted_heads(task.instruction, queries, tokenizer, query_max_length - specials)
        pool = list(dict.fromkeys((rows[i]["query"], rows[i]["positive"]) for i in idx))
        picks = sample_example_ids([q for q, _ in pool], queries, rng, k_max)
        # Cut each example side to what a typical row has room for, so that long pairs are cut rather than dropped.
        room = min(example_budget, query_max_length - specials - int(np.median(head_lengths)))
        side = min(example_max_tokens, (room - token_lengths(tokenizer, [format_example(task.instruction, "", "")])[0]) // 2)
        head_overhead = token_lengths(tokenizer, [format_query(task.instruction, "")])[0]
        query_lengths = {q: length - head_overhead for q, length in zip(queries, head_lengths)}
        blocks = _example_blocks(task.instruction, pool, sorted({j for p in picks for j in p}), tokenizer, max(side, 0),
                                 query_lengths)
        rendered = {}
        for query, head, head_length, picked in zip(queries, heads, head_lengths, picks):
            room = min(example_budget, query_max_length - specials - head_length)
            chosen = [blocks[j] for j in picked]
            chosen = chosen[:fit_examples([length for _, length in chosen], room)]
            near_limit = sum(length for _, length in chosen) + head_length + specials > query_max_length - 4 * len(chosen) - 4
            rendered[query] = _fit_query(tokenizer, [text for text, _ in chosen], head, query_max_length, check=near_limit)
        for i in idx:
            row = rows[i]
            out[i] = {**row, "query": rendered[row["query"]]}
            if task.symmetric:  # documents of other tasks stay raw (format_document), as they are
                out[i] |= {"positive": format_document(task, row["positive"]),
                           "negatives": [format_document(task, n) for n in row["negatives"]]}
    return out


def _fitted_heads(instruction: str, queries: list[str], tokenizer, room: int) -> tuple[list[str], list[int]]:
    """`Instruct: {task}\\nQuery: {q}` per query and its token count; a query is cut (at its end) only when even
    alone it overflows `room`."""
    overhead = token_lengths(tokenizer, [format_query(instruction, "")])[0]
    heads = [format_query(instruction, q) for q in queries]
    lengths = head_lengths(tokenizer, instruction, queries)
    over = [n for n, length in enumerate(lengths) if length > room]
    for n, cut in zip(over, cut_to_tokens(tokenizer, [queries[n] for n in over], room - overhead - 1)[0]):
        heads[n] = format_query(instruction, cut)
    for n, length in zip(over, token_lengths(tokenizer, [heads[n] for n in over])):
        lengths[n] = length
    return heads, lengths


def head_lengths(tokenizer, instruction: str, queries: list[str]) -> list[int]:
    """Token count of `Instruct: {task}\nQuery: {q}` for each query, without tokenising the instruction per row.

    A byte-level BPE whose pre-tokenizer splits by GPT-2's regex (and no normalizer) always splits that text
    between "...Query:" and " {q}" (":" never joins a following space), and BPE merges only within pieces, so the
    count is the prefix's plus " {q}"'s: exact, unless an added token could span the join (one containing ":" or
    whitespace). Any other tokenizer (e.g. sentencepiece-style Metaspace) tokenises the whole texts.
    """
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    added = getattr(tokenizer, "added_tokens_decoder", {}).values()
    splits = (backend is not None and backend.normalizer is None and isinstance(backend.pre_tokenizer, pre_tokenizers.ByteLevel)
              and backend.pre_tokenizer.use_regex and not any(":" in t.content or any(c.isspace() for c in t.content) for t in added))
    if not splits:
        return token_lengths(tokenizer, [format_query(instruction, q) for q in queries])
    prefix = token_lengths(tokenizer, [format_query(instruction, "")[:-1]])[0]
    return [prefix + n for n in token_lengths(tokenizer, [" " + q for q in queries])]


def _example_blocks(instruction: str, pool, used: list[int], tokenizer, max_tokens: int,
                    query_lengths: dict[str, int]) -> dict[int, tuple[str, int]]:
    """Pool index -> (rendered example block with both sides cut to `max_tokens`, its token count), each made once.

    A block's count is its template's plus its two sides': responses are tokenised here, queries were counted as
    part of their own input (`query_lengths`) and only the long ones are tokenised again to be cut. Pieces can merge
    or split differently at the joins by a token or so, which `_fit_query` settles near the limit.
    """
    responses, response_lengths = cut_to_tokens(tokenizer, [pool[j][1] for j in used], max_tokens)
    queries = {q: (q, length) for q, length in ((pool[j][0], query_lengths[pool[j][0]]) for j in used) if length <= max_tokens}
    long = list(dict.fromkeys(pool[j][0] for j in used if pool[j][0] not in queries))
    queries.update(zip(long, zip(*cut_to_tokens(tokenizer, long, max_tokens))))
    template = token_lengths(tokenizer, [format_example(instruction, "", "")])[0]
    return {j: (format_example(instruction, queries[pool[j][0]][0], response),
                template + queries[pool[j][0]][1] + response_length)
            for j, response, response_length in zip(used, responses, response_lengths)}


def _fit_query(tokenizer, examples: list[str], head: str, max_length: int, check: bool) -> str:
    """Examples + head; near the limit (token counts of parts need not add up exactly) the whole input is
    tokenised and trailing examples are dropped until it fits."""
    while check and examples and len(tokenizer("".join(examples) + head)["input_ids"]) > max_length:
        examples = examples[:-1]
    return "".join(examples) + head
