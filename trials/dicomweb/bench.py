"""`manage.py bench dicomweb`: what a viewer waits for, measured in one process against a baseline of disk reads."""

from __future__ import annotations

import time
import uuid

from django.contrib.auth import get_user_model
from django.db import connection

from ctims.bench import median_ms, scratch, signed_in_client
from trials import services
from trials.ingest.services import BATCH_SIZE, upload_batch_process, upload_finish, upload_open, upload_receive
from trials.ingest.store import image_storage
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Role, Series, Study

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
                )

    table = Instance._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for values in row_values():
                    copy.write_row(values)
            cursor.execute(f"ANALYZE {table}")
            cursor.execute(f"ANALYZE {Series._meta.db_table}")
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608
                list(row_values()),
            )


def bench_dicomweb(out, *, slices: int, runs: int, small: bool, index_rows: int) -> None:
    with scratch("ctims-bench-dw-"):
        _run(out, slices=slices, runs=runs, small=small, index_rows=index_rows)


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
    searches = {
        "series by SeriesInstanceUID": (f"{root}/series", {"SeriesInstanceUID": some.series_instance_uid}),
        "series by Modality=MR, limit 100": (f"{root}/series", {"Modality": "MR", "limit": "100"}),
        "series by description wildcard": (f"{root}/series", {"SeriesDescription": "AX 3*", "limit": "100"}),
        "series of one study": (f"{root}/studies/{some.study.study_instance_uid}/series", {}),
        "instances of one series (500)": (
            f"{root}/studies/{some.study.study_instance_uid}/series/{some.series_instance_uid}/instances",
            {},
        ),
    }
    for label, (url, params) in searches.items():
        client.get(url, params)
        ms = median_ms(lambda url=url, params=params: client.get(url, params), max(runs, 7))
        out.write(f"  QIDO {label:<36} {ms:8.2f} ms")
