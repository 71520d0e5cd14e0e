# webhookhub — the two commands a new user needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py

.PHONY: run test setup lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

## Set everything up on first use (venv, .env with fresh keys, database, demo data,
## admin login), then serve the admin and API on http://127.0.0.1:8000 with a worker.
## Web, worker and these commands share one metrics directory: /metrics adds them up.
run: export PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/prometheus
run: $(VENV)/.runtime
	$(BIN)/python -m webhookhub.bootstrap
	$(MANAGE) migrate --noinput -v0
	$(MANAGE) collectstatic --noinput -v0
	$(MANAGE) seed_demo
	$(MANAGE) ensure_admin
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --port 8000 web worker

## Install test requirements and run the whole suite (PostgreSQL when DATABASE_URL
## points at one, SQLite otherwise).
test: $(VENV)/.dev
	$(BIN)/ruff check .
	DJANGO_SETTINGS_MODULE=webhookhub.test_settings $(MANAGE) makemigrations --check --dry-run -v1
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(VENV)/.dev
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 var/test*.sqlite3 var/prometheus
