# Two commands on a fresh machine: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

# The embedded default: SQLite, local-memory cache, debug on, plain HTTP on loopback.
RUN_ENV := DJANGO_DEBUG=1

# Tests talk to the real PostgreSQL and Redis on loopback (override any of these to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/pipeline_whisperer
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) DJANGO_DEBUG=0 \
	DJANGO_SECRET_KEY=test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz \
	DJANGO_SECURE_SSL_REDIRECT=0

.PHONY: run test lint admin apikey check clean

$(RUNTIME_STAMP): requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(RUNTIME_STAMP)  ## set up and serve the embedded default with demo data on http://127.0.0.1:8000
	mkdir -p var
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput --verbosity 0
	$(RUN_ENV) $(BIN)/python manage.py seed_demo
	@echo "Admin login: run 'make admin' in another terminal. API key: 'make apikey'."
	$(RUN_ENV) $(BIN)/python manage.py runserver 127.0.0.1:8000

admin: $(RUNTIME_STAMP)  ## create a staff superuser for /admin/ (asks for a password)
	mkdir -p var
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput --verbosity 0
	$(RUN_ENV) $(BIN)/python manage.py createsuperuser

apikey: $(RUNTIME_STAMP)  ## print a new read-write API key for the embedded default
	$(RUN_ENV) $(BIN)/python manage.py apikey create "local development" --scope write

test: $(DEV_STAMP)  ## set up and run every test against PostgreSQL and Redis on loopback
	$(TEST_ENV) $(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: $(DEV_STAMP)  ## Django's deployment checklist under production-like settings
	$(TEST_ENV) DJANGO_SECURE_SSL_REDIRECT=1 $(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
