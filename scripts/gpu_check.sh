#!/usr/bin/env bash
# One short GPU check: bf16 fine-tune of the tiny models (tokens/s, peak memory), FLAT unlearning of the result,
# the FLAT/SFT step benchmark, an embedding (LG-ANNA-style InfoNCE + KL, LoRA) training step, HF generation
# throughput (new tokens/s) and a TOFU eval of the fine-tuned model. The lent GPU machine has torch/transformers/
# accelerate/peft and a sentence-transformers of unknown version, but no trl, datasets or rouge-score and no network,
# so the wheels travel with the repo (sentence-transformers too, pinned to the 6.x API that llmkit.embed uses):
#   here:  scripts/gpu_check.sh fetch        (downloads the pure-Python wheels into .whl/, git-ignored)
#   there: scripts/gpu_check.sh [STEPS]      (installs them with --no-index --target, then runs the checks)
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 nltk==3.10.4 defusedxml==0.7.1
        fsspec==2026.9.0 pyarrow==26.0.1 sentence-transformers==6.2.0)
if [ "${1:-}" = "fetch" ]; then
  PY=${PYTHON:-.venv/bin/python}
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl "${WHEELS[@]}"
  "$PY" -m pip wheel -q --no-deps -w .whl rouge-score==0.1.2   # sdist only on PyPI: build the pure wheel here
  ls .whl
  exit 0
fi
STEPS=${1:-300}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 LLMKIT_CACHE=/tmp/llmkit-cache TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
# Every check prints a {"check": ...} JSON line; progress bars push them out of a short output tail, so the whole
# log goes to $OUT/gpu_check.log and the check lines are repeated, with the benchmark ratios, at the end.
checks() {
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# timed CHECK COMMAND...: run COMMAND, then print its wall time as a JSON line named CHECK
timed() {
  local check=$1 start
  shift
  start=$(date +%s.%N)
  "$@"
  python3 -c "import sys, time; print('{\"check\": \"%s\", \"wall_s\": %.1f}' % (sys.argv[1], time.time() - float(sys.argv[2])))" "$check" "$start"
}
# SECTIONS picks what runs: core (fine-tune, FLAT, benchmarks, TOFU eval) and paths (NPO, LoRA, MUSE on the GPU).
SECTIONS=${SECTIONS:-core paths}
if [[ " $SECTIONS " == *" core "* ]]; then
python3 - "$STEPS" "$OUT" <<'PY'
import json, sys, time
import torch
from llmkit.runs import read_metrics
from llmkit.train import main as train_main

steps, out = int(sys.argv[1]), sys.argv[2]
print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(0)}")
for preset in ("llama-xs", "llama"):
    torch.cuda.reset_peak_memory_stats()
    args = ["recipes/finetune/tofu_mini_full.yaml", "--model_name_or_path", f"tiny:{preset}", "--bf16", "true",
            "--max_steps", str(steps), "--output_root", f"{out}/{preset}", "--save_strategy", "no",
            "--logging_steps", "10", "--per_device_train_batch_size", "16", "--global_batch_size", "16"]
    t0 = time.time()
    assert train_main(args) == 0
    rows = read_metrics(f"{out}/{preset}/tofu_mini_full/metrics.jsonl")
    a, b = rows[0], rows[-1]
    tps = (b["tokens"] - a["tokens"]) / (b["time"] - a["time"])
    print(json.dumps({"check": "bf16_finetune", "model": f"tiny:{preset}", "steps": b["step"],
                      "loss_first": round(a["loss"], 4), "loss_last": round(b["loss"], 4),
                      "tokens_per_s": round(tps), "peak_mem_MiB": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                      "wall_s": round(time.time() - t0, 1)}))
# FLAT unlearning (bf16) of the fine-tuned model on the forget10 authors: step time and peak memory.
torch.cuda.reset_peak_memory_stats()
t0 = time.time()
assert train_main(["recipes/unlearn/tofu_mini_forget10_flat_kl.yaml", "--model_name_or_path",
                   f"{out}/llama/tofu_mini_full/final", "--bf16", "true", "--dtype", "bfloat16",
                   "--output_root", f"{out}/unlearn", "--save_strategy", "no"]) == 0
rows = read_metrics(f"{out}/unlearn/tofu_mini_forget10_flat_kl/metrics.jsonl")
print(json.dumps({"check": "bf16_flat_unlearn", "steps": rows[-1]["step"],
                  "p_forget_first": round(rows[0]["p_forget"], 4), "p_forget_last": round(rows[-1]["p_forget"], 4),
                  "p_template_first": round(rows[0]["p_template"], 4), "p_template_last": round(rows[-1]["p_template"], 4),
                  "s_per_step": round((rows[-1]["time"] - rows[0]["time"]) / max(rows[-1]["step"] - rows[0]["step"], 1), 4),
                  "peak_mem_MiB": round(torch.cuda.max_memory_allocated() / 2**20, 1), "wall_s": round(time.time() - t0, 1)}))
