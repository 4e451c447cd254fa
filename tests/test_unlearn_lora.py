"""FLAT unlearning with LoRA (`use_peft: true`) end to end on the tiny model: only the adapter trains, the merged
final/ equals base + scale·B·A computed by hand, the adapter directory loads for evaluation, a recipe seed fixes
the adapter's initialisation, and the objective moves P_f down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import answer_prob
from safetensors.torch import load_file

from llmkit.train import main as train_main
from llmkit.unlearn import train as unlearn_train

LORA_R, LORA_ALPHA = 4, 8
SCALE = LORA_ALPHA / LORA_R  # peft's scaling without rslora
# all-linear on the tiny llama: every projection, lm_head excluded
TARGETS = {"self_attn": ("q_proj", "k_proj", "v_proj", "o_proj"), "mlp": ("gate_proj", "up_proj", "down_proj")}


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits  # [1, T, V]


@pytest.fixture(scope="module")
def probe(tiny_tokenizer, forget_rows) -> torch.Tensor:
    """A fixed input: the first forget question and answer, [1, T]."""
    r = forget_rows[0]
    return torch.tensor([tiny_tokenizer(r["question"] + " " + r["answer"])["input_ids"]])


@pytest.fixture(scope="module")
def runs(target_path, tmp_path_factory) -> dict:
    """Two FLAT-KL LoRA runs from one recipe, back to back in one process, differing only in merge_lora.

    Returns {name: (run dir, the trained in-memory PeftModel)}."""
    tmp = tmp_path_factory.mktemp("lora")
    trained = []
    real_load = unlearn_train.load_causal_lm
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(unlearn_train, "load_causal_lm", lambda *a, **k: trained.append(real_load(*a, **k)) or trained[-1])
        for name, merge in (("adapter", False), ("merged", True)):
            recipe = {
                "task": "unlearn", "model_name_or_path": target_path, "dataset": "tofu-mini",
                "dataset_config": "forget10", "prompt_format": "chat", "loss": "flat", "divergence": "kl",
                "max_length": 96, "global_batch_size": 60, "per_device_train_batch_size": 60, "max_steps": 6,
                "learning_rate": 3e-3, "lr_scheduler_type": "constant", "logging_steps": 1, "save_strategy": "no",
                "use_cpu": True, "seed": 3, "output_root": str(tmp / "runs"), "dataloader_num_workers": 0,
                "use_peft": True, "lora_r": LORA_R, "lora_alpha": LORA_ALPHA, "lora_dropout": 0.0,
                "merge_lora": merge,
            }
            path = tmp / f"{name}.yaml"
            path.write_text(yaml.safe_dump(recipe))
            assert train_main([str(path)]) == 0
            out[name] = (tmp / "runs" / name, trained[-1])
    return out


def lora_layers(model) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{base weight name: (A [r, in], B [out, r])} of a trained PeftModel, read from its parameters."""
    params = dict(model.named_parameters())
    layers = {}
    for name, a in params.items():
        if ".lora_A.default." in name:
            key = name.removeprefix("base_model.model.").replace(".lora_A.default.weight", ".weight")
            layers[key] = (a.detach(), params[name.replace("lora_A", "lora_B")].detach())
    return layers


def test_only_the_adapter_trains(runs, target_path):
    from peft import get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    run_dir, model = runs["adapter"]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    layers = lora_layers(model)
    n_layers = model.config.num_hidden_layers
    assert sorted(layers) == sorted(f"model.layers.{i}.{block}.{proj}.weight" for i in range(n_layers)
                                    for block, projs in TARGETS.items() for proj in projs)
    # B starts at zero, so a non-zero B is the adapter having trained
    assert all(b.abs().max() > 0 for _, b in layers.values())

    # every base weight after training is bit-identical to the target checkpoint
    start = AutoModelForCausalLM.from_pretrained(target_path).state_dict()
    after = {k.replace(".base_layer", ""): v for k, v in model.get_base_model().state_dict().items()
             if "lora_" not in k}
    assert sorted(after) == sorted(start)
    assert all(torch.equal(start[k], after[k]) for k in start)

    # final/ is the adapter alone, holding exactly the trained LoRA matrices
    final = run_dir / "final"
    assert (final / "adapter_config.json").is_file() and not (final / "model.safetensors").exists()
    config = json.loads((final / "adapter_config.json").read_text())
    assert config["r"] == LORA_R and config["lora_alpha"] == LORA_ALPHA
    assert Path(config["base_model_name_or_path"]) == Path(target_path)
    saved = load_file(final / "adapter_model.safetensors")
    expected = get_peft_model_state_dict(model)
    assert sorted(saved) == sorted(expected) and all(".lora_" in k for k in saved)
    assert all(torch.equal(saved[k], expected[k]) for k in saved)


