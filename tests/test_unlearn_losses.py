"""Unlearning losses against hand computation (plain `math`) and an explicit pad-to-L reference implementation."""

import math

import pytest
import torch
import torch.nn.functional as F

from llmkit.errors import LlmkitError
from llmkit.unlearn import losses
from llmkit.unlearn.losses import (
    LOSSES,
    flat,
    get_loss,
    grad_ascent,
    grad_diff,
    idk_dpo,
    idk_sft,
    npo,
    rmu,
    sequence_logps,
    simnpo,
    token_logps,
)

torch.set_num_threads(1)

# Fixed logits over a 3-token vocabulary. Labels: -100 = prompt/padding; the label at t is predicted by logits at t-1.
FORGET_LOGITS = [
    [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]],
    [[0.0, 1.0, 0.0], [-2.0, 0.0, 2.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
]
FORGET_LABELS = [[-100, 0, 1, 2], [-100, -100, 2, -100]]
TEMPLATE_LOGITS = [
    [[0.0, 0.0, 0.0], [1.0, -1.0, 0.5], [0.2, 0.3, 0.1], [0.0, 2.0, 0.0]],
    [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [0.0, -1.0, 1.0], [0.0, 0.0, 0.0]],
]
TEMPLATE_LABELS = [[-100, 2, 0, 1], [-100, 1, 0, 2]]

# dL/dP from the spec's table (§1.2): (template weight, forget weight); template < 0 and forget > 0 by design.
TERMS = {  # divergence: (−g*(P_e), f*(g*(P_f)))
    "kl": (lambda e: -e, lambda f: math.exp(f - 1)),
    "pearson": (lambda e: -e, lambda f: f * f / 4 + f),
    "js": (lambda e: math.log(1 + math.exp(-e)) - math.log(2), lambda f: f + math.log(1 + math.exp(-f)) - math.log(2)),
    "tv": (lambda e: -math.tanh(e) / 2, lambda f: math.tanh(f) / 2),
    "jeffrey": (lambda e: -e, lambda f: f + f * f / 4 + f**3 / 16),
}
WEIGHTS = {
    "kl": (lambda e: -1.0, lambda f: math.exp(f - 1)),
    "pearson": (lambda e: -1.0, lambda f: 1 + f / 2),
    "js": (lambda e: -1 / (1 + math.exp(e)), lambda f: 1 / (1 + math.exp(-f))),
    "tv": (lambda e: -(1 - math.tanh(e) ** 2) / 2, lambda f: (1 - math.tanh(f) ** 2) / 2),
    "jeffrey": (lambda e: -1.0, lambda f: 1 + f / 2 + 3 * f * f / 16),
}


def hand_probs(logits, labels):
    """Per example: the list of p(label_t | logits_{t-1}) for every label that is not -100."""
    out = []
    for rows, labs in zip(logits, labels):
        probs = []
        for t in range(1, len(labs)):
            if labs[t] != -100:
                z = rows[t - 1]
                probs.append(math.exp(z[labs[t]]) / sum(math.exp(v) for v in z))
        out.append(probs)
    return out


def streams(dtype=torch.float32, via=None):
    """token_logps of the fixed logits in `dtype`, optionally rounded through dtype `via` first."""
    def cast(x):
        x = torch.tensor(x)
        return (x.to(via) if via else x).to(dtype)
    f_lp, f_m = token_logps(cast(FORGET_LOGITS), torch.tensor(FORGET_LABELS))
    e_lp, e_m = token_logps(cast(TEMPLATE_LOGITS), torch.tensor(TEMPLATE_LABELS))
    return f_lp, f_m, e_lp, e_m


def test_token_logps_equal_hand_softmax():
    logps, mask = token_logps(torch.tensor(FORGET_LOGITS), torch.tensor(FORGET_LABELS))
    assert logps.shape == mask.shape == (2, 3) and logps.dtype == torch.float32
    assert mask.tolist() == [[True, True, True], [False, True, False]]
    expected = hand_probs(FORGET_LOGITS, FORGET_LABELS)
    assert logps[0].tolist() == pytest.approx([math.log(p) for p in expected[0]], abs=1e-6)
    assert logps[1].tolist() == pytest.approx([0.0, math.log(expected[1][0]), 0.0], abs=1e-6)


def test_token_logps_float32_from_bf16_logits():
    torch.manual_seed(0)
    logits = (torch.randn(3, 7, 50) * 4).to(torch.bfloat16).requires_grad_()
    labels = torch.randint(0, 50, (3, 7))
    labels[:, :2] = -100
    logps, mask = token_logps(logits, labels)
    assert logps.dtype == torch.float32
    exact = logits.detach().double().log_softmax(-1)[:, :-1].gather(-1, labels[:, 1:].clamp_min(0)[..., None])[..., 0]
    # float32 arithmetic on the exact bf16 values: far below bf16's own resolution (~1e-2 at these magnitudes)
    assert torch.allclose(logps.double(), exact * mask, atol=1e-5)
    logps.sum().backward()
    assert logits.grad.dtype == torch.bfloat16
    ref = logits.detach().double().requires_grad_()
    (ref.log_softmax(-1)[:, :-1].gather(-1, labels[:, 1:].clamp_min(0)[..., None])[..., 0] * mask).sum().backward()
    assert torch.allclose(logits.grad.double(), ref.grad, atol=1e-2)


def test_token_logps_gradcheck_and_chunking(monkeypatch):
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[-100, 1, 2, 3, -100], [-100, -100, 4, 5, 0]])
    assert torch.autograd.gradcheck(lambda x: token_logps(x, labels)[0], (logits,))
    whole = token_logps(logits, labels)[0]
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", 12)  # 2 rows of 6 per chunk → 5 chunks
    assert torch.autograd.gradcheck(lambda x: token_logps(x, labels)[0], (logits,))
    assert torch.equal(token_logps(logits, labels)[0], whole)


