"""Unlearning losses (FLAT and the standard baselines) as pure functions of per-token label log-probs.

Every loss here needs only log p(label token), never the full logits, so the trainer computes
`token_logps(logits, labels)` once per stream and the losses stay cheap to hand-check.

Calling contract for the trainer: `spec = get_loss(name)`; for each stream s in spec.needs ∩ {forget,
template, retain} pass `{s}_logps` [B, T-1] and `{s}_mask` [B, T-1] from `token_logps`; if "reference"
is in spec.needs also pass `ref_{s}_seq_logps` [B] for each of forget/template that the function takes (the frozen
starting model's `sequence_logps` on that batch, precomputable once); hyperparameters go in as keywords.
A spec with "activations" in its needs (RMU) takes hidden states instead of log-probs, see `rmu`.
Every loss returns `(loss, parts)`: a scalar tensor and a dict of detached scalar tensors to log.
"""

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from llmkit.errors import LlmkitError, did_you_mean

IGNORE_INDEX = -100
# FLAT reduction="reference": the released TOFU pipeline pads every sequence to 500 tokens (locuslab/tofu forget.py).
REFERENCE_PADDED_LENGTH = 500
# Upcasting one chunk at a time bounds the float32 copy to 128 MiB whatever the vocabulary and batch.
_CHUNK_ELEMENTS = 2**25


