# MiraStral: the two commands a new user needs are `make demo` and `make test`.
# Both set up everything they need on a fresh machine (a virtual environment in .venv).
SHELL := /bin/bash
VENV  ?= .venv
BIN   := $(VENV)/bin
PY    := $(BIN)/python
# CPU wheel of torch; installed before the package so no dependency resolves a CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup demo test check-sync lint nbtest pytest clean

setup: $(VENV)/.installed

$(VENV)/.installed: settings.ini setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name mirastral --display-name "MiraStral (.venv)" >/dev/null
	touch $@

## The main job on the embedded default: demo corpus -> reformat -> explore.
demo: setup
	$(BIN)/mirastral demo

## Every check CI runs: module in sync with notebooks, notebooks clean, lint, notebook tests, pytest.
test: setup check-sync lint nbtest pytest

check-sync: setup
	@before=$$(md5sum mirastral/*.py nbs/*.ipynb | sort); \
	 $(BIN)/nbdev_export && $(BIN)/nbdev_clean; \
	 after=$$(md5sum mirastral/*.py nbs/*.ipynb | sort); \
	 if [ "$$before" != "$$after" ]; then \
	   echo "ERROR: nbdev_export / nbdev_clean changed files: the module or notebooks were not in sync."; \
	   diff <(echo "$$before") <(echo "$$after"); git status --short mirastral nbs; exit 1; \
	 else echo "module in sync with notebooks; notebooks clean"; fi

## Lint the exported module, benchmarks and tests (rules in pyproject.toml; fix them in the notebooks, then nbdev_export).
lint: setup
	$(BIN)/ruff check mirastral bench tests

nbtest: setup
	$(BIN)/nbdev_test --n_workers 2 --do_print

pytest: setup
	$(BIN)/pytest

clean:
	rm -rf runs .pytest_cache
