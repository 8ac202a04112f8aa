# `make demo` and `make test` set up everything they need on a fresh Debian machine.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# The CPU build of torch: on this workplace pip finds torch==2.13.0 on local disk.
# Elsewhere pass e.g. TORCH_PIP_ARGS="--index-url <your CPU wheel index>".
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint ngspice install clean experiments

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

ngspice:
	@bash scripts/ensure_ngspice.sh

demo: install ngspice
	$(PY) -m tngd.demo --out out/demo

test: install ngspice
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 -m "not slow" $(PYTEST_ARGS)

# the long statistical and acceptance runs (minutes each), kept out of `make test`
test-slow: install ngspice
	$(PY) -m pytest -q -n 2 -m slow $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m ruff format --check .

# the paper's experiments and the per-step benchmark (PRESET=quick: minutes; PRESET=full)
PRESET ?= quick
experiments: install
	$(VENV)/bin/tngd experiments --preset $(PRESET) --out validation/experiments

clean:
	rm -rf $(VENV) out .pytest_cache
