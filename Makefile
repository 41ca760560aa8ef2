# make run: install, then serve the API and dashboard on the embedded SQLite store.
# make test: install what the tests need (redis-server, chromium), then run them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint typecheck check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/policystore init
	$(BIN)/python scripts/run_server.py

test: install
	bash scripts/install-system-deps.sh
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: install
	$(BIN)/mypy src/policystore tests/typing

check: lint typecheck test

bench: install
	$(BIN)/python bench/read_path.py
	$(BIN)/python bench/propagation.py
	$(BIN)/python bench/decision.py
	$(BIN)/python bench/http.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
