"""Mining throughput: `llmkit.embed.mining.mine` end to end on a synthetic 10k-document corpus and 1k queries, with the
offline MiniLM teacher as dense retriever and (reranker: dense) rescorer, or a cross-encoder rescorer. Not a test:
prints a table and writes JSON.

    PYTHONPATH=. OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/bench/embed_mining.py [--docs 10000] [--queries 1000]
        [--first_stage_top 100] [--num_negatives 7] [--reranker dense|tiny|PATH] [--out bench_embed_mining.json]

`--reranker tiny` builds llmkit's tiny random-init CrossEncoder (`llmkit.tiny.build_tiny_reranker`, hidden 64) into the
temporary folder, so the cross-encoder path runs offline; `--reranker PATH` loads a saved CrossEncoder (e.g. one built
so, to time a checkout that lacks the builder). With a cross-encoder, the margin is absolute (0.005: the tiny model's
scores lie close together) rather than relative 0.05. CPU seconds are the process' user + system time, plus that of
child processes it waited for.

The corpus is generated here from a seed and written to a temporary folder (nothing is committed): person profiles
"{name} works as a {job} in {city}. ..." whose fields overlap across documents, so BM25 and the dense teacher both
return look-alike candidates and the margin filter has work to do; each query asks about one profile, its positive.
Stages (seconds from mining.json's per-task stats, queries/s = queries / seconds):
  - dense:   MiniLM encodes corpus + queries, exact chunked top-N (`dense_top`);
  - bm25:    bm25s indexes the corpus, top-N per query (queries streamed);
  - rescore: the teacher scores BM25 ∪ dense candidates (dense reranker: cosines of the embeddings the first stage
             made; cross-encoder: `predict` on the pairs), the margin, top-K (random fill).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

FIRST = ["Aino", "Bela", "Cyrus", "Dara", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jana", "Kenji", "Lina", "Mateo",
         "Nora", "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wim", "Xenia", "Yusuf", "Zoe"]
LAST = ["Rossi", "Kowal", "Novak", "Berg", "Costa", "Dahl", "Eriksen", "Fischer", "Garcia", "Horvat", "Ito", "Jansen",
        "Kim", "Laine", "Moreau", "Nagy", "Olsen", "Petrov", "Quist", "Rahman", "Silva", "Tanaka", "Urban", "Vidal"]
JOBS = ["architect", "chemist", "carpenter", "violinist", "nurse", "pilot", "baker", "teacher", "lawyer", "geologist",
        "editor", "plumber", "surgeon", "farmer", "painter", "engineer"]
CITIES = ["Leipzig", "Valencia", "Krakow", "Lyon", "Porto", "Turku", "Bergen", "Graz", "Utrecht", "Brno", "Osaka",
          "Quebec", "Perth", "Cusco", "Tunis", "Riga"]
HOBBIES = ["sailing", "birdwatching", "gardening", "painting", "chess", "climbing", "pottery", "running", "baking",
           "fishing", "cycling", "knitting"]
QUESTIONS = ["What is {name}'s job?", "Where does {name} live?", "Which hobby does {name} love?",
             "When was {name} born?", "Tell me about {name}, the {job}."]


def synthetic_corpus(docs: int, queries: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(mining rows {task, query, positives}, corpus rows {task, text}); profiles of distinct people, seeded."""
    rng = np.random.default_rng(seed)
    names = [f"{f} {chr(65 + m)}. {l}" for f in FIRST for l in LAST for m in range(26)]  # 16,224 distinct names
    picked = rng.choice(len(names), size=docs, replace=False)
    profiles = []
    for i in picked:
        job, city, hobby = rng.choice(JOBS), rng.choice(CITIES), rng.choice(HOBBIES)
        profiles.append(dict(name=names[i], job=job, city=city, hobby=hobby, year=int(rng.integers(1940, 2005))))
    texts = [f"{p['name']} works as a {p['job']} in {p['city']}. {p['name'].split()[0]} was born in {p['year']} "
             f"and loves {p['hobby']}." for p in profiles]
    asked = rng.choice(docs, size=queries, replace=False)
    rows = [{"task": "people_qa", "query": QUESTIONS[int(rng.integers(len(QUESTIONS)))].format(**profiles[i]),
             "positives": [texts[i]]} for i in asked]
    return rows, [{"task": "people_qa", "text": t} for t in texts]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of the children it waited for (pool workers, once stopped)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--first_stage_top", type=int, default=100)
    parser.add_argument("--num_negatives", type=int, default=7)
    parser.add_argument("--reranker", default="dense", help="dense, tiny (build the tiny CrossEncoder) or a CrossEncoder path")
    parser.add_argument("--out", default="bench_embed_mining.json")
    args = parser.parse_args()

    import torch

    from llmkit.embed.mining import MiningArgs, mine
    from llmkit.io import write_json

    rows, corpus = synthetic_corpus(args.docs, args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        data, corpus_path = Path(tmp) / "train.jsonl", Path(tmp) / "corpus.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        corpus_path.write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
        reranker = args.reranker
        if reranker == "tiny":
            from llmkit.tiny import build_tiny_reranker

            reranker = str(build_tiny_reranker(Path(tmp) / "reranker"))
        margin = dict(relative_margin=0.05) if reranker == "dense" else dict(relative_margin=None, absolute_margin=0.005)
        mining_args = MiningArgs(mining_data=str(data), mining_corpus=str(corpus_path),
                                 teacher_model="sentence-transformers/all-MiniLM-L6-v2", reranker=reranker,
                                 first_stage_top=args.first_stage_top, num_negatives=args.num_negatives, **margin)
        start, cpu_start = time.perf_counter(), cpu_seconds()
        mined = mine(mining_args, Path(tmp) / "mined")
        total, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start  # with loading the teachers and saving
        stats = json.loads((Path(tmp) / "mined" / "mining.json").read_text())["stats"]["people_qa"]

    stages = {"dense": stats["seconds_dense"], "bm25": stats["seconds_bm25"], "rescore": stats["seconds_rescore_filter"]}
    stages["mine() total"] = total
    print(f"reranker {args.reranker}; mine(): {total:.2f} s wall, {cpu:.2f} CPU-s")
    print(f"corpus {stats['corpus']} docs, {args.queries} queries -> {len(mined)} rows; "
          f"candidates/query {stats['candidates'] / args.queries:.1f}, margin drops {stats.get('dropped_margin', 0)}, "
          f"random fills {stats.get('filled_from_random', 0)}")
    print("| stage | seconds | queries/s |\n|---|---|---|")
    for stage, sec in stages.items():
        print(f"| {stage} | {sec:.2f} | {args.queries / sec:.1f} |")
    write_json(args.out, {"docs": stats["corpus"], "queries": args.queries, "rows": len(mined),
                          "first_stage_top": args.first_stage_top, "num_negatives": args.num_negatives,
                          "reranker": args.reranker, "cpu_seconds": cpu,
                          "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                          "seconds": stages, "queries_per_s": {k: args.queries / v for k, v in stages.items()},
                          "stats": stats})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
