"""`bench dicomweb --http --server nginx`: the production stack (deploy/nginx-ctims.conf's locations in front of
gunicorn, instances sent by nginx through X-Accel-Redirect) started by the bench on loopback, on a small series."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from trials.dicomweb import bench


def test_the_bench_nginx_is_the_deploy_site_on_loopback_and_nginx_accepts_it(tmp_path):
    config = bench.nginx_config(tmp_path, 18080, 18000, tmp_path / "images", tmp_path / "error.log")
    (tmp_path / "nginx.conf").write_text(config)
    checked = subprocess.run(  # noqa: S603
        [bench.NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert "listen 127.0.0.1:18080;" in config and "server 127.0.0.1:18000 " in config
    assert not re.search(r"ssl_|listen 443|server_name", config)
    internal = re.search(r"location /_images/ \{(.*?)\}", config, re.S).group(1)
    assert "internal;" in internal and f"alias {tmp_path}/images/;" in internal and "sendfile on;" in internal
    assert "proxy_pass http://ctims_web;" in config and "client_max_body_size 2112m;" in config
    assert f"pid {tmp_path}/nginx.pid;" in config and "daemon off;" in config


def test_the_bench_refuses_a_deploy_site_it_cannot_render(tmp_path, monkeypatch):
    changed = tmp_path / "nginx-ctims.conf"
    changed.write_text(bench.NGINX_SITE.read_text().replace("alias /var/lib/ctims/images/;", "root /srv/images;"))
    monkeypatch.setattr(bench, "NGINX_SITE", changed)
    with pytest.raises(CommandError, match="alias /var/lib/ctims/images/"):
        bench.nginx_config(tmp_path, 18080, 18000, tmp_path / "images", tmp_path / "error.log")


def test_bench_dicomweb_http_behind_nginx_checks_x_accel_redirect_and_prints_its_lines(transactional_db):
    out = io.StringIO()
    call_command(
        "bench",
        "dicomweb",
        "--http",
        "--small",
        "--slices",
        "2",
        "--runs",
        "1",
        "--clients",
        "1",
        "--server",
        "nginx",
        stdout=out,
    )
    text = out.getvalue()
    assert re.search(r"gunicorn's workers: \w+, \d+ thread\(s\) each", text), text
    assert "an instance as application/dicom is the stored file, sent by nginx (X-Accel-Redirect)" in text, text
    assert re.search(r"frame +1 client\(s\) CTIMS/nginx +median +[\d.]+ ms, +[\d.]+/s", text), text
    assert re.search(r"instance +1 client\(s\) CTIMS/nginx +median +[\d.]+ ms, +[\d.]+/s", text), text
