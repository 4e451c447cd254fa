"""The embedder: any HF decoder LM as a sentence-transformers model (+ LoRA), EOS pooling, L2 norm.

Stands on sentence-transformers 6 (`Transformer`, `Pooling("lasttoken" | "mean")`, `Normalize`) and peft.
What llmkit adds:
- the tokenizer's post-processor appends the EOS id, so truncation makes room for it and it is never cut
  (appending the EOS *string* to the text loses it on long inputs, mteb#3217); left padding. The change is
  saved in tokenizer.json, so a saved model loads with a plain `SentenceTransformer(path)`;
- plain-text inputs: ST would otherwise route strings through the tokenizer's chat template, which wraps
  them in role tokens and puts a newline after the EOS;
- bidirectional attention: in transformers 5.24 `config_kwargs={"is_causal": False}` is dropped at load and
  the attention modules keep `is_causal=True` (SDPA then masks causally whenever there is no padding), so
  both the config flag and every module flag are set after loading;
- LoRA through `peft.get_peft_model` on the backbone: `SentenceTransformer.add_adapter` goes through
  transformers' PEFT integration, which asks for peft >= 0.22 (the stack pins 0.21.2). `merge_lora` folds
  the adapter in before saving a final model.
"""

from __future__ import annotations

from llmkit.errors import LlmkitError, choice


def append_eos_after_truncation(tokenizer):
    """Make a fast tokenizer end every sequence with EOS, inside max_length; left padding. Idempotent."""
    from tokenizers import processors

    if tokenizer.eos_token_id is None:
        raise LlmkitError(f"tokenizer {tokenizer.name_or_path}: has no eos_token, needed for EOS pooling")
    tokenizer.padding_side = "left"
    if tokenizer("a")["input_ids"][-1] == tokenizer.eos_token_id:
        return tokenizer
    eos = tokenizer.eos_token
    template = processors.TemplateProcessing(
        single=f"$A:0 {eos}:0", pair=f"$A:0 {eos}:0 $B:1 {eos}:1", special_tokens=[(eos, tokenizer.eos_token_id)]
    )
    backend = tokenizer.backend_tokenizer
    # Keep what the tokenizer already adds (a BOS, byte-level offsets); the EOS goes after it.
    backend.post_processor = processors.Sequence([backend.post_processor, template]) if backend.post_processor else template
    return tokenizer


def build_embedder(model_name_or_path: str, *, pooling: str = "eos", attention: str = "causal",
                   max_seq_length: int = 512, query_max_length: int | None = None, lora=None, dtype: str | None = None,
                   device: str | None = None, attn_implementation: str | None = None, revision: str | None = None,
                   trust_remote_code: bool = False):
    """A SentenceTransformer over a decoder LM: EOS (or mean) pooling, causal (or bidirectional) attention, L2 norm.

    Documents are cut at `max_seq_length` tokens, queries at `query_max_length` (default the same): ST's
    per-task lengths, applied by `encode_query` / `encode_document` and, in training, by the column-to-task
    mapping; a call with no task gets the larger window. `lora` is a peft LoraConfig (task_type
    FEATURE_EXTRACTION) or None. `attn_implementation` (sdpa | eager | flash_attention_2 ...), `revision` and
    `trust_remote_code` reach transformers' loaders as in `load_causal_lm`.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from llmkit.models import check_model_path

    mode = choice("pooling", pooling, POOLING)
    attention_overrides = choice("attention", attention, ATTENTION)
    hub = {"revision": revision, "trust_remote_code": trust_remote_code}  # for the model, its config and its tokenizer
    model_kwargs = {**hub, **({} if dtype in (None, "auto") else {"dtype": getattr(torch, dtype)}),
                    **({"attn_implementation": attn_implementation} if attn_implementation else {})}
    query_max_length = query_max_length or max_seq_length
    backbone = Transformer(check_model_path(model_name_or_path), max_seq_length=max(max_seq_length, query_max_length),
                           query_length=query_max_length, document_length=max_seq_length,
                           model_kwargs=model_kwargs, processor_kwargs=dict(hub), config_kwargs=dict(hub),
                           modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
                           module_output_name="token_embeddings")
    if attention_overrides.get("is_causal") is False or getattr(backbone.auto_model.config, "is_causal", True) is False:
        make_bidirectional(backbone.auto_model)
    tokenizer = backbone.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    append_eos_after_truncation(tokenizer)
    model = SentenceTransformer(
        modules=[backbone, Pooling(backbone.get_embedding_dimension(), pooling_mode=mode), Normalize()],
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        similarity_fn_name="cosine",
    )
    if lora is not None:
        from peft import get_peft_model

        backbone.model = get_peft_model(backbone.model, lora)  # `auto_model` is a read-only view of `model`
    return model


def make_bidirectional(backbone) -> None:
    """Turn off the causal mask: the config flag (mask creation, saved) and each attention module's flag (SDPA)."""
    backbone.config.is_causal = False
    for module in backbone.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False


def merge_lora(model) -> None:
    """Fold a LoRA adapter into the backbone weights in place, so `model.save` writes plain weights.

    Under ZeRO-3 every rank holds a shard of each weight (an empty tensor in its place), so the merge runs on the
    gathered weights, on every rank, and rank 0's result is partitioned again: merging the placeholders folded
    nothing in, and final/ held the base model's weights."""
    from contextlib import nullcontext

    from transformers.integrations import is_deepspeed_zero3_enabled

    backbone = model[0]
    if not hasattr(backbone.model, "merge_and_unload"):
        return
    gathered = nullcontext()
    if is_deepspeed_zero3_enabled():
        import deepspeed

        gathered = deepspeed.zero.GatheredParameters(list(backbone.model.parameters()), modifier_rank=0)
    with gathered:
        backbone.model = backbone.model.merge_and_unload()


def embedding_lora(r: int = 32, alpha: int = 64, dropout: float = 0.1, target_modules="all-linear"):
    """peft LoraConfig for an embedder (spec defaults: r 32, alpha 64, dropout 0.1, all linear layers)."""
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=r, lora_alpha=alpha, lora_dropout=dropout,
                      target_modules=target_modules)


# recipe value -> sentence-transformers Pooling mode
POOLING = {"eos": "lasttoken", "mean": "mean"}
# recipe value -> backbone config overrides
ATTENTION = {"causal": {}, "bidirectional": {"is_causal": False}}
