"""The production path: health and readiness, metrics, the environment template, and the whole stack on loopback.

The stack test (marker `prod`, `make prod-check`) starts gunicorn with deploy/gunicorn.conf.py and a Celery
worker, with DEBUG off, on the test database and a Redis of its own, and walks a visit from log-in to a frame.
"""

from __future__ import annotations

import ast
import contextlib
import http.server
import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from unittest.mock import ANY

import pytest
import requests
from django.conf import settings

from ctims import health
from tests.conftest import PASSWORD, build_world, upload_files
from tests.trials.durability import (
    MotoServer,
    RedisServer,
    celery_on,
    free_port,
    multipart,
    stop,
    use_storages,
    wait_for,
)
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Timepoint, Upload

ROOT = Path(__file__).resolve().parents[1]


# --- /healthz and /readyz -------------------------------------------------------------------------------------


def test_healthz_answers_without_a_log_in(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_database_migrations_and_store_answer(db, client, stores):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok", "store": "ok"}


def test_readyz_is_not_ready_while_the_broker_is_down_and_ready_again_when_it_is_back(
    db, client, stores, settings, tmp_path
):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    settings.CELERY_BROKER_URL = redis_server.url
    try:
        with celery_on(redis_server.url):
            assert client.get("/readyz").status_code == 200
            redis_server.kill()
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["checks"]["broker"] == "failing"
            assert response.json()["checks"]["database"] == "ok"
            redis_server.start()
            assert client.get("/readyz").status_code == 200
    finally:
        redis_server.kill()


AMQP = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def test_readyz_checks_a_rabbitmq_broker_too(db, client, stores, settings):
    """RabbitMQ (the recommended broker) answers readiness; a broker URL nobody listens on does not."""
    import kombu

    with kombu.Connection(AMQP, connect_timeout=5) as conn:  # `make services` starts the machine's RabbitMQ
        conn.ensure_connection(max_retries=3)
    for url, expected in ((AMQP, "ok"), (f"amqp://guest:guest@127.0.0.1:{free_port()}//", "failing")):
        settings.CELERY_BROKER_URL = url
        with celery_on(url):
            assert client.get("/readyz").json()["checks"]["broker"] == expected


def test_readyz_is_not_ready_while_a_migration_is_unapplied(db, client, stores, monkeypatch):
    monkeypatch.setattr(health, "_migrated", False)
    monkeypatch.setattr(
        "django.db.migrations.executor.MigrationExecutor.migration_plan", lambda self, targets: [("pending", False)]
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "failing"


def test_readyz_is_not_ready_when_the_store_cannot_be_reached(db, client, stores):
    (stores / "images").write_bytes(b"")  # the store's folder is a file: a mount that failed, a wrong path
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["store"] == "failing"


def test_readyz_reaches_an_s3_store_and_says_when_it_cannot(db, client, settings):
    server = MotoServer()
    server.start()
    try:
        entries = server.storages(prefix=f"r{uuid.uuid4().hex[:12]}")
        use_storages(settings, entries)
        assert client.get("/readyz").json()["checks"]["store"] == "ok"
        # A bucket that does not exist (a wrong name, or deleted): every write would fail. It was "ok": the probe
        # asked for an object, and a missing object and a missing bucket both answer 404.
        missing = {
            name: {**entry, "OPTIONS": {**entry["OPTIONS"], "bucket_name": f"{entry['OPTIONS']['bucket_name']}-gone"}}
            for name, entry in entries.items()
        }
        use_storages(settings, missing)
        assert client.get("/readyz").json()["checks"]["store"] == "failing"
        for entry in entries.values():
            entry["OPTIONS"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"  # nobody listens there
        use_storages(settings, entries)
        assert client.get("/readyz").json()["checks"]["store"] == "failing"
    finally:
        use_storages(settings, {})
        server.stop()


def test_probes_are_not_redirected_to_https(client, settings):
    """The supervisor and the scraper speak plain HTTP to loopback, behind the TLS proxy."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 301


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"])
def test_probes_answer_on_the_loopback_address_when_allowed_hosts_names_only_the_public_name(
    db, client, stores, settings, host
):
    """The README's `curl http://127.0.0.1:8000/readyz`, the supervisor and the local Prometheus ask the loopback
    address while ALLOWED_HOSTS names the public host only (as the environment template has it): they were 400."""
    settings.ALLOWED_HOSTS = ["ctims.example.org"]
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path, HTTP_HOST=host).status_code == 200, path
    # Only the probes, and only on a loopback name: pages and other names are still refused.
    assert client.get("/accounts/login/", HTTP_HOST=host).status_code == 400
    assert client.get("/healthz", HTTP_HOST="evil.example").status_code == 400
    assert client.get("/metrics", HTTP_HOST="127.0.0.1.evil.example").status_code == 400


# --- /metrics ---------------------------------------------------------------------------------------------------


def test_metrics_are_refused_to_a_remote_address_without_the_token(db, client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 404
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1


def test_metrics_need_the_token_when_one_is_set(db, client, settings):
    settings.METRICS_TOKEN = "scrape-secret"  # noqa: S105
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200


def test_metrics_count_the_ingest_and_frames_without_any_identifier_in_a_label(world, api, stores, on_commit_now):
    files = synthesize_ct_series(real_ct_template(large=False), slices=3, seed="metrics")
    stranger = synthesize_ct_series(real_ct_template(large=False), slices=1, seed="metrics-other", patient_id="P-OTHER")
    upload_files(world.cora, "ALPHA-SEO-001", files + stranger)
    instance = Instance.objects.select_related("series__study").first()
    frame = (
        f"/dicomweb/trials/ALPHA/studies/{instance.series.study.study_instance_uid}"
        f"/series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}/frames/1"
    )
    answer = api.as_(world.alice).get(frame, HTTP_ACCEPT="multipart/related; type=application/octet-stream")
    assert answer.status_code == 200
    text = api.get("/metrics").content.decode()
    assert re.search(r'ctims_ingest_files(_total)?\{code="",state="accepted"\} 3\.0', text), text
    assert re.search(r'ctims_ingest_files(_total)?\{code="other_patient",state="rejected"\} 1\.0', text)
    assert re.search(r"ctims_uploads_received(_total)? 1\.0", text)
    assert re.search(r"ctims_frames_served_total [1-9]", text)
    assert re.search(r"ctims_deidentify_seconds_count [1-9]", text)
    assert 'route="dicomweb-trial-frames"' in text
    labels = " ".join(re.findall(r"\{[^}]*\}", text))
    for identifying in (
        "ALPHA-SEO-001",
        "P-OTHER",
        instance.sop_instance_uid,
        instance.series.study.study_instance_uid,
        world.trial.code,
    ):
        assert identifying not in labels


def test_the_broker_queue_depth_is_zero_when_nothing_waits_and_absent_when_the_broker_is_down(
    db, client, settings, tmp_path
):
    """On Redis a queue with nothing waiting does not exist (its list is deleted when emptied): the gauge left
    /metrics whenever the installation was idle, as it does when the broker is down."""
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    settings.CELERY_BROKER_URL = redis_server.url
    try:
        with celery_on(redis_server.url):
            assert re.search(r"^ctims_broker_queue_depth 0\.0$", client.get("/metrics").content.decode(), re.M)
            redis_server.kill()
            assert "ctims_broker_queue_depth" not in client.get("/metrics").content.decode()
    finally:
        redis_server.kill()


def test_the_method_label_takes_only_the_methods_http_defines(db, client):
    """A client chooses the method's name (nginx passes any word of capitals on): each new word was a new series
    of the request histogram, and the client's own text in a label."""
    client.generic("XPATIENTNAME", "/accounts/login/")
    client.generic("FOOBAR", "/healthz")
    client.get("/accounts/login/")
    text = client.get("/metrics").content.decode()
    methods = set(re.findall(r'ctims_http_request_seconds_count\{[^}]*method="([^"]*)"', text))
    assert "GET" in methods
    assert "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, methods


# --- the environment file template -----------------------------------------------------------------------------


def settings_variables() -> set[str]:
    """Every environment variable ctims/settings.py reads, found in its syntax tree (not by a list kept by hand)."""
    tree = ast.parse((ROOT / "ctims/settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call | ast.Subscript):
            continue
        if isinstance(node, ast.Subscript):
            target, argument = node.value, node.slice
        else:
            target, argument = node.func, node.args[0] if node.args else None
        text = ast.unparse(target)
        reads_env = text in ("os.environ.get", "os.environ", "os.getenv", "envbool", "envint", "envlist")
        if reads_env and isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            names.add(argument.value)
    # image_store(bucket_variable, ...) reads the bucket variable it is given.
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "image_store":
            names.add(node.args[0].value)
    return names


def test_the_environment_template_lists_every_variable_the_settings_read():
    template = (ROOT / "deploy/ctims.env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", template, flags=re.MULTILINE))
    found = settings_variables()
    assert {"DATABASE_URL", "SECRET_KEY", "IMAGE_STORE_BUCKET", "METRICS_TOKEN"} <= found  # the parser works
    assert found - listed == set()


def test_the_mail_relay_is_configured_from_the_environment():
    """The template's SMTP backend could only reach localhost:25 (EMAIL_HOST and the rest were not read), and the
    README's installation puts no mail server there: invitations failed on a host that relays through another."""
    relay = {
        "EMAIL_HOST": "smtp.hospital.example",
        "EMAIL_PORT": "587",
        "EMAIL_HOST_USER": "ctims",
        "EMAIL_HOST_PASSWORD": "relay-secret",
        "EMAIL_USE_TLS": "True",
        "EMAIL_TIMEOUT": "20",
    }
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD, s.EMAIL_USE_TLS, s.EMAIL_TIMEOUT)",
        ],
        cwd=ROOT,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "ctims.settings", "DEBUG": "True"} | relay,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["smtp.hospital.example", "587", "ctims", "relay-secret", "True", "20"]


def test_every_unit_may_write_the_folders_its_environment_names():
    """Each process that loads CTIMS writes the var folder and Prometheus' multiprocess folder (its metrics are made
    at import): a unit with a read-only file system must list both as writable. ctims-beat did not list the metrics
    folder and stopped at its start with "Read-only file system", again and again."""
    template = (ROOT / "deploy/ctims.env.example").read_text()
    folders = {
        name: re.search(rf"^{name}=(\S+)$", template, re.M).group(1)
        for name in ("CTIMS_VAR_DIR", "PROMETHEUS_MULTIPROC_DIR")
    }
    units = sorted((ROOT / "deploy").glob("*.service"))
    assert {unit.name for unit in units} >= {"ctims-web.service", "ctims-worker.service", "ctims-beat.service"}
    for unit in units:
        text = unit.read_text()
        if "EnvironmentFile=/etc/ctims/ctims.env" not in text or not re.search(
            r"^ProtectSystem=(strict|full)", text, re.M
        ):
            continue
        writable = " ".join(re.findall(r"^ReadWritePaths=(.*)$", text, re.M)).split()
        for name, folder in folders.items():
            assert folder in writable, f"{unit.name} cannot write {name} ({folder})"


# --- the whole stack on loopback --------------------------------------------------------------------------------


class Browser:
    """A client that keeps cookies by hand: the production cookies are Secure, and the proxy's TLS is not here."""

    def __init__(self, base: str):
        self.base, self.cookies = base, {}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {}) | {
            "X-Forwarded-Proto": "https",  # what nginx says after terminating TLS
            "Referer": f"https://{self.base.split('//')[1]}/",
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
        }
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        response = requests.request(
            method, self.base + path, headers=headers, allow_redirects=False, timeout=60, **kwargs
        )
        self.cookies.update(response.cookies.get_dict())
        return response

    def log_in(self, email: str) -> None:
        page = self.request("GET", "/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = self.request(
            "POST",
            "/accounts/login/",
            data={"username": email, "password": PASSWORD, "csrfmiddlewaretoken": token},
        )
        assert answer.status_code == 302, answer.text[:2000]
        assert "sessionid" in self.cookies


