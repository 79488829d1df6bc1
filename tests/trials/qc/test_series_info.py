"""Building a SeriesInfo from headers: what is read, and what is refused."""

from __future__ import annotations

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from trials.qc import series_info_from_datasets, series_info_from_dicom_json

from .factories import PATIENT_ID, PATIENT_NAME, slices


def test_it_reads_the_series_from_its_slices():
    datasets = slices(10, description="CAP PV 5mm", body_part="CAP", contrast_agent="IOPAMIDOL", contrast_delay_s=70)
    s = series_info_from_datasets(list(reversed(datasets)), study_day=42)
    assert [i.instance_number for i in s.instances] == list(range(1, 11))
    assert (s.modality, s.series_number, s.description, s.body_part) == ("CT", 3, "CAP PV 5mm", "CAP")
    assert s.contrast_delay_seconds == 70
    assert s.acquisition_time == "101610"  # the earliest slice's
    assert s.study_day == 42


def test_it_holds_nothing_identifying():
    s = series_info_from_datasets(slices(3), study_day=0)
    assert PATIENT_NAME not in repr(s) and PATIENT_ID not in repr(s)


def test_it_refuses_no_datasets_and_datasets_of_two_series():
    with pytest.raises(ValueError):
        series_info_from_datasets([])
    with pytest.raises(ValueError, match="2 series"):
        series_info_from_datasets(slices(2, series_number=3) + slices(2, series_number=4))


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_a_bad_value_in_one_header_does_not_stop_the_series():
    datasets = slices(3)
    # As read from a file a broken scanner wrote: the value is decoded only when asked for.
    datasets[1][0x00180050] = RawDataElement(Tag(0x00180050), "DS", 3, b"abc", 0, False, True)
    datasets[2].ImagePositionPatient = ["1", "2"]  # two values where three belong
    s = series_info_from_datasets(datasets)
    assert s.instances[1].slice_thickness is None
    assert s.instances[2].image_position is None


def test_it_reads_the_dicom_json_of_each_instance():
    datasets = slices(4, modality="MR", description="DWI", b_values=[0, 1000], repetition_time=5000, echo_time=70)
    s = series_info_from_dicom_json([ds.to_json_dict() for ds in datasets], study_day=3)
    assert s == series_info_from_datasets(datasets, study_day=3)
    assert s.diffusion_b_values == (0.0, 1000.0)
    assert s.image_count == 8


@pytest.mark.filterwarnings("error")
def test_bulk_data_references_in_the_dicom_json_are_read_as_empty_values_without_fetching_or_warning():
    datasets = slices(2, modality="MR", description="DWI", b_values=[0, 1000], repetition_time=5000, echo_time=70)
    items = [ds.to_json_dict() for ds in datasets]
    for n, item in enumerate(items):  # as a DICOMweb server answers: the pixels and a long value by reference
        item["7FE00010"] = {"vr": "OW", "BulkDataURI": f"https://pacs.example/instances/{n}/bulkdata/7FE00010"}
        item["00081115"] = {"vr": "SQ", "Value": [{"00091001": {"vr": "OB", "BulkDataURI": "https://pacs.example/b"}}]}
    s = series_info_from_dicom_json(items, study_day=3)
    assert s == series_info_from_dicom_json([ds.to_json_dict() for ds in datasets], study_day=3)
    assert s.diffusion_b_values == (0.0, 1000.0)


def test_values_in_the_dicom_json_that_qc_cannot_use_count_as_absent():
    datasets = slices(3)
    items = [ds.to_json_dict() for ds in datasets]
    items[0]["00180050"] = {"vr": "DS", "Value": ["abc"]}  # a thickness that is no number
    items[1]["00200032"] = {"vr": "DS", "Value": [1.0, 2.0]}  # two values where three belong
    items[2]["00200032"] = {"vr": "DS", "Value": [1.0, None, 3.0]}  # an empty value among three
    items[2]["00180050"] = {"vr": "DS"}  # present, no value
    items[0]["00080070"] = {"vr": "LO", "InlineBinary": "QUNNRQ=="}  # bulk data where text belongs
    s = series_info_from_dicom_json(items)
    assert [i.slice_thickness for i in s.instances] == [None, 5.0, None]
    assert [i.image_position for i in s.instances] == [(-180.0, -180.0, -300.0), None, None]
    assert s.manufacturer == "ACME Medical"  # from the next slice that has one


def test_a_person_name_in_the_dicom_json_is_read_as_its_alphabetic_form():
    from trials.qc.series import JsonHeader, _text

    item = {"00081050": {"vr": "PN", "Value": [{"Alphabetic": "Reader^Ann"}, {"Alphabetic": "Reader^Bo"}]}}
    assert _text(JsonHeader(item), "PerformingPhysicianName") == "Reader^Ann\\Reader^Bo"
    assert _text(JsonHeader(item), "NoSuchKeyword") == ""


@pytest.mark.parametrize("value", ["²²²²²²", "10²000", "103000.²", "1030", "103000.5"])
def test_a_time_with_digits_int_does_not_read_is_unreadable_not_an_error(value):
    """A scanner's TM in Latin-1 may hold a superscript digit (str.isdigit() says yes, int() refuses it)."""
    from trials.qc.series import tm_seconds

    expected = {"1030": 37800.0, "103000.5": 37800.5}.get(value)
    assert tm_seconds(value) == expected
