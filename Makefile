# One entry point: `make demo` runs the main job, `make test` runs the tests.
# Both create .venv and install the package first (only when pyproject.toml changed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aiayn-installed
# Extra pip arguments for torch on a machine without an NVIDIA GPU, e.g.
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=

.PHONY: setup demo test lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	@# An unpinned `torch` pulls a multi-GB CUDA build; without a GPU take the pinned CPU build.
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/pip install -q "torch>=2.4"; \
	else \
		$(BIN)/pip install -q "torch==2.13.0" $(TORCH_PIP_ARGS); \
	fi
	$(BIN)/pip install -q -e ".[dev]"
	@# timm (the ViT parity test's and benchmark's peer) without its torchvision: PyPI's
	@# torchvision is built for PyPI's CUDA torch and fails to import beside the CPU build
	@# ("operator torchvision::nms does not exist"), which breaks transformers' imports too.
	@# A ViT needs nothing from it; benchmarks/timm_import.py stands in for it.
	$(BIN)/pip install -q --no-deps "timm>=1.0"
	touch $(STAMP)

demo: setup
	$(BIN)/aiayn demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments

format: setup
	$(BIN)/ruff format src tests benchmarks experiments
	$(BIN)/ruff check --fix src tests benchmarks experiments

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
