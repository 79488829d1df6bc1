"""The stored SRs tell the same truth as the database: readers by code, dates in the study's shifted timeline,
no false de-identification claims, standard codes, and the adjudicated result identifiable from the SRs alone."""

from __future__ import annotations

import datetime as dt
import io

import highdicom as hd
import pydicom
import pytest
from django.utils import timezone
from pydicom.data import get_testdata_file

from reads.bench import drawn_line
from reads.models import Adjudication, Read, ReaderAssignment, TimepointResult
from reads.sr_store import read_sr_dataset
from tests.conftest import upload_files
from tests.reads.flow import (
    SUBJECT,
    adjudicate,
    baseline_content,
    dciodvfy_errors,
    follow_up_content,
    image,
    ready,
    save_and_sign,
    target,
    task_of,
)
from trials import qc_services
from trials.dicomweb.wado import read_instance
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Study, Timepoint

REAL_SCAN_DATE = dt.date(2026, 3, 2)  # what tests.reads.flow.ready gives the scanner's study date


def _walk(dataset):
    for elem in dataset:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item)


def _codes(dataset) -> set[tuple[str, str, str]]:
    found = set()
    for elem in _walk(dataset):
        if elem.keyword in ("ConceptNameCodeSequence", "ConceptCodeSequence", "MeasurementUnitsCodeSequence"):
            for c in elem.value:
                found.add((str(c.CodingSchemeDesignator), str(c.CodeValue), str(c.CodeMeaning)))
    return found


def _items(dataset, scheme: str, value: str) -> list:
    """The content items whose concept name is (scheme, value)."""
    out = []

    def walk(items):
        for item in items:
            names = item.get("ConceptNameCodeSequence", [])
            if names and (names[0].CodingSchemeDesignator, names[0].CodeValue) == (scheme, value):
                out.append(item)
            walk(item.get("ContentSequence", []))

    walk(dataset.ContentSequence)
    return out


def _groups(dataset) -> dict[str, pydicom.Dataset]:
    """Each measurement group by its tracking identifier (T01, NT01, N01, Timepoint response)."""
    out = {}
    for group in _items(dataset, "DCM", "125007"):  # Measurement Group
        for item in group.ContentSequence:
            if item.ConceptNameCodeSequence[0].CodeValue == "112039":
                out[str(item.TextValue)] = group
    return out


def _both_sign_baseline(world):
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))


def _slot(world, reader) -> int:
    return ReaderAssignment.objects.get(subject__code=SUBJECT, reader=reader).slot


def test_readers_are_named_by_their_code_never_by_name(world):
    _both_sign_baseline(world)
    for reader in (world.rhea, world.ravi):
        read = Read.objects.get(task=task_of(reader, "BL"))
        dataset = read_sr_dataset(read)
        code = f"Radiologist {_slot(world, reader)}"
        parsed = hd.sr.Comprehensive3DSR.from_dataset(dataset)
        [observer] = parsed.content.get_observer_contexts(observer_type=pydicom.sr.codedict.codes.DCM.Person)
        assert str(observer.observer_identifying_attributes.name).rstrip("^") == code
        assert str(dataset.VerifyingObserverSequence[0].VerifyingObserverName).rstrip("^") == code
        raw = read_instance(read.sr_instance, pixels=False)
        text = str(raw).lower()
        for person in (world.rhea, world.ravi):
            assert person.full_name.lower() not in text and person.email.lower() not in text


