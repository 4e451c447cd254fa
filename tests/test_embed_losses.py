"""soft_infonce against hand computation and against sentence-transformers' own losses."""

import math

import pytest
import torch
from torch import nn

from llmkit.embed.losses import build_loss, soft_infonce, soft_label_targets, text_ids
from llmkit.errors import LlmkitError

# Unit vectors, so cosine = dot product and every score below is read off by hand.
Q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
DOCS = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [1.0, 0.0]]])  # (B=2, G=2, D=2)
# cos(q1, [d1+, d1-, d2+, d2-]) = [1, 0, 0.6, 1];  cos(q2, ...) = [0, 1, 0.8, 0]


def nll(pos, others):
    return -(pos - math.log(sum(math.exp(x) for x in [pos, *others])))


def test_in_batch_infonce_by_hand():
    loss, parts = soft_infonce(Q, DOCS, temperature=1.0)
    expected = (nll(1.0, [0.0, 0.6, 1.0]) + nll(0.8, [0.0, 1.0, 0.0])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert parts["kd"].item() == 0.0


def test_temperature_scales_scores():
    loss, _ = soft_infonce(Q, DOCS, temperature=0.5)
    expected = (nll(2.0, [0.0, 1.2, 2.0]) + nll(1.6, [0.0, 2.0, 0.0])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_false_negative_mask_drops_duplicates_of_own_positive():
    # d2- is the same text as d1+: it must not count as a negative for q1, but stays a negative for q2.
    ids = torch.tensor([[10, 11], [12, 10]])
    loss, _ = soft_infonce(Q, DOCS, temperature=1.0, doc_ids=ids)
    expected = (nll(1.0, [0.0, 0.6]) + nll(0.8, [0.0, 1.0, 0.0])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_rows_of_the_same_query_do_not_use_each_others_positives_as_negatives():
    # q1 and q2 are the same query (two rows, two positives): d2+ is a positive of q1 too, d1+ of q2.
    loss, _ = soft_infonce(Q, DOCS, temperature=1.0, doc_ids=torch.tensor([[10, 11], [12, 13]]),
                           query_ids=torch.tensor([7, 7]))
    expected = (nll(1.0, [0.0, 1.0]) + nll(0.8, [1.0, 0.0])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # different queries: nothing masked, the plain loss
    plain, _ = soft_infonce(Q, DOCS, temperature=1.0, doc_ids=torch.tensor([[10, 11], [12, 13]]),
                            query_ids=torch.tensor([7, 8]))
    assert plain.item() == pytest.approx(soft_infonce(Q, DOCS, temperature=1.0)[0].item(), rel=1e-6)


def test_no_in_batch_mode_uses_own_group_only():
    loss, _ = soft_infonce(Q, DOCS, temperature=1.0, in_batch=False)
    expected = (nll(1.0, [0.0]) + nll(0.8, [0.0])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_soft_labels_standardise_then_softmax():
    teacher = torch.tensor([[3.0, 1.0], [0.0, 2.0], [7.0, 7.0]])
    p = soft_label_targets(teacher, teacher_temperature=0.5)
    # rows 1-2: z = [1, -1] / [-1, 1] (mean 2 or 1, population std 1); / 0.5 -> [2, -2]; row 3 is flat -> uniform
    a = math.exp(2) / (math.exp(2) + math.exp(-2))
    assert p.tolist()[0] == pytest.approx([a, 1 - a], rel=1e-5)
    assert p.tolist()[1] == pytest.approx([1 - a, a], rel=1e-5)
    assert p.tolist()[2] == pytest.approx([0.5, 0.5], rel=1e-6)
    # invariant to a per-query affine change of the teacher scores
    assert torch.allclose(soft_label_targets(teacher * 3 + 5, 0.5), p, atol=1e-6)


def test_kd_term_by_hand():
    teacher = torch.tensor([[3.0, 1.0], [0.0, 2.0]])
    loss, parts = soft_infonce(Q, DOCS, teacher, temperature=1.0, kd_weight=0.5, teacher_temperature=0.5, in_batch=False)
    a = math.exp(2) / (math.exp(2) + math.exp(-2))
    p_t = [[a, 1 - a], [1 - a, a]]
    s1 = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]  # group scores [1, 0]
    s2 = [math.exp(0.8) / (math.exp(0.8) + 1), 1 / (math.exp(0.8) + 1)]  # group scores [0.8, 0]
    kl = sum(sum(pt * math.log(pt / ps) for pt, ps in zip(t, s)) for t, s in zip(p_t, [s1, s2])) / 2
    assert parts["kd"].item() == pytest.approx(kl, rel=1e-5)
    assert loss.item() == pytest.approx(nll(1.0, [0.0]) / 2 + nll(0.8, [0.0]) / 2 + 0.5 * kl, rel=1e-5)


def _random_batch(seed, b=4, g=3, d=8):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=gen), torch.randn(b, g, d, generator=gen), torch.randn(b, g, generator=gen)


def test_matches_sentence_transformers_mnrl_and_distill_kl():
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss, MultipleNegativesRankingLoss
    from sentence_transformers.util import pairwise_cos_sim

    q, docs, teacher = _random_batch(0)
    tau, t_t = 0.05, 0.7
    columns = [q, *docs.unbind(1)]
    mnrl = MultipleNegativesRankingLoss(nn.Identity(), scale=1 / tau).compute_loss_from_embeddings(columns, None)
    ours, _ = soft_infonce(q, docs, temperature=tau)
    assert ours.item() == pytest.approx(mnrl.item(), rel=1e-5)

    # DistillKLDivLoss on the standardised scores, with its T^2 factor undone.
    t = teacher
    z = (t - t.mean(1, keepdim=True)) / t.std(1, unbiased=False, keepdim=True)
    st_kd = DistillKLDivLoss(
        nn.Identity(), similarity_fct=pairwise_cos_sim, student_temperature=tau, teacher_temperature=t_t
    ).compute_loss_from_embeddings(columns, z)
    _, parts = soft_infonce(q, docs, teacher, temperature=tau, teacher_temperature=t_t)
    assert parts["kd"].item() == pytest.approx(st_kd.item() / tau**2, rel=1e-4)


class BagEncoder(nn.Module):
    """Toy sentence-transformers-like model: mean of token embeddings."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, 16)

    def forward(self, features):
        m = features["attention_mask"].unsqueeze(-1).float()
        return {"sentence_embedding": (self.emb(features["input_ids"]) * m).sum(1) / m.sum(1)}


def _features(rows):
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": mask}


COLUMNS = [
    _features([[1, 2, 3], [4, 5], [1, 2, 3]]),  # queries; rows 1 and 3 are one query -> each other's positive masked
    _features([[10, 11], [12, 13, 14], [15]]),  # positives
    _features([[16, 17], [10, 11], [18, 19]]),  # negatives; row 2's is row 1's positive -> masked for q1
]
LABELS = torch.tensor([[2.0, 0.5], [1.0, 0.0], [3.0, 2.5]])


def test_text_ids_ignore_padding():
    a = _features([[1, 2], [1, 2, 3]])
    b = _features([[1, 2]])
    assert text_ids(a)[0] == text_ids(b)[0] and text_ids(a)[0] != text_ids(a)[1]


def test_module_and_cached_module_agree_on_loss_and_gradients():
    model = BagEncoder()
    loss_mod = build_loss("soft_infonce", model, temperature=0.1, kd_weight=1.0)
    out = loss_mod(COLUMNS, LABELS)
    total = out["infonce"] + out["kd"]
    total.backward()
    grad_plain = model.emb.weight.grad.clone()
    model.zero_grad()

    # Independent path: the pure function on directly embedded columns, with ids built by hand.
    embs = [model(f)["sentence_embedding"] for f in COLUMNS]
    ids = torch.tensor([[1, 2], [3, 1], [4, 5]])
    ref, _ = soft_infonce(embs[0], torch.stack(embs[1:], 1), LABELS, temperature=0.1, doc_ids=ids,
                          query_ids=torch.tensor([0, 1, 0]))
    unmasked, _ = soft_infonce(embs[0], torch.stack(embs[1:], 1), LABELS, temperature=0.1, doc_ids=ids)
    assert abs(ref.item() - unmasked.item()) > 1e-4  # the same-query mask is in play
    assert total.item() == pytest.approx(ref.item(), rel=1e-5)

    cached = build_loss("cached_soft_infonce", model, mini_batch_size=2, temperature=0.1, kd_weight=1.0)
    loss_cached = cached(COLUMNS, LABELS)
    loss_cached.backward()
    assert loss_cached.item() == pytest.approx(total.item(), rel=1e-5)
    assert torch.allclose(model.emb.weight.grad, grad_plain, atol=1e-6)


def test_bad_teacher_shape_and_unknown_loss_raise():
    with pytest.raises(LlmkitError, match="label"):
        build_loss("soft_infonce", BagEncoder())(COLUMNS, torch.zeros(3, 5))
    with pytest.raises(LlmkitError, match="did you mean 'soft_infonce'"):
        build_loss("soft_infonc", BagEncoder())
