"""What a blinded DICOMweb root lets through: a list of attributes, and nothing else.

A denylist of what is known to be identifying misses whatever nobody thought of (a device serial number kept
with device identity, a protocol named after the hospital, a date in a vendor's attribute): a blinded root
answers with the attributes it names, at every depth, and drops the rest. The same list filters the DICOM JSON
of metadata and searches and the data set of a whole instance, so that no route says more than another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

# Calendar dates and times of day: never through a blinded root, whatever attribute holds them.
DATE_VRS = frozenset({"DA", "DT", "TM"})


def tags_of(keywords: Iterable[str]) -> frozenset[str]:
    """DICOM keywords as tags of 8 upper-case hex digits (the keys of DICOM JSON); a keyword pydicom does not
    know is a programming error, raised at import."""
    tags = set()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"{keyword} is not a DICOM keyword")
        tags.add(f"{tag:08X}")
    return frozenset(tags)


@dataclass(frozen=True)
class Allowlist:
    """The attributes a root's answers may carry (`tags`, at any depth), with the values some of them take
    there instead of their own (`replace`: tag to DICOM JSON element, e.g. the patient named by a case label).

    An element outside `tags`, a private one or one holding a date or a time is not in the answer. A sequence
    keeps each of its items, emptied or not (the items of Per-frame Functional Groups are the frames, in order)."""

    tags: frozenset[str]
    replace: Mapping[str, dict] = field(default_factory=dict)

    def allows(self, tag: str) -> bool:
        return tag in self.tags

    def json(self, metadata: dict) -> dict:
        """A copy of one data set's DICOM JSON with the allowed attributes only."""
        out = {}
        for tag, element in metadata.items():
            if tag not in self.tags or element.get("vr") in DATE_VRS:
                continue
            replaced = self.replace.get(tag)
            if replaced is not None:
                out[tag] = replaced
            elif element.get("vr") == "SQ" and "Value" in element:
                out[tag] = {"vr": "SQ", "Value": [self.json(item or {}) for item in element["Value"]]}
            else:
                out[tag] = element
        return out

    def dataset(self, ds: Dataset) -> Dataset:
        """A new data set with the allowed attributes of `ds` (the pixel data among them, if allowed) and a file
        meta group of its own: the stored one's may name the sending station (Source Application Entity Title)."""
        out = self._items(ds)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        out.file_meta = meta  # its transfer syntax says how the copy is written
        return out

    def _items(self, ds: Dataset) -> Dataset:
        out = Dataset()
        for element in ds:
            tag = f"{element.tag:08X}"
            if tag not in self.tags or element.VR in DATE_VRS:
                continue
            replaced = self.replace.get(tag)
            if replaced is not None:
                value = replaced.get("Value", [None])[0]
                out.add_new(element.tag, element.VR, value.get("Alphabetic") if isinstance(value, dict) else value)
            elif element.VR == "SQ":
                out.add_new(element.tag, "SQ", Sequence([self._items(item) for item in element.value]))
            else:
                out.add(element)
        return out