def test_merge_lora_gives_plain_weights_equal_to_base_plus_adapter(runs, target_path, probe):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir, model = runs["merged"]
    final = run_dir / "final"
    assert not (final / "adapter_config.json").exists() and (final / "config.json").is_file()
    assert (final / "COMPLETE").is_file()
    merged, info = AutoModelForCausalLM.from_pretrained(final, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]

    # weights by hand: W = W0 + (alpha / r) · B · A on LoRA layers, W0 everywhere else
    start = AutoModelForCausalLM.from_pretrained(target_path).state_dict()
    weights = merged.state_dict()
    layers = lora_layers(model)
    assert sorted(weights) == sorted(start)
    for key, w0 in start.items():
        if key in layers:
            a, b = layers[key]
            assert not torch.allclose(weights[key], w0)
            torch.testing.assert_close(weights[key], w0 + SCALE * b @ a, atol=1e-6, rtol=1e-5)
        else:
            assert torch.equal(weights[key], w0), key

    # logits: the merged checkpoint = the trained model with its adapter applied unmerged
    torch.testing.assert_close(logits(merged, probe), logits(model, probe), atol=1e-5, rtol=1e-4)
    # ... and = peft's own base + adapter, built from the other run's saved adapter (same recipe and seed)
    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(target_path), runs["adapter"][0] / "final")
    torch.testing.assert_close(logits(merged, probe), logits(adapter, probe), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits(merged, probe), logits(adapter.merge_and_unload(), probe), atol=1e-5, rtol=1e-4)


def test_recipe_seed_fixes_the_lora_initialisation(runs):
    """Two runs of one recipe in one process train the same adapter: the LoRA matrices are drawn after seeding."""
    first, second = lora_layers(runs["adapter"][1]), lora_layers(runs["merged"][1])
    assert sorted(first) == sorted(second)
    for key in first:
        assert torch.equal(first[key][0], second[key][0]) and torch.equal(first[key][1], second[key][1]), key


def test_evaluation_loads_the_adapter_directory(runs, probe, tmp_path):
    from transformers import AutoModelForCausalLM

    from llmkit.evals.cli import load_model
    from llmkit.models import is_peft_dir, merge_adapter_dir

    run_dir, model = runs["adapter"]
    final = run_dir / "final"
    assert is_peft_dir(final) and not is_peft_dir(runs["merged"][0] / "final")
    loaded, tok = load_model(str(final))
    assert tok.pad_token_id is not None
    expected = logits(model, probe)
    torch.testing.assert_close(logits(loaded, probe), expected, atol=1e-5, rtol=1e-4)
    merged = AutoModelForCausalLM.from_pretrained(merge_adapter_dir(final, tmp_path / "merged"))
    torch.testing.assert_close(logits(merged, probe), expected, atol=1e-5, rtol=1e-4)


def test_flat_with_lora_lowers_p_forget(runs, target_path, tiny_tokenizer, forget_rows):
    """Whole forget set per step: the first logged P_f is the target's, computed directly (B starts at zero); the
    loss and P_f fall over the run, and P_f computed directly on final/ is below the target's."""
    from transformers import AutoModelForCausalLM

    run_dir, _ = runs["merged"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7))
    for r in rows:  # KL: loss = −P_e + exp(P_f − 1); the logged terms add up to the logged loss
        assert r["loss"] == pytest.approx(r["term_forget"] + r["term_template"], rel=1e-5, abs=1e-6)
    assert rows[-1]["loss"] < rows[0]["loss"] and rows[-1]["p_forget"] < rows[0]["p_forget"], rows

    def mean_p_forget(path) -> float:
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        return sum(answer_prob(model, tiny_tokenizer, r["question"], r["answer"]) for r in forget_rows) / len(forget_rows)

    before, after = mean_p_forget(target_path), mean_p_forget(run_dir / "final")
    assert rows[0]["p_forget"] == pytest.approx(before, rel=1e-4)
    assert after < before, (before, after)


def test_merged_final_evaluates_the_same_as_the_adapter(runs, tmp_path):
    """TOFU forget10 on tofu-mini through `llmkit eval`: the adapter final/ (merged on load for evaluation) and the
    merge_lora final/ of the same recipe and seed give the same summary, metric by metric. Forget quality needs a
    retain model's reference, so the retain-free metrics are compared, the generated-text ones (ROUGE) included."""
    from llmkit.evals.cli import main as eval_main
    from llmkit.report import read_summaries

    suite = Path(__file__).resolve().parent.parent / "eval" / "tofu_forget10.yaml"
    summaries = {}
    for name in ("adapter", "merged"):
        out = tmp_path / name
        assert eval_main([str(suite), "--model", str(runs[name][0] / "final"), "--dataset", "tofu-mini",
                          "--out", str(out)]) == 0
        summaries[name] = read_summaries(out)["tofu_forget10"]
    adapter, merged = summaries["adapter"], summaries["merged"]

    def numbers(summary, prefix=""):
        for key, value in summary.items():
            if isinstance(value, dict):
                yield from numbers(value, f"{prefix}{key}.")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                yield f"{prefix}{key}", float(value)

    a, m = dict(numbers(adapter)), dict(numbers(merged))
    del a["seconds"], m["seconds"]  # wall time of the evaluation
    assert a.keys() == m.keys() and len(a) >= 5
    assert any("rouge" in k.lower() for k in a) and any("utility" in k.lower() for k in a)
    for key in a:
        assert a[key] == pytest.approx(m[key], rel=1e-4, abs=1e-6), key
