"""`manage.py bench dicomweb`: what a viewer waits for, measured in one process against a baseline of disk reads."""

from __future__ import annotations

import http.client
import json
import os
import re
import runpy
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import connection

from ctims.bench import median_ms, own_database, scratch, signed_in_client, stores_in
from trials import services
from trials.dicomweb import wado
from trials.ingest.services import BATCH_SIZE, upload_batch_process, upload_finish, upload_open, upload_receive
from trials.ingest.store import image_storage
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Membership, Role, Series, Study

ACCEPT_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def _world(slices: int, small: bool):
    User = get_user_model()
    admin = User.objects.create_user(f"bench-{uuid.uuid4().hex}@bench.invalid", None, full_name="Bench admin")
    trial = services.trial_create(actor=admin, code="BENCHDW", title="Bench", sponsor="Bench", protocol_number="B")
    site = services.site_create(actor=admin, trial=trial, code="S", name="Bench site", country="KR")
    services.visit_create(actor=admin, trial=trial, code="BL", label="Baseline", order=1, target_day=0)
    services.membership_grant(actor=admin, trial=trial, user=admin, role=Role.SITE_COORDINATOR, sites=[site])
    subject = services.subject_enroll(actor=admin, site=site)
    files = synthesize_ct_series(real_ct_template(large=not small), slices=slices, seed="bench-dicomweb")
    upload = upload_open(actor=admin, timepoint=subject.timepoints.get())
    ids = [i.pk for i in upload_receive(upload=upload, files=files)]
    for start in range(0, len(ids), BATCH_SIZE):
        upload_batch_process(item_ids=ids[start : start + BATCH_SIZE])
    upload_finish(actor=admin, upload=upload)
    return admin, trial, subject


