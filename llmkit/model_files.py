"""Model folders and tokenizers: resolve and check a model path, load its tokenizer, tell a LoRA adapter folder.

Apart from llmkit.models (which extends trl's ModelConfig, and importing trl reads the metadata of every installed
package), so that `llmkit eval` needs neither trl nor the training code.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.tiny import resolve_model_path


def _looks_like_local_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).exists() or name.count("/") > 1


def check_model_path(name_or_path: str, field_name: str = "model_name_or_path") -> str:
    """Resolve `tiny:` and fail in one line on a local path that does not exist."""
    if not name_or_path:
        raise LlmkitError(f"missing recipe key {field_name!r}")
    resolved = resolve_model_path(name_or_path)
    if _looks_like_local_path(resolved) and not Path(resolved).expanduser().exists():
        raise LlmkitError(f"{field_name}: {name_or_path} does not exist")
    return resolved


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def check_model_dir(name_or_path: str, field_name: str = "model_name_or_path") -> None:
    """Fail in one line, without loading anything, on a local model folder that cannot load as a full model with
    its tokenizer: a file, a LoRA adapter, a folder without config, weights or tokenizer files. Hub ids pass."""
    path = Path(check_model_path(name_or_path, field_name)).expanduser()
    if not path.exists():
        return
    if path.is_file():
        raise LlmkitError(f"{field_name}: {name_or_path} is a file; give the model's folder")
    if is_peft_dir(path) and not (path / "config.json").is_file():
        base = json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
        raise LlmkitError(f"{field_name}: {name_or_path} is a LoRA adapter, not a model; train from its base model "
                          f"({base}), or merge the adapter into full weights first")
    if not (path / "config.json").is_file():
        raise LlmkitError(f"{field_name}: {name_or_path} has no config.json; it is not a model folder")
    if not any(next(path.glob(pattern), None) for pattern in _WEIGHT_PATTERNS):
        raise LlmkitError(f"{field_name}: {name_or_path} holds no weights (model.safetensors or pytorch_model.bin)")
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise LlmkitError(f"{field_name}: {name_or_path} holds no tokenizer ({', '.join(_TOKENIZER_FILES)})")


def check_dtype(dtype: str | None, field_name: str = "dtype") -> None:
    """`auto`, null or the name of a torch floating-point dtype (float32, bfloat16, float16)."""
    if dtype in (None, "auto"):
        return
    import torch

    if not (isinstance(getattr(torch, str(dtype), None), torch.dtype) and getattr(torch, dtype).is_floating_point):
        raise LlmkitError(f"{field_name}: {dtype!r} is not a torch floating-point dtype "
                          "(auto, float32, bfloat16, float16)")


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """The tokenizer, with a pad token guaranteed (EOS when the checkpoint has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(check_model_path(name_or_path), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def is_peft_dir(path: str | Path) -> bool:
    """True for a directory holding a LoRA adapter rather than full weights."""
    return (Path(path) / "adapter_config.json").is_file()
