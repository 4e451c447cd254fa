"""Per-token log-probs of answers given prompts: one length-sorted, batched forward pass, each distinct text once.

Every log-prob metric of a dataset (answer, paraphrased and perturbed answers for TOFU; Min-k% texts for MUSE)
goes through one call, so texts shared between metrics are scored once and padding stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from llmkit.errors import LlmkitError


def encode_pair(tokenizer, prompt: str, answer: str, *, add_eos: bool, add_special_tokens: bool = True,
                max_length: int | None = None) -> tuple[list[int], int]:
    """Token ids of prompt+answer and the index of the first answer token, the way TOFU/open-unlearning label them.

    The answer starts after the tokens of the prompt alone; EOS is appended unless already last (TOFU QA);
    the first token of a sequence has no prediction, so scoring starts at 1 at the earliest (MUSE's Min-k texts).
    """
    prompt_len = len(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
    ids = tokenizer(prompt + answer, add_special_tokens=add_special_tokens)["input_ids"]
    if max_length is not None:
        ids = ids[:max_length]
    if add_eos and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids = ids + [tokenizer.eos_token_id]
    start = max(prompt_len, 1)
    if start >= len(ids):
        raise LlmkitError(f"nothing to score after the prompt for answer {answer[:60]!r} (prompt {prompt[-60:]!r})")
    return ids, start


@dataclass
class TokenScores:
    """One (prompt, answer) pair, per answer token: its id, its log-prob, and the model's greedy guess for it."""

    target_ids: np.ndarray  # [n]
    logprobs: np.ndarray  # [n]
    greedy_ids: np.ndarray  # [n] argmax of the prediction made from the true tokens before each target


def answer_logprobs(model, tokenizer, pairs: Sequence[tuple[str, str]], **kwargs) -> list[np.ndarray]:
    """Log-prob of every answer token for each (prompt, answer) pair, returned in input order (see score_tokens)."""
    return [scores.logprobs for scores in score_tokens(model, tokenizer, pairs, **kwargs)]


@torch.no_grad()
def score_tokens(model, tokenizer, pairs: Sequence[tuple[str, str]], *, add_eos: bool = True,
                 add_special_tokens: bool = True, max_length: int | None = None, batch_size: int = 16,
                 desc: str = "scoring") -> list[TokenScores]:
    """Per-token scores of every answer for each (prompt, answer) pair, returned in input order."""
    unique = list(dict.fromkeys(pairs))  # identical (prompt, answer) texts are scored once
    encoded = [encode_pair(tokenizer, p, a, add_eos=add_eos, add_special_tokens=add_special_tokens,
                           max_length=max_length) for p, a in unique]
    order = sorted(range(len(unique)), key=lambda i: -len(encoded[i][0]))  # longest first: OOM shows up at once
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    results: dict[int, TokenScores] = {}
    for lo in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        batch = order[lo:lo + batch_size]
        width = len(encoded[batch[0]][0])
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):  # right padding: positions of real tokens are unchanged
            ids = encoded[i][0]
            input_ids[row, :len(ids)] = torch.tensor(ids)
            attention_mask[row, :len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits  # [B, T, V]
        for row, i in enumerate(batch):
            ids, start = encoded[i]
            targets = input_ids[row, start:len(ids)].to(device)  # [n]
            # position t predicts token t+1; log_softmax per row in float32 keeps memory at n x V
            logp = logits[row, start - 1:len(ids) - 1].float().log_softmax(-1)  # [n, V]
            results[i] = TokenScores(np.array(ids[start:]), logp.gather(-1, targets[:, None])[:, 0].cpu().numpy()
                                     .astype(np.float64), logp.argmax(-1).cpu().numpy())
    index = {pair: i for i, pair in enumerate(unique)}
    return [results[index[pair]] for pair in pairs]
