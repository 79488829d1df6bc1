"""The Annex E table, kept as data, compiled into one action per tag for a trial's options."""

from __future__ import annotations

import json

import pytest

from trials.deid import PROFILE_EDITION, DeidOptions
from trials.deid.profile import (
    CLEAN,
    DUMMY,
    EMPTY,
    KEEP,
    PSEUDONYM,
    REMOVE,
    SHIFT,
    TABLE_PATH,
    compile_profile,
    defined_by_dicom,
    parse_tag,
    profile_rows,
)

from .factories import BASIC


def _action(options: DeidOptions, tag: int) -> str:
    return compile_profile(options).rules[tag].action


def test_it_is_the_2024b_table_shipped_with_the_code():
    assert PROFILE_EDITION == "2024b"
    assert TABLE_PATH.name == "annex_e_2024b.json"
    assert len(json.loads(TABLE_PATH.read_text(encoding="utf-8"))) == len(profile_rows()) == 621


def test_the_table_is_read_once_per_process_and_an_undefined_tag_is_not_remembered():
    """Each option set compiles from the same rows, read once; whether DICOM defines a tag is asked of pydicom's
    dictionary each time, so that a file of made-up tags (anyone may send one) grows nothing in a worker."""
    assert profile_rows() is profile_rows()
    assert defined_by_dicom(0x00100010) and defined_by_dicom(0x60000010)  # Patient's Name; an overlay's Rows
    assert not defined_by_dicom(0x00300023)
    assert not hasattr(defined_by_dicom, "cache_info")


@pytest.mark.parametrize("options", [DeidOptions(), BASIC, DeidOptions(retain_device_identity=True)])
def test_every_row_of_the_table_is_covered_by_the_compiled_profile(options):
    profile = compile_profile(options)
    rows = profile_rows()
    exact = [parse_tag(row.tag) for row in rows if parse_tag(row.tag) is not None]
    assert len(exact) == len(set(exact)) == 617
    assert set(profile.rules) == set(exact)
    assert profile.rows_covered == len(rows)
    # The three repeating-group rows and the private row become group rules.
    assert profile.curve_action == REMOVE
    assert profile.overlay_action == REMOVE
    assert profile.private_action == REMOVE


def test_every_rule_is_one_of_the_actions_the_engine_applies():
    for options in (DeidOptions(), BASIC):
        for rule in compile_profile(options).rules.values():
            assert rule.action in {REMOVE, EMPTY, DUMMY, KEEP, CLEAN, "U", SHIFT, PSEUDONYM}
            assert rule.fallback in {REMOVE, EMPTY, DUMMY, KEEP, "U"}


def test_it_names_the_patient_with_the_subject_code():
    for tag in (0x00100010, 0x00100020, 0x00120040):
        assert _action(DeidOptions(), tag) == PSEUDONYM


def test_it_chooses_combined_actions_for_ct_and_mr_images():
    # X/Z/D: Type 1 in the Enhanced CT/MR Image modules -> dummy; Type 3 elsewhere -> removed.
    assert _action(BASIC, 0x0008002A) == DUMMY  # Acquisition DateTime
    assert _action(BASIC, 0x00181000) == DUMMY  # Device Serial Number (Enhanced General Equipment)
    assert _action(BASIC, 0x00080080) == REMOVE  # Institution Name
    assert _action(BASIC, 0x00081070) == REMOVE  # Operators' Name
    # Z/D: Type 2 -> empty; Content Date is Type 1 in multi-frame images -> dummy.
    assert _action(BASIC, 0x00180010) == EMPTY  # Contrast/Bolus Agent
    assert _action(BASIC, 0x00080023) == DUMMY  # Content Date
    # X/Z: Acquisition Context Sequence is Type 2 in Enhanced CT/MR.
    assert _action(BASIC, 0x00400555) == EMPTY
    assert _action(BASIC, 0x00081110) == REMOVE  # Referenced Study Sequence
    # X/Z/U*: references are kept, their UIDs remapped.
    assert _action(BASIC, 0x00081140) == KEEP
    assert _action(BASIC, 0x00082112) == KEEP


def test_modified_dates_shift_dated_rows_and_otherwise_the_basic_action_applies():
    assert _action(DeidOptions(), 0x00080020) == SHIFT  # Study Date
    assert _action(DeidOptions(), 0x00080030) == SHIFT  # Study Time (kept by the engine: whole-day shifts)
    assert _action(BASIC, 0x00080020) == EMPTY
    assert _action(BASIC, 0x00080021) == REMOVE


def test_device_identity_and_patient_characteristics_options_keep_their_rows():
    device = DeidOptions(retain_device_identity=True)
    patient = DeidOptions(retain_patient_characteristics=True)
    assert _action(device, 0x00181000) == KEEP  # Device Serial Number
    assert _action(device, 0x00081010) == KEEP  # Station Name
    assert _action(device, 0x00080055) == CLEAN  # Station AE Title
    assert _action(DeidOptions(), 0x00081010) == REMOVE
    assert _action(patient, 0x00100040) == KEEP  # Patient's Sex
    assert _action(patient, 0x00101010) == KEEP  # Patient's Age
    assert _action(patient, 0x00101030) == KEEP  # Patient's Weight
    assert _action(DeidOptions(), 0x00101010) == REMOVE


def test_device_identity_never_brings_back_a_real_date():
    device = DeidOptions(retain_device_identity=True)
    assert _action(device, 0x00181200) == SHIFT  # Date of Last Calibration
    assert (
        _action(DeidOptions(retain_device_identity=True, retain_longitudinal_modified_dates=False), 0x00181200)
        == REMOVE
    )


def test_clean_descriptors_cleans_descriptions_and_otherwise_removes_them():
    assert _action(DeidOptions(), 0x00081030) == CLEAN  # Study Description
    assert _action(DeidOptions(), 0x00400275) == CLEAN  # Request Attributes Sequence
    assert _action(BASIC, 0x00081030) == REMOVE


def test_descriptions_are_not_searched_for_in_the_output_but_names_ids_and_dates_are():
    rules = compile_profile(DeidOptions()).rules
    assert rules[0x00100010].searched  # Patient's Name
    assert rules[0x00080050].searched  # Accession Number
    assert rules[0x00080020].searched  # Study Date (the original date)
    assert rules[0x00080080].searched  # Institution Name
    assert not compile_profile(BASIC).rules[0x00081030].searched  # Study Description, even when removed
    assert not rules[0x00102160].searched  # Ethnic Group: a characteristic, not an identifier