PY
# FLAT step vs SFT step on the same forget batch, bf16 on the GPU (the issue's ratio target: <= 2.0).
python3 scripts/bench/unlearn_step.py --model tiny:llama --device cuda --dtype bfloat16 --steps 50 --out "$OUT/bench_unlearn.json"
# Embedding training step (bf16 backbone, LoRA r 16, batch 16 x 5 texts): ms/step with and without the KL term.
python3 scripts/bench/embed_train_step.py --model tiny:llama --device cuda --dtype bfloat16 --steps 50 --out "$OUT/bench_embed.json"
# Greedy HF generation (llmkit's HFGenerator) over the TOFU-mini eval prompts on the fine-tuned model: new tokens/s.
python3 scripts/bench/eval_speed.py --model "$OUT/llama/tofu_mini_full/final" --generate_only --batch_size 32 \
  --max_new_tokens 200 --out "$OUT/bench_generate.json"
# Generation + scoring through the eval suite on the fine-tuned model (HF generate; vLLM is not on that machine).
timed tofu_eval_hf_generate python3 -m llmkit.cli eval tofu_forget10 --model "$OUT/llama/tofu_mini_full/final" \
  --dataset tofu-mini --out "$OUT/eval" --force
fi
# Code paths the core section doesn't reach, in bf16 on the GPU: NPO and IdkDPO (reference log-probs computed on the
# device), RMU (a frozen copy of the steered layers), FLAT with LoRA merged at the end, task: pretrain (packed
# python-docs blocks, WSD schedule, eval_loss), and the MUSE suite (VerbMem generation, KnowMem, PrivLeak Min-K%).
if [[ " $SECTIONS " == *" paths "* ]]; then
  for run in "npo npo" "idk_dpo idk_dpo" "rmu rmu" \
             "flat_lora flat_kl --use_peft true --lora_r 8 --lora_alpha 16 --merge_lora true"; do
    read -r name recipe extra <<< "$run"
    # shellcheck disable=SC2086  # $extra is a list of --key value pairs
    python3 -m llmkit.train "recipes/unlearn/tofu_mini_forget10_$recipe.yaml" --model_name_or_path tiny:llama \
      --bf16 true --dtype bfloat16 --max_steps 20 --save_strategy no --output_root "$OUT/paths" --run_name "$name" $extra
    python3 - "$OUT/paths/$name" <<'PY'
import json, sys
from llmkit.runs import read_metrics
rows = read_metrics(f"{sys.argv[1]}/metrics.jsonl")
print(json.dumps({"check": f"bf16_unlearn_{sys.argv[1].rsplit('/', 1)[1]}", "steps": rows[-1]["step"],
                  "loss_first": round(rows[0]["loss"], 4), "loss_last": round(rows[-1]["loss"], 4),
                  "s_per_step": round((rows[-1]["time"] - rows[0]["time"]) / max(rows[-1]["step"] - rows[0]["step"], 1), 4)}))
PY
  done
  python3 -m llmkit.train recipes/pretrain/tiny_demo.yaml --bf16 true --lr_schedule "wsd:peak=1e-2,steps=300,warmup=10,cooldown=0.2" \
    --per_device_train_batch_size 64 --global_batch_size 64 --eval_steps 50 --output_root "$OUT/paths" --run_name pretrain
  python3 - "$OUT/paths/pretrain" <<'PY'
import json, sys
from llmkit.runs import read_metrics
rows = read_metrics(f"{sys.argv[1]}/metrics.jsonl")
train, evals = [r for r in rows if "loss" in r], [r for r in rows if "eval_loss" in r]
a, b = train[0], train[-1]
print(json.dumps({"check": "bf16_pretrain_wsd", "steps": b["step"], "loss_first": round(a["loss"], 4),
                  "loss_last": round(b["loss"], 4), "eval_loss_last": round(evals[-1]["eval_loss"], 4),
                  "tokens_per_s": round((b["tokens"] - a["tokens"]) / (b["time"] - a["time"]))}))
PY
  timed muse_news_eval python3 -m llmkit.cli eval muse_news --model tiny:llama --out "$OUT/muse" --force
fi
python3 -c "import vllm" 2>/dev/null && echo "vllm: importable" || echo "vllm: not installed on this machine (HF generate backend used)"
}
checks 2>&1 | tee "$OUT/gpu_check.log"
echo "== summary"
grep -h '^{"check"' "$OUT/gpu_check.log" | tee "$OUT/checks.jsonl"
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
if (out / "bench_unlearn.json").is_file():
    r = json.loads((out / "bench_unlearn.json").read_text())["results"]
    print(json.dumps({"check": "flat_vs_sft_step", "sft_ms": round(1e3 * r["sft"]["seconds_per_step"], 1),
                      "flat_ms": round(1e3 * r["flat"]["seconds_per_step"], 1),
                      "ratio": round(r["flat"]["seconds_per_step"] / r["sft"]["seconds_per_step"], 2)}))
if (out / "bench_embed.json").is_file():
    e = json.loads((out / "bench_embed.json").read_text())
    print(json.dumps({"check": "embed_step", "ms_per_step": {k: round(v, 1) for k, v in e["ms_per_step"].items()},
                      "kd_ratio": round(e["ratio_kd1_over_kd0"], 3), "peak_cuda_MiB": round(e["peak_cuda_mib"], 1)}))
PY