def _fill_index(trial, subject, rows: int, per_series: int = 500) -> None:
    """`rows` synthetic instance rows in series of `per_series`, written with the database's bulk path."""
    timepoint = subject.timepoints.get()
    n_series = max(1, rows // per_series)
    studies = Study.objects.bulk_create(
        Study(
            trial=trial,
            subject=subject,
            timepoint=timepoint,
            study_instance_uid=f"2.25.9{n}{uuid.uuid4().int % 10**20}",
            study_date=date(2020, 1, 1) + timedelta(days=n % 1500),
            study_time=f"{8 + n % 10:02d}{n % 60:02d}00",
            accession_number=f"ACC{n:07d}",
            study_id=f"S{n}",
            referring_physician_name=f"DOCTOR^{n % 97}",
        )
        for n in range(max(1, n_series // 4))
    )
    series = Series.objects.bulk_create(
        Series(
            study=studies[n % len(studies)],
            series_instance_uid=f"2.25.8{n}{uuid.uuid4().int % 10**20}",
            modality="CT" if n % 3 else "MR",
            series_number=n,
            description=f"AX {n % 7} mm",
            instance_count=per_series,
            performed_procedure_step_start_date=date(2020, 1, 1) + timedelta(days=n % 1500),
        )
        for n in range(n_series)
    )
    columns = [
        "series_id",
        "sop_instance_uid",
        "sop_class_uid",
        "instance_number",
        "transfer_syntax_uid",
        "number_of_frames",
        "storage_key",
        "sha256",
        "size",
        "deid_method",
        "created_at",
        "bits_allocated",
    ]
    now = time.strftime("%Y-%m-%d %H:%M:%S+00")

    def row_values():
        for s in series:
            for k in range(per_series):
                uid = f"2.25.7{s.pk:010d}{k:06d}"
                yield (
                    s.pk,
                    uid,
                    "1.2.840.10008.5.1.4.1.1.2",
                    k + 1,
                    "1.2.840.10008.1.2.1",
                    1,
                    f"bench/{uid}.dcm",
                    "0" * 64,
                    1,
                    "bench",
                    now,
                    16,
                )

    table = Instance._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for values in row_values():
                    copy.write_row(values)
            if connection.in_atomic_block:
                cursor.execute(f"ANALYZE {table}")
                cursor.execute(f"ANALYZE {Series._meta.db_table}")
            else:
                cursor.execute(f"VACUUM ANALYZE {table}")
                cursor.execute(f"VACUUM ANALYZE {Series._meta.db_table}")
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608
                list(row_values()),
            )


def bench_dicomweb(out, *, slices: int, runs: int, small: bool, index_rows: int) -> None:
    """On PostgreSQL in a database of its own with committed rows, as a server sees them (a million rows
    inserted by the transaction that then plans the queries would slow their planning down); elsewhere in one
    transaction rolled back at the end."""
    if connection.vendor != "postgresql":
        with scratch("ctims-bench-dw-"):
            return _run(out, slices=slices, runs=runs, small=small, index_rows=index_rows)
    var = Path(tempfile.mkdtemp(prefix="ctims-bench-dw-"))
    try:
        with own_database("bench dicomweb"), stores_in(var):
            _run(out, slices=slices, runs=runs, small=small, index_rows=index_rows)
    finally:
        shutil.rmtree(var, ignore_errors=True)


def _run(out, *, slices: int, runs: int, small: bool, index_rows: int) -> None:
    admin, trial, subject = _world(slices, small)
    client = signed_in_client(admin)
    root = f"/dicomweb/trials/{trial.code}"
    series = Series.objects.get(study__subject=subject)
    study_uid, series_uid = series.study.study_instance_uid, series.series_instance_uid
    instances = list(series.instances.order_by("instance_number"))
    megabytes = sum(i.size for i in instances) / 1e6
    out.write(
        f"Series: {len(instances)} CT instances {instances[0].rows}x{instances[0].columns} ({megabytes:.1f} MB) "
        f"ingested through the pipeline; requests through Django's test client in one process; medians of {runs} runs."
    )

    metadata_url = f"{root}/studies/{study_uid}/series/{series_uid}/metadata"
    start = time.perf_counter()
    assert client.get(metadata_url).status_code == 200
    cold = (time.perf_counter() - start) * 1000
    warm = median_ms(lambda: client.get(metadata_url), runs)
    out.write(f"  series metadata: first request {cold:8.1f} ms (reads {len(instances)} headers), then {warm:8.1f} ms")

    frame_urls = [
        f"{root}/studies/{study_uid}/series/{series_uid}/instances/{i.sop_instance_uid}/frames/1" for i in instances
    ]

    def all_frames():
        for url in frame_urls:
            response = client.get(url, HTTP_ACCEPT=ACCEPT_FRAMES)
            assert response.status_code == 200

    def read_files():
        storage = image_storage()
        for i in instances:
            with storage.open(i.storage_key, "rb") as f:
                f.read()

    frames_ms = median_ms(all_frames, runs)
    files_ms = median_ms(read_files, runs)
    out.write(
        f"  all frames of the series: {frames_ms:8.1f} ms = {len(instances) / frames_ms * 1000:7.1f} frames/s, "
        f"{megabytes / frames_ms * 1000:6.1f} MB/s"
    )
    out.write(
        f"  reading the same files from disk: {files_ms:8.1f} ms; frame throughput / file reads = {files_ms / frames_ms:.2f}"
    )

    start = time.perf_counter()
    _fill_index(trial, subject, index_rows)
    out.write(
        f"  index: {Instance.objects.count():,} instance rows, {Series.objects.count():,} series "
        f"(filled in {time.perf_counter() - start:.0f} s, {connection.vendor})"
    )
    some = Series.objects.filter(study__trial=trial).order_by("-pk")[len(instances) % 7]
    study = some.study
    one = some.instances.order_by("instance_number")[7]
    searches = {
        "the floor: a study UID that matches nothing": (f"{root}/studies", {"StudyInstanceUID": "1.2.3"}),
        "studies by AccessionNumber": (f"{root}/studies", {"AccessionNumber": study.accession_number}),
        "studies by StudyID": (f"{root}/studies", {"StudyID": study.study_id}),
        "studies by PatientName wildcard, limit 100": (f"{root}/studies", {"PatientName": "BENCH*", "limit": "100"}),
        "studies by ReferringPhysicianName wildcard": (
            f"{root}/studies",
            {"ReferringPhysicianName": "DOCTOR^1*", "limit": "100"},
        ),
        "studies by StudyDate range + StudyTime range": (
            f"{root}/studies",
            {"StudyDate": "20200101-20200331", "StudyTime": "080000-120000", "limit": "100"},
        ),
        "series by PerformedProcedureStepStartDate": (
            f"{root}/series",
            {"PerformedProcedureStepStartDate": "20200101-20200131", "limit": "100"},
        ),
        "instances by SOPClassUID, limit 100": (
            f"{root}/instances",
            {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "limit": "100"},
        ),
        "instances by SOPInstanceUID": (f"{root}/instances", {"SOPInstanceUID": one.sop_instance_uid}),
        "instances by InstanceNumber in a study": (
            f"{root}/studies/{study.study_instance_uid}/instances",
            {"InstanceNumber": "250"},
        ),
        "series by SeriesInstanceUID": (f"{root}/series", {"SeriesInstanceUID": some.series_instance_uid}),
        "series by Modality=MR, limit 100": (f"{root}/series", {"Modality": "MR", "limit": "100"}),
        "series by description wildcard": (f"{root}/series", {"SeriesDescription": "AX 3*", "limit": "100"}),
        "series of one study": (f"{root}/studies/{some.study.study_instance_uid}/series", {}),
        "instances of one series (500)": (
            f"{root}/studies/{some.study.study_instance_uid}/series/{some.series_instance_uid}/instances",
            {},
        ),
    }
    # The 500 rows have no files: their metadata is kept in the index (as after a first read), copied from a
    # real instance, so that the series metadata is built from the index as a viewer's second visit finds it.
    Instance.objects.filter(series=some).update(metadata=wado.instance_metadata(instances[0]))
    searches["series metadata (500 instances, kept body)"] = (
        f"{root}/studies/{some.study.study_instance_uid}/series/{some.series_instance_uid}/metadata",
        {},
    )
    answers = {}
    for label, (url, params) in searches.items():
        response = client.get(url, params)
        assert response.status_code == 200 and "Warning" not in response, (label, response.content[:200])
        answers[label] = len(response.json())
    # Round by round, every search in turn: a slow moment of the machine weighs on the floor and the searches
    # alike, and each search is also given as its time above the same round's floor.
    times: dict[str, list[float]] = {label: [] for label in searches}
    for _ in range(max(runs, 7)):
        for label, (url, params) in searches.items():
            times[label].append(median_ms(lambda url=url, params=params: client.get(url, params), 1))
    floor = times[next(iter(searches))]
    for label, measured in times.items():
        above = statistics.median(t - f for t, f in zip(measured, floor, strict=True))
        out.write(
            f"  QIDO {label:<46} {statistics.median(measured):8.2f} ms, {above:+7.2f} ms above the floor "
            f"({answers[label]} answers)"
        )


# -- over HTTP, with concurrent clients, side by side with Orthanc ----------------------------------------------

ACCEPT_INSTANCE = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, headers: dict | None = None, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"the server at {url} stopped at start (exit {process.returncode})")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.1)
    raise CommandError(f"the server at {url} did not answer within {deadline_s:.0f} s")