def production_env(tmp_path: Path, broker_url: str, queue: str) -> dict:
    db = settings.DATABASES["default"]
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "ctims.settings",
        "DEBUG": "False",
        "SECRET_KEY": "prod-check-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "AUDIT_HMAC_KEY": settings.AUDIT_HMAC_KEY,  # the test's events and the stack's share one chain
        "ALLOWED_HOSTS": "127.0.0.1",
        # The cast's passwords were hashed with the tests' fast hasher; the stack must be able to check them.
        "PASSWORD_HASHERS": ",".join(settings.PASSWORD_HASHERS),
        "BEHIND_TLS_PROXY": "True",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": broker_url,
        "CELERY_QUEUE": queue,
        "CTIMS_VAR_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GUNICORN_WORKERS": "2",
    }


@pytest.mark.prod
def test_the_production_stack_takes_a_visit_from_log_in_to_a_frame(transactional_db, tmp_path):
    world = build_world()
    if hasattr(world.trial, "two_factor_roles"):
        # Two-factor log-in has its own tests; this one is about the stack, logged in with passwords.
        type(world.trial).objects.filter(pk=world.trial.pk).update(two_factor_roles=[])
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    queue = "prod-check"
    env = production_env(tmp_path, redis_server.url, queue) | {"GUNICORN_BIND": f"127.0.0.1:{port}"}
    log = (tmp_path / "stack.log").open("ab")
    bin_dir = Path(sys.executable).parent
    web = subprocess.Popen(
        [str(bin_dir / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "ctims.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    worker = subprocess.Popen(
        [str(bin_dir / "celery"), "-A", "ctims", "worker", "-Q", queue, "-c", "1", "-l", "WARNING", "--without-gossip"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:

        def answers() -> bool:
            try:
                return requests.get(base + "/healthz", timeout=5).status_code == 200
            except requests.RequestException:  # not listening yet, or its workers still loading
                return False

        wait_for(answers, 60, "gunicorn to serve /healthz", tmp_path / "stack.log")
        assert requests.get(base + "/readyz", timeout=10).status_code == 200
        # DEBUG is off: an unknown host is refused, and a page over plain HTTP is sent to HTTPS.
        assert requests.get(base + "/healthz", headers={"Host": "evil.example"}, timeout=5).status_code == 400
        assert requests.get(base + "/accounts/login/", allow_redirects=False, timeout=5).status_code == 301

        cora = Browser(base)
        cora.log_in("cora@example.org")
        opened = cora.request("POST", "/api/trials/ALPHA/subjects/ALPHA-SEO-001/visits/BL/uploads/")
        assert opened.status_code == 201, opened.text
        files = synthesize_ct_series(real_ct_template(large=False), slices=4, seed="prod-check")
        body, content_type = multipart(files)
        stowed = cora.request(
            "POST",
            opened.json()["stow_url"],
            data=body,
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        )
        assert stowed.status_code in (200, 202), stowed.text
        finished = cora.request("POST", f"/api/trials/ALPHA/uploads/{opened.json()['id']}/finish/")
        assert finished.status_code == 200, finished.text
        upload = Upload.objects.get(pk=opened.json()["id"])
        timepoint = Timepoint.objects.get(pk=upload.timepoint_id)
        wait_for(
            lambda: Timepoint.objects.get(pk=timepoint.pk).state == "uploaded",
            90,
            "the Celery worker to take the visit to 'uploaded'",
            tmp_path / "stack.log",
        )
        assert Instance.objects.filter(series__study__timepoint=timepoint).count() == 4

        quinn = Browser(base)
        quinn.log_in("quinn@example.org")
        qc = "/trials/ALPHA/subjects/ALPHA-SEO-001/visits/BL/qc/"
        assert quinn.request("POST", qc + "pass/", data={"comment": ""}).status_code == 302
        assert Timepoint.objects.get(pk=timepoint.pk).state == Timepoint.State.READY_FOR_READ

        instance = Instance.objects.select_related("series__study").filter(series__study__timepoint=timepoint).first()
        frame = quinn.request(
            "GET",
            f"/dicomweb/trials/ALPHA/studies/{instance.series.study.study_instance_uid}"
            f"/series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}/frames/1",
            headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
        )
        assert frame.status_code == 200
        assert len(frame.content) >= 128 * 128 * 2

        # Both gunicorn workers and the Celery worker count into one set of figures (multiprocess mode).
        scraped = requests.get(base + "/metrics", timeout=10).text
        assert re.search(r"ctims_deidentify_seconds_count 4\.0", scraped), scraped
        assert re.search(r"ctims_frames_served_total 1\.0", scraped)

        # The broker goes away: not ready (the web process itself stays alive); back: ready again.
        redis_server.kill()
        wait_for(lambda: requests.get(base + "/readyz", timeout=10).status_code == 503, 30, "/readyz to turn not ready")
        assert requests.get(base + "/healthz", timeout=5).status_code == 200
        redis_server.start()
        wait_for(lambda: requests.get(base + "/readyz", timeout=10).status_code == 200, 30, "/readyz to turn ready")
    finally:
        stop(worker)
        stop(web)
        redis_server.kill()
    assert world.trial.code == "ALPHA"


# --- upgrades ---------------------------------------------------------------------------------------------------

# What would stop the read path while a migration runs on the instance index: a rewrite of the table (a column's
# type changed, a column added with a volatile default) or a lock held through a full scan (SET NOT NULL).
# Writes of every instance row a migration makes (UPDATE, DELETE), each told to operators in CHANGELOG.md: the
# migration, and words of its row in a release's migration table. A new one fails the test until it is written
# there (what it does to a live installation) and here.
INSTANCE_ROW_WRITES = {
    "trials.0014_qido_matching_keys_backfill": "one UPDATE writes every instance row that has metadata once",
}

INSTANCE = r'(?:ONLY\s+)?(?:"?public"?\.)?"?trials_instance"?(?![\w"])'
TARGETS_INSTANCE = re.compile(
    rf"^\s*(?:ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?{INSTANCE}"
    rf"|CREATE\s+(?:UNIQUE\s+)?INDEX\b.*?\bON\s+{INSTANCE}"
    rf"|(?:LOCK|VACUUM|CLUSTER|TRUNCATE|REINDEX)\b.*?{INSTANCE}"
    rf"|UPDATE\s+{INSTANCE}|DELETE\s+FROM\s+{INSTANCE})",
    re.IGNORECASE | re.DOTALL,
)
# What rewrites the table or holds ACCESS EXCLUSIVE (or holds back writes) on it through a scan or a build.
REWRITES_OR_BLOCKS = {
    "a column type change (a rewrite)": r"ALTER\s+COLUMN\s+\S+\s+(?:SET\s+DATA\s+)?TYPE\b",
    "a stored generated, serial or identity column (a rewrite)": r"ADD\s+COLUMN\b[^,]*?\b(?:GENERATED\b|(?:small|big)?serial\b)",
    "a UNIQUE or PRIMARY KEY column or constraint built under ACCESS EXCLUSIVE": r"ADD\s+(?:COLUMN|CONSTRAINT)\b[^,]*?\b(?:UNIQUE|PRIMARY\s+KEY)\b(?!.*\bUSING\s+INDEX\b)",
    "a CHECK or FOREIGN KEY constraint validated under lock (add it NOT VALID, then VALIDATE)": r"ADD\s+CONSTRAINT\b[^,]*?\b(?:CHECK|FOREIGN\s+KEY)\b(?!.*\bNOT\s+VALID\b)",
    "a plain CREATE INDEX (holds back every write through the build)": r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY\b)",
    "LOCK TABLE": r"^\s*LOCK\b",
    "VACUUM FULL": r"^\s*VACUUM\b.*\bFULL\b",
    "CLUSTER": r"^\s*CLUSTER\b",
    "TRUNCATE": r"^\s*TRUNCATE\b",
    "a plain REINDEX": r"^\s*REINDEX\b(?!.*\bCONCURRENTLY\b)",
    "a table rewrite (tablespace, logged state, access method)": r"\bSET\s+(?:TABLESPACE|LOGGED|UNLOGGED|ACCESS\s+METHOD)\b",
}
# A default the database computes for each row rewrites the table; a bound parameter or a literal does not.
ADD_COLUMN_DEFAULT = re.compile(
    r"ADD\s+COLUMN\b.*?\bDEFAULT\s+(.+?)(?:\s+(?:NOT\s+NULL|NULL|CONSTRAINT|CHECK|REFERENCES)\b|,|;|$)",
    re.IGNORECASE | re.DOTALL,
)
CONSTANT = re.compile(
    r"^\(?\s*(?:%s|NULL|TRUE|FALSE|-?\d+(?:\.\d+)?|'(?:[^']|'')*')(?:\s*::\s*[\w ]+(?:\(\d+\))?)?\s*\)?$", re.IGNORECASE
)
SET_NOT_NULL = re.compile(r'ALTER\s+COLUMN\s+"?(\w+)"?\s+SET\s+NOT\s+NULL', re.IGNORECASE)
NOT_NULL_CHECK = re.compile(
    r'ADD\s+CONSTRAINT\s+"?(\w+)"?\s+CHECK\s*\(\s*\(?\s*"?(\w+)"?\s+IS\s+NOT\s+NULL\s*\)?\s*\)\s*NOT\s+VALID',
    re.IGNORECASE,
)
VALIDATE = re.compile(r'VALIDATE\s+CONSTRAINT\s+"?(\w+)"?', re.IGNORECASE)


def instance_index_findings(statements: list[dict]) -> tuple[list[str], dict[str, list[str]]]:
    """What in `statements` (each {"migration", "sql"}, as executed) rewrites or blocks trials_instance after the
    migration that creates it, and each migration's UPDATE and DELETE statements on it."""
    creators = {s["migration"] for s in statements if re.match(rf"\s*CREATE\s+TABLE\s+{INSTANCE}", s["sql"], re.I)}
    offending, writes = [], {}
    pending_checks, valid_checks = {}, set()
    for statement in statements:
        sql, migration = statement["sql"], statement["migration"]
        if migration in creators or not TARGETS_INSTANCE.match(sql):
            continue
        where = f"{migration}: {' '.join(sql.split())[:200]}"
        if re.match(rf"\s*(?:UPDATE\s+{INSTANCE}|DELETE\s+FROM\s+{INSTANCE})", sql, re.I):
            writes.setdefault(migration, []).append(where)
            continue
        offending += [
            f"{what} - {where}" for what, pattern in REWRITES_OR_BLOCKS.items() if re.search(pattern, sql, re.I | re.S)
        ]
        for default in ADD_COLUMN_DEFAULT.findall(sql):
            if not CONSTANT.match(default.strip()):
                offending.append(f"a default computed for each row (a rewrite) - {where}")
        for name, column in NOT_NULL_CHECK.findall(sql):
            pending_checks[name] = column
        valid_checks |= {pending_checks[name] for name in VALIDATE.findall(sql) if name in pending_checks}
        offending += [
            f"SET NOT NULL without a validated CHECK ({column} IS NOT NULL) (a scan under ACCESS EXCLUSIVE) - {where}"
            for column in SET_NOT_NULL.findall(sql)
            if column not in valid_checks
        ]
    return offending, writes


@contextlib.contextmanager
def scratch_database():
    """A PostgreSQL database of the test's own on DATABASE_URL's server, dropped at the end: its URL."""
    import urllib.parse

    import dj_database_url
    import psycopg

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ctims")
    config = dj_database_url.parse(url)
    if "postgresql" not in config["ENGINE"]:
        # The suite runs on PostgreSQL (make test, CI); the promise is PostgreSQL's, so no other database passes it.
        pytest.fail(f"the migration checks need PostgreSQL; DATABASE_URL names {config['ENGINE']}")
    name = f"ctims_migrate_{uuid.uuid4().hex[:12]}"
    admin = {key.lower(): config[key] or None for key in ("HOST", "PORT", "USER", "PASSWORD")}
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **admin) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_on(url: str, var_dir: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`python *args` in the repository with the test settings on the database at `url`."""
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tests.settings", **env}
    env["CTIMS_VAR_DIR"] = str(var_dir)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def migrate_statements(tmp_path_factory) -> list[dict]:
    """Every statement `manage.py migrate` executes from zero on a scratch PostgreSQL database of this test's own
    (DATABASE_URL's server), with the migration that ran it: tests/migrate_capture.py."""
    import json

    out = tmp_path_factory.mktemp("migrate") / "statements.json"
    with scratch_database() as url:
        ran = run_on(url, out.parent, "-m", "tests.migrate_capture", str(out))
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(out.read_text())


def test_migrate_gives_up_a_lock_it_cannot_get_instead_of_holding_back_reads(tmp_path):
    """Even a catalogue change (0015 adds a nullable column to the instance index) waits for ACCESS EXCLUSIVE
    behind a long reader (a backup's pg_dump, an open transaction), and every new read of the table waits behind
    it: searches stopped until the reader ended. migrate now gives up after MIGRATE_LOCK_TIMEOUT_SECONDS, stops
    at that migration, and is run again; the concurrent index builds of 0020 still wait as long as they must."""
    import psycopg

    with scratch_database() as url:
        assert run_on(url, tmp_path, "manage.py", "migrate", "-v0", "trials", "0014").returncode == 0
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as reader:
            reader.execute("SELECT count(*) FROM trials_instance")  # its transaction holds ACCESS SHARE
            stopped = run_on(url, tmp_path, "manage.py", "migrate", "-v0", timeout=60, MIGRATE_LOCK_TIMEOUT_SECONDS="1")
            assert stopped.returncode != 0 and "lock timeout" in stopped.stderr
            applied = {name for (name,) in reader.execute("SELECT name FROM django_migrations WHERE app = 'trials'")}
            assert "0014_qido_matching_keys_backfill" in applied and "0015_instance_deid_record" not in applied
            # 0020 alone, behind the same open transaction: a concurrent build waits for it, and only for it.
            reader.rollback()
            assert run_on(url, tmp_path, "manage.py", "migrate", "-v0", "trials", "0019").returncode == 0
            reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # a snapshot held, as pg_dump's
            reader.execute("SELECT count(*) FROM trials_instance")
            building = subprocess.Popen(
                [sys.executable, "manage.py", "migrate", "-v0", "trials", "0020"],
                cwd=ROOT,
                env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tests.settings"}
                | {"CTIMS_VAR_DIR": str(tmp_path), "MIGRATE_LOCK_TIMEOUT_SECONDS": "1"},
                stderr=subprocess.PIPE,
                text=True,
            )
            with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as watcher:
                wait_for(
                    lambda: (
                        building.poll() is not None
                        or watcher.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%%'"
                            " AND wait_event_type = 'Lock'"
                        ).fetchone()[0]
                    ),
                    30,
                    "the concurrent build to wait",
                )
                assert building.poll() is None, building.stderr.read()[-2000:]
                watcher.execute("SELECT pg_sleep(1.5)")  # past the 1 s lock_timeout
                assert building.poll() is None
            reader.rollback()
            assert building.wait(timeout=60) == 0, building.stderr.read()[-2000:]
        finished = run_on(url, tmp_path, "manage.py", "migrate", "-v0", timeout=60, MIGRATE_LOCK_TIMEOUT_SECONDS="1")
        assert finished.returncode == 0, finished.stderr[-2000:]


def test_no_migration_rewrites_or_blocks_reads_of_the_instance_index(migrate_statements):
    """CHANGELOG.md promises it per release. Checked on what `migrate` really executes from zero (RunPython's
    statements too, with a row in the index for a data migration to find), not on `sqlmigrate`'s text: nothing
    after the table's creation rewrites it or locks it through a scan or a build, and every UPDATE or DELETE of
    its rows is in INSTANCE_ROW_WRITES with the CHANGELOG row that tells operators about it."""
    offending, writes = instance_index_findings(migrate_statements)
    assert offending == []
    assert sorted(writes) == sorted(INSTANCE_ROW_WRITES), writes
    changelog = (ROOT / "CHANGELOG.md").read_text()
    for migration, words in INSTANCE_ROW_WRITES.items():
        rows = [line for line in changelog.splitlines() if line.startswith(f"| `{migration}` |")]
        assert rows and words in rows[0], migration


def test_the_migration_check_sees_what_runpython_executes(migrate_statements):
    """The capture holds the table's creation, 0014's UPDATE (run by RunPython, invisible to sqlmigrate) and
    0020's concurrent builds; and the check refuses each kind of statement it is there to refuse."""

    def ran(migration: str, start: str) -> bool:
        return any(
            s["migration"] == migration and " ".join(s["sql"].split()).startswith(start) for s in migrate_statements
        )

    assert ran("trials.0002_ingest_index", 'CREATE TABLE "trials_instance" (')
    assert ran("trials.0014_qido_matching_keys_backfill", "UPDATE trials_instance SET bits_allocated")
    assert ran("trials.0020_instance_indexes_concurrently", 'CREATE INDEX CONCURRENTLY "trials_instance_series_number"')

    def check(*statements: str):
        return instance_index_findings([{"migration": "trials.9999_new", "sql": s} for s in statements])

    refused = [
        'ALTER TABLE "trials_instance" ALTER COLUMN "sop_class_uid" TYPE varchar(128) USING "sop_class_uid"::varchar(128)',
        'ALTER TABLE "trials_instance" ADD COLUMN "made" timestamp with time zone DEFAULT now() NOT NULL',
        'ALTER TABLE "trials_instance" ADD COLUMN "key" uuid DEFAULT (gen_random_uuid()) NOT NULL',
        'ALTER TABLE "trials_instance" ALTER COLUMN "metadata" SET NOT NULL',
        'CREATE INDEX "trials_instance_x" ON "trials_instance" ("bits_allocated")',
        'CREATE UNIQUE INDEX "trials_instance_y" ON "trials_instance" ("storage_key")',
        'ALTER TABLE "trials_instance" ADD CONSTRAINT "c" CHECK ("bits_allocated" > 0)',
        'ALTER TABLE "trials_instance" ADD CONSTRAINT "u" UNIQUE ("storage_key")',
        'LOCK TABLE "trials_instance" IN ACCESS EXCLUSIVE MODE',
        "VACUUM FULL trials_instance",
        "CLUSTER trials_instance USING trials_instance_series_number",
        'ALTER TABLE "trials_instance" ADD COLUMN "n" bigint GENERATED ALWAYS AS IDENTITY',
    ]
    for statement in refused:
        assert check(statement)[0], statement
    allowed = [
        'ALTER TABLE "trials_instance" ADD COLUMN "layout" jsonb NULL',
        'ALTER TABLE "trials_instance" ADD COLUMN "kept" boolean DEFAULT %s NOT NULL',
        'ALTER TABLE "trials_instance" ADD COLUMN "kind" varchar(16) DEFAULT \'\' NOT NULL',
        'ALTER TABLE "trials_instance" ALTER COLUMN "kept" DROP DEFAULT',
        'CREATE INDEX CONCURRENTLY "trials_instance_z" ON "trials_instance" ("bits_allocated")',
        'CREATE INDEX "trials_series_x" ON "trials_series" ("modality")',
        'ALTER TABLE "reads_read" ADD CONSTRAINT "f" FOREIGN KEY ("sr_id") REFERENCES "trials_instance" ("id")',
    ]
    for statement in allowed:
        assert check(statement) == ([], {}), statement
    assert check(
        'ALTER TABLE "trials_instance" ADD CONSTRAINT "m_nn" CHECK ("metadata" IS NOT NULL) NOT VALID',
        'ALTER TABLE "trials_instance" VALIDATE CONSTRAINT "m_nn"',
        'ALTER TABLE "trials_instance" ALTER COLUMN "metadata" SET NOT NULL',
    ) == ([], {})
    assert check('UPDATE "trials_instance" SET "bits_allocated" = 16', "DELETE FROM trials_instance WHERE id = 1")[
        1
    ] == {"trials.9999_new": [ANY, ANY]}


# 0.2.0 needs the services stopped while it migrates (README). From the release after it, old processes keep
# serving while `migrate` runs, and their INSERTs name only the columns they know: a NOT NULL column a migration
# adds must keep a default in the database (declare it with `db_default`, not `default`: Django drops a `default`
# from the table once the column is filled). The last migration of each of our apps that drops one (0.2.0's own
# trials.0024 already keeps its default, and is checked), and the migrations of dependencies that already do it
# (a dependency upgrade that brings a new one is a release that stops the services).
RELEASED_WITH_SERVICES_STOPPED = {"trials": 23, "reads": 11, "ctims": 4}
DEPENDENCIES_DROPPING_DEFAULTS = {
    "axes.0009_add_session_hash",
    "otp_static.0002_throttling",
    "otp_static.0003_add_timestamps",
    "otp_totp.0002_auto_20190420_0723",
    "otp_totp.0003_add_timestamps",
}
ADD_NOT_NULL = re.compile(
    r'^\s*ALTER\s+TABLE\s+"?(\w+)"?\s+ADD\s+COLUMN\s+"?(\w+)"?\s+(.*?\bNOT\s+NULL\b.*)$', re.IGNORECASE | re.DOTALL
)
DROP_DEFAULT = re.compile(
    r'^\s*ALTER\s+TABLE\s+"?(\w+)"?\s+ALTER\s+COLUMN\s+"?(\w+)"?\s+DROP\s+DEFAULT\b', re.IGNORECASE
)


def old_process_insert_findings(statements: list[dict]) -> list[str]:
    """Where a migration after RELEASED_WITH_SERVICES_STOPPED leaves a new NOT NULL column without a default in
    the database (added without one, or its default dropped): an old process's INSERT fails from then until the
    process is restarted."""
    findings = []
    for statement in statements:
        migration, sql = statement["migration"] or "", statement["sql"]  # None: before the first migration
        app, _, name = migration.partition(".")
        number = int(name[:4]) if name[:4].isdigit() else 0
        if migration in DEPENDENCIES_DROPPING_DEFAULTS or number <= RELEASED_WITH_SERVICES_STOPPED.get(app, 0):
            continue
        where = f"{migration}: {' '.join(sql.split())[:200]}"
        added = ADD_NOT_NULL.match(sql)
        if added and not re.search(r"\bDEFAULT\b", added.group(3), re.IGNORECASE):
            findings.append(f"a NOT NULL column added without a default - {where}")
        if DROP_DEFAULT.match(sql):
            findings.append(f"a column's default dropped (declare it with db_default) - {where}")
    return findings


def test_a_migration_after_0_2_0_lets_old_processes_insert_while_it_runs(migrate_statements):
    """The CHANGELOG promises that only 0.2.0 needs the services stopped. Django applies a field's `default` to
    the rows there are and then drops it from the table, so an old process's INSERT (which does not name the new
    column) fails with a NOT NULL violation until it is restarted: checked on what `migrate` executes, and the
    check refuses each such statement."""
    assert old_process_insert_findings(migrate_statements) == []

    def check(migration: str, *statements: str) -> list[str]:
        return old_process_insert_findings([{"migration": migration, "sql": s} for s in statements])

    added_then_dropped = (
        'ALTER TABLE "trials_trial" ADD COLUMN "colour" varchar(8) DEFAULT \'blue\' NOT NULL',
        'ALTER TABLE "trials_trial" ALTER COLUMN "colour" DROP DEFAULT',
    )
    assert len(check("trials.0024_trial_colour", *added_then_dropped)) == 1
    assert check(
        "reads.0012_x", 'ALTER TABLE "reads_read" ADD COLUMN "y_id" bigint NOT NULL CONSTRAINT "f" REFERENCES "z"("id")'
    )
    assert check("ctims.0005_x", 'ALTER TABLE "ctims_auditevent" ALTER COLUMN "key_id" DROP DEFAULT')
    # db_default keeps the default in the table; nullable columns and 0.2.0's own migrations are allowed.
    assert check("trials.0024_trial_colour", added_then_dropped[0]) == []
    assert check("trials.0024_x", 'ALTER TABLE "trials_trial" ADD COLUMN "note" text NULL') == []
    assert check("trials.0023_site_country_iso", *added_then_dropped) == []
    assert check("axes.0009_add_session_hash", added_then_dropped[1]) == []
    assert check("axes.0010_new", added_then_dropped[1])


def test_indexes_on_the_instance_index_are_built_concurrently(migrate_statements):
    """A plain CREATE INDEX holds back every write to the table (ingest, a frame layout kept at its first read)
    for the whole build: on `trials_instance`, only where the same migration creates the table. Checked on what
    `migrate` executes (test_no_migration_rewrites_or_blocks_reads_of_the_instance_index refuses a plain one)."""
    concurrent = {
        s["migration"]
        for s in migrate_statements
        if re.match(rf"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\b.*?\bON\s+{INSTANCE}", s["sql"], re.I | re.S)
    }
    assert "trials.0020_instance_indexes_concurrently" in concurrent


def test_the_concurrent_index_migration_keeps_a_valid_index_and_rebuilds_an_invalid_one(transactional_db):
    """0013 as released built the same indexes the plain way; a concurrent build that failed leaves one INVALID."""
    import importlib

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.test.utils import CaptureQueriesContext

    migration = importlib.import_module("trials.migrations.0020_instance_indexes_concurrently").Migration
    loader = MigrationLoader(connection)
    before = loader.project_state(("trials", "0019_query_title_is_what_failed"))
    after = loader.project_state(("trials", "0020_instance_indexes_concurrently"))
    operation = migration.operations[0]
    name = operation.index.name

    def run() -> list[str]:
        with CaptureQueriesContext(connection) as queries, connection.schema_editor(atomic=False) as editor:
            operation.database_forwards("trials", editor, before, after)
        return [q["sql"] for q in queries if "INDEX" in q["sql"]]

    def valid():
        with connection.cursor() as cursor:
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
            row = cursor.fetchone()
        return row and row[0]

    assert valid() and run() == []  # built by 0013 as released: kept
    with connection.cursor() as cursor:
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)", [name])
    statements = run()
    assert valid() and [s.split(" ", 3)[:3] for s in statements] == [
        ["DROP", "INDEX", "CONCURRENTLY"],
        ["CREATE", "INDEX", "CONCURRENTLY"],
    ]
    with connection.cursor() as cursor:
        cursor.execute(f'DROP INDEX "{name}"')
    assert "CONCURRENTLY" in run()[0] and valid()


# --- the nginx example -------------------------------------------------------------------------------------------


def loopback_listens(http_port: int, https_port: int) -> dict[str, str]:
    """nginx_example's replacements that put the example's servers on loopback ports (no IPv6)."""
    return {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "listen 80 default_server;": f"listen 127.0.0.1:{http_port} default_server;",
        "listen [::]:80 default_server;": "",
        "listen 443 ssl http2 default_server;": f"listen 127.0.0.1:{https_port} ssl http2 default_server;",
        "listen [::]:443 ssl http2 default_server;": "",
    }


def nginx_example(tmp_path: Path, **replace: str) -> Path:
    """deploy/nginx-ctims.conf in a configuration of its own under tmp_path, with a throwaway certificate in place
    of the operator's and `replace`'s substitutions; returns the nginx.conf."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ctims.example.org"]
        + ["-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True,
        capture_output=True,
    )
    site = (ROOT / "deploy/nginx-ctims.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/ctims.example.org/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/letsencrypt/live/ctims.example.org/privkey.pem", str(tmp_path / "key.pem"))
    site = site.replace("/var/lib/nginx/body", str(tmp_path / "body"))
    site = site.replace("/var/log/nginx/ctims.access.log", str(tmp_path / "access.log"))
    site = site.replace("/var/log/nginx/ctims.error.log", str(tmp_path / "error.log"))
    for old, new in replace.items():
        assert old in site, old
        site = site.replace(old, new)
    temp = "".join(f"{kind}_temp_path {tmp_path}/{kind};\n" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers that may read the test's own folder
    (tmp_path / "nginx.conf").write_text(
        f"{user}pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\naccess_log off;\n{temp}{site}\n}}\n"
    )
    return tmp_path / "nginx.conf"


def test_the_nginx_example_is_accepted_by_nginx(tmp_path):
    """`nginx -t` on deploy/nginx-ctims.conf, with a throwaway certificate in place of the operator's."""
    nginx_example(tmp_path)
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


class AcceleratedUpstream(http.server.BaseHTTPRequestHandler):
    """Answers every request as CTIMS answers an instance asked for as application/dicom behind nginx: no body, the
    file named by X-Accel-Redirect, and the headers the application sets."""

    asked: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.asked.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom")
        self.send_header("Cache-Control", "private, max-age=31536000, immutable")
        self.send_header("Vary", "Accept, Authorization, Cookie")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Access-Control-Allow-Origin", "https://viewer.example.org")
        self.send_header("Access-Control-Expose-Headers", "ETag, Content-Type")
        self.send_header("X-Accel-Redirect", "/_images/ALPHA/one.dcm")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_the_nginx_example_sends_a_stored_file_with_the_applications_headers_and_logs_no_query(tmp_path):
    """Through nginx with the example's configuration: a file handed over by X-Accel-Redirect keeps the
    application's Vary and security headers (nginx dropped them: a browser could give the application/dicom
    answer it kept a year to a multipart request for the same URL), and the access log has no query string."""
    (tmp_path / "images" / "ALPHA").mkdir(parents=True)
    (tmp_path / "images" / "ALPHA" / "one.dcm").write_bytes(b"DICM" * 64)
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AcceleratedUpstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    http_port, https_port = free_port(), free_port()
    conf = nginx_example(
        tmp_path,
        **{
            "server 127.0.0.1:8000": f"server 127.0.0.1:{upstream.server_address[1]}",
            **loopback_listens(http_port, https_port),
            "alias /var/lib/ctims/images/;": f"alias {tmp_path}/images/;",
        },
    )
    nginx = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"https://127.0.0.1:{https_port}/dicomweb/trials/ALPHA/studies/1/series/2/instances/3"

        def serving() -> bool:
            try:
                requests.get(
                    f"http://127.0.0.1:{http_port}/",
                    headers={"Host": "ctims.example.org"},
                    timeout=2,
                    allow_redirects=False,
                )
                return True
            except requests.RequestException:
                return False

        wait_for(serving, 30, "nginx to listen")
        answer = requests.get(
            url + "?PatientID=ALPHA-SEO-001",
            headers={"Host": "ctims.example.org", "Accept": "application/dicom"},
            verify=False,  # noqa: S501 - the test's own throwaway certificate
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.content == b"DICM" * 64
        assert answer.headers["Vary"] == "Accept, Authorization, Cookie"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Access-Control-Allow-Origin"] == "https://viewer.example.org"  # a viewer elsewhere
        assert answer.headers["Access-Control-Expose-Headers"] == "ETag, Content-Type"
        assert answer.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        # Another name (a scanner asking by address) is closed by nginx and never reaches the application.
        asked = len(AcceleratedUpstream.asked)
        for scheme, port in (("https", https_port), ("http", http_port)):
            with pytest.raises(requests.ConnectionError):
                requests.get(f"{scheme}://127.0.0.1:{port}/wp-login.php", verify=False, timeout=10)  # noqa: S501
        assert len(AcceleratedUpstream.asked) == asked
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
        upstream.shutdown()
    logged = (tmp_path / "access.log").read_text()
    assert "/dicomweb/trials/ALPHA/studies/1/series/2/instances/3" in logged
    assert "PatientID" not in logged and "ALPHA-SEO-001" not in logged


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_the_nginx_example_redirects_http_keeping_the_method_and_logs_no_query_in_its_errors(tmp_path):
    """Port 80 sends every request to HTTPS with 308, which a client follows with the same method and body: a 301
    made a STOW-RS POST sent to http:// a GET of the same URL (a QIDO search, answered 200), and a form a GET of
    its page. A request nginx fails (the application down: 502) is written to nginx's error log with its whole
    request line, which no format can cut: the example's servers log only critical errors, and no query string."""
    http_port, https_port, down = free_port(), free_port(), free_port()
    conf = nginx_example(
        tmp_path,
        **{
            "server 127.0.0.1:8000": f"server 127.0.0.1:{down}",
            **loopback_listens(http_port, https_port),
        },
    )
    nginx = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host = {"Host": "ctims.example.org"}
    try:

        def serving() -> bool:
            try:
                requests.get(f"http://127.0.0.1:{http_port}/", headers=host, timeout=2, allow_redirects=False)
                return True
            except requests.RequestException:
                return False

        wait_for(serving, 30, "nginx to listen")
        path = "/dicomweb/trials/ALPHA/studies"
        for method in ("POST", "PUT", "GET"):
            answer = requests.request(
                method, f"http://127.0.0.1:{http_port}{path}?x=1", data=b"DICM", headers=host, allow_redirects=False
            )
            assert answer.status_code == 308, method
            assert answer.headers["Location"] == f"https://ctims.example.org{path}?x=1"
        failed = requests.get(
            f"https://127.0.0.1:{https_port}{path}?PatientID=ALPHA-SEO-001",
            headers=host,
            verify=False,  # noqa: S501 - the test's own throwaway certificate
            timeout=10,
        )
        assert failed.status_code == 502
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
    logged = (tmp_path / "error.log").read_text() if (tmp_path / "error.log").exists() else ""
    assert "PatientID" not in logged and "ALPHA-SEO-001" not in logged
    assert "ALPHA-SEO-001" not in (tmp_path / "access.log").read_text()
