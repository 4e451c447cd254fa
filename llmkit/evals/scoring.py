"""Per-token statistics of answers given prompts: one length-sorted, batched forward pass, each distinct text once.

Every log-prob metric of a dataset (answer, paraphrased and perturbed answers for TOFU; Min-k% texts for MUSE;
the membership-inference attacks, extraction strength and exact memorisation) goes through one call, so texts shared
between metrics are scored once and padding stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from llmkit.errors import LlmkitError


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], *, add_eos: bool, add_special_tokens: bool = True,
                 max_length: int | None = None) -> list[tuple[list[int], int]]:
    """Token ids of prompt+answer and the index of the first answer token, the way TOFU/open-unlearning label them.

    The answer starts after the tokens of the prompt alone; EOS is appended unless already last (TOFU QA);
    the first token of a sequence has no prediction, so scoring starts at 1 at the earliest (MUSE's Min-k texts).
    Each distinct prompt is tokenised once and every text in one batched call (a TOFU prompt has 7 answers).
    """
    if not pairs:  # a tokenizer refuses an empty batch
        return []
    prompts = list(dict.fromkeys(p for p, _ in pairs))
    prompt_lens = dict(zip(prompts, map(len, tokenizer(prompts, add_special_tokens=add_special_tokens)["input_ids"])))
    full = tokenizer([p + a for p, a in pairs], add_special_tokens=add_special_tokens)["input_ids"]
    out = []
    for (prompt, answer), ids in zip(pairs, full):
        if max_length is not None:
            ids = ids[:max_length]
        if add_eos and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids = ids + [tokenizer.eos_token_id]
        start = max(prompt_lens[prompt], 1)
        if start >= len(ids):
            raise LlmkitError(f"nothing to score after the prompt for answer {answer[:60]!r} (prompt {prompt[-60:]!r})")
        out.append((ids, start))
    return out


def encode_pair(tokenizer, prompt: str, answer: str, **kwargs) -> tuple[list[int], int]:
    """encode_pairs for one (prompt, answer) pair."""
    return encode_pairs(tokenizer, [(prompt, answer)], **kwargs)[0]


@dataclass
class TokenStats:
    """What one scoring pass keeps per answer token, enough for every log-prob metric (all arrays [n])."""

    ids: np.ndarray  # the answer's token ids (EOS included when added)
    logprob: np.ndarray  # log p(token | prefix)
    greedy: np.ndarray  # the model's argmax at that position is the token (exact memorisation, extraction strength)
    vocab_mean: np.ndarray | None = None  # E_v[log p(v)] under the model's next-token distribution (Min-K%++ only)
    vocab_var: np.ndarray | None = None  # Var_v[log p(v)] likewise; both None unless asked for (vocab_stats)


@torch.no_grad()
def answer_token_stats(model, tokenizer, pairs: Sequence[tuple[str, str]], *, add_eos: bool = True,
                       add_special_tokens: bool = True, max_length: int | None = None, batch_size: int = 16,
                       vocab_stats: bool | Sequence[bool] = False, desc: str = "scoring") -> list[TokenStats]:
    """Per-token statistics of every answer for each (prompt, answer) pair, returned in input order.

    `vocab_stats`: also the mean and variance of log p over the vocabulary (Min-K%++), two more n x V passes; True
    for every pair, or one flag per pair (the texts that need them share the one pass with the others).
    """
    unique = list(dict.fromkeys(pairs))  # identical (prompt, answer) texts are scored once
    flags = [vocab_stats] * len(pairs) if isinstance(vocab_stats, bool) else vocab_stats
    wants_vocab = {pair for pair, flag in zip(pairs, flags, strict=True) if flag}
    encoded = encode_pairs(tokenizer, unique, add_eos=add_eos, add_special_tokens=add_special_tokens,
                           max_length=max_length)
    order = sorted(range(len(unique)), key=lambda i: -len(encoded[i][0]))  # longest first: OOM shows up at once
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    results: dict[int, TokenStats] = {}
    for lo in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        batch = order[lo:lo + batch_size]
        width = len(encoded[batch[0]][0])
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):  # right padding: positions of real tokens are unchanged
            ids = encoded[i][0]
            input_ids[row, :len(ids)] = torch.tensor(ids)
            attention_mask[row, :len(ids)] = 1
        # no KV cache: one forward per batch, nothing to reuse (a model saved with use_cache on would build one)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                       use_cache=False).logits  # [B, T, V]
        for row, i in enumerate(batch):
            ids, start = encoded[i]
            targets = input_ids[row, start:len(ids)].to(device)  # [n]
            # position t predicts token t+1; log_softmax per row in float32 keeps memory at n x V
            logp = logits[row, start - 1:len(ids) - 1].float().log_softmax(-1)  # [n, V]
            columns = [logp.gather(-1, targets[:, None])[:, 0], (logp.argmax(-1) == targets).float()]
            vocab = unique[i] in wants_vocab
            if vocab:
                p = logp.exp()
                mean = torch.einsum("nv,nv->n", p, logp)  # [n]
                centred = logp - mean[:, None]  # E[x^2] - E[x]^2 would cancel badly in float32
                columns += [mean, torch.einsum("nv,nv->n", p * centred, centred)]  # [n] each
            stats = torch.stack(columns).cpu().numpy().astype(np.float64)  # [2 or 4, n]
            results[i] = TokenStats(ids=targets.cpu().numpy(), logprob=stats[0], greedy=stats[1].astype(bool),
                                    **(dict(vocab_mean=stats[2], vocab_var=stats[3]) if vocab else {}))
    index = {pair: i for i, pair in enumerate(unique)}
    return [results[index[pair]] for pair in pairs]


def answer_logprobs(model, tokenizer, pairs: Sequence[tuple[str, str]], **kwargs) -> list[np.ndarray]:
    """Log-prob of every answer token for each (prompt, answer) pair (answer_token_stats' keyword arguments)."""
    return [s.logprob for s in answer_token_stats(model, tokenizer, pairs, **kwargs)]
