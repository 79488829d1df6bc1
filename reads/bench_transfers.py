"""`manage.py bench transfers`: building a sponsor transfer of a double-read trial, against its two parts measured
alone in the same run: reading the locked series (reads.series) and copying the SRs the zip carries."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.db import connection

from ctims.bench import median_ms, scratch, undone
from trials import services
from trials.ingest.store import image_storage
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Role

from . import read_services, transfers
from .bench import PASSWORD, _content, timepoint_read_ready
from .models import Read, ReadTask
from .series import trial_series
from .services import read_design_set

# Baseline and week 6 sums per reader: both readers agree on PR, so every visit locks without an adjudicator.
SIZES = {"BL": ["30.0", "25.0", "20.0", "15.0", "12.0"], "W6": ["20.0", "15.0", "12.0", "10.0", "10.0"]}


def _trial(subjects: int, slices: int, small: bool):
    """A double-read trial whose `subjects` subjects are read at baseline and week 6 by both readers, all locked."""
    User = get_user_model()
    tag = uuid.uuid4().hex[:8]
    admin = User.objects.create_user(f"bench-admin-{tag}@bench.invalid", None, full_name="Bench admin")
    readers = [
        User.objects.create_user(f"bench-reader{n}-{tag}@bench.invalid", PASSWORD, full_name=f"Bench Reader{n}")
        for n in (1, 2)
    ]
    sponsor = User.objects.create_user(f"bench-sponsor-{tag}@bench.invalid", None, full_name="Bench sponsor")
    trial = services.trial_create(actor=admin, code="BENCHTX", title="Bench", sponsor="Bench", protocol_number="B-1")
    site = services.site_create(actor=admin, trial=trial, code="S", name="Bench site", country="KR")
    services.visit_create(actor=admin, trial=trial, code="BL", label="Baseline", order=1, target_day=0)
    services.visit_create(actor=admin, trial=trial, code="W6", label="Week 6", order=2, target_day=42)
    services.membership_grant(actor=admin, trial=trial, user=admin, role=Role.SITE_COORDINATOR, sites=[site])
    services.membership_grant(actor=admin, trial=trial, user=sponsor, role=Role.SPONSOR_VIEWER)
    for reader in readers:
        services.membership_grant(actor=admin, trial=trial, user=reader, role=Role.READER)
    read_design_set(actor=admin, trial=trial, paradigm="double")
    template = real_ct_template(large=not small)
    for s in range(subjects):
        subject = services.subject_enroll(actor=admin, site=site)
        for timepoint in subject.timepoints.order_by("visit__order"):
            files = synthesize_ct_series(
                template,
                slices=slices,
                seed=f"bench-transfers-{s}-{timepoint.visit.code}",
                study_date=date(2026, 3, 2) + timedelta(days=timepoint.visit.target_day),
            )
            timepoint_read_ready(admin, timepoint, files)
            for reader in readers:
                task = ReadTask.objects.get(assignment__reader=reader, timepoint=timepoint)
                read = read_services.read_save(
                    actor=reader, task_id=task.pk, raw=_content(task, SIZES[timepoint.visit.code])
                )
                read_services.read_sign(
                    actor=reader,
                    task_id=task.pk,
                    password=PASSWORD,
                    meaning_confirmed=True,
                    confirmed_response=read.assessment["overall_response"] or "baseline",
                )
    return trial, sponsor


def bench_transfers(out, *, subjects: int, slices: int, runs: int, small: bool) -> None:
    with scratch("ctims-bench-transfers-"):
        trial, sponsor = _trial(subjects, slices, small)
        reads = Read.objects.filter(task__design__trial=trial, state=Read.State.SIGNED)
        keys = list(reads.values_list("sr_instance__storage_key", flat=True))
        out.write(
            f"{subjects} subjects, two visits each, both readers' signed reads locked ({len(keys)} reads and SRs; "
            f"5 targets and 3 non-targets per read); {connection.vendor}; medians of {runs} runs."
        )

        def build():
            with undone():
                transfer = transfers.transfer_request(actor=sponsor, trial=trial)
                transfer = transfers.transfer_build(transfer_id=transfer.pk)
                assert transfer.state == transfer.State.READY, transfer.error
                build.size = transfer.size
                # The rows roll back; the zip goes too, so that the next run writes its own under the same name.
                transfers.transfer_storage().delete(transfer.storage_key)

        def series():
            trial_series(trial)

        def copy_srs():
            images = image_storage()
            for key in keys:
                with images.open(key, "rb") as f:
                    f.read()

        build()  # warm imports and caches
        whole = median_ms(build, runs)
        selector = median_ms(series, runs)
        srs = median_ms(copy_srs, runs)
        out.write(f"  (a) the locked series alone (reads.series.trial_series)   {selector:9.1f} ms")
        out.write(f"  (b) reading the {len(keys)} SRs alone                        {srs:9.1f} ms")
        out.write(
            f"  (c) the whole transfer (SDTM x2, define.xml, tables, SRs, manifest, zip {build.size / 1e6:.1f} MB) "
            f"{whole:9.1f} ms"
        )
        out.write(
            f"  (c)/(a) = {whole / selector:.2f}; (c)-(a)-(b) = {whole - selector - srs:.1f} ms writing everything "
            f"({(whole - selector - srs) / subjects:.1f} ms per subject)"
        )
