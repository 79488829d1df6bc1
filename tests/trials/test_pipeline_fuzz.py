"""Real files with bytes mutated at random (a fixed seed: the same files every run) through the whole pipeline.

Whatever a mutation does, each file ends accepted, or rejected with a reason; the visit's QC checks run; and every
accepted instance is served by every DICOMweb retrieval of its root (the instance, its metadata, its frames as
stored and decoded, rendered, thumbnail) without an error, and its series' without a server error. Campaigns of this kind, over
other seeds and 150-200 files each, found the cases now refused with a reason in test_validate.py (a NUL inside
text, NaN in a float, a missing Study or Series UID, an undefined Photometric Interpretation), a public element
DICOM does not define kept by de-identification (test_deidentify.py), and rendered images of undecodable pixels
answered with a server error (test_conformance.py).
"""

from __future__ import annotations

import io
import random

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.conftest import upload_files
from tests.trials.dicomweb.test_conformance import body, instance_url
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Series, Timepoint, UploadItem

SEED = 20261207
FILES = 60
# Real files of other kinds, made the subject's (synthesize_ct_series's patient) so that only what a mutation
# breaks can reject them.
OTHERS = (
    "MR_small.dcm",
    "JPEG2000.dcm",
    "MR_small_RLE.dcm",
    "emri_small.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",
)
RETRIEVALS = (
    ("", 'multipart/related; type="application/dicom"'),
    ("/metadata", "application/dicom+json"),
    ("/frames/1", 'multipart/related; type="application/octet-stream"'),
    ("/frames/1", 'multipart/related; type="application/octet-stream"; transfer-syntax=*'),
    ("/rendered", "image/jpeg"),
    ("/frames/1/rendered", "image/png"),
    ("/thumbnail", "image/jpeg"),
)


def the_subjects(name: str, n: int) -> bytes:
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.PatientName, ds.PatientID = "HONG^GILDONG", "PID0001"
    uid = lambda part: generate_uid(entropy_srcs=[str(SEED), name, str(n), part])  # noqa: E731 - the same each run
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("instance")
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def mutated(rng: random.Random, data: bytes) -> bytes:
    """One of the mutations a byte-level fuzzer makes, in the header (its first 4,000 bytes) or the pixel data's
    last part (compressed payloads)."""
    data = bytearray(data)
    header = min(len(data), 4000)
    kind = rng.randrange(7)
    if kind == 0:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(132, header)] = rng.randrange(256)
    elif kind == 1:
        del data[rng.randrange(132, len(data)) :]
    elif kind == 2:
        at = rng.randrange(132, header)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 3:
        at = rng.randrange(132, header)
        del data[at : at + rng.randint(1, 16)]
    elif kind == 4:
        at = rng.randrange(132, header - 2)
        data[at : at + 2] = rng.choice([b"\xff\xff", b"\x00\x00", b"\x01\x00", b"\x10\x00"])
    elif kind == 5:
        at = rng.randrange(132, header - 4)
        data[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x00\x00\x01\x00"])
    else:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(max(132, len(data) - 6000), len(data))] = rng.randrange(256)
    return bytes(data)


@pytest.mark.usefixtures("stores", "on_commit_now")
def test_mutated_files_are_each_settled_and_every_accepted_one_is_served(world, client):
    rng = random.Random(SEED)
    bases = synthesize_ct_series(real_ct_template(large=False), slices=FILES, seed=f"fuzz-{SEED}")
    files = [mutated(rng, the_subjects(OTHERS[n % len(OTHERS)], n) if n % 2 else base) for n, base in enumerate(bases)]
    timepoint = upload_files(world.cora, "ALPHA-SEO-001", files)  # finishing runs the visit's QC checks

    items = list(UploadItem.objects.filter(upload__timepoint=timepoint))
    assert len(items) == len(set(files))
    for item in items:
        assert item.state in ("accepted", "duplicate", "rejected"), item.state
        if item.state == "rejected":
            assert item.code and len(item.reason) > 20, (item.code, item.reason)
    accepted = Instance.objects.filter(series__study__timepoint=timepoint).select_related("series__study")
    assert 10 <= len(accepted) < len(files)  # the mutations left some files whole and broke others
    timepoint.refresh_from_db()
    assert timepoint.state == Timepoint.State.UPLOADED

    client.force_login(world.alice)
    failures = []
    for instance in accepted:
        for suffix, accept in RETRIEVALS:
            answer = client.get(instance_url(instance) + suffix, HTTP_ACCEPT=accept)
            body(answer)
            if answer.status_code >= 400:  # an accepted image decodes (ingest decoded it): never even a 406
                failures.append((instance.sop_instance_uid, suffix, answer.status_code))
    for series in Series.objects.filter(study__timepoint=timepoint).select_related("study"):
        root = f"/dicomweb/trials/ALPHA/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        for suffix in ("", "/metadata", "/instances", "/rendered", "/thumbnail"):
            answer = client.get(root + suffix)
            body(answer)
            if answer.status_code >= 500:
                failures.append((series.series_instance_uid, suffix, answer.status_code))
    assert not failures
