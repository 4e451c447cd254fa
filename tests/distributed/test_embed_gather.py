"""Two gloo ranks with gathered InfoNCE (+KD, +mask) give the single-process loss and gradients on the full batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmkit.embed.losses import soft_infonce

sys.path.insert(0, str(Path(__file__).parent))
from embed_gather_worker import global_batch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.distributed
def test_gathered_infonce_equals_single_process(tmp_path):
    world = 2
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
           str(Path(__file__).parent / "embed_gather_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]

    q, docs, teacher, ids, query_ids = global_batch(world)
    q.requires_grad_()
    docs.requires_grad_()
    loss, _ = soft_infonce(q, docs, teacher, temperature=0.05, teacher_temperature=0.5, doc_ids=ids, query_ids=query_ids)
    loss.backward()

    # Each rank averages over its own B queries, so the global mean is the mean of the rank losses.
    assert torch.stack([r["loss"] for r in ranks]).mean().item() == pytest.approx(loss.item(), rel=1e-5)
    # The gather's backward sums every rank's gradient into the local shard; DDP then divides by the world size.
    b = q.shape[0] // world
    for r, out in enumerate(ranks):
        assert torch.allclose(out["q_grad"] / world, q.grad[r * b:(r + 1) * b], atol=1e-6)
        assert torch.allclose(out["docs_grad"] / world, docs.grad[r * b:(r + 1) * b], atol=1e-6)
