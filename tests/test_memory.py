"""Memory per GPU from a model config: parameter counts on an empty model, the libraries' model-state estimates,
and the activation formula, each checked against hand computation for a small Llama config."""

from __future__ import annotations

import pytest
from transformers import LlamaConfig

from llmkit.errors import LlmkitError
from llmkit.memory import Counts, activation_bytes, model_states_bytes, parameter_counts
from llmkit.models import ModelArgs

H, I, LAYERS, VOCAB = 256, 512, 2, 1000
CONFIG = LlamaConfig(hidden_size=H, intermediate_size=I, num_hidden_layers=LAYERS, num_attention_heads=4,
                     num_key_value_heads=4, vocab_size=VOCAB, tie_word_embeddings=False)
# per layer: q,k,v,o (h×h each), gate/up/down (h×i), two RMSNorm weights; plus embeddings, lm_head, final norm
PARAMS = LAYERS * (4 * H * H + 3 * H * I + 2 * H) + 2 * VOCAB * H + H


def test_parameter_counts_match_the_architecture():
    counts = parameter_counts(CONFIG, ModelArgs(model_name_or_path="unused"))
    assert counts == Counts(total=PARAMS, trainable=PARAMS, largest_layer=VOCAB * H)


def test_lora_counts_only_the_adapter_as_trainable():
    args = ModelArgs(model_name_or_path="unused", use_peft=True, lora_r=8, lora_target_modules=["q_proj", "down_proj"])
    counts = parameter_counts(CONFIG, args)
    lora = LAYERS * (8 * (H + H) + 8 * (I + H))  # A: r×in, B: out×r
    assert (counts.total, counts.trainable) == (PARAMS + lora, lora)


def test_a_lora_target_the_model_lacks_is_one_line():
    args = ModelArgs(model_name_or_path="unused", use_peft=True, lora_target_modules=["qkv_proj"])
    with pytest.raises(LlmkitError, match="^lora_target_modules: .*qkv_proj"):
        parameter_counts(CONFIG, args)


def test_model_states_per_preset_by_hand():
    counts = Counts(total=PARAMS, trainable=PARAMS, largest_layer=VOCAB * H)
    # accelerate, mixed precision: fp32 weights 4P, gradients 4P + 2P, Adam 8P
    assert model_states_bytes(counts, "ddp", 8, 1, bf16=True)[0] == 18 * PARAMS
    # DeepSpeed ZeRO-2: 16-bit weights 2P on every GPU, 18P of gradients and optimizer states sharded over 8
    assert model_states_bytes(counts, "zero2", 8, 1, bf16=True)[0] == 2 * PARAMS + int(18 * PARAMS / 8)
    # DeepSpeed ZeRO-3: everything sharded, plus the largest layer gathered in fp32; 2 machines of 4 GPUs
    assert model_states_bytes(counts, "zero3", 8, 2, bf16=True)[0] == 4 * VOCAB * H + int(18 * PARAMS / 8)


def test_frozen_lora_base_is_sharded_only_by_zero3():
    counts = Counts(total=PARAMS + 100, trainable=100, largest_layer=VOCAB * H)
    assert model_states_bytes(counts, "zero2", 4, 1, bf16=True)[0] == 2 * PARAMS + 2 * 100 + int(18 * 100 / 4)
    assert model_states_bytes(counts, "zero3", 4, 1, bf16=True)[0] == 2 * PARAMS / 4 + 4 * VOCAB * H + int(18 * 100 / 4)


def test_activations_by_hand():
    tokens = 3 * 64
    logits = tokens * VOCAB * 4
    assert activation_bytes(CONFIG, 3, 64, False, bf16=True, logits=True) == LAYERS * 34 * tokens * H + logits
    assert activation_bytes(CONFIG, 3, 64, True, bf16=True, logits=True) == (
        LAYERS * 2 * tokens * H + 34 * tokens * H + logits)
    assert activation_bytes(CONFIG, 3, 64, False, bf16=False, logits=False) == 2 * LAYERS * 34 * tokens * H
