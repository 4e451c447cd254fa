"""The embedded default model: a tiny random-init Llama with a byte-level BPE tokenizer trained on bundled text.

Why a locally trained tokenizer rather than a real one from PyPI (Qwen's 151k or Mistral's 32k vocabulary):
the output layer of a 128-wide model over 32k tokens costs ~5x the whole transformer per token, which would push
the CPU demo past its time budget, while a ~2k vocabulary trained on the bundled text keeps the demo fast and
still tokenises any input (byte-level). The model is big enough to memorise tofu-mini (measured in the demo).

`tiny:<preset>` is accepted wherever a model path is: `resolve_model_path` builds it once into the cache
(deterministic: fixed seeds), under a file lock so that several ranks can ask at the same time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from llmkit.errors import LlmkitError, did_you_mean

ASSETS = Path(__file__).parent / "assets"
SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML-style; {% generation %} marks assistant tokens so TRL's assistant_only_loss also works.
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<|im_start|>assistant\n{% generation %}"
    "{{ m['content'] }}<|im_end|>{% endgeneration %}\n{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PRESETS = {
    # hidden 128 / 4 layers memorises tofu-mini in a few CPU minutes; head_dim 32.
    "llama": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4),
    # for the fastest tests
    "llama-xs": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
    # head_dim 64: the smallest that vLLM's CPU attention accepts (tests/test_vllm_backend.py)
    "llama-vllm": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2),
}
VOCAB_SIZE = 2048
# What a usable build holds; a cached directory that lacks one of them is rebuilt, not trusted.
BUILT_FILES = ("config.json", "model.safetensors", "tokenizer.json")
BUILD_VERSION = 1  # bump when the build recipe changes, so caches rebuild


def bundled_texts() -> list[str]:
    """All strings in the bundled assets (JSONL fields, text lines), in a fixed order: the tokenizer's corpus."""
    texts: list[str] = []

    def collect(value):
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    for path in sorted(ASSETS.rglob("*")):
        if path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                collect(json.loads(line))
        elif path.suffix == ".txt":
            texts.extend(path.read_text(encoding="utf-8").splitlines())
    return texts


def build_tokenizer(texts: list[str], vocab_size: int = VOCAB_SIZE):
    """Train a byte-level BPE on `texts` and wrap it as an HF fast tokenizer with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts or ["llmkit"], trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>", bos_token="<|endoftext|>"
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build_tiny(out_dir: str | Path, preset: str = "llama", seed: int = 0) -> Path:
    """Build the tiny model + tokenizer into `out_dir` (saved with save_pretrained); returns the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if preset not in PRESETS:
        raise LlmkitError(f"unknown tiny preset {preset!r}{did_you_mean(preset, PRESETS)}")
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(bundled_texts())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **PRESETS[preset],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    # Under torch.distributed, save_pretrained writes nothing on ranks other than 0 (the tokenizer would be saved
    # alone), but the rank that builds the shared cache is whichever takes the lock first.
    model.should_save_on_this_rank = lambda is_main_process: is_main_process
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if not is_built(out_dir):
        raise LlmkitError(f"tiny model build: {out_dir} lacks one of {', '.join(BUILT_FILES)} after saving")
    return out_dir


def is_built(path: str | Path) -> bool:
    """True when `path` holds a whole tiny model: config, weights and tokenizer."""
    return all((Path(path) / name).is_file() for name in BUILT_FILES)


def cache_dir() -> Path:
    """Where `tiny:` models are built: $LLMKIT_CACHE or ~/.cache/llmkit."""
    return Path(os.environ.get("LLMKIT_CACHE", Path.home() / ".cache" / "llmkit"))


def resolve_model_path(name_or_path: str) -> str:
    """Turn `tiny:<preset>` into a built local path; anything else is returned unchanged."""
    if not name_or_path.startswith("tiny:"):
        return name_or_path
    from filelock import FileLock

    preset = name_or_path.split(":", 1)[1] or "llama"
    # The tokenizer is trained on the bundled text, so the cache key covers it as well as the build recipe.
    digest = hashlib.sha256("\n".join(bundled_texts()).encode()).hexdigest()[:10]
    target = cache_dir() / "tiny" / f"{preset}-v{BUILD_VERSION}-{digest}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not is_built(target):
            # e.g. the tokenizer-only directory that a build on a torch.distributed rank != 0 used to leave
            shutil.rmtree(target, ignore_errors=True)
            # Built aside and renamed into place, so no process ever sees a half-written model directory.
            staging = target.with_name(target.name + f".building-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            build_tiny(staging, preset)
            os.replace(staging, target)
    return str(target)


def build_tiny_reranker(out_dir: str | Path, preset: str = "llama-xs", seed: int = 0) -> Path:
    """A random-init cross-encoder (the tiny tokenizer, a one-label LlamaForSequenceClassification) saved where
    `sentence_transformers.CrossEncoder(out_dir)` loads it: the offline stand-in for a reranker in tests and
    scripts/bench/embed_mining.py. Its scores mean nothing, but they are a real CrossEncoder's, computed as one.
    """
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer = build_tokenizer(bundled_texts())
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=512, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, **PRESETS[preset])
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():
        model.score.weight.mul_(5.0)  # logits of std ~0.8 rather than ~0.16: sigmoid scores spread over (0, 1)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)
