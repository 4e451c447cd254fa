"""One Trainer for every unlearning loss: compute_loss = LOSSES[name](per-token log-probs of the streams it needs).

The streams of a batch (forget, template, retain) go through the model in one forward pass when padding them to
a common length costs little (one pass is one parameter all-gather under ZeRO-3 and one DDP forward), else in
one pass each. NPO's frozen reference is the starting model itself: its summed log-probs on the forget set are
computed once before the first update and kept in the run directory, so no second model is ever loaded (under
ZeRO-3 the pass runs through the sharded model on every rank in lockstep).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from llmkit.errors import LlmkitError
from llmkit.io import atomic_write_text
from llmkit.unlearn.data import STREAMS, UnlearnCollator
from llmkit.unlearn.losses import get_loss, sequence_logps, token_logps

REFERENCE_FILE = "reference_logps.json"
# Joint pass when the padded [sum B, max T] batch is at most this much larger than the separate ones.
JOINT_PADDING_SLACK = 1.25


@dataclass
class UnlearnTrainingArguments(TrainingArguments):
    """TrainingArguments for `task: unlearn`; the batch carries several streams, so no column is removed."""

    remove_unused_columns: bool = field(default=False, metadata={"help": "keep every stream of the batch"})
    joint_forward: str = field(default="auto", metadata={"help": "auto | always | never: streams in one forward pass"})

    def __post_init__(self):
        super().__post_init__()
        if self.joint_forward not in {"auto", "always", "never"}:
            raise ValueError(f"joint_forward must be auto, always or never, got {self.joint_forward!r}")
        if self.dataloader_persistent_workers:
            # Templates are re-drawn per epoch in the dataset; persistent workers would keep epoch 0's copy.
            raise ValueError("dataloader_persistent_workers must be false for unlearning (templates change per epoch)")


class _EpochToDataset(TrainerCallback):
    """Tells the dataset the epoch before its iterator (and worker copies) are made."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is whole at an epoch start and fractional only when resuming mid-epoch.
        self.dataset.set_epoch(int(state.epoch + 1e-6))
        return control


def use_joint_forward(mode: str, shapes: list[tuple[int, int]]) -> bool:
    """Whether [rows, width] streams go through one padded forward pass."""
    if mode != "auto" or len(shapes) < 2:
        return mode == "always" and len(shapes) > 1
    width = max(w for _, w in shapes)
    return sum(r * width for r, _ in shapes) <= JOINT_PADDING_SLACK * sum(r * w for r, w in shapes)


def stream_logps(model, inputs: dict, streams: list[str], joint: bool, pad_token_id: int) -> dict:
    """{stream: (logps, mask)} with shapes [B_s, T_s-1], from one forward pass over all streams or one each."""
    if not joint:
        out = {}
        for s in streams:
            logits = model(input_ids=inputs[f"{s}_input_ids"], attention_mask=inputs[f"{s}_attention_mask"],
                           use_cache=False).logits  # [B_s, T_s, V]
            out[s] = token_logps(logits, inputs[f"{s}_labels"])
        return out
    width = max(inputs[f"{s}_input_ids"].shape[1] for s in streams)

    def padded(key: str, value: int) -> torch.Tensor:
        parts = [inputs[f"{s}_{key}"] for s in streams]
        return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1]), value=value) for p in parts])

    # Right padding keeps every real position (and its causal context) unchanged, so slicing is exact.
    logits = model(input_ids=padded("input_ids", pad_token_id), attention_mask=padded("attention_mask", 0),
                   use_cache=False).logits  # [sum B_s, T, V]
    out, row = {}, 0
    for s in streams:
        rows, cols = inputs[f"{s}_input_ids"].shape
        out[s] = token_logps(logits[row:row + rows, :cols], inputs[f"{s}_labels"])  # [B_s, T_s, V] → [B_s, T_s-1]
        row += rows
    return out