def test_no_date_in_an_sr_reveals_the_subjects_date_offset(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read = save_and_sign(world.rhea, task, baseline_content(task))
    dataset = read_sr_dataset(read)
    study_date = Study.objects.get(timepoint=task.timepoint).study_date
    offset = (study_date - REAL_SCAN_DATE).days
    assert offset != 0
    signed = timezone.localtime(read.signed_at, dt.UTC).date()
    shifted_signing = signed + dt.timedelta(days=offset)
    allowed = {study_date, shifted_signing}
    dates = []
    for elem in _walk(dataset):
        if elem.VR == "DA" and elem.value:
            dates.append((elem.keyword, dt.datetime.strptime(str(elem.value), "%Y%m%d").date()))
        if elem.VR == "DT" and elem.value:
            dates.append((elem.keyword, dt.datetime.strptime(str(elem.value)[:8], "%Y%m%d").date()))
    assert {k for k, _ in dates} >= {"StudyDate", "ContentDate", "VerificationDateTime"}
    assert all(d in allowed for _, d in dates), dates
    assert dataset.ContentDate == shifted_signing.strftime("%Y%m%d")
    assert dataset.get("SeriesDate", dataset.ContentDate) == dataset.ContentDate
    assert dataset.TimezoneOffsetFromUTC == "+0000"
    assert str(dataset.VerifyingObserverSequence[0].VerificationDateTime).endswith("+0000")


def test_an_sr_claims_no_de_identification_it_did_not_apply(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    dataset = read_sr_dataset(save_and_sign(world.rhea, task, baseline_content(task)))
    assert "DeidentificationMethodCodeSequence" not in dataset
    assert "ContributingEquipmentSequence" not in dataset
    assert "Annex E" not in str(dataset.get("DeidentificationMethod", ""))
    assert dataset.PatientIdentityRemoved == "YES" and dataset.LongitudinalTemporalInformationModified == "MODIFIED"


def test_the_content_is_coded_as_the_read_says(world, tmp_path):
    _both_sign_baseline(world)
    ready(world, "W6", day=42)
    task = task_of(world.rhea, "W6")
    read = save_and_sign(world.rhea, task, follow_up_content(task, "14.0", "8.0", new="unequivocal"))
    dataset = read_sr_dataset(read)
    assert not dciodvfy_errors(dataset, tmp_path)
    hd.sr.Comprehensive3DSR.from_dataset(dataset)
    groups = _groups(dataset)
    status = ("99CTIMS", "LESSTAT")

    def codes_in(group, name):
        return [
            (str(i.ConceptCodeSequence[0].CodingSchemeDesignator), str(i.ConceptCodeSequence[0].CodeValue))
            for i in group.ContentSequence
            if i.get("ValueType") == "CODE" and (i.ConceptNameCodeSequence[0].CodingSchemeDesignator,
                                                   i.ConceptNameCodeSequence[0].CodeValue) == name
        ]  # fmt: skip

    # Non-target and new lesions carry no "Lesion Status = Measured".
    assert codes_in(groups["NT01"], status) == [] and codes_in(groups["N01"], status) == []
    assert codes_in(groups["T01"], status) == [("SCT", "258104002")]  # Measured
    assert codes_in(groups["NT01"], ("99CTIMS", "NTSTAT")) == [("SCT", "52101004")]  # Present
    assert codes_in(groups["N01"], ("DCM", "112016")) == [("DCM", "112076")]  # Non-Lesion at Baseline: new
    # Values keep their tenths.
    [long_axis] = [i for i in groups["T01"].ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "103339001"]
    assert str(long_axis.MeasuredValueSequence[0].NumericValue) == "14.0"
    # The Time Point carries the visit's code and order.
    assert {str(i.TextValue) for i in _items(dataset, "DCM", "126071")} == {"W6"}
    assert {int(i.MeasuredValueSequence[0].NumericValue) for i in _items(dataset, "DCM", "126073")} == {2}
    assert not any(scheme == "99CTIMS" and value.endswith("NE") for scheme, value, _ in _codes(dataset))


def test_a_node_is_a_lymphadenopathy_finding_at_a_node_site(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    content = baseline_content(task)
    content["targets"][1] = target(task, "T02", "22.0", site="62683002", short="16.0", node=True)
    dataset = read_sr_dataset(save_and_sign(world.rhea, task, content))
    node = _groups(dataset)["T02"]
    finding = [i for i in node.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121071"]
    assert [(c.ConceptCodeSequence[0].CodingSchemeDesignator, c.ConceptCodeSequence[0].CodeValue) for c in finding] == [
        ("SCT", "30746006")
    ]
    axes = [i for i in node.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue in ("103339001", "103340004")]
    values = {str(i.MeasuredValueSequence[0].NumericValue) for i in axes}
    assert values == {"22.0", "16.0"}


def test_ne_is_coded_one_way():
    from reads import sr as rsr

    ne = {
        (c.scheme_designator, c.value)
        for c in (
            rsr.TARGET_RESPONSE_CODES["NE"],
            rsr.NON_TARGET_RESPONSE_CODES["NE"],
            rsr.OVERALL_RESPONSE_CODES["NE"],
            rsr.STATUS_CODES["not_evaluable"],
            rsr.NON_TARGET_STATUS_CODES["not_evaluable"],
        )
    }
    assert ne == {("NCIt", "C62222")}


@pytest.fixture
def adjudicated(world):
    """Readers agree at baseline (reader 1's read locks), disagree at week 6; the adjudicator accepts reader 2."""
    _both_sign_baseline(world)
    ready(world, "W6", day=42)
    readers = {a.slot: a.reader for a in ReaderAssignment.objects.filter(subject__code=SUBJECT, slot__in=(1, 2))}
    for slot, (t1, t2) in {1: ("15.0", "8.0"), 2: ("22.0", "11.0")}.items():
        task = task_of(readers[slot], "W6")
        save_and_sign(readers[slot], task, follow_up_content(task, t1, t2))
    adjudicate(world, Adjudication.objects.get(), "2", "Reader 2 measured the long axes.")
    return readers


def test_the_accepted_read_is_identifiable_from_the_stored_srs_alone(world, adjudicated, tmp_path):
    readers = adjudicated
    for visit in ("BL", "W6"):
        chosen = Read.objects.get(task=task_of(readers[2], visit))
        other = Read.objects.get(task=task_of(readers[1], visit))
        study = Study.objects.get(timepoint__subject__code=SUBJECT, timepoint__visit__code=visit)
        srs = [
            read_instance(i, pixels=False) for i in Instance.objects.filter(series__study=study, series__modality="SR")
        ]
        results_srs = [
            ds for ds in srs if _items(ds, "DCM", "121011") or any(
                (c.CodingSchemeDesignator, c.CodeValue) == ("NCIt", "C96561")
                for e in _walk(ds) if e.keyword == "ConceptCodeSequence" for c in e.value
            )
        ]  # fmt: skip
        [result_sr] = results_srs
        assert str(result_sr.VerifyingObserverSequence[0].VerifyingObserverName).rstrip("^") == "Adjudicator"
        predecessors = {
            str(sop.ReferencedSOPInstanceUID)
            for study_ref in result_sr.PredecessorDocumentsSequence
            for series in study_ref.ReferencedSeriesSequence
            for sop in series.ReferencedSOPSequence
        }
        assert chosen.sr_instance.sop_instance_uid in predecessors
        assert other.sr_instance.sop_instance_uid not in predecessors
        # The result SR holds the accepted reader's lesions, under their tracking UIDs.
        accepted = {str(le.tracking_uid) for le in _parsed_lesions(read_sr_dataset(chosen))}
        assert {str(le.tracking_uid) for le in _parsed_lesions(result_sr)} == accepted
        assert not dciodvfy_errors(result_sr, tmp_path)
        result = TimepointResult.objects.get(timepoint=study.timepoint)
        assert result.sr_instance.sop_instance_uid == result_sr.SOPInstanceUID


def _parsed_lesions(dataset):
    from reads.sr import parse_measurement_report

    return parse_measurement_report(dataset).lesions


def _items_of(sequence):
    for item in sequence:
        yield item
        yield from _items_of(item.get("ContentSequence", []))


def test_a_lesion_drawn_on_a_frame_of_an_enhanced_image_is_referenced_at_that_frame_in_the_sr(world):
    """The read records the frame of a multi-frame image a lesion is drawn on; the SR's references to that image
    (the lesion's group and each axis's SCOORD source) carry the same frame number, a single-frame image's none."""
    enhanced = pydicom.dcmread(get_testdata_file("eCT_Supplemental.dcm"))
    files = synthesize_ct_series(real_ct_template(large=False), slices=3, seed="sr-frames")
    series = pydicom.dcmread(io.BytesIO(files[0]))
    # One more series of the same patient's study.
    enhanced.PatientName, enhanced.PatientID = series.PatientName, series.PatientID
    enhanced.StudyInstanceUID, enhanced.StudyDate = series.StudyInstanceUID, series.StudyDate
    buffer = io.BytesIO()
    enhanced.save_as(buffer, enforce_file_format=True)
    files.append(buffer.getvalue())
    timepoint = upload_files(world.cora, SUBJECT, files, "BL")
    qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))
    task = task_of(world.rhea, "BL")
    on_frame = Instance.objects.get(number_of_frames=2, series__study__timepoint=task.timepoint)
    # T02 on the enhanced image's 10 mm slices: measurable from 20 mm (RECIST 1.1 section 3.1.1).
    content = baseline_content(task, t2="20.0")
    frame_two = {**image(task, 0), "frame": 2, "sop": on_frame.sop_instance_uid}
    frame_two["series"] = on_frame.series.series_instance_uid
    frame_two["study"] = on_frame.series.study.study_instance_uid
    content["targets"][1].update(image=frame_two, long_points=drawn_line(frame_two, "20.0", at=(200, 200)))
    single = content["targets"][0]["image"]
    assert Instance.objects.get(sop_instance_uid=single["sop"]).number_of_frames == 1
    content["non_targets"][0]["image"] = single
    read = save_and_sign(world.rhea, task, content)
    dataset = read_sr_dataset(read)
    frames = {}
    for item in _items_of(dataset.ContentSequence):
        for ref in item.get("ReferencedSOPSequence", []):
            number = ref.get("ReferencedFrameNumber")
            frames.setdefault(str(ref.ReferencedSOPInstanceUID), []).append(None if number is None else int(number))
    assert frames[on_frame.sop_instance_uid] == [2, 2], frames  # T02's group image and its long axis's source
    assert set(frames[single["sop"]]) == {None}, frames
