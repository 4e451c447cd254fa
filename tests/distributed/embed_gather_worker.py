"""Run under torchrun: each rank computes soft_infonce on its shard of a fixed global batch and saves loss + grads."""

import sys

import torch
import torch.distributed as dist

from llmkit.embed.losses import soft_infonce


def global_batch(world: int, b: int = 3, g: int = 3, d: int = 8):
    """The same seeded batch on every rank and in the checking process; ids repeat across ranks."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(world * b, d, generator=gen)
    docs = torch.randn(world * b, g, d, generator=gen)
    teacher = torch.randn(world * b, g, generator=gen)
    ids = torch.arange(world * b * g).reshape(world * b, g)
    ids[-1, 1] = ids[0, 0]  # the last rank's last negative duplicates rank 0's first positive
    query_ids = torch.arange(world * b)
    query_ids[-1] = query_ids[0]  # the last rank's last row and rank 0's first row are one query
    return q, docs, teacher, ids, query_ids


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    q, docs, teacher, ids, query_ids = global_batch(world)
    b = q.shape[0] // world
    shard = slice(rank * b, (rank + 1) * b)
    q_local = q[shard].clone().requires_grad_()
    docs_local = docs[shard].clone().requires_grad_()
    loss, _ = soft_infonce(q_local, docs_local, teacher[shard], temperature=0.05, teacher_temperature=0.5, doc_ids=ids[shard],
                           query_ids=query_ids[shard])
    loss.backward()
    torch.save({"loss": loss.detach(), "q_grad": q_local.grad, "docs_grad": docs_local.grad}, f"{out_dir}/rank{rank}.pt")
    # Tearing gloo down while the peer is still inside the backward's collective aborts the process
    # ("terminate called without an active exception", ~1 run in 15); meet first.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
