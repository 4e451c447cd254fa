"""The decoder embedder: EOS kept through truncation, pooling against the raw backbone, attention switch, LoRA save."""

import pytest
import torch
import torch.nn.functional as F

from llmkit.embed.model import append_eos_after_truncation, build_embedder, embedding_lora, merge_lora
from llmkit.errors import LlmkitError

LONG = "a long text that the tokenizer has to cut well before its end " * 8


@pytest.fixture(scope="module")
def causal():
    return build_embedder("tiny:llama-xs", max_seq_length=16, device="cpu")


def test_eos_survives_truncation_with_left_padding(causal):
    tok = causal[0].tokenizer
    feats = causal.preprocess(["hi", LONG])
    assert feats["input_ids"].shape[1] == 16
    assert feats["input_ids"][:, -1].tolist() == [tok.eos_token_id] * 2
    assert feats["attention_mask"][0, 0] == 0  # left padding
    # appending again does not add a second EOS
    append_eos_after_truncation(tok)
    ids = tok("hi")["input_ids"]
    assert ids[-1] == tok.eos_token_id and ids[-2] != tok.eos_token_id


def _backbone_states(model, texts):
    feats = model.preprocess(texts)
    with torch.no_grad():
        h = model[0].auto_model(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"]).last_hidden_state
    return h, feats["attention_mask"]


def test_eos_pooling_is_the_normalised_last_hidden_state(causal):
    texts = ["hi", "hello world", LONG]
    h, _ = _backbone_states(causal, texts)
    expected = F.normalize(h[:, -1], dim=-1)
    got = causal.encode(texts, convert_to_tensor=True)
    assert torch.allclose(got, expected, atol=1e-5)
    # padding does not change an embedding
    alone = causal.encode(["hi"], convert_to_tensor=True)
    assert torch.allclose(alone[0], got[0], atol=1e-5)


def test_mean_pooling_and_bidirectional_attention():
    bi = build_embedder("tiny:llama-xs", pooling="mean", attention="bidirectional", device="cpu")
    texts = ["hi", "hello world"]
    h, mask = _backbone_states(bi, texts)
    m = mask.unsqueeze(-1).float()
    expected = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    assert torch.allclose(bi.encode(texts, convert_to_tensor=True), expected, atol=1e-5)

    def first_token_shift(model):
        x, y = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[5, 6, 7, 9]])
        with torch.no_grad():
            hx = model[0].auto_model(input_ids=x).last_hidden_state[0, 0]
            hy = model[0].auto_model(input_ids=y).last_hidden_state[0, 0]
        return (hx - hy).abs().max().item()

    assert first_token_shift(bi) > 1e-3  # the first token sees the last one
    assert first_token_shift(build_embedder("tiny:llama-xs", device="cpu")) == 0.0


def test_lora_trains_only_adapters_and_merged_save_reloads(tmp_path):
    from sentence_transformers import SentenceTransformer

    model = build_embedder("tiny:llama-xs", lora=embedding_lora(r=4, alpha=8), device="cpu")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.1)  # B starts at zero: make the adapter do something
    before = model.encode(["hello there", LONG], convert_to_tensor=True)
    merge_lora(model)
    model.save(str(tmp_path / "final"))
    reloaded = SentenceTransformer(str(tmp_path / "final"), device="cpu")
    assert torch.allclose(reloaded.encode(["hello there", LONG], convert_to_tensor=True), before, atol=1e-5)
    feats = reloaded.preprocess([LONG])
    assert feats["input_ids"][0, -1] == reloaded[0].tokenizer.eos_token_id


def test_unknown_switch_suggests():
    with pytest.raises(LlmkitError, match="did you mean 'bidirectional'"):
        build_embedder("tiny:llama-xs", attention="bidirectinal")
    # the whole line, as the recipe check in llmkit.embed.task words it too
    with pytest.raises(LlmkitError) as err:
        build_embedder("tiny:llama-xs", pooling="meen")
    assert str(err.value) == "pooling: unknown value 'meen'; did you mean 'mean'? (choices: eos, mean)"


def test_model_options_reach_the_backbone():
    """attn_implementation (e.g. flash_attention_2 on GPU) is passed to transformers, not dropped."""
    eager = build_embedder("tiny:llama-xs", max_seq_length=16, attn_implementation="eager", device="cpu")
    assert eager[0].auto_model.config._attn_implementation == "eager"
    assert build_embedder("tiny:llama-xs", max_seq_length=16, device="cpu")[0].auto_model.config._attn_implementation == "sdpa"


def test_query_and_document_lengths_are_separate():
    model = build_embedder("tiny:llama-xs", max_seq_length=16, query_max_length=40, device="cpu")
    long = ["word " * 100]
    query, doc = model[0].preprocess(long, task="query"), model[0].preprocess(long, task="document")
    assert query["input_ids"].shape[1] == 40 and doc["input_ids"].shape[1] == 16
    assert query["input_ids"][0, -1] == doc["input_ids"][0, -1] == model[0].tokenizer.eos_token_id
