"""PS3.18 conformance of a trial's DICOMweb root, section by section: what a third-party client may rely on."""

from __future__ import annotations

import io
from datetime import date, timedelta
from email.parser import BytesParser
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.files.storage import storages
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import generate_uid

from tests.conftest import build_world
from tests.trials.test_decodable import frame_missing, rle_segment_misplaced
from tests.trials.test_dicomweb import ROOT, upload, with_images
from trials.ingest import services as ingest_services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Series, Study

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
JPEG_LS = "1.2.840.10008.1.2.4.80"
RLE = "1.2.840.10008.1.2.5"
DICOM = 'multipart/related; type="application/dicom"'
OCTETS = 'multipart/related; type="application/octet-stream"'
CAPPED = (
    '299 testserver: "The number of results exceeded the maximum supported by the server. '
    'Additional results can be requested."'
)


@pytest.fixture
def images(db, stores, on_commit_now):
    world = build_world()
    with_images(world)
    return world


@pytest.fixture
def indexed(images):
    """The index rows of both studies with the values the matching keys look at.

    De-identification (Annex E) empties Accession Number, Study ID, Referring Physician's Name and Patient's
    Birth Date of every stored file, so real uploads only ever exercise their no-match case: the rows are given
    values here so that matching itself is tested.
    """
    Study.objects.filter(subject__code="ALPHA-SEO-001").update(
        accession_number="ACC-1",
        study_id="S1",
        referring_physician_name="WHO^DOCTOR",
        patient_birth_date=date(1960, 1, 2),
        patient_sex="F",
        study_time="103000",
    )
    Study.objects.filter(subject__code="ALPHA-BUS-001").update(
        accession_number="ACC-2",
        study_id="S2",
        referring_physician_name="OTHER^DOC",
        patient_sex="M",
        study_time="154500",
    )
    Series.objects.filter(study__subject__code="ALPHA-SEO-001").update(
        performed_procedure_step_start_date=date(2026, 3, 2),
        performed_procedure_step_start_time="103500",
        requested_procedure_id="RP1",
        scheduled_procedure_step_id="SPS1",
    )
    return images


def seoul() -> Study:
    return Study.objects.get(subject__code="ALPHA-SEO-001")


def seoul_series() -> Series:
    return Series.objects.get(study__subject__code="ALPHA-SEO-001")


def values(answer, tag: str) -> list:
    return sorted(str(item[tag].get("Value", [""])[0]) for item in answer.json())


def body(response) -> bytes:
    """The whole body of an answer, streamed or not (a stream's failure shows only once it is read)."""
    return b"".join(response.streaming_content) if response.streaming else response.content


def parts(response) -> list[tuple[dict, bytes]]:
    """The parts of a multipart/related answer, with their headers."""
    message = BytesParser().parsebytes(f"Content-Type: {response['Content-Type']}\r\n\r\n".encode() + body(response))
    return [(dict(p.items()), p.get_payload(decode=True)) for p in message.get_payload()]


# -- PS3.18 10.6.1.2 / Table 10.6.1-5: every required matching key, match and no match ------------------------


def study_keys():
    return [
        ("PatientName", "ALPHA-SEO-001", "NOMATCH"),
        ("00100010", "ALPHA-SEO-001", "NOMATCH"),
        ("PatientID", "ALPHA-SEO-001", "NOMATCH"),
        ("AccessionNumber", "ACC-1", "NOMATCH"),
        ("00080050", "ACC-1", "NOMATCH"),
        ("StudyID", "S1", "S9"),
        ("ReferringPhysicianName", "WHO^DOCTOR", "NOMATCH"),
        ("StudyTime", "103000", "110000"),
        ("StudyDate", lambda: seoul().study_date.strftime("%Y%m%d"), "19000101"),
        ("ModalitiesInStudy", "CT", "MR"),
        ("StudyInstanceUID", lambda: seoul().study_instance_uid, "1.2.3.4"),
    ]


@pytest.mark.parametrize(("key", "match", "other"), study_keys())
def test_each_study_matching_key_finds_its_study_and_nothing_else(indexed, client, key, match, other):
    client.force_login(indexed.alice)
    match = match() if callable(match) else match
    if key == "StudyDate":  # both synthetic studies share the date: give Busan's another
        Study.objects.filter(subject__code="ALPHA-BUS-001").update(study_date=seoul().study_date - timedelta(days=400))
    if key == "ModalitiesInStudy":
        Series.objects.filter(study__subject__code="ALPHA-BUS-001").update(modality="MR")
        match, other = "CT", "PT"
    found = client.get(f"{ROOT}/studies", {key: match})
    assert found.status_code == 200 and "Warning" not in found
    assert values(found, "0020000D") == [seoul().study_instance_uid]
    assert client.get(f"{ROOT}/studies", {key: other}).json() == []


def series_keys():
    return [
        ("Modality", "CT", "MR"),
        ("SeriesInstanceUID", lambda: seoul_series().series_instance_uid, "1.2.3.4"),
        ("SeriesNumber", "2", "7"),
        ("PerformedProcedureStepStartDate", "20260302", "20200101"),
        ("PerformedProcedureStepStartTime", "103500", "090000"),
        ("RequestAttributesSequence.RequestedProcedureID", "RP1", "RP9"),
        ("00400275.00400009", "SPS1", "SPS9"),
        # study-level keys on /series (PS3.18 10.6.1.3: the levels above the target match too)
        ("PatientID", "ALPHA-SEO-001", "NOMATCH"),
        ("AccessionNumber", "ACC-1", "NOMATCH"),
        ("StudyInstanceUID", lambda: seoul().study_instance_uid, "1.2.3.4"),
    ]


@pytest.mark.parametrize(("key", "match", "other"), series_keys())
def test_each_series_matching_key_finds_its_series_and_nothing_else(indexed, client, key, match, other):
    client.force_login(indexed.alice)
    match = match() if callable(match) else match
    if key in ("Modality", "SeriesNumber"):
        Series.objects.filter(study__subject__code="ALPHA-BUS-001").update(modality="MR", series_number=3)
        other = "PT" if key == "Modality" else other
    found = client.get(f"{ROOT}/series", {key: match})
    assert found.status_code == 200 and "Warning" not in found
    assert values(found, "0020000E") == [seoul_series().series_instance_uid]
    assert client.get(f"{ROOT}/series", {key: other}).json() == []


