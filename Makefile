# make run:       install the package with its server (no test tools), then serve the API and dashboard
#                 on the embedded SQLite store. HOST and PORT choose where: make run PORT=8181 HOST=0.0.0.0
#                 (or POLICYSTORE_HOST / POLICYSTORE_PORT in the environment).
# make test:      install the test tools too, and the system programs the tests use (redis-server,
#                 PostgreSQL, chromium, openssl: scripts/install-system-deps.sh), then run every test.
# make lint:      ruff check and ruff format --check.
# make typecheck: mypy --strict over the package and tests/typing (the API as a user types it).
# make test-core: in a second venv (.venv-core) holding only the core (`pip install -e .`) and the test
#                 runner, run the tests that need no extra (CORE_TESTS); a test of an extra is skipped
#                 there only because its extra is absent. An import of an extra from the core fails it.
# make check:     all of the above but run: what CI runs (.ci/run).
PYTHON ?= python3
VENV ?= .venv
CORE_VENV ?= .venv-core
BIN := $(VENV)/bin
CORE_BIN := $(CORE_VENV)/bin
POLICYSTORE_HOST ?= 127.0.0.1
POLICYSTORE_PORT ?= 8080
HOST ?= $(POLICYSTORE_HOST)
PORT ?= $(POLICYSTORE_PORT)
# One stamp per set of installed extras: `make run` after `make test` installs nothing more.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
CORE_STAMP := $(CORE_VENV)/.installed-core
# The tests that need nothing beyond the core: the model, the store and its memory and SQLite back ends,
# policystore.testing, the consumers and the public names. Their tests of an extra skip there.
CORE_TESTS := tests/model tests/store tests/testing tests/consumers tests/test_exported_members.py tests/test_imports.py
LINTED := src tests bench scripts

.PHONY: run test test-core install install-test install-core lint typecheck check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[server]'
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(TEST_STAMP) $(RUN_STAMP)

$(CORE_BIN)/python:
	$(PYTHON) -m venv $(CORE_VENV)
	$(CORE_BIN)/pip install -q --upgrade pip

# The core and the test runner only: no extra, not even the test extra's linters.
$(CORE_STAMP): pyproject.toml | $(CORE_BIN)/python
	$(CORE_BIN)/pip install -q -e '.[test-core]'
	touch $(CORE_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

install-core: $(CORE_STAMP)

run: install
	$(BIN)/policystore init
	POLICYSTORE_HOST='$(HOST)' POLICYSTORE_PORT='$(PORT)' $(BIN)/python scripts/run_server.py

test: install-test
	bash scripts/install-system-deps.sh
	$(BIN)/python -m pytest -q

test-core: install-core
	$(CORE_BIN)/python -m pytest -q --core-only $(CORE_TESTS)

lint: install-test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: install-test
	$(BIN)/mypy src/policystore tests/typing

# Cheap checks first: a lint or type error fails in seconds, not after the whole test run.
check: lint typecheck test test-core

bench: install-test
	$(BIN)/python bench/read_path.py
	$(BIN)/python bench/propagation.py
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/decision.py
	$(BIN)/python bench/http.py

clean:
	rm -rf $(VENV) $(CORE_VENV) .pytest_cache .mypy_cache .ruff_cache
