"""Instruction-embedding data at real scale, on synthetic data: input preparation, BM25, query integrity.

    PYTHONPATH=. OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false python scripts/bench/embed_scale.py \
        [--prep_rows 200000] [--bm25_docs 1000000] [--bm25_queries 300] [--intact_rows 10000]

Three parts, each in its own process (so each peak RSS is its own):
  - prep: `prepare_datasets` (what `llmkit mine` caches) on one task of `prep_rows` mined rows, 7 negatives each:
    in-context examples drawn (k ~ U{0..5}), cut and fitted to the token budgets, rendered and tokenised with the
    embedder's tokenizer (tiny:llama's, EOS appended); query_max_length 512, example budget 384, 128 tokens a side.
  - bm25: `bm25_index` on `bm25_docs` documents of 40 words from a 50k-word Zipf vocabulary, then `bm25_top`
    (top 100) for `bm25_queries` queries of 6 words, streamed in chunks of 1024.
  - intact: `intact_rows` rows whose examples are each far beyond the window (query_max_length 256, examples of
    ~600 tokens a side): the fraction whose tokenised input (truncated at 256 as the embedder does) ends with
    `Instruct: ...\\nQuery: {query}` and EOS. Must be 1.0.
Targets on the 2-core CPU machine: prep_s <= 120 for 200k rows, bm25_peak_rss_mb <= 6000 for 1M docs, total < 10 min.
Wall seconds depend on what else runs (load_avg_1min is reported); *_cpu_s are this process' own CPU seconds.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

JOBS = ["baker", "nurse", "architect", "carpenter", "pilot", "librarian", "chemist", "violinist", "farmer", "editor"]
CITIES = ["Porto", "Leipzig", "Tromso", "Valencia", "Krakow", "Ghent", "Bergen", "Turin", "Riga", "Graz"]
HOBBIES = ["rock climbing", "chess", "sailing", "pottery", "birdwatching", "running", "gardening", "painting"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def tokenizer():
    from llmkit.embed.model import append_eos_after_truncation
    from llmkit.models import load_tokenizer
    from llmkit.tiny import resolve_model_path

    return append_eos_after_truncation(load_tokenizer(resolve_model_path("tiny:llama")))


def person(i: int, rng) -> tuple[str, str]:
    job, city, hobby = JOBS[i % 10], CITIES[(i // 10) % 10], HOBBIES[(i // 100) % 8]
    year = 1950 + int(rng.integers(0, 50))
    query = f"Which {job} born in {year} lives in {city} and spends weekends on {hobby}? (case {i})"
    passage = (f"Person {i} works as a {job} in {city}. Born in {year}, they spend most weekends on {hobby}, "
               f"and colleagues describe them as careful, patient and curious about everything around them.")
    return query, passage


def mined_rows(n: int, rng, negatives: int = 7) -> list[dict]:
    pairs = [person(i, rng) for i in range(n)]
    picks = rng.integers(0, n, size=(n, negatives))
    return [{"task": "people", "query": q, "positive": p, "negatives": [pairs[j][1] for j in picks[i]],
             "scores": [0.9] + [0.5] * negatives} for i, (q, p) in enumerate(pairs)]


def part_prep(args) -> dict:
    from llmkit.embed.prompts import TaskPrompt
    from llmkit.embed.train import prepare_datasets

    tok = tokenizer()
    rows = mined_rows(args.prep_rows, np.random.default_rng(0))
    tasks = {"people": TaskPrompt("Given a question about a person, retrieve the passage that describes them")}
    start, cpu = time.perf_counter(), time.process_time()
    datasets = prepare_datasets(rows, tasks, tok, seed=0, k_max=5, example_budget=384, example_max_tokens=128,
                                query_max_length=512)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    queries = datasets["people"]["query"]
    return {"prep_rows": len(queries), "prep_s": round(seconds, 1), "prep_cpu_s": round(cpu, 1), "prep_rows_per_s": round(len(queries) / seconds),
            "prep_mean_examples": round(float(np.mean([q.count("\nResponse: ") for q in queries[:20000]])), 2),
            "prep_peak_rss_mb": round(peak_rss_mb())}


def part_intact(args) -> dict:
    from llmkit.embed.prompts import TaskPrompt, format_query, prompt_rows

    tok = tokenizer()
    rng = np.random.default_rng(1)
    rows = mined_rows(args.intact_rows, rng, negatives=1)
    for row in rows:  # every example side ~600 tokens: far beyond the 256-token window
        row["positive"] = " ".join([row["positive"]] * 12)
    instruction = "Given a question about a person, retrieve the passage that describes them"
    out = prompt_rows(rows, {"people": TaskPrompt(instruction)}, tok, rng, k_max=5, example_budget=1536,
                      example_max_tokens=256, query_max_length=256)
    ids = tok([r["query"] for r in out], truncation=True, max_length=256)["input_ids"]  # the embedder's query window
    intact = sum(seq[-1] == tok.eos_token_id and tok.decode(seq[:-1]).endswith(format_query(instruction, src["query"]))
                 for seq, src in zip(ids, rows))
    return {"intact_rows": len(rows), "query_intact_fraction": intact / len(rows),
            "intact_rows_with_examples": sum("\nResponse: " in r["query"] for r in out)}


def part_bm25(args) -> dict:
    from llmkit.embed.mining import bm25_index, bm25_top

    rng = np.random.default_rng(2)
    vocab = [f"w{i}" for i in range(50000)]
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    docs = []
    for start in range(0, args.bm25_docs, 100000):  # in blocks: the word-id matrix of all docs is not kept
        words = rng.choice(len(vocab), size=(min(100000, args.bm25_docs - start), 40), p=zipf / zipf.sum())
        docs += [" ".join(map(vocab.__getitem__, row)) for row in words.tolist()]
    queries = [" ".join(map(vocab.__getitem__, rng.integers(0, 5000, size=6).tolist())) for _ in range(args.bm25_queries)]
    start, cpu = time.perf_counter(), time.process_time()
    index = bm25_index(docs)
    index_s, index_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    hits = bm25_top(queries, index, top=100)
    query_s = time.perf_counter() - start
    assert hits.shape == (len(queries), 100)
    return {"bm25_docs": len(docs), "bm25_index_s": round(index_s, 1), "bm25_index_cpu_s": round(index_cpu, 1),
            "bm25_queries_per_s": round(len(queries) / query_s, 1), "bm25_peak_rss_mb": round(peak_rss_mb()),
            # what one 1024-query chunk of the former dense float64 scores would have needed (computed, not run)
            "bm25_former_dense_chunk_mb": round(1024 * len(docs) * 8 / 2**20)}


PARTS = {"prep": part_prep, "intact": part_intact, "bm25": part_bm25}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prep_rows", type=int, default=200000)
    parser.add_argument("--bm25_docs", type=int, default=1000000)
    parser.add_argument("--bm25_queries", type=int, default=300)
    parser.add_argument("--intact_rows", type=int, default=10000)
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # internal: run one part in this process
    args = parser.parse_args()
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return
    result, start = {}, time.perf_counter()
    for name in PARTS:
        proc = subprocess.run([sys.executable, __file__, "--part", name, *sys.argv[1:]], capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    with open("/proc/loadavg") as f:
        result["load_avg_1min"] = float(f.read().split()[0])
    result["total_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
