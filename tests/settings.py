"""Test settings: the real settings on PostgreSQL, with a fast hasher and an in-memory email outbox."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ctims")
# DEBUG is off by default; the tests run with the development settings (no HTTPS redirect, no secure
# cookies, the development key). pytest-django still renders pages with DEBUG off.
os.environ.setdefault("DEBUG", "True")

from ctims.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = ""
# No test process runs beat's jobs behind a test's back (live servers serve requests here); the embedded jobs
# are tested on their own (tests/ctims/test_embedded_beat.py).
EMBEDDED_PERIODIC_JOBS = False
WHITENOISE_AUTOREFRESH = True
# Token clients' DICOMweb permissions are read at every request in tests (a revocation shows at once); the
# cache is tested on its own in tests/trials/dicomweb/test_lean_path.py.
DICOMWEB_ACCESS_CACHE_SECONDS = 0
# The test databases need no durability against a crash of PostgreSQL itself, which no test causes: a commit
# returns without waiting for its WAL to reach the disk (about 3 ms a commit on this kind of machine, 0.15 ms
# without). Committed rows stay visible to every other connection at once, so tests that kill Django's or
# Celery's processes see exactly what they would. libpq reads PGOPTIONS, so the processes the tests start
# (servers, workers, `manage.py` commands, pg_dump) inherit it.
os.environ.setdefault("PGOPTIONS", "-c synchronous_commit=off")