class _LabelLogProb(torch.autograd.Function):
    """log_softmax(logits)[target] in float32, chunked; backward recomputes the softmax instead of storing it."""

    @staticmethod
    def forward(ctx, logits, targets):
        # logits [N, V] (any float dtype), targets [N] → out [N] in at least float32
        compute = torch.promote_types(logits.dtype, torch.float32)
        rows = max(1, _CHUNK_ELEMENTS // logits.shape[-1])
        out = torch.empty(logits.shape[0], dtype=compute, device=logits.device)
        lse = torch.empty_like(out)
        for s in range(0, logits.shape[0], rows):
            z = logits[s : s + rows].to(compute)  # [rows, V]
            lse[s : s + rows] = torch.logsumexp(z, dim=-1)
            out[s : s + rows] = z.gather(-1, targets[s : s + rows, None]).squeeze(-1) - lse[s : s + rows]
        ctx.save_for_backward(logits, targets, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        logits, targets, lse = ctx.saved_tensors
        rows = max(1, _CHUNK_ELEMENTS // logits.shape[-1])
        grad = torch.empty_like(logits)
        for s in range(0, logits.shape[0], rows):
            g_out = grad_out[s : s + rows, None]  # [rows, 1]
            # d log p_y / d z = onehot(y) - softmax(z)
            g = torch.exp(logits[s : s + rows].to(lse.dtype) - lse[s : s + rows, None]).mul_(-g_out)
            g.scatter_add_(-1, targets[s : s + rows, None], g_out)
            grad[s : s + rows] = g
        return grad, None


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted per-token log p(label) in float32 (0 where the label is -100) and the label mask, both [B, T-1]."""
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on [B, T]")
    B, T, V = logits.shape
    targets = labels.roll(-1, dims=1)  # position t predicts label t+1; the wrapped last column is dropped below
    mask = targets != IGNORE_INDEX
    mask[:, -1] = False
    per_position = _LabelLogProb.apply(logits.reshape(B * T, V), targets.masked_fill(~mask, 0).reshape(B * T))
    logps = per_position.view(B, T)[:, :-1].masked_fill(~mask[:, :-1], 0.0)  # [B*T] → [B, T-1]
    return logps, mask[:, :-1]


def sequence_logps(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed answer log-prob log π(y|x) per example, [B, T-1] → [B] (what NPO's frozen reference provides)."""
    return (logps * mask).sum(-1)


def _answer_lengths(mask: torch.Tensor, stream: str) -> torch.Tensor:
    n = mask.sum(-1)  # [B]
    if not bool((n > 0).all()):
        raise ValueError(f"{stream}: an example has no answer tokens (all labels -100); raise max_length or drop it")
    return n


def _mean_token_prob(logps: torch.Tensor, mask: torch.Tensor, stream: str) -> torch.Tensor:
    return (logps.exp() * mask).sum(-1) / _answer_lengths(mask, stream)  # [B, T-1] → [B]


def _mean_nll(logps: torch.Tensor, mask: torch.Tensor, stream: str) -> torch.Tensor:
    # Token mean over the whole batch, as transformers' causal-LM loss does.
    _answer_lengths(mask, stream)
    return -(logps * mask).sum() / mask.sum()


def _with_retain(loss, parts, retain_logps, retain_mask, alpha):
    """Add alpha·NLL(retain) when the trainer passed a retain batch (the *_rt variants)."""
    if (retain_logps is None) != (retain_mask is None):
        raise ValueError("retain_logps and retain_mask come together")
    if retain_logps is None:
        return loss, parts
    nll_retain = _mean_nll(retain_logps, retain_mask, "retain")
    return loss + alpha * nll_retain, {**parts, "nll_retain": nll_retain.detach()}


def flat(
    forget_logps: torch.Tensor,
    forget_mask: torch.Tensor,
    template_logps: torch.Tensor,
    template_mask: torch.Tensor,
    *,
    divergence: str = "kl",
    reduction: str = "paper",
    padded_length: int = REFERENCE_PADDED_LENGTH,
):
    """FLAT: loss = −g*(P_e) + f*(g*(P_f)), the negated variational bound of D_f(P_e ‖ P_f).

    Needs: forget (x, y_f) and template (x, y_e) batches for the same prompts x. No retain data, no reference model.
    Inputs: forget_logps/forget_mask [B, T_f-1] and template_logps/template_mask [B, T_e-1] from `token_logps`.
    P is an answer-token probability (probability, not log-probability, as in the paper and its code):
      reduction="paper":     P_b = (1/|y_b|) Σ_t p_t per example [B]; loss = mean_b(−g*(P_e,b) + f*(g*(P_f,b))).
      reduction="reference": the released code (UCSC-REAL/FLAT dataloader.py, ProbLossStable + mean):
                             P = Σ_b Σ_t p_t / (B·(L−1)), one scalar per batch with L = padded_length (default
                             500, the TOFU pipeline's; the HP pipeline used 1024), then g*/f* on that scalar.
                             Pads are never materialised: they only add zeros to the sum; a batch longer than
                             L is an error, since the released code would have cut it.
    Divergences (f-GAN g*, f*∘g*): see DIVERGENCES. dL/dP_e < 0 and dL/dP_f > 0 for all of them.
    Parts: p_forget, p_template (the P fed to g*/f*, batch-averaged), term_template = −g*(P_e), term_forget = f*(g*(P_f)).
    Reference: Wang et al., "LLM Unlearning via Loss Adjustment with only Forget Data", ICLR 2025, arXiv 2410.11143.
    """
    require_known("divergence", divergence, DIVERGENCES)
    require_known("reduction", reduction, REDUCTIONS)
    g, f_of_g = DIVERGENCES[divergence]
    if reduction == "paper":
        p_forget = _mean_token_prob(forget_logps, forget_mask, "forget")  # [B]
        p_template = _mean_token_prob(template_logps, template_mask, "template")  # [B]
    else:  # reference
        p_forget = _reference_prob(forget_logps, forget_mask, padded_length)  # scalar
        p_template = _reference_prob(template_logps, template_mask, padded_length)  # scalar
    term_template = (-g(p_template)).mean()
    term_forget = f_of_g(p_forget).mean()
    parts = {"p_forget": p_forget.mean(), "p_template": p_template.mean(),
             "term_template": term_template, "term_forget": term_forget}
    return term_template + term_forget, {k: v.detach() for k, v in parts.items()}


def _reference_prob(logps: torch.Tensor, mask: torch.Tensor, padded_length: int) -> torch.Tensor:
    B, positions = logps.shape
    if positions + 1 > padded_length:
        raise LlmkitError(f"padded_length: {padded_length} is shorter than a batch of {positions + 1} tokens; "
                          f"set padded_length to the max_length the sequences are padded to")
    return (logps.exp() * mask).sum() / (B * (padded_length - 1))  # [B, T-1] → scalar


def grad_ascent(forget_logps: torch.Tensor, forget_mask: torch.Tensor):
    """Gradient ascent: loss = −NLL(y_f|x) = (1/N) Σ_{b,t} log p_t, N = answer tokens in the batch.

    Needs: forget data only. Inputs [B, T-1]. Parts: nll_forget.
    Reference: Jang et al., "Knowledge Unlearning for Mitigating Privacy Risks in Language Models", ACL 2023.
    """
    nll_forget = _mean_nll(forget_logps, forget_mask, "forget")
    return -nll_forget, {"nll_forget": nll_forget.detach()}


def grad_diff(forget_logps, forget_mask, retain_logps, retain_mask, *, gamma: float = 1.0, alpha: float = 1.0):
    """Gradient difference: loss = −γ·NLL(forget) + α·NLL(retain), token means over each batch.

    Needs: forget and retain data. Inputs [B_f, T_f-1] and [B_r, T_r-1]. Parts: nll_forget, nll_retain.
    Reference: Liu et al., "Continual Learning and Private Unlearning", CoLLAs 2022; the γ/α names follow open-unlearning.
    """
    nll_forget = _mean_nll(forget_logps, forget_mask, "forget")
    nll_retain = _mean_nll(retain_logps, retain_mask, "retain")
    parts = {"nll_forget": nll_forget.detach(), "nll_retain": nll_retain.detach()}
    return -gamma * nll_forget + alpha * nll_retain, parts


def npo(
    forget_logps,
    forget_mask,
    ref_forget_seq_logps,
    *,
    beta: float = 0.1,
    gamma: float = 1.0,
    retain_logps=None,
    retain_mask=None,
    alpha: float = 1.0,
):
    """NPO: loss = −(2/β)·mean_b log σ(−β·(log π_θ(y_b|x_b) − log π_ref(y_b|x_b))), times γ (+ α·NLL(retain)).

    log π(y|x) is the SUMMED answer log-prob of the whole sequence (the paper's definition; the MUSE repo's
    element-wise difference of raw logits is a different, buggy quantity).
    Needs: forget data and a frozen reference model's `sequence_logps` on it (ref_forget_seq_logps [B]);
    the `npo_rt` entry also needs retain data. Inputs: forget_logps/forget_mask [B, T-1].
    Parts: npo_forget (the unweighted NPO term), log_ratio (batch mean of log π_θ − log π_ref), nll_retain with retain.
    Reference: Zhang et al., "Negative Preference Optimization", COLM 2024, arXiv 2404.05868.
    """
    _answer_lengths(forget_mask, "forget")
    log_ratio = sequence_logps(forget_logps, forget_mask) - ref_forget_seq_logps  # [B]
    term = -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()
    parts = {"npo_forget": term.detach(), "log_ratio": log_ratio.mean().detach()}
    return _with_retain(gamma * term, parts, retain_logps, retain_mask, alpha)


def simnpo(
    forget_logps,
    forget_mask,
    *,
    beta: float = 4.5,
    delta: float = 0.0,
    gamma: float = 1.0,
    retain_logps=None,
    retain_mask=None,
    alpha: float = 1.0,
):
    """SimNPO: loss = −(2/β)·mean_b log σ(β·(NLL̄_b − δ)), times γ (+ α·NLL(retain)); NLL̄_b = −log π_θ(y_b|x_b)/|y_b|.

    Reference-free, length-normalised NPO. δ is open-unlearning's margin (the paper's γ equals β·δ).
    Needs: forget data only; the `simnpo_rt` entry also needs retain data. Inputs [B, T-1].
    Parts: simnpo_forget (the unweighted term), nll_forget (mean of NLL̄_b), nll_retain with retain.
    Reference: Fan et al., "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM Unlearning",
    arXiv 2410.07163.
    """
    mean_nll = -sequence_logps(forget_logps, forget_mask) / _answer_lengths(forget_mask, "forget")  # [B]
    term = -(2.0 / beta) * F.logsigmoid(beta * (mean_nll - delta)).mean()
    parts = {"simnpo_forget": term.detach(), "nll_forget": mean_nll.mean().detach()}
    return _with_retain(gamma * term, parts, retain_logps, retain_mask, alpha)


def idk_sft(template_logps, template_mask, *, retain_logps=None, retain_mask=None, alpha: float = 1.0):
    """IDK fine-tuning: loss = NLL(y_e|x) on template ("I don't know") answers to the forget prompts (+ α·NLL(retain)).

    Needs: template data (forget prompts paired with template answers; the forget answers are not used);
    the `idk_sft_rt` entry also needs retain data, as TOFU's "idk" baseline does. Inputs [B, T-1].
    Parts: nll_template, nll_retain with retain.
    Reference: Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", arXiv 2401.06121.
    """
    nll_template = _mean_nll(template_logps, template_mask, "template")
    return _with_retain(nll_template, {"nll_template": nll_template.detach()}, retain_logps, retain_mask, alpha)


def idk_dpo(
    forget_logps,
    forget_mask,
    template_logps,
    template_mask,
    ref_forget_seq_logps,
    ref_template_seq_logps,
    *,
    beta: float = 0.1,
    gamma: float = 1.0,
    retain_logps=None,
    retain_mask=None,
    alpha: float = 1.0,
):
    """IdkDPO: DPO with the template (refusal) preferred and the forget answer rejected, against the frozen start:
    loss = −(2/β)·mean_b log σ(β·(r_e,b − r_f,b)), times γ (+ α·NLL(retain)); r = log π_θ(y|x) − log π_ref(y|x)
    with summed answer log-probs, as open-unlearning's DPO trainer computes it (the 2/β scale included).

    Needs: forget and template batches for the same prompts, and the starting model's `sequence_logps` on both
    (ref_forget_seq_logps, ref_template_seq_logps [B]); the `idk_dpo_rt` entry also needs retain data.
    Parts: dpo_forget (the unweighted term), log_ratio_template, log_ratio_forget (batch means), nll_retain.
    Reference: Rafailov et al., "Direct Preference Optimization", NeurIPS 2023; the IDK pairing as in TOFU
    (Maini et al., arXiv 2401.06121) and open-unlearning's IdkDPO.
    """
    _answer_lengths(forget_mask, "forget")
    _answer_lengths(template_mask, "template")
    ratio_forget = sequence_logps(forget_logps, forget_mask) - ref_forget_seq_logps  # [B]
    ratio_template = sequence_logps(template_logps, template_mask) - ref_template_seq_logps  # [B]
    term = -(2.0 / beta) * F.logsigmoid(beta * (ratio_template - ratio_forget)).mean()
    parts = {"dpo_forget": term.detach(), "log_ratio_template": ratio_template.mean().detach(),
             "log_ratio_forget": ratio_forget.mean().detach()}
    return _with_retain(gamma * term, parts, retain_logps, retain_mask, alpha)


def _activation_distance(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, stream: str) -> torch.Tensor:
    """mean_b [ (1/n_b) Σ_{t: mask} mean_h (hidden − target)² ]; hidden [B, T, H], target broadcastable, mask [B, T]."""
    n = _answer_lengths(mask, stream)
    per_token = (hidden.float() - target.float()).pow(2).mean(-1)  # [B, T]
    return ((per_token * mask).sum(-1) / n).mean()


def rmu(
    forget_hidden,
    forget_mask,
    retain_hidden,
    retain_frozen_hidden,
    retain_mask,
    steering,
    *,
    steering_coeff: float = 20.0,
    gamma: float = 1.0,
    alpha: float = 1.0,
):
    """RMU: loss = γ·d(h_θ(forget), c·u) + α·d(h_θ(retain), h_start(retain)), h = one decoder layer's output.

    d(a, b) = per-example mean over answer tokens of the mean squared difference over the hidden size, averaged
    over the batch (open-unlearning's masked activation loss); u is a fixed random unit vector, c = steering_coeff.
    Needs: forget and retain data, and "activations": the trainer passes hidden states [B, T, H] of the trained
    model (forget_hidden, retain_hidden) and of the frozen starting model (retain_frozen_hidden), the answer masks
    [B, T] (labels != -100, unshifted: a position's own token) and `steering` = u [H].
    Parts: rmu_forget, rmu_retain (the two unweighted distances).
    Reference: Li et al., "The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning", ICML 2024.
    """
    forget_term = _activation_distance(forget_hidden, steering_coeff * steering, forget_mask, "forget")
    retain_term = _activation_distance(retain_hidden, retain_frozen_hidden.detach(), retain_mask, "retain")
    parts = {"rmu_forget": forget_term.detach(), "rmu_retain": retain_term.detach()}
    return gamma * forget_term + alpha * retain_term, parts


@dataclass(frozen=True)
class LossSpec:
    """A loss function and the data streams the trainer must load for it."""

    fn: Callable
    needs: frozenset


def get_loss(name: str) -> LossSpec:
    """The LOSSES entry for `name`, or an LlmkitError that suggests the closest name."""
    require_known("loss", name, LOSSES)
    return LOSSES[name]


def require_known(field: str, value: str, known) -> None:
    """An LlmkitError naming `field`, the closest known value and all of them, unless `value` is one of `known`."""
    if value not in known:
        raise LlmkitError(f"{field}: unknown {value!r}{did_you_mean(value, known, list_known=True)}")


_LOG2 = math.log(2.0)

# name → (g*(v), f*(g*(v))), f-GAN convention; v is an answer probability in [0, 1].
REDUCTIONS = ("paper", "reference")  # flat: the paper's per-example mean, or the released code's padded one
DIVERGENCES = {
    "kl": (lambda v: v, lambda v: torch.exp(v - 1.0)),
    "pearson": (lambda v: v, lambda v: v * v / 4.0 + v),
    "js": (lambda v: _LOG2 - F.softplus(-v), lambda v: v + F.softplus(-v) - _LOG2),
    "tv": (lambda v: torch.tanh(v) / 2.0, lambda v: torch.tanh(v) / 2.0),
    # Experimental, not in the paper: the reference code's 3rd-order Taylor form of Jeffrey's conjugate.
    "jeffrey": (lambda v: v, lambda v: v + v * v / 4.0 + v**3 / 16.0),
}

LOSSES = {
    "flat": LossSpec(flat, frozenset({"forget", "template"})),
    "grad_ascent": LossSpec(grad_ascent, frozenset({"forget"})),
    "grad_diff": LossSpec(grad_diff, frozenset({"forget", "retain"})),
    "npo": LossSpec(npo, frozenset({"forget", "reference"})),
    "npo_rt": LossSpec(npo, frozenset({"forget", "retain", "reference"})),
    "simnpo": LossSpec(simnpo, frozenset({"forget"})),
    "simnpo_rt": LossSpec(simnpo, frozenset({"forget", "retain"})),
    "idk_sft": LossSpec(idk_sft, frozenset({"template"})),
    "idk_sft_rt": LossSpec(idk_sft, frozenset({"template", "retain"})),
    "idk_dpo": LossSpec(idk_dpo, frozenset({"forget", "template", "reference"})),
    "idk_dpo_rt": LossSpec(idk_dpo, frozenset({"forget", "template", "retain", "reference"})),
    "rmu": LossSpec(rmu, frozenset({"forget", "retain", "activations"})),
}
