"""LlmkitEncoder encodes all of mteb's DataLoader in one length-sorted `encode` call: rows stay in input order and
equal each text encoded on its own (no padding effect from the wider, sorted batches)."""

import numpy as np
import torch


def _loader(texts, batch_size):
    from datasets import Dataset
    from mteb._create_dataloaders import create_dataloader

    from llmkit.evals.mteb import local_tasks

    meta = next(t.metadata for t in local_tasks() if t.metadata.type == "Clustering")
    loader = create_dataloader(Dataset.from_dict({"text": texts}), task_metadata=meta, input_column="text",
                               batch_size=batch_size)
    return loader, meta


def test_one_encode_call_with_mteb_batch_size_in_input_order():
    from llmkit.evals.mteb import LlmkitEncoder

    class Recorder:
        """Embeds text i as [len(text), first char code]; remembers each call."""

        calls = []

        def encode(self, texts, batch_size, **kwargs):
            self.calls.append((list(texts), batch_size))
            return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float64)

    texts = [f"{chr(97 + i % 26)}" * (1 + (7 * i) % 13) for i in range(10)]
    loader, meta = _loader(texts, batch_size=3)
    encoder = LlmkitEncoder.__new__(LlmkitEncoder)  # encode() needs the model and the prompt switch only
    encoder.model, encoder.format, encoder.instructions, encoder.examples_dir = Recorder(), "none", {}, None
    got = encoder.encode(loader, task_metadata=meta, hf_split="test", hf_subset="default", batch_size=3)
    assert Recorder.calls == [(texts, 3)]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[len(t), ord(t[0])] for t in texts])


def test_eos_embedder_rows_equal_single_text_encodes():
    from llmkit.embed.model import build_embedder
    from llmkit.evals.mteb import LlmkitEncoder

    model = build_embedder("tiny:llama-xs", max_seq_length=64, device="cpu")
    texts = ["a b c d e f g h i j k", "hi", "the quick brown fox", "x y", "one two three four five six", "z"]
    loader, meta = _loader(texts, batch_size=4)
    encoder = LlmkitEncoder(model, name="tiny", revision="test", prompts="none")
    with torch.inference_mode():
        got = encoder.encode(loader, task_metadata=meta, hf_split="test", hf_subset="default", batch_size=4)
        alone = np.stack([model.encode([t], normalize_embeddings=True)[0] for t in texts])
    np.testing.assert_allclose(got, alone, atol=1e-5)
