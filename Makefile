# reconcile: `make demo` runs the main job on the embedded default (SQLite + the fake Stripe);
# `make test` runs the tests (SQLite always; PostgreSQL too when DATABASE_URL points at one).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-sqlite test-postgres lint cassettes bench bench-large clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

demo: setup
	bash scripts/demo.sh

test: setup test-sqlite
	@case "$$DATABASE_URL" in postgres*) $(MAKE) --no-print-directory test-postgres ;; \
	  *) echo "PostgreSQL run skipped: DATABASE_URL does not point at PostgreSQL." ;; esac

test-sqlite: setup
	env -u DATABASE_URL $(VENV)/bin/pytest -q $(PYTEST_ARGS)

test-postgres: setup
	@echo "== the same suite on PostgreSQL ($${DATABASE_URL%%@*}@...)"
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check reconcile tests demo scripts bench

cassettes: setup
	$(PY) scripts/record_cassettes.py

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

bench-large: setup
	$(PY) -m bench --large $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .peer-venv .bench demo.sqlite3 *.reconcile.lock
