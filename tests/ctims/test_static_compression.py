"""Collected static files carry gzip copies, and WhiteNoise sends them to browsers that accept gzip: the upload
page's engine (a 31 MB memory snapshot, Pyodide's wasm) reaches a site's browser at a fraction of its size."""

from __future__ import annotations

import gzip
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from whitenoise import WhiteNoise


def test_collectstatic_writes_gzip_copies_that_whitenoise_sends(tmp_path):
    root = tmp_path / "staticfiles"
    snapshot = Path(settings.BASE_DIR) / "static" / "dist" / "deid" / "engine.snapshot"
    assert snapshot.exists(), "static/dist is built by make test (node scripts/build-frontend.mjs)"
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", "--noinput", verbosity=0)
    compressed = root / "dist" / "deid" / "engine.snapshot.gz"
    assert gzip.decompress(compressed.read_bytes()) == snapshot.read_bytes()
    assert compressed.stat().st_size < snapshot.stat().st_size / 2

    def inner(environ, start_response):  # the application behind: never reached for a static file
        start_response("404 Not Found", [])
        return [b""]

    app = WhiteNoise(inner, root=root, prefix="static/")
    answers = {}
    for accept in ("gzip, deflate, br", ""):
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/static/dist/deid/engine.snapshot",
            "HTTP_ACCEPT_ENCODING": accept,
            "wsgi.url_scheme": "http",
            "SERVER_NAME": "t",
            "SERVER_PORT": "80",
        }
        status_headers = {}

        def start_response(status, headers, status_headers=status_headers):
            status_headers["status"], status_headers["headers"] = status, dict(headers)

        body = b"".join(app(environ, start_response))
        answers[accept] = (status_headers["status"], status_headers["headers"], body)
    status, headers, body = answers["gzip, deflate, br"]
    assert status.startswith("200") and headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == snapshot.read_bytes()
    status, headers, body = answers[""]
    assert status.startswith("200") and "Content-Encoding" not in headers and body == snapshot.read_bytes()
