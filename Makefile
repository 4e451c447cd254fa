# Two commands on a fresh clone: `make demo` and `make test`. Both create the venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel; on a GPU machine install your CUDA torch first and set TORCH_SPEC= (empty) to keep it.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llmkit-installed
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export DS_ACCELERATOR ?= cpu

.PHONY: install demo test test-all clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and alone: left to the resolver it pulls a CUDA build of several GB.
	if [ -n "$(TORCH_SPEC)" ]; then $(PY) -m pip install -q "$(TORCH_SPEC)"; fi
	$(PY) -m pip install -q -e '.[dev,deepspeed]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/llmkit demo

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

clean:
	rm -rf $(VENV) runs .tiny
