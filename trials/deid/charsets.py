"""Decoding input text in any Specific Character Set and encoding output text as UTF-8 (ISO_IR 192)."""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.valuerep import PN_DELIMS, TEXT_VR_DELIMS

OUTPUT_CHARSET = "ISO_IR 192"

# VRs whose text depends on the Specific Character Set; every other string VR is ASCII by definition.
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
STRING_VRS = CHARSET_VRS | ASCII_VRS
_SINGLE_VALUED = frozenset({"ST", "LT", "UT", "UR"})
_ESC = 0x1B


def encodings_for(charset_raw: bytes | str | None) -> list[str]:
    """Python codecs for a raw (0008,0005) value; the default repertoire when absent."""
    if isinstance(charset_raw, bytes):
        charset_raw = charset_raw.decode("ascii", "replace")
    if not charset_raw:
        return convert_encodings(None)
    values = [v.strip(" \x00") for v in charset_raw.split("\\")]
    return convert_encodings(values if len(values) > 1 else values[0])


def is_plain_ascii(raw: bytes) -> bool:
    """ASCII bytes without ISO 2022 escapes mean the same text in every character set DICOM allows."""
    return raw.isascii() and _ESC not in raw


def decode_text(raw: bytes, vr: str, encodings: Sequence[str]) -> str:
    """The text of a raw string value, padding removed (leading spaces of LT/ST/UT are kept)."""
    if is_plain_ascii(raw):
        text = raw.decode("ascii")
    elif vr not in CHARSET_VRS:
        text = raw.decode("latin-1")
    elif vr in _SINGLE_VALUED:
        text = decode_bytes(raw, encodings, TEXT_VR_DELIMS)
    elif vr == "PN":
        # Each component group of a name starts over in the initial character set (PS3.5 6.1.2.5.3).
        text = "\\".join(
            "=".join(decode_bytes(group, encodings, PN_DELIMS) for group in value.split(b"="))
            for value in raw.split(b"\\")
        )
    else:
        text = "\\".join(decode_bytes(value, encodings, TEXT_VR_DELIMS) for value in raw.split(b"\\"))
    if vr in ("LT", "ST", "UT"):
        return text.rstrip(" \x00")
    return text.strip(" \x00")


def encode_text(text: str, vr: str) -> bytes:
    """A value as UTF-8 bytes padded to even length (NUL for UI, space otherwise)."""
    data = text.encode("utf-8")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def reencode_if_needed(raw: bytes, vr: str, encodings: Sequence[str]) -> bytes | None:
    """The value re-encoded as UTF-8, or None when the raw bytes already are valid output."""
    if vr not in CHARSET_VRS or is_plain_ascii(raw):
        return None
    if len(encodings) == 1 and codecs.lookup(encodings[0]).name == "utf-8":
        try:
            raw.decode("utf-8")
            return None
        except UnicodeDecodeError:
            pass
    return encode_text(decode_text(raw, vr, encodings), vr)
