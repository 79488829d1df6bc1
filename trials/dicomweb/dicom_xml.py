"""DICOM JSON (PS3.18 F.2) as the Native DICOM Model of PS3.19 A.1: what a client asking for
`multipart/related; type="application/dicom+xml"` gets, one document per instance or match.

Written from the JSON the views already make (blinded where the root blinds), so both encodings always carry the
same attributes; the XML adds nothing the JSON does not hold.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.datadict import keyword_for_tag

XML_MEDIA_TYPE = "application/dicom+xml"
NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"  # the default namespace of PS3.19 A.1.6's schema
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
# Characters XML 1.0 cannot hold at all (a value with a control character keeps the rest of its text).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def dataset_xml(dataset: dict[str, Any]) -> bytes:
    """One data set (DICOM JSON) as a NativeDicomModel document."""
    body = "".join(_attributes(dataset))
    head = f'<NativeDicomModel xmlns="{NAMESPACE}" xml:space="preserve">'
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{head}{body}</NativeDicomModel>\n'.encode()


def _text(value: Any) -> str:
    text = _NOT_XML.sub("", str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(value: str) -> str:
    return _text(value).replace('"', "&quot;")


def _attributes(dataset: dict[str, Any]):
    for tag, element in sorted(dataset.items()):
        group, number = int(tag[:4], 16), int(tag[4:], 16)
        head = f'<DicomAttribute tag="{tag}" vr="{element.get("vr", "UN")}"'
        if group % 2 == 0:
            keyword = keyword_for_tag(int(tag, 16))
            head += f' keyword="{keyword}"' if keyword else ""
        elif number >= 0x1000:  # a private element names its block's creator (PS3.19 A.1.1)
            creator = dataset.get(f"{tag[:4]}00{tag[4:6]}", {}).get("Value", [""])[0]
            head += f' privateCreator="{_attr(creator)}"'
        content = "".join(_content(element))
        yield f"{head}>{content}</DicomAttribute>" if content else f"{head}/>"


def _content(element: dict[str, Any]):
    vr = element.get("vr")
    if "BulkDataURI" in element:
        yield f'<BulkData uri="{_attr(element["BulkDataURI"])}"/>'
    elif "InlineBinary" in element:
        yield f"<InlineBinary>{element['InlineBinary']}</InlineBinary>"
    for number, value in enumerate(element.get("Value", []), start=1):
        if vr == "SQ":
            yield f'<Item number="{number}">{"".join(_attributes(value or {}))}</Item>'
        elif vr == "PN":
            yield f'<PersonName number="{number}">{"".join(_person_name(value or {}))}</PersonName>'
        elif value is None:
            yield f'<Value number="{number}"/>'  # an empty value among others (F.2.5)
        else:
            yield f'<Value number="{number}">{_text(value)}</Value>'


def _person_name(name: dict[str, str]):
    for group in PN_GROUPS:
        if group not in name:
            continue
        parts = name[group].split("^")
        components = "".join(
            f"<{component}>{_text(part)}</{component}>"
            for component, part in zip(PN_COMPONENTS, parts, strict=False)
            if part
        )
        yield f"<{group}>{components}</{group}>"
