"""Random search keys and retrieval parameters (a fixed seed: the same requests every run) on a trial's DICOMweb
root: each is answered, or refused with a 4xx in the error shape, never with a server error.

A campaign of 3,000 such requests found a NUL byte (`%00`) in a key's value answered with a server error (now
400 before any view: tests/ctims/test_nul_bytes.py).
"""

from __future__ import annotations

import random

import pytest

from tests.trials.dicomweb.test_conformance import body
from tests.trials.test_dicomweb import ROOT, with_images
from trials.models import Instance

SEED = 20261207
REQUESTS = 400
KEYS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "PatientName",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "SeriesNumber",
    "InstanceNumber",
    "includefield",
    "limit",
    "offset",
    "fuzzymatching",
    "00100020",
    "0020000D",
    "StudyDescription",
    "SOPClassUID",
    "window",
    "viewport",
    "quality",
    "charset",
    "accept",
)
PIECES = (
    "*",
    "?",
    "-",
    "\\",
    "",
    " ",
    "2020",
    "20200101-",
    "-20200101",
    "20201301",
    "1.2.3",
    "a" * 300,
    "%",
    "_",
    "'",
    '"',
    "\x00",
    "é",
    "김",
    "0",
    "-1",
    "99999999999999999999",
    "1e5",
    "true",
    "all",
    ",",
    "00100010",
    "NaN",
    "inf",
    "240000",
    "23:59",
    "120000.123456",
    "2020-01-01",
    "^",
    "=",
    "1.2.*",
    "CT\\MR",
)


@pytest.mark.usefixtures("stores", "on_commit_now")
def test_random_parameters_never_answer_a_server_error(world, client):
    with_images(world)
    client.force_login(world.alice)
    instance = Instance.objects.select_related("series__study").filter(series__study__subject__code="ALPHA-SEO-001")[0]
    study, series = f"/studies/{instance.series.study.study_instance_uid}", instance.series.series_instance_uid
    one = f"{study}/series/{series}/instances/{instance.sop_instance_uid}"
    paths = (
        "/studies",
        "/series",
        "/instances",
        f"{study}/series",
        f"{study}/instances",
        f"{study}/series/{series}/instances",
        f"{study}/metadata",
        f"{study}/series/{series}/rendered",
        f"{one}/rendered",
        f"{one}/frames/1,2/rendered",
        f"{study}/thumbnail",
    )
    rng = random.Random(SEED)
    failures = []
    for _ in range(REQUESTS):
        path = rng.choice(paths)
        params = {rng.choice(KEYS): "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 3))) for _ in range(3)}
        answer = client.get(ROOT + path, params)
        body(answer)
        if answer.status_code >= 500:
            failures.append((path, params, answer.status_code))
        elif answer.status_code >= 400:
            assert answer["Content-Type"] == "application/json", (
                path,
                params,
                answer.status_code,
                answer.content[:300],
            )
    assert not failures
