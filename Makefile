# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint smsc bench clean

$(BIN)/smsim: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(BIN)/smsim

# Optional: Population.traits, TouchedStore and the journal's record buffer in C
# (simulator/subscribers/_ctraits.c, _cstate.c, simulator/smsc/_cjournal.c), built again
# whenever a source changes; without a compiler the Python code runs, as it does with
# SMSIM_NO_CTRAITS=1.
CEXT := $(VENV)/.c-extensions
$(CEXT): $(BIN)/smsim build_ctraits.py simulator/subscribers/_ctraits.c simulator/subscribers/_cstate.c simulator/smsc/_cjournal.c
	$(BIN)/python build_ctraits.py >/dev/null 2>&1 || echo "smsim: C extensions not built (no compiler?); the Python code runs"
	touch $(CEXT)

demo: $(CEXT)
	$(BIN)/smsim run covid-quiz --duration 60s

smsc: $(CEXT)
	$(BIN)/smsim smsc

lint: $(CEXT)
	$(BIN)/ruff check simulator tests benchmarks loadtests
	$(BIN)/ruff format --check simulator tests benchmarks loadtests
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
