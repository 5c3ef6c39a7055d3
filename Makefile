# Two entry points for a fresh machine: `make run` and `make test`. Both set up what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
CHROMIUM ?= /usr/bin/chromium

REDIS_SERVER ?= redis-server

.PHONY: setup run test lint browser-deps redis-deps postgres-deps vendor

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# npm's packages are for the tests (axe-core) and for `make vendor`: the page's libraries are
# committed in server/vendor/, so running needs no Node.js. A stamp: npm ci only on a new lock.
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

# The JavaScript SDKs the /v1 tests drive (tests/integration/test_js_clients.py).
tests/js_clients/node_modules/.installed: tests/js_clients/package-lock.json
	npm ci --prefix tests/js_clients --no-audit --no-fund --silent
	touch $@

setup: $(VENV)/.installed node_modules/.installed tests/js_clients/node_modules/.installed

run: $(VENV)/.installed
	$(PY) -m server

# After changing package.json (and npm install): the page's libraries copied into the package.
vendor: setup
	$(PY) -m tests.vendor_files

# The page's tests drive Debian's Chromium; install it when it is missing and we may.
browser-deps:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "Chromium is missing: install Debian's chromium package (or set CHROMIUM=path)"; exit 1; fi; \
	fi

# The Redis tests start Debian's redis-server (TLS included) on free loopback ports.
redis-deps:
	@if ! command -v $(REDIS_SERVER) >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  else echo "redis-server is missing: install Debian's redis-server package"; exit 1; fi; \
	fi

# The account tests run every case on SQLite and on a real PostgreSQL (tests/postgres_server.py).
postgres-deps:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else echo "PostgreSQL is missing: install Debian's postgresql package"; exit 1; fi; \
	fi

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy server tests bench gunicorn.conf.py

test: setup browser-deps redis-deps postgres-deps
	$(PY) -m pytest
