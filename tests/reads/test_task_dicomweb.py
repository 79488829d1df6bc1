"""A reader's task root after the conformance work: every new attribute and search key stays blind.

No Patient's Birth Date, Sex, Referring Physician, Study ID, Accession Number or date reaches a reader, whatever
the request asks for (`includefield`, `all`), and matching on them is left out with a Warning so that the number
of answers never tells a guessed value from a wrong one.
"""

from __future__ import annotations

import io
import json
from datetime import date

import pydicom
import pytest
from pydicom.dataset import Dataset

from reads.dicomweb import PATIENT_TAGS, READER_TAGS, blind_metadata, reader_allowlist
from tests.conftest import upload_files
from tests.reads.flow import SUBJECT, ready, task_of
from tests.trials.deid.factories import KOREAN_NAME, canary_instance, part10, real_dicom_files
from trials import qc_services, services
from trials.dicomweb.allowlist import DATE_VRS
from trials.dicomweb.dicom_json import dataset_json
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Series, Study, Timepoint

from .test_blinding import assert_blinded, assert_no_date_elements

HIDDEN = {"00100030", "00100040", "00101010", "00080090", "00200010", "00080050", "00400275"}
BLINDED_KEYS = {
    "PatientBirthDate": "19600102",
    "PatientSex": "F",
    "ReferringPhysicianName": "WHO^DOCTOR",
    "StudyID": "S1",
    "AccessionNumber": "ACC-1",
    "StudyDate": "20260302",
    "StudyTime": "103000",
    "PerformedProcedureStepStartDate": "20260302",
    "PerformedProcedureStepStartTime": "103500",
    "PatientID": SUBJECT,
    "PatientName": SUBJECT,
    "00100040": "F",
}


@pytest.fixture
def reading(world):
    """A baseline ready for read, with patient characteristics kept in the files and index values on its study."""
    services.trial_update(actor=world.alice, trial=world.trial, deid_retain_patient_characteristics=True)
    ready(world, "BL")
    Study.objects.filter(subject__code=SUBJECT).update(
        accession_number="ACC-1",
        study_id="S1",
        referring_physician_name="WHO^DOCTOR",
        patient_birth_date=date(1960, 1, 2),
        patient_sex="F",
        study_time="103000",
    )
    Series.objects.filter(study__subject__code=SUBJECT).update(
        performed_procedure_step_start_date=date(2026, 3, 2),
        performed_procedure_step_start_time="103500",
        requested_procedure_id="RP1",
        scheduled_procedure_step_id="SPS1",
    )
    return world


def root_of(world) -> str:
    return f"/dicomweb/tasks/{task_of(world.rhea, 'BL').pk}"


def assert_hidden(answer) -> None:
    items = answer.json()
    assert items
    for item in items:
        assert not HIDDEN & item.keys(), HIDDEN & item.keys()
    assert_no_date_elements(items)
    assert_blinded(json.dumps(items))
    text = json.dumps(items)
    for value in ("ACC-1", "WHO^DOCTOR", "RP1", "SPS1", '"S1"'):
        assert value not in text


def test_the_patient_sex_kept_in_the_file_is_what_the_trial_root_shows(reading, client):
    client.force_login(reading.alice)
    instance = Instance.objects.filter(series__study__subject__code=SUBJECT).first()
    assert instance.metadata["00100040"]["Value"]  # the file does carry it: blinding has something to hide


@pytest.mark.parametrize(
    "path", ["studies", "series", "instances", "studies/{study}/series", "studies/{study}/instances"]
)
def test_no_blinded_attribute_reaches_a_reader_whatever_is_asked_for(reading, client, path):
    client.force_login(reading.rhea)
    study = Study.objects.get(subject__code=SUBJECT).study_instance_uid
    url = f"{root_of(reading)}/{path.format(study=study)}"
    assert_hidden(client.get(url))
    assert_hidden(client.get(url, {"includefield": "all"}))
    asked = "PatientBirthDate,PatientSex,PatientAge,ReferringPhysicianName,StudyID,AccessionNumber,StudyDate"
    assert_hidden(client.get(url, {"includefield": asked}))
    assert_hidden(client.get(url, {"00100040": "", "00100030": ""}))  # empty keys ask for the attributes too


