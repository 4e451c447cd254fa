"""task: pretrain: packing, the held-out split, the cache, LR schedules step for step, and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import complete_checkpoints, pretrain_recipe, stop_at
from llmkit import pretrain
from llmkit.errors import LlmkitError
from llmkit.pretrain import PretrainArgs, ScheduleTrainer, apply_schedule, collate_blocks, pack, prepare_blocks
from llmkit.runs import read_metrics
from llmkit.scaling.schedules import parse_schedule
from llmkit.train import Session, main as train_main


def test_pack_by_hand():
    docs = [[1, 2, 3], [4], [5, 6, 7, 8, 9]]
    # stream: 1 2 3 E 4 E 5 6 7 8 9 E (12 tokens) -> three blocks of 4, nothing left over
    assert list(pack(docs, 0, 4)) == [[1, 2, 3, 0], [4, 0, 5, 6], [7, 8, 9, 0]]
    # block 5: 12 = 2*5 + 2, the final partial block [9, E] is dropped
    assert list(pack(docs, 0, 5)) == [[1, 2, 3, 0, 4], [0, 5, 6, 7, 8]]


@pytest.mark.parametrize("block_size", [1, 2, 7, 64])
def test_pack_loses_and_duplicates_nothing_but_the_final_partial_block(block_size):
    rng = np.random.default_rng(block_size)
    docs = [list(rng.integers(1, 1000, size=n)) for n in rng.integers(0, 150, size=60)]
    eos = -1
    stream = [t for doc in docs for t in [*doc, eos]]  # independent: the documents written out one after another
    blocks = list(pack(docs, eos, block_size))
    assert all(len(b) == block_size for b in blocks)
    flat = [t for b in blocks for t in b]
    assert flat == stream[: len(flat)]
    assert 0 <= len(stream) - len(flat) < block_size
    ends = np.cumsum([len(d) + 1 for d in docs]) - 1  # where each document's EOS must sit
    assert [i for i, t in enumerate(flat) if t == eos] == [e for e in ends if e < len(flat)]


def _documents(stream: list[int], eos: int, tokenizer) -> list[str]:
    """The complete documents in a packed token stream (split at EOS), decoded."""
    docs, current = [], []
    for token in stream:
        if token == eos:
            docs.append(tokenizer.decode(current))
            current = []
        else:
            current.append(token)
    return docs


def test_prepare_blocks_packs_the_corpus_in_order_with_eos_and_caches_it(pretrain_corpus, tiny_tokenizer, monkeypatch):
    args = PretrainArgs(dataset=str(pretrain_corpus), block_size=32, eval_fraction=0)
    blocks = prepare_blocks(args, tiny_tokenizer)
    texts = [json.loads(line)["text"] for line in pretrain_corpus.read_text().splitlines()]
    stream = [t for text in texts for t in [*tiny_tokenizer(text, add_special_tokens=False)["input_ids"],
                                            tiny_tokenizer.eos_token_id]]
    flat = [t for row in blocks["train"]["input_ids"] for t in row]
    assert flat == stream[: len(flat)] and len(stream) - len(flat) < 32
    assert len(blocks["eval"]) == 0

    batch = collate_blocks([blocks["train"][0], blocks["train"][1]])
    assert batch["input_ids"].shape == (2, 32) and torch.equal(batch["labels"], batch["input_ids"])
    assert int(batch["attention_mask"].sum()) == 64  # no padding

    monkeypatch.setattr(pretrain, "_build", lambda *a: pytest.fail("the cached blocks were built again"))
    again = prepare_blocks(args, tiny_tokenizer)
    assert again["train"]["input_ids"] == blocks["train"]["input_ids"]


def test_held_out_documents_are_not_trained_on(pretrain_corpus, tiny_tokenizer):
    blocks = prepare_blocks(PretrainArgs(dataset=str(pretrain_corpus), block_size=32, eval_fraction=0.1), tiny_tokenizer)
    eos = tiny_tokenizer.eos_token_id
    train = _documents([t for row in blocks["train"]["input_ids"] for t in row], eos, tiny_tokenizer)
    held = _documents([t for row in blocks["eval"]["input_ids"] for t in row], eos, tiny_tokenizer)
    texts = {json.loads(line)["text"] for line in pretrain_corpus.read_text().splitlines()}
    assert set(train) <= texts and set(held) <= texts
    assert len(held) >= 40  # about 10% of 600 documents, less the final partial block
    assert not set(held) & set(train)


SPECS = [
    "constant:peak=1e-3,steps=40,warmup=5",
    "cosine:peak=1e-3,steps=40,warmup=5,min=1e-4",
    "wsd:peak=1e-3,steps=40,warmup=5,cooldown=0.25",
    "wsd:peak=1e-3,steps=40,warmup=5,cooldown=0.25,shape=cosine",
    "wsd:peak=1e-3,steps=40,warmup=5,cooldown=10,shape=1-sqrt,min=1e-5",
    "multistep:peak=1e-3,steps=40,warmup=5,milestones=20/30,gamma=0.3",
]


@pytest.mark.parametrize("spec", SPECS)
def test_trainer_lr_equals_the_spec_array_step_for_step(spec, tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    lr = apply_schedule(PretrainArgs(lr_schedule=spec), args, "recipe.yaml")
    assert args.max_steps == 40 and args.learning_rate == 1e-3
    trainer = ScheduleTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_path), args=args, lr_per_step=lr)
    trainer.create_optimizer_and_scheduler(num_training_steps=args.max_steps)
    used = []
    for _ in range(args.max_steps):  # as in training: one scheduler step after each optimizer step
        used.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    np.testing.assert_allclose(used, parse_schedule(spec)[1:], rtol=1e-12, atol=0)  # update s uses lr[s]


def test_schedule_conflicts_are_one_line_errors(pretrain_corpus, tmp_path):
    bad = pretrain_recipe(tmp_path / "a", pretrain_corpus, lr_schedule="cosine:peak=1e-3,steps=4,warmpu=1")
    with pytest.raises(LlmkitError, match=r"recipe.yaml: PretrainArgs: lr_schedule: .*unknown key 'warmpu'"):
        train_main([str(bad)])
    steps = pretrain_recipe(tmp_path / "b", pretrain_corpus, max_steps=9)
    with pytest.raises(LlmkitError, match=r"recipe.yaml: max_steps=9 differs from lr_schedule's steps=4"):
        train_main([str(steps)])
    assert not (tmp_path / "b" / "runs").exists()


@pytest.mark.parametrize("blocks", [0, -1])
def test_max_eval_blocks_below_one_is_a_one_line_error_naming_it(pretrain_corpus, tmp_path, blocks):
    """Not an empty held-out set silently, nor an error that blames eval_fraction."""
    bad = pretrain_recipe(tmp_path, pretrain_corpus, max_eval_blocks=blocks)
    with pytest.raises(LlmkitError, match=rf"recipe.yaml: PretrainArgs: max_eval_blocks must be >= 1 .*got {blocks}"):
        train_main([str(bad)])
    assert not (tmp_path / "runs").exists()


def test_two_steps_then_resume_equals_four_steps(pretrain_corpus, tmp_path, monkeypatch):
    common = dict(save_strategy="steps", save_steps=2)
    straight = pretrain_recipe(tmp_path / "a", pretrain_corpus, **common)
    assert train_main([str(straight)]) == 0

    resumed = pretrain_recipe(tmp_path / "b", pretrain_corpus, **common)
    original = Session.callbacks
    monkeypatch.setattr(Session, "callbacks", lambda self: original(self) + [stop_at(2)])
    train_main([str(resumed), "--save_final", "false"])
    monkeypatch.setattr(Session, "callbacks", original)
    run_a, run_b = tmp_path / "a" / "runs" / "recipe", tmp_path / "b" / "runs" / "recipe"
    assert [p.name for p in complete_checkpoints(run_b)] == ["checkpoint-2"]
    assert train_main([str(resumed)]) == 0  # resume: auto picks checkpoint-2

    rows_a, rows_b = read_metrics(run_a / "metrics.jsonl"), read_metrics(run_b / "metrics.jsonl")
    schedule = parse_schedule("cosine:peak=3e-3,steps=4,warmup=2,min=3e-4")
    train_a = [r for r in rows_a if "loss" in r]
    assert [r["step"] for r in train_a] == [1, 2, 3, 4]
    assert [r["lr"] for r in train_a] == pytest.approx(schedule[1:], rel=1e-9)  # the spec's array, as logged
    assert [r["step"] for r in rows_a if "eval_loss" in r] == [2, 4]
    assert [(r["step"], sorted(k for k in r if k in ("loss", "eval_loss"))) for r in rows_b] == \
        [(r["step"], sorted(k for k in r if k in ("loss", "eval_loss"))) for r in rows_a]
    for a, b in zip(rows_a, rows_b):
        for key in ("loss", "eval_loss", "lr"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6)
    weights_a = load_file(run_a / "final" / "model.safetensors")
    weights_b = load_file(run_b / "final" / "model.safetensors")
    for key in weights_a:
        torch.testing.assert_close(weights_b[key], weights_a[key], rtol=1e-5, atol=1e-6)


def test_python_docs_corpus_is_the_interpreters_own_documentation(tmp_path):
    from pydoc_data.topics import topics

    from llmkit.corpus import corpus_file

    path = corpus_file(tmp_path)
    docs = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    assert docs[: len(topics)] == [topics[name].strip() for name in sorted(topics)]
    assert any(doc.startswith("JSON (JavaScript Object Notation) <https://json.org> is a subset") for doc in docs)
    assert sum(map(len, docs)) > 1_000_000 and len(set(docs)) > 0.9 * len(docs)  # far more than a tiny model holds
    assert corpus_file(tmp_path) == path  # written once


def test_local_txt_files_are_one_document_each(tmp_path):
    from llmkit.data import load_split

    (tmp_path / "a.txt").write_text("first line\nsecond line\n")
    (tmp_path / "b.txt").write_text("another document")
    rows = load_split(str(tmp_path), columns=("text",))
    assert sorted(rows["text"]) == ["another document", "first line\nsecond line\n"]


def test_a_sliced_split_reads_only_its_own_files_and_the_slice(tmp_path):
    """dataset_split takes the hub's slicing (train[:2]): in a local folder it still picks train's files, not every
    file, and in the bundled copies it still finds the split; then the slice applies."""
    from llmkit.data import load_rows, load_split

    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"text": f"train {i}"}) + "\n" for i in range(3)))
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps({"text": f"val {i}"}) + "\n" for i in range(2)))
    assert list(load_split(str(tmp_path), split="train[:2]")["text"]) == ["train 0", "train 1"]
    assert list(load_split(str(tmp_path), split="validation[1:]")["text"]) == ["val 1"]
    whole = load_rows("tofu-mini", "forget01", "train")
    assert load_split("tofu-mini", "forget01", "train[:3]").to_list() == whole[:3]
    assert load_rows("tofu-mini", "forget01", "train[-2:]") == whole[-2:]
    for bad in ("train[abc]", "train[:5%]"):  # a slice datasets cannot read, one that holds no row of 6
        with pytest.raises(LlmkitError, match=rf"tofu-mini: could not read train\[.*\]: "):
            load_split("tofu-mini", "forget01", bad)