def instance_keys():
    first = lambda: Instance.objects.get(series__study__subject__code="ALPHA-SEO-001", instance_number=3)  # noqa: E731
    return [
        ("SOPInstanceUID", lambda: first().sop_instance_uid, "1.2.3.4", 1),
        ("InstanceNumber", "3", "99", 1),  # Busan has two slices
        ("SOPClassUID", CT_IMAGE, "1.2.3.4", 7),
        # series- and study-level keys on /instances
        ("SeriesNumber", "2", "7", 7),
        ("PatientID", "ALPHA-SEO-001", "NOMATCH", 5),
        ("StudyID", "S2", "S9", 2),
    ]


@pytest.mark.parametrize(("key", "match", "other", "count"), instance_keys())
def test_each_instance_matching_key_finds_its_instances_and_nothing_else(indexed, client, key, match, other, count):
    client.force_login(indexed.alice)
    match = match() if callable(match) else match
    found = client.get(f"{ROOT}/instances", {key: match})
    assert found.status_code == 200 and "Warning" not in found
    assert len(found.json()) == count
    assert client.get(f"{ROOT}/instances", {key: other}).json() == []


# -- PS3.4 C.2.2.2: wildcard, list and range matching ---------------------------------------------------------


def test_wildcards_match_any_run_or_any_one_character(indexed, client):
    client.force_login(indexed.alice)
    both = sorted(s.study_instance_uid for s in Study.objects.all())
    assert values(client.get(f"{ROOT}/studies", {"PatientName": "alpha-seo*"}), "0020000D") == [
        seoul().study_instance_uid
    ]  # person names match whatever the case
    assert values(client.get(f"{ROOT}/studies", {"PatientID": "ALPHA-???-001"}), "0020000D") == both
    assert values(client.get(f"{ROOT}/studies", {"AccessionNumber": "ACC-*"}), "0020000D") == both
    assert client.get(f"{ROOT}/studies", {"AccessionNumber": "acc-*"}).json() == []  # SH is case-sensitive
    assert values(client.get(f"{ROOT}/studies", {"AccessionNumber": "*"}), "0020000D") == both


def test_uid_lists_match_any_of_their_uids(indexed, client):
    client.force_login(indexed.alice)
    uids = sorted(s.study_instance_uid for s in Study.objects.all())
    for joined in (",".join(uids), "\\".join(uids)):
        assert values(client.get(f"{ROOT}/studies", {"StudyInstanceUID": joined}), "0020000D") == uids
    assert client.get(f"{ROOT}/studies", {"StudyInstanceUID": "1.2.*"}).status_code == 400


def test_dates_and_times_match_ranges_open_at_either_end(indexed, client):
    client.force_login(indexed.alice)
    # Stored dates are shifted by a per-subject offset drawn from the trial's key: place Busan's before Seoul's.
    seoul_day = seoul().study_date
    Study.objects.filter(subject__code="ALPHA-BUS-001").update(study_date=seoul_day - timedelta(days=400))
    seoul_uid = [seoul().study_instance_uid]
    day, since = seoul_day.strftime("%Y%m%d"), (seoul_day - timedelta(days=10)).strftime("%Y%m%d")
    assert values(client.get(f"{ROOT}/studies", {"StudyDate": f"{day}-"}), "0020000D") == seoul_uid
    assert values(client.get(f"{ROOT}/studies", {"StudyDate": f"{since}-{day}"}), "0020000D") == seoul_uid
    assert len(client.get(f"{ROOT}/studies", {"StudyDate": f"-{day}"}).json()) == 2
    assert values(client.get(f"{ROOT}/studies", {"StudyTime": "100000-110000"}), "0020000D") == seoul_uid
    assert values(client.get(f"{ROOT}/studies", {"StudyTime": "1030"}), "0020000D") == seoul_uid  # 10:30 to 10:30:59
    assert values(client.get(f"{ROOT}/studies", {"StudyTime": "15-"}), "0020000D") == [
        Study.objects.get(subject__code="ALPHA-BUS-001").study_instance_uid
    ]
    for bad in ({"StudyDate": "2026"}, {"StudyTime": "25"}, {"StudyTime": "ab"}, {"PatientBirthDate": "1960-01"}):
        answer = client.get(f"{ROOT}/studies", bad)
        assert answer.status_code == 400 and answer.json()["error"], bad


def test_times_match_on_their_value_whatever_the_precision_either_side_gives(indexed, client):
    """PS3.4 C.2.2.2.5: 103000.0 is 10:30:00, as 103000 is; a stored 1030 is 10:30:00 and 103000.25 lies within
    10:30:00.2 (to a tenth of a second) and within 10:30."""
    client.force_login(indexed.alice)
    seoul_uid = [seoul().study_instance_uid]
    matching = lambda time: values(client.get(f"{ROOT}/studies", {"StudyTime": time}), "0020000D")  # noqa: E731
    for time in ("103000.0", "103000.000000", "103000-103000.0", "1030-103000.0"):
        assert matching(time) == seoul_uid, time
    assert matching("103000.5") == []
    for stored, found, not_found in [
        ("1030", ("103000", "103000.0", "1030", "102959.5-103000"), ("103001", "1031")),
        ("103000.25", ("103000.25", "103000.2", "103000", "1030", "103000.250-103000.3"), ("103000.3", "103000.0")),
        ("10:30:00", ("103000.0", "10"), ("103001",)),
    ]:
        Study.objects.filter(pk=seoul().pk).update(study_time=stored)
        for time in found:
            assert matching(time) == seoul_uid, (stored, time)
        for time in not_found:
            assert matching(time) == [], (stored, time)
    series = values(client.get(f"{ROOT}/series", {"PerformedProcedureStepStartTime": "103500.0"}), "0020000E")
    assert series == [seoul_series().series_instance_uid]


def test_a_value_that_is_not_a_dicom_date_or_time_is_refused_whole(indexed, client):
    client.force_login(indexed.alice)
    for key, bad in [("StudyDate", "2016-03-15"), ("StudyDate", "20160315-2016"), ("StudyTime", "10-30-00")]:
        answer = client.get(f"{ROOT}/studies", {key: bad})
        assert answer.status_code == 400
        message = answer.json()["error"]["message"]
        assert repr(bad) in message and key in message, message


