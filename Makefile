# reconcile: `make demo` runs the main job on the embedded default (SQLite + the fake Stripe);
# `make test` runs the tests: SQLite always; PostgreSQL when DATABASE_URL points at one; MariaDB/MySQL
# when MARIADB_URL is set or DATABASE_URL points at one (mysql://...).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-mysql demo test test-sqlite test-postgres test-mariadb lint cassettes bench bench-large clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

setup-mysql: $(VENV)/.installed-mysql

$(VENV)/.installed-mysql: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[test,mysql]'
	touch $@

demo: setup
	bash scripts/demo.sh

test: setup test-sqlite
	@case "$$DATABASE_URL" in postgres*) $(MAKE) --no-print-directory test-postgres ;; \
	  *) echo "PostgreSQL run skipped: DATABASE_URL does not point at PostgreSQL." ;; esac
	@case "$${MARIADB_URL:-$$DATABASE_URL}" in mysql*|mariadb*) $(MAKE) --no-print-directory test-mariadb ;; \
	  *) echo "MariaDB run skipped: neither MARIADB_URL nor DATABASE_URL points at MySQL/MariaDB." ;; esac

test-sqlite: setup
	env -u DATABASE_URL $(VENV)/bin/pytest -q $(PYTEST_ARGS)

test-postgres: setup
	@echo "== the same suite on PostgreSQL ($${DATABASE_URL%%@*}@...)"
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

# MARIADB_URL (or a mysql:// DATABASE_URL), e.g. mysql://root@127.0.0.1:3306/reconcile; pytest-django
# creates and drops test_<name>.
test-mariadb: setup-mysql
	@url="$${MARIADB_URL:-$$DATABASE_URL}"; case "$$url" in mysql*|mariadb*) ;; \
	  *) echo "test-mariadb needs MARIADB_URL=mysql://user@host:port/name"; exit 2 ;; esac; \
	echo "== the same suite on MariaDB/MySQL ($${url%%@*}@...)"; \
	DATABASE_URL="$$url" $(VENV)/bin/pytest -q $(PYTEST_ARGS)

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
