"""Memory per GPU for a recipe under a preset, from the model's config alone (no weights are loaded).

Model states (weights, gradients, optimizer) come from the libraries' estimators: accelerate's
`estimate_training_usage` for DDP, DeepSpeed's `estimate_zero2/zero3_model_states_mem_needs` for ZeRO (FSDP full
shard has no estimator of its own; ZeRO-3's stands in, as it shards the same three things). The parameter counts
come from an empty model built on the meta device. Activations have no library estimator: they use Korthikanti et
al. 2022 ("Reducing Activation Recomputation in Large Transformer Models"), 34·s·b·h bytes per layer in 16 bits
with fused attention (sdpa/flash store no s×s scores), and 2·s·b·h per layer plus one full layer when every layer is
checkpointed, plus the fp32 logits s·b·V·4.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

from llmkit.errors import LlmkitError, did_you_mean
from llmkit.plan import GIB, sequence_length

STAND_IN = "llama"  # the tiny preset whose config stands in when the real one cannot be read here


def model_config(model_args) -> tuple[object, str, bool]:
    """(config, where it came from, whether it stands in): the tiny llama config, said so, when the real one is not
    reachable."""
    from transformers import AutoConfig

    from llmkit.models import _looks_like_local_path

    name = model_args.model_name_or_path
    if not name.startswith("tiny:"):
        try:
            return AutoConfig.from_pretrained(name, trust_remote_code=model_args.trust_remote_code), name, False
        except (OSError, ValueError) as err:
            reason = ("a local folder that does not exist yet" if _looks_like_local_path(name)
                      else str(err).splitlines()[0].split(". ")[0].rstrip("."))
            source = f"tiny:{STAND_IN} standing in for {name}, whose config is not reachable here ({reason})"
            return tiny_config(STAND_IN), source, True
    return tiny_config(name.removeprefix("tiny:")), name, False


def tiny_config(preset: str):
    """The config of a tiny preset, without building its tokenizer or weights."""
    from transformers import LlamaConfig

    from llmkit.tiny import PRESETS, VOCAB_SIZE

    if preset not in PRESETS:
        raise LlmkitError(f"model_name_or_path: unknown tiny preset {preset!r}{did_you_mean(preset, PRESETS)}")
    return LlamaConfig(vocab_size=VOCAB_SIZE, tie_word_embeddings=True, **PRESETS[preset])


@dataclass
class Counts:
    total: int
    trainable: int
    largest_layer: int  # parameters of the largest single module, as DeepSpeed's ZeRO-3 estimate takes them


def parameter_counts(config, model_args) -> Counts:
    """Counts on an empty (meta-device) model; with LoRA, the adapter is applied, which checks its target modules."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    from llmkit.models import lora_config

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=model_args.trust_remote_code)
        lora = lora_config(model_args)
        if lora is not None:
            from peft import get_peft_model

            try:
                with warnings.catch_warnings():  # peft asks the model the deprecated is_gradient_checkpointing
                    warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
                    model = get_peft_model(model, lora)
            except ValueError as err:
                raise LlmkitError(f"lora_target_modules: {str(err).splitlines()[0]}") from None
    params = list(model.parameters())
    largest = max(sum(p.numel() for p in module.parameters(recurse=False)) for module in model.modules())
    return Counts(sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad), largest)


def model_states_bytes(counts: Counts, preset: str, world: int, machines: int, bf16: bool) -> tuple[float, str]:
    """(bytes per GPU for weights + gradients + optimizer, the estimator used)."""
    per_node = max(world // machines, 1)
    # Frozen weights (LoRA's base) carry no gradient or optimizer state: 16-bit copies, sharded only by ZeRO-3/FSDP.
    frozen = (counts.total - counts.trainable) * (2 if bf16 else 4) / (world if preset in ("zero3", "fsdp") else 1)
    if preset == "ddp":
        from accelerate.commands.estimate import estimate_training_usage

        usage = estimate_training_usage(counts.trainable * 4, "bfloat16" if bf16 else "float32")
        return frozen + usage["model"] + usage["gradients"] + usage["optimizer"], "accelerate estimate_training_usage"
    if preset == "zero2":
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        _, gpu = estimate_zero2_model_states_mem_needs(counts.trainable, per_node, machines, cpu_offload=False)
        return frozen + gpu, "DeepSpeed estimate_zero2_model_states_mem_needs"
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    _, gpu, _ = estimate_zero3_model_states_mem_needs(counts.trainable, counts.largest_layer, per_node, machines,
                                                      cpu_offload=False, cpu_offload_params=False)
    return frozen + gpu, "DeepSpeed estimate_zero3_model_states_mem_needs" + (" (for FSDP)" if preset == "fsdp" else "")


def activation_bytes(config, sequences: int, length: int, checkpointing: bool, bf16: bool, logits: bool) -> float:
    """Korthikanti et al. 2022 (see the module docstring); fp32 doubles the 16-bit figures."""
    width = 1 if bf16 else 2
    h, layers, tokens = config.hidden_size, config.num_hidden_layers, sequences * length
    full_layer = 34 * tokens * h * width
    stored = layers * 2 * tokens * h * width + full_layer if checkpointing else layers * full_layer
    return stored + (tokens * config.vocab_size * 4 if logits else 0)


def memory_lines(instances: tuple, preset: str, world: int, machines: int, gpu_memory_gb: float) -> list[str]:
    from accelerate.utils import convert_bytes

    model_args = next(obj for obj in instances if hasattr(obj, "model_name_or_path"))
    train_args = instances[-1]
    config, source, stand_in = model_config(model_args)
    try:
        counts = parameter_counts(config, model_args)
    except LlmkitError:
        if not stand_in:
            raise
        # the stand-in's module names are Llama's, not the real model's: no verdict on the targets from it
        counts = parameter_counts(config, dataclasses.replace(model_args, use_peft=False))
        source += "; LoRA targets are checked once the model's config is readable"
    bf16 = bool(train_args.bf16)
    states, estimator = model_states_bytes(counts, preset, world, machines, bf16)
    # An embedder's GradCache loss runs the encoder on chunks of mini_batch_size with no graph kept between chunks.
    embed = next((obj for obj in instances if hasattr(obj, "mini_batch_size")), None)
    cached = embed is not None and embed.loss.startswith("cached")
    sequences = embed.mini_batch_size if cached else train_args.per_device_train_batch_size
    length = sequence_length(instances) or config.max_position_embeddings
    act = {ckpt: activation_bytes(config, sequences, length, ckpt, bf16, logits=embed is None) for ckpt in (True, False)}
    # transformers before the rename (5.17) has only gradient_checkpointing
    ckpt = bool(getattr(train_args, "activation_checkpointing", train_args.gradient_checkpointing))
    total = states + act[ckpt]
    lines = [f"memory: model {source}: {counts.total:,} parameters, {counts.trainable:,} trainable",
             f"memory per GPU ({preset}, {world} GPUs): model states {convert_bytes(states)} ({estimator}) + "
             f"activations at {sequences}×{length} tokens {convert_bytes(act[True])} with activation checkpointing, "
             f"{convert_bytes(act[False])} without",
             f"memory per GPU as the recipe runs (activation_checkpointing {str(ckpt).lower()}): {convert_bytes(total)}"]
    lines = [f"llmkit: {line}" for line in lines]
    if total > gpu_memory_gb * GIB:
        lines.append(f"llmkit: warning: {convert_bytes(total)} per GPU is above --gpu_memory_gb {gpu_memory_gb:g}")
    return lines