def test_token_logps_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="disagree"):
        token_logps(torch.zeros(2, 4, 3), torch.zeros(2, 5, dtype=torch.long))


@pytest.mark.parametrize("divergence", sorted(TERMS))
def test_flat_paper_reduction_equals_hand(divergence):
    f_lp, f_m, e_lp, e_m = streams()
    loss, parts = flat(f_lp, f_m, e_lp, e_m, divergence=divergence, reduction="paper")
    pf = [sum(p) / len(p) for p in hand_probs(FORGET_LOGITS, FORGET_LABELS)]
    pe = [sum(p) / len(p) for p in hand_probs(TEMPLATE_LOGITS, TEMPLATE_LABELS)]
    tt, tf = TERMS[divergence]
    assert parts["p_forget"].item() == pytest.approx(sum(pf) / 2, abs=1e-6)
    assert parts["p_template"].item() == pytest.approx(sum(pe) / 2, abs=1e-6)
    assert parts["term_template"].item() == pytest.approx(sum(map(tt, pe)) / 2, abs=1e-6)
    assert parts["term_forget"].item() == pytest.approx(sum(map(tf, pf)) / 2, abs=1e-6)
    assert loss.item() == pytest.approx((sum(map(tt, pe)) + sum(map(tf, pf))) / 2, abs=1e-6)


@pytest.mark.parametrize("divergence", sorted(TERMS))
def test_flat_reference_reduction_equals_hand(divergence):
    L = 500
    f_lp, f_m, e_lp, e_m = streams()
    loss, parts = flat(f_lp, f_m, e_lp, e_m, divergence=divergence, reduction="reference", padded_length=L)
    pf = sum(map(sum, hand_probs(FORGET_LOGITS, FORGET_LABELS))) / (2 * (L - 1))
    pe = sum(map(sum, hand_probs(TEMPLATE_LOGITS, TEMPLATE_LABELS))) / (2 * (L - 1))
    tt, tf = TERMS[divergence]
    assert parts["p_forget"].item() == pytest.approx(pf, rel=1e-6)
    assert parts["p_template"].item() == pytest.approx(pe, rel=1e-6)
    assert loss.item() == pytest.approx(tt(pe) + tf(pf), abs=1e-6)


def padded_reference_prob(logits, labels, L):
    """The released code's quantity, done the slow way: really pad to L, softmax, NLL of probabilities, mean."""
    B, T, V = logits.shape
    logits = torch.cat([logits, torch.zeros(B, L - T, V)], dim=1)
    labels = torch.cat([labels, torch.full((B, L - T), -100)], dim=1)
    per_position = torch.stack(
        [F.nll_loss(F.softmax(logits[b, :-1], -1), labels[b, 1:], ignore_index=-100, reduction="none") for b in range(B)]
    )  # [B, L-1], −p at answer positions and 0 elsewhere
    return -per_position.mean()


