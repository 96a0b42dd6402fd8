# murmurlm: the two commands of the README.
#   make run    sets up .venv and runs the main job (train the compact model, evaluate, report)
#   make test   sets up .venv and runs the test suite (what .ci/run calls)
# torch is installed first and pinned to 2.13.0: on these machines that is a CPU build on local
# disk, while an unpinned torch would pull a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MURMURLM_CIRCOR ?= ../shared/circor-dev
RUN_DIR ?= runs/main
# extra arguments of `murmurlm pipeline` (options, config key=value overrides), e.g. for a quick run:
#   make run RUN_ARGS='--members 1 epochs=2'
RUN_ARGS ?=

.PHONY: setup system run test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# Debian tools some tests use (browser test, spoken sentence, FLAC restore); skipped when not root.
system:
	bash scripts/install-system.sh

run: setup
	$(VENV)/bin/murmurlm pipeline --data $(MURMURLM_CIRCOR) --out $(RUN_DIR) $(RUN_ARGS)

test: setup system
	$(PY) -m pytest -q
