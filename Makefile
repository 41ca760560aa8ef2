# make run:  install the package with its server (no test tools), then serve the API and dashboard
#            on the embedded SQLite store. HOST and PORT choose where: make run PORT=8181 HOST=0.0.0.0
#            (or POLICYSTORE_HOST / POLICYSTORE_PORT in the environment).
# make test: install the test tools too, and the system programs the tests use (redis-server,
#            chromium, openssl: scripts/install-system-deps.sh), then run every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
POLICYSTORE_HOST ?= 127.0.0.1
POLICYSTORE_PORT ?= 8080
HOST ?= $(POLICYSTORE_HOST)
PORT ?= $(POLICYSTORE_PORT)
# One stamp per set of installed extras: `make run` after `make test` installs nothing more.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test install install-test lint typecheck check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[server]'
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(TEST_STAMP) $(RUN_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

run: install
	$(BIN)/policystore init
	POLICYSTORE_HOST='$(HOST)' POLICYSTORE_PORT='$(PORT)' $(BIN)/python scripts/run_server.py

test: install-test
	bash scripts/install-system-deps.sh
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: install-test
	$(BIN)/mypy src/policystore tests/typing

check: lint typecheck test

bench: install-test
	$(BIN)/python bench/read_path.py
	$(BIN)/python bench/propagation.py
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/decision.py
	$(BIN)/python bench/http.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
