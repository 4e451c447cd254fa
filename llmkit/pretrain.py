"""Causal-LM pre-training on raw text (`task: pretrain`), from scratch or continued.

Data: a `datasets` text source (hub id, local .json/.jsonl/.parquet/.txt, or `python-docs`, the documentation that
ships with CPython) is split by document into train and a held-out set, tokenised, each document followed by EOS,
and packed into blocks of exactly `block_size` tokens (no padding). Blocks are cached under
$LLMKIT_CACHE/pretrain/<key>/, built once under a file lock, so parallel runs and every rank share one tokenisation.

LR: `lr_schedule` takes the spec grammar of `llmkit predict --schedule`, so a schedule that was predicted trains as
written and its metrics.jsonl goes straight back into `llmkit fit`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from transformers import Trainer, TrainingArguments

from llmkit.errors import LlmkitError
from llmkit.models import ModelArgs, check_model_path, load_causal_lm, load_tokenizer
from llmkit.scaling.schedules import parse_schedule, spec_settings

CACHE_VERSION = 1  # bump when the packing changes, so caches rebuild


def _features():
    import datasets

    return datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32"))})


@dataclass
class PretrainArgs:
    """What to pre-train on, how it is cut into blocks, and the LR schedule."""

    dataset: str = field(default="python-docs", metadata={
        "help": "hub id, local .json/.jsonl/.parquet/.txt file or folder, or python-docs (CPython's own documentation)"})
    dataset_config: str | None = field(default=None, metadata={"help": "hub config, e.g. sample-10BT"})
    dataset_split: str = field(default="train", metadata={
        "help": "split, slicing allowed (hub, local or bundled): train[:1000000]"})
    text_key: str = field(default="text", metadata={"help": "the column holding each document's text"})
    block_size: int = field(default=128, metadata={"help": "tokens per training sequence"})
    eval_fraction: float = field(default=0.05, metadata={"help": "share of documents held out for eval_loss"})
    max_eval_blocks: int | None = field(default=None, metadata={"help": "evaluate on at most this many held-out blocks"})
    split_seed: int = field(default=0, metadata={"help": "seed of the train / held-out document split"})
    init_from_scratch: bool = field(default=False, metadata={
        "help": "random weights from model_name_or_path's config (its tokenizer too) instead of its weights"})
    lr_schedule: str | None = field(default=None, metadata={
        "help": "LR spec as in `llmkit predict --schedule`, e.g. wsd:peak=1e-3,steps=2000,warmup=100,cooldown=0.2; "
                "sets learning_rate and max_steps, replaces lr_scheduler_type"})

    def __post_init__(self):
        if self.block_size < 2:
            raise ValueError(f"block_size must be >= 2, got {self.block_size}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must lie in [0, 1), got {self.eval_fraction}")
        if self.max_eval_blocks is not None and self.max_eval_blocks < 1:
            raise ValueError(f"max_eval_blocks must be >= 1 (null: every held-out block), got {self.max_eval_blocks}")
        if self.lr_schedule:
            try:
                parse_schedule(self.lr_schedule)
            except LlmkitError as err:
                raise ValueError(f"lr_schedule: {err}") from None


ARG_TYPES = (ModelArgs, PretrainArgs, TrainingArguments)


def pack(documents: Iterable[list[int]], eos_id: int, block_size: int) -> Iterator[list[int]]:
    """Token lists → blocks of exactly `block_size` tokens from the stream doc₀ EOS doc₁ EOS ..., in order.

    Every token of the stream lands in exactly one block, except the final partial block (< block_size tokens),
    which is dropped rather than padded."""
    buffer: list[int] = []
    for ids in documents:
        buffer.extend(ids)
        buffer.append(eos_id)
        start = 0
        while len(buffer) - start >= block_size:
            yield buffer[start:start + block_size]
            start += block_size
        del buffer[:start]


def _blocks(documents, tokenizer, text_key: str, block_size: int):
    """Generator for Dataset.from_generator: rows {"input_ids": block}, tokenised a thousand documents at a time."""

    def token_lists():
        for batch in documents.iter(batch_size=1000):
            yield from tokenizer(batch[text_key], add_special_tokens=False, verbose=False)["input_ids"]

    for block in pack(token_lists(), tokenizer.eos_token_id, block_size):
        yield {"input_ids": block}


def load_documents(args: PretrainArgs):
    """The text source as a file-backed `datasets.Dataset` with the text column checked."""
    from llmkit import corpus
    from llmkit.data import load_split
    from llmkit.tiny import cache_dir

    source = str(corpus.corpus_file(cache_dir() / "corpus")) if args.dataset == corpus.NAME else args.dataset
    return load_split(source, args.dataset_config, args.dataset_split, columns=(args.text_key,))


def _cache_key(args: PretrainArgs, documents, tokenizer) -> str:
    """What the blocks depend on: the source's files, the split and packing settings, and the tokenizer."""
    vocab = tokenizer.backend_tokenizer.to_str() if hasattr(tokenizer, "backend_tokenizer") else \
        json.dumps(tokenizer.get_vocab(), sort_keys=True)
    parts = {
        "version": CACHE_VERSION,
        "files": [(f["filename"], os.path.getsize(f["filename"])) for f in documents.cache_files],
        "source": [args.dataset, args.dataset_config, args.dataset_split, args.text_key],
        "packing": [args.block_size, args.eval_fraction, args.split_seed, tokenizer.eos_token_id],
        "tokenizer": hashlib.sha256(vocab.encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def prepare_blocks(args: PretrainArgs, tokenizer) -> dict:
    """{"train": blocks, "eval": held-out blocks (possibly empty)} for `args`, from the cache or built into it."""
    import datasets
    from filelock import FileLock

    from llmkit.tiny import cache_dir

    if tokenizer.eos_token_id is None:
        raise LlmkitError("model_name_or_path: the tokenizer has no EOS token to mark document ends")
    documents = load_documents(args)
    target = cache_dir() / "pretrain" / _cache_key(args, documents, tokenizer)
    with FileLock(str(target) + ".lock"):
        if not (target / "info.json").is_file():
            _build(args, documents, tokenizer, target)
    blocks = {split: datasets.load_from_disk(str(target / split)) for split in ("train", "eval")
              if (target / split).is_dir()}
    if not len(blocks.get("train", ())):
        raise LlmkitError(f"dataset: {args.dataset} holds fewer than block_size={args.block_size} training tokens")
    # No saved eval split: an empty selection of the train blocks. An empty Dataset.from_dict is fingerprinted by
    # pickling its arrow table, which failed on the GPU check's machine (Python 3.12).
    blocks.setdefault("eval", blocks["train"].select([]))
    if args.max_eval_blocks is not None:
        blocks["eval"] = blocks["eval"].select(range(min(args.max_eval_blocks, len(blocks["eval"]))))
    print(f"llmkit: {args.dataset}: {len(blocks['train'])} train / {len(blocks['eval'])} held-out blocks of "
          f"{args.block_size} tokens (cache {target})", file=sys.stderr)
    return blocks


def _build(args: PretrainArgs, documents, tokenizer, target: Path) -> None:
    """Split by document, tokenise and pack each part, and move the result into place whole."""
    import datasets

    if args.eval_fraction > 0:
        try:
            parts = documents.train_test_split(test_size=args.eval_fraction, seed=args.split_seed)
        except ValueError as err:  # e.g. too few documents for the fraction
            raise LlmkitError(f"eval_fraction: {err}") from None
        parts = {"train": parts["train"], "eval": parts["test"]}
    else:
        parts = {"train": documents, "eval": documents.select([])}
    staging = target.with_name(target.name + ".building")  # under the lock: what is there is a killed build's
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    counts = {}
    for split, docs in parts.items():
        try:
            blocks = datasets.Dataset.from_generator(
                _blocks, features=_features(), cache_dir=str(staging / "generator"), fingerprint=f"{target.name}-{split}",
                gen_kwargs={"documents": docs, "tokenizer": tokenizer, "text_key": args.text_key,
                            "block_size": args.block_size})
        except ValueError as err:  # datasets can neither build nor reload a split without rows: none is saved
            if "corresponds to no data" not in str(err):
                raise
            blocks = []
        if len(blocks):
            blocks.save_to_disk(str(staging / split))
        counts[split] = {"documents": len(docs), "blocks": len(blocks)}
    shutil.rmtree(staging / "generator", ignore_errors=True)
    (staging / "info.json").write_text(json.dumps({"block_size": args.block_size, **counts}, indent=2) + "\n")
    os.replace(staging, target)


def collate_blocks(rows: list[dict]) -> dict:
    """Equal-length blocks → a batch; labels are the inputs (the model shifts them), every token is attended."""
    import torch

    ids = torch.tensor([row["input_ids"] for row in rows], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


class ScheduleTrainer(Trainer):
    """A Trainer whose LR at step s is `lr_per_step[s]` exactly, when given (s = 1..steps).

    A LambdaLR over the spec's array rather than transformers' own schedulers: their warmup is step/warmup where the
    spec's (the MPL convention `llmkit predict` uses) is np.linspace(0, peak, warmup), so only the array reproduces
    the predicted schedule step for step."""

    def __init__(self, *args, lr_per_step=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_per_step = lr_per_step

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_per_step is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        from torch.optim.lr_scheduler import LambdaLR

        scale = self.lr_per_step / self.args.learning_rate
        last = len(scale) - 1
        # Update s (s = 1..steps) uses lr[s], so metrics.jsonl logs lr[s] at step s: `llmkit fit` reads back the very
        # array `llmkit predict` builds from the spec. lr[0], the LR "before training", is never used (with warmup it
        # is 0, which would waste an update); the clamp covers the scheduler step that follows the last update.
        self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda done: float(scale[min(done + 1, last)]))
        self._created_lr_scheduler = True  # as Trainer.create_scheduler: rebuilt if train() runs again
        return self.lr_scheduler


def apply_schedule(args: PretrainArgs, train_args: TrainingArguments, recipe_path: str):
    """The LR per step of `lr_schedule` (None without one); sets learning_rate to its peak and max_steps to its steps."""
    if not args.lr_schedule:
        return None
    lr = parse_schedule(args.lr_schedule)
    steps = len(lr) - 1
    if train_args.max_steps not in (-1, steps):
        raise LlmkitError(f"{recipe_path}: max_steps={train_args.max_steps} differs from lr_schedule's steps={steps}; "
                          "drop max_steps (the schedule sets it) or make them equal")
    if train_args.warmup_steps:
        raise LlmkitError(f"{recipe_path}: warmup_steps={train_args.warmup_steps} conflicts with lr_schedule; "
                          "give warmup= in the schedule instead")
    train_args.learning_rate = spec_settings(args.lr_schedule)["peak"]
    train_args.max_steps = steps
    return lr


def resolve_args(instances: tuple, recipe_path: str) -> None:
    """Before launch (train.prepare): the schedule's peak and steps become learning_rate and max_steps, so a conflict
    is one line before any run directory exists and config.yaml records what is trained."""
    apply_schedule(instances[2], instances[3], recipe_path)


def load_model(model_args: ModelArgs, args: PretrainArgs, seed: int):
    """The model to train: pretrained weights (continued pre-training), or fresh ones from the same config."""
    if not args.init_from_scratch:
        return load_causal_lm(model_args)
    from transformers import AutoConfig, AutoModelForCausalLM, set_seed

    config = AutoConfig.from_pretrained(check_model_path(model_args.model_name_or_path),
                                        revision=model_args.model_revision, trust_remote_code=model_args.trust_remote_code)
    set_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation=model_args.attn_implementation,
                                            trust_remote_code=model_args.trust_remote_code)


def train(run, model_args: ModelArgs, data_args: PretrainArgs, train_args: TrainingArguments, session) -> None:
    """config → data → model → trainer → train → save."""
    # config
    lr = apply_schedule(data_args, train_args, session.recipe_path)
    # data
    tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code)
    blocks = prepare_blocks(data_args, tokenizer)
    if train_args.eval_strategy != "no" and len(blocks["eval"]) == 0:
        raise LlmkitError(f"{session.recipe_path}: eval_strategy needs held-out blocks, but "
                          f"eval_fraction={data_args.eval_fraction} of {data_args.dataset} gives none")
    # model
    model = load_model(model_args, data_args, train_args.seed)
    # trainer
    trainer = ScheduleTrainer(model=model, args=train_args, train_dataset=blocks["train"],
                              eval_dataset=blocks["eval"] if len(blocks["eval"]) else None,
                              data_collator=collate_blocks, processing_class=tokenizer,
                              callbacks=session.callbacks(), lr_per_step=lr)
    # train → save
    session.train(trainer, tokenizer, merge_lora=model_args.merge_lora)
