"""One Trainer for every unlearning loss: compute_loss = LOSSES[name](per-token log-probs of the streams it needs).

The streams of a batch (forget, template, retain) go through the model in one forward pass when padding them to
a common length costs little (one pass is one parameter all-gather under ZeRO-3 and one DDP forward), else in
one pass each. The frozen reference of NPO and IdkDPO is the starting model itself: its summed log-probs on the
forget set (and, for IdkDPO, on every template a forget prompt will be paired with in this run's epochs) are
computed once before the first update and kept in the run directory, so no second model is ever loaded (under
ZeRO-3 the pass runs through the sharded model on every rank in lockstep). RMU compares hidden states on retain
data, too many to store, so it keeps a frozen copy of the starting model cut after the steered layer, one per
rank; ZeRO-3, which shards the model it would copy, is refused for it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import is_deepspeed_zero3_enabled

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


def steering_direction(size: int, seed: int) -> torch.Tensor:
    """RMU's fixed random unit vector u [size]: uniform [0, 1) entries, normalised, drawn from the run's seed so a
    resumed run steers toward the same direction."""
    u = torch.rand(size, generator=torch.Generator().manual_seed(seed))
    return u / u.norm()


def use_joint_forward(mode: str, shapes: list[tuple[int, int]]) -> bool:
    """Whether [rows, width] streams go through one padded forward pass."""
    if mode != "auto" or len(shapes) < 2:
        return mode == "always" and len(shapes) > 1
    width = max(w for _, w in shapes)
    return sum(r * width for r, _ in shapes) <= JOINT_PADDING_SLACK * sum(r * w for r, w in shapes)


def _passes(inputs: dict, streams: list[str], joint: bool, pad_token_id: int) -> list[tuple]:
    """The forward passes for `streams`: [(input_ids, attention_mask, [(stream, rows, width)])], one pass over all
    streams (right-padded to a common width and stacked) or one pass each."""
    if not joint:
        return [(inputs[f"{s}_input_ids"], inputs[f"{s}_attention_mask"],
                 [(s, slice(None), inputs[f"{s}_input_ids"].shape[1])]) for s in streams]
    width = max(inputs[f"{s}_input_ids"].shape[1] for s in streams)

    def padded(key: str, value: int) -> torch.Tensor:
        parts = [inputs[f"{s}_{key}"] for s in streams]
        return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1]), value=value) for p in parts])

    # Right padding keeps every real position (and its causal context) unchanged, so slicing is exact.
    slices, row = [], 0
    for s in streams:
        rows, cols = inputs[f"{s}_input_ids"].shape
        slices.append((s, slice(row, row + rows), cols))
        row += rows
    return [(padded("input_ids", pad_token_id), padded("attention_mask", 0), slices)]


def stream_logps(model, inputs: dict, streams: list[str], joint: bool, pad_token_id: int) -> dict:
    """{stream: (logps, mask)} with shapes [B_s, T_s-1], from one forward pass over all streams or one each."""
    out = {}
    for input_ids, attention_mask, slices in _passes(inputs, streams, joint, pad_token_id):
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # [rows, T, V]
        for s, rows, cols in slices:
            out[s] = token_logps(logits[rows, :cols], inputs[f"{s}_labels"])  # [B_s, T_s, V] → [B_s, T_s-1]
    return out


def stream_hidden(model, layer: torch.nn.Module, inputs: dict, streams: list[str], joint: bool,
                  pad_token_id: int) -> dict:
    """{stream: the output of decoder layer `layer` (a module inside `model`)} with shape [B_s, T_s, H]."""
    out = {}
    for input_ids, attention_mask, slices in _passes(inputs, streams, joint, pad_token_id):
        captured = []
        handle = layer.register_forward_hook(lambda module, args, output: captured.append(
            output[0] if isinstance(output, tuple) else output))
        try:
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        finally:
            handle.remove()
        for s, rows, cols in slices:
            out[s] = captured[0][rows, :cols]
    return out


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's list of decoder layers: the first ModuleList as long as config.num_hidden_layers."""
    count = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise LlmkitError(f"layer: found no list of {count} decoder layers in {type(model).__name__}")


def frozen_prefix(model, layer: int):
    """A frozen copy of the starting model that stops after decoder layer `layer`: later layers are not copied, so
    it costs a fraction of the model (RMU's retain term compares against its activations)."""
    layers = decoder_layers(model)
    if not 0 <= layer < len(layers):
        raise LlmkitError(f"layer: {layer} is not a decoder layer of this model (it has {len(layers)}: 0..{len(layers) - 1})")
    tail = list(layers[layer + 1:])
    del layers[layer + 1:]
    try:
        frozen = copy.deepcopy(model)
    finally:
        layers.extend(tail)
    frozen.config.num_hidden_layers = layer + 1  # the copy's own config, so decoder_layers finds the cut list
    return frozen.requires_grad_(False).eval()


