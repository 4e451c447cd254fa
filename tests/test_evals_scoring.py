"""Batched answer scoring and batched generation against unbatched, hand-built computations on the tiny model."""

import numpy as np
import pytest
import torch

from llmkit.errors import LlmkitError
from llmkit.evals.generate import HFGenerator, finish_text, get_backend, token_budgets
from llmkit.evals.scoring import answer_logprobs, answer_token_stats


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmkit.tiny import resolve_model_path

    path = resolve_model_path("tiny:llama-xs")
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


PAIRS = [
    ("Question: Who wrote the book?\nAnswer: ", "Jane Doe wrote it."),
    ("Question: Where?\nAnswer: ", "In a small town by the sea, long ago and far away."),
    ("Question: Who wrote the book?\nAnswer: ", "Jane Doe wrote it."),  # duplicate of the first
    ("Q: x\nA: ", "y"),
    ("Question: Where?\nAnswer: ", "Paris."),
]


def reference_logprobs(model, tok, prompt, answer, add_eos=True):
    """Unpadded single-sequence forward, log_softmax over the vocabulary, answer positions picked by hand."""
    prompt_ids = tok(prompt)["input_ids"]
    ids = tok(prompt + answer)["input_ids"] + ([tok.eos_token_id] if add_eos else [])
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.double(), -1)
    start = max(len(prompt_ids), 1)
    return np.array([logp[t - 1, ids[t]].item() for t in range(start, len(ids))])


def test_answer_logprobs_match_unbatched_and_skip_duplicates(tiny):
    model, tok = tiny
    calls = []
    hook = model.register_forward_hook(lambda m, args, kwargs, out: calls.append(kwargs["input_ids"].shape), with_kwargs=True)
    try:
        got = answer_logprobs(model, tok, PAIRS, batch_size=2)
    finally:
        hook.remove()
    assert [c[0] for c in calls] == [2, 2]  # 4 distinct texts in 2 batches; the duplicate is not scored again
    assert calls[0][1] >= calls[1][1]  # longest batch first
    for (prompt, answer), lp in zip(PAIRS, got):
        want = reference_logprobs(model, tok, prompt, answer)
        assert len(lp) == len(tok(prompt + answer)["input_ids"]) - len(tok(prompt)["input_ids"]) + 1  # + EOS
        np.testing.assert_allclose(lp, want, atol=1e-5)


def test_token_stats_match_the_unbatched_distribution(tiny):
    """Greedy match and the vocabulary mean/variance of log p (Min-K%++) from the same pass as the log-probs."""
    model, tok = tiny
    got = answer_token_stats(model, tok, PAIRS, batch_size=3, vocab_stats=True)
    for (prompt, answer), st in zip(PAIRS, got):
        ids = tok(prompt + answer)["input_ids"] + [tok.eos_token_id]
        start = len(tok(prompt)["input_ids"])
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)[start - 1:len(ids) - 1]  # [n, V]
        targets = torch.tensor(ids[start:])
        np.testing.assert_array_equal(st.ids, ids[start:])
        np.testing.assert_array_equal(st.greedy, (logp.argmax(-1) == targets).numpy())
        mean = (logp.exp() * logp).sum(-1)
        np.testing.assert_allclose(st.vocab_mean, mean.numpy(), rtol=1e-5)  # float32 sum over the vocabulary
        np.testing.assert_allclose(st.vocab_var, ((logp.exp() * logp ** 2).sum(-1) - mean ** 2).numpy(), atol=1e-4)
        np.testing.assert_allclose(st.logprob, logp.gather(-1, targets[:, None])[:, 0].numpy(), atol=1e-5)


def test_text_scoring_without_prompt_or_eos(tiny):
    model, tok = tiny
    texts = [("", "A whole document to score token by token."), ("", "Short one.")]
    got = answer_logprobs(model, tok, texts, add_eos=False, batch_size=8)
    for (p, t), lp in zip(texts, got):
        assert len(lp) == len(tok(t)["input_ids"]) - 1  # every token after the first, as MUSE's privleak
        np.testing.assert_allclose(lp, reference_logprobs(model, tok, p, t, add_eos=False), atol=1e-5)


def test_empty_answer_is_one_clear_error(tiny):
    model, tok = tiny
    with pytest.raises(LlmkitError, match="nothing to score"):
        answer_logprobs(model, tok, [("", "a")], add_eos=False)


