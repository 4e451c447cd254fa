"""Write recipes/unlearn/*.yaml: TOFU forget01/05/10 × methods × models, the FLAT released-code set (TOFU, the
paper's model), MUSE News/Books × {FLAT, NPO}, and the tiny tofu-mini recipes of the demo. Each output is one flat, self-contained YAML; edit this script, not the files.

    python scripts/make_unlearn_recipes.py [--out recipes/unlearn]
"""

from __future__ import annotations

import argparse
from pathlib import Path

# TOFU target models are the fine-tuned `final/` of recipes/finetune (5 epochs on TOFU full, as TOFU did).
MODELS = {
    # TOFU's own model; prompt tags as in locuslab/tofu config/model_config.yaml; TOFU pads to 500 tokens.
    "": dict(model_name_or_path="runs/tofu_full_llama2_7b_chat/final", prompt_format="tags",
             question_start_tag="[INST] ", question_end_tag=" [/INST]", answer_tag="", max_length=500,
             per_device_train_batch_size=4, activation_checkpointing=True),
    "_llama32_1b": dict(model_name_or_path="runs/tofu_full_llama32_1b_instruct/final", prompt_format="chat",
                        max_length=512, per_device_train_batch_size=4, activation_checkpointing=False),
}
SPLITS = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
# FLAT: UCSC-REAL/FLAT config/forget.yaml (lr 1e-5, 5 epochs, wd 0.01, ~1 epoch warm-up); the paper's default
# per-example reduction. Baselines: open-unlearning docs/repro.md (lr 1e-5, 10 epochs, α = γ = 1, NPO β = 0.1) and
# its trainer configs: IdkDPO = DPO β 0.1 with a retain NLL term; RMU steers layer 7's output toward 2·u, α = γ = 1.
METHODS = {
    **{f"flat_{d}": dict(loss="flat", divergence=d, reduction="paper", template_source="idk", num_train_epochs=5)
       for d in ("kl", "js", "tv", "pearson")},
    "grad_ascent": dict(loss="grad_ascent", num_train_epochs=10),
    "grad_diff": dict(loss="grad_diff", gamma=1.0, alpha=1.0, num_train_epochs=10),
    "npo": dict(loss="npo", beta=0.1, num_train_epochs=10),
    "idk_sft": dict(loss="idk_sft", template_source="idk", num_train_epochs=10),
    "idk_dpo": dict(loss="idk_dpo_rt", template_source="idk", beta=0.1, gamma=1.0, alpha=1.0, num_train_epochs=10),
    # open-unlearning trains every parameter (".*"); only the embeddings and layers 0-7 can get a gradient from a
    # loss on layer 7's output, so naming them is the same run and keeps DDP from waiting for gradients that never come.
    "rmu": dict(loss="rmu", layer=7, steering_coeff=2.0, gamma=1.0, alpha=1.0,
                trainable_params=r"model\.(embed_tokens|layers\.[0-7])\..*", num_train_epochs=10),
}
RETAIN_LOSSES = {"grad_diff", "idk_dpo_rt", "rmu"}
# The released code's TOFU setting (UCSC-REAL/FLAT dataloader.py loss "cl" run through locuslab/tofu forget.py):
# batch-level reduction with every sequence padded to 500 tokens, Total-Variation (config/forget.yaml `variants`),
# paged_adamw_32bit in bf16, lr 1e-5, 5 epochs, wd 0.01, batch 16 × accumulation 4, one epoch of warm-up, and
# TOFU's own refusal list (open-unlearning/idk on the hub; or a local copy of locuslab/tofu data/idontknow.jsonl).
RELEASED = dict(loss="flat", divergence="tv", reduction="reference", padded_length=500, max_length=500,
                template_source="open-unlearning/idk", optim="paged_adamw_32bit", global_batch_size=64,
                per_device_train_batch_size=16, num_train_epochs=5)
COMMON = dict(global_batch_size=32, learning_rate=1.0e-5, weight_decay=0.01, lr_scheduler_type="linear",
              optim="adamw_torch", dtype="bfloat16", bf16=True, seed=42, logging_steps=1, save_strategy="epoch", save_only_model=True)
MUSE = {
    "news": dict(model_name_or_path="muse-bench/MUSE-News_target", dataset="muse-bench/MUSE-News",
                 template_source="idk"),
    "books": dict(model_name_or_path="muse-bench/MUSE-Books_target", dataset="muse-bench/MUSE-Books",
                  template_source="copyright"),
}
# swj0419/muse_bench baselines/scripts/unlearn_news.sh: 2048-token windows, lr 1e-5, 10 epochs, 4 × 8 GPUs,
# constant LR, adamw_torch, bf16.
MUSE_COMMON = dict(dataset_config="raw", dataset_split="forget", data_format="text", max_length=2048,
                   global_batch_size=32, per_device_train_batch_size=4, num_train_epochs=10, learning_rate=1.0e-5,
                   lr_scheduler_type="constant", optim="adamw_torch", weight_decay=0.0, dtype="bfloat16", bf16=True,
                   activation_checkpointing=True, seed=42, logging_steps=1, save_strategy="epoch", save_only_model=True)
# FLAT pairs a template and the forget answer under the same prompt: the first half of each window is the prompt
# (context, no loss), the second half the forget answer, and the template a refusal after the same first half.
# (The paper's MUSE text setup could not be read; this split mirrors VerbMem, which prompts with a prefix of D_f.)
MUSE_METHODS = {"flat_kl": dict(loss="flat", divergence="kl", reduction="paper", text_prompt_tokens=1024),
                "npo": dict(loss="npo", beta=0.1)}
