# CTIMS: `make run` serves the embedded default on 127.0.0.1:8000; `make test` runs the whole suite on PostgreSQL.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ctims
PYTEST_ARGS ?= -n 2 --dist worksteal

.PHONY: run test install install-dev frontend services system-deps lint check clean prod-check bench-orthanc-deps bench-dicomweb

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (install python3.11 or set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(PY) requirements.txt
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The browser bundles (static/dist/, ignored by git): npm ci when node_modules is missing or older than the
# lock file (npm writes node_modules/.package-lock.json on every install), then esbuild, about a second.
node_modules/.package-lock.json: package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are required for the viewer (install nodejs and npm)"; exit 1; }
	npm ci --no-audit --no-fund
	touch $@

frontend: node_modules/.package-lock.json
	node scripts/build-frontend.mjs

# DEBUG is off unless asked for (README); the embedded default on loopback turns it on.
run: export DEBUG = True
run: install frontend
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ingest_sweep --grace 0
	$(PY) manage.py load_demo
	$(PY) manage.py load_demo_reads
	@test -d var/demo-scans || $(PY) manage.py demo_scans var/demo-scans
	@echo "Drop a folder such as var/demo-scans/DEMO-SEO-001/BL on the upload page (log in as seoul@demo.ctims)."
	@echo "Operator admin: http://127.0.0.1:8000/operator/ as operator@demo.ctims (printed above, with its two-factor secret);"
	@echo "  for your own operator account: $(PY) manage.py createsuperuser (operators always sign in with a second factor)."
	@echo "Serving CTIMS on http://127.0.0.1:8000/ (stop with Ctrl-C)"
	$(PY) manage.py runserver 127.0.0.1:8000

# Start the local PostgreSQL and Redis if they are installed but stopped.
services:
	@if command -v pg_lsclusters >/dev/null; then \
	  pg_lsclusters --no-header | awk '$$4 != "online" {print $$1, $$2}' | while read ver name; do \
	    pg_ctlcluster --skip-systemctl-redirect $$ver $$name start; done; \
	fi
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	@pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || { command -v redis-server >/dev/null && \
	  mkdir -p /var/lib/redis /var/log/redis && \
	  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
	    --dir /var/lib/redis --logfile /var/log/redis/ci.log; } || true
	@# RabbitMQ, the recommended broker: the readiness test checks /readyz against it.
	@rabbitmq-diagnostics -q ping >/dev/null 2>&1 || { command -v rabbitmq-server >/dev/null && \
	  rabbitmq-server -detached && rabbitmqctl -q await_startup --timeout 60; } || true
	@url="$(DATABASE_URL)"; name="$${url##*/}"; server="$${url%/*}/postgres"; \
	  psql "$$server" -tAc "SELECT 1 FROM pg_database WHERE datname='$$name'" | grep -q 1 || \
	  psql "$$server" -qc "CREATE DATABASE \"$$name\""

# What the tests need from Debian: Chromium for the browser tests (never Playwright's own download), Korean
# fonts for its screenshots, dicom3tools' dciodvfy to validate the structured reports, and redis-server, which
# the durability tests start on their own ports to stop and restart, and nginx (never started: `nginx -t` checks
# the deploy/ example) with openssl for its throwaway certificate.
system-deps:
	@{ command -v chromium && command -v dciodvfy && command -v redis-server && command -v nginx && command -v openssl && test -f /usr/share/tesseract-ocr/5/tessdata/kor.traineddata && fc-list | grep -qi nanum; } >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-nanum dicom3tools redis-server nginx-light openssl tesseract-ocr tesseract-ocr-kor >/dev/null; }

# Optional, for the DICOMweb benchmark only (never the tests): Debian's Orthanc and its DICOMweb plugin. The
# bench starts its own Orthanc on loopback (DICOM port off, a config in a temporary folder) and stops it after;
# the package's own service is disabled so nothing else listens.
bench-orthanc-deps:
	@{ command -v Orthanc && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so; } >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    orthanc orthanc-dicomweb >/dev/null; \
	  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now orthanc >/dev/null 2>&1 || true; fi; }

# Frames and instances over HTTP with 1 and 8 clients, side by side with Orthanc serving the same files.
bench-dicomweb: install-dev services bench-orthanc-deps
	DATABASE_URL=$(DATABASE_URL) $(PY) manage.py bench dicomweb --http --orthanc --slices 48

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

check: install-dev services
	DEBUG=True DATABASE_URL=$(DATABASE_URL) $(PY) manage.py check
	DEBUG=True DATABASE_URL=$(DATABASE_URL) $(PY) manage.py makemigrations --check --dry-run

test: install-dev frontend services system-deps lint check
	DATABASE_URL=$(DATABASE_URL) $(VENV)/bin/pytest $(PYTEST_ARGS)

# The production stack on loopback (gunicorn with deploy/gunicorn.conf.py, a Celery worker, PostgreSQL, a Redis of
# the test's own, DEBUG off): log in, upload through STOW, pass QC, fetch a frame; /readyz follows the broker.
prod-check: install-dev services system-deps
	DATABASE_URL=$(DATABASE_URL) $(VENV)/bin/pytest -p no:cacheprovider -n 0 -m prod tests/test_production.py

clean:
	rm -rf $(VENV) var
