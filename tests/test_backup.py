"""The restore drill: a trial with uploads and signed reads is backed up, wiped, restored into a database and a
store of its own, and then the audit chain verifies and every stored file matches its index row."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import psycopg
import pytest
from django.conf import settings

from reads import transfers
from reads.models import Read, Transfer
from reads.services import read_design_set
from tests.conftest import build_world, received_in_quarantine
from tests.reads.flow import baseline_content, ready, save_and_sign, task_of
from tests.trials.durability import use_storages
from trials.backup import BackupError, backup_check, backup_create
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, UploadItem

ROOT = Path(__file__).resolve().parents[1]
# One scratch database per xdist worker: two drills on two workers at once must not restore into the same one.
SCRATCH = f"{settings.DATABASES['default']['NAME']}_restore_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def server_url(name: str) -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"


def recreate(name: str) -> None:
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def manage(*args: str, var_dir: Path, **variables: str) -> subprocess.CompletedProcess:
    env = (
        os.environ
        | {
            "DJANGO_SETTINGS_MODULE": "ctims.settings",
            "DATABASE_URL": server_url(SCRATCH),
            "CTIMS_VAR_DIR": str(var_dir),
            "AUDIT_HMAC_KEY": settings.AUDIT_HMAC_KEY,
            "CELERY_BROKER_URL": "",
        }
        | variables
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def trial_with_reads(transactional_db, stores, monkeypatch):
    """ALPHA with a double read: the baseline uploaded, passed and signed by both readers (two SRs stored), and
    one more upload acknowledged but not yet processed (its raw copy waiting in quarantine)."""
    world = build_world()
    read_design_set(actor=world.alice, trial=world.trial, paradigm="double")
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    waiting = synthesize_ct_series(real_ct_template(large=False), slices=1, seed="waiting")
    received_in_quarantine(monkeypatch, world.cora, waiting, visit="W6")  # the worker is away
    return world


def test_a_backup_restored_into_an_empty_system_verifies_its_audit_chain_and_every_file(trial_with_reads, stores):
    assert Read.objects.filter(state="signed").count() == 2
    instances = dict(Instance.objects.values_list("storage_key", "sha256"))
    assert any("SR" in Instance.objects.get(storage_key=k).series.modality for k in instances)
    waiting = UploadItem.objects.get(state=UploadItem.State.QUARANTINED)

    backup = stores / "backup"
    report = backup_create(destination=backup)
    assert (report.images, report.quarantined, report.gone) == (len(instances), 1, [])

    # Wipe: the original store is gone; the restore goes into a new database and a new folder.
    shutil.rmtree(stores / "images")
    shutil.rmtree(stores / "quarantine")
    recreate(SCRATCH)
    restored = stores / "restored"
    done = manage("restore", str(backup), var_dir=restored)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "audit chain intact" in done.stdout

    verified = manage("audit_verify", var_dir=restored)
    assert verified.returncode == 0, verified.stderr[-3000:]
    with psycopg.connect(server_url(SCRATCH)) as conn:
        rows = dict(conn.execute("SELECT storage_key, sha256 FROM trials_instance").fetchall())
        signed = conn.execute("SELECT count(*) FROM reads_read WHERE state = 'signed'").fetchone()[0]
    assert rows == instances
    assert signed == 2
    for key, sha256 in rows.items():
        assert hashlib.sha256((restored / "images" / key).read_bytes()).hexdigest() == sha256
    raw = restored / "quarantine" / f"{waiting.upload_id}/{waiting.sha256}"
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == waiting.sha256


def test_a_restore_brings_back_the_sponsor_transfers_zips(trial_with_reads, stores):
    """A transfer's zip is what was delivered to the sponsor, downloaded again from its row: the backup left the
    transfers store out, and after a restore the row said ready while its download was a server error."""
    transfer = transfers.transfer_request(actor=trial_with_reads.alice, trial=trial_with_reads.trial)
    transfer.refresh_from_db()  # built by its task at the commit (in-process here)
    assert transfer.state == Transfer.State.READY
    assert hashlib.sha256((stores / "transfers" / transfer.storage_key).read_bytes()).hexdigest() == transfer.sha256

    backup = stores / "backup"
    backup_create(destination=backup)
    for store in ("images", "quarantine", "transfers"):
        shutil.rmtree(stores / store)
    recreate(SCRATCH)
    restored = stores / "restored"
    done = manage("restore", str(backup), var_dir=restored)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ", 1 transfers and" in done.stdout
    zipped = restored / "transfers" / transfer.storage_key
    assert zipped.exists()
    assert hashlib.sha256(zipped.read_bytes()).hexdigest() == transfer.sha256


def test_a_backup_written_before_transfers_were_kept_still_restores_and_says_what_it_lacks(trial_with_reads, stores):
    transfer = transfers.transfer_request(actor=trial_with_reads.alice, trial=trial_with_reads.trial)
    transfer.refresh_from_db()
    backup = stores / "backup"
    backup_create(destination=backup)
    manifest = json.loads((backup / "manifest.json").read_text())
    del manifest["transfers"]  # as the backup of an earlier version wrote it
    (backup / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(backup / "transfers")
    recreate(SCRATCH)
    done = manage("restore", str(backup), var_dir=stores / "restored")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "audit chain intact" in done.stdout
    assert "before transfers were backed up" in done.stderr


def test_a_backup_refuses_a_transfer_zip_that_does_not_match_its_row(trial_with_reads, stores):
    transfer = transfers.transfer_request(actor=trial_with_reads.alice, trial=trial_with_reads.trial)
    transfer.refresh_from_db()
    path = stores / "transfers" / transfer.storage_key
    path.chmod(0o600)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # a zip ends in zeros: flip the last bit
    with pytest.raises(BackupError, match="does not match its row"):
        backup_create(destination=stores / "backup")


def test_a_backup_is_readable_by_its_owner_only(trial_with_reads, stores):
    """The dump holds every trial's pseudonym key, password hashes and authenticator secrets, and the quarantine
    copies are the sites' identified images: the backup was world-readable (0755 folders, 0644 files)."""
    usual = os.umask(0o022)  # the usual umask of an operator's shell
    backup = stores / "backup"
    try:
        backup_create(destination=backup)
    finally:
        os.umask(usual)
    paths = [backup, *backup.rglob("*")]
    assert any(p.name == "database.dump" for p in paths) and any(
        p.parent.name == "quarantine" or "quarantine" in p.parts for p in paths
    )
    opened = [str(p.relative_to(stores)) for p in paths if p.stat().st_mode & 0o077]
    assert opened == []


