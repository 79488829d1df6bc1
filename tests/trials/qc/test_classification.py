"""Series classification on synthesized series: one test (or case) per rule, and the body region."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trials.qc import Classification, classify_series

from .factories import series


def kind_of(**kwargs) -> Classification:
    return classify_series(series(n=5, **kwargs))


# -- CT phase ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "description",
    ["AX NC 5mm", "CT ABD PLAIN", "Pre-contrast 5mm", "CHEST W/O", "Non-contrast", "ABD C-", "비조영 5mm"],
)
def test_a_description_saying_non_contrast_makes_it_ct_non_contrast_even_with_an_agent_recorded(description):
    result = kind_of(description=description, contrast_agent="IOPAMIDOL")
    assert result.kind == "ct.non_contrast"
    assert result.confidence >= 0.85
    assert "ct-non-contrast-words" in result.reasons[0]


def test_a_ct_with_no_contrast_recorded_anywhere_is_non_contrast_with_less_confidence():
    result = kind_of(description="AX 5mm")
    assert result.kind == "ct.non_contrast"
    assert 0.5 <= result.confidence < 0.85


@pytest.mark.parametrize("description", ["ART 1.25mm", "Late arterial", "CTA chest", "AX 35s"])
def test_a_description_naming_the_arterial_phase_makes_it_ct_arterial(description):
    assert kind_of(description=description, contrast_agent="IOPAMIDOL").kind == "ct.arterial"


@pytest.mark.parametrize("description", ["PV 5mm", "Portal venous", "AX 70s", "Venous phase", "문맥기 5mm"])
def test_a_description_naming_the_portal_venous_phase_makes_it_ct_portal_venous(description):
    assert kind_of(description=description, contrast_agent="IOPAMIDOL").kind == "ct.portal_venous"


@pytest.mark.parametrize("description", ["Delayed 3min", "DELAY", "Excretory phase", "AX 5 min"])
def test_a_description_naming_a_delayed_phase_makes_it_ct_delayed(description):
    assert kind_of(description=description, contrast_agent="IOPAMIDOL").kind == "ct.delayed"


@pytest.mark.parametrize(
    ("delay", "kind"),
    [
        (30, "ct.arterial"),
        (15, "ct.arterial"),
        (70, "ct.portal_venous"),
        (90, "ct.portal_venous"),
        (180, "ct.delayed"),
        (120, "ct.delayed"),
    ],
)
def test_the_delay_from_bolus_start_to_acquisition_gives_the_phase(delay, kind):
    result = kind_of(description="AX 2mm", contrast_agent="IOPAMIDOL", contrast_delay_s=delay)
    assert result.kind == kind
    assert result.confidence == pytest.approx(0.8)
    assert f"delay {delay} s" in result.reasons[0]


def test_a_delay_between_the_typical_phases_gives_a_phase_with_lower_confidence():
    result = kind_of(description="AX 2mm", contrast_agent="IOPAMIDOL", contrast_delay_s=100)
    assert result.kind == "ct.portal_venous"
    assert result.confidence < 0.6


def test_a_series_acquired_before_the_bolus_started_is_non_contrast():
    assert kind_of(description="AX 5mm", contrast_agent="IOPAMIDOL", contrast_delay_s=-40).kind == "ct.non_contrast"


def test_a_bolus_timed_across_midnight_still_gives_the_short_delay():
    s = replace(
        series(n=5, description="AX 5mm", contrast_agent="IOPAMIDOL"),
        contrast_start_time="235930",
        acquisition_time="000040",
    )
    assert s.contrast_delay_seconds == 70
    assert classify_series(s).kind == "ct.portal_venous"


def test_contrast_recorded_without_a_phase_is_ct_contrast_with_half_confidence():
    result = kind_of(description="AX 5mm", contrast_agent="OMNIPAQUE")
    assert result.kind == "ct.contrast"
    assert result.confidence == pytest.approx(0.5)
    assert result.contrast is True


def test_a_description_mentioning_contrast_without_a_phase_is_ct_contrast():
    assert kind_of(description="CT CAP with contrast").kind == "ct.contrast"
    assert kind_of(description="복부 조영 5mm").kind == "ct.contrast"


@pytest.mark.parametrize("agent", ["", "NONE", "No", "N/A"])
def test_an_agent_field_saying_none_is_no_contrast(agent):
    assert kind_of(description="AX 5mm", contrast_agent=agent).kind == "ct.non_contrast"


def test_a_localizer_is_known_by_its_image_type_or_its_name():
    by_type = kind_of(description="AX", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    by_name = kind_of(description="Topogram 0.6 T20s")
    assert by_type.kind == by_name.kind == "localizer"
    assert by_type.label() == "Localizer"


# -- MR sequence ------------------------------------------------------------------------------------------------


def mr(**kwargs) -> Classification:
    return kind_of(modality="MR", **({"description": "AX"} | kwargs))


def test_a_short_tr_and_te_make_it_mr_t1():
    result = mr(repetition_time=500, echo_time=12)
    assert result.kind == "mr.t1"
    assert "TR 500 ms" in result.reasons[0]


def test_a_long_tr_and_te_make_it_mr_t2():
    assert mr(repetition_time=4000, echo_time=100).kind == "mr.t2"


def test_an_inversion_time_of_fluid_with_a_long_tr_makes_it_mr_flair():
    result = mr(repetition_time=9000, echo_time=120, inversion_time=2500, scanning_sequence="IR")
    assert result.kind == "mr.flair"


@pytest.mark.parametrize("description", ["AX T2 FLAIR", "t2_tirm_tra_dark-fluid", "FLAIR 3D"])
def test_a_description_naming_flair_makes_it_mr_flair(description):
    assert mr(description=description, repetition_time=4000, echo_time=100).kind == "mr.flair"


def test_b_values_above_zero_make_it_mr_dwi():
    result = mr(b_values=[0, 1000], repetition_time=5000, echo_time=70)
    assert result.kind == "mr.dwi"
    assert "b-value 1000" in result.reasons[0]


@pytest.mark.parametrize("description", ["ep2d_diff_b50_800", "DWI b1000", "Diffusion"])
def test_a_description_naming_diffusion_makes_it_mr_dwi(description):
    assert mr(description=description).kind == "mr.dwi"


def test_adc_in_the_image_type_makes_it_mr_adc():
    result = mr(image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"), b_values=[1000])
    assert result.kind == "mr.adc"
    assert result.confidence >= 0.9


def test_a_description_naming_adc_makes_it_mr_adc():
    assert mr(description="ep2d_diff_ADC").kind == "mr.adc"


def test_a_t1_with_a_contrast_agent_recorded_is_post_contrast():
    result = mr(repetition_time=500, echo_time=12, contrast_agent="GADOVIST")
    assert result.kind == "mr.t1_post_contrast"
    assert result.label() == "MR T1 post-contrast"


@pytest.mark.parametrize("description", ["AX T1 +C", "T1 POST GAD", "t1_vibe_fs_tra_post", "T1W CE"])
def test_a_t1_description_saying_post_contrast_makes_it_post_contrast(description):
    assert mr(description=description).kind == "mr.t1_post_contrast"


def test_a_t1_described_as_pre_contrast_stays_t1_though_the_agent_is_recorded():
    assert mr(description="AX T1 PRE", repetition_time=500, echo_time=12, contrast_agent="GADOVIST").kind == "mr.t1"


def test_short_tr_and_te_with_a_post_description_are_post_contrast():
    assert mr(description="AX POST", repetition_time=450, echo_time=10).kind == "mr.t1_post_contrast"


def test_an_inversion_prepared_gradient_echo_is_t1():
    assert mr(description="sag 3D", repetition_time=2300, echo_time=3, inversion_time=900).kind == "mr.t1"


@pytest.mark.parametrize("description", ["SWI", "AX T2*", "COR STIR"])
def test_sequences_outside_the_set_are_mr_other(description):
    assert mr(description=description, repetition_time=4000, echo_time=100).kind == "mr.other"


def test_an_mr_series_no_rule_recognises_is_mr_other_with_low_confidence():
    result = mr(description="AX", repetition_time=1500, echo_time=40)
    assert result.kind == "mr.other"
    assert result.confidence <= 0.2


def test_a_modality_without_rules_is_unknown_with_no_confidence():
    result = kind_of(modality="PT", description="WB PET")
    assert result.kind == "unknown"
    assert result.confidence == 0.0
    assert result.region == "whole_body"


# -- body region ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body_part", "description", "region"),
    [
        ("CHEST_TO_PELVIS", "AX 5mm", "cap"),
        ("", "CT TAP 5mm", "cap"),
        ("", "CAP PV 5mm", "cap"),
        ("", "Thorax Abdomen Pelvis", "cap"),
        ("", "CHEST ABD PELVIS", "cap"),
        ("CHEST", "CAP PV", "cap"),  # the description is the series' own; BodyPartExamined is often the exam's
        ("ABDOMEN", "CHEST 5mm", "chest"),
        ("", "ABD/PEL PV", "abdomen_pelvis"),
        ("ABDOMENPELVIS", "AX 5mm", "abdomen_pelvis"),
        ("HEAD", "AX 5mm", "head"),
        ("", "Brain routine", "head"),
        ("", "Whole body", "whole_body"),
        ("", "흉부 복부 골반 문맥기", "cap"),
        ("", "AX 5mm", ""),
    ],
)
def test_the_region_comes_from_the_description_then_the_body_part(body_part, description, region):
    assert kind_of(body_part=body_part, description=description).region == region


def test_the_region_from_the_protocol_name_is_used_when_the_description_has_none():
    result = kind_of(description="AX 5mm", protocol_name="CHEST ROUTINE", body_part="ABDOMEN")
    assert result.region == "chest"
    assert "from the protocol name" in result.reasons[-1]


def test_a_body_part_outside_the_vocabulary_gives_no_region_and_says_so():
    result = kind_of(body_part="EXTREMITY", description="AX 5mm")
    assert result.region == ""
    assert "EXTREMITY" in result.reasons[-1]


# -- the Classification value -----------------------------------------------------------------------------------


def test_a_classification_refuses_an_unknown_kind_region_or_confidence():
    with pytest.raises(ValueError):
        Classification("ct.bogus")
    with pytest.raises(ValueError):
        Classification("ct.arterial", region="knee")
    with pytest.raises(ValueError):
        Classification("ct.arterial", confidence=1.5)


def test_a_reviewer_correction_is_certain_and_says_who_set_it():
    corrected = Classification.by_reviewer("ct.portal_venous", "cap")
    assert corrected.confidence == 1.0
    assert corrected.label() == "CT portal venous"
    assert corrected.modality == "CT"
    assert "reviewer" in corrected.reasons[0]