def test_metadata_through_the_task_root_hides_them_too(reading, client):
    client.force_login(reading.rhea)
    study = Study.objects.get(subject__code=SUBJECT).study_instance_uid
    assert_hidden(client.get(f"{root_of(reading)}/studies/{study}/metadata"))


@pytest.mark.parametrize(("key", "true_value"), BLINDED_KEYS.items())
@pytest.mark.parametrize("level", ["studies", "series", "instances"])
def test_matching_on_a_blinded_key_is_no_oracle(reading, client, key, true_value, level):
    client.force_login(reading.rhea)
    url = f"{root_of(reading)}/{level}"
    everything = len(client.get(url).json())
    for value in (true_value, "NOMATCH", "19000101"):
        answer = client.get(url, {key: value})
        assert answer.status_code == 200
        assert len(answer.json()) == everything, (key, value)
        assert key in answer["Warning"]


@pytest.mark.parametrize(
    ("suffix", "params"),
    [
        ("studies", {"limit": "99999999999999999999999"}),
        ("studies", {"offset": "99999999999999999999999"}),
        ("series", {"SeriesNumber": "99999999999999999999999"}),
        ("instances", {"InstanceNumber": "99999999999999999999999"}),
        ("{instance}/frames/99999999999999999999999", {}),
        ("{instance}/rendered", {"viewport": "99999999999999999999999,1"}),
        ("{instance}/rendered", {"window": "40,400,cubic"}),
    ],
)
def test_bad_integers_on_a_task_root_answer_400(reading, client, suffix, params):
    client.force_login(reading.rhea)
    instance = Instance.objects.filter(series__study__subject__code=SUBJECT).select_related("series__study").first()
    instance_url = (
        f"studies/{instance.series.study.study_instance_uid}/series/{instance.series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )
    answer = client.get(f"{root_of(reading)}/{suffix.format(instance=instance_url)}", params)
    assert answer.status_code == 400 and answer.json()["error"]


@pytest.mark.parametrize("task_id", ["²", "1²", "9" * 30])
def test_a_task_number_that_is_no_number_of_ours_is_404(reading, client, task_id):
    """A superscript two passed str.isdigit() and broke int() (500); a number past any row's, the database."""
    client.force_login(reading.rhea)
    assert client.get(f"/dicomweb/tasks/{task_id}/studies").status_code == 404


# Where the scan was made, as the Retain Device Identity Option of PS3.15 Annex E keeps it: station names,
# locations and AE titles name the site (a station is in one hospital), as do the trial's ethics committee and
# coordinating centre.
PLACES = {
    "PerformedStationName": "SEOUL-CT-ROOM-2",
    "PerformedLocation": "SEOUL ONCOLOGY WING",
    "PerformedStationAETitle": "SEOULCT2",
    "ScheduledStationName": "SEOUL-CT-SCHED",
    "ScheduledProcedureStepLocation": "SEOUL SPS LOCATION",
    "ScheduledStudyLocation": "SEOUL STUDY LOCATION",
    "StationAETitle": "SEOULSTAT",
    "ClinicalTrialCoordinatingCenterName": "SEOUL COORDINATING CENTRE",
    "ClinicalTrialProtocolEthicsCommitteeName": "SEOUL IRB",
}


def test_a_station_or_location_the_trial_keeps_in_its_files_never_reaches_a_reader(world, client):
    services.trial_update(actor=world.alice, trial=world.trial, deid_retain_device_identity=True)
    files = []
    for raw in synthesize_ct_series(real_ct_template(large=False), slices=2, seed="places"):
        ds = pydicom.dcmread(io.BytesIO(raw))
        for keyword, value in PLACES.items():
            setattr(ds, keyword, value)
        where = Dataset()
        where.CodeValue, where.CodingSchemeDesignator, where.CodeMeaning = "KR-11", "ISO3166_2", "SEOUL GEO"
        ds.PerformedStationGeographicLocationCodeSequence = [where]
        out = io.BytesIO()
        ds.save_as(out)
        files.append(out.getvalue())
    timepoint = upload_files(world.cora, SUBJECT, files, "BL")
    qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))
    kept = json.dumps(Instance.objects.filter(series__study__subject__code=SUBJECT).first().metadata)
    assert "SEOUL-CT-ROOM-2" in kept and "SEOUL GEO" in kept  # the files do carry them: something to hide

    client.force_login(world.rhea)
    study = Study.objects.get(subject__code=SUBJECT).study_instance_uid
    root = f"/dicomweb/tasks/{task_of(world.rhea, 'BL').pk}"
    answers = [
        client.get(f"{root}/studies/{study}/metadata"),
        client.get(f"{root}/instances", {"includefield": "all"}),
        client.get(f"{root}/studies/{study}/instances", {"includefield": ",".join(PLACES)}),
    ]
    for answer in answers:
        assert answer.status_code == 200
        text = answer.content.decode()
        assert "SEOUL" not in text, [v for v in (*PLACES.values(), "SEOUL GEO") if v in text]