# The demo and scripts/bench/unlearn_tradeoff.py: the tiny target that recipes/finetune/tofu_mini_full.yaml writes
# (they override the paths). At lr 2e-4 FLAT's forgetting happens in epochs 5-8 and it collapses after; gradient
# ascent collapses within a few epochs; 10 epochs with a checkpoint each show every method's whole path (at 1e-3
# both collapsed from epoch 2 on, at 1e-4 FLAT had barely moved after 5 epochs: measured sweep).
TINY = dict(model_name_or_path="runs/demo/tofu_mini_full/final", dtype="float32", dataset="tofu-mini",
            dataset_config="forget10", prompt_format="chat", max_length=128, global_batch_size=12,
            per_device_train_batch_size=12, num_train_epochs=10, learning_rate=2.0e-4, weight_decay=0.0,
            lr_scheduler_type="constant", optim="adamw_torch", bf16=False, activation_checkpointing=False, seed=42,
            logging_steps=1, save_strategy="epoch", save_only_model=True)
# The tiny model has 4 decoder layers: RMU steers the output of layer 1 and trains what can move it.
TINY_METHODS = {"flat_kl": dict(loss="flat", divergence="kl", reduction="paper", template_source="idk"),
                "flat_tv": dict(loss="flat", divergence="tv", reduction="paper", template_source="idk"),
                "grad_ascent": dict(loss="grad_ascent"),
                "npo": dict(loss="npo", beta=0.1),
                "idk_dpo": dict(loss="idk_dpo_rt", template_source="idk", beta=0.1, gamma=1.0, alpha=1.0,
                                retain_config="retain90"),
                "rmu": dict(loss="rmu", layer=1, steering_coeff=2.0, gamma=1.0, alpha=1.0, retain_config="retain90",
                            trainable_params=r"model\.(embed_tokens|layers\.[0-1])\..*")}

SECTIONS = {
    "model": ("model_name_or_path", "dtype", "use_peft"),
    "data": ("dataset", "dataset_config", "dataset_split", "data_format", "prompt_format", "question_start_tag",
             "question_end_tag", "answer_tag", "max_length", "text_prompt_tokens", "template_source", "retain_config"),
    "method": ("loss", "divergence", "reduction", "padded_length", "beta", "gamma", "alpha", "steering_coeff", "layer",
               "trainable_params"),
    "training": ("global_batch_size", "per_device_train_batch_size", "num_train_epochs", "learning_rate",
                 "weight_decay", "lr_scheduler_type", "warmup_steps", "optim", "bf16", "activation_checkpointing",
                 "seed"),
    "logging and checkpoints": ("logging_steps", "save_strategy", "save_only_model"),
}


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.1e}".replace("e-0", "e-") if v and abs(v) < 1e-2 else repr(v)
    if isinstance(v, str) and (v != v.strip() or v in {"", "no", "yes", "true", "false"} or v[:1] in "[{"):
        return '"' + v.replace('"', '\\"') + '"'
    return str(v)


def render(title: str, keys: dict) -> str:
    """A flat YAML with a one-line title and `### section` comments; every key appears exactly once."""
    lines = [f"# {title}", "task: unlearn"]
    placed = set()
    for section, names in SECTIONS.items():
        present = [k for k in names if k in keys]
        if not present:
            continue
        lines += ["", f"### {section}"] + [f"{k}: {_value(keys[k])}" for k in present]
        placed.update(present)
    missing = set(keys) - placed
    if missing:
        raise ValueError(f"no section for {sorted(missing)}")
    return "\n".join(lines) + "\n"


def recipes() -> dict[str, str]:
    """file name → YAML text."""
    out = {}
    for suffix, model in MODELS.items():
        for split, retain in SPLITS.items():
            for method, spec in METHODS.items():
                keys = {**COMMON, **model, "dataset": "locuslab/TOFU", "dataset_config": split, **spec}
                keys["warmup_steps"] = round(1 / keys["num_train_epochs"], 4)  # one epoch of warm-up, as a ratio
                if spec["loss"] in RETAIN_LOSSES:
                    keys["retain_config"] = retain
                title = f"TOFU {split}, {method}, target {model['model_name_or_path']}"
                out[f"tofu_{split}_{method}{suffix}.yaml"] = render(title, keys)
    for split in SPLITS:  # the released-code set: the paper's TOFU model only
        keys = {**COMMON, **MODELS[""], "dataset": "locuslab/TOFU", "dataset_config": split, **RELEASED}
        keys["warmup_steps"] = round(1 / keys["num_train_epochs"], 4)
        title = f"TOFU {split}, FLAT as the released code trains it (reduction reference, L 500, TV), target " \
                f"{keys['model_name_or_path']}"
        out[f"tofu_{split}_flat_tv_released.yaml"] = render(title, keys)
    for corpus, data in MUSE.items():
        for method, spec in MUSE_METHODS.items():
            keys = {**MUSE_COMMON, **data, **spec}
            if spec["loss"] != "flat":
                keys.pop("template_source")
            out[f"muse_{corpus}_{method}.yaml"] = render(f"MUSE-{corpus.title()} raw/forget, {method}", keys)
    for method, spec in TINY_METHODS.items():
        out[f"tofu_mini_forget10_{method}.yaml"] = render(
            f"Demo: unlearn tofu-mini forget10 from the tiny target with {method}. CPU, seconds.", {**TINY, **spec})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "recipes" / "unlearn"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in recipes().items():
        (out / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(recipes())} recipes to {out}")


if __name__ == "__main__":
    main()
