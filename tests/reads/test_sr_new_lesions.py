"""A follow-up's SR says what the reader called the new lesions: none, equivocal or unequivocal (RECIST 1.1 section
4.3.3). Without it an SR listing a new lesion beside an overall response of PR reads as a contradiction, and an
equivocal lesion that dates a later progression back cannot be told from one that made the progression."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from reads import sr as rsr
from reads.models import Read
from reads.sr_store import read_sr_dataset
from tests.reads.flow import dciodvfy_errors, follow_up_content, save_and_sign, signed_baseline_then_week_6
from tests.reads.test_sr import _evidence, _report, _uid

CALLS = {"NONE": codes.SCT.Absent, "EQUIVOCAL": codes.SCT.Equivocal, "UNEQUIVOCAL": codes.SCT.Present}


def _with_new_lesion(call: str) -> tuple[rsr.ReadReport, list]:
    evidence = _evidence(_uid())
    report = _report(evidence, "Week 8", overall="PD" if call == "UNEQUIVOCAL" else "PR")
    report.new_lesions = call
    if call != "NONE":
        report.lesions.append(
            rsr.LesionMeasurement(
                tracking_uid=_uid(),
                tracking_label="N01",
                category="new",
                finding_site=("10200004", "Liver"),
                status=None,
                image=rsr.SourceImage(
                    evidence[0].StudyInstanceUID,
                    evidence[0].SeriesInstanceUID,
                    evidence[0].SOPInstanceUID,
                    evidence[0].SOPClassUID,
                ),
            )
        )
    return report, evidence


@pytest.mark.parametrize("call", ["NONE", "EQUIVOCAL", "UNEQUIVOCAL"])
def test_the_new_lesion_call_is_written_with_a_standard_code_and_read_back(call):
    report, evidence = _with_new_lesion(call)
    dataset = rsr.write_measurement_report(report, evidence)
    assert rsr.parse_measurement_report(dataset).new_lesions == call
    [group] = [
        item
        for item in dataset.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "126010"  # Imaging Measurements
    ]
    values = {
        (str(q.ConceptCodeSequence[0].CodingSchemeDesignator), str(q.ConceptCodeSequence[0].CodeValue))
        for g in group.ContentSequence
        for q in g.get("ContentSequence", [])
        if q.get("ValueType") == "CODE" and str(q.ConceptNameCodeSequence[0].CodeValue) == rsr.NEW_LESIONS.value
    }
    assert values == {(CALLS[call].scheme_designator, CALLS[call].value)}


def test_a_baseline_sr_makes_no_new_lesion_call():
    evidence = _evidence(_uid())
    report = _report(evidence, "Baseline", overall=None, target=None)
    assert report.new_lesions is None
    assert rsr.parse_measurement_report(rsr.write_measurement_report(report, evidence)).new_lesions is None


def test_an_unknown_call_is_refused():
    report, evidence = _with_new_lesion("NONE")
    report.new_lesions = "MAYBE"
    with pytest.raises(rsr.SRError):
        rsr.write_measurement_report(report, evidence)


def test_dciodvfy_finds_no_error_in_an_sr_with_an_equivocal_new_lesion(tmp_path):
    report, evidence = _with_new_lesion("EQUIVOCAL")
    assert dciodvfy_errors(rsr.write_measurement_report(report, evidence), tmp_path) == []


@pytest.mark.parametrize("call", ["none", "equivocal"])
def test_a_signed_follow_ups_stored_sr_carries_the_readers_new_lesion_call(world, call):
    """The call reaches the SR a signing stores (reads.sr_store), not only the writer; a baseline's makes none."""
    bl, w6 = signed_baseline_then_week_6(world)
    read = save_and_sign(world.rhea, w6, follow_up_content(w6, "20.0", "10.0", new=call))
    assert rsr.parse_measurement_report(read_sr_dataset(read)).new_lesions == call.upper()
    baseline = Read.objects.get(task=bl)
    assert rsr.parse_measurement_report(read_sr_dataset(baseline)).new_lesions is None