def _load(base: str, paths: list[str], headers: dict, clients: int, rounds: int) -> dict:
    job = {"base": base, "paths": paths, "headers": headers, "clients": clients, "rounds": rounds}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "trials.dicomweb.loadgen"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
        cwd=settings.BASE_DIR,
    )
    result = json.loads(done.stdout)
    if result["errors"]:
        raise CommandError(f"{base}: {result['errors'][:2]}")
    return result


def _server_logs(var: Path) -> str:
    """The end of each server's log, for a failed run."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in var.glob("server-*.log"))


SERVERS = ("nginx", "gunicorn", "granian", "uvicorn", "runserver")
NGINX = "/usr/sbin/nginx"
NGINX_SITE = Path(settings.BASE_DIR) / "deploy" / "nginx-ctims.conf"
# Set by the bench's nginx on the answers it sends from a file itself (X-Accel-Redirect), none of the app's.
SENT_BY_NGINX = "X-Bench-Sent-By"


def add_http_arguments(parser) -> None:
    """`bench dicomweb --http`'s own options (the bench command calls this from its add_arguments)."""
    parser.add_argument(
        "--server",
        nargs="+",
        choices=SERVERS,
        default=["gunicorn"],
        help="dicomweb --http: the server(s) in front of CTIMS, each measured in the same run: nginx (the "
        "production stack: deploy/nginx-ctims.conf's locations in front of gunicorn, files sent by X-Accel-Redirect), "
        "gunicorn (deploy/gunicorn.conf.py, WSGI), granian (WSGI), uvicorn (ASGI), runserver (Django's development server)",
    )
    parser.add_argument(
        "--web-workers", type=int, default=3, help="dicomweb --http: worker processes of the server (default 3)"
    )
    parser.add_argument(
        "--access-cache-seconds",
        type=int,
        help="dicomweb --http: the servers' DICOMWEB_ACCESS_CACHE_SECONDS (default: the setting's). The servers "
        "take turns, so a round of one server comes seconds after its last: with the default 5, each round "
        "starts with the token's permissions and the instances looked up again, as a viewer's next series would.",
    )