# -- PS3.18 8.3.4 / 10.6.1: unsupported keys are never silently ignored -------------------------------------


def test_a_key_the_server_does_not_match_on_is_named_in_a_warning(indexed, client):
    client.force_login(indexed.alice)
    answer = client.get(f"{ROOT}/studies", {"PatientWeight": "70"})
    assert answer.status_code == 200
    assert answer["Warning"].startswith("299 testserver: ") and "PatientWeight" in answer["Warning"]
    series_key = client.get(f"{ROOT}/studies", {"Modality": "MR"})
    assert "Modality" in series_key["Warning"]  # a series key at the study level


def test_a_parameter_that_names_no_attribute_is_refused(indexed, client):
    client.force_login(indexed.alice)
    answer = client.get(f"{ROOT}/studies", {"PatientNmae": "X"})
    assert answer.status_code == 400 and "PatientNmae" in answer.json()["error"]["message"]


def test_fuzzy_matching_is_declined_with_a_warning(indexed, client):
    client.force_login(indexed.alice)
    assert "fuzzymatching" in client.get(f"{ROOT}/studies", {"fuzzymatching": "true"})["Warning"]
    assert "Warning" not in client.get(f"{ROOT}/studies", {"fuzzymatching": "false"})


# -- PS3.18 8.3.4.4: limit and offset, and the Warning past the server's maximum -----------------------------


def test_a_search_past_the_maximum_pages_and_says_so(images, client, settings):
    settings.DICOMWEB_MAX_RESULTS = 3
    client.force_login(images.alice)
    url = f"{ROOT}/studies/{seoul().study_instance_uid}/instances"
    asked_more = client.get(url, {"limit": "5000"})
    assert [i["00200013"]["Value"][0] for i in asked_more.json()] == [1, 2, 3]
    assert asked_more["Warning"] == CAPPED
    assert client.get(url)["Warning"] == CAPPED
    rest = client.get(url, {"offset": "3", "limit": "5000"})
    assert [i["00200013"]["Value"][0] for i in rest.json()] == [4, 5] and "Warning" not in rest
    own_limit = client.get(url, {"limit": "2"})
    assert len(own_limit.json()) == 2 and "Warning" not in own_limit  # the client's own limit is no cap


def test_everything_is_answered_up_to_the_maximum(images, client, settings):
    settings.DICOMWEB_MAX_RESULTS = 5
    client.force_login(images.alice)
    answer = client.get(f"{ROOT}/studies/{seoul().study_instance_uid}/instances", {"limit": "5000"})
    assert len(answer.json()) == 5 and "Warning" not in answer


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "abc"},
        {"limit": "99999999999999999999999"},
        {"limit": "0"},
        {"offset": "-1"},
        {"offset": "99999999999999999999999"},
        {"SeriesNumber": "99999999999999999999999"},
        {"InstanceNumber": "x"},
        {"InstanceNumber": "3000000000"},
        {"includefield": "NotAnAttribute"},
    ],
)
def test_bad_integers_and_names_answer_400_with_a_reason(images, client, params):
    client.force_login(images.alice)
    for level in ("studies", "series", "instances"):
        if level == "studies" and ("SeriesNumber" in params or "InstanceNumber" in params):
            continue
        answer = client.get(f"{ROOT}/{level}", params)
        assert answer.status_code == 400, (level, params)
        assert answer.json()["error"]


# -- PS3.18 10.6.3: the default attributes of each level, and includefield -----------------------------------

STUDY_ATTRIBUTES = {  # Table 10.6.3-3
    "00080020", "00080030", "00080050", "00080056", "00080061", "00080090", "00081190", "00100010", "00100020",
    "00100030", "00100040", "0020000D", "00200010", "00201206", "00201208",
}  # fmt: skip
SERIES_ATTRIBUTES = {  # Table 10.6.3-4
    "00080056", "00080060", "0008103E", "00081190", "0020000E", "00200011", "00201209", "00400244", "00400245",
    "00400275",
}  # fmt: skip
INSTANCE_ATTRIBUTES = {  # Table 10.6.3-5
    "00080016", "00080018", "00080056", "00081190", "00200013", "00280010", "00280011", "00280100", "00280008",
}  # fmt: skip
COUNTS = {"00080061", "00201206", "00201208"}


def test_each_level_answers_its_default_attributes_present_even_when_empty(images, client):
    client.force_login(images.alice)
    [study] = client.get(f"{ROOT}/studies", {"PatientID": "ALPHA-SEO-001"}).json()
    assert study.keys() >= STUDY_ATTRIBUTES
    assert study["00080050"] == {"vr": "SH"}  # emptied by de-identification, still there
    [series] = client.get(f"{ROOT}/series", {"PatientID": "ALPHA-SEO-001"}).json()
    assert series.keys() >= (STUDY_ATTRIBUTES - COUNTS) | SERIES_ATTRIBUTES
    instance = client.get(f"{ROOT}/instances", {"PatientID": "ALPHA-SEO-001"}).json()[0]
    assert (STUDY_ATTRIBUTES - COUNTS) | (SERIES_ATTRIBUTES - {"00081190"}) | INSTANCE_ATTRIBUTES <= instance.keys()
    assert instance["00280100"]["Value"] == [16]
    assert instance["00081190"]["Value"][0].endswith(instance["00080018"]["Value"][0])


def test_includefield_adds_an_attribute_by_tag_or_keyword_or_all_of_them(images, client):
    client.force_login(images.alice)
    url = f"{ROOT}/studies/{seoul().study_instance_uid}/instances"
    plain = client.get(url).json()[0]
    assert "00180050" not in plain
    assert client.get(url, {"includefield": "00180050"}).json()[0]["00180050"]["Value"] == [5.0]
    by_keyword = client.get(url, {"includefield": "SliceThickness,PixelSpacing"}).json()[0]
    assert by_keyword["00180050"]["Value"] == [5.0] and "00280030" in by_keyword
    everything = client.get(url, {"includefield": "all"}).json()[0]
    assert {"00180050", "00280030", "00200032"} <= everything.keys() and "7FE00010" not in everything
    [study] = client.get(f"{ROOT}/studies", {"PatientID": "ALPHA-SEO-001", "includefield": "PatientWeight"}).json()
    assert study["00101030"] == {"vr": "DS"}  # asked for, not kept at the study level: present, empty


