"""Time of one FLAT step vs one SFT step on the same forget batch, peak RSS of each, and the `reference` reduction
vs literally padding to 500 tokens. Not a test: prints a table and writes JSON.

    python scripts/bench/unlearn_step.py [--model tiny:llama] [--batch 16] [--steps 20] [--device cpu|cuda]
        [--dtype float32|bfloat16] [--out bench_unlearn.json]

SFT = forward/backward of the forget answers (HF causal-LM loss). FLAT = forget + template sequences in one pass
(the trainer's default) and the FLAT loss. Each mode runs in a fresh subprocess so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _batch(model_path: str, batch: int, pad_to: int | None):
    from llmkit.data import QADataArgs, load_split
    from llmkit.models import load_tokenizer
    from llmkit.unlearn.data import UnlearnCollator, UnlearnDataset, qa_examples
    from llmkit.unlearn.templates import load_templates

    tok = load_tokenizer(model_path)
    rows = list(load_split("tofu-mini", "forget10"))[:batch]
    dataset = UnlearnDataset(tok, qa_examples(tok, rows, QADataArgs()), frozenset({"forget", "template"}),
                             templates=load_templates("idk"), max_length=512, add_special_tokens=False)
    features = [dataset[i] for i in range(len(dataset))]
    real = {s: sum(len(f[f"{s}_input_ids"]) for f in features) for s in ("forget", "template")}
    if pad_to:  # what the released FLAT code does: every sequence padded to the full length (same compute
        # whether or not the pads are masked, so they stay in the attention mask here)
        for f in features:
            for s in ("forget", "template"):
                n = pad_to - len(f[f"{s}_input_ids"])
                f[f"{s}_input_ids"] = f[f"{s}_input_ids"] + [tok.pad_token_id] * n
                f[f"{s}_labels"] = f[f"{s}_labels"] + [-100] * n
    batch = UnlearnCollator(tok.pad_token_id)(features)
    return tok, batch, real


def run_mode(mode: str, model_path: str, batch_size: int, steps: int, device: str, dtype: str) -> dict:
    """Time `steps` forward/backward passes of one mode after 2 warm-up steps."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmkit.tiny import resolve_model_path
    from llmkit.unlearn.losses import flat
    from llmkit.unlearn.trainer import stream_logps

    path = resolve_model_path(model_path)
    tok, batch, real = _batch(path, batch_size, 500 if mode == "flat_padded500" else None)
    batch = {k: v.to(device) for k, v in batch.items()}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
    model.train()

    def step():
        if mode == "sft":
            loss = model(input_ids=batch["forget_input_ids"], attention_mask=batch["forget_attention_mask"],
                         labels=batch["forget_labels"]).loss
        else:
            logps = stream_logps(model, batch, ["forget", "template"], True, tok.pad_token_id)
            loss, _ = flat(*logps["forget"], *logps["template"], divergence="kl",
                           reduction="reference", padded_length=500)
        loss.backward()
        model.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / steps
    tokens = real["forget"] + (0 if mode == "sft" else real["template"])  # real tokens, pads not counted
    return {"mode": mode, "seconds_per_step": seconds, "tokens_per_step": tokens, "tokens_per_s": tokens / seconds,
            "width": {s: int(batch[f"{s}_input_ids"].shape[1]) for s in ("forget", "template")},
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny:llama")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", default="bench_unlearn.json")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.mode:
        print(json.dumps(run_mode(opts.mode, opts.model, opts.batch, opts.steps, opts.device, opts.dtype)))
        return
    results = {}
    for mode in ("sft", "flat", "flat_padded500"):
        cmd = [sys.executable, __file__, "--mode", mode, "--model", opts.model, "--batch", str(opts.batch),
               "--steps", str(opts.steps), "--device", opts.device, "--dtype", opts.dtype]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    summary = {
        "flat_over_sft_time": results["flat"]["seconds_per_step"] / results["sft"]["seconds_per_step"],
        "flat_over_sft_rss": results["flat"]["peak_rss_mib"] / results["sft"]["peak_rss_mib"],
        "padded500_over_reference_time": results["flat_padded500"]["seconds_per_step"] / results["flat"]["seconds_per_step"],
    }
    report = {"config": vars(opts), "results": results, "summary": summary}
    tmp = Path(opts.out + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(opts.out)
    for mode, r in results.items():
        print(f"{mode:>15}: {r['seconds_per_step'] * 1e3:8.1f} ms/step  {r['tokens_per_s']:9.0f} tok/s  "
              f"widths {r['width']}  peak RSS {r['peak_rss_mib']:.0f} MiB")
    print(" ".join(f"{k}={v:.2f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
