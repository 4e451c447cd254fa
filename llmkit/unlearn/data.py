"""Unlearning data: forget examples paired with template answers (re-drawn every epoch), optional retain examples.

Each item holds one tokenised sequence per stream the loss needs (forget, template, retain), each as
`{stream}_input_ids` and `{stream}_labels` (-100 on prompt tokens), plus the forget example's `index`.
QA rows (TOFU) are prompt + answer + EOS with answer-only labels, tokenised exactly as the TOFU evaluation scores
them; raw text (MUSE) is chunked into max-length windows whose every token is a label.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

import torch

from llmkit.data import QADataArgs, prompt_text
from llmkit.errors import LlmkitError
from llmkit.evals.scoring import encode_pair
from llmkit.unlearn.templates import template_choice

IGNORE_INDEX = -100
STREAMS = ("forget", "template", "retain")


@dataclass(frozen=True)
class Example:
    """The source of one sequence: a prompt and an answer (QA) or a token window (text)."""

    prompt: str = ""
    answer: str = ""
    window: tuple = ()


def encode_qa(tokenizer, prompt: str, answer: str, max_length: int, add_special_tokens: bool):
    """(input_ids, labels, truncated) for prompt + answer + EOS, labels on the answer only; None if no answer
    token fits in max_length."""
    full, start = encode_pair(tokenizer, prompt, answer, add_eos=True, add_special_tokens=add_special_tokens)
    ids = full[:max_length]
    if start >= len(ids):
        return None
    return ids, [IGNORE_INDEX] * start + ids[start:], len(full) > max_length


def encode_window(window: tuple, prompt_tokens: int):
    """(input_ids, labels, truncated=False) of a text window; the first `prompt_tokens` tokens are context."""
    ids = list(window)
    return ids, [IGNORE_INDEX] * prompt_tokens + ids[prompt_tokens:], False


def text_windows(tokenizer, texts: list[str], max_length: int, min_tokens: int) -> list[tuple]:
    """The corpus as one token stream (documents separated by EOS) cut into windows of max_length tokens (BOS first
    when the tokenizer adds one), as MUSE trains on it; a last window shorter than min_tokens is dropped."""
    bos = tokenizer("", add_special_tokens=True)["input_ids"][:1]  # [] for tokenizers that add no BOS
    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    step = max_length - len(bos)
    windows = [tuple(bos + stream[i:i + step]) for i in range(0, len(stream), step)]
    return [w for w in windows if len(w) >= min_tokens]


class UnlearnDataset(torch.utils.data.Dataset):
    """Forget examples with the streams a loss needs; the template (and retain partner) of an example depends on
    (seed, epoch, index) only, so every rank, worker and resumed run draws the same one."""

    def __init__(self, tokenizer, forget: list[Example], streams: frozenset, *, templates: list[str] | None = None,
                 retain: list[Example] | None = None, max_length: int, add_special_tokens: bool,
                 text_prompt_tokens: int = 0, seed: int = 0):
        if "template" in streams and not templates:
            raise ValueError("the template stream needs templates")
        if "retain" in streams and not retain:
            raise ValueError("the retain stream needs retain examples")
        # `streams` may be a loss's `needs`; "reference" there is the trainer's business, not a data stream.
        self.streams = frozenset(streams) & set(STREAMS)
        self.tokenizer, self.templates, self.retain = tokenizer, templates, retain
        self.max_length, self.add_special_tokens = max_length, add_special_tokens
        self.text_prompt_tokens, self.seed, self.epoch = text_prompt_tokens, seed, 0
        self.forget, self.truncated = [], 0
        for example in forget:
            encoded = self._encode(example)
            if encoded is None:
                continue
            ids, labels, truncated = encoded
            self.forget.append((example, ids, labels))
            self.truncated += truncated
        self.dropped = len(forget) - len(self.forget)
        if not self.forget:
            raise LlmkitError(f"max_length: {max_length} leaves no answer token in any forget example")

    def _encode(self, example: Example, answer: str | None = None):
        if example.window:
            return encode_window(example.window, self.text_prompt_tokens)
        return encode_qa(self.tokenizer, example.prompt, example.answer if answer is None else answer,
                         self.max_length, self.add_special_tokens)

    def _template(self, example: Example, template: str):
        if not example.window:
            return self._encode(example, answer=template)[:2]  # it fits whenever the forget answer did
        # Text: the window's context tokens, or just BOS, then the template as the continuation.
        context = list(example.window[:self.text_prompt_tokens]) or self.tokenizer("")["input_ids"][:1]
        answer = self.tokenizer(template, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        ids = (context + answer)[:self.max_length]
        return ids, [IGNORE_INDEX] * len(context) + ids[len(context):]

    def _retain(self, index: int):
        # Open-unlearning pairs each forget example with a random retain one; seeded here like the templates.
        pick = random.Random(f"{self.seed}/retain/{self.epoch}/{index}").randrange(len(self.retain))
        for offset in range(len(self.retain)):  # a retain answer cut away by max_length: take the next that fits
            encoded = self._encode(self.retain[(pick + offset) % len(self.retain)])
            if encoded is not None:
                return encoded[:2]
        raise LlmkitError(f"max_length: {self.max_length} leaves no answer token in any retain example")

    def set_epoch(self, epoch: int) -> None:
        """Templates and retain partners are re-drawn from (seed, epoch, index)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.forget)

    def __getitem__(self, index: int) -> dict:
        example, ids, labels = self.forget[index]
        item = {"index": index}
        if "forget" in self.streams:
            item["forget_input_ids"], item["forget_labels"] = ids, labels
        if "template" in self.streams:
            choice = template_choice(len(self.templates), self.seed, self.epoch, index)
            item["template_id"] = choice
            item["template_input_ids"], item["template_labels"] = self._template(example, self.templates[choice])
        if "retain" in self.streams:
            item["retain_input_ids"], item["retain_labels"] = self._retain(index)
        return item

    def forget_features(self) -> list[dict]:
        """The forget sequences alone, in index order (for reference log-probs)."""
        return [{"index": i, "forget_input_ids": ids, "forget_labels": labels}
                for i, (_, ids, labels) in enumerate(self.forget)]

    def template_features(self, epochs: int) -> list[dict]:
        """The template sequences of epochs 0..epochs-1, each distinct (index, template_id) pair once, in index order
        (for reference log-probs: a template's reference value depends on its prompt and its text)."""
        features = []
        for i, (example, _, _) in enumerate(self.forget):
            choices = sorted({template_choice(len(self.templates), self.seed, e, i) for e in range(epochs)})
            for choice in choices:
                ids, labels = self._template(example, self.templates[choice])
                features.append({"index": i, "template_id": choice, "template_input_ids": ids,
                                 "template_labels": labels})
        return features


