"""Task batches line up across ranks: accelerate deals consecutive batches to ranks in turn, so each task's batches
must come `world` at a time, or ranks of one step would train on different tasks (and deadlock in the gather)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, ConcatDataset, SequentialSampler

from llmkit.embed.train import RankAlignedProportionalBatchSampler


def _sampler(sizes, batch_size):
    datasets = [list(range(n)) for n in sizes]
    samplers = [BatchSampler(SequentialSampler(d), batch_size, drop_last=True) for d in datasets]
    return RankAlignedProportionalBatchSampler(ConcatDataset(datasets), batch_samplers=samplers,
                                               generator=torch.Generator(), seed=0)


def test_each_task_comes_world_batches_at_a_time(monkeypatch):
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    sizes, batch = [40, 24, 12], 4  # 10, 6 and 3 batches: the third task's odd batch is dropped
    batches = list(_sampler(sizes, batch))
    offsets = [0, 40, 64]
    task_of = lambda b: max(i for i, o in enumerate(offsets) if b[0] >= o)
    assert len(batches) == len(_sampler(sizes, batch)) == 10 + 6 + 2
    for rank0, rank1 in zip(batches[::2], batches[1::2]):  # what accelerate hands rank 0 and rank 1 per step
        assert task_of(rank0) == task_of(rank1)
        assert all(task_of([i]) == task_of(rank0) for i in rank0 + rank1)
    seen = sorted(i for b in batches for i in b)
    assert len(seen) == len(set(seen))  # no example twice


def test_single_process_is_sentence_transformers_proportional_sampler():
    sampler = _sampler([40, 24, 12], 4)
    assert len(list(sampler)) == 10 + 6 + 3 == len(sampler)