@pytest.mark.parametrize("divergence", sorted(TERMS))
def test_flat_reference_equals_naive_padding(divergence):
    L = 37
    torch.manual_seed(2)
    f_logits, e_logits = torch.randn(3, 9, 11) * 3, torch.randn(3, 6, 11) * 3
    f_labels, e_labels = torch.randint(0, 11, (3, 9)), torch.randint(0, 11, (3, 6))
    f_labels[:, :4], e_labels[:, :3], f_labels[1, 7:] = -100, -100, -100  # prompts and one right-padded answer
    loss, parts = flat(*token_logps(f_logits, f_labels), *token_logps(e_logits, e_labels),
                       divergence=divergence, reduction="reference", padded_length=L)
    pf, pe = padded_reference_prob(f_logits, f_labels, L), padded_reference_prob(e_logits, e_labels, L)
    g, f_of_g = losses.DIVERGENCES[divergence]
    assert parts["p_forget"].item() == pytest.approx(pf.item(), rel=1e-5)
    assert parts["p_template"].item() == pytest.approx(pe.item(), rel=1e-5)
    assert loss.item() == pytest.approx((-g(pe) + f_of_g(pf)).item(), abs=1e-6)


@pytest.mark.parametrize("divergence", sorted(TERMS))
def test_flat_reference_without_padded_length_is_the_released_formula_at_500(divergence):
    """No padded_length: the TOFU pipeline's L = 500, checked against the slow pad-to-500 computation; the forget
    and template streams have different widths, which must not change their normaliser."""
    torch.manual_seed(4)
    f_logits, e_logits = torch.randn(2, 9, 7) * 2, torch.randn(2, 5, 7) * 2
    f_labels, e_labels = torch.randint(0, 7, (2, 9)), torch.randint(0, 7, (2, 5))
    f_labels[:, :3], e_labels[:, :2] = -100, -100
    loss, parts = flat(*token_logps(f_logits, f_labels), *token_logps(e_logits, e_labels),
                       divergence=divergence, reduction="reference")
    pf, pe = padded_reference_prob(f_logits, f_labels, 500), padded_reference_prob(e_logits, e_labels, 500)
    g, f_of_g = losses.DIVERGENCES[divergence]
    assert parts["p_forget"].item() == pytest.approx(pf.item(), rel=1e-5)
    assert parts["p_template"].item() == pytest.approx(pe.item(), rel=1e-5)
    assert loss.item() == pytest.approx((-g(pe) + f_of_g(pf)).item(), abs=1e-7)


def test_flat_reference_rejects_a_batch_longer_than_padded_length():
    f_lp, f_m, e_lp, e_m = streams()
    with pytest.raises(LlmkitError, match="padded_length"):
        flat(f_lp, f_m, e_lp, e_m, reduction="reference", padded_length=3)
    long = torch.zeros(1, 600), torch.ones(1, 600, dtype=torch.bool)
    with pytest.raises(LlmkitError, match="padded_length: 500"):
        flat(*long, *long, reduction="reference")


@pytest.mark.parametrize("reduction", ["paper", "reference"])
@pytest.mark.parametrize("divergence", sorted(WEIGHTS))
def test_flat_gradients_match_table_and_signs(divergence, reduction):
    """dL/dlog p_t = (dL/dP)·dP/dlog p_t with dP/dlog p_t = p_t/|y| /B (paper) or p_t/(B·(L−1)) (reference) > 0."""
    L = 20
    f_lp, f_m, e_lp, e_m = (t.detach().requires_grad_() if t.is_floating_point() else t for t in streams())
    loss, parts = flat(f_lp, f_m, e_lp, e_m, divergence=divergence, reduction=reduction, padded_length=L)
    loss.backward()
    we, wf = WEIGHTS[divergence]
    for probs_per_example, grad, weight, sign in [
        (hand_probs(TEMPLATE_LOGITS, TEMPLATE_LABELS), e_lp.grad, we, -1),
        (hand_probs(FORGET_LOGITS, FORGET_LABELS), f_lp.grad, wf, +1),
    ]:
        P_batch = sum(map(sum, probs_per_example)) / (2 * (L - 1))
        expected = []
        for probs in probs_per_example:
            if reduction == "paper":
                P = sum(probs) / len(probs)
                expected += [weight(P) * p / len(probs) / 2 for p in probs]
            else:
                expected += [weight(P_batch) * p / (2 * (L - 1)) for p in probs]
        got = grad[(f_m if sign > 0 else e_m)].tolist()
        assert got == pytest.approx(expected, rel=1e-5)
        assert all(sign * g > 0 for g in got)  # dL/dP_e < 0, dL/dP_f > 0
        assert grad[~(f_m if sign > 0 else e_m)].abs().sum() == 0