def test_no_private_element_reaches_a_reader_even_one_the_trial_keeps(world, client):
    """A private element the trial's safelist keeps is opaque to blinding: its meaning (a vendor's scan date,
    the site's own code) is known to no rule here, so a reader's root shows none (the trial root does)."""
    services.trial_update(actor=world.alice, trial=world.trial, deid_private_safelist=[["ACME 1.1", 0x10]])
    files = []
    for raw in synthesize_ct_series(real_ct_template(large=False), slices=2, seed="private"):
        ds = pydicom.dcmread(io.BytesIO(raw))
        block = ds.private_block(0x0019, "ACME 1.1", create=True)
        block.add_new(0x10, "LO", "SCANNED AT SEOUL ON 20260302")
        out = io.BytesIO()
        ds.save_as(out)
        files.append(out.getvalue())
    timepoint = upload_files(world.cora, SUBJECT, files, "BL")
    qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))
    client.force_login(world.alice)
    study = Study.objects.get(subject__code=SUBJECT).study_instance_uid
    assert "SCANNED AT" in client.get(f"/dicomweb/trials/ALPHA/studies/{study}/metadata").content.decode()

    client.force_login(world.rhea)
    root = f"/dicomweb/tasks/{task_of(world.rhea, 'BL').pk}"
    for answer in (
        client.get(f"{root}/studies/{study}/metadata"),
        client.get(f"{root}/instances", {"includefield": "all"}),
        client.get(f"{root}/studies/{study}/instances", {"includefield": "00191010,00190010"}),
    ):
        assert answer.status_code == 200
        for item in answer.json():
            assert not [tag for tag in item if int(tag[3], 16) % 2], item.keys()
        assert "ACME" not in answer.content.decode() and "SCANNED AT" not in answer.content.decode()


def test_metadata_and_searches_as_xml_are_as_blind_as_json(reading, client):
    client.force_login(reading.rhea)
    study = Study.objects.get(subject__code=SUBJECT).study_instance_uid
    xml = 'multipart/related; type="application/dicom+xml"'
    for url in (f"{root_of(reading)}/studies/{study}/metadata", f"{root_of(reading)}/instances?includefield=all"):
        answer = client.get(url, HTTP_ACCEPT=xml)
        assert answer.status_code == 200 and answer["Content-Type"].startswith(xml)
        text = answer.content.decode()
        assert 'tag="00080020"' not in text and 'vr="DA"' not in text and 'vr="TM"' not in text
        for tag in HIDDEN:
            assert f'tag="{tag}"' not in text, tag
        assert_blinded(text)


