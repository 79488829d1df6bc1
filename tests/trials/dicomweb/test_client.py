"""dicomweb-client, a third-party DICOMweb client, against a live server: searches with every matching key,
instances in the default and an explicit transfer syntax, bulk data, and compressed frames as stored and decoded."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pydicom
import pytest
from django.core.files.storage import storages

from tests.conftest import build_world
from tests.trials.test_dicomweb import ROOT, with_images
from trials import services
from trials.models import Instance, Membership, Role, Series, Study

from .test_conformance import CT_IMAGE, EXPLICIT, JPEG_LS, ORIGINAL, with_encodings


@pytest.fixture
def dicomweb(transactional_db, stores, live_server):
    from dicomweb_client.api import DICOMwebClient

    world = build_world()
    with_images(world)
    encodings = with_encodings(world)
    Study.objects.filter(subject__code="ALPHA-SEO-001").update(
        accession_number="ACC-1", study_id="S1", referring_physician_name="WHO^DOCTOR", study_time="103000"
    )
    Series.objects.filter(study__subject__code="ALPHA-SEO-001").update(
        performed_procedure_step_start_date=date(2026, 3, 2), performed_procedure_step_start_time="103500"
    )
    membership = Membership.objects.get(user=world.quinn, trial=world.trial, role=Role.QC_REVIEWER)
    _, key = services.api_token_create(actor=world.quinn, membership=membership, name="dicomweb-client")
    client = DICOMwebClient(url=f"{live_server.url}{ROOT}", headers={"Authorization": f"Bearer {key}"})
    # dicomweb-client (0.61) sends its GETs with `Host: <name>` and no port, which RFC 9110 7.2 asks for on a
    # port other than the scheme's; the server builds absolute URIs from the Host it is sent, so on the live
    # server's port the client is given the Host it should send (on 443 behind the TLS proxy it is right as is).
    client.host = live_server.url.removeprefix("http://")
    return client, encodings


def uids(found: list[dict], tag: str) -> set[str]:
    return {item[tag]["Value"][0] for item in found}


def test_search_for_studies_with_every_matching_key(dicomweb):
    client, _ = dicomweb
    study = Study.objects.get(subject__code="ALPHA-SEO-001")
    seoul = {study.study_instance_uid}
    for key, match, other in [
        ("PatientName", "ALPHA-SEO-001", "NOMATCH"),
        ("PatientID", "ALPHA-SEO-001", "NOMATCH"),
        ("AccessionNumber", "ACC-1", "NOMATCH"),
        ("StudyID", "S1", "S9"),
        ("ReferringPhysicianName", "WHO^DOCTOR", "NOMATCH"),
        ("StudyTime", "100000-110000", "200000-"),
        ("StudyInstanceUID", study.study_instance_uid, "1.2.3.4"),
        ("StudyDate", study.study_date.strftime("%Y%m%d"), "19000101"),
        ("ModalitiesInStudy", "CT", "PT"),
    ]:
        found = client.search_for_studies(search_filters={key: match})
        assert seoul <= uids(found, "0020000D"), key
        if key not in ("StudyDate", "ModalitiesInStudy"):  # Busan's study shares these
            assert uids(found, "0020000D") == seoul, key
        assert client.search_for_studies(search_filters={key: other}) == [], key


def test_search_for_series_and_instances_with_every_matching_key(dicomweb):
    client, _ = dicomweb
    series = Series.objects.get(study__subject__code="ALPHA-SEO-001")
    for key, match, other in [
        ("Modality", "CT", "PT"),
        ("SeriesInstanceUID", series.series_instance_uid, "1.2.3.4"),
        ("SeriesNumber", "2", "7"),
        ("PerformedProcedureStepStartDate", "20260302", "20200101"),
        ("PerformedProcedureStepStartTime", "103500", "090000"),
    ]:
        assert series.series_instance_uid in uids(client.search_for_series(search_filters={key: match}), "0020000E")
        assert client.search_for_series(search_filters={key: other}) == [], key
    instance = series.instances.get(instance_number=2)
    for key, match, other in [
        ("SOPClassUID", CT_IMAGE, "1.2.3.4"),
        ("SOPInstanceUID", instance.sop_instance_uid, "1.2.3.4"),
        ("InstanceNumber", "2", "99"),
    ]:
        found = client.search_for_instances(
            study_instance_uid=series.study.study_instance_uid,
            series_instance_uid=series.series_instance_uid,
            search_filters={key: match},
        )
        assert instance.sop_instance_uid in uids(found, "00080018"), key
        assert client.search_for_instances(search_filters={key: other}) == [], key


def _ids(instance: Instance) -> tuple[str, str, str]:
    return instance.series.study.study_instance_uid, instance.series.series_instance_uid, instance.sop_instance_uid


def test_retrieve_instance_in_the_default_and_an_explicit_transfer_syntax(dicomweb):
    client, encodings = dicomweb
    for syntax, instance in encodings.items():  # the standard's default (no transfer-syntax parameter)
        ds = client.retrieve_instance(*_ids(instance), media_types=("application/dicom",))
        assert ds.file_meta.TransferSyntaxUID == EXPLICIT, syntax
        assert np.array_equal(ds.pixel_array, ORIGINAL), syntax
    jpeg_ls = encodings[JPEG_LS]
    decoded = client.retrieve_instance(*_ids(jpeg_ls), media_types=(("application/dicom", EXPLICIT),))
    assert decoded.file_meta.TransferSyntaxUID == EXPLICIT and np.array_equal(decoded.pixel_array, ORIGINAL)
    stored = client.retrieve_instance(*_ids(jpeg_ls), media_types=(("application/dicom", JPEG_LS),))
    assert stored.file_meta.TransferSyntaxUID == JPEG_LS
    original = pydicom.dcmread(io.BytesIO(storages["images"].open(jpeg_ls.storage_key).read()))
    assert stored.PixelData == original.PixelData


def test_retrieve_bulkdata_from_the_metadata_uri(dicomweb, live_server):
    client, encodings = dicomweb
    for syntax, instance in encodings.items():
        metadata = client.retrieve_instance_metadata(*_ids(instance))
        uri = metadata["7FE00010"]["BulkDataURI"]  # absolute: followed as given
        assert uri.startswith(f"{live_server.url}{ROOT}/studies/")
        [pixels] = client.retrieve_bulkdata(uri)
        array = np.frombuffer(pixels, dtype=ORIGINAL.dtype.newbyteorder("<")).reshape(ORIGINAL.shape)
        assert np.array_equal(array, ORIGINAL), syntax


def test_retrieve_frames_of_a_compressed_instance_as_stored_and_decoded(dicomweb):
    client, encodings = dicomweb
    instance = encodings[JPEG_LS]
    [stored] = client.retrieve_instance_frames(
        *_ids(instance), frame_numbers=[1], media_types=(("image/jls", JPEG_LS),)
    )
    assert stored[:2] == b"\xff\xd8"
    assert np.array_equal(_decode_jls(stored), ORIGINAL)
    [native] = client.retrieve_instance_frames(
        *_ids(instance), frame_numbers=[1], media_types=(("application/octet-stream", EXPLICIT),)
    )
    array = np.frombuffer(native, dtype=ORIGINAL.dtype.newbyteorder("<")).reshape(ORIGINAL.shape)
    assert np.array_equal(array, ORIGINAL)


def _decode_jls(codestream: bytes) -> np.ndarray:
    import jpeg_ls

    return jpeg_ls.decode(np.frombuffer(codestream, dtype=np.uint8)).astype(ORIGINAL.dtype)
