"""Protocol compliance on synthesized series: one test per rule, and what the findings may say."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from trials.qc import (
    CODES,
    Classification,
    Finding,
    ProtocolInfo,
    Severity,
    check_timepoint,
    series_info_from_datasets,
)

from .factories import (
    CORONAL,
    PATIENT_ID,
    PATIENT_NAME,
    cap_portal_venous,
    cap_protocol,
    localizer,
    series,
    slices,
)


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def only(findings: list[Finding], code: str) -> Finding:
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, findings
    return matching[0]


# -- a compliant timepoint --------------------------------------------------------------------------------------


def test_a_complete_compliant_cap_portal_venous_series_gives_no_findings():
    assert check_timepoint([cap_protocol()], [cap_portal_venous()]) == []


def test_a_compliant_multiphase_timepoint_with_its_localizer_gives_no_findings():
    non_contrast = cap_portal_venous(series_number=2, description="CAP NC 5mm", contrast_delay_s=None)
    thin = cap_portal_venous(series_number=4, description="CAP PV 1.25mm", thickness=1.25, spacing=1.25, n=500)
    assert check_timepoint([cap_protocol()], [localizer(), non_contrast, cap_portal_venous(), thin]) == []


def test_nothing_received_is_one_blocking_finding():
    findings = check_timepoint([cap_protocol()], [])
    assert codes(findings) == ["no_images"]
    assert findings[0].severity == Severity.BLOCKING


# -- missing slices -------------------------------------------------------------------------------------------


def test_missing_slices_are_blocking_with_the_count_and_where():
    findings = check_timepoint([cap_protocol()], [cap_portal_venous(skip=(60, 61))])
    finding = only(findings, "missing_slices")
    assert finding.severity == Severity.BLOCKING
    assert finding.details["missing_slices"] == 2
    assert finding.details["gaps"] == 1
    # Slice 59 lies at -300 + 59 * 5 = -5 mm, slice 62 at 10 mm.
    assert finding.message == (
        "Series 3 (CAP PV 5mm) is missing slices between positions −5.0 and 10.0 mm (2 expected slices absent); "
        "please send the complete series."
    )
    assert finding.series_uid == cap_portal_venous().series_uid
    # The instance numbers miss the same two images: no second finding for that.
    assert codes(findings) == ["missing_slices"]


def test_gaps_in_several_places_are_counted_together():
    finding = only(check_timepoint([cap_protocol()], [cap_portal_venous(skip=(10, 80, 81, 82))]), "missing_slices")
    assert finding.details["missing_slices"] == 4
    assert finding.details["gaps"] == 2
    assert "is missing 4 slices in 2 places, the first between positions −255.0 and −245.0 mm" in finding.message


def test_missing_slices_in_a_series_no_protocol_asks_for_are_a_warning():
    mr = series(modality="MR", series_number=7, description="AX T2", repetition_time=4000, echo_time=100, skip=(5,))
    finding = only(check_timepoint([cap_protocol()], [cap_portal_venous(), mr]), "missing_slices")
    assert finding.severity == Severity.WARNING


def test_an_instance_number_gap_without_a_position_gap_is_a_warning():
    datasets = slices(30, description="CAP PV 5mm", body_part="CAP", contrast_agent="IOPAMIDOL", contrast_delay_s=70)
    for ds in datasets[15:]:
        ds.InstanceNumber += 3
    finding = only(
        check_timepoint([cap_protocol()], [series_info_from_datasets(datasets, study_day=42)]),
        "instance_numbers_not_contiguous",
    )
    assert finding.severity == Severity.WARNING
    assert finding.details["instance_numbers_absent"] == 3
    assert "though the slice positions show no gap" in finding.message


def test_a_multi_volume_series_is_not_mistaken_for_duplicates():
    dwi = series(modality="MR", description="DWI", b_values=[0, 800], repetition_time=5000, echo_time=70, n=20)
    assert check_timepoint([], [dwi]) == []


def test_an_image_sent_twice_is_a_duplicate_position_warning():
    finding = only(check_timepoint([cap_protocol()], [cap_portal_venous(duplicate=(40,))]), "duplicate_positions")
    assert finding.severity == Severity.WARNING
    assert finding.details["duplicate_images"] == 1


def test_uneven_spacing_is_a_warning_and_not_missing_slices():
    findings = check_timepoint([cap_protocol()], [cap_portal_venous(spacing_changes={50: 6.0, 51: 4.0})])
    finding = only(findings, "inconsistent_spacing")
    assert finding.severity == Severity.WARNING
    assert finding.details["largest_step_mm"] == 6.0
    assert finding.details["smallest_step_mm"] == 4.0
    assert "missing_slices" not in codes(findings)


def test_a_series_mixing_orientations_is_a_warning_and_its_largest_stack_is_checked():
    findings = check_timepoint(
        [cap_protocol()], [cap_portal_venous(orientations=dict.fromkeys(range(120, 130), CORONAL))]
    )
    finding = only(findings, "mixed_orientation")
    assert finding.severity == Severity.WARNING
    assert finding.details == {"orientations": 2, "images_checked": 120}
    assert "only its 120 axial images were checked" in finding.message
    assert "missing_slices" not in codes(findings)


# -- slice thickness ------------------------------------------------------------------------------------------


def test_slices_thicker_than_the_protocol_maximum_are_blocking():
    finding = only(
        check_timepoint([cap_protocol()], [cap_portal_venous(description="CAP PV 7mm", thickness=7.0, spacing=7.0)]),
        "slice_thickness_exceeded",
    )
    assert finding.severity == Severity.BLOCKING
    assert finding.details == {"slice_thickness_mm": 7.0, "max_slice_thickness_mm": 5.0}
    assert finding.message == (
        "Series 3 (CAP PV 7mm) has 7.0 mm slices, thicker than the 5.0 mm the protocol allows; "
        "please send a reconstruction of 5.0 mm or thinner."
    )


def test_a_thick_extra_reconstruction_next_to_a_thin_one_is_only_a_warning():
    thick = cap_portal_venous(series_number=5, description="CAP PV 10mm", thickness=10.0, spacing=10.0, n=65)
    finding = only(check_timepoint([cap_protocol()], [cap_portal_venous(), thick]), "slice_thickness_exceeded")
    assert finding.severity == Severity.WARNING
    assert "Series 3 (CAP PV 5mm) of the same kind is within the limit" in finding.message


def test_a_series_without_a_slice_thickness_is_a_warning():
    finding = only(check_timepoint([cap_protocol()], [cap_portal_venous(thickness=None)]), "slice_thickness_unknown")
    assert finding.severity == Severity.WARNING


# -- the visit window -----------------------------------------------------------------------------------------


def test_a_scan_outside_the_visit_window_is_blocking_and_says_the_day_and_the_window():
    finding = only(check_timepoint([cap_protocol()], [cap_portal_venous(study_day=52)]), "out_of_window")
    assert finding.severity == Severity.BLOCKING
    assert finding.message.startswith("The scan is on day 52 from baseline; Week 6 accepts days 35 to 49.")
    assert finding.details == {
        "study_day": 52,
        "earliest_day": 35,
        "latest_day": 49,
        "days_outside": 3,
        "series_count": 1,
        "target_day": 42,
    }


@pytest.mark.parametrize(("day", "outside"), [(34, True), (35, False), (49, False), (50, True)])
def test_the_window_includes_its_first_and_last_day(day, outside):
    findings = check_timepoint([cap_protocol()], [cap_portal_venous(study_day=day)])
    assert ("out_of_window" in codes(findings)) is outside


def test_a_scan_without_a_day_cannot_be_checked_against_the_window():
    finding = only(check_timepoint([cap_protocol()], [cap_portal_venous(study_day=None)]), "scan_day_unknown")
    assert finding.severity == Severity.WARNING


# -- modality, region, contrast -------------------------------------------------------------------------------


def test_no_contrast_series_when_contrast_is_required_is_blocking():
    plain = cap_portal_venous(description="CAP 5mm", contrast_agent=None, contrast_delay_s=None)
    finding = only(check_timepoint([cap_protocol()], [plain]), "contrast_missing")
    assert finding.severity == Severity.BLOCKING
    assert finding.series_uid is None
    assert "CT chest-abdomen-pelvis with contrast" in finding.message


def test_contrast_when_the_protocol_asks_for_none_is_a_warning():
    finding = only(check_timepoint([cap_protocol(contrast="none")], [cap_portal_venous()]), "contrast_unexpected")
    assert finding.severity == Severity.WARNING


def test_mr_when_ct_is_expected_is_modality_missing():
    mr = series(modality="MR", description="AX T1 POST", body_part="ABDOMEN", contrast_agent="GADOVIST")
    findings = check_timepoint([cap_protocol()], [mr])
    finding = only(findings, "modality_missing")
    assert finding.severity == Severity.BLOCKING
    assert finding.message.startswith("No CT series was received for this visit (only MR series arrived)")


def test_a_region_the_series_do_not_cover_is_blocking_and_named():
    chest = cap_portal_venous(description="CHEST PV 5mm", body_part="CHEST", n=60)
    finding = only(check_timepoint([cap_protocol()], [chest]), "region_missing")
    assert finding.severity == Severity.BLOCKING
    assert "cover the chest but not the abdomen and pelvis" in finding.message


def test_the_region_may_be_covered_by_several_series():
    chest = cap_portal_venous(series_number=3, description="CHEST PV 5mm", body_part="", n=60)
    abdomen = cap_portal_venous(series_number=4, description="ABD/PEL PV 5mm", body_part="", n=80, first_z=0.0)
    assert check_timepoint([cap_protocol()], [chest, abdomen]) == []


def test_a_series_whose_region_cannot_be_read_is_a_warning_not_a_missing_region():
    unknown = cap_portal_venous(description="PV 5mm", body_part="")
    findings = check_timepoint([cap_protocol()], [unknown])
    assert codes(findings) == ["region_unknown"]
    assert findings[0].severity == Severity.WARNING


def test_a_reviewers_label_replaces_the_rules_answer():
    plain = cap_portal_venous(description="CAP 5mm", contrast_agent=None, contrast_delay_s=None)
    assert "contrast_missing" in codes(check_timepoint([cap_protocol()], [plain]))
    corrected = {plain.series_uid: Classification.by_reviewer("ct.portal_venous", "cap")}
    assert check_timepoint([cap_protocol()], [plain], classifications=corrected) == []


# -- localizers -------------------------------------------------------------------------------------------------


def test_a_localizer_is_ignored_for_compliance():
    thick_scout = localizer(thickness=20.0, study_day=90)
    assert check_timepoint([cap_protocol()], [thick_scout, cap_portal_venous()]) == []


def test_a_timepoint_of_only_a_localizer_misses_its_modality():
    assert codes(check_timepoint([cap_protocol()], [localizer()])) == ["modality_missing"]


# -- the subject's baseline -----------------------------------------------------------------------------------


def test_a_different_scanner_model_from_baseline_is_a_warning_when_the_trial_asks_for_the_same():
    protocol = cap_protocol(same_scanner_as_baseline=True)
    baseline = [cap_portal_venous(model_name="Spiral 128", study_day=0)]
    now = cap_portal_venous(model_name="Helix 64")
    finding = only(check_timepoint([protocol], [now], baseline=baseline), "scanner_changed")
    assert finding.severity == Severity.WARNING
    assert "different scanner model than the subject's baseline CT" in finding.message
    assert "Helix" not in finding.message and "Spiral" not in finding.message
    assert check_timepoint([cap_protocol()], [now], baseline=baseline) == []


def test_the_same_model_on_another_unit_is_a_scanner_change_when_station_names_survive():
    protocol = cap_protocol(same_scanner_as_baseline=True)
    baseline = [cap_portal_venous(station_name="CT01", study_day=0)]
    finding = only(
        check_timepoint([protocol], [cap_portal_venous(station_name="CT02")], baseline=baseline), "scanner_changed"
    )
    assert "a different scanner (of the same model)" in finding.message
    # De-identified without device identity: no station names, nothing to compare.
    assert check_timepoint([protocol], [cap_portal_venous()], baseline=[cap_portal_venous(study_day=0)]) == []


def test_a_different_acquisition_protocol_from_baseline_is_a_warning():
    protocol = cap_protocol(same_scanner_as_baseline=True)
    baseline = [cap_portal_venous(protocol_name="ONCO CAP", study_day=0)]
    finding = only(
        check_timepoint([protocol], [cap_portal_venous(protocol_name="ROUTINE ABDOMEN")], baseline=baseline),
        "protocol_changed",
    )
    assert finding.severity == Severity.WARNING
    assert "ROUTINE" not in finding.message


# -- the values themselves -------------------------------------------------------------------------------------


def test_findings_come_blocking_first_then_by_series_number():
    bad = [
        cap_portal_venous(series_number=5, description="CAP ART 7mm", thickness=7.0, spacing=7.0, duplicate=(3,)),
        cap_portal_venous(series_number=3, skip=(20,)),
    ]
    findings = check_timepoint([cap_protocol()], bad)
    assert [(f.severity, f.code) for f in findings] == [
        (Severity.BLOCKING, "missing_slices"),
        (Severity.BLOCKING, "slice_thickness_exceeded"),
        (Severity.WARNING, "duplicate_positions"),
    ]


def test_a_finding_holds_only_known_codes_and_numeric_details():
    with pytest.raises(ValueError):
        Finding("made_up", Severity.WARNING, "x")
    with pytest.raises(TypeError):
        Finding("missing_slices", Severity.BLOCKING, "x", details={"patient": "KIM^MINJUN"})
    finding = Finding("missing_slices", "blocking", "x", details={"missing_slices": 2})
    assert finding.severity is Severity.BLOCKING
    assert finding.as_dict()["severity"] == "blocking"


def test_a_protocol_takes_the_models_decimal_and_refuses_unknown_values():
    assert ProtocolInfo("CT", "cap", "required", Decimal("5.00")).max_slice_thickness_mm == 5.0
    with pytest.raises(ValueError):
        ProtocolInfo("US", "cap")
    with pytest.raises(ValueError):
        ProtocolInfo("CT", "knee")
    with pytest.raises(ValueError):
        ProtocolInfo("CT", "cap", contrast="maybe")
    with pytest.raises(ValueError):
        ProtocolInfo("CT", "cap", window=(49, 35))


def test_no_finding_repeats_the_patients_name_or_id_from_the_headers():
    protocol = cap_protocol(same_scanner_as_baseline=True)
    # Sites sometimes type the patient's name into descriptions; de-identification cleans them, and QC
    # never reads the patient attributes. Every rule fires here.
    timepoint = [
        localizer(),
        cap_portal_venous(series_number=3, skip=(10, 11), duplicate=(40,), spacing_changes={90: 5.8}, study_day=60),
        cap_portal_venous(
            series_number=4, description="CHEST 7mm", thickness=7.0, spacing=7.0, model_name="X", study_day=60
        ),
        series(
            modality="MR", series_number=9, description="AX ABDOMEN", thickness=None, study_day=None, protocol_name="P2"
        ),
        cap_portal_venous(
            series_number=6, orientations=dict.fromkeys(range(5), CORONAL), station_name="B", study_day=60
        ),
    ]
    baseline = [cap_portal_venous(study_day=0, protocol_name="P1", station_name="A")]
    protocols = [protocol, ProtocolInfo("MR", "head", "none", 3.0, window=(35, 49), target_day=42)]
    findings = check_timepoint(protocols, timepoint, baseline=baseline)
    fired = set(codes(findings))
    assert {"missing_slices", "duplicate_positions", "inconsistent_spacing", "slice_thickness_exceeded"} <= fired
    assert {"out_of_window", "scanner_changed", "mixed_orientation", "region_missing", "scan_day_unknown"} <= fired
    forbidden = [PATIENT_NAME, PATIENT_ID, *PATIENT_NAME.split("^"), PATIENT_ID.split("-")[-1]]
    for finding in findings:
        text = f"{finding.message} {finding.details}"
        assert not any(value.lower() in text.lower() for value in forbidden), finding
        assert all(isinstance(v, int | float) for v in finding.details.values())
        assert finding.code in CODES


def test_a_finding_never_echoes_header_text_beyond_the_series_number_and_description():
    s = replace(
        cap_portal_venous(),
        manufacturer="Seoul Natl Univ Hosp",
        station_name="SNUH-CT-7",
        contrast_agent="IOPAMIDOL-SNUH",
    )
    baseline = [replace(cap_portal_venous(study_day=0), manufacturer="Busan Medical")]
    findings = check_timepoint([cap_protocol(same_scanner_as_baseline=True, contrast="none")], [s], baseline=baseline)
    assert findings
    assert not any("SNUH" in f.message or "Seoul" in f.message or "Busan" in f.message for f in findings)


def test_each_finding_keeps_its_template_so_a_korean_page_says_the_whole_specific_sentence():
    """The sentence names the series, positions and counts; in Korean the same facts are said in Korean."""
    import re

    from django.utils import translation

    from trials.forms import why_text

    mr = series(modality="MR", series_number=7, description="AX T2", repetition_time=4000, echo_time=100)
    thick = cap_portal_venous(series_number=5, description="CAP 8mm", thickness=8, spacing=8, n=75)
    findings = [
        only(check_timepoint([cap_protocol()], [cap_portal_venous(skip=(60, 61))]), "missing_slices"),
        only(check_timepoint([cap_protocol()], [mr]), "modality_missing"),
        only(check_timepoint([cap_protocol()], [thick]), "slice_thickness_exceeded"),
    ]
    for finding in findings:
        stored = finding.message.as_json()
        assert stored["template"] != str(finding.message) and stored["text"] == finding.message
        with translation.override("ko"):
            korean = why_text(stored)
        assert re.search("[가-힣]", korean), korean
        english_words = set(re.findall(r"[A-Za-z]{3,}", korean)) - {"CAP", "PV", "mm", "AX", "CT", "MR"}
        assert not english_words, korean
    with translation.override("ko"):
        korean = why_text(findings[0].message.as_json())
    assert "3" in korean and "CAP PV 5mm" in korean and "−5.0" in korean and "10.0" in korean and "2" in korean