class UnlearnTrainer(Trainer):
    """transformers.Trainer whose loss is `LOSSES[loss_name]`; the loss parts are averaged over each logging window."""

    def __init__(self, *args, loss_name: str, loss_kwargs: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_spec = get_loss(loss_name)
        self.loss_kwargs = dict(loss_kwargs or {})
        # The losses are batch means already; Trainer divides them by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.streams = [s for s in STREAMS if s in self.loss_spec.needs]
        self.reference_logps: torch.Tensor | None = None
        self._parts_sum: dict[str, torch.Tensor] = {}
        self._parts_count = 0
        if hasattr(self.train_dataset, "set_epoch"):
            self.add_callback(_EpochToDataset(self.train_dataset))

    def _pad_token_id(self) -> int:
        tok = self.processing_class
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        shapes = [tuple(inputs[f"{s}_input_ids"].shape) for s in self.streams]
        joint = use_joint_forward(self.args.joint_forward, shapes)
        logps = stream_logps(model, inputs, self.streams, joint, self._pad_token_id())
        kwargs = {}
        for s, (lp, mask) in logps.items():
            kwargs[f"{s}_logps"], kwargs[f"{s}_mask"] = lp, mask
        if "reference" in self.loss_spec.needs:
            kwargs["ref_forget_seq_logps"] = self._reference(model).to(lp.device)[inputs["index"]]
        loss, parts = self.loss_spec.fn(**kwargs, **self.loss_kwargs)
        if model.training:
            for key, value in parts.items():
                self._parts_sum[key] = self._parts_sum.get(key, 0.0) + value.float()
            self._parts_count += 1
        return (loss, {"parts": parts}) if return_outputs else loss

    @torch.no_grad()
    def _reference(self, model) -> torch.Tensor:
        """Summed forget-answer log-probs of the starting model, [N]; computed before the first update, or read
        back from the run directory when resuming."""
        if self.reference_logps is not None:
            return self.reference_logps
        path = Path(self.args.output_dir) / REFERENCE_FILE
        n = len(self.train_dataset)
        if self.state.global_step > 0:
            if not path.is_file():
                raise LlmkitError(f"resume: {path} is missing; the reference log-probs of the starting model are lost")
            values = json.loads(path.read_text(encoding="utf-8"))["forget_seq_logps"]
            if len(values) != n:
                raise LlmkitError(f"{path}: {len(values)} values for {n} forget examples")
            self.reference_logps = torch.tensor(values, dtype=torch.float32)
            return self.reference_logps
        module = self.accelerator.unwrap_model(model)
        was_training = module.training
        module.eval()
        features = self.train_dataset.forget_features()
        collate = UnlearnCollator(self._pad_token_id())
        size = self.args.per_device_train_batch_size
        device = next(module.parameters()).device
        values = torch.empty(n, dtype=torch.float32)
        for lo in range(0, n, size):  # every rank scores every example: same passes, so ZeRO-3 gathers line up
            batch = {k: v.to(device) for k, v in collate(features[lo:lo + size]).items()}
            lp, mask = stream_logps(module, batch, ["forget"], False, self._pad_token_id())["forget"]
            values[batch["index"].cpu()] = sequence_logps(lp, mask).float().cpu()
        module.train(was_training)
        self.reference_logps = values
        if self.is_world_process_zero():
            atomic_write_text(path, json.dumps({"forget_seq_logps": values.tolist()}) + "\n")
        return values

    def _track_num_input_tokens(self, inputs):
        # The batch has one input_ids per stream, which Trainer's counter does not know; count every stream.
        if self.args.include_num_input_tokens_seen == "no":
            return
        key = "attention_mask" if self.args.include_num_input_tokens_seen == "non_padding" else "input_ids"
        count = sum(int(inputs[f"{s}_{key}"].sum() if key == "attention_mask" else inputs[f"{s}_{key}"].numel())
                    for s in self.streams)
        count = torch.tensor(count, device=self.args.device, dtype=torch.int64)
        self.state.num_input_tokens_seen += int(self.accelerator.gather(count).sum())

    def log(self, logs: dict, start_time: float | None = None) -> None:
        # Training logs (they carry "loss") get the loss parts averaged over the window and over ranks;
        # every rank logs at the same steps, so the reduce is collective-safe.
        if "loss" in logs and self._parts_count:
            names = sorted(self._parts_sum)
            means = torch.stack([self._parts_sum[k] for k in names]) / self._parts_count
            means = self.accelerator.reduce(means.to(self.args.device), reduction="mean")
            logs.update({k: float(v) for k, v in zip(names, means.tolist())})
            self._parts_sum, self._parts_count = {}, 0
        super().log(logs, start_time)
