"""Serialising the de-identified dataset: raw values are written back as read, never decoded.

pydicom's writer re-encodes every element once the character set changes (ours always becomes UTF-8), which
would decode pixel data and every value. Our values are raw bytes already in their output form, so writing
is tag, VR, length and the bytes.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag

from .charsets import OUTPUT_CHARSET, encode_text

PIXEL_DATA = 0x7FE00010
UNDEFINED = 0xFFFFFFFF
LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})

# This implementation's identity in the file meta (PS3.7 D.3.3.2): a 2.25 UUID-derived UID, fixed forever.
IMPLEMENTATION_CLASS_UID = "2.25.171942655806134016713287430577431957537"
IMPLEMENTATION_VERSION_NAME = "CTIMS_DEID_1"


def raw_element(tag: int, vr: str, value: bytes, *, implicit: bool = False, little: bool = True) -> RawDataElement:
    """An element holding `value` as output bytes (already padded)."""
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, implicit, little)


def text_element(tag: int, vr: str, text: str, *, implicit: bool = False, little: bool = True) -> RawDataElement:
    return raw_element(tag, vr, encode_text(text, vr), implicit=implicit, little=little)


class Encoder:
    """Writes datasets in one transfer syntax's VR and byte order."""

    def __init__(self, *, implicit: bool, little: bool) -> None:
        order = "<" if little else ">"
        self.implicit = implicit
        self.little = little
        self._implicit_header = struct.Struct(order + "HHL")
        self._short_header = struct.Struct(order + "HH2sH")
        self._long_header = struct.Struct(order + "HH2sHL")
        self._item = struct.Struct(order + "HHL")
        self._seq_delimiter = self._item.pack(0xFFFE, 0xE0DD, 0)

    def header(self, tag: int, vr: str | None, length: int) -> bytes:
        group, element = tag >> 16, tag & 0xFFFF
        if self.implicit:
            return self._implicit_header.pack(group, element, length)
        if vr is None or len(vr) != 2:
            vr = "UN"
        if vr in LONG_LENGTH_VRS or length == UNDEFINED:
            return self._long_header.pack(group, element, vr.encode("ascii"), 0, length)
        if length > 0xFFFF:
            # PS3.5 6.2.2: a value too long for a 16-bit length is written as UN.
            return self._long_header.pack(group, element, b"UN", 0, length)
        return self._short_header.pack(group, element, vr.encode("ascii"), length)

    def dataset(self, ds: Dataset, parts: list[bytes], *, top: bool = False) -> tuple[int, int] | None:
        """Append the encoding of `ds` to `parts`; for the top level, return where Pixel Data's value lies."""
        span = None
        elements = ds._dict
        offset = sum(map(len, parts)) if top else 0
        # In tag order, compared as plain ints (BaseTag's comparisons are Python calls).
        for number, tag in sorted((int(tag), tag) for tag in elements):
            if number & 0xFFFF == 0 and number >> 16 > 2:
                continue  # group lengths are retired and would be wrong after our changes
            elem = elements[tag]
            if isinstance(elem, RawDataElement):
                value = elem.value or b""
                undefined = elem.length == UNDEFINED
                header = self.header(tag, elem.VR, UNDEFINED if undefined else len(value))
                parts.append(header)
                if top and number == PIXEL_DATA:
                    span = (offset + len(header), offset + len(header) + len(value))
                parts.append(value)
                size = len(header) + len(value)
                if undefined:
                    parts.append(self._seq_delimiter)
                    size += len(self._seq_delimiter)
            elif elem.VR == "SQ":
                value = self.sequence(elem)
                header = self.header(tag, "SQ", len(value))
                parts += (header, value)
                size = len(header) + len(value)
            else:
                encoded = self._pydicom_element(elem)
                parts.append(encoded)
                size = len(encoded)
            if top:
                offset += size
        return span

    def sequence(self, elem: DataElement) -> bytes:
        items: list[bytes] = []
        for item in elem.value:
            parts: list[bytes] = []
            self.dataset(item, parts)
            body = b"".join(parts)
            items += (self._item.pack(0xFFFE, 0xE000, len(body)), body)
        return b"".join(items)

    def _pydicom_element(self, elem: DataElement) -> bytes:
        # Elements pydicom converted on its own (e.g. Pixel Representation while parsing a sequence).
        fp = DicomBytesIO()
        fp.is_little_endian = self.little
        fp.is_implicit_VR = self.implicit
        write_data_element(fp, elem, [OUTPUT_CHARSET])
        return fp.getvalue()


def file_meta(*, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """Preamble, DICM and a fresh group 0002 (explicit VR little endian, as PS3.10 requires)."""
    encoder = Encoder(implicit=False, little=True)
    elements = [
        (0x00020001, "OB", b"\x00\x01"),
        (0x00020002, "UI", encode_text(sop_class_uid, "UI")),
        (0x00020003, "UI", encode_text(sop_instance_uid, "UI")),
        (0x00020010, "UI", encode_text(transfer_syntax_uid, "UI")),
        (0x00020012, "UI", encode_text(IMPLEMENTATION_CLASS_UID, "UI")),
        (0x00020013, "SH", encode_text(IMPLEMENTATION_VERSION_NAME, "SH")),
    ]
    body = b"".join(encoder.header(tag, vr, len(value)) + value for tag, vr, value in elements)
    group_length = encoder.header(0x00020000, "UL", 4) + struct.pack("<L", len(body))
    return b"\x00" * 128 + b"DICM" + group_length + body
