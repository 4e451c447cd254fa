"""Load a causal LM and its tokenizer from a local path, a hub id or `tiny:<preset>`, with optional LoRA."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import ModelConfig

# the path and tokenizer helpers live apart, so that `llmkit eval` uses them without importing trl; re-exported here
from llmkit.model_files import (_looks_like_local_path, check_dtype, check_model_dir, check_model_path,  # noqa: F401
                                is_peft_dir, load_tokenizer)


@dataclass
class ModelArgs(ModelConfig):
    """TRL's model options (path, dtype, attention, LoRA) plus the few llmkit adds."""

    trust_remote_code: bool = field(default=False, metadata={"help": "run code shipped with the checkpoint"})
    merge_lora: bool = field(default=False, metadata={"help": "merge the LoRA adapter into final/ (full weights)"})


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


def merge_adapter_dir(adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Load base + adapter from disk, merge, and save full weights that load with from_pretrained."""
    from peft import AutoPeftModelForCausalLM

    model = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir))
    merged = model.merge_and_unload()
    merged.save_pretrained(out_dir)
    return Path(out_dir)
