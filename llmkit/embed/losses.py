"""Contrastive + soft-label distillation losses for embedding training.

Stands on sentence-transformers 6: `util.all_gather_with_grad` / `util.all_gather` for the cross-device
gather, `base.losses.merged_forward.embed_columns` for embedding the columns in the trainer, and
`base.losses.gradcache.CachedLossMixin` for the GradCache variant. What llmkit adds, and why it is not
`MultipleNegativesRankingLoss` + `DistillKLDivLoss`: a false-negative mask on gathered candidates, a
no-in-batch-negatives mode, per-query standardised teacher scores with their own temperature, and a KL
term without the T^2 factor (DistillKLDivLoss multiplies by T^2, which at tau=0.02 scales KD by 4e-4).
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmkit.errors import LlmkitError


def _gather(x: Tensor, with_grad: bool) -> tuple[Tensor, int]:
    """All-gather rows across ranks (local shard keeps its gradient); return the tensor and this rank."""
    from sentence_transformers.util import all_gather, get_rank, get_world_size

    if get_world_size() == 1:
        return x, 0
    return all_gather(x, with_grad=with_grad), get_rank()


def soft_label_targets(teacher_scores: Tensor, teacher_temperature: float = 1.0, eps: float = 1e-6) -> Tensor:
    """p_T = softmax(z(t) / T_t) with z the per-query standardisation over the group; (B, G) -> (B, G)."""
    t = teacher_scores.detach().float()
    z = (t - t.mean(dim=1, keepdim=True)) / (t.std(dim=1, unbiased=False, keepdim=True) + eps)
    return torch.softmax(z / teacher_temperature, dim=1)


def soft_infonce(
    query: Tensor,
    docs: Tensor,
    teacher_scores: Tensor | None = None,
    *,
    temperature: float = 0.02,
    kd_weight: float = 1.0,
    teacher_temperature: float = 1.0,
    in_batch: bool = True,
    doc_ids: Tensor | None = None,
    query_ids: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """InfoNCE over positives + hard negatives (+ gathered in-batch) with a false-negative mask, plus KD.

    Formula (s = cosine, tau = temperature, G_i = {d_i+, d_i1-, ..., d_iK-}):
        L_CL = -(1/B) sum_i log exp(s(q_i,d_i+)/tau) / sum_{d in D_i} m_id exp(s(q_i,d)/tau)
        D_i  = all docs of every group on every rank (in_batch=True) or G_i only (in_batch=False)
        m_id = 0 where d is not d_i+ itself but has the id of the positive d_j+ of a row j with the same query id
               as i (j = i: a duplicate of the own positive; j != i: another positive of the same query, which
               is a false negative, not a negative)
        p_T  = softmax(z(t_i) / T_t) over G_i, z = per-query standardisation of the teacher scores
        p_S  = softmax(s(q_i, G_i) / tau)
        L    = L_CL + lambda * (1/B) sum_i KL(p_T || p_S)
    Refs: InfoNCE with in-batch + hard negatives (E5-Mistral, arXiv 2401.00368); soft labels from
    teacher scores (LGAI-Embedding, arXiv 2506.07438); duplicate mask (Gemini Embedding, arXiv 2503.07891).

    Shapes: query (B, D); docs (B, G, D) with the positive at docs[:, 0]; teacher_scores (B, G) or None
    (no KD term); doc_ids (B, G) int64 text ids or None (no mask); query_ids (B,) int64 query text ids or None
    (every row its own query). Under torch.distributed every rank must
    hold the same B and G. Returns (loss, {"infonce", "kd"}) with the logged parts detached.
    """
    infonce, kd = _infonce_and_kd(query, docs, teacher_scores, temperature, kd_weight, teacher_temperature, in_batch,
                                  doc_ids, query_ids)
    return infonce + kd_weight * kd, {"infonce": infonce.detach(), "kd": kd.detach()}


def _infonce_and_kd(query, docs, teacher_scores, temperature, kd_weight, teacher_temperature, in_batch, doc_ids,
                    query_ids=None):
    """The two terms of `soft_infonce`, both still attached to the graph."""
    batch, group, _ = docs.shape
    query = F.normalize(query, dim=-1)
    docs = F.normalize(docs, dim=-1)
    group_logits = torch.einsum("bd,bgd->bg", query, docs) / temperature  # (B, G)

    if in_batch:
        candidates, rank = _gather(docs.reshape(batch * group, -1), with_grad=True)  # (W*B*G, D)
        logits = query @ candidates.T / temperature  # (B, W*B*G)
        targets = (rank * batch + torch.arange(batch, device=query.device)) * group
        cand_ids = None if doc_ids is None else _gather(doc_ids.reshape(-1), with_grad=False)[0]  # (W*B*G,)
    else:
        logits = group_logits
        targets = torch.zeros(batch, dtype=torch.long, device=query.device)
        cand_ids = None if doc_ids is None else doc_ids  # (B, G), compared row-wise below

    if doc_ids is not None:
        if in_batch:
            all_pos = cand_ids.view(-1, group)[:, 0]  # (W*B,) every row's positive
            if query_ids is None:
                same_query = torch.zeros(batch, all_pos.shape[0], dtype=torch.bool, device=query.device)
                same_query[torch.arange(batch, device=query.device), targets // group] = True  # own row only
            else:
                same_query = query_ids[:, None] == _gather(query_ids, with_grad=False)[0][None, :]  # (B, W*B)
            is_pos = (all_pos[:, None] == cand_ids[None, :]).float()  # (W*B, N): candidate n repeats row j's positive
            duplicate = (same_query.float() @ is_pos) > 0  # (B, N)
        else:
            duplicate = cand_ids == doc_ids[:, :1]  # (B, G): the own group only
        duplicate[torch.arange(batch, device=query.device), targets] = False
        logits = logits.masked_fill(duplicate, float("-inf"))

    infonce = F.cross_entropy(logits, targets)
    if teacher_scores is None or kd_weight == 0:
        kd = torch.zeros((), device=query.device)
    else:
        p_teacher = soft_label_targets(teacher_scores, teacher_temperature).to(group_logits.dtype)
        kd = F.kl_div(torch.log_softmax(group_logits, dim=1), p_teacher, reduction="batchmean")
    return infonce, kd


def text_ids(features: dict[str, Tensor]) -> Tensor:
    """One int64 id per row of a tokenised column, equal for equal token sequences (padding ignored)."""
    ids, mask = features["input_ids"], features["attention_mask"].bool()
    # Python's int/tuple hash is not salted, so ids agree across ranks.
    return torch.tensor([hash(tuple(row[m].tolist())) for row, m in zip(ids, mask)], dtype=torch.long, device=ids.device)


class SoftInfoNCELoss(nn.Module):
    """sentence-transformers loss module around `soft_infonce`: columns (query, positive, neg_1..neg_K), label = teacher scores."""

    def __init__(
        self,
        model: nn.Module,
        temperature: float = 0.02,
        kd_weight: float = 1.0,
        teacher_temperature: float = 1.0,
        in_batch: bool = True,
        mask_false_negatives: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.config = dict(temperature=temperature, kd_weight=kd_weight, teacher_temperature=teacher_temperature, in_batch=in_batch)
        self.mask_false_negatives = mask_false_negatives

    def _ids(self, features: list[dict[str, Tensor]]) -> dict[str, Tensor | None]:
        """Text ids of the documents (B, G) and of the queries (B,) for the false-negative mask, or None."""
        if not self.mask_false_negatives:
            return {"doc_ids": None, "query_ids": None}
        # Rows of one query share its rendered input (examples are drawn per query), so equal ids = same query.
        return {"doc_ids": torch.stack([text_ids(f) for f in features[1:]], dim=1), "query_ids": text_ids(features[0])}

    def _teacher(self, labels: Tensor | None, group: int) -> Tensor | None:
        if labels is None or self.config["kd_weight"] == 0:
            return None
        if labels.dim() != 2 or labels.shape[1] != group:
            raise LlmkitError(f"label: teacher scores must have one score per doc column ({group}), got shape {tuple(labels.shape)}")
        return labels

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> dict[str, Tensor]:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        features = list(sentence_features)
        embeddings = embed_columns(self.model, features)
        docs = torch.stack(embeddings[1:], dim=1)  # G x (B, D) -> (B, G, D)
        infonce, kd = _infonce_and_kd(
            embeddings[0], docs, self._teacher(labels, docs.shape[1]), **self._ids(features), **self.config
        )
        # The trainer sums the dict and logs each entry.
        return {"infonce": infonce, "kd": self.config["kd_weight"] * kd}

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.config, "mask_false_negatives": self.mask_false_negatives}


def _cached_loss_class():
    # Imported lazily: sentence_transformers costs ~15 s to import.
    from sentence_transformers.base.losses.gradcache import CachedLossMixin

    class CachedSoftInfoNCELoss(CachedLossMixin, SoftInfoNCELoss):
        """GradCache version of SoftInfoNCELoss (sentence-transformers' CachedLossMixin): memory bounded by mini_batch_size."""

        def __init__(self, model: nn.Module, mini_batch_size: int = 32, **kwargs: Any) -> None:
            SoftInfoNCELoss.__init__(self, model, **kwargs)
            self.mini_batch_size = mini_batch_size
            self._pending_ids: dict[str, Tensor | None] = {}

        def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False) -> Tensor:
            query = torch.cat(reps[0])
            docs = torch.stack([torch.cat(r) for r in reps[1:]], dim=1)  # (B, G, D)
            loss, _ = soft_infonce(query, docs, self._teacher(labels, docs.shape[1]), **self._pending_ids, **self.config)
            if with_backward:
                loss.backward()
                loss = loss.detach()
            return loss

        def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
            features = list(sentence_features)
            self._pending_ids = self._ids(features)
            return self.forward_cached(features, labels)

    return CachedSoftInfoNCELoss


def build_loss(name: str, model: nn.Module, **kwargs: Any) -> nn.Module:
    """LOSSES[name](model, **kwargs), with a did-you-mean for an unknown name."""
    if name not in LOSSES:
        close = difflib.get_close_matches(name, LOSSES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LlmkitError(f"loss: unknown embedding loss {name!r}{hint}; known: {', '.join(LOSSES)}")
    return LOSSES[name](model, **kwargs)


LOSSES = {
    "soft_infonce": SoftInfoNCELoss,
    "cached_soft_infonce": lambda model, **kw: _cached_loss_class()(model, **kw),
}
