"""The coded finding sites a reader names a lesion's location from (SNOMED CT, as in DICOM's anatomic CIDs).

Every code here is checked against pydicom's SR code dictionary by the tests. All lymph node stations count
as one organ for RECIST's two-targets-per-organ limit (``node`` is True for them).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Site:
    code: str  # SCT concept id
    meaning: str  # the SCT code meaning written into the SR
    label: str  # what the reader sees (translated)
    node: bool = False


SITES: tuple[Site, ...] = (
    Site("39607008", "Lung", _("Lung")),
    Site("10200004", "Liver", _("Liver")),
    Site("3120008", "Pleura", _("Pleura")),
    Site("72410000", "Mediastinum", _("Mediastinum")),
    Site("78904004", "Chest wall", _("Chest wall")),
    Site("23451007", "Adrenal gland", _("Adrenal gland")),
    Site("64033007", "Kidney", _("Kidney")),
    Site("15776009", "Pancreas", _("Pancreas")),
    Site("78961009", "Spleen", _("Spleen")),
    Site("28231008", "Gallbladder", _("Gallbladder")),
    Site("69695003", "Stomach", _("Stomach")),
    Site("32849002", "Esophagus", _("Oesophagus")),
    Site("30315005", "Small intestine", _("Small intestine")),
    Site("71854001", "Colon", _("Colon")),
    Site("34402009", "Rectum", _("Rectum")),
    Site("27398004", "Omentum", _("Omentum")),
    Site("89837001", "Bladder", _("Bladder")),
    Site("35039007", "Uterus", _("Uterus")),
    Site("15497006", "Ovary", _("Ovary")),
    Site("41216001", "Prostate", _("Prostate")),
    Site("76752008", "Breast", _("Breast")),
    Site("69748006", "Thyroid", _("Thyroid")),
    Site("12738006", "Brain", _("Brain")),
    Site("272673000", "Bone", _("Bone")),
    Site("71616004", "Muscle", _("Muscle")),
    Site("87784001", "Soft tissue", _("Soft tissue")),
    Site("39937001", "Skin", _("Skin")),
    Site("59441001", "Lymph node", _("Lymph node"), node=True),
    Site("81105003", "Cervical lymph node", _("Lymph node, cervical"), node=True),
    Site("76838003", "Supraclavicular lymph node", _("Lymph node, supraclavicular"), node=True),
    Site("68171009", "Axillary lymph node", _("Lymph node, axillary"), node=True),
    Site("62683002", "Mediastinal lymph node", _("Lymph node, mediastinal"), node=True),
    Site("53074004", "Hilar lymph node", _("Lymph node, hilar"), node=True),
    Site("818991007", "Abdominal lymph node", _("Lymph node, abdominal"), node=True),
    Site("91394001", "Retroperitoneal lymph node", _("Lymph node, retroperitoneal"), node=True),
    Site("54268001", "Pelvic lymph node", _("Lymph node, pelvic"), node=True),
    Site("84219008", "Iliac lymph node", _("Lymph node, iliac"), node=True),
    Site("8928004", "Inguinal lymph node", _("Lymph node, inguinal"), node=True),
)

BY_CODE: dict[str, Site] = {site.code: site for site in SITES}


def site_options() -> list[dict]:
    """The list the read page offers, in the reader's language."""
    return [{"code": s.code, "meaning": str(s.label), "node": s.node} for s in SITES]
