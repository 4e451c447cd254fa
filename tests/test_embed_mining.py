"""Mining rule on hand-made scores; BM25 by hand; the pipeline on a toy corpus with hand-set teacher scores."""

import json
import math

import numpy as np
import pytest
import torch

from llmkit.embed.mining import MiningArgs, bm25_index, bm25_top, margin_keep, mine, near_duplicates
from llmkit.errors import LlmkitError


def test_relative_margin_keeps_only_below_beta_times_positive():
    keep = margin_keep(np.array([[0.75, 0.761, 0.5, 0.759, 0.9]]), np.array([[0.8]]), relative_margin=0.05)
    assert keep.tolist() == [[True, False, True, True, False]]  # threshold 0.95 * 0.8 = 0.76


def test_lowest_positive_is_the_anchor():
    keep = margin_keep(np.array([[0.58, 0.56, 0.7]]), np.array([[0.9, 0.6]]), relative_margin=0.05)
    assert keep.tolist() == [[False, True, False]]  # anchor 0.6 -> threshold 0.57
    keep = margin_keep(np.array([[2.5, 1.9, -4.0]]), np.array([[5.0, 3.0]]), absolute_margin=1.0)
    assert keep.tolist() == [[False, True, True]]  # raw logits: anchor 3 -> keep below 2


def test_relative_margin_refuses_negative_positive_scores():
    with pytest.raises(LlmkitError, match="absolute_margin"):
        margin_keep(np.array([[-2.0]]), np.array([[-1.0]]), relative_margin=0.05)
    with pytest.raises(ValueError, match="exactly one"):
        MiningArgs(relative_margin=0.05, absolute_margin=1.0)


def test_near_duplicates_by_hand():
    pos = np.array([[1.0, 0.0]])
    neg = np.array([[0.99, math.sqrt(1 - 0.99**2)], [0.9, math.sqrt(1 - 0.81)]])
    assert near_duplicates(neg, pos, 0.95).tolist() == [True, False]


def test_bm25_matches_formula():
    corpus = ["a b", "a c c", "d", "the cat sat", "cat cat dog"]
    index = bm25_index(corpus, k1=1.2, b=0.75)
    avg = 12 / 5  # doc lengths 2, 3, 1, 3, 3
    idf = lambda df: math.log(1 + (5 - df + 0.5) / (df + 0.5))  # noqa: E731
    term = lambda tf, dl: tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / avg))  # noqa: E731
    expected = {  # query term counts multiply (cat twice)
        "c a": [idf(2) * term(1, 2), idf(2) * term(1, 3) + idf(1) * term(2, 3), 0.0, 0.0, 0.0],
        "cat c cat": [0.0, idf(1) * term(2, 3), 0.0, 2 * idf(2) * term(1, 3), 2 * idf(2) * term(2, 3)],
    }
    tokenizer, retriever = index
    for query, scores in expected.items():
        ids = tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)
        # bm25s leaves out the constant (k1 + 1) of the term weight
        assert (retriever.get_scores(ids[0]) * 2.2).tolist() == pytest.approx(scores, rel=1e-6)
    hits = bm25_top(["c a", "cat c cat", "zzz"], index, top=2, chunk=2)  # chunks of queries give the same hits
    assert [sorted(h) for h in hits[:2].tolist()] == [[0, 1], [1, 4]] and hits.shape == (3, 2)


VOCAB = "capital france paris city river seine lyon wine london bread cheese tower eiffel".split()