def test_flat_steps_on_logits_raise_template_and_lower_forget_probability():
    logits_f = torch.tensor(FORGET_LOGITS, requires_grad=True)
    logits_e = torch.tensor(TEMPLATE_LOGITS, requires_grad=True)
    opt = torch.optim.SGD([logits_f, logits_e], lr=1.0)
    history = []
    for _ in range(5):
        opt.zero_grad()
        loss, parts = flat(*token_logps(logits_f, torch.tensor(FORGET_LABELS)),
                           *token_logps(logits_e, torch.tensor(TEMPLATE_LABELS)))
        loss.backward()
        opt.step()
        history.append((parts["p_forget"].item(), parts["p_template"].item()))
    assert all(b[0] < a[0] and b[1] > a[1] for a, b in zip(history, history[1:]))


def test_flat_from_bf16_logits_is_float32_and_equals_float64_on_the_same_values():
    f_lp, f_m, e_lp, e_m = streams(torch.bfloat16)
    loss, parts = flat(f_lp, f_m, e_lp, e_m, divergence="js")
    assert loss.dtype == torch.float32 and parts["p_forget"].dtype == torch.float32
    exact, _ = flat(*streams(torch.float64, via=torch.bfloat16), divergence="js")  # same bf16 values, in float64
    assert loss.item() == pytest.approx(exact.item(), abs=1e-6)


def test_flat_rejects_unknown_divergence_and_reduction_with_suggestion():
    f_lp, f_m, e_lp, e_m = streams()
    with pytest.raises(LlmkitError, match="did you mean 'pearson'"):
        flat(f_lp, f_m, e_lp, e_m, divergence="pearsn")
    with pytest.raises(LlmkitError, match="did you mean 'reference'"):
        flat(f_lp, f_m, e_lp, e_m, reduction="referense")


def test_empty_answer_is_an_error():
    f_lp, f_m, e_lp, e_m = streams()
    f_m = f_m.clone()
    f_m[1] = False
    with pytest.raises(ValueError, match="forget: an example has no answer tokens"):
        flat(f_lp, f_m, e_lp, e_m)


# Fixed per-token log-probs for the baselines: [B=2, T-1=3]
LP = [[-0.5, -1.0, 0.0], [-2.0, -0.25, -0.75]]
MASK = [[True, True, False], [True, True, True]]
RLP = [[-0.1, -0.2, -0.3], [-1.5, 0.0, 0.0]]
RMASK = [[True, True, True], [True, False, False]]


def tensors(lp, mask):
    return torch.tensor(lp, requires_grad=True), torch.tensor(mask)


def test_grad_ascent_and_grad_diff_equal_hand():
    nll_f = (0.5 + 1.0 + 2.0 + 0.25 + 0.75) / 5
    nll_r = (0.1 + 0.2 + 0.3 + 1.5) / 4
    loss, parts = grad_ascent(*tensors(LP, MASK))
    assert loss.item() == pytest.approx(-nll_f) and parts["nll_forget"].item() == pytest.approx(nll_f)
    loss, parts = grad_diff(*tensors(LP, MASK), *tensors(RLP, RMASK), gamma=0.5, alpha=2.0)
    assert loss.item() == pytest.approx(-0.5 * nll_f + 2.0 * nll_r)
    assert parts["nll_retain"].item() == pytest.approx(nll_r)


def test_npo_equals_hand_with_summed_sequence_logprobs():
    beta, ref = 0.1, [-2.0, -4.0]
    seq = [-1.5, -3.0]  # summed answer log-probs of LP under MASK
    expected = -(2 / beta) * sum(-math.log(1 + math.exp(beta * (s - r))) for s, r in zip(seq, ref)) / 2
    lp, mask = tensors(LP, MASK)
    assert sequence_logps(lp, mask).tolist() == seq
    loss, parts = npo(lp, mask, torch.tensor(ref), beta=beta)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert parts["log_ratio"].item() == pytest.approx((0.5 + 1.0) / 2)
    # At θ = ref the NPO term is (2/β)·log 2, the loss's known starting value.
    at_ref, _ = npo(lp, mask, torch.tensor(seq), beta=beta)
    assert at_ref.item() == pytest.approx(2 / beta * math.log(2), rel=1e-6)
    nll_r = (0.1 + 0.2 + 0.3 + 1.5) / 4
    with_retain, parts = npo(lp, mask, torch.tensor(ref), beta=beta, gamma=0.5, retain_logps=torch.tensor(RLP),
                             retain_mask=torch.tensor(RMASK), alpha=3.0)
    assert with_retain.item() == pytest.approx(0.5 * expected + 3.0 * nll_r, rel=1e-6)