def test_a_restore_refuses_a_backup_whose_file_was_altered(trial_with_reads, stores):
    backup = stores / "backup"
    backup_create(destination=backup)
    entry = json.loads((backup / "manifest.json").read_text())["images"][0]
    damaged = backup / "images" / entry["key"]
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\0")
    with pytest.raises(BackupError, match="does not match the manifest"):
        backup_check(source=backup)


def test_a_restore_under_another_audit_key_says_so_rather_than_only_that_an_event_was_changed(trial_with_reads, stores):
    backup = stores / "backup"
    backup_create(destination=backup)
    recreate(SCRATCH)
    done = manage("restore", str(backup), var_dir=stores / "restored", AUDIT_HMAC_KEY="not-the-key-it-was-made-with")
    assert done.returncode != 0
    assert "is AUDIT_HMAC_KEY" in done.stderr


def test_a_restore_refuses_a_database_that_is_not_empty(trial_with_reads, stores):
    backup = stores / "backup"
    backup_create(destination=backup)
    recreate(SCRATCH)
    assert manage("restore", str(backup), var_dir=stores / "one").returncode == 0
    again = manage("restore", str(backup), var_dir=stores / "two")
    assert again.returncode != 0
    assert "not empty" in again.stderr


def test_a_backup_refuses_a_store_file_that_does_not_match_its_row(trial_with_reads, stores):
    instance = Instance.objects.first()
    path = stores / "images" / instance.storage_key
    path.chmod(0o600)
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(BackupError, match="image store is damaged"):
        backup_create(destination=stores / "backup")


# --- the same drill on the S3 store -------------------------------------------------------------------------------


def test_the_drill_on_the_s3_store_restores_into_buckets_of_its_own(transactional_db, stores, settings, s3_server):
    prefix = f"b{uuid.uuid4().hex[:12]}"
    use_storages(settings, s3_server.storages(prefix=prefix))
    try:
        world = build_world()
        read_design_set(actor=world.alice, trial=world.trial, paradigm="double")
        ready(world, "BL")
        task = task_of(world.rhea, "BL")
        save_and_sign(world.rhea, task, baseline_content(task))
        instances = dict(Instance.objects.values_list("storage_key", "sha256"))
        backup = stores / "backup"
        assert backup_create(destination=backup).images == len(instances)
    finally:
        use_storages(settings, {})

    target = s3_server.storages(prefix=f"{prefix}r")  # two new, empty buckets
    recreate(SCRATCH)
    done = manage(
        "restore",
        str(backup),
        var_dir=stores / "restored",
        IMAGE_STORE="s3",
        IMAGE_STORE_BUCKET=target["images"]["OPTIONS"]["bucket_name"],
        QUARANTINE_BUCKET=target["quarantine"]["OPTIONS"]["bucket_name"],
        S3_ENDPOINT_URL=s3_server.url,
        S3_REGION="us-east-1",
        S3_ACCESS_KEY_ID="test",
        S3_SECRET_ACCESS_KEY="test",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "audit chain intact" in done.stdout
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    for key, sha256 in instances.items():
        body = client.get_object(Bucket=target["images"]["OPTIONS"]["bucket_name"], Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha256
