# Two commands a user needs: `make demo` and `make test`. Each sets up .venv if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench reliability clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ecgscale demo --out demo-out

# lint-imports checks the dependency rules of docs/design.md (contracts in pyproject.toml); CI runs `make test`.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks reliability
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks reliability
	$(BIN)/ruff format --check src tests benchmarks reliability
	$(BIN)/lint-imports

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

# The long fault-injection run behind docs/reliability.md (about an hour on 2 cores; rewrites its table).
reliability: $(STAMP)
	$(BIN)/python -m reliability.run

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache .import_linter_cache
