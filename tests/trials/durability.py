"""What the durability tests share: the end-state checker, real workers and brokers of the test's own, an S3 server.

`assert_end_state()` is the one definition of "nothing acknowledged was lost": every test that injects a
fault (a killed process, a stopped broker, a refused database, a damaged copy, a hostile file) ends with it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pydicom
from django.conf import settings
from django.core.files.storage import storages
from django.urls import reverse

from ctims.broker import tasks_sent_to
from ctims.celery import app
from trials.ingest import services, store
from trials.models import Instance, UploadItem

ROOT = Path(__file__).resolve().parents[2]
FINAL_STATES = {UploadItem.State.ACCEPTED, UploadItem.State.DUPLICATE, UploadItem.State.REJECTED}


def storage_keys(storage, prefix: str = "") -> list[str]:
    """Every key in a storage (file system or S3), temporary files of unfinished writes included."""
    try:
        directories, files = storage.listdir(prefix)
    except FileNotFoundError:  # a file-system store never written to has no folder yet
        return []
    keys = [f"{prefix}{name}" for name in files]
    for directory in directories:
        keys.extend(storage_keys(storage, f"{prefix}{directory}/"))
    return keys


def end_state_problems(*, uploads=None) -> list[str]:
    """Everything that breaks the durability promise, in words; an empty list when the end state is consistent.

    - every acknowledged file ended accepted, duplicate, or rejected with a reason;
    - nothing is left in quarantine (not even the temporary file of a write that died);
    - Instance rows are as many as their distinct SOP Instance UIDs;
    - every stored file exists, parses, matches its row's size and SHA-256, and its UIDs (dataset and file
      meta) agree with the index;
    - no file in the image store that no row points to.
    """
    problems = []
    items = UploadItem.objects.all() if uploads is None else UploadItem.objects.filter(upload__in=uploads)
    for item in items:
        if item.state not in FINAL_STATES:
            problems.append(f"item {item.pk} ({item.sha256[:12]}) is still {item.state}")
        elif item.state == UploadItem.State.REJECTED and not item.reason:
            problems.append(f"item {item.pk} was rejected without a reason")
    leftovers = storage_keys(store.quarantine_storage())
    if leftovers:
        problems.append(f"{len(leftovers)} files left in quarantine: {leftovers[:5]}")
    rows = Instance.objects.count()
    distinct = Instance.objects.values("sop_instance_uid").distinct().count()
    if rows != distinct:
        problems.append(f"{rows} instance rows for {distinct} distinct SOP Instance UIDs")
    images = store.image_storage()
    indexed = set()
    for instance in Instance.objects.select_related("series__study"):
        indexed.add(instance.storage_key)
        try:
            with images.open(instance.storage_key, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            problems.append(f"instance {instance.pk}: its file is missing")
            continue
        if len(data) != instance.size or hashlib.sha256(data).hexdigest() != instance.sha256:
            problems.append(f"instance {instance.pk}: the file does not match its size and SHA-256")
            continue
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except Exception as exc:
            problems.append(f"instance {instance.pk}: the stored file does not parse ({type(exc).__name__})")
            continue
        uids = (
            ds.get("SOPInstanceUID"),
            ds.file_meta.get("MediaStorageSOPInstanceUID"),
            ds.get("SeriesInstanceUID"),
            ds.get("StudyInstanceUID"),
        )
        expected = (
            instance.sop_instance_uid,
            instance.sop_instance_uid,
            instance.series.series_instance_uid,
            instance.series.study.study_instance_uid,
        )
        if uids != expected:
            problems.append(f"instance {instance.pk}: the file's UIDs differ from the index")
    unindexed = sorted(set(storage_keys(images)) - indexed)
    if unindexed:
        problems.append(f"{len(unindexed)} files in the image store that no row points to: {unindexed[:5]}")
    return problems


def refuse_the_index_row_of_one_file(monkeypatch, *, error: Exception | None = None) -> None:
    """Make the index row of the first instance indexed (and of no other) fail: refused by the database (its
    instance number out of the column's range), or `error` raised while the row is built."""
    real = services._new_instance
    bad_uid = []

    def new_instance(result, series_row, key, **hashed):
        bad = not bad_uid or bad_uid[0] == result.sop_instance_uid
        if bad:
            bad_uid[:1] = [result.sop_instance_uid]
            if error is not None:
                raise error
        instance = real(result, series_row, key, **hashed)
        if bad:
            instance.instance_number = 2**40
        return instance

    monkeypatch.setattr(services, "_new_instance", new_instance)


def assert_end_state(*, uploads=None) -> None:
    problems = end_state_problems(uploads=uploads)
    assert not problems, "\n".join(problems)


def multipart(files: list[bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + f + b"\r\n" for f in files
    )
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def open_upload(api, user, subject="ALPHA-SEO-001", visit="BL"):
    return api.as_(user).post(reverse("api-upload-open", args=["ALPHA", subject, visit]))


def stow(api, user, upload_id, files, trial="ALPHA"):
    """POST a STOW-RS request of `files` into an upload, as `user` (the `api` fixture's client)."""
    body, content_type = multipart(files)
    return api.as_(user).generic(
        "POST",
        reverse("stow-upload", args=[trial, upload_id]),
        body,
        content_type=content_type,
        HTTP_ACCEPT="application/dicom+json",
    )


def wait_for(predicate, timeout: float, what: str, log: Path | None = None, state=None) -> None:
    """Poll a condition until a deadline (never a fixed sleep): the test fails with `what` if it never holds,
    the tail of the worker's `log`, and what `state()` then says of the system (a failure to understand later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    described = f"\n{state()}" if state is not None else ""
    raise AssertionError(f"timed out waiting for {what}{described}\n{tail}")


def broker_tasks(broker_url: str, queue: str) -> tuple[list[str], list[str]]:
    """The names of the tasks a Redis broker holds for `queue`: (waiting in its list, taken by a worker and not
    acknowledged: kombu's "unacked" hash)."""
    import json

    import redis

    client = redis.Redis.from_url(broker_url)
    waiting = [json.loads(raw)["headers"]["task"] for raw in client.lrange(queue, 0, -1)]
    taken = []
    for raw in client.hvals("unacked"):
        message, _exchange, routing_key = json.loads(raw)
        if routing_key == queue:
            taken.append(message["headers"]["task"])
    return waiting, taken


def broker_state(broker_url: str, queue: str) -> str:
    """What a Redis broker holds for `queue`, and the lock under which workers restore tasks taken and never
    acknowledged: for a redelivery's failure."""
    import redis

    client = redis.Redis.from_url(broker_url)
    waiting, taken = broker_tasks(broker_url, queue)
    scores = [f"{time.time() - score:.1f}" for _tag, score in client.zrange("unacked_index", 0, -1, withscores=True)]
    return (
        f"broker: waiting in {queue}: {waiting}; taken, not acknowledged: {taken}; taken (all queues) s ago: "
        f"{scores}; restore lock ttl {client.pttl('unacked_mutex')} ms"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def celery_on(broker_url: str, *, visibility: int = 3):
    """Send tasks to a fresh queue on `broker_url` for the duration (not in-process); yields the queue's name."""
    return tasks_sent_to(app, broker_url, visibility=visibility, prefix="ctims-test")


def start_worker(
    broker_url: str, queue: str, var_dir: Path, *, visibility: int = 3, fault: str = "", requeue_after: int = 120
) -> subprocess.Popen:
    """A real Celery worker process (solo pool) on the test's database, broker, queue and store folder.

    `fault` ("point:n") makes the worker kill itself with SIGKILL the n-th time it reaches a store fault point.
    """
    db = settings.DATABASES["default"]
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "ctims.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": broker_url,
        "CELERY_QUEUE": queue,
        "CELERY_VISIBILITY_TIMEOUT": str(visibility),
        "INGEST_REQUEUE_AFTER_SECONDS": str(requeue_after),
        "CTIMS_VAR_DIR": str(var_dir),
        "CTIMS_TEST_FAULT": fault,
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests/trials/fault_worker.py"), queue],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(var_dir / "worker.log").open("ab"),
    )


def kill_a_worker_mid_write_then_recover(broker_url: str, *, actor, timepoint, files, folder: Path, workers: list):
    """Upload `files` in parts of four; the first worker dies by SIGKILL half-way through writing its fifth file
    (the `mid_write:5` kill point), then a second worker takes the redelivered batch to the end. `workers`
    collects the processes for the caller to stop; the upload is returned."""
    from trials.ingest.services import upload_finish, upload_open, upload_receive
    from trials.models import Upload

    with celery_on(broker_url, visibility=2) as queue:
        upload = upload_open(actor=actor, timepoint=timepoint)
        for start in range(0, len(files), 4):
            upload_receive(upload=upload, files=files[start : start + 4])
        upload_finish(actor=actor, upload=upload)
        workers.append(start_worker(broker_url, queue, folder, visibility=2, fault="mid_write:5"))
        workers[0].wait(180)
        assert workers[0].returncode == -signal.SIGKILL
        assert UploadItem.objects.filter(state="quarantined").exists()
        workers.append(start_worker(broker_url, queue, folder, visibility=2))
        wait_for(
            lambda: Upload.objects.get(pk=upload.pk).state == "complete",
            120,
            "the killed worker's batch to be redelivered and finished",
            folder / "worker.log",
        )
    return upload


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(20)


class RedisServer:
    """A redis-server of the test's own on a free loopback port, without persistence: a restart starts empty."""

    def __init__(self, directory: Path):
        self.port, self.directory, self.process = free_port(), directory, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(up, 20, "redis-server to start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(20)
        self.process = None


class MotoServer:
    """moto's standalone S3 server on a free loopback port, for the S3 image store."""

    def __init__(self):
        self.port, self.process = free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import requests

        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            # A server that answers slowly (a busy machine: moto importing its modules on the first request) is
            # not up yet: the probe asks again until the deadline, rather than taking a slow answer for a failure.
            try:
                return requests.get(self.url, timeout=5).status_code < 500
            except (requests.ConnectionError, requests.Timeout):
                return False

        wait_for(up, 60, "moto's S3 server to start")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def storages(self, prefix: str) -> dict:
        """STORAGES entries for an image store and a quarantine in two fresh buckets of this server."""
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106
        )
        entries = {}
        for name in ("images", "quarantine"):
            bucket = f"{prefix}-{name}"
            client.create_bucket(Bucket=bucket)
            entries[name] = {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": bucket,
                    "endpoint_url": self.url,
                    "region_name": "us-east-1",
                    "access_key": "test",
                    "secret_key": "test",
                    "file_overwrite": False,
                    "object_parameters": {"ServerSideEncryption": "AES256"},
                },
            }
        return entries


def use_storages(settings_fixture, entries: dict) -> None:
    settings_fixture.STORAGES = settings_fixture.STORAGES | entries
    storages._storages.clear()