class UnlearnTrainer(Trainer):
    """transformers.Trainer whose loss is `LOSSES[loss_name]`; the loss parts are averaged over each logging window."""

    def __init__(self, *args, loss_name: str, loss_kwargs: dict | None = None, layer: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_spec = get_loss(loss_name)
        self.loss_kwargs = dict(loss_kwargs or {})
        # The losses are batch means already; Trainer divides them by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.streams = [s for s in STREAMS if s in self.loss_spec.needs]
        self.reference: dict | None = None
        self.frozen = None
        if "activations" in self.loss_spec.needs:
            if is_deepspeed_zero3_enabled():
                raise LlmkitError(f"loss {loss_name}: ZeRO-3 shards the model whose first layers it keeps a frozen "
                                  "copy of; use ZeRO-2 or plain data parallel")
            if layer is None:
                raise LlmkitError(f"layer: loss {loss_name} needs the decoder layer whose output it steers")
            self.layer = layer
            self.frozen = frozen_prefix(self.model, layer)
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
        if self.frozen is not None:
            kwargs = self._activations(model, inputs, joint)
        else:
            kwargs = {}
            for s, (lp, mask) in stream_logps(model, inputs, self.streams, joint, self._pad_token_id()).items():
                kwargs[f"{s}_logps"], kwargs[f"{s}_mask"] = lp, mask
            if "reference" in self.loss_spec.needs:
                kwargs.update(self._reference_for(model, inputs, lp.device))
        loss, parts = self.loss_spec.fn(**kwargs, **self.loss_kwargs)
        if model.training:
            for key, value in parts.items():
                self._parts_sum[key] = self._parts_sum.get(key, 0.0) + value.float()
            self._parts_count += 1
        return (loss, {"parts": parts}) if return_outputs else loss

    def _activations(self, model, inputs: dict, joint: bool) -> dict:
        """RMU's inputs: the steered layer's output on every stream, the frozen copy's on retain, the answer masks
        and the steering direction."""
        module = self.accelerator.unwrap_model(model)
        device = next(module.parameters()).device
        self.frozen.to(device)  # a no-op after the first step
        pad = self._pad_token_id()
        hidden = stream_hidden(model, decoder_layers(module)[self.layer], inputs, self.streams, joint, pad)
        with torch.no_grad():
            frozen = stream_hidden(self.frozen, decoder_layers(self.frozen)[self.layer], inputs, ["retain"], False, pad)
        kwargs = {f"{s}_hidden": h for s, h in hidden.items()}
        kwargs.update({f"{s}_mask": inputs[f"{s}_labels"] != -100 for s in self.streams})
        kwargs["retain_frozen_hidden"] = frozen["retain"]
        kwargs["steering"] = steering_direction(hidden["forget"].shape[-1], self.args.seed).to(device)
        return kwargs

    def _reference_for(self, model, inputs: dict, device) -> dict:
        """ref_{stream}_seq_logps of this batch's rows: forget by index, template by (index, template_id)."""
        reference = self._reference(model)
        out = {"ref_forget_seq_logps": reference["forget"].to(device)[inputs["index"]]}
        if "template" in self.streams:
            pairs = zip(inputs["index"].tolist(), inputs["template_id"].tolist())
            try:
                values = [reference["template"][pair] for pair in pairs]
            except KeyError:
                raise LlmkitError(f"resume: {REFERENCE_FILE} has no reference log-prob for a template drawn in this "
                                  "run; it covers the epochs the run was started with") from None
            out["ref_template_seq_logps"] = torch.tensor(values, dtype=torch.float32, device=device)
        return out

    @torch.no_grad()
    def _reference(self, model) -> dict:
        """The starting model's summed answer log-probs: "forget" [N] by index, and, for losses with a template
        stream, "template" {(index, template_id): value} for every pair the run's epochs draw. Computed before the
        first update, or read back from the run directory when resuming."""
        if self.reference is not None:
            return self.reference
        path = Path(self.args.output_dir) / REFERENCE_FILE
        n = len(self.train_dataset)
        if self.state.global_step > 0:
            if not path.is_file():
                raise LlmkitError(f"resume: {path} is missing; the reference log-probs of the starting model are lost")
            stored = json.loads(path.read_text(encoding="utf-8"))
            if len(stored["forget_seq_logps"]) != n:
                raise LlmkitError(f"{path}: {len(stored['forget_seq_logps'])} values for {n} forget examples")
            self.reference = {"forget": torch.tensor(stored["forget_seq_logps"], dtype=torch.float32),
                              "template": {(i, t): v for i, t, v in stored.get("template_seq_logps", [])}}
            return self.reference
        module = self.accelerator.unwrap_model(model)
        was_training = module.training
        module.eval()
        forget = self._score(module, self.train_dataset.forget_features(), "forget")
        self.reference = {"forget": torch.tensor(forget, dtype=torch.float32), "template": {}}
        stored = {"forget_seq_logps": forget}
        if "template" in self.streams:
            features = self.train_dataset.template_features(int(self.state.num_train_epochs))
            values = self._score(module, features, "template")
            stored["template_seq_logps"] = [[f["index"], f["template_id"], v] for f, v in zip(features, values)]
            self.reference["template"] = {(i, t): v for i, t, v in stored["template_seq_logps"]}
        module.train(was_training)
        if self.is_world_process_zero():
            atomic_write_text(path, json.dumps(stored) + "\n")
        return self.reference

    def _score(self, module, features: list[dict], stream: str) -> list[float]:
        """Summed answer log-probs of `features` (one stream), in order."""
        collate = UnlearnCollator(self._pad_token_id())
        size = self.args.per_device_train_batch_size
        device = next(module.parameters()).device
        values = []
        for lo in range(0, len(features), size):  # every rank scores every example: same passes, so ZeRO-3 gathers line up
            batch = {k: v.to(device) for k, v in collate(features[lo:lo + size]).items()}
            lp, mask = stream_logps(module, batch, [stream], False, self._pad_token_id())[stream]
            values += sequence_logps(lp, mask).float().cpu().tolist()
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
