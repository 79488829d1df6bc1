"""Backup and restore: the database and the image store, consistent with each other.

Consistency comes from one PostgreSQL snapshot: the backup opens a REPEATABLE READ transaction, exports its
snapshot, has `pg_dump` (custom format) dump exactly that snapshot, and lists from the same snapshot every file
the rows point to: each Instance's stored file (SOP instances and SRs), and the quarantined copy of each file
still waiting to be processed. Stored files are written once and never replaced, so copying them after the dump
gives the bytes the rows describe; each is hashed while it is copied and checked against its row. The folder it
writes:

    database.dump        pg_dump --format=custom of the snapshot
    images/<key>         every stored file the dump's Instance rows point to
    <section>/<key>      every file another app's rows name in a store of its own (KEPT_FILES: the sponsor
                         transfers' zips, under transfers/)
    quarantine/<key>     the raw copy of every file the dump lists as waiting (those processed meanwhile are
                         listed as gone: restored, they are asked for again, as any lost quarantine copy is)
    manifest.json        every file's key, size and SHA-256, and the dump's SHA-256

A restore checks the folder against its manifest, restores the dump into an empty database, puts the files
back through the store's write-once path (file system or S3), then verifies that every Instance row's file is
there with its SHA-256 and that the audit chain is intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.storage import storages
from django.db import connection, transaction

from ctims.audit import audit_verify

from .ingest import store
from .models import Instance, UploadItem

CHUNK = 1024 * 1024
FORMAT = 1


@dataclass(frozen=True)
class KeptFiles:
    """Files kept in a store of their own and named by rows of another app, which registers them here (the reads
    app: the sponsor transfers' zips): backed up, restored and verified like the instances."""

    storage: str  # the STORAGES alias
    rows: Callable[[], Iterable[tuple[str, str, int]]]  # each file's key, SHA-256 and size, read in the snapshot


# By the backup folder's and the manifest's section name.
KEPT_FILES: dict[str, KeptFiles] = {}


class BackupError(Exception):
    """A backup or restore that cannot be trusted: the message says what to look at."""


def _pg_env_and_args(database: dict | None = None) -> tuple[dict, list[str]]:
    db = database or settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise BackupError("backup and restore need PostgreSQL (DATABASE_URL=postgres://...)")
    env = os.environ.copy()
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    args = ["--dbname", db["NAME"]]
    if db.get("HOST"):
        args += ["--host", db["HOST"]]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", db["USER"]]
    return env, args


# A backup is for its owner's eyes only: the dump holds every trial's pseudonym key, password hashes and
# authenticator secrets, and the quarantine copies are identified images. Folders 0700, files 0600, whatever the
# umask of the operator's shell.
FOLDER_MODE, FILE_MODE = 0o700, 0o600


def _private_file(path: Path):
    """`path` opened for writing, made (or truncated) with FILE_MODE."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb")


def _private_folders(folder: Path, top: Path) -> None:
    """Make `folder` and its parents up to `top` with FOLDER_MODE."""
    if folder == top or folder.exists():
        return
    _private_folders(folder.parent, top)
    folder.mkdir(mode=FOLDER_MODE)
    folder.chmod(FOLDER_MODE)  # mkdir's mode passes through the umask


def _copy_out(storage, key: str, destination: Path, top: Path) -> tuple[str, int]:
    """Stream one stored file into the backup folder `top`; its SHA-256 and size."""
    _private_folders(destination.parent, top)
    digest, size = hashlib.sha256(), 0
    with storage.open(key, "rb") as source, _private_file(destination) as target:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            target.write(chunk)
        target.flush()
        os.fsync(target.fileno())
    return digest.hexdigest(), size


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class BackupReport:
    images: int = 0
    quarantined: int = 0
    gone: list[str] = field(default_factory=list)


def backup_create(*, destination: Path) -> BackupReport:
    """Write a consistent backup into `destination` (a new or empty folder)."""
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty")
    destination.mkdir(parents=True, exist_ok=True)
    destination.chmod(FOLDER_MODE)
    env, args = _pg_env_and_args()
    report, manifest = BackupReport(), {"format": FORMAT, "images": [], "quarantine": [], "gone": []}
    images, quarantine = store.image_storage(), store.quarantine_storage()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
        dump = destination / "database.dump"
        _private_file(dump).close()  # pg_dump writes into it and keeps its mode
        subprocess.run(  # noqa: S603 -- fixed arguments from the settings, no shell
            ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}", "--file", dump]
            + args,
            env=env,
            check=True,
        )
        rows = Instance.objects.values_list("storage_key", "sha256", "size").order_by("pk").iterator()
        for key, sha256, size in rows:
            copied = _copy_out(images, key, destination / "images" / key, destination)
            if copied != (sha256, size):
                raise BackupError(f"the stored file {key} does not match its index row: the image store is damaged")
            manifest["images"].append({"key": key, "sha256": sha256, "size": size})
            report.images += 1
        for section, kept in KEPT_FILES.items():
            manifest[section] = []
            for key, sha256, size in kept.rows():
                if _copy_out(storages[kept.storage], key, destination / section / key, destination) != (sha256, size):
                    raise BackupError(f"the stored file {section}/{key} does not match its row: the store is damaged")
                manifest[section].append({"key": key, "sha256": sha256, "size": size})
        waiting = UploadItem.objects.filter(state=UploadItem.State.QUARANTINED).values_list("upload_id", "sha256")
        for upload_id, sha256 in waiting.order_by("pk").iterator():
            key = store.quarantine_key(upload_id, sha256)
            try:
                copied_sha, size = _copy_out(quarantine, key, destination / "quarantine" / key, destination)
            except FileNotFoundError:  # processed since the snapshot: its outcome is not in this backup
                manifest["gone"].append(key)
                report.gone.append(key)
                continue
            entry = {"key": key, "upload": upload_id, "sha256": sha256, "size": size, "intact": copied_sha == sha256}
            manifest["quarantine"].append(entry)
            report.quarantined += 1
    manifest["database"] = {"file": "database.dump", "sha256": _sha256_file(dump)}
    with _private_file(destination / "manifest.json") as f:
        f.write(json.dumps(manifest, indent=1).encode())
    return report


def backup_check(*, source: Path) -> dict:
    """The backup's manifest, after checking that the dump and every file in it are whole."""
    source = Path(source)
    manifest = json.loads((source / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError("this backup was written by another version of CTIMS")
    if _sha256_file(source / manifest["database"]["file"]) != manifest["database"]["sha256"]:
        raise BackupError("the database dump does not match its manifest")
    for section in ("images", *KEPT_FILES):
        for entry in manifest.get(section, []):  # a backup from before a section existed has none of it
            if _sha256_file(source / section / entry["key"]) != entry["sha256"]:
                raise BackupError(f"the backed-up file {entry['key']} does not match the manifest")
    return manifest


@dataclass
class RestoreReport:
    images: int
    quarantined: int
    audit_events: int
    # KEPT_FILES sections the backup does not hold (written before they were backed up): not restored, not checked.
    not_in_backup: list[str] = field(default_factory=list)
    # Files restored per KEPT_FILES section held in the backup.
    kept: dict[str, int] = field(default_factory=dict)


def _hash_stored(storage, key: str) -> tuple[str, int]:
    digest, length = hashlib.sha256(), 0
    with storage.open(key, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            length += len(chunk)
    return digest.hexdigest(), length


def restore_verify(kept: Iterable[str] | None = None) -> int:
    """Every Instance row's file is in the store with its SHA-256 and size, and so is every file of the KEPT_FILES
    sections `kept` (all of them unless said); the audit chain is intact. Returns the number of audit events
    checked."""
    images = store.image_storage()
    for key, sha256, size in Instance.objects.values_list("storage_key", "sha256", "size").iterator():
        digest, length = hashlib.sha256(), 0
        try:
            with images.open(key, "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                    length += len(chunk)
        except FileNotFoundError:
            raise BackupError(f"the stored file {key} is missing after the restore") from None
        if (digest.hexdigest(), length) != (sha256, size):
            raise BackupError(f"the stored file {key} does not match its index row after the restore")
    for section in KEPT_FILES if kept is None else kept:
        for key, sha256, size in KEPT_FILES[section].rows():
            try:
                found = _hash_stored(storages[KEPT_FILES[section].storage], key)
            except FileNotFoundError:
                raise BackupError(f"the stored file {section}/{key} is missing after the restore") from None
            if found != (sha256, size):
                raise BackupError(f"the stored file {section}/{key} does not match its row after the restore")
    report = audit_verify()
    if not report.intact:
        raise BackupError(f"the audit chain is broken after {report.checked} events: {report.problem}{report.key_hint}")
    return report.checked


def backup_restore(*, source: Path) -> RestoreReport:
    """Restore a backup into the configured database (which must be empty) and image store, then verify it."""
    source = Path(source)
    manifest = backup_check(source=source)
    with connection.cursor() as cursor:
        if connection.introspection.table_names(cursor):
            raise BackupError("the database is not empty: restore into a new database (createdb), never over one")
    connection.close()  # pg_restore needs no session of ours in its way
    env, args = _pg_env_and_args()
    subprocess.run(  # noqa: S603 -- fixed arguments from the settings, no shell
        ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
        + args
        + [str(source / manifest["database"]["file"])],
        env=env,
        check=True,
    )
    for entry in manifest["images"]:
        data = (source / "images" / entry["key"]).read_bytes()
        store.store_instance(entry["key"], data)
    for section, kept in KEPT_FILES.items():
        for entry in manifest.get(section, []):
            data = (source / section / entry["key"]).read_bytes()
            store.write_once(storages[kept.storage], entry["key"], data, refusal="a different file is stored here")
    quarantined = 0
    for entry in manifest["quarantine"]:
        if entry["intact"]:
            store.quarantine_put(entry["upload"], entry["sha256"], (source / "quarantine" / entry["key"]).read_bytes())
            quarantined += 1
    # A waiting file whose copy is not restored is asked for again by the pipeline (state "resend").
    held = [section for section in KEPT_FILES if section in manifest]
    return RestoreReport(
        images=len(manifest["images"]),
        quarantined=quarantined,
        audit_events=restore_verify(held),
        not_in_backup=[section for section in KEPT_FILES if section not in manifest],
        kept={section: len(manifest[section]) for section in held},
    )