@dataclass
class UnlearnCollator:
    """Right-pads each stream to its own longest sequence in the batch (dynamic padding)."""

    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict:
        batch = {"index": torch.tensor([f["index"] for f in features], dtype=torch.long)}
        if "template_id" in features[0]:
            batch["template_id"] = torch.tensor([f["template_id"] for f in features], dtype=torch.long)
        for stream in STREAMS:
            if f"{stream}_input_ids" not in features[0]:
                continue
            rows = [(f[f"{stream}_input_ids"], f[f"{stream}_labels"]) for f in features]
            width = max(len(ids) for ids, _ in rows)
            input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
            labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
            attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, (ids, lab) in enumerate(rows):
                input_ids[r, :len(ids)] = torch.tensor(ids)
                labels[r, :len(lab)] = torch.tensor(lab)
                attention_mask[r, :len(ids)] = 1
            batch[f"{stream}_input_ids"], batch[f"{stream}_labels"] = input_ids, labels
            batch[f"{stream}_attention_mask"] = attention_mask
        return batch


def qa_examples(tokenizer, rows, args: QADataArgs) -> list[Example]:
    """QA rows → examples with the prompt the model is trained and evaluated with."""
    return [Example(prompt=prompt_text(tokenizer, row[args.question_key], args), answer=row[args.answer_key])
            for row in rows]


def report(dataset: UnlearnDataset, source: str) -> None:
    """One stderr line on what max_length did to the forget set."""
    if dataset.dropped or dataset.truncated:
        print(f"llmkit: {source}: {dataset.dropped} forget example(s) dropped (no answer token within max_length "
              f"{dataset.max_length}), {dataset.truncated} truncated", file=sys.stderr)
