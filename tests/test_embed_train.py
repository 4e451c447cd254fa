"""Embedding training smoke test: tiny decoder + LoRA on mined embed_mini rows; parameters move, loss finite and falling."""

import json
from pathlib import Path

import pytest
import torch

from llmkit.embed.mining import MiningArgs, mine
from llmkit.embed.model import build_embedder, embedding_lora
from llmkit.embed.prompts import load_task_prompts
from llmkit.embed.train import build_losses, build_trainer, prepare_datasets, training_columns
from llmkit.errors import LlmkitError

ASSET = Path(__file__).resolve().parents[1] / "llmkit" / "assets" / "embed_mini"


def test_training_columns_layout_and_group_size_check():
    rows = [{"task": "t", "query": "q", "positive": "p", "negatives": ["n1", "n2"], "scores": [3, 2, 1]}]
    ds = training_columns(rows)
    assert ds.column_names == ["query", "positive", "negative_1", "negative_2", "scores"]
    assert ds[0]["negative_2"] == "n2" and ds[0]["scores"] == [3.0, 2.0, 1.0]
    with pytest.raises(LlmkitError, match="group sizes"):
        training_columns(rows + [{**rows[0], "negatives": ["n1"], "scores": [1, 0]}])


def test_train_smoke(tmp_path):
    from sentence_transformers import SentenceTransformerTrainingArguments

    rows = [json.loads(line) for line in (ASSET / "train.jsonl").read_text().splitlines()]
    keep = [r for r in rows if r["task"] == "paraphrase"][:24] + [r for r in rows if r["task"] == "topic"][:16]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    teacher = build_embedder("tiny:llama-xs", pooling="mean", device="cpu")
    mined = mine(MiningArgs(mining_data=str(tmp_path / "data.jsonl"), mining_corpus=str(ASSET / "corpus.jsonl"),
                            relative_margin=None, absolute_margin=0.0, num_negatives=3), tmp_path / "mined", encoder=teacher)
    tasks = load_task_prompts(ASSET / "tasks.json")

    model = build_embedder("tiny:llama-xs", max_seq_length=256, lora=embedding_lora(r=8, alpha=16, dropout=0.0), device="cpu")
    datasets = prepare_datasets(mined, tasks, model[0].tokenizer, k_max=2, example_budget=96)
    assert set(datasets) == {"paraphrase", "topic"}
    losses = build_losses(model, tasks, datasets, temperature=0.05, kd_weight=1.0)
    assert losses["topic"].config["in_batch"] is False and losses["paraphrase"].config["in_batch"] is True

    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=24, per_device_train_batch_size=4, learning_rate=3e-3,
        warmup_steps=0, lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, seed=0, dataloader_drop_last=True,
    )
    trainer = build_trainer(model, datasets, losses, args)
    trainer.train()
    losses_logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses_logged) == 24 and all(torch.isfinite(torch.tensor(losses_logged)))
    assert sum(losses_logged[-6:]) / 6 < sum(losses_logged[:6]) / 6
    parts = [h for h in trainer.state.log_history if "kd" in h]  # both parts are logged on their own
    assert parts and all(h["infonce"] > 0 for h in parts[:3])
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p.detach(), before[n])]
    assert changed and all("lora_" in n for n in changed)