def retrieve_urls(answer: list[dict]) -> list[str]:
    return [item["00081190"]["Value"][0] for item in answer]


def test_retrieve_urls_and_bulk_data_uris_are_absolute_uris_of_the_host_asked(images, client, settings):
    """PS3.5 6.2: a UR value is a URI of RFC 3986, which names its scheme (a path alone is a relative reference);
    dicomweb-client follows a BulkDataURI as given. The host is the request's, checked against ALLOWED_HOSTS,
    and the scheme the TLS proxy's where SECURE_PROXY_SSL_HEADER says so."""
    client.force_login(images.alice)
    base = f"http://testserver{ROOT}/studies/{seoul().study_instance_uid}"
    studies = client.get(f"{ROOT}/studies", {"PatientID": "ALPHA-SEO-001"}).json()
    series = client.get(f"{ROOT}/series", {"PatientID": "ALPHA-SEO-001"}).json()
    instances = client.get(f"{ROOT}/instances", {"PatientID": "ALPHA-SEO-001"}).json()
    assert retrieve_urls(studies) == [base]
    assert retrieve_urls(series) == [f"{base}/series/{seoul_series().series_instance_uid}"]
    assert all(url.startswith(f"{base}/series/") for url in retrieve_urls(instances))
    metadata = client.get(f"{base.removeprefix('http://testserver')}/metadata").json()
    assert all(m["7FE00010"]["BulkDataURI"].startswith(f"{base}/series/") for m in metadata)

    settings.ALLOWED_HOSTS = ["ctims.example.org"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxied = {"HTTP_HOST": "ctims.example.org", "HTTP_X_FORWARDED_PROTO": "https", "secure": True}
    answer = client.get(f"{ROOT}/studies", {"PatientID": "ALPHA-SEO-001"}, **proxied).json()
    assert retrieve_urls(answer) == [base.replace("http://testserver", "https://ctims.example.org")]
    metadata = client.get(f"{base.removeprefix('http://testserver')}/metadata", **proxied).json()
    assert metadata[0]["7FE00010"]["BulkDataURI"].startswith("https://ctims.example.org/dicomweb/")
    # A Host the installation does not serve is refused, never written into an answer.
    refused = client.get(f"{ROOT}/studies", HTTP_HOST="attacker.example")
    assert refused.status_code == 400 and b"attacker.example/dicomweb" not in refused.content


def test_metadata_attributes_are_in_tag_order_the_first_time_too(images, client):
    """PS3.18 F.2.2: attribute objects ordered by their tag. Metadata made from the stored file (the first
    request for an instance) added the Available Transfer Syntax UID last; only a copy read back from the
    database (jsonb orders keys) was in order, and the first answer was kept for an hour."""
    client.force_login(images.alice)
    Instance.objects.update(metadata=None)
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    for answer in (client.get(f"{instance_url(instance)}/metadata"), client.get(f"{instance_url(instance)}/metadata")):
        [metadata] = answer.json()
        assert list(metadata) == sorted(metadata)


XML_PARTS = 'multipart/related; type="application/dicom+xml"'


def test_metadata_and_searches_answer_the_native_dicom_model_when_asked_and_406_for_neither(images, client):
    """PS3.18 10.4.4 and 10.6.3 require multipart/related; type="application/dicom+xml" beside the JSON
    default: each part one data set in PS3.19's Native DICOM Model. A media type that is neither was answered
    with JSON it did not ask for; it is a 406."""
    from xml.etree import ElementTree

    client.force_login(images.alice)
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    url = f"{instance_url(instance)}/metadata"
    [as_json] = client.get(url).json()
    answer = client.get(url, HTTP_ACCEPT=XML_PARTS)
    assert answer.status_code == 200 and answer["Content-Type"].startswith(XML_PARTS)
    [(headers, document)] = parts(answer)
    assert headers["Content-Type"] == "application/dicom+xml"
    model = ElementTree.fromstring(document)
    ns = {"": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}  # PS3.19 A.1.6's default namespace
    assert model.tag == "{http://dicom.nema.org/PS3.19/models/NativeDICOM}NativeDicomModel"
    by_tag = {a.get("tag"): a for a in model.findall("DicomAttribute", ns)}
    assert list(by_tag) == list(as_json)
    assert by_tag["00100020"].get("keyword") == "PatientID"
    assert by_tag["00100020"].find("Value", ns).text == "ALPHA-SEO-001"
    assert by_tag["00100010"].find("PersonName/Alphabetic/FamilyName", ns).text == "ALPHA-SEO-001"
    assert by_tag["7FE00010"].find("BulkData", ns).get("uri") == as_json["7FE00010"]["BulkDataURI"]
    method = by_tag["00120064"].find("Item/DicomAttribute[@tag='00080100']/Value", ns).text
    assert method == as_json["00120064"]["Value"][0]["00080100"]["Value"][0]
    assert by_tag["00180050"].find("Value", ns).text == "5.0"

    answer = client.get(f"{ROOT}/studies", {"PatientID": "ALPHA-SEO-001"}, HTTP_ACCEPT=XML_PARTS)
    [(_, document)] = parts(answer)
    [study] = client.get(f"{ROOT}/studies", {"PatientID": "ALPHA-SEO-001"}).json()
    retrieve = ElementTree.fromstring(document).find("DicomAttribute[@tag='00081190']/Value", ns).text
    assert retrieve == study["00081190"]["Value"][0]

    for accept in ("application/dicom+xml", "text/html", 'multipart/related; type="application/dicom"'):
        assert client.get(url, HTTP_ACCEPT=accept).status_code == 406, accept
        assert client.get(f"{ROOT}/studies", HTTP_ACCEPT=accept).status_code == 406, accept
    for accept in ("text/html,application/xml;q=0.9,*/*;q=0.8", "application/json", "application/dicom+json"):
        assert client.get(url, HTTP_ACCEPT=accept)["Content-Type"] == "application/dicom+json", accept


# -- PS3.18 8.7.3: transfer syntax negotiation -----------------------------------------------------------------


def with_encodings(world) -> dict[str, Instance]:
    """The same MR image stored Implicit VR LE, Big Endian (retired) and JPEG-LS, as separate instances."""
    files = {}
    study_uid = generate_uid()
    for name in ("MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        buffer = io.BytesIO()
        ds.save_as(buffer)
        files[name] = buffer.getvalue()
    upload(world, "ALPHA-SEO-002", list(files.values()), world.cora)
    stored = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-002")
    return {i.transfer_syntax_uid: i for i in stored}


@pytest.fixture
def encodings(images):
    return with_encodings(images)


def instance_url(instance: Instance) -> str:
    series = instance.series
    return (
        f"{ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )


ORIGINAL = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
MR_PATIENT = (lambda ds: (ds.PatientName, ds.PatientID))(pydicom.dcmread(get_testdata_file("MR_small.dcm")))


def test_the_default_is_explicit_vr_little_endian_whatever_was_stored(images, encodings, client):
    client.force_login(images.quinn)
    assert set(encodings) == {"1.2.840.10008.1.2", "1.2.840.10008.1.2.2", JPEG_LS}
    for instance in encodings.values():
        [(headers, body)] = parts(client.get(instance_url(instance), HTTP_ACCEPT=DICOM))
        assert headers["Content-Type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
        ds = pydicom.dcmread(io.BytesIO(body))
        assert ds.file_meta.TransferSyntaxUID == EXPLICIT and not ds.original_encoding[0]
        assert np.array_equal(ds.pixel_array, ORIGINAL), instance.transfer_syntax_uid


def test_explicit_vr_little_endian_asked_of_a_jpeg_ls_instance_is_decoded(images, encodings, client):
    client.force_login(images.quinn)
    answer = client.get(instance_url(encodings[JPEG_LS]), HTTP_ACCEPT=f"{DICOM}; transfer-syntax={EXPLICIT}")
    [(headers, body)] = parts(answer)
    assert EXPLICIT in headers["Content-Type"]
    assert np.array_equal(pydicom.dcmread(io.BytesIO(body)).pixel_array, ORIGINAL)


@pytest.mark.parametrize("asked", ["*", JPEG_LS])
def test_any_or_the_stored_syntax_passes_compressed_data_through(images, encodings, client, asked):
    client.force_login(images.quinn)
    instance = encodings[JPEG_LS]
    [(headers, body)] = parts(client.get(instance_url(instance), HTTP_ACCEPT=f"{DICOM}; transfer-syntax={asked}"))
    assert JPEG_LS in headers["Content-Type"]
    assert body == storages["images"].open(instance.storage_key).read()


def test_406_only_for_a_syntax_the_server_cannot_make(images, encodings, client):
    client.force_login(images.quinn)
    url = instance_url(encodings["1.2.840.10008.1.2"])
    refused = client.get(url, HTTP_ACCEPT=f"{DICOM}; transfer-syntax=1.2.840.10008.1.2.4.50")
    assert refused.status_code == 406 and refused.json()["error"]
    second_choice = client.get(
        url, HTTP_ACCEPT=f"{DICOM}; transfer-syntax=1.2.840.10008.1.2.4.50, {DICOM}; transfer-syntax={EXPLICIT}; q=0.5"
    )
    assert second_choice.status_code == 200 and EXPLICIT in parts(second_choice)[0][0]["Content-Type"]


def test_a_media_range_matches_the_media_types_it_covers_at_every_resource(images, client):
    """RFC 9110 12.5.1: application/* covers application/dicom and application/octet-stream, multipart/* covers
    multipart/related, wherever those are what the resource answers."""
    client.force_login(images.alice)
    series = seoul_series()
    instance = series.instances.order_by("instance_number").first()
    stored = storages["images"].open(instance.storage_key).read()
    single = client.get(instance_url(instance), HTTP_ACCEPT="application/*")
    assert single.status_code == 200 and single["Content-Type"].startswith("application/dicom;")
    assert body(single) == stored
    [(headers, _)] = parts(client.get(instance_url(instance), HTTP_ACCEPT="multipart/*"))
    assert headers["Content-Type"].startswith("application/dicom;")
    series_url = f"{ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
    assert len(parts(client.get(series_url, HTTP_ACCEPT="multipart/*"))) == series.instances.count()
    assert client.get(series_url, HTTP_ACCEPT="application/*").status_code == 406  # one body, many instances
    [(headers, frame)] = parts(client.get(f"{instance_url(instance)}/frames/1", HTTP_ACCEPT="multipart/*"))
    assert headers["Content-Type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
    # application/* covers no multipart type: one frame comes as the single part it does cover (PS3.18 10.4.4).
    one = client.get(f"{instance_url(instance)}/frames/1", HTTP_ACCEPT="application/*")
    assert one["Content-Type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}" and one.content == frame
    [(headers, _)] = parts(client.get(bulk_url(instance), HTTP_ACCEPT="multipart/*"))
    assert headers["Content-Type"].startswith("application/octet-stream;")
    rendered = parts(client.get(f"{series_url}/rendered", HTTP_ACCEPT="multipart/*"))
    assert {headers["Content-Type"] for headers, _ in rendered} == {"image/png"}


# -- PS3.18 10.4.1.1.5: bulk data as the Accept header asks ---------------------------------------------------


def bulk_url(instance: Instance) -> str:
    return f"{instance_url(instance)}/bulkdata/7FE00010"


def test_bulk_data_comes_as_multipart_or_single_part_as_asked(images, client):
    client.force_login(images.alice)
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    pixels = pydicom.dcmread(storages["images"].open(instance.storage_key)).PixelData
    [(headers, body)] = parts(client.get(bulk_url(instance), HTTP_ACCEPT=OCTETS))
    assert headers["Content-Type"].startswith("application/octet-stream") and body == pixels
    single = client.get(bulk_url(instance), HTTP_ACCEPT="application/octet-stream")
    assert single["Content-Type"] == "application/octet-stream" and single.content == pixels


def test_each_bulk_data_part_names_the_uri_the_metadata_gave_it(images, encodings, client):
    """PS3.18 10.4.3.3.5: bulk data in a multipart answer has a Content-Location header with the URI of its
    element in the metadata; a compressed frame sent as a part of its own names its frame resource."""
    client.force_login(images.quinn)
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    [metadata] = client.get(f"{instance_url(instance)}/metadata").json()
    uri = metadata["7FE00010"]["BulkDataURI"]
    [(headers, _)] = parts(client.get(bulk_url(instance), HTTP_ACCEPT=OCTETS))
    assert headers["Content-Location"] == uri
    compressed = encodings[JPEG_LS]
    [(headers, _)] = parts(client.get(bulk_url(compressed), HTTP_ACCEPT=f"{OCTETS}; transfer-syntax=*"))
    assert headers["Content-Location"] == f"http://testserver{instance_url(compressed)}/frames/1"


def test_compressed_bulk_data_comes_as_frames_or_decoded(images, encodings, client):
    client.force_login(images.quinn)
    instance = encodings[JPEG_LS]
    [(headers, frame)] = parts(client.get(bulk_url(instance), HTTP_ACCEPT=f"{OCTETS}; transfer-syntax=*"))
    assert JPEG_LS in headers["Content-Type"]
    assert frame[:2] == b"\xff\xd8" and not frame.startswith(b"\xfe\xff\x00\xe0")  # a JPEG-LS stream, no item
    [(headers, native)] = parts(client.get(bulk_url(instance), HTTP_ACCEPT=OCTETS))
    assert EXPLICIT in headers["Content-Type"]
    assert np.array_equal(np.frombuffer(native, dtype=ORIGINAL.dtype.newbyteorder("<")).reshape(64, 64), ORIGINAL)
    big_endian = encodings["1.2.840.10008.1.2.2"]
    [(_, swapped)] = parts(client.get(bulk_url(big_endian), HTTP_ACCEPT=OCTETS))
    assert np.array_equal(np.frombuffer(swapped, dtype=ORIGINAL.dtype.newbyteorder("<")).reshape(64, 64), ORIGINAL)


def test_compressed_frames_are_byte_ranges_of_the_stored_file(images, encodings, client):
    client.force_login(images.quinn)
    instance = encodings[JPEG_LS]
    Instance.objects.filter(pk=instance.pk).update(pixel_layout=None)
    answer = client.get(f"{instance_url(instance)}/frames/1", HTTP_ACCEPT=f"{OCTETS}; transfer-syntax=*")
    [(_, frame)] = parts(answer)
    instance.refresh_from_db()
    [[(offset, length)]] = instance.pixel_layout["fragments"]
    assert storages["images"].open(instance.storage_key).read()[offset : offset + length] == frame


@pytest.mark.parametrize(
    ("syntax", "media_type"),
    [(RLE, "image/x-dicom-rle"), (RLE, "image/dicom-rle"), (JPEG_LS, "image/jls"), (JPEG_LS, "image/x-jls")],
)
def test_frames_asked_for_in_their_stored_media_type_come_as_stored_and_one_not_made_here_is_406(
    images, encodings, client, syntax, media_type
):
    """PS3.18 8.7.3: a frame is answered in a media type the client accepts, or 406; never in another."""
    series = encodings[JPEG_LS].series
    upload(images, "ALPHA-SEO-002", [damaged_frames("MR_small_RLE.dcm", series, lambda frames: None)], images.cora)
    stored = {i.transfer_syntax_uid: i for i in Instance.objects.filter(series__study__subject__code="ALPHA-SEO-002")}
    client.force_login(images.quinn)
    instance = stored[syntax]
    fragments = pydicom.dcmread(storages["images"].open(instance.storage_key)).PixelData
    url = f"{instance_url(instance)}/frames/1"
    answer = client.get(url, HTTP_ACCEPT=f'multipart/related; type="{media_type}"')
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith(f'multipart/related; type="{media_type}";')
    [(headers, frame)] = parts(answer)
    assert headers["Content-Type"] == f"{media_type}; transfer-syntax={syntax}"
    assert frame == next(generate_frames(fragments, number_of_frames=1))
    # Any other compressed media type would have to be made here: 406, or the client's next choice.
    other = "image/jls" if syntax == RLE else "image/x-dicom-rle"
    for refused in (other, "image/jp2", "image/jpeg", f"{media_type}; transfer-syntax={EXPLICIT}"):
        answer = client.get(url, HTTP_ACCEPT=f'multipart/related; type="{refused}"')
        assert answer.status_code == 406 and answer.json()["error"], refused
    answer = client.get(url, HTTP_ACCEPT=f'multipart/related; type="{other}", {OCTETS}; q=0.5')
    [(headers, native)] = parts(answer)
    assert headers["Content-Type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
    assert np.array_equal(np.frombuffer(native, dtype=ORIGINAL.dtype.newbyteorder("<")).reshape(64, 64), ORIGINAL)
    uncompressed = f"{instance_url(stored['1.2.840.10008.1.2'])}/frames/1"
    assert client.get(uncompressed, HTTP_ACCEPT=f'multipart/related; type="{media_type}"').status_code == 406


def test_one_frame_comes_as_a_single_part_when_asked_several_only_as_multipart(images, encodings, client):
    """PS3.18 10.4.4: a single part media type is permitted for a resource that is one item (one frame) and
    ignored for the others, 406 if nothing remains; RFC 9110 12.4.2: q=0 means not acceptable. An answer in a
    media type the Accept header did not name (multipart to application/octet-stream) handed the client the
    boundary and part headers as pixels."""
    ds = pydicom.dcmread(get_testdata_file("emri_small.dcm"))  # 10 frames, stored as they are
    ds.PatientName, ds.PatientID = MR_PATIENT
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    upload(images, "ALPHA-SEO-002", [buffer.getvalue()], images.cora)
    multi = Instance.objects.get(number_of_frames=10)
    client.force_login(images.alice)
    url = f"{instance_url(multi)}/frames"
    [(_, frame)] = parts(client.get(f"{url}/2", HTTP_ACCEPT=OCTETS))
    single = client.get(f"{url}/2", HTTP_ACCEPT="application/octet-stream")
    assert single.status_code == 200, single.content
    assert single["Content-Type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
    assert single.content == frame and len(frame) == 64 * 64 * 2
    assert client.get(f"{url}/1,2", HTTP_ACCEPT="application/octet-stream").status_code == 406
    both = client.get(f"{url}/1,2", HTTP_ACCEPT=f"application/octet-stream, {OCTETS}; q=0.5")
    assert [body for _, body in parts(both)][1] == frame
    assert client.get(f"{url}/2", HTTP_ACCEPT=f"{OCTETS}; q=0").status_code == 406
    assert client.get(f"{url}/2", HTTP_ACCEPT=f"{OCTETS}; q=0, {DICOM}").status_code == 406


# -- PS3.18 10.4.1.1.3 / 8.3.5: rendered resources at every level, with the window function ----------------------


def picture(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_rendered_instance_and_frame_apply_the_window_and_its_function(images, client):
    client.force_login(images.alice)
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    rendered = {}
    for function in ("linear", "linear-exact", "sigmoid"):
        answer = client.get(f"{instance_url(instance)}/rendered", {"window": f"40,400,{function}"})
        assert answer.status_code == 200 and answer["Content-Type"] == "image/png", function
        rendered[function] = picture(answer.content)
    assert not np.array_equal(rendered["linear"], rendered["sigmoid"])
    black = picture(client.get(f"{instance_url(instance)}/rendered", {"window": "100000,10,linear"}).content)
    white = picture(client.get(f"{instance_url(instance)}/frames/1/rendered", {"window": "-100000,10"}).content)
    assert black.max() == 0 and white.min() == 255


def test_rendered_study_and_series_answer_every_image(images, client):
    client.force_login(images.alice)
    series = seoul_series()
    for url in (
        f"{ROOT}/studies/{seoul().study_instance_uid}/rendered",
        f"{ROOT}/studies/{seoul().study_instance_uid}/series/{series.series_instance_uid}/rendered",
    ):
        answer = client.get(url, {"window": "40,400,linear", "viewport": "64,64"})
        assert answer.status_code == 200
        images_ = parts(answer)
        assert len(images_) == 5 and all(h["Content-Type"] == "image/png" for h, _ in images_)
        assert picture(images_[0][1]).shape == (64, 64)
    jpeg = client.get(
        f"{ROOT}/studies/{seoul().study_instance_uid}/rendered", HTTP_ACCEPT='multipart/related; type="image/jpeg"'
    )
    assert all(h["Content-Type"] == "image/jpeg" for h, _ in parts(jpeg))


def test_thumbnails_at_every_level_are_a_representative_image(images, client):
    """PS3.18 10.4.1.1.4 (resources of the thumbnail transaction): study, series, instance and frame."""
    client.force_login(images.alice)
    series = seoul_series()
    middle = list(Instance.objects.filter(series=series).order_by("instance_number", "pk"))[2]
    study = f"{ROOT}/studies/{series.study.study_instance_uid}"
    pictures = set()
    for url in (
        f"{study}/thumbnail",
        f"{study}/series/{series.series_instance_uid}/thumbnail",
        f"{instance_url(middle)}/thumbnail",
        f"{instance_url(middle)}/frames/1/thumbnail",
    ):
        answer = client.get(url, HTTP_ACCEPT="image/png")
        assert answer.status_code == 200 and answer["Content-Type"] == "image/png", url
        assert max(picture(answer.content).shape[:2]) <= 128, url
        pictures.add(answer.content)
    assert len(pictures) == 1  # the study's one series, and its middle image
    assert client.get(f"{instance_url(middle)}/frames/2/thumbnail").status_code == 404  # one frame


def test_a_path_no_dicomweb_resource_has_is_a_404_in_the_error_shape(images, client):
    client.force_login(images.alice)
    series = seoul_series()
    for url in (
        f"{ROOT}/studies/{series.study.study_instance_uid}/nonsense",
        f"{ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}/frames/1",
        "/api/no-such-resource/",
    ):
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert answer.json() == {"error": {"code": "not_found", "message": "No such resource."}}, url
    assert client.get("/trials/no-such-page/here/").headers["Content-Type"].startswith("text/html")


def test_an_instance_accepted_before_nul_was_refused_is_still_checked_and_served(images, client, monkeypatch):
    """An earlier release took a text value with a NUL inside: PostgreSQL cannot keep such an instance's DICOM
    JSON, so it is made again at each read instead of failing its visit's QC checks and its metadata requests."""
    monkeypatch.setattr("trials.ingest.services.check_receivable", lambda data: None)  # as that release did
    ds = pydicom.dcmread(io.BytesIO(synthesize_ct_series(real_ct_template(large=False), slices=1, seed="nul")[0]))
    ds.ScanOptions = "HELICAL\x00MODE"  # a value no column of the index holds: only the DICOM JSON
    buffer = io.BytesIO()
    ds.save_as(buffer)
    timepoint = upload(images, "ALPHA-SEO-002", [buffer.getvalue()], images.cora)  # finishing runs QC's checks
    timepoint.refresh_from_db()
    assert timepoint.state == "uploaded"
    instance = Instance.objects.get(series__study__timepoint=timepoint)
    assert instance.metadata is None  # not kept: made again when asked for
    client.force_login(images.alice)
    answer = client.get(f"{instance_url(instance)}/metadata")
    assert answer.status_code == 200
    assert answer.json()[0]["00180022"]["Value"] == ["HELICAL\x00MODE"]
    series = instance.series
    answer = client.get(
        f"{ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}/metadata"
    )
    assert answer.status_code == 200 and len(answer.json()) == 1


def damaged_frames(name: str, series: Series, damage) -> bytes:
    """A pydicom test file filed into `series` as a primary image, its compressed frames damaged by `damage`."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.PatientName, ds.PatientID = MR_PATIENT  # the patient of `encodings`
    ds.StudyInstanceUID = series.study.study_instance_uid
    ds.SeriesInstanceUID = series.series_instance_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]  # a primary slice: never read by OCR
    frames = [bytearray(f) for f in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1)))]
    damage(frames)
    ds.PixelData = encapsulate([bytes(frame) for frame in frames])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore:The decoded RLE segment:UserWarning")  # pydicom's, about the damage
@pytest.mark.parametrize(
    ("name", "damage", "last_as_stored"),
    [
        ("MR_small_RLE.dcm", rle_segment_misplaced, 200),
        ("emri_small_jpeg_2k_lossless.dcm", frame_missing, 404),
    ],
    ids=["RLE segment misplaced", "multi-frame JPEG 2000, a frame missing"],
)
def test_an_image_stored_before_ingest_decoded_compressed_pixels_answers_why_and_its_series_renders_the_rest(
    images, encodings, client, monkeypatch, name, damage, last_as_stored
):
    """Ingest now decodes compressed pixels and rejects damaged ones (test_decodable.py); an instance stored
    before it did is found when a rendered image or decoded frames are asked for: a 406 with the reason."""
    monkeypatch.setattr(ingest_services, "check_decodable", lambda data, syntax: None)  # as ingest was
    series = encodings[JPEG_LS].series
    upload(images, "ALPHA-SEO-002", [damaged_frames(name, series, damage)], images.cora)
    stored = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-002")
    damaged = stored.exclude(pk__in=[i.pk for i in encodings.values()]).get()
    client.force_login(images.alice)
    for suffix, accept in [
        ("rendered", "image/jpeg"),
        ("frames/1/rendered", "image/jpeg"),
        ("thumbnail", "image/jpeg"),
        ("frames/1", 'multipart/related; type="application/octet-stream"'),
        ("", f"{DICOM}; transfer-syntax={EXPLICIT}"),
    ]:
        answer = client.get(f"{instance_url(damaged)}/{suffix}".rstrip("/"), HTTP_ACCEPT=accept)
        assert answer.status_code == 406, suffix
        assert answer.json()["error"]["message"].startswith("this instance cannot be decoded here: "), suffix
    # As stored, its fragments are served as they are; a frame without one is not found.
    last = f"{instance_url(damaged)}/frames/{damaged.number_of_frames}"
    as_stored = client.get(last, HTTP_ACCEPT='multipart/related; type="application/octet-stream"; transfer-syntax=*')
    assert as_stored.status_code == last_as_stored
    answer = client.get(
        f"{ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}/rendered"
    )
    assert answer.status_code == 200 and len(parts(answer)) == 1  # the JPEG-LS image; the damaged one left out


@pytest.mark.parametrize(
    ("suffix", "params"),
    [
        ("rendered", {"window": "40"}),
        ("rendered", {"window": "40,400,cubic"}),
        ("rendered", {"window": "40,0,linear"}),
        ("rendered", {"window": "a,b"}),
        ("rendered", {"viewport": "0,10"}),
        ("rendered", {"viewport": "abc"}),
        ("rendered", {"viewport": "99999999999999999999999,10"}),
        ("rendered", {"quality": "101"}),
        ("frames/abc", {}),
        ("frames/0", {}),
        ("frames/99999999999999999999999", {}),
        ("frames/1,x/rendered", {}),
        # PS3.18 asks for a list of non-duplicate frame numbers: frames/1,1,1,... streamed one frame 10,000 times.
        ("frames/1,1", {}),
    ],
)
def test_bad_values_answer_400(images, client, suffix, params):
    client.force_login(images.alice)
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    answer = client.get(f"{instance_url(instance)}/{suffix}", params, HTTP_ACCEPT=f"{OCTETS}, image/png")
    assert answer.status_code == 400 and answer.json()["error"]


# -- RFC 9110 13.1.2: If-None-Match ------------------------------------------------------------------------------


def test_if_none_match_compares_weakly_matches_any_with_a_star_and_answers_a_bare_304(images, client):
    client.force_login(images.alice)
    series = seoul_series()
    instance = series.instances.first()
    series_url = f"{ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
    for url, accept in [
        (f"{series_url}/metadata", "application/dicom+json"),
        (instance_url(instance), "application/dicom"),
        (f"{instance_url(instance)}/frames/1", OCTETS),
        (f"{instance_url(instance)}/rendered", "image/png"),
        (bulk_url(instance), "application/octet-stream"),
    ]:
        first = client.get(url, HTTP_ACCEPT=accept)
        assert first.status_code == 200 and first["ETag"], url
        for header in (f"W/{first['ETag']}", f'"other", {first["ETag"]}', "*"):
            again = client.get(url, HTTP_ACCEPT=accept, HTTP_IF_NONE_MATCH=header)
            assert again.status_code == 304, (url, header)
            assert body(again) == b"" and "Content-Type" not in again, url
            for name in ("ETag", "Cache-Control", "Vary"):
                assert again[name] == first[name], (url, name)
        assert client.get(url, HTTP_ACCEPT=accept, HTTP_IF_NONE_MATCH='W/"other"').status_code == 200, url


# -- PS3.18 8.6 / RFC 9110: methods ----------------------------------------------------------------------------


def test_a_method_not_allowed_says_which_are(images, client):
    client.force_login(images.alice)
    instance = Instance.objects.first()
    for response in (client.post(f"{ROOT}/studies"), client.delete(instance_url(instance))):
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD, OPTIONS"


# -- an unreadable stored file is its instance's error, not its series' ---------------------------------------


def test_series_metadata_with_one_unreadable_file_answers_for_the_rest(images, client):
    client.force_login(images.alice)
    series = seoul_series()
    broken = series.instances.get(instance_number=2)
    Instance.objects.filter(series=series).update(metadata=None)
    Path(storages["images"].path(broken.storage_key)).unlink()
    url = f"{ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
    metadata = client.get(f"{url}/metadata")
    assert metadata.status_code == 200
    assert len(metadata.json()) == 4 and broken.sop_instance_uid in metadata["Warning"]
    alone = client.get(f"{instance_url(broken)}/metadata")
    assert alone.status_code == 500 and broken.sop_instance_uid in alone.json()["error"]["message"]
    retrieved = client.get(url, HTTP_ACCEPT=DICOM)
    assert retrieved.status_code == 200 and len(parts(retrieved)) == 4


# -- PS3.18 10.4.1.1.1: one instance as application/dicom, handed to sendfile or the reverse proxy ---------------


def test_one_instance_as_application_dicom_is_the_stored_file(encodings, images, client, settings):
    client.force_login(images.quinn)
    instance = encodings[JPEG_LS]
    stored = storages["images"].open(instance.storage_key).read()
    answer = client.get(instance_url(instance), HTTP_ACCEPT="application/dicom; transfer-syntax=*")
    assert answer["Content-Type"] == f"application/dicom; transfer-syntax={JPEG_LS}"
    assert b"".join(answer.streaming_content) == stored
    settings.DICOMWEB_ACCEL_REDIRECT = "/_images/"
    proxied = client.get(instance_url(instance), HTTP_ACCEPT="application/dicom; transfer-syntax=*")
    assert proxied["X-Accel-Redirect"] == f"/_images/{instance.storage_key}" and proxied.content == b""
    decoded = client.get(instance_url(instance), HTTP_ACCEPT="application/dicom")
    assert np.array_equal(pydicom.dcmread(io.BytesIO(decoded.content)).pixel_array, ORIGINAL)


def test_several_instances_need_multipart(images, client):
    client.force_login(images.alice)
    series = seoul_series()
    url = f"{ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
    assert client.get(url, HTTP_ACCEPT="application/dicom").status_code == 406