def _server_command(server: str, port: int, workers: int) -> list[str]:
    python = sys.executable
    bind = ["--host", "127.0.0.1", "--port", str(port)]
    if server in (
        "gunicorn",
        "nginx",
    ):  # the production unit's configuration, its bind and workers from the environment
        return [python, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "ctims.wsgi:application"]
    if server == "granian":
        # A few blocking threads per worker: each keeps its own database connection.
        return [python, "-m", "granian", "--interface", "wsgi", *bind, "--workers", str(workers), "--no-ws"] + [
            "--blocking-threads",
            "4",
            "--log-level",
            "warning",
        ]
    if server == "uvicorn":
        return [python, "-m", "uvicorn", "--factory", "django.core.asgi:get_asgi_application", *bind]
    return [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]


def nginx_config(folder: Path, port: int, upstream_port: int, images: Path, error_log: Path) -> str:
    """deploy/nginx-ctims.conf's TLS site as a plain-HTTP server on 127.0.0.1:`port` of an unprivileged nginx
    whose files are in `folder`: its upstream, request limits and locations as they are, without its names and
    certificates, its temporary files in `folder`, the image store at `images`, gunicorn on `upstream_port`.
    Files sent from the internal location carry SENT_BY_NGINX, so that the bench can tell them apart."""
    site = NGINX_SITE.read_text()
    upstream = re.search(r"^upstream ctims_web \{\n(.*?)^\}", site, re.M | re.S)
    # The site's TLS server: not the default server that closes requests for other names.
    tls = [
        block
        for block in re.split(r"^server \{\n", site, flags=re.M)
        if "listen 443" in block and "default_server" not in block
    ]
    if not upstream or len(tls) != 1:
        raise CommandError(f"{NGINX_SITE} has no upstream ctims_web or no single TLS server block")
    lines = re.split(r"^\}", tls[0], maxsplit=1, flags=re.M)[0].splitlines()
    # Its access log names the site's log format and file: the bench logs nothing (access_log off).
    kept = "\n".join(line for line in lines if not re.match(r"\s*(listen|server_name|ssl_\w+|access_log)\s", line))
    replacements = {
        "server 127.0.0.1:8000 ": f"server 127.0.0.1:{upstream_port} ",
        "client_body_temp_path /var/lib/nginx/body ": f"client_body_temp_path {folder}/body ",
        "alias /var/lib/ctims/images/;": f"alias {images}/;",
        "internal;": f"internal;\n        add_header {SENT_BY_NGINX} nginx;",
    }
    server = f"upstream ctims_web {{\n{upstream.group(1)}}}\n\nserver {{\n    listen 127.0.0.1:{port};\n{kept}\n}}"
    for old, new in replacements.items():
        if server.count(old) != 1:
            raise CommandError(f"{NGINX_SITE} changed: {old!r} is not there once")
        server = server.replace(old, new)
    temp_paths = "\n".join(f"    {kind}_temp_path {folder}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
master_process on;
worker_processes 2;
pid {folder}/nginx.pid;
error_log {error_log} warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    default_type application/octet-stream;
{temp_paths}

{server}
}}
"""


@contextmanager
def _nginx(var: Path, upstream_port: int) -> Iterator[str]:
    """An unprivileged nginx (Debian's) on a free loopback port, configured by nginx_config in var/nginx."""
    if not Path(NGINX).exists():
        raise CommandError("--server nginx needs Debian's nginx (apt-get install nginx-light).")
    folder = var / "nginx"
    folder.mkdir()
    # Started by root, nginx's workers run as nobody (as www-data in production, never as the application's
    # user): they may pass through the bench's folder (made for its owner alone) to the image store's files.
    var.chmod(0o711)
    port = _free_port()
    error_log = var / "server-nginx-proxy.log"
    config = folder / "nginx.conf"
    config.write_text(nginx_config(folder, port, upstream_port, var / "images", error_log))
    command = [NGINX, "-p", str(folder), "-e", str(error_log), "-c", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        _wait_for(f"http://127.0.0.1:{port}/accounts/login/", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def _ctims_server(
    database: str, var: Path, server: str = "gunicorn", workers: int = 3, access_cache_seconds: int | None = None
) -> Iterator[str]:
    """CTIMS behind `server` (DEBUG off, `workers` processes where the server has them) on a free loopback
    port, with the production settings that matter to a viewer: database connections kept between requests."""
    port = _free_port()
    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    env = os.environ | {
        "DATABASE_URL": urlunsplit(url._replace(path=f"/{database}")),
        "CTIMS_VAR_DIR": str(var),
        "DEBUG": "False",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "False",
        "DJANGO_SETTINGS_MODULE": "ctims.settings",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "AUDIT_HMAC_KEY": settings.AUDIT_HMAC_KEY,
        # Kept connections as deploy/ctims.env.example, where a thread serves request after request (gunicorn's
        # worker threads, granian's few blocking threads); not where each request may run on a new thread
        # (ASGI's sync views, runserver), which would leave a connection behind per thread (Django's advice).
        "DB_CONN_MAX_AGE": "60" if server in ("nginx", "gunicorn", "granian") else "0",
    }
    if access_cache_seconds is not None:
        env["DICOMWEB_ACCESS_CACHE_SECONDS"] = str(access_cache_seconds)
    if server == "nginx":  # gunicorn behind nginx, as deploy/ctims.env.example sets it up
        env["DICOMWEB_ACCEL_REDIRECT"] = "/_images/"
    command = _server_command(server, port, workers)
    if server == "granian":
        command.append("ctims.wsgi:application")
    elif server == "uvicorn":
        command += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    log = (var / f"server-{server}.log").open("wb")  # read when a request fails
    process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=log)  # noqa: S603
    try:
        _wait_for(f"http://127.0.0.1:{port}/accounts/login/", process)
        if server == "nginx":
            with _nginx(var, port) as base:
                yield base
        else:
            yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@contextmanager
def _orthanc(folder: Path, files: list[Path]) -> Iterator[str]:
    """Debian's Orthanc with its DICOMweb plugin on a free loopback port, DICOM port off, holding `files`."""
    if not (Path(ORTHANC).exists() and Path(ORTHANC_DICOMWEB).exists()):
        raise CommandError("--orthanc needs Debian's orthanc and orthanc-dicomweb (make bench-orthanc-deps).")
    port = _free_port()
    (folder / "db").mkdir(parents=True)
    config = {
        "Name": "ctims-bench",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "StorageCompression": False,
        "HttpCompressionEnabled": False,
        "KeepAlive": True,
        "Plugins": [ORTHANC_DICOMWEB],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = (folder / "orthanc.log").open("wb")
    process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=log)  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/system", process)
        for path in files:
            request = urllib.request.Request(f"{base}/instances", data=path.read_bytes(), method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=60):  # noqa: S310
                pass
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def bench_dicomweb_http(
    out,
    *,
    slices: int,
    runs: int,
    small: bool,
    clients: list[int],
    orthanc: bool,
    servers: list[str] = ("gunicorn",),
    web_workers: int = 3,
    access_cache_seconds: int | None = None,
) -> None:
    var = Path(tempfile.mkdtemp(prefix="ctims-bench-http-"))
    try:
        with own_database("bench dicomweb --http") as database, stores_in(var):
            try:
                _run_http(
                    out,
                    database,
                    var,
                    slices=slices,
                    runs=runs,
                    small=small,
                    clients=clients,
                    orthanc=orthanc,
                    servers=list(servers),
                    web_workers=web_workers,
                    access_cache_seconds=access_cache_seconds,
                )
            except CommandError:
                out.write(_server_logs(var))
                raise
    finally:
        shutil.rmtree(var, ignore_errors=True)


def _gunicorn_workers() -> str:
    """gunicorn's worker class and threads, as deploy/gunicorn.conf.py reads them from this environment."""
    conf = runpy.run_path(str(Path(settings.BASE_DIR) / "deploy" / "gunicorn.conf.py"))
    return f"; gunicorn's workers: {conf['worker_class']}, {conf['threads']} thread(s) each"


def _sent_by_nginx(root_and_headers: tuple[str, dict], path: str, instance, jobs: dict) -> str:
    """Which answers nginx sent from the file itself (X-Accel-Redirect): one instance as application/dicom must
    be, its bytes the stored file's; the measured requests are checked and named as they are."""
    root, headers = root_and_headers
    url = urlsplit(root)

    def get(path: str, accept: str) -> tuple[bool, bytes]:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            connection.request("GET", url.path + path, headers=headers | {"Accept": accept})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise CommandError(f"nginx answered {response.status} to {accept}")
            return response.getheader(SENT_BY_NGINX) == "nginx", body
        finally:
            connection.close()

    sent, body = get(path, "application/dicom; transfer-syntax=*")
    with image_storage().open(instance.storage_key, "rb") as stored:
        if not sent or body != stored.read():
            raise CommandError("nginx did not send the stored file of an application/dicom instance itself")
    measured = ", ".join(
        f"{kind} ({'nginx, X-Accel-Redirect' if get(paths[0], accept)[0] else 'the application'})"
        for kind, (paths, accept) in jobs.items()
    )
    return (
        "  nginx: an instance as application/dicom is the stored file, sent by nginx (X-Accel-Redirect); "
        f"measured here, sent by: {measured}"
    )


def _run_http(
    out, database: str, var: Path, *, slices, runs, small, clients, orthanc, servers, web_workers, access_cache_seconds
) -> None:
    admin, trial, subject = _world(slices, small)
    membership = Membership.objects.filter(user=admin, trial=trial).first()
    _, key = services.api_token_create(actor=admin, membership=membership, name="bench")
    series = Series.objects.get(study__subject=subject)
    instances = list(series.instances.order_by("instance_number"))
    prefix = f"/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}/instances"
    frames = [f"{prefix}/{i.sop_instance_uid}/frames/1" for i in instances]
    whole = [f"{prefix}/{i.sop_instance_uid}" for i in instances]
    token = {"Authorization": f"Bearer {key}"}
    jobs = {"frame": (frames, ACCEPT_FRAMES), "instance": (whole, ACCEPT_INSTANCE)}
    out.write(
        f"Over HTTP: {len(instances)} CT instances {instances[0].rows}x{instances[0].columns}, each client on its "
        f"own keep-alive connection in a separate process; {runs} rounds of the whole series per client, the "
        f"servers taking turns round by round. CTIMS with a Bearer token behind {', '.join(servers)} "
        f"({web_workers} worker processes; DEBUG off; DICOMWEB_ACCESS_CACHE_SECONDS="
        f"{settings.DICOMWEB_ACCESS_CACHE_SECONDS if access_cache_seconds is None else access_cache_seconds})"
        + (_gunicorn_workers() if {"nginx", "gunicorn"} & set(servers) else "")
        + ("; Orthanc: Debian's, with its DICOMweb plugin" if orthanc else "")
        + f". Load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}."
    )
    latencies: dict[tuple[str, str, int], list[float]] = {}
    seconds: dict[tuple[str, str, int], float] = {}
    with ExitStack() as stack:
        roots = {}
        for server in servers:
            base = stack.enter_context(_ctims_server(database, var, server, web_workers, access_cache_seconds))
            roots[server] = (f"{base}/dicomweb/trials/{trial.code}", token)
        if "nginx" in roots:
            out.write(_sent_by_nginx(roots["nginx"], whole[0], instances[0], jobs))
        if orthanc:
            files = [Path(image_storage().path(i.storage_key)) for i in instances]
            roots["orthanc"] = (f"{stack.enter_context(_orthanc(var / 'orthanc', files))}/dicom-web", {})
        for kind, (paths, accept) in jobs.items():
            for root, headers in roots.values():
                _load(root, paths, headers | {"Accept": accept}, max(clients), 1)  # warm up every worker
            for n in clients:
                for _ in range(runs):
                    for server, (root, headers) in roots.items():
                        result = _load(root, paths, headers | {"Accept": accept}, n, 1)
                        latencies.setdefault((server, kind, n), []).extend(result["latencies_ms"])
                        seconds[server, kind, n] = seconds.get((server, kind, n), 0) + result["seconds"]
    for kind in jobs:
        for n in clients:
            theirs = statistics.median(latencies["orthanc", kind, n]) if orthanc else None
            for server in servers:
                ours = latencies[server, kind, n]
                median = statistics.median(ours)
                line = (
                    f"  {kind:<8} {n:>2} client(s) CTIMS/{server:<9} median {median:7.2f} ms, "
                    f"{len(ours) / seconds[server, kind, n]:7.1f}/s"
                )
                if orthanc:
                    line += f" | CTIMS/Orthanc median = {median / theirs:.2f}"
                out.write(line)
            if orthanc:
                rate = len(latencies["orthanc", kind, n]) / seconds["orthanc", kind, n]
                out.write(f"  {kind:<8} {n:>2} client(s) Orthanc         median {theirs:7.2f} ms, {rate:7.1f}/s")