# --- what a reader receives is an allowlist -------------------------------------------------------------------


def _tags(item: dict, found: set[str] | None = None) -> set[str]:
    """Every tag of a DICOM JSON object, at any depth."""
    found = set() if found is None else found
    for tag, element in item.items():
        found.add(tag)
        if element.get("vr") == "SQ":
            for child in element.get("Value", []):
                _tags(child or {}, found)
    return found


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's, about the files that test its error handling
def test_every_attribute_of_every_real_file_reaches_a_reader_only_if_the_allowlist_names_it():
    """pydicom's, pydicom-data's and deid-data's files, PHI and all: each attribute at every depth is either one a
    viewer needs (and arrives unchanged, but the patient, named by the case label) or is not in the answer."""
    walked = 0
    for path in real_dicom_files():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            metadata = dataset_json(ds)
        except Exception:  # noqa: BLE001 - files that test pydicom's own error handling
            continue
        walked += 1
        blinded = blind_metadata(metadata, case_label="CASE-7")
        assert _tags(blinded) <= READER_TAGS, (path.name, _tags(blinded) - READER_TAGS)
        assert_no_date_elements([blinded])
        for tag, element in metadata.items():
            if tag in PATIENT_TAGS:
                assert CASE_LABEL_VALUES[tag] == blinded[tag]["Value"][0], path.name
            elif tag not in READER_TAGS or element.get("vr") in DATE_VRS:
                assert tag not in blinded, (path.name, tag)
            elif element.get("vr") != "SQ" and tag != "00080061":
                assert blinded[tag] == element, (path.name, tag)
        # The same list rebuilds a whole instance for a reader's retrieve.
        if "TransferSyntaxUID" in getattr(ds, "file_meta", {}) and "MediaStorageSOPInstanceUID" in ds.file_meta:
            copy = reader_allowlist("CASE-7").dataset(ds)
            assert {f"{e.tag:08X}" for e in copy.iterall()} <= READER_TAGS, path.name
            assert {f"{e.tag:08X}" for e in copy} == set(blinded), path.name
    assert walked > 100


CASE_LABEL_VALUES = {"00100010": {"Alphabetic": "CASE-7"}, "00100020": "CASE-7"}


@pytest.fixture
def keeping_everything(world):
    """A baseline ready for read whose trial keeps all PS3.15 lets it: shifted dates, cleaned descriptors, device
    identity, patient characteristics and a safelisted private element; its file holds a canary in every Annex E
    attribute (tests.trials.deid.factories.canary_instance) and a device serial number the scanner wrote."""
    services.trial_update(
        actor=world.alice,
        trial=world.trial,
        deid_retain_device_identity=True,
        deid_retain_patient_characteristics=True,
        deid_private_safelist=[["CANARY VENDOR 1.0", 0x01]],
    )
    canaries = canary_instance()
    ds = canaries.dataset
    ds.DeviceSerialNumber, ds.StationName, ds.InstitutionName = "SN-SEOUL-4411", "SEOUL-CT-2", "SEOUL UNIV HOSP"
    ds.ProtocolName, ds.SeriesDescription = "SEOUL CAP PROTOCOL", "SEOUL UNIV HOSP CAP PORTAL"
    timepoint = upload_files(world.cora, SUBJECT, [part10(ds)], "BL")
    qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))
    instance = Instance.objects.select_related("series__study").get(series__study__subject__code=SUBJECT)
    kept = json.dumps(instance.metadata)
    assert "SN-SEOUL-4411" in kept and "SEOUL-CT-2" in kept and "SEOUL CAP PROTOCOL" in kept  # something to hide
    return world, canaries, instance


