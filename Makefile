# webhookhub — the two commands a new user needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py

.PHONY: run test setup lint bench clean lock lock-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs are constrained by constraints.txt (every transitive version pinned, see its
# header); a change to it or to requirements*.txt reinstalls.
$(VENV)/.runtime: requirements.txt constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt constraints.txt clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -r requirements-dev.txt
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
	@echo "Admin password lost? Set a new one: $(MANAGE) changepassword $${WEBHOOKHUB_ADMIN_USERNAME:-admin}"
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

## Regenerate constraints.txt after changing requirements*.txt: resolve
## requirements-dev.txt in a scratch venv, check it, freeze it under the file's header.
lock:
	set -e; scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	$(PYTHON) -m venv "$$scratch"; \
	"$$scratch/bin/pip" install --quiet -r requirements-dev.txt; \
	"$$scratch/bin/pip" check; \
	{ sed '/^[^#]/,$$d' constraints.txt; "$$scratch/bin/pip" freeze --exclude-editable; } > constraints.txt.new; \
	mv constraints.txt.new constraints.txt

## Fail when the dev venv differs from constraints.txt: a package it does not pin (added
## to requirements*.txt without `make lock`), another version, or a broken requirement.
lock-check: $(VENV)/.dev
	$(BIN)/pip check
	grep -v '^#' constraints.txt | grep . | sort > $(VENV)/.lock-expected
	$(BIN)/pip freeze --exclude-editable | sort > $(VENV)/.lock-installed
	diff -u $(VENV)/.lock-expected $(VENV)/.lock-installed || \
	  { echo "the venv does not match constraints.txt: run 'make lock' and commit it" >&2; exit 1; }

clean:
	rm -rf $(VENV) db.sqlite3 var/test*.sqlite3 var/prometheus
