"""Training step time of the embedding loss with and without the KL term: `SoftInfoNCELoss` with kd_weight 0 vs 1 on the
same batch, same model. Not a test: prints a table and writes JSON.

    PYTHONPATH=. OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/bench/embed_train_step.py [--model tiny:llama]
        [--batch 16] [--negatives 3] [--words 40] [--steps 20] [--lora_r 16] [--device cpu|cuda]
        [--dtype float32|bfloat16] [--out bench_embed_train_step.json]

One step = embed the query and group columns (the loss's own `embed_columns` forward), InfoNCE with gathered
in-batch negatives and the false-negative mask (+ the KL term when kd_weight = 1), backward, AdamW step: what the
trainer runs per batch, without its data loading. Defaults follow recipes/embed/tiny_demo.yaml (LoRA r 16, batch 16,
3 negatives). Texts are synthetic, seeded: ~`--words` words each; teacher scores are seeded random numbers.
The two settings alternate step by step after 3 warm-up steps each, so drift on a shared machine hits both alike;
the table gives the median. On cuda each step is timed between synchronisations and the peak CUDA memory is reported.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def batch_columns(batch: int, negatives: int, words: int, seed: int = 0) -> tuple[list[list[str]], list[list[float]]]:
    """Columns (query, positive, negative_1..K) of seeded texts and (batch, 1 + K) teacher scores in [0, 1]."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(500)]
    columns = [[" ".join(rng.choice(vocab, size=max(2, int(rng.normal(words, words / 4))))) for _ in range(batch)]
               for _ in range(2 + negatives)]
    return columns, rng.uniform(0, 1, size=(batch, 1 + negatives)).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:llama")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lora_r", type=int, default=16, help="0 = full fine-tuning")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="backbone weights; LoRA weights stay float32 (peft)")
    parser.add_argument("--out", default="bench_embed_train_step.json")
    args = parser.parse_args()

    import torch

    from sentence_transformers.util import batch_to_device

    from llmkit.embed.losses import SoftInfoNCELoss
    from llmkit.embed.model import build_embedder, embedding_lora
    from llmkit.io import write_json

    torch.manual_seed(0)
    lora = embedding_lora(r=args.lora_r, alpha=2 * args.lora_r, dropout=0.0) if args.lora_r else None
    model = build_embedder(args.model, max_seq_length=256, lora=lora, dtype=args.dtype, device=args.device)
    model.train()
    columns, scores = batch_columns(args.batch, args.negatives, args.words)
    features = [batch_to_device(model.preprocess(col), args.device) for col in columns]
    labels = torch.tensor(scores, device=args.device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    losses = {kd: SoftInfoNCELoss(model, temperature=0.05, kd_weight=kd) for kd in (0.0, 1.0)}

    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def step(kd: float) -> float:
        sync()
        start = time.perf_counter()
        parts = losses[kd](features, labels)
        sum(parts.values()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - start

    times = {kd: [] for kd in losses}
    for i in range(3 + args.steps):
        for kd in losses:
            seconds = step(kd)
            if i >= 3:
                times[kd].append(seconds)
    ms = {kd: 1000 * float(np.median(t)) for kd, t in times.items()}
    tokens = sum(int(f["attention_mask"].sum()) for f in features)
    peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None
    print(f"{args.model} ({args.dtype}, {args.device}), LoRA r {args.lora_r or 'none'}, "
          f"batch {args.batch} x (1 query + 1 positive + {args.negatives} "
          f"negatives), {tokens} tokens/step, median of {args.steps} steps")
    print("| kd_weight | ms/step |\n|---|---|")
    for kd, value in ms.items():
        print(f"| {kd:g} | {value:.1f} |")
    print(f"ratio (kd 1 / kd 0): {ms[1.0] / ms[0.0]:.3f}")
    if peak_cuda is not None:
        print(f"peak CUDA memory: {peak_cuda:.1f} MiB")
    write_json(args.out, {"model": args.model, "lora_r": args.lora_r, "batch": args.batch, "negatives": args.negatives,
                          "tokens_per_step": tokens, "steps": args.steps, "device": args.device, "dtype": args.dtype,
                          "peak_cuda_mib": peak_cuda,
                          "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                          "ms_per_step": {f"kd_{kd:g}": v for kd, v in ms.items()},
                          "ratio_kd1_over_kd0": ms[1.0] / ms[0.0],
                          "seconds": {f"kd_{kd:g}": t for kd, t in times.items()}})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