def test_finish_text_cut_rules(tiny):
    _, tok = tiny
    ids = tok("Paris is nice")["input_ids"] + [tok.eos_token_id] + tok(" garbage")["input_ids"]
    assert finish_text(tok, ids, 100, ()) == "Paris is nice"
    assert finish_text(tok, ids, len(tok("Paris")["input_ids"]), ()) == "Paris"
    qa = tok("Paris.\nQuestion: next")["input_ids"]
    assert finish_text(tok, qa, 100, ("\n\n", "\nQuestion", "Question:")) == "Paris."


def test_finish_text_open_unlearning_decoding(tiny):
    """ou_compat: spaces before punctuation cleaned up (transformers 4.45's clean-up, which 5 skips for BPE), stripped."""
    _, tok = tiny
    ids = tok(" Paris , in France . It is n't far ", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert finish_text(tok, ids, 100, ()) == " Paris , in France . It is n't far "  # today's default is unchanged
    assert finish_text(tok, ids, 100, (), ou_compat=True) == "Paris, in France. It isn't far"


def test_token_budgets():
    assert token_budgets([[1, 2], [1]], 5, None) == [5, 5]
    assert token_budgets([[1, 2], [1] * 9], None, 10) == [8, 1]
    assert token_budgets([[1] * 12], None, 10) == [0]
    with pytest.raises(LlmkitError):
        token_budgets([[1]], 5, 10)


def test_hf_backend_equals_plain_generate_loop(tiny):
    model, tok = tiny
    prompts = [p for p, _ in PAIRS] + ["A much longer prompt that forces left padding of the others in its batch: "]
    stop = ("\n\n", "Question:")
    gen = get_backend("hf", model=model, tokenizer=tok, batch_size=3)
    assert isinstance(gen, HFGenerator)
    got = gen(prompts, max_new_tokens=12, stop=stop)
    # A total-length limit equal to the longest prompt: that prompt gets no budget, the others some.
    limit = max(len(tok(p)["input_ids"]) for p in prompts)
    legacy = gen(prompts, max_length=limit)
    assert any(limit - len(tok(p)["input_ids"]) <= 0 for p in prompts) and not all(legacy[i] == "" for i in range(len(prompts)))
    for i, prompt in enumerate(prompts):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
        assert got[i] == finish_text(tok, out[0, ids.shape[1]:].tolist(), 12, stop), i
        budget = limit - ids.shape[1]
        if budget <= 0:  # the prompt alone is over the total length: nothing is generated
            assert legacy[i] == "", i
            continue
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=budget, do_sample=False, pad_token_id=tok.pad_token_id)
        assert legacy[i] == finish_text(tok, out[0, ids.shape[1]:].tolist(), budget, ()), i


def test_unknown_backend_suggests(tiny):
    model, tok = tiny
    with pytest.raises(LlmkitError, match="did you mean 'vllm'"):
        get_backend("vlm", model=model, tokenizer=tok)


def test_vllm_backend_refuses_a_lora_adapter_directory(tmp_path, tiny, monkeypatch):
    import llmkit.evals.generate as generate

    model, tok = tiny
    monkeypatch.setattr(generate, "vllm_installed", lambda: True)
    monkeypatch.setattr(generate, "vllm_usable", lambda: True)
    with pytest.raises(LlmkitError, match="is a LoRA adapter"):
        get_backend("vllm", model=model, tokenizer=tok, model_path=str(tmp_path), adapter=True)
    auto = get_backend("auto", model=model, tokenizer=tok, model_path=str(tmp_path), adapter=True)
    assert isinstance(auto, HFGenerator)


def test_vocab_statistics_only_when_asked(tiny):
    """The vocabulary mean/variance (Min-K%++ only) are an extra n x V pass: absent unless asked for, and the rest
    of the statistics are the same either way."""
    model, tok = tiny
    full = answer_token_stats(model, tok, PAIRS, batch_size=3, vocab_stats=True)
    lean = answer_token_stats(model, tok, PAIRS, batch_size=3)
    for f, st in zip(full, lean):
        assert f.vocab_mean is not None and f.vocab_var is not None
        assert st.vocab_mean is None and st.vocab_var is None
        np.testing.assert_array_equal(st.ids, f.ids)
        np.testing.assert_array_equal(st.logprob, f.logprob)
        np.testing.assert_array_equal(st.greedy, f.greedy)
