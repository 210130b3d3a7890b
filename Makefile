# The two commands of the README's quick start: `make demo` and `make test`.
# Both set up everything they need in .venv from a clean clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench venv clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## Sync the example clients' full histories from the built-in Stripe simulator into example-ledger/.
demo: $(STAMP)
	$(BIN)/beancount-stripe demo --fresh

## Lint and run the whole test suite (what .ci/run calls).
test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 2 --durations=15

chromium:
	./scripts/ensure-chromium

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Reproduce every figure of bench/RESULTS.md's table (20–40 minutes; the baseline importer is
## installed for the benchmark only).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet beangulp-stripe==0.3.0
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
