"""The TOFU fine-tune step end to end on the tiny model: training works, loss is on answers, final/ loads."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from conftest import finetune_recipe
from llmkit.runs import read_metrics
from llmkit.train import main as train_main


def test_finetune_smoke_loss_falls_params_change_final_loads(tmp_path, tiny_model_path):
    recipe = finetune_recipe(tmp_path, max_steps=12, learning_rate=5e-3)
    assert train_main([str(recipe)]) == 0
    run = tmp_path / "runs" / "recipe"
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 13))
    for key in ("step", "epoch", "lr", "loss", "grad_norm", "tokens", "time"):
        assert all(key in r for r in rows), key
    losses = [r["loss"] for r in rows]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5  # falling, by a clear margin
    assert rows[-1]["tokens"] > rows[0]["tokens"] > 0

    from transformers import AutoModelForCausalLM

    before = load_file(f"{tiny_model_path}/model.safetensors")
    after = load_file(run / "final" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    model = AutoModelForCausalLM.from_pretrained(run / "final")
    assert (run / "final" / "COMPLETE").is_file() and model.config.vocab_size > 0
    config = (run / "config.yaml").read_text()
    assert "global_batch_size: 8" in config and "gradient_accumulation_steps: 1" in config
    info = json.loads((run / "run_info.json").read_text())
    assert info["packages"]["transformers"] and "git_sha" in info


def test_loss_is_on_answer_tokens_only(tmp_path, tiny_model_path):
    """The labels TRL trains on decode to exactly the answer plus the end-of-turn token."""
    from trl import SFTConfig, SFTTrainer

    from llmkit.data import QADataArgs, load_split, to_prompt_completion
    from llmkit.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_path)
    args = QADataArgs(dataset="tofu-mini", dataset_config="forget01")
    raw = load_split(args.dataset, args.dataset_config)
    data = raw.map(lambda r: to_prompt_completion(r["question"], r["answer"], args), remove_columns=raw.column_names)
    trainer = SFTTrainer(model=tiny_model_path, processing_class=tokenizer, train_dataset=data,
                         args=SFTConfig(output_dir=str(tmp_path / "o"), bf16=False, report_to="none", max_length=96))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0]
    answer_ids = labels[labels != -100]
    assert tokenizer.decode(answer_ids) == raw[0]["answer"] + "<|im_end|>"
