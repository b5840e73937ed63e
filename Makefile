# Two commands on a fresh machine: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
# A comma inside a function call, as in $(or $(RATES),a:1$(comma)b:2).
comma := ,
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# checkov's pins conflict with ours, so it has a venv of its own (requirements-deploycheck.txt).
DEPLOYCHECK_VENV := .venv-deploycheck
DEPLOYCHECK_STAMP := $(DEPLOYCHECK_VENV)/.installed

# The embedded default: SQLite, local-memory cache, debug on, plain HTTP on loopback.
RUN_ENV := DJANGO_DEBUG=1 LOG_FORMAT=console

# Tests talk to the real PostgreSQL and Redis on loopback (override any of these to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/pipeline_whisperer
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) DJANGO_DEBUG=0 \
	DJANGO_SECRET_KEY=test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz \
	DJANGO_SECURE_SSL_REDIRECT=0 OUTREACH_SENDER_NAME="Test Sender" \
	OUTREACH_POSTAL_ADDRESS="1 Test Street, Testville" PUBLIC_BASE_URL=https://pipeline.test.example \
	OUTREACH_SEND_WINDOW="mon-sun 00:00-24:00"

.PHONY: run test lint deploy-check migrations-check admin apikey check typecheck bandit audit bench bench-api bench-webhooks bench-pipeline bench-backup bench-campaign soak clean

$(RUNTIME_STAMP): requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

$(DEPLOYCHECK_STAMP): requirements-deploycheck.txt
	test -d $(DEPLOYCHECK_VENV) || $(PYTHON) -m venv $(DEPLOYCHECK_VENV)
	$(DEPLOYCHECK_VENV)/bin/pip install --quiet --upgrade pip
	$(DEPLOYCHECK_VENV)/bin/pip install --quiet -r requirements-deploycheck.txt
	touch $@

run: $(RUNTIME_STAMP)  ## set up and serve the embedded default with demo data on http://127.0.0.1:8000
	mkdir -p var
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput --verbosity 0
	$(RUN_ENV) $(BIN)/python manage.py seed_demo
	@echo "Simulated leads (one every 2 s) and their answers keep the loop moving; logs in var/simulators.log."
	@# The login is printed last, so it is on screen above the server's own lines.
	$(RUN_ENV) $(BIN)/python manage.py demo_login
	# The simulators stop with the server (Ctrl-C): they are in this shell's process group.
	( $(RUN_ENV) $(BIN)/python manage.py simulate_leads --count 100000 --rate 0.5 -v0 & \
	  $(RUN_ENV) $(BIN)/python manage.py simulate_engagement --follow --interval 5 -v0 & \
	  wait ) > var/simulators.log 2>&1 & \
	$(RUN_ENV) $(BIN)/python manage.py runserver 127.0.0.1:8000

admin: $(RUNTIME_STAMP)  ## create a staff superuser for /admin/ (asks for a password)
	mkdir -p var
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput --verbosity 0
	$(RUN_ENV) $(BIN)/python manage.py createsuperuser

apikey: $(RUNTIME_STAMP)  ## print a new read-write API key for the embedded default
	$(RUN_ENV) $(BIN)/python manage.py apikey create "local development" --scope write

# The console's browser tests drive Debian's Chromium (never a Playwright browser download).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get install -y chromium; \
	else echo "The browser tests need Chromium: run 'apt-get install -y chromium' as root, then 'make test'."; exit 1; fi

test: $(DEV_STAMP) $(DEPLOYCHECK_STAMP) /usr/bin/chromium  ## set up and run every test against PostgreSQL and Redis on loopback
	$(TEST_ENV) $(BIN)/pytest

lint: $(DEV_STAMP)  ## ruff, and the import contracts in pyproject.toml (which package may import which)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

deploy-check: $(DEV_STAMP) $(DEPLOYCHECK_STAMP)  ## hadolint, docker compose config and the compose schema, kubernetes-validate, checkov, systemd-analyze verify (deploy/check.py)
	$(BIN)/python deploy/check.py

migrations-check: $(RUNTIME_STAMP)  ## fail when a model change has no migration (reads the models only)
	mkdir -p var
	$(TEST_ENV) DATABASE_URL=sqlite:///$(CURDIR)/var/migrations-check.sqlite3 $(BIN)/python manage.py makemigrations --check --dry-run

check: $(DEV_STAMP)  ## Django's deployment checklist under production-like settings
	$(TEST_ENV) DJANGO_SECURE_SSL_REDIRECT=1 DJANGO_ALLOWED_HOSTS=pipeline.test.example \
		$(BIN)/python manage.py check --deploy --fail-level WARNING

typecheck: $(DEV_STAMP)  ## mypy with the Django and DRF stubs (settings read from the test environment)
	$(TEST_ENV) $(BIN)/mypy

bandit: $(DEV_STAMP)  ## security lint of our packages (tests excluded; pyproject.toml [tool.bandit])
	$(BIN)/bandit -q -c pyproject.toml -r pipeline_whisperer leads health ops -x '*/tests/*'

audit: $(DEV_STAMP)  ## known vulnerabilities in the pinned runtime dependencies
	$(BIN)/pip-audit -r requirements.txt

bench: bench-api bench-webhooks bench-pipeline bench-backup  ## every benchmark (tens of minutes; results in bench/results/)

bench-api: $(DEV_STAMP)  ## CPU ms per request in process, then API load with wrk against gunicorn and bare-WSGI ceilings (apt-get install -y wrk)
	$(BIN)/python bench/api_inprocess.py
	$(BIN)/python bench/api_load.py --duration $(or $(DURATION),20) --runs $(or $(RUNS),3)

soak: $(DEV_STAMP)  ## mixed load through a stage crash, a Redis restart and a frozen broker; then checks
	$(BIN)/python bench/soak.py --minutes $(or $(MINUTES),10)

bench-webhooks: $(DEV_STAMP)  ## provider tracking webhooks (SendGrid posts of BATCHES events, Postmark) against gunicorn and a fixed-JSON ceiling (DURATION RUNS)
	$(BIN)/python bench/webhook_intake.py $(if $(BATCHES),--batches $(BATCHES)) --duration $(or $(DURATION),20) --runs $(or $(RUNS),3)

bench-pipeline: $(DEV_STAMP)  ## pipeline stages beside two bare-consumer ceilings on PostgreSQL and tansu (LEADS RUNS BATCH PROFILE=stage; results in bench/results/)
	$(BIN)/python bench/pipeline_throughput.py --leads $(or $(LEADS),20000) --runs $(or $(RUNS),3) \
		--batch-size $(or $(BATCH),500) $(if $(PROFILE),--profile $(PROFILE))

bench-backup: $(DEV_STAMP)  ## backup/restore of 1M leads on PostgreSQL against plain pg_dump/pg_restore, and with upload/download to a loopback S3 server (results in bench/results/)
	$(BIN)/python bench/backup_restore.py --leads $(or $(LEADS),1000000) --runs 3

bench-campaign: $(DEV_STAMP)  ## seeded campaigns with delayed rewards through the real services on PostgreSQL, and stopping campaigns (RATES STOP_RATES WORKERS; results in bench/results/)
	$(BIN)/python bench/campaign.py --rates $(or $(RATES),2/5/10:40$(comma)4/5/6:40$(comma)5/5/5:14) \
		--stop-rates $(or $(STOP_RATES),2/5/10:10$(comma)4/5/6:10) --workers $(or $(WORKERS),3)

clean:
	rm -rf $(VENV) $(DEPLOYCHECK_VENV) .pytest_cache .ruff_cache .grimp_cache .import_linter_cache