def test_npo_gradient_pushes_forget_logprob_down():
    lp, mask = tensors(LP, MASK)
    loss, _ = npo(lp, mask, torch.tensor([-2.0, -4.0]))
    loss.backward()
    assert (lp.grad[mask] > 0).all()  # descending the loss lowers log p of forget tokens


def test_simnpo_equals_hand():
    beta, delta = 4.5, 0.2
    mean_nll = [1.5 / 2, 3.0 / 3]
    expected = (2 / beta) * sum(math.log(1 + math.exp(-beta * (n - delta))) for n in mean_nll) / 2
    loss, parts = simnpo(*tensors(LP, MASK), beta=beta, delta=delta)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert parts["nll_forget"].item() == pytest.approx(sum(mean_nll) / 2)
    loss_rt, parts = simnpo(*tensors(LP, MASK), beta=beta, delta=delta, gamma=0.125,
                            retain_logps=torch.tensor(RLP), retain_mask=torch.tensor(RMASK), alpha=1.0)
    assert loss_rt.item() == pytest.approx(0.125 * expected + (0.1 + 0.2 + 0.3 + 1.5) / 4, rel=1e-6)


def test_idk_sft_equals_hand():
    nll = (0.5 + 1.0 + 2.0 + 0.25 + 0.75) / 5
    loss, parts = idk_sft(*tensors(LP, MASK))
    assert loss.item() == pytest.approx(nll) and parts["nll_template"].item() == pytest.approx(nll)
    loss, _ = idk_sft(*tensors(LP, MASK), retain_logps=torch.tensor(RLP), retain_mask=torch.tensor(RMASK), alpha=0.5)
    assert loss.item() == pytest.approx(nll + 0.5 * (0.1 + 0.2 + 0.3 + 1.5) / 4)


def test_idk_dpo_equals_hand_and_prefers_the_template():
    """Win = template (LP rows under MASK), lose = forget (RLP rows under RMASK), both against fixed references."""
    beta = 0.5
    seq_template, seq_forget = [-1.5, -3.0], [-0.6, -1.5]
    ref_template, ref_forget = [-2.0, -2.5], [-1.0, -1.0]
    margins = [(st - rt) - (sf - rf) for st, rt, sf, rf in zip(seq_template, ref_template, seq_forget, ref_forget)]
    expected = (2 / beta) * sum(math.log(1 + math.exp(-beta * m)) for m in margins) / 2  # −log σ(x) = log(1+e^−x)
    e_lp, e_m = tensors(LP, MASK)
    f_lp, f_m = tensors(RLP, RMASK)
    loss, parts = idk_dpo(f_lp, f_m, e_lp, e_m, torch.tensor(ref_forget), torch.tensor(ref_template), beta=beta)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert parts["log_ratio_template"].item() == pytest.approx((0.5 - 0.5) / 2)
    assert parts["log_ratio_forget"].item() == pytest.approx((0.4 - 0.5) / 2)
    loss.backward()
    assert (e_lp.grad[e_m] < 0).all() and (f_lp.grad[f_m] > 0).all()  # descent raises template, lowers forget
    # at θ = ref the term is (2/β)·log 2; with retain: γ·term + α·NLL(retain)
    at_ref, _ = idk_dpo(f_lp, f_m, e_lp, e_m, torch.tensor(seq_forget), torch.tensor(seq_template), beta=beta)
    assert at_ref.item() == pytest.approx(2 / beta * math.log(2), rel=1e-6)
    nll_r = (0.5 + 1.0 + 2.0 + 0.25 + 0.75) / 5
    with_retain, parts = idk_dpo(f_lp, f_m, e_lp, e_m, torch.tensor(ref_forget), torch.tensor(ref_template),
                                 beta=beta, gamma=0.5, retain_logps=torch.tensor(LP), retain_mask=torch.tensor(MASK),
                                 alpha=2.0)
    assert with_retain.item() == pytest.approx(0.5 * expected + 2.0 * nll_r, rel=1e-6)


