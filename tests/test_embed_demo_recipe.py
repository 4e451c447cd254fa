"""Regression for the tiny demo's collapse: on the random-init tiny backbone, the instruction prefix made every query
embed alike (mean pairwise cosine 0.988), so InfoNCE had no per-query signal and collapsed all embeddings to one point.
The demo recipe trains on raw texts; these tests render its inputs the way training does and look at the untrained
embeddings, and check `instructions: false` leaves the mined texts untouched."""

import json
from pathlib import Path

import numpy as np

from llmkit.embed.prompts import load_task_prompts
from llmkit.embed.train import prepare_datasets

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "llmkit" / "assets" / "embed_mini"


def _mined_people_qa(n: int = 40) -> list[dict]:
    """Mined-like rows without a teacher: negatives are other people's passages, scores favour the positive."""
    rows = [json.loads(line) for line in (ASSET / "train.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["task"] == "people_qa"][:n]
    docs = sorted({r["positives"][0] for r in rows})
    out = []
    for r in rows:
        pos = r["positives"][0]
        negs = [d for d in docs if d != pos][:3]
        out.append({"task": "people_qa", "query": r["query"], "positive": pos, "negatives": negs, "scores": [1.0, 0.2, 0.1, 0.0]})
    return out


def _demo_args():
    from llmkit.train import prepare

    _, (_, model_args, _, embed_args, train_args) = prepare(str(ROOT / "recipes" / "embed" / "tiny_demo.yaml"),
                                                             ["--output_root", "/nonexistent"], world=1)
    return model_args, embed_args, train_args


def test_instructions_false_keeps_raw_texts():
    from transformers import AutoTokenizer

    from llmkit.models import check_model_path

    rows = _mined_people_qa(16)  # four people: three negatives each
    tokenizer = AutoTokenizer.from_pretrained(check_model_path("tiny:llama-xs"))
    tasks = load_task_prompts(ASSET / "tasks.json")
    raw = prepare_datasets(rows, tasks, tokenizer, instructions=False, k_max=2)["people_qa"]
    prompted = prepare_datasets(rows, tasks, tokenizer, instructions=True, k_max=2)["people_qa"]
    assert raw["query"] == [r["query"] for r in rows]
    assert raw["negative_3"] == [r["negatives"][2] for r in rows]
    assert all(q.startswith("Instruct: ") or "\n\nInstruct: " in q for q in prompted["query"])


def test_demo_recipe_inputs_keep_queries_apart_at_init():
    """Untrained, the demo's training queries must not embed alike (with instructions these 40 rows gave cosine 0.914)."""
    from llmkit.embed.model import build_embedder

    model_args, embed_args, train_args = _demo_args()
    model = build_embedder(model_args.model_name_or_path, pooling=embed_args.pooling, attention=embed_args.attention,
                           max_seq_length=embed_args.max_seq_length, dtype=model_args.dtype, device="cpu")
    tasks = load_task_prompts(ASSET / "tasks.json")
    ds = prepare_datasets(_mined_people_qa(), tasks, model[0].tokenizer, seed=train_args.seed,
                          instructions=embed_args.instructions, k_max=embed_args.icl_max_examples,
                          example_budget=embed_args.icl_budget, example_max_tokens=embed_args.icl_example_max_tokens)
    queries = model.encode(ds["people_qa"]["query"], normalize_embeddings=True, convert_to_numpy=True)
    cos = queries @ queries.T
    mean_offdiag = cos[~np.eye(len(cos), dtype=bool)].mean()
    assert mean_offdiag < 0.8, f"untrained demo queries embed alike (mean pairwise cosine {mean_offdiag:.3f})"
