"""A trial's de-identification options (PS3.15 Annex E options chosen per trial)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    MRImageStorage,
)

CT_MR_SOP_CLASSES = frozenset(
    {
        CTImageStorage,
        EnhancedCTImageStorage,
        LegacyConvertedEnhancedCTImageStorage,
        MRImageStorage,
        EnhancedMRImageStorage,
        LegacyConvertedEnhancedMRImageStorage,
    }
)


REJECT, REDACT = "reject", "redact"
BURNED_IN_TEXT_CHOICES = (REJECT, REDACT)


@dataclass(frozen=True)
class DeidOptions:
    """Which Annex E options a trial applies on top of the Basic Profile.

    `burned_in_text` is REJECT or REDACT. `private_tag_safelist` holds ``(private creator, element)`` pairs; `element` is the element's offset in
    its private block (``0x10`` for ``(0019,xx10)``); a full element number is accepted and reduced to it.
    """

    retain_longitudinal_modified_dates: bool = True
    clean_descriptors: bool = True
    retain_device_identity: bool = False
    retain_patient_characteristics: bool = False
    private_tag_safelist: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    accepted_sop_classes: frozenset[str] = CT_MR_SOP_CLASSES
    # Attributes whose purpose is identifying text (profile.IDENTIFYING_TEXT) are removed unless named here
    # by keyword; named ones are cleaned like every kept text value.
    kept_text_attributes: frozenset[str] = field(default_factory=frozenset)
    # What happens to an instance with text detected in its pixels: REJECT it, or REDACT the text regions.
    burned_in_text: str = "reject"

    def __post_init__(self) -> None:
        if self.burned_in_text not in BURNED_IN_TEXT_CHOICES:
            raise ValueError(f"burned_in_text is one of {', '.join(BURNED_IN_TEXT_CHOICES)}")
        object.__setattr__(self, "kept_text_attributes", frozenset(str(k) for k in self.kept_text_attributes))
        safelist = frozenset(
            (str(creator).strip(), int(element) & 0xFF) for creator, element in self.private_tag_safelist
        )
        object.__setattr__(self, "private_tag_safelist", safelist)
        object.__setattr__(self, "accepted_sop_classes", frozenset(str(uid) for uid in self.accepted_sop_classes))


def sop_class_rejection(sop_class_uid: str, accepted: frozenset[str] = CT_MR_SOP_CLASSES) -> str | None:
    """Why an instance of `sop_class_uid` is not accepted by a trial accepting `accepted`, or None.

    Structured reports, RT structure sets, segmentations, presentation states and other non-image objects
    are "not an image this trial accepts" (unless the trial lists their class); an image of another kind
    (ultrasound, secondary capture) names the kinds the trial takes. The sentence holds no instance value.
    """
    if sop_class_uid and sop_class_uid in accepted:
        return None
    names = [UID(uid).name for uid in accepted]
    kinds = [kind for kind in ("CT", "MR") if any(f"{kind} Image" in n for n in names)]
    takes = " and ".join(kinds) + " images" if kinds else "other kinds of images"
    if not sop_class_uid:
        return f"An image without a SOP Class UID is not accepted: this trial takes {takes}."
    name = UID(sop_class_uid).name
    if "Image" not in name:
        return f"{name} is not an image this trial accepts: this trial takes {takes}."
    return f"{name} is not accepted: this trial takes {takes}."