def test_rmu_equals_hand():
    """H = 2: forget activations pulled to c·u on answer tokens, retain activations held at the frozen ones."""
    forget_hidden = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]], [[0.5, 0.5], [2.0, 2.0], [9.0, 9.0]]],
                                 requires_grad=True)
    forget_mask = torch.tensor([[True, False, True], [True, True, False]])
    retain_hidden = torch.tensor([[[1.0, 1.0], [2.0, 0.0]]], requires_grad=True)
    retain_frozen = torch.tensor([[[0.0, 1.0], [2.0, 2.0]]])
    retain_mask = torch.tensor([[True, True]])
    u = torch.tensor([0.6, 0.8])
    c = 5.0  # target (3, 4)

    def msd(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b)) / len(a)

    target = [3.0, 4.0]
    d_forget = ((msd([1, 2], target) + msd([3, -1], target)) / 2 + (msd([0.5, 0.5], target) + msd([2, 2], target)) / 2) / 2
    d_retain = (msd([1, 1], [0, 1]) + msd([2, 0], [2, 2])) / 2
    loss, parts = rmu(forget_hidden, forget_mask, retain_hidden, retain_frozen, retain_mask, u,
                      steering_coeff=c, gamma=0.5, alpha=3.0)
    assert parts["rmu_forget"].item() == pytest.approx(d_forget)
    assert parts["rmu_retain"].item() == pytest.approx(d_retain)
    assert loss.item() == pytest.approx(0.5 * d_forget + 3.0 * d_retain)
    loss.backward()
    assert forget_hidden.grad[0, 1].abs().sum() == 0 and forget_hidden.grad[1, 2].abs().sum() == 0  # masked out
    # d/dh of γ·(1/n)·mean_h (h − c·u)² = γ·2(h − c·u)/(H·n·B) at [0, 0]: 0.5·2·((1,2) − (3,4))/(2·2·2)
    assert forget_hidden.grad[0, 0].tolist() == pytest.approx([0.5 * 2 * -2 / 8, 0.5 * 2 * -2 / 8])


def test_retain_inputs_come_in_pairs():
    with pytest.raises(ValueError, match="together"):
        idk_sft(*tensors(LP, MASK), retain_logps=torch.tensor(RLP))


def test_flat_needs_no_retain_data_and_no_reference_model():
    assert get_loss("flat").needs == {"forget", "template"}
    assert "retain" not in get_loss("simnpo").needs and "reference" in get_loss("npo").needs
    assert "retain" in get_loss("grad_diff").needs and "retain" in get_loss("npo_rt").needs


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_runs_from_exactly_the_streams_it_declares(name):
    """The trainer contract: {s}_logps/{s}_mask for each declared stream, ref_{s}_seq_logps for 'reference'
    (forget and template), hidden states and the steering direction for 'activations'."""
    spec = get_loss(name)
    assert spec.needs <= {"forget", "template", "retain", "reference", "activations"}
    f_lp, f_m, e_lp, e_m = streams()
    available = {"forget": (f_lp, f_m), "template": (e_lp, e_m), "retain": (e_lp, e_m)}
    kwargs = {}
    if "activations" in spec.needs:
        for stream in spec.needs - {"activations"}:
            kwargs[f"{stream}_hidden"], kwargs[f"{stream}_mask"] = torch.randn(2, 3, 4), available[stream][1]
        kwargs["retain_frozen_hidden"], kwargs["steering"] = torch.randn(2, 3, 4), torch.full((4,), 0.5)
    else:
        for stream in spec.needs - {"reference"}:
            kwargs[f"{stream}_logps"], kwargs[f"{stream}_mask"] = available[stream]
    if "reference" in spec.needs:
        for stream in {"forget", "template"} & spec.needs:
            kwargs[f"ref_{stream}_seq_logps"] = sequence_logps(*available[stream]) + 0.5
    loss, parts = spec.fn(**kwargs)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert parts and all(v.dim() == 0 and not v.requires_grad for v in parts.values())
    if "retain" in spec.needs:
        assert "nll_retain" in parts or "rmu_retain" in parts


def test_get_loss_suggests_the_closest_name():
    with pytest.raises(LlmkitError, match="did you mean 'grad_ascent'"):
        get_loss("grad_acent")
