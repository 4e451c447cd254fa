"""Load a causal LM and its tokenizer from a local path, a hub id or `tiny:<preset>`, with optional LoRA."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from trl import ModelConfig

from llmkit.errors import LlmkitError
from llmkit.tiny import resolve_model_path


@dataclass
class ModelArgs(ModelConfig):
    """TRL's model options (path, dtype, attention, LoRA) plus the few llmkit adds."""

    trust_remote_code: bool = field(default=False, metadata={"help": "run code shipped with the checkpoint"})
    merge_lora: bool = field(default=False, metadata={"help": "merge the LoRA adapter into final/ (full weights)"})


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


def lora_config(args: ModelArgs):
    """The peft LoraConfig for `args`, or None when LoRA is off."""
    if not args.use_peft:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.lora_target_modules or "all-linear",
        modules_to_save=args.lora_modules_to_save,
        use_rslora=args.use_rslora,
        use_dora=args.use_dora,
        task_type="CAUSAL_LM",
    )


def load_causal_lm(args: ModelArgs, with_lora: bool = True):
    """AutoModelForCausalLM with the recipe's dtype and attention implementation, LoRA-wrapped on request."""
    import torch
    from transformers import AutoModelForCausalLM

    path = check_model_path(args.model_name_or_path)
    dtype = args.dtype if args.dtype in (None, "auto") else getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(
        path,
        revision=args.model_revision,
        dtype=dtype,
        attn_implementation=args.attn_implementation,
        trust_remote_code=args.trust_remote_code,
    )
    peft_config = lora_config(args) if with_lora else None
    if peft_config is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft_config)
    return model


def is_peft_dir(path: str | Path) -> bool:
    """True for a directory holding a LoRA adapter rather than full weights."""
    return (Path(path) / "adapter_config.json").is_file()


def merge_adapter_dir(adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Load base + adapter from disk, merge, and save full weights that load with from_pretrained."""
    from peft import AutoPeftModelForCausalLM

    model = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir))
    merged = model.merge_and_unload()
    merged.save_pretrained(out_dir)
    return Path(out_dir)
