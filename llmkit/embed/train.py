"""Embedding training: mined rows -> prompted, task-homogeneous datasets -> sentence-transformers' trainer.

Stands on `SentenceTransformerTrainer`: a dict of datasets with a dict of losses gives one task per batch
(its multi-dataset batch sampler), the `scores` column is the label (teacher scores), every other column is an
input in order (query, positive, negative_1..negative_K). llmkit adds the prompt rendering (prompts.py) and
the per-task loss mode (no in-batch negatives for classification/clustering tasks, from tasks.json), and resuming
a LoRA run from its adapter file.
"""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
from sentence_transformers import SentenceTransformerTrainer
from sentence_transformers.sampler import ProportionalBatchSampler
from sentence_transformers.util import get_world_size
from torch.utils.data import SubsetRandomSampler

from llmkit.embed.losses import build_loss
from llmkit.embed.prompts import TaskPrompt, prompt_rows, task_prompt
from llmkit.errors import LlmkitError


def training_columns(rows: list[dict]):
    """Rows {query, positive, negatives, scores} -> a Dataset with query, positive, negative_1..K, scores."""
    from datasets import Dataset

    if not rows:
        raise LlmkitError("mined data: no rows for a task")
    k = len(rows[0]["negatives"])
    for row in rows:
        if len(row["negatives"]) != k or len(row["scores"]) != k + 1:
            raise LlmkitError(f"mined data: task {row['task']!r} mixes group sizes ({k} vs {len(row['negatives'])} negatives)")
    negatives = zip(*(row["negatives"] for row in rows))
    columns = {"query": [row["query"] for row in rows], "positive": [row["positive"] for row in rows],
               **{f"negative_{i + 1}": list(column) for i, column in enumerate(negatives)},
               "scores": np.asarray([row["scores"] for row in rows], dtype=np.float64).tolist()}
    return Dataset.from_dict(columns)


def prepare_datasets(mined, tasks: dict[str, TaskPrompt], tokenizer, *, seed: int = 0, instructions: bool = True,
                     k_max: int = 5, example_budget: int = 1536, example_max_tokens: int = 256,
                     query_max_length: int = 512) -> dict[str, Any]:
    """One training Dataset per task, prompted (unless `instructions` is false) once, with a fixed seed."""
    rows = mined.to_list() if hasattr(mined, "to_list") else list(mined)
    rendered = prompt_rows(rows, tasks, tokenizer, np.random.default_rng(seed), k_max=k_max, example_budget=example_budget,
                           example_max_tokens=example_max_tokens, query_max_length=query_max_length) if instructions else rows
    by_task: dict[str, list[dict]] = {}
    for row in rendered:
        by_task.setdefault(row["task"], []).append(row)
    return {task: training_columns(task_rows) for task, task_rows in sorted(by_task.items())}


def build_losses(model, tasks: dict[str, TaskPrompt], task_names, loss: str = "soft_infonce", **loss_kwargs) -> dict:
    """One loss per task: the same loss, with in-batch negatives only where the task allows them."""
    return {name: build_loss(loss, model, in_batch=task_prompt(tasks, name, "train").in_batch_negatives, **loss_kwargs)
            for name in task_names}


class RankAlignedProportionalBatchSampler(ProportionalBatchSampler):
    """sentence-transformers' proportional multi-task sampler, with every rank on the same task at every step.

    accelerate deals consecutive batches of a batch sampler out to the ranks in turn, so with one task per batch the
    ranks of a step would hold different tasks: different loss settings (in-batch gather on or off) and gather shapes,
    which deadlocks the collective. Here each draw of a task yields `world` batches of it, one per rank; a task's
    last, incomplete group is dropped.
    """

    def __iter__(self):
        world = get_world_size()
        if world == 1:
            yield from super().__iter__()
            return
        if self.generator is not None and self.seed is not None:
            self.generator.manual_seed(self.seed + self.epoch)
        offsets = [0, *accumulate(len(d) for d in self.dataset.datasets)]
        groups = [len(sampler) // world for sampler in self.batch_samplers]
        order = [i for i, n in enumerate(groups) for _ in range(n)]
        iterators = [iter(sampler) for sampler in self.batch_samplers]
        for task in SubsetRandomSampler(order, generator=self.generator):
            for _ in range(world):
                yield [index + offsets[task] for index in next(iterators[task])]

    def __len__(self) -> int:
        world = get_world_size()
        return sum(len(sampler) // world * world for sampler in self.batch_samplers)


class EmbedTrainer(SentenceTransformerTrainer):
    """SentenceTransformerTrainer with rank-aligned task batches, which resumes a LoRA backbone from the
    checkpoint's adapter file (and merges a checkpoint's adapter into final/ the same way).

    The parent reloads the checkpoint as a new model and copies its state dict, but the reloaded backbone
    carries the adapter without peft's `base_model.model.` prefix, so the keys never match.
    """

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        # Under ZeRO-3, Trainer.save_model gathers the full weights into `state_dict` (rank 0), but the parent's
        # _save writes the module's own, partitioned (empty) parameters. Write the gathered ones instead.
        partitioned = state_dict is not None and any(p.numel() == 0 for p in self.model.parameters())
        if not partitioned:
            return super()._save(output_dir, state_dict)
        named = dict(self.model.named_parameters())
        shards = {name: param.data for name, param in named.items()}
        try:
            for name, param in named.items():
                param.data = state_dict[name].to(param.dtype)
            super()._save(output_dir, state_dict)
        finally:
            for name, param in named.items():
                param.data = shards[name]

    def get_multi_dataset_batch_sampler(self, dataset, batch_samplers, generator=None, seed=0):
        return RankAlignedProportionalBatchSampler(dataset, batch_samplers=batch_samplers, generator=generator,
                                                   seed=seed)

    def _load_from_checkpoint(self, checkpoint_path: str) -> None:
        backbone = self.model[0].model
        adapter = Path(checkpoint_path) / "adapter_model.safetensors"
        if not (hasattr(backbone, "peft_config") and adapter.is_file()):
            return super()._load_from_checkpoint(checkpoint_path)
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        result = set_peft_model_state_dict(backbone, load_file(str(adapter)))
        if result.unexpected_keys:
            raise LlmkitError(f"resume: {adapter} does not fit this model (e.g. {result.unexpected_keys[0]})")

    def save_merged(self, adapter_dir, out_dir) -> None:
        """save_final's LoRA merge for a final/ made from a checkpoint (llmkit.models.merge_adapter_dir would drop
        the sentence-transformers modules): the adapter saved in `adapter_dir` loaded into this model, folded in."""
        from llmkit.embed.model import merge_lora

        self._load_from_checkpoint(str(adapter_dir))
        merge_lora(self.model)
        self.model.save(str(out_dir))


def build_trainer(model, datasets: dict, losses: dict, training_args, callbacks=()):
    """The trainer over the task datasets (one task per batch), not yet trained."""
    return EmbedTrainer(model=model, args=training_args, train_dataset=datasets, loss=losses, callbacks=list(callbacks))
