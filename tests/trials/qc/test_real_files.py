"""pydicom's and pydicom-data's real CT and MR files: sensible kinds and regions, or "unknown"-ish with low
confidence where the headers say nothing, and no crash on enhanced multi-frame instances."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file

from trials.qc import (
    ProtocolInfo,
    Severity,
    check_timepoint,
    classify_series,
    series_info_from_datasets,
    series_info_from_dicom_json,
)


def read(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name)
    assert path, f"{name} is part of pydicom / pydicom-data"
    return pydicom.dcmread(path, stop_before_pixels=True)


def test_ct_small_is_a_contrast_ct_of_unstated_phase_and_region():
    # GE header with ContrastBolusAgent ISOVUE300/100 and nothing else: no description, body part or timing.
    s = series_info_from_datasets([read("CT_small.dcm")])
    result = classify_series(s)
    assert (result.kind, result.region) == ("ct.contrast", "")
    assert result.confidence <= 0.5
    assert s.slice_thickness == 5.0
    assert s.instances[0].image_position == pytest.approx((-158.135803, -179.035797, -75.699997))


def test_mr_small_is_a_t2_from_its_sequence_parameters():
    # Toshiba spin echo, TR 4000 ms, TE 240 ms, no description.
    s = series_info_from_datasets([read("MR_small.dcm")])
    result = classify_series(s)
    assert result.kind == "mr.t2"
    assert (s.repetition_time, s.echo_time, s.scanning_sequence) == (4000.0, 240.0, "SE")


def test_693_unci_is_a_non_contrast_ct_by_its_plain_description():
    # SeriesDescription "5/5mm Plain", ImageType with a padded "DERIVED ".
    s = series_info_from_datasets([read("693_UNCI.dcm")])
    assert s.image_type == ("DERIVED", "PRIMARY", "AXIAL")
    result = classify_series(s)
    assert result.kind == "ct.non_contrast"
    assert result.region == ""


def test_emri_small_is_a_head_t1_without_per_frame_groups():
    # An Enhanced MR instance of 10 frames whose functional groups were stripped: no positions to check.
    s = series_info_from_datasets([read("emri_small.dcm")])
    assert s.image_count == 10
    assert all(i.image_position is None for i in s.instances)
    result = classify_series(s)
    assert (result.kind, result.region) == ("mr.t1", "head")
    findings = check_timepoint([ProtocolInfo("MR", "head", "either", 3.0)], [s])
    assert [f.code for f in findings] == ["slice_thickness_unknown"]


def test_ect_supplemental_takes_positions_and_thickness_from_its_functional_groups():
    # Enhanced CT perfusion map: 2 frames, positions per frame 10 mm apart, 10 mm thickness shared,
    # contrast agent coded (Iohexol, administered), anatomy coded as Brain.
    s = series_info_from_datasets([read("eCT_Supplemental.dcm")])
    assert [i.image_position for i in s.instances] == [(99.5, -301.5, -159.0), (99.5, -301.5, -149.0)]
    assert {i.slice_thickness for i in s.instances} == {10.0}
    assert s.has_contrast_agent
    result = classify_series(s)
    assert (result.kind, result.region) == ("ct.contrast", "head")
    findings = check_timepoint([ProtocolInfo("CT", "head", "required", 5.0)], [s])
    assert [(f.code, f.severity) for f in findings] == [("slice_thickness_exceeded", Severity.BLOCKING)]


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small.dcm", "693_UNCI.dcm", "emri_small.dcm", "eCT_Supplemental.dcm"]
)
def test_the_dicom_json_the_server_keeps_gives_the_same_series_as_the_dataset(name):
    ds = read(name)
    metadata = ds.to_json_dict(bulk_data_threshold=1 << 30)
    assert series_info_from_dicom_json([metadata], study_day=7) == series_info_from_datasets([ds], study_day=7)


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small.dcm", "693_UNCI.dcm", "emri_small.dcm", "eCT_Supplemental.dcm"]
)
def test_a_single_real_image_is_left_out_of_compliance_not_failed(name):
    s = series_info_from_datasets([read(name)], study_day=42)
    protocol = ProtocolInfo(s.modality, "head", "either", 20.0, window=(35, 49))
    findings = check_timepoint([protocol], [s])
    if s.image_count == 1:
        assert [f.code for f in findings] == ["modality_missing"]
    assert all(f.code != "missing_slices" for f in findings)


def _image_headers() -> list[tuple[str, pydicom.Dataset]]:
    """Every image in pydicom's and pydicom-data's test files whose header pydicom reads and writes as JSON.

    Those installed, never the network: `get_testdata_files` also tries to download each of pydicom-data's files
    it has no cache of (the same files the installed package holds), which took 10 s to fail here, offline."""
    from unittest import mock

    from pydicom.data import get_testdata_files

    def offline(name):
        raise OSError(f"{name}: not downloaded in tests")

    with mock.patch("pydicom.data.data_manager.data_path_with_download", offline):
        paths = get_testdata_files("*.dcm")
    headers = []
    for path in sorted(paths):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            ds.to_json_dict(bulk_data_threshold=1 << 30)
        except Exception:  # noqa: S112 - files that test pydicom's own error handling
            continue
        if "Modality" in ds and ("Rows" in ds or "SharedFunctionalGroupsSequence" in ds):
            headers.append((path.rsplit("/", 1)[-1], ds))
    return headers


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_real_image_gives_the_same_series_from_its_dicom_json_as_from_its_dataset():
    # The JSON is read where it lies, not made into a dataset: each value must come out as pydicom gives it.
    headers = _image_headers()
    assert len(headers) >= 50, [name for name, _ in headers]
    differ = [
        name
        for name, ds in headers
        if series_info_from_dicom_json([ds.to_json_dict(bulk_data_threshold=1 << 30)], study_day=3)
        != series_info_from_datasets([ds], study_day=3)
    ]
    assert differ == []
