# syntax=docker/dockerfile:1
# Pipeline Whisperer: one image for the web process (gunicorn), the pipeline stages
# (`manage.py run_pipeline STAGE`), migrations and backups; the command picks the role.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# checkov reads the FROM lines below without expanding this ARG, so it sees no tag there.
# checkov:skip=CKV_DOCKER_7: the base image's tag is in ARG PYTHON_IMAGE above

# --- build: install the pinned dependencies into a virtualenv (binary wheels: no compiler needed) ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

# --- runtime: the virtualenv and the code, no compilers or package caches, not root ---
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=pipeline_whisperer.settings \
    PORT=8000
# pg_dump / pg_restore / psql for `manage.py backup` and `restore` (bookworm's client is PostgreSQL 15).
# Not pinned to a package version (DL3008): bookworm's security updates replace the exact version,
# which would break the build; the base image's tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY . .
# Static files (admin, API docs) are collected at build time, for WhiteNoise to serve with hashed
# names: settings.py picks the manifest storage when staticfiles/ exists, so it must exist first.
# collectstatic needs no database and no real secret; this key exists only in this RUN step.
RUN mkdir staticfiles \
    && DJANGO_DEBUG=0 OUTREACH_ENABLED=0 DJANGO_SECRET_KEY=collectstatic-at-image-build-only-never-used-to-sign-anything \
       python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app/pipeline_whisperer /app/leads /app/health /app/ops \
    && mkdir -p /app/var/backups \
    && chown -R app:app /app/var
USER 10001:10001
EXPOSE 8000
# Probes send Host: localhost, which DJANGO_ALLOWED_HOSTS must list (compose.yaml and the
# Kubernetes ConfigMap do); /health/ is exempt from the HTTPS redirect.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(urllib.request.Request(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health/liveness\", headers={'Host': 'localhost'}), timeout=4)"]
# Migrations are a separate one-shot command (`python manage.py migrate --noinput`), never run here.
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
