# FitTribe: `make run` serves the demo site, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test test-shifted test-tools install install-dev assets migrate seed worker bench bench-cluster clean

run: install assets ## migrate, seed demo data and serve http://127.0.0.1:5000
	$(BIN)/python -m fittribe.devserver

# PostgreSQL and Redis: TEST_DATABASE_URL / TEST_REDIS_URL when they answer, otherwise embedded
# servers for the run (tests/conftest.py). Chromium and nginx: Debian's, installed when missing.
test: install-dev assets test-tools ## the whole suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

CHROMIUM_PATH ?= /usr/bin/chromium
NGINX ?= /usr/sbin/nginx
export CHROMIUM_PATH NGINX
test-tools:
	@tools/need-package $(CHROMIUM_PATH) chromium "the browser tests"
	@tools/need-package $(NGINX) nginx "the multi-node test"

# Tests that pass at one hour and fail at another (a seeded session next to the test's own, a
# slot that fits 30 minutes but not 60) show up here: `make test-shifted CLOCK_SHIFT_HOURS=14`.
CLOCK_SHIFT_HOURS ?= 12
# (-W: time_machine is imported before pytest starts, so pytest cannot rewrite its plugin.)
test-shifted: install-dev assets test-tools ## the whole suite with the wall clock CLOCK_SHIFT_HOURS ahead
	SHIFT_CLOCK_HOURS=$(CLOCK_SHIFT_HOURS) PYTHONPATH=$(CURDIR)/tests/clock_shift $(BIN)/python -m pytest -W "ignore:Module already imported:pytest.PytestAssertRewriteWarning" $(PYTEST_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# htmx and its SSE extension come from npm, are copied into static/vendor, then every static
# file gets an md5-tagged name and .gz/.br copies for far-future caching.
assets: node_modules/.installed install
	rm -rf static/vendor && mkdir -p static/vendor/ext
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/
	cp node_modules/htmx.org/dist/ext/hx-sse.min.js static/vendor/ext/
	$(FLASK) digest clean >/dev/null
	$(FLASK) digest compile >/dev/null

migrate: install
	$(FLASK) db upgrade

seed: migrate
	$(FLASK) seed

worker: install
	$(FLASK) worker

bench: install-dev assets ## benchmarks (need PostgreSQL)
	$(BIN)/python bench/search.py
	$(BIN)/python bench/booking_race.py
	$(BIN)/python bench/analytics.py
	$(BIN)/python bench/slot_engine_busy.py

# 2,000 open streams through nginx over two nodes: kill -9 one, then a rolling restart (figures printed).
CLUSTER_STREAMS ?= 2000
bench-cluster: install-dev assets test-tools ## the multi-node test at full size
	CLUSTER_STREAMS=$(CLUSTER_STREAMS) $(BIN)/python -m pytest tests/deploy -s -q -p no:cacheprovider

clean:
	rm -rf $(VENV) node_modules static/vendor static/cache_manifest.json
	find static -name '*.gz' -o -name '*.br' | xargs rm -f
