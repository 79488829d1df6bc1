"""define.xml (CDISC Define-XML 2.0, on ODM 1.3.2) describing the SDTM datasets of a transfer. No Django.

Each dataset is an ItemGroupDef pointing at its transport file (def:leaf); each variable an ItemDef with its
type, stored length, label, origin and code list; code lists with their decodes; the derivations as MethodDefs.
Written with the standard library's ElementTree: the document is small and its shape fixed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

from . import sdtm
from .sdtm import METHODS, Dataset

ODM = "http://www.cdisc.org/ns/odm/v1.3"
DEF = "http://www.cdisc.org/ns/def/v2.0"
XLINK = "http://www.w3.org/1999/xlink"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

ET.register_namespace("", ODM)
ET.register_namespace("def", DEF)
ET.register_namespace("xlink", XLINK)


def _o(tag: str) -> str:
    return f"{{{ODM}}}{tag}"


def _d(tag: str) -> str:
    return f"{{{DEF}}}{tag}"


# What XML 1.0 cannot hold: C0 controls but tab, line feed and carriage return, surrogates, U+FFFE and U+FFFF.
# ElementTree writes them as they are, and the document no longer parses.
_NOT_XML = re.compile(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+")


def _xml_text(text: str) -> str:
    """Free text (the trial's title, protocol number) as XML 1.0 can hold it: characters it cannot hold become
    spaces, and runs of white space one space."""
    return " ".join(_NOT_XML.sub(" ", text).split())


def _description(parent: ET.Element, text: str) -> None:
    translated = ET.SubElement(ET.SubElement(parent, _o("Description")), _o("TranslatedText"))
    translated.set(XML_LANG, "en")
    translated.text = text


def _oid(*parts: str) -> str:
    return ".".join(p.replace(" ", "_").replace("/", "_") for p in parts)


def define_xml(
    *,
    study_oid: str,
    study_name: str,
    study_description: str,
    protocol_name: str,
    datasets: list[Dataset],
    files: dict[str, str],
    created: datetime,
    originator: str = "CTIMS",
) -> bytes:
    """The define.xml of `datasets`; `files` names each dataset's transport file (relative to define.xml).

    `created` is the document's CreationDateTime: give the time the data stand at, so that the same data give
    the same document.
    """
    study_name, study_description, protocol_name = map(_xml_text, (study_name, study_description, protocol_name))
    root = ET.Element(
        _o("ODM"),
        {
            "FileType": "Snapshot",
            "FileOID": _oid("DEFINE", study_oid),
            "CreationDateTime": created.replace(microsecond=0).isoformat(),
            "ODMVersion": "1.3.2",
            "Originator": originator,
            "SourceSystem": "CTIMS",
        },
    )
    study = ET.SubElement(root, _o("Study"), {"OID": _oid("STUDY", study_oid)})
    globals_ = ET.SubElement(study, _o("GlobalVariables"))
    ET.SubElement(globals_, _o("StudyName")).text = study_name
    ET.SubElement(globals_, _o("StudyDescription")).text = study_description
    ET.SubElement(globals_, _o("ProtocolName")).text = protocol_name
    mdv = ET.SubElement(
        study,
        _o("MetaDataVersion"),
        {
            "OID": _oid("MDV", study_oid),
            "Name": f"{study_name} SDTM tumour response",
            "Description": "Independent central review: RECIST 1.1 tumour identification, results and response",
            _d("DefineVersion"): "2.0.0",
            _d("StandardName"): "SDTM-IG",
            _d("StandardVersion"): "3.2",
        },
    )
    used_codelists: list[str] = []
    used_methods: list[str] = []
    items = []
    for dataset in datasets:
        domain = dataset.domain
        group = ET.SubElement(
            mdv,
            _o("ItemGroupDef"),
            {
                "OID": _oid("IG", domain.name),
                "Domain": domain.name,
                "Name": domain.name,
                "Repeating": "Yes",
                "IsReferenceData": "No",
                "SASDatasetName": domain.name,
                "Purpose": "Tabulation",
                _d("Structure"): domain.structure,
                _d("Class"): "FINDINGS",
                _d("ArchiveLocationID"): _oid("LF", domain.name),
            },
        )
        _description(group, domain.label)
        for n, variable in enumerate(domain.variables, start=1):
            ref = {
                "ItemOID": _oid("IT", domain.name, variable.name),
                "OrderNumber": str(n),
                "Mandatory": "Yes" if variable.mandatory else "No",
            }
            if variable.name in domain.keys:
                ref["KeySequence"] = str(domain.keys.index(variable.name) + 1)
            if variable.method:
                ref["MethodOID"] = _oid("MT", variable.method)
                if variable.method not in used_methods:
                    used_methods.append(variable.method)
            ET.SubElement(group, _o("ItemRef"), ref)
            items.append((dataset, variable))
        leaf = ET.SubElement(group, _d("leaf"), {"ID": _oid("LF", domain.name), f"{{{XLINK}}}href": files[domain.name]})
        ET.SubElement(leaf, _d("title")).text = files[domain.name]
    for dataset, variable in items:
        attrs = {
            "OID": _oid("IT", dataset.domain.name, variable.name),
            "Name": variable.name,
            "DataType": variable.type,
            "SASFieldName": variable.name,
        }
        if variable.type in ("text", "integer", "float"):
            attrs["Length"] = str(dataset.length(variable))
        item = ET.SubElement(mdv, _o("ItemDef"), attrs)
        _description(item, variable.label)
        if variable.codelist:
            ET.SubElement(item, _o("CodeListRef"), {"CodeListOID": _oid("CL", variable.codelist)})
            if variable.codelist not in used_codelists:
                used_codelists.append(variable.codelist)
        origin = ET.SubElement(item, _d("Origin"), {"Type": variable.origin})
        if variable.origin_description:
            _description(origin, variable.origin_description)
    for name in used_codelists:
        data_type, values = sdtm.codelist(name, datasets)
        codelist = ET.SubElement(mdv, _o("CodeList"), {"OID": _oid("CL", name), "Name": name, "DataType": data_type})
        if all(decode is None for decode in values.values()):
            for n, value in enumerate(values, start=1):
                ET.SubElement(codelist, _o("EnumeratedItem"), {"CodedValue": value, "OrderNumber": str(n)})
        else:
            for n, (value, decode) in enumerate(values.items(), start=1):
                entry = ET.SubElement(codelist, _o("CodeListItem"), {"CodedValue": value, "OrderNumber": str(n)})
                translated = ET.SubElement(ET.SubElement(entry, _o("Decode")), _o("TranslatedText"))
                translated.set(XML_LANG, "en")
                translated.text = decode or value
    for name in used_methods:
        method = ET.SubElement(
            mdv, _o("MethodDef"), {"OID": _oid("MT", name), "Name": f"Derivation of {name}", "Type": "Computation"}
        )
        _description(method, METHODS[name])
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)
