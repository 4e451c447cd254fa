"""Shared fixtures: one tiny model per test session, built on demand; small recipes written to tmp dirs."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

# Before torch/transformers are imported anywhere: one thread (2 threads collapse under contention), no hub.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
# A per-session cache, so a stale tiny model from an older build recipe can never be picked up.
os.environ.setdefault("LLMKIT_CACHE", tempfile.mkdtemp(prefix="llmkit-test-cache-"))

REPO = Path(__file__).resolve().parent.parent


def load_script(relative: str):
    """A script of the repository (scripts/...py) imported as a module, for tests of its functions."""
    import importlib.util

    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    """The smallest tiny preset (hidden 64, 2 layers), built once per session."""
    from llmkit.tiny import resolve_model_path

    return resolve_model_path("tiny:llama-xs")


def finetune_recipe(tmp_path: Path, **overrides) -> Path:
    """A fast fine-tune recipe on tofu-mini with the tiny model; keys in `overrides` replace the defaults."""
    recipe = {
        "task": "finetune",
        "model_name_or_path": "tiny:llama-xs",
        "dataset": "tofu-mini",
        "dataset_config": "forget10",
        "max_length": 96,
        "global_batch_size": 8,
        "per_device_train_batch_size": 8,
        "max_steps": 4,
        "learning_rate": 3e-3,
        "lr_scheduler_type": "linear",
        "activation_checkpointing": False,
    }
    return write_recipe(tmp_path, recipe | overrides)


def write_recipe(tmp_path: Path, recipe: dict) -> Path:
    """tmp_path/recipe.yaml: `recipe` over the settings every fast CPU test run shares."""
    shared = {"bf16": False, "logging_steps": 1, "save_strategy": "no", "seed": 7,
              "output_root": str(tmp_path / "runs"), "dataloader_num_workers": 0}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(shared | recipe))
    return path


def stop_at(step: int):
    """A Trainer callback that ends training after `step` steps, as a kill right after that step would."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= step:
                control.should_training_stop = True
            return control

    return StopAt()


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """checkpoint-<step> folders of a run that carry the COMPLETE marker, oldest first."""
    marked = [p for p in Path(run_dir).glob("checkpoint-*") if (p / "COMPLETE").is_file()] if Path(run_dir).is_dir() else []
    return sorted(marked, key=lambda p: int(p.name.split("-")[1]))


def python_env() -> dict:
    """Environment for subprocesses: this interpreter's venv first on PATH, repo importable."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_path):
    from llmkit.models import load_tokenizer

    return load_tokenizer(tiny_model_path)


@pytest.fixture(scope="session")
def forget_rows():
    from llmkit.data import load_split

    return list(load_split("tofu-mini", "forget10"))


@pytest.fixture(scope="session")
def target_path(tiny_model_path, tiny_tokenizer, forget_rows, tmp_path_factory):
    """The tiny model after plain next-token training on the forget answers: a target that knows what to forget."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmkit.data import QADataArgs
    from llmkit.unlearn.data import UnlearnCollator, UnlearnDataset, qa_examples

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    dataset = UnlearnDataset(tiny_tokenizer, qa_examples(tiny_tokenizer, forget_rows, QADataArgs()),
                             frozenset({"forget"}), max_length=96, add_special_tokens=False)
    batch = UnlearnCollator(tiny_tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = model(input_ids=batch["forget_input_ids"], attention_mask=batch["forget_attention_mask"],
                     labels=batch["forget_labels"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    path = tmp_path_factory.mktemp("target")
    model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return str(path)


def answer_prob(model, tokenizer, question: str, answer: str) -> float:
    """Mean answer-token probability of one QA pair, computed directly (chat prompt, EOS appended)."""
    import torch

    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                           tokenize=False)
    start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)  # [T, V]
    return float(torch.stack([logp[t - 1, ids[t]].exp() for t in range(start, len(ids))]).mean())


@pytest.fixture(scope="session")
def pretrain_corpus(tmp_path_factory) -> Path:
    """A small raw-text corpus (one JSONL row per document): the tofu-mini answers, as pre-training documents."""
    import json

    from llmkit.data import load_split

    rows = load_split("tofu-mini", "full")
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": f"{r['question']} {r['answer']}"}) + "\n" for r in rows))
    return path


def pretrain_recipe(tmp_path: Path, corpus: Path, **overrides) -> Path:
    """A fast `task: pretrain` recipe on `corpus` with the tiny model; keys in `overrides` replace the defaults."""
    recipe = {
        "task": "pretrain",
        "model_name_or_path": "tiny:llama-xs",
        "dataset": str(corpus),
        "block_size": 32,
        "eval_fraction": 0.1,
        "max_eval_blocks": 8,
        "lr_schedule": "cosine:peak=3e-3,steps=4,warmup=2,min=3e-4",
        "global_batch_size": 4,
        "per_device_train_batch_size": 4,
        "eval_strategy": "steps",
        "eval_steps": 2,
    }
    return write_recipe(tmp_path, recipe | overrides)