def test_a_reader_sees_no_attribute_outside_the_allowlist_though_the_trial_keeps_them(keeping_everything, client):
    world, canaries, instance = keeping_everything
    study, series = instance.series.study.study_instance_uid, instance.series.series_instance_uid
    root = f"/dicomweb/tasks/{task_of(world.rhea, 'BL').pk}"
    series_url = f"{root}/studies/{study}/series/{series}"
    client.force_login(world.rhea)
    kept = set(instance.metadata)
    assert kept - READER_TAGS  # something to hide
    answers = {
        "metadata": client.get(f"{series_url}/metadata"),
        "instance metadata": client.get(f"{series_url}/instances/{instance.sop_instance_uid}/metadata"),
        "studies": client.get(f"{root}/studies", {"includefield": "all"}),
        "series": client.get(f"{root}/series", {"includefield": "all"}),
        "instances": client.get(f"{root}/instances", {"includefield": "all"}),
        "named": client.get(f"{root}/instances", {"includefield": ",".join(sorted(kept))}),
    }
    shown = set()
    for name, answer in answers.items():
        assert answer.status_code == 200, name
        for item in answer.json():
            assert _tags(item) <= READER_TAGS, (name, _tags(item) - READER_TAGS)
            shown |= _tags(item)
        assert_no_date_elements(answer.json())
    assert {"00280030", "00200032", "00200037", "00280010"} <= shown  # what the viewer measures with is there

    whole = client.get(
        f"{series_url}/instances/{instance.sop_instance_uid}", HTTP_ACCEPT="application/dicom; transfer-syntax=*"
    )
    assert whole.status_code == 200
    ds = pydicom.dcmread(io.BytesIO(whole.content))
    assert {f"{e.tag:08X}" for e in ds.iterall()} <= READER_TAGS
    # The file meta group is the copy's own: the stored one's Source Application Entity Title names the sender.
    assert {e.tag for e in ds.file_meta} <= {
        0x00020000,
        0x00020001,
        0x00020002,
        0x00020003,
        0x00020010,
        0x00020012,
        0x00020013,
    }
    assert ds.PixelData and ds.PatientID == task_of(world.rhea, "BL").assignment.case_label

    texts = [answer.content.decode() for answer in answers.values()] + [whole.content.decode("latin-1")]
    xml = 'multipart/related; type="application/dicom+xml"'
    texts += [client.get(f"{series_url}/metadata", HTTP_ACCEPT=xml).content.decode()]
    values = {**canaries.text, **canaries.descriptors, **canaries.dates, **canaries.times}
    values |= dict.fromkeys(
        ("SN-SEOUL-4411", "SEOUL", "CANARY VENDOR", "MRN4455667", KOREAN_NAME.split("^")[0]), "site"
    )
    for text in texts:
        assert not [f"{attribute}: {value}" for value, attribute in values.items() if value in text]
    # The series' description is shown as Clean Descriptors left it: without the institution the file names.
    assert client.get(f"{root}/series").json()[0]["0008103E"]["Value"] == ["CAP PORTAL"]


@pytest.mark.parametrize("path", ["studies", "studies/1.2.3"])
def test_a_store_on_a_readers_root_is_405_for_the_reader_and_404_for_anyone_else(world, client, path):
    """STOW-RS (POST on /studies, /studies/{study}): a reader's root stores nothing. It was 405 to anyone, before
    authentication; now only the task's reader learns the resource exists."""
    ready(world, "BL")
    url = f"/dicomweb/tasks/{task_of(world.rhea, 'BL').pk}/{path}"
    multipart = 'multipart/related; type="application/dicom"; boundary=x'
    assert client.generic("POST", url, b"--x--\r\n", content_type=multipart).status_code == 401
    client.force_login(world.ravi)
    assert client.generic("POST", url, b"--x--\r\n", content_type=multipart).status_code == 404
    client.force_login(world.rhea)
    refused = client.generic("POST", url, b"--x--\r\n", content_type=multipart)
    assert refused.status_code == 405 and refused["Allow"] == "GET, HEAD, OPTIONS"
    assert "stores nothing" in refused.json()["error"]["message"]
