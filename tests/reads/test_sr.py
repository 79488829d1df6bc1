"""reads.sr: TID 1500 write / parse round trip, dciodvfy, pseudonym-only patient identity."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import subprocess
from decimal import Decimal

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from reads import sr as rsr

PSEUDONYM = "ALPHA-SEO-0001"
ORIGINAL_NAME = "CompressedSamples^CT1"


def _uid() -> str:
    return generate_uid(prefix="2.25.")


def _evidence(study_uid: str, n: int = 2) -> list[pydicom.Dataset]:
    """De-identified-looking headers built from CT_small.dcm (2.25 UIDs, pseudonym)."""
    series_uid, for_uid = _uid(), _uid()
    out = []
    for i in range(n):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
        assert str(ds.PatientName) == ORIGINAL_NAME
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = _uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.FrameOfReferenceUID = for_uid
        ds.InstanceNumber = i + 1
        ds.PatientName = PSEUDONYM
        ds.PatientID = PSEUDONYM
        ds.PatientBirthDate = ""
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        for kw in ("OtherPatientIDs", "InstitutionName", "OperatorsName", "RequestingPhysician"):
            if kw in ds:
                delattr(ds, kw)
        out.append(ds)
    return out


def _image(ds: pydicom.Dataset) -> rsr.SourceImage:
    return rsr.SourceImage(
        study_uid=ds.StudyInstanceUID,
        series_uid=ds.SeriesInstanceUID,
        sop_instance_uid=ds.SOPInstanceUID,
        sop_class_uid=ds.SOPClassUID,
        frame_of_reference_uid=ds.FrameOfReferenceUID,
    )


TRACK = {"T01": _uid(), "T02": _uid(), "NT01": _uid()}


def _report(
    evidence, timepoint: str, *, t01=Decimal("23.4"), t02=(Decimal("17.0"), Decimal("12.25")), overall="PR", target="PR"
) -> rsr.ReadReport:
    img0, img1 = _image(evidence[0]), _image(evidence[1])
    lesions = [
        rsr.LesionMeasurement(
            tracking_uid=TRACK["T01"],
            tracking_label="T01",
            category="target",
            finding_site=("39607008", "Lung"),
            is_node=False,
            long_axis_mm=t01,
            long_axis_points=((30.5, 40.0), (52.25, 47.5)),
            image=img0,
        ),
        rsr.LesionMeasurement(
            tracking_uid=TRACK["T02"],
            tracking_label="T02",
            category="target",
            finding_site=("59441001", "Lymph Node"),
            is_node=True,
            long_axis_mm=t02[0],
            short_axis_mm=t02[1],
            long_axis_points=((10.0, 20.0), (27.0, 20.0)),
            short_axis_points=((18.5, 14.0), (18.5, 26.25)),
            image=img1,
        ),
        rsr.LesionMeasurement(
            tracking_uid=TRACK["NT01"],
            tracking_label="NT01",
            category="non_target",
            finding_site=("10200004", "Liver"),
            status=None,  # a non-target has no measurement status, only its call
            non_target_status="present",
            image=img1,
        ),
    ]
    return rsr.ReadReport(
        study_uid=evidence[0].StudyInstanceUID,
        series_uid=_uid(),
        sop_instance_uid=_uid(),
        series_number=9001,
        instance_number=1,
        reader_name="Reader 1",
        verifying_observer_name="Reader^1",
        verification_datetime=dt.datetime(2026, 3, 4, 10, 11, 12),
        content_datetime=dt.datetime(2026, 3, 4, 10, 0, 5),
        timepoint_label=timepoint,
        lesions=lesions,
        target_response=target,
        non_target_response="NON-CR/NON-PD",
        overall_response=overall,
        sum_of_diameters_mm=t01 + t02[1],
    )


@pytest.fixture
def baseline():
    evidence = _evidence(_uid())
    report = _report(evidence, "Baseline", overall=None, target=None)
    report.non_target_response = None
    return report, evidence


@pytest.fixture
def followup():
    evidence = _evidence(_uid())
    return _report(evidence, "Week 8", t01=Decimal("15.1"), t02=(Decimal("12.0"), Decimal("9.9"))), evidence


def test_round_trip(followup):
    report, evidence = followup
    ds = rsr.write_measurement_report(report, evidence)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.StudyInstanceUID == report.study_uid
    assert ds.SeriesInstanceUID == report.series_uid and ds.SOPInstanceUID == report.sop_instance_uid
    assert ds.CompletionFlag == "COMPLETE" and ds.VerificationFlag == "VERIFIED"
    assert ds.VerifyingObserverSequence[0].VerifyingObserverName == "Reader^1"
    assert ds.VerifyingObserverSequence[0].VerificationDateTime == "20260304101112"

    parsed = rsr.parse_measurement_report(ds)
    assert parsed.reader_name == "Reader 1"
    assert parsed.timepoint_label == "Week 8"
    assert parsed.verification_datetime == report.verification_datetime
    assert parsed.content_datetime == report.content_datetime
    assert (parsed.target_response, parsed.non_target_response, parsed.overall_response) == (
        "PR",
        "NON-CR/NON-PD",
        "PR",
    )
    assert parsed.sum_of_diameters_mm == Decimal("25.0")
    assert [le.tracking_label for le in parsed.lesions] == ["T01", "T02", "NT01"]
    by_label = {le.tracking_label: le for le in parsed.lesions}
    for orig in report.lesions:
        got = by_label[orig.tracking_label]
        assert got.tracking_uid == orig.tracking_uid
        assert got.category == orig.category
        assert got.finding_site == orig.finding_site
        assert got.is_node == orig.is_node
        assert got.long_axis_mm == orig.long_axis_mm and str(got.long_axis_mm) == str(orig.long_axis_mm)
        assert got.short_axis_mm == orig.short_axis_mm
        assert got.long_axis_points == orig.long_axis_points
        assert got.short_axis_points == orig.short_axis_points
        assert got.status == orig.status
        assert got.non_target_status == orig.non_target_status
        assert got.image.sop_instance_uid == orig.image.sop_instance_uid
        assert got.image.sop_class_uid == orig.image.sop_class_uid
        assert got.image.series_uid == orig.image.series_uid
        assert got.image.study_uid == orig.image.study_uid
    assert str(by_label["T02"].short_axis_mm) == "9.9"


def test_codes_in_content(followup):
    report, evidence = followup
    ds = rsr.write_measurement_report(report, evidence)
    found = set()

    def walk(items):
        for it in items:
            for kw in ("ConceptNameCodeSequence", "ConceptCodeSequence", "MeasurementUnitsCodeSequence"):
                for c in it.get(kw, []):
                    found.add((c.CodingSchemeDesignator, c.CodeValue, c.CodeMeaning))
            if "MeasuredValueSequence" in it:
                for c in it.MeasuredValueSequence[0].MeasurementUnitsCodeSequence:
                    found.add((c.CodingSchemeDesignator, c.CodeValue, c.CodeMeaning))
            walk(it.get("ContentSequence", []))

    walk(ds.ContentSequence)
    for code in [
        ("SCT", "103339001", "Long axis"),
        ("SCT", "103340004", "Short axis"),
        ("UCUM", "mm", "mm"),
        ("DCM", "126081", "RECIST 1.1"),
        ("DCM", "112074", "Target Lesion at Baseline"),
        ("DCM", "112075", "Non-Target Lesion at Baseline"),
        ("DCM", "112042", "Target Lesion Partial Response"),
        ("DCM", "112046", "Non-Target Lesion Incomplete Response or Stable Disease"),
        ("NCIt", "C18058", "Partial Response"),
        ("DCM", "112039", "Tracking Identifier"),
        ("DCM", "112040", "Tracking Unique Identifier"),
        ("SCT", "39607008", "Lung"),
    ]:
        assert code in found, code


def test_overall_response_codes_are_the_cdisc_ncit_codes():
    # CDISC CT "Oncology Response Assessment Result" (C96785); sources in reads/sr.py.
    got = {key: (code.scheme_designator, code.value, code.meaning) for key, code in rsr.OVERALL_RESPONSE_CODES.items()}
    assert got == {
        "CR": ("NCIt", "C4870", "Complete Response"),
        "PR": ("NCIt", "C18058", "Partial Response"),
        "SD": ("NCIt", "C18213", "Stable Disease"),
        "PD": ("NCIt", "C35571", "Progressive Disease"),
        "NE": ("NCIt", "C62222", "Not Evaluable"),
        "NON-CR/NON-PD": ("99CTIMS", "OVRL-NCRNPD", "Non-CR/Non-PD"),
    }


@pytest.mark.parametrize("overall", sorted(rsr.OVERALL_RESPONSE_CODES))
def test_each_overall_response_is_written_with_its_code_and_read_back(followup, overall):
    report, evidence = followup
    report.overall_response = overall
    ds = rsr.write_measurement_report(report, evidence)
    expected = rsr.OVERALL_RESPONSE_CODES[overall]
    written = [
        (str(c.CodingSchemeDesignator), str(c.CodeValue))
        for item in _walk(ds.ContentSequence)
        if item.get("ValueType") == "CODE" and item.ConceptNameCodeSequence[0].CodeValue == rsr.OVERALL_RESPONSE.value
        for c in item.ConceptCodeSequence
    ]
    assert written == [(expected.scheme_designator, expected.value)]
    assert rsr.parse_measurement_report(ds).overall_response == overall


def _walk(items):
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def test_tracking_uid_survives_baseline_and_followup(baseline, followup):
    (b_report, b_ev), (f_report, f_ev) = baseline, followup
    b = rsr.parse_measurement_report(rsr.write_measurement_report(b_report, b_ev))
    f = rsr.parse_measurement_report(rsr.write_measurement_report(f_report, f_ev))
    assert b.study_uid != f.study_uid
    assert b.overall_response is None and b.timepoint_label == "Baseline"
    b_map = {le.tracking_uid: le for le in b.lesions}
    f_map = {le.tracking_uid: le for le in f.lesions}
    assert set(b_map) == set(f_map) == set(TRACK.values())
    for uid in b_map:
        assert b_map[uid].tracking_label == f_map[uid].tracking_label
    assert b_map[TRACK["T01"]].long_axis_mm == Decimal("23.4")
    assert f_map[TRACK["T01"]].long_axis_mm == Decimal("15.1")


def test_pseudonym_only(followup, tmp_path):
    report, evidence = followup
    ds = rsr.write_measurement_report(report, evidence)
    path = tmp_path / "sr.dcm"
    ds.save_as(path, enforce_file_format=True)
    reread = pydicom.dcmread(path)
    seen = []

    def walk(d):
        for elem in d:
            if elem.keyword in ("PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames"):
                seen.append((elem.keyword, str(elem.value)))
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)

    walk(reread)
    assert ("PatientName", PSEUDONYM) in seen and ("PatientID", PSEUDONYM) in seen
    assert all(v == PSEUDONYM for _, v in seen), seen
    raw = path.read_bytes()
    assert ORIGINAL_NAME.encode() not in raw and b"CompressedSamples" not in raw
    parsed = rsr.parse_measurement_report(reread)
    assert parsed.patient_name == PSEUDONYM and parsed.patient_id == PSEUDONYM
    assert reread.AccessionNumber == "" and reread.ReferringPhysicianName == ""
    assert reread.StudyDate == evidence[0].StudyDate


def test_rejects_image_outside_evidence(followup):
    report, evidence = followup
    other = _evidence(report.study_uid, n=1)[0]
    report.lesions[0].image = _image(other)
    with pytest.raises(rsr.SRError):
        rsr.write_measurement_report(report, evidence)


def test_rejects_evidence_from_other_study(followup):
    report, evidence = followup
    with pytest.raises(rsr.SRError):
        rsr.write_measurement_report(report, evidence + _evidence(_uid(), n=1))


def test_dciodvfy_no_errors(followup, tmp_path):
    assert shutil.which("dciodvfy"), "dciodvfy is missing: `make test` installs Debian's dicom3tools"
    report, evidence = followup
    path = tmp_path / "sr.dcm"
    rsr.write_measurement_report(report, evidence).save_as(path, enforce_file_format=True)
    proc = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).splitlines()
    print("dciodvfy output for the record:")
    for line in lines:
        print("  " + line)
    assert "Comprehensive3DSR" in lines, "dciodvfy did not recognise the IOD"
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, errors


def test_a_measurement_on_a_frame_of_a_multi_frame_image_references_that_frame(followup):
    """A lesion drawn on frame 2 of an enhanced (multi-frame) image: its SCOORDs and its group's image name frame
    2 (PS3.3 C.18.3.1: without a frame number the reference is to every frame), and the frame is read back; a
    single-frame image's references carry no frame number."""
    report, evidence = followup
    evidence[1].NumberOfFrames = 3
    for lesion in report.lesions:  # T02 and NT01 are on the multi-frame image
        if lesion.image.sop_instance_uid == evidence[1].SOPInstanceUID:
            lesion.image = dataclasses.replace(lesion.image, frame=2)
    ds = rsr.write_measurement_report(report, evidence)
    by_sop = {}
    for item in _walk(ds.ContentSequence):
        for ref in item.get("ReferencedSOPSequence", []):
            by_sop.setdefault(str(ref.ReferencedSOPInstanceUID), []).append(
                (item.ValueType, ref.get("ReferencedFrameNumber") and int(ref.ReferencedFrameNumber))
            )
    framed = by_sop[evidence[1].SOPInstanceUID]
    # T02's group image and each axis's SCOORD source (its IMAGE child), and NT01's group image.
    assert framed == [("IMAGE", 2)] * 4, framed
    assert all(frame is None for _, frame in by_sop[evidence[0].SOPInstanceUID])
    parsed = {le.tracking_label: le for le in rsr.parse_measurement_report(ds).lesions}
    assert parsed["T02"].image.frame == 2 and parsed["NT01"].image.frame == 2
    assert parsed["T01"].image.frame is None
