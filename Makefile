# medllama-ops — every target creates .venv when it is missing.
#   make demo     the whole pipeline on this machine (kfp.local, tiny recipe, CPU)
#   make test     the test suite (unit + local tiers; the `gpu` tests are left to make test-gpu)
#   make test-gpu the `gpu` tests (bf16, fused Adam, SDPA/flash, compile, 2-GPU ZeRO-3) on a CUDA machine
#   make serve    the demo's registered model on KServe's OpenAI endpoint (http://localhost:8080/openai/v1)
#   make compile  recompile pipelines/me_llama.yaml for the Kubeflow UI
#   make render-jobs  re-render k8s/jobs/*.yaml (PyTorchJobs for kubectl apply -f)
#   make bench    the benchmarks in bench/ (see bench/RESULTS.md)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medllama-installed
# torch is installed here, not from pyproject: without a GPU it must be the CPU build. torch==2.13.0 (CPU)
# is on this machine's local wheel path; elsewhere set TORCH_INDEX to a CPU wheel index.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX   ?=
VLLM_VERSION  ?= 0.24.0
# `make serve`: the version the demo registered last (alias `candidate`) on KServe's OpenAI endpoint
SERVE_MODEL   ?= models:/me-llama-tiny@candidate
SERVE_PORT    ?= 8080
PYTEST_ARGS   ?=

.PHONY: demo test test-gpu compile render-jobs bench clean venv serve

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then \
	  $(BIN)/pip install -q "torch==$(TORCH_VERSION)"; \
	else \
	  $(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch==$(TORCH_VERSION)"; \
	  $(BIN)/python -c "import torch, sys; sys.exit('a CUDA torch was installed on a machine without a GPU; set TORCH_INDEX to a CPU wheel index' if torch.version.cuda else 0)"; \
	fi
	$(BIN)/pip install -q -e ".[data,train,dev,bench,gate,serve]" "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -q --no-deps "vllm==$(VLLM_VERSION)"  # protocol types only: its deps would pull a CUDA torch
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medllama pipeline run --recipe tiny

serve: $(STAMP)
	$(BIN)/medllama serve --model "$(SERVE_MODEL)" --port $(SERVE_PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

test-gpu: $(STAMP)
	$(BIN)/python -m pytest -m gpu tests/train $(PYTEST_ARGS)

compile: $(STAMP)
	$(BIN)/medllama pipeline compile

render-jobs: $(STAMP)
	$(BIN)/python -m medllama.k8s.render_jobs

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py --device cpu --tiny --steps 3 --warmup 1

clean:
	rm -rf .medllama local_outputs
