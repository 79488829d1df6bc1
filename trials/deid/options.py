"""A trial's de-identification options (PS3.15 Annex E options chosen per trial)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.uid import (
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


@dataclass(frozen=True)
class DeidOptions:
    """Which Annex E options a trial applies on top of the Basic Profile.

    `private_tag_safelist` holds ``(private creator, element)`` pairs; `element` is the element's offset in
    its private block (``0x10`` for ``(0019,xx10)``); a full element number is accepted and reduced to it.
    """

    retain_longitudinal_modified_dates: bool = True
    clean_descriptors: bool = True
    retain_device_identity: bool = False
    retain_patient_characteristics: bool = False
    private_tag_safelist: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    accepted_sop_classes: frozenset[str] = CT_MR_SOP_CLASSES

    def __post_init__(self) -> None:
        safelist = frozenset(
            (str(creator).strip(), int(element) & 0xFF) for creator, element in self.private_tag_safelist
        )
        object.__setattr__(self, "private_tag_safelist", safelist)
        object.__setattr__(self, "accepted_sop_classes", frozenset(str(uid) for uid in self.accepted_sop_classes))