class WordEncoder:
    """Bag-of-words teacher: deterministic, so near-duplicates are near-duplicates."""

    def encode(self, texts, normalize_embeddings=True, convert_to_tensor=False, show_progress_bar=False):
        vecs = np.array([[t.lower().split().count(w) + 1e-3 for w in VOCAB] for t in texts], dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        return torch.from_numpy(vecs) if convert_to_tensor else vecs


POSITIVE = "paris is the capital city of france"
TEACHER = {  # hand-set teacher scores for q = "capital of france"; positive 0.8 -> margin threshold 0.76
    POSITIVE: 0.8,
    "paris capital city of france": 0.5,  # near-duplicate of the positive (bag-of-words cos > 0.95)
    "france capital is paris": 0.79,  # too close to the positive: a likely false negative
    "lyon is a city in france": 0.7,
    "the seine is a river in france": 0.6,
    "france makes wine and cheese": 0.55,
    "london is a capital city": 0.45,
    "bread and cheese": 0.1,
}


def _write(tmp_path, rows, corpus):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    return str(tmp_path / "data.jsonl"), str(tmp_path / "corpus.jsonl")


def test_pipeline_on_hand_set_scores_and_cache(tmp_path):
    corpus = [{"task": "qa", "text": t} for t in TEACHER if t != POSITIVE] + [{"task": "other", "text": "eiffel tower"}]
    data, corp = _write(tmp_path, [{"task": "qa", "query": "capital of france", "positives": [POSITIVE]}], corpus)
    calls = []

    def scorer(queries, docs):
        calls.append(len(docs))
        return np.array([TEACHER[d] for d in docs])

    args = MiningArgs(mining_data=data, mining_corpus=corp, num_negatives=3, duplicate_threshold=0.95)
    ds = mine(args, tmp_path / "mined", encoder=WordEncoder(), scorer=scorer)
    assert ds.column_names == ["task", "query", "positive", "negatives", "scores"]
    row = ds[0]
    assert row["positive"] == POSITIVE and row["task"] == "qa"
    # 0.79 fails the margin, 0.5 is a near-duplicate, "eiffel tower" belongs to another task
    assert row["negatives"] == ["lyon is a city in france", "the seine is a river in france", "france makes wine and cheese"]
    assert row["scores"] == pytest.approx([0.8, 0.7, 0.6, 0.55])
    stats = json.loads((tmp_path / "mined" / "mining.json").read_text())["stats"]["qa"]
    assert stats["dropped_margin"] == 1 and stats["dropped_duplicate"] == 1

    n_calls = len(calls)
    mine(args, tmp_path / "mined", encoder=WordEncoder(), scorer=scorer)
    assert len(calls) == n_calls  # cached: the teacher is not asked again
    mine(MiningArgs(mining_data=data, mining_corpus=corp, num_negatives=2), tmp_path / "mined", encoder=WordEncoder(), scorer=scorer)
    assert len(calls) > n_calls  # changed args: mined again


def test_rows_of_one_query_are_mined_as_one_group(tmp_path):
    """A query on two rows: neither row's positive may be mined as the other's negative, and both positives anchor
    the margin (the lowest, 0.7 here: keep n iff t < 0.665)."""
    second = "lyon is a city in france"  # a second correct answer, given on its own row
    corpus = [{"task": "qa", "text": t} for t in TEACHER if t not in (POSITIVE, second)]
    rows = [{"task": "qa", "query": "capital of france", "positives": [POSITIVE]},
            {"task": "qa", "query": "capital of france", "positives": [second]}]
    data, corp = _write(tmp_path, rows, corpus)
    args = MiningArgs(mining_data=data, mining_corpus=corp, num_negatives=2)
    ds = mine(args, tmp_path / "mined", encoder=WordEncoder(), scorer=lambda q, d: np.array([TEACHER[x] for x in d]))
    assert sorted(ds["positive"]) == sorted([POSITIVE, second])
    for row in ds:
        assert row["negatives"] == ["the seine is a river in france", "france makes wine and cheese"]  # 0.6, 0.55 < 0.665
        assert row["scores"][1:] == pytest.approx([0.6, 0.55])


def test_short_groups_are_filled_with_random_docs_that_pass_the_filter(tmp_path):
    corpus = [{"task": "qa", "text": t} for t in TEACHER if t != POSITIVE]
    data, corp = _write(tmp_path, [{"task": "qa", "query": "capital of france", "positives": [POSITIVE]}], corpus)
    args = MiningArgs(mining_data=data, mining_corpus=corp, num_negatives=5, first_stage_top=1)
    ds = mine(args, tmp_path / "mined", encoder=WordEncoder(), scorer=lambda q, d: np.array([TEACHER[x] for x in d]))
    negs, scores = ds[0]["negatives"], ds[0]["scores"]
    assert len(negs) == 5 and len(set(negs)) == 5 and POSITIVE not in negs
    assert all(TEACHER[n] == s and s < 0.76 for n, s in zip(negs, scores[1:]))


def test_dense_rescoring_reuses_first_stage_embeddings_and_scores_the_cosine(tmp_path):
    class CountingEncoder(WordEncoder):
        seen: list[str] = []

        def encode(self, texts, **kwargs):
            self.seen.extend(texts)
            return super().encode(texts, **kwargs)

    corpus = [{"task": "qa", "text": t} for t in TEACHER if t != POSITIVE]
    query = "capital of france"
    data, corp = _write(tmp_path, [{"task": "qa", "query": query, "positives": [POSITIVE]}], corpus)
    args = MiningArgs(mining_data=data, mining_corpus=corp, num_negatives=2, reranker="dense")
    encoder = CountingEncoder()
    ds = mine(args, tmp_path / "mined", encoder=encoder)
    assert len(encoder.seen) == len(set(encoder.seen)) == len(TEACHER) + 1  # corpus + positive + query, once each

    def bag(text):  # the bag-of-words vector by hand
        v = np.array([text.lower().split().count(w) + 1e-3 for w in VOCAB])
        return v / np.linalg.norm(v)

    row = ds[0]
    expected = [bag(query) @ bag(t) for t in [POSITIVE, *row["negatives"]]]
    assert row["scores"] == pytest.approx(expected, abs=1e-5)


def test_missing_column_names_file_and_row(tmp_path):
    data, corp = _write(tmp_path, [{"task": "qa", "question": "x", "positives": ["y"]}], [{"task": "qa", "text": "z"}])
    with pytest.raises(LlmkitError, match=r"data.jsonl row 1: missing column 'query'"):
        mine(MiningArgs(mining_data=data, mining_corpus=corp), tmp_path / "m", encoder=WordEncoder(), scorer=lambda q, d: np.ones(len(d)))


def test_bundled_embed_mini_is_what_the_script_writes(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(root / "scripts" / "make_embed_mini.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("train.jsonl", "corpus.jsonl", "tasks.json"):
        assert (tmp_path / name).read_bytes() == (root / "llmkit" / "assets" / "embed_mini" / name).read_bytes()


def test_mine_with_a_saved_teacher_stores_its_cosines(tmp_path):
    from pathlib import Path

    from llmkit.embed.model import build_embedder

    teacher = build_embedder("tiny:llama-xs", pooling="mean", device="cpu")
    teacher.save(str(tmp_path / "teacher"))
    asset = Path(__file__).resolve().parents[1] / "llmkit" / "assets" / "embed_mini"
    rows = [json.loads(line) for line in (asset / "train.jsonl").read_text().splitlines()]
    data, corp = _write(tmp_path, [r for r in rows if r["task"] == "paraphrase"][:30],
                        [json.loads(line) for line in (asset / "corpus.jsonl").read_text().splitlines()])
    args = MiningArgs(mining_data=data, mining_corpus=corp, teacher_model=str(tmp_path / "teacher"), relative_margin=None,
                      absolute_margin=0.0, num_negatives=7)
    ds = mine(args, tmp_path / "mined")
    stats = json.loads((tmp_path / "mined" / "mining.json").read_text())["stats"]["paraphrase"]
    assert len(ds) + stats.get("dropped_short_rows", 0) == 30 and len(ds) >= 25
    assert all(len(n) == 7 for n in ds["negatives"])
    assert all(r[1:] == sorted(r[1:], reverse=True) for r in ds["scores"])  # hardest first
    row = ds[3]
    texts = [row["positive"], *row["negatives"]]
    q = teacher.encode([row["query"]], normalize_embeddings=True)
    d = teacher.encode(texts, normalize_embeddings=True)
    assert row["scores"] == pytest.approx((d @ q[0]).tolist(), abs=1e-4)
    assert all(s < row["scores"][0] for s in row["scores"][1:])  # absolute margin 0: strictly below the positive


def _hand_set_mining(tmp_path):
    corpus = [{"task": "qa", "text": t} for t in TEACHER if t != POSITIVE]
    data, corp = _write(tmp_path, [{"task": "qa", "query": "capital of france", "positives": [POSITIVE]}], corpus)
    return MiningArgs(mining_data=data, mining_corpus=corp, num_negatives=2), lambda q, d: np.array([TEACHER[x] for x in d])


def test_mine_never_deletes_a_folder_it_did_not_write(tmp_path):
    args, scorer = _hand_set_mining(tmp_path)
    mydir = tmp_path / "mydir"
    mydir.mkdir()
    (mydir / "a.txt").write_text("precious")
    with pytest.raises(LlmkitError, match="mined_dir: .*mydir is not empty and holds no mining.json") as err:
        mine(args, mydir, encoder=WordEncoder(), scorer=scorer)
    assert "\n" not in str(err.value)
    assert (mydir / "a.txt").read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == [
        "corpus.jsonl", "data.jsonl", "mydir"]  # nothing else was created or left behind
    # a user's folder named like the old staging folder (<mined_dir>.tmp) is not llmkit's either
    (tmp_path / "mined.tmp").mkdir()
    (tmp_path / "mined.tmp" / "b.txt").write_text("also precious")
    mine(args, tmp_path / "mined", encoder=WordEncoder(), scorer=scorer)
    assert (tmp_path / "mined.tmp" / "b.txt").read_text() == "also precious"
    # llmkit's own folder is replaced when the settings change, and nothing is left beside it
    mine(MiningArgs(**{**args.__dict__, "num_negatives": 1}), tmp_path / "mined", encoder=WordEncoder(), scorer=scorer)
    assert json.loads((tmp_path / "mined" / "mining.json").read_text())["args"]["num_negatives"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "data.jsonl", "mined", "mined.tmp", "mydir"]


def test_replace_owned_dir_keeps_the_old_folder_when_filling_fails(tmp_path):
    from llmkit.io import replace_owned_dir

    out = tmp_path / "out"
    with replace_owned_dir(out, "marker.json", "out_dir") as tmp:
        (tmp / "marker.json").write_text("{}")
        (tmp / "v").write_text("1")
    with pytest.raises(RuntimeError):
        with replace_owned_dir(out, "marker.json", "out_dir") as tmp:
            (tmp / "v").write_text("2")
            raise RuntimeError("crash while filling")
    assert (out / "v").read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["out"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(LlmkitError, match="out_dir: .*file is a file"):
        with replace_owned_dir(tmp_path / "file", "marker.json", "out_dir"):
            pass


def test_dense_top_is_the_exact_top_k_in_chunks():
    from llmkit.embed.mining import dense_top

    gen = np.random.default_rng(0)
    queries, corpus = gen.normal(size=(37, 8)).astype(np.float32), gen.normal(size=(301, 8)).astype(np.float32)
    expected = np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :10]
    assert (dense_top(queries, corpus, 10, query_chunk=5, corpus_chunk=7, use_faiss=False) == expected).all()  # chunks < k
    assert (dense_top(queries, corpus, 10, use_faiss=False) == expected).all()
    assert dense_top(queries, corpus[:4], 10, use_faiss=False).shape == (37, 4)  # k above the corpus size


def test_faiss_search_is_the_exact_matrix_product_top_k():
    """With faiss installed, CPU search goes through faiss.knn: the same top-k as the exact matrix product."""
    from llmkit.embed.mining import dense_top

    gen = np.random.default_rng(1)
    queries, corpus = gen.normal(size=(53, 16)).astype(np.float32), gen.normal(size=(997, 16)).astype(np.float32)
    scores = queries.astype(np.float64) @ corpus.T.astype(np.float64)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    got = dense_top(queries, corpus, 20, query_chunk=7, use_faiss=True)  # query chunks not dividing the queries
    assert (got == expected).all()
    assert (dense_top(queries, corpus, 20) == expected).all()  # faiss by default on CPU when installed
    assert (dense_top(queries, corpus[:5], 20, use_faiss=True) ==
            np.argsort(-scores[:, :5], axis=1, kind="stable")).all()  # k above the corpus size


def test_embedding_cache_encodes_each_text_once_and_returns_rows_in_order():
    from llmkit.embed.mining import EmbeddingCache

    seen = []

    class Recording(WordEncoder):
        def encode(self, texts, **kwargs):
            seen.append(list(texts))
            return super().encode(texts, **kwargs)

    cache = EmbeddingCache(Recording())
    first = cache.embed(["paris city", "lyon wine"])
    again = cache.embed(["lyon wine", "bread", "paris city", "bread"])
    assert seen == [["paris city", "lyon wine"], ["bread"]]
    direct = WordEncoder().encode(["lyon wine", "bread", "paris city", "bread"])
    assert np.allclose(again, direct) and np.allclose(first, direct[[2, 0]])


@pytest.mark.slow
def test_multi_process_teacher_encodes_as_one_process():
    """`llmkit mine --num_processes 2`: a two-process pool gives the single process' embeddings."""
    from sentence_transformers import SentenceTransformer

    from llmkit.embed.mining import EmbeddingCache, teacher_path

    model = SentenceTransformer(teacher_path("sentence-transformers/all-MiniLM-L6-v2"), device="cpu")
    texts = [f"sentence number {i} about {w}" for i, w in enumerate(VOCAB * 4)]
    pool = model.start_multi_process_pool(["cpu", "cpu"])
    try:
        pooled = EmbeddingCache(model, pool).embed(texts)
    finally:
        model.stop_multi_process_pool(pool)
    assert np.abs(pooled - EmbeddingCache(model).embed(texts)).max() < 1e-5


def test_num_processes_flag_gives_one_teacher_device_each():
    from llmkit.embed.cli import teacher_devices

    assert teacher_devices(["r.yaml", "--seed", "1"]) == (["r.yaml", "--seed", "1"], None)
    argv, devices = teacher_devices(["r.yaml", "--num_processes", "2", "--seed", "1"])
    assert argv == ["r.yaml", "--seed", "1"] and devices == (["cuda:0", "cuda:1"] if torch.cuda.is_available() else ["cpu", "cpu"])
    with pytest.raises(LlmkitError, match="--num_processes: x is not a positive whole number"):
        teacher_devices(["r.yaml", "--num_processes", "x"])


@pytest.fixture(scope="session")
def reranker_path(tmp_path_factory) -> str:
    """A tiny random-init CrossEncoder (seconds to build): a real reranker's code path, offline."""
    from llmkit.tiny import build_tiny_reranker

    return str(build_tiny_reranker(tmp_path_factory.mktemp("reranker") / "cross-encoder"))


def _embed_mini(task: str, queries: int) -> tuple[list[dict], list[dict]]:
    """The first `queries` rows of one task of the bundled embed_mini set, and that task's corpus."""
    from pathlib import Path

    asset = Path(__file__).resolve().parents[1] / "llmkit" / "assets" / "embed_mini"
    rows = [json.loads(line) for line in (asset / "train.jsonl").read_text().splitlines()]
    corpus = [json.loads(line) for line in (asset / "corpus.jsonl").read_text().splitlines()]
    return [r for r in rows if r["task"] == task][:queries], [r for r in corpus if r["task"] == task]


def test_cross_encoder_scores_are_the_soft_labels_and_the_margin_uses_them(tmp_path, reranker_path):
    """`reranker: <CrossEncoder path>`: every stored score is CrossEncoder(path).predict of its (query, text) pair, and
    the negatives are the K highest-scoring documents below the positive's score minus the margin. first_stage_top
    exceeds the corpus, so every document of the task is a candidate and the expected rows follow from the scores."""
    from sentence_transformers import CrossEncoder

    rows, corpus = _embed_mini("paraphrase", 24)
    data, corp = _write(tmp_path, rows, corpus)
    margin, k = 0.005, 3
    args = MiningArgs(mining_data=data, mining_corpus=corp, reranker=reranker_path, first_stage_top=1000,
                      num_negatives=k, relative_margin=None, absolute_margin=margin)
    ds = mine(args, tmp_path / "mined", encoder=WordEncoder())
    mined = {row["query"]: row for row in ds}

    model = CrossEncoder(reranker_path, device="cpu")  # independent of llmkit's scorer
    texts = list(dict.fromkeys([r["text"] for r in corpus] + [p for r in rows for p in r["positives"]]))
    kept = dropped = 0
    for row in rows:
        scores = dict(zip(texts, model.predict([(row["query"], t) for t in texts]).tolist()))
        positive = row["positives"][0]
        below = sorted((t for t in texts if t != positive and scores[t] < scores[positive] - margin),
                       key=lambda t: -scores[t])
        dropped += len(texts) - 1 - len(below)
        if len(below) < k:  # no random fill is left: every document was a candidate
            assert row["query"] not in mined
            continue
        kept += 1
        got = mined[row["query"]]
        assert got["negatives"] == below[:k]
        assert got["scores"] == pytest.approx([scores[positive], *(scores[t] for t in below[:k])], abs=1e-6)
    assert kept >= 5 and dropped > 0  # the margin had work to do, and rows were still mined
    stats = json.loads((tmp_path / "mined" / "mining.json").read_text())["stats"]["paraphrase"]
    assert stats["rows"] == kept and stats["dropped_margin"] == dropped


def _overlap_scorer(calls: list[int]):
    """A deterministic teacher: word overlap with the query, plus a per-pair jitter; records each call's size."""
    import zlib

    def score(queries, docs):
        calls.append(len(docs))
        return np.array([len(set(q.lower().split()) & set(d.lower().split())) / (1 + len(q.split()))
                         + (zlib.crc32((q + "\x00" + d).encode()) % 1000) / 1e5 for q, d in zip(queries, docs)],
                        dtype=np.float32)

    return score


@pytest.mark.parametrize("first_stage_top", [40, 2])  # 2: short groups, filled from random documents
def test_teacher_scores_a_task_in_one_call_as_query_by_query(first_stage_top):
    """The teacher sees every (query, positive) and (query, candidate) pair of a task in one call (a GPU batch, or a
    multi-process pool's work), and the rows are those of scoring query by query: same negatives, scores, order."""
    from llmkit.embed.mining import mine_task

    rows, corpus = _embed_mini("people_qa", 60)
    args = MiningArgs(num_negatives=4, first_stage_top=first_stage_top, relative_margin=0.1)
    groups = len({r["query"] for r in rows})
    mined = {}
    for pairs_per_call in (1, 1 << 16):  # 1: a call per query, as the teacher was called before
        calls: list[int] = []
        out, stats = mine_task("people_qa", rows, [r["text"] for r in corpus], WordEncoder(), _overlap_scorer(calls),
                               args, np.random.default_rng(0), pairs_per_call=pairs_per_call)
        fill_calls = len(calls) - (groups if pairs_per_call == 1 else 1)
        mined[pairs_per_call] = out, {k: v for k, v in stats.items() if not k.startswith("seconds")}, fill_calls
    assert mined[1] == mined[1 << 16]
    out, stats, fill_calls = mined[1]
    assert len(out) >= 30 and (fill_calls > 0) == (first_stage_top == 2) == (stats.get("filled_from_random", 0) > 0)


def test_mine_calls_the_teacher_once_per_task(tmp_path):
    rows, corpus = _embed_mini("people_qa", 80)
    second = [{**r, "task": "people_qa_b"} for r in rows[40:]]  # a second task: the same data under another name
    data, corp = _write(tmp_path, rows[:40] + second, corpus + [{**r, "task": "people_qa_b"} for r in corpus])
    calls: list[int] = []
    mine(MiningArgs(mining_data=data, mining_corpus=corp, num_negatives=3, first_stage_top=40, relative_margin=0.1),
         tmp_path / "mined", encoder=WordEncoder(), scorer=_overlap_scorer(calls))
    stats = json.loads((tmp_path / "mined" / "mining.json").read_text())["stats"]
    assert all(s.get("filled_from_random", 0) == 0 for s in stats.values())  # no random fill: no per-query call
    assert len(calls) == 2 and sum(calls) == sum(s["candidates"] for s in stats.values()) + 80  # one positive each


@pytest.mark.slow  # two spawned processes import torch and sentence-transformers: 20-35 s on a loaded 2-core machine
def test_cross_encoder_runs_on_the_teacher_devices_as_one_process(tmp_path, reranker_path, monkeypatch):
    """`llmkit mine --num_processes 2`: the cross-encoder scores in a two-process pool on the teacher's devices
    (sentence-transformers' CrossEncoder pool), and the rows are those of one process."""
    from sentence_transformers import CrossEncoder

    class PoolTeacher(WordEncoder):  # the bag-of-words teacher computes in the main process whatever pool it is given
        def start_multi_process_pool(self, devices):
            return {"devices": devices}

        def stop_multi_process_pool(self, pool):
            pass

        def encode(self, texts, pool=None, **kwargs):
            return super().encode(texts, **kwargs)

    started = []
    start = CrossEncoder.start_multi_process_pool
    monkeypatch.setattr(CrossEncoder, "start_multi_process_pool",
                        lambda self, devices=None: started.append(devices) or start(self, devices))
    rows, corpus = _embed_mini("paraphrase", 16)
    data, corp = _write(tmp_path, rows, corpus)
    args = MiningArgs(mining_data=data, mining_corpus=corp, reranker=reranker_path, first_stage_top=20, num_negatives=3,
                      relative_margin=None, absolute_margin=0.005)
    one = mine(args, tmp_path / "one", encoder=PoolTeacher())
    assert started == []
    two = mine(args, tmp_path / "two", encoder=PoolTeacher(), devices=["cpu", "cpu"])
    assert started == [["cpu", "cpu"]]
    assert len(one) >= 5 and one["negatives"] == two["negatives"] and one["query"] == two["query"]
    assert np.abs(np.array(one["scores"]) - np.array(two["scores"])).max() < 1e-6
