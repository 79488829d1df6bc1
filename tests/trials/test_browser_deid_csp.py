"""The de-identification worker compiles WebAssembly (Pyodide, Tesseract) under the site's strict policy."""

from __future__ import annotations

import pytest
from django.test import Client


def _directives(header: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.parametrize(
    "path",
    ["/static/dist/deid/worker.js", "/static/dist/deid/engine.mjs", "/static/dist/viewer/decodeImageFrameWorker.js"],
)
def test_the_worker_s_scripts_may_compile_webassembly_and_nothing_more(path):
    # A dedicated worker runs under the policy its own script is served with, not the page's.
    response = Client().get(path)
    assert response.status_code == 200
    directives = _directives(response["Content-Security-Policy"])
    assert directives["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert directives["default-src"] == ["'self'"] and directives["connect-src"] == ["'self'"]


def test_pages_and_other_static_files_keep_the_strict_policy(db):
    for path in ("/accounts/login/", "/static/js/uploader.js", "/static/dist/viewer/viewer.js"):
        directives = _directives(Client().get(path)["Content-Security-Policy"])
        assert directives["script-src"] == ["'self'"], path
