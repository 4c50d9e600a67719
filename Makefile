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
	@# timm pulls torchvision, whose newest release would replace the CPU torch with a CUDA one:
	@# keep the torch just installed (torchvision then resolves to its matching release).
	$(BIN)/pip install -q -e ".[dev]" "torch==$$($(BIN)/python -c 'import torch; print(torch.__version__.split("+")[0])')"
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
