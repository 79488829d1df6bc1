"""What ingest receives: a file the parser can read within bounds, and an image the viewer and WADO can serve.

`check_receivable(data)` runs on the raw bytes of one file before de-identification and raises `Refused` with a
stable code and a sentence a site coordinator can act on. It walks the file's elements once, iteratively (an
explicit stack, never recursion), so a sequence nested a thousand deep is refused with "nested deeper than N"
instead of crashing a recursive parser; a deflated data set is inflated in bounded steps and refused past a
limit, so a small "deflate bomb" never reaches the parser that would inflate it whole. It then checks what
serving needs: the image pixel module present and consistent with the pixel data (its Photometric
Interpretation one DICOM defines, with its number of samples per pixel), every DS and IS value a
number and every FL and FD value finite (one bad value makes a whole series' DICOM JSON metadata fail), no NUL
inside a text value (PostgreSQL's JSON and text columns hold none), only known value representations, the SOP,
Study and Series Instance UIDs the index files it by, and one SOP Instance UID in file meta and data set.

No message ever quotes a value read from the file: codes, tags, sizes and limits only. Pure functions over
bytes; pydicom is used only for its data dictionary (the VR of an implicit-VR element). No Django.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from pydicom.datadict import DicomDictionary, dictionary_VR

from ..deid.errors import (
    FILING_UIDS,
    DeidRejected,
    excess_frames,
    gettext_noop,
    missing_uid,
    pixels_too_long,
    uncompressed_ybr_422,
)

DEFLATED = "1.2.840.10008.1.2.1.99"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
# Native (not encapsulated) syntaxes: the pixel data's length follows from the pixel module.
NATIVE = frozenset({IMPLICIT_LE, "1.2.840.10008.1.2.1", EXPLICIT_BE, DEFLATED})

KNOWN_VRS = frozenset(
    [
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FL",
        "FD",
        "IS",
        "LO",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "PN",
        "SH",
        "SL",
        "SQ",
        "SS",
        "ST",
        "SV",
        "TM",
        "UC",
        "UI",
        "UL",
        "UN",
        "UR",
        "US",
        "UT",
        "UV",
    ]
)
# Explicit VR: these have a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = frozenset(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"])
# Values whose size is the image's business (pixels, LUTs, opaque bytes), bounded only by their container.
BULK_VRS = frozenset(["OB", "OD", "OF", "OL", "OV", "OW", "UN"])
BINARY_SIZE = {"AT": 4, "FL": 4, "FD": 8, "SL": 4, "SS": 2, "SV": 8, "UL": 4, "US": 2, "UV": 8}
FLOATS = {"FL": "f", "FD": "d"}
# Text: NUL is in none of their repertoires; trailing NULs pad a value (UIDs by the standard, others by some
# scanners) and the reader drops them, but one inside a value would reach the metadata, which PostgreSQL's JSON
# and text columns cannot hold.
TEXT_VRS = frozenset(
    ["AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"]
)

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD

MEDIA_SOP_INSTANCE_UID = 0x00020003
TRANSFER_SYNTAX_UID = 0x00020010
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
# The UIDs the index and every reference are built from: a mutated VR would keep them out of the pseudonym space.
IDENTITY_UIDS = (SOP_CLASS_UID, SOP_INSTANCE_UID, 0x0020000D, 0x0020000E, 0x00200052)
# Every UID attribute of the standard: de-identification maps them by their VR, so one written as text would
# keep its original value (or stop the engine) while its references are mapped.
UID_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "UI")
SAMPLES_PER_PIXEL = 0x00280002
PHOTOMETRIC = 0x00280004
PLANAR_CONFIGURATION = 0x00280006
NUMBER_OF_FRAMES = 0x00280008
ROWS, COLUMNS = 0x00280010, 0x00280011
BITS_ALLOCATED, BITS_STORED, HIGH_BIT = 0x00280100, 0x00280101, 0x00280102
PIXEL_REPRESENTATION = 0x00280103
PIXEL_DATA = 0x7FE00010
# Photometric Interpretation's defined terms (PS3.3 C.7.6.3.1.2) of one or three samples per pixel, and how many
# each has (ARGB and CMYK, retired, have four: Samples per Pixel refuses them first).
PHOTOMETRIC_SAMPLES = {"MONOCHROME1": 1, "MONOCHROME2": 1, "PALETTE COLOR": 1} | dict.fromkeys(
    ["RGB", "HSV", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB"], 3
)
PIXEL_MODULE = {
    ROWS: "Rows",
    COLUMNS: "Columns",
    BITS_ALLOCATED: "Bits Allocated",
    BITS_STORED: "Bits Stored",
    SAMPLES_PER_PIXEL: "Samples per Pixel",
    PIXEL_REPRESENTATION: "Pixel Representation",
}
# Image storage SOP classes (PS3.4 B.5) sit under these roots; an image of them without pixels cannot be shown.
# Other objects (SR, RT structure sets, segmentations stored otherwise) are accepted or not by SOP class elsewhere.
IMAGE_STORAGE_ROOTS = ("1.2.840.10008.5.1.4.1.1.",)
NON_IMAGE_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports
    "1.2.840.10008.5.1.4.1.1.481.",  # radiotherapy objects
    "1.2.840.10008.5.1.4.1.1.9.",  # waveforms
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, spatial registration and fiducials, segmentation
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated documents
)


class Refused(DeidRejected):
    """A file refused before de-identification: unreadable within bounds, or an image that could not be served.

    A DeidRejected, so the pipeline records it like any other rejection: `code` for machines, `reason` for
    people, neither holding a value read from the file.
    """


@dataclass(frozen=True)
class Limits:
    """How far parsing goes before a file is refused; the defaults leave real CT and MR far inside."""

    max_depth: int = 32  # nested sequences; real images nest fewer than 10
    max_value_bytes: int = 1 << 20  # any value but bulk data (pixels, LUTs, UN) and sequences
    max_decoded_bytes: int = 2 << 30  # the data set once inflated: no more than the largest file received
    max_inflate_ratio: int = 100  # deflate reaches about 1,000:1 on constant bytes; real images stay under 20:1
    min_inflate_allowance: int = 64 << 20  # so a small, very compressible image is never refused for its ratio
    # Elements, items and delimiters: a CT slice has a few hundred, an enhanced MR of 3,000 frames some 150,000
    # (its per-frame functional groups). Each costs the de-identification and every metadata answer its time,
    # so a file of a million empty items (8 MB) took 30 s to ingest and 26 s per metadata answer.
    max_elements: int = 100_000  # whatever the image
    max_elements_per_frame: int = 200  # and this many more for each frame it says it has
    max_elements_ever: int = 5_000_000  # the walk stops here, before Number of Frames is known to be true


LIMITS = Limits()


def check_receivable(data: bytes, *, limits: Limits = LIMITS) -> None:
    """Refuse (raise `Refused`) a file that cannot be parsed within `limits` or served once stored."""
    meta, syntax, implicit, little, top, elements = _read(data, limits)
    frames = _text(top.get(NUMBER_OF_FRAMES))
    if elements > limits.max_elements + limits.max_elements_per_frame * (int(frames) if frames.isdecimal() else 1):
        raise _too_many_elements()
    _check_identity(top, meta, implicit=implicit)
    _check_image(top, syntax=syntax or (IMPLICIT_LE if implicit else "1.2.840.10008.1.2.1"), little=little)


def study_instance_uid(data: bytes, *, limits: Limits = LIMITS) -> str:
    """The data set's Study Instance UID, read as `check_receivable` reads the file (within `limits`); raises the
    `Refused` it would raise for a file that cannot be read so far, or that has no Study Instance UID."""
    _meta, _syntax, _implicit, _little, top, _elements = _read(data, limits)
    study = _text(top.get(0x0020000D))
    if not study:
        raise missing_uid(0x0020000D, Refused)
    return study


def _read(data: bytes, limits: Limits) -> tuple[dict[int, _Element], str, bool, bool, dict[int, _Element], int]:
    """(file meta, transfer syntax, implicit, little endian, top-level elements, element count), or `Refused`."""
    view = memoryview(data)
    meta, start = _file_meta(view)
    syntax = _text(meta.get(TRANSFER_SYNTAX_UID))
    if syntax == DEFLATED:
        body = memoryview(_inflate(view[start:], limits))
        implicit, little = False, True
    else:
        body = view[start:]
        if len(body) > limits.max_decoded_bytes:
            raise _too_large(limits)
        if syntax:
            little = syntax != EXPLICIT_BE
            # A data set written implicit under an explicit syntax (or the reverse) is read as found, as pydicom does.
            implicit = _guess_encoding(body)[0] if len(body) >= 8 else syntax == IMPLICIT_LE
        else:
            implicit, little = _guess_encoding(body)
    if not body and meta:
        raise Refused("truncated", "The file holds only its header: the image data set is cut short.")
    top, elements = _walk(body, implicit=implicit, little=little, limits=limits)
    return meta, syntax, implicit, little, top, elements


# -- reading --------------------------------------------------------------------------------------------


@dataclass
class _Element:
    vr: str
    value: memoryview | None  # None for sequences and encapsulated pixel data
    length: int  # the value's length; UNDEFINED for encapsulated pixel data
    fragments: int = 0  # encapsulated pixel data: items after the basic offset table


def _not_dicom() -> Refused:
    return Refused("not_dicom", "The file is not a DICOM file.")


def _truncated() -> Refused:
    return Refused("truncated", "The file ends before the DICOM data does: it looks cut short.")


def _corrupt(what: str, tag: int | None = None) -> Refused:
    if tag is None:
        return Refused(
            "corrupt",
            gettext_noop("The file's DICOM structure is damaged: %(what)s. Please export it again and resend it."),
            what=what,
        )
    return Refused(
        "corrupt",
        gettext_noop(
            "The file's DICOM structure is damaged: %(what)s (element %(tag)s). Please export it again and resend it."
        ),
        what=what,
        tag=_tag(tag),
    )


def _too_large(limits: Limits) -> Refused:
    return Refused(
        "too_large",
        gettext_noop(
            "The file's data set is larger than %(mb)s MB once decoded, more than this system accepts for one instance."
        ),
        mb=str(limits.max_decoded_bytes >> 20),
    )


def _uid_vr(tag: int, vr: str) -> Refused:
    return Refused(
        "uid_vr",
        gettext_noop(
            "Element %(tag)s is written as %(vr)s rather than as a UID, so the image could not be tracked "
            "consistently; please export it again from the scanner or PACS."
        ),
        tag=_tag(tag),
        vr=vr,
    )


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _text(element: _Element | None) -> str:
    if element is None or element.value is None:
        return ""
    return bytes(element.value).decode("ascii", "replace").strip(" \x00")


def _looks_like_raw_dataset(data: memoryview) -> bool:
    """A data set without preamble starts with a group 0002 or 0008 tag, little or big endian (as the engine reads)."""
    return len(data) >= 8 and bytes(data[:2]) in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def _guess_encoding(data: memoryview) -> tuple[bool, bool]:
    """(implicit, little) of a data set without a transfer syntax, as pydicom guesses it."""
    little = bytes(data[:2]) != b"\x00\x08"
    vr = bytes(data[4:6])
    implicit = not (vr.isalpha() and vr.isupper())
    return implicit, little


def _file_meta(data: memoryview) -> tuple[dict[int, _Element], int]:
    """The file meta elements (group 0002, explicit VR little endian) and where the data set starts."""
    if len(data) >= 132 and bytes(data[128:132]) == b"DICM":
        at = 132
    elif _looks_like_raw_dataset(data):
        at = 0
    else:
        raise _not_dicom()
    meta: dict[int, _Element] = {}
    while at + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, at)
        if group != 0x0002:
            break
        vr = bytes(data[at + 4 : at + 6]).decode("latin-1")
        if vr not in KNOWN_VRS:
            raise Refused(
                "unknown_vr",
                gettext_noop("The file meta information has an unknown value representation at %(tag)s."),
                tag=_tag(0x00020000 | element),
            )
        if vr in LONG_VRS:
            if at + 12 > len(data):
                raise _truncated()
            (length,) = struct.unpack_from("<L", data, at + 8)
            at += 12
        else:
            (length,) = struct.unpack_from("<H", data, at + 6)
            at += 8
        if length == UNDEFINED or at + length > len(data):
            raise _truncated()
        meta[0x00020000 | element] = _Element(vr, data[at : at + length], length)
        at += length
    if at >= len(data) - 8 and not meta:
        raise _not_dicom()
    return meta, at


def _inflate(deflated: memoryview, limits: Limits) -> bytes:
    """The inflated data set, refused once it would grow past its allowance; memory stays at the allowance.

    A first pass counts the inflated size in 1 MiB steps and throws the bytes away, so a bomb costs its limit
    in CPU time but no memory; only a data set inside the allowance is inflated for real.
    """
    allowance = min(
        limits.max_decoded_bytes,
        max(limits.min_inflate_allowance, limits.max_inflate_ratio * len(deflated)),
    )
    inflater, size, step = zlib.decompressobj(-zlib.MAX_WBITS), 0, 1 << 20
    pending = bytes(deflated)
    try:
        while not inflater.eof and size <= allowance:
            out = inflater.decompress(pending, step)
            pending = inflater.unconsumed_tail
            size += len(out)
            if not out and not pending:
                break  # the input is used up: a stream cut short, found again when the data set is walked
    except zlib.error:
        raise Refused(
            "corrupt", gettext_noop("The file's deflated data set cannot be decompressed: it is damaged.")
        ) from None
    if size > allowance:
        raise Refused(
            "too_large",
            gettext_noop(
                "The file's deflated data set expands to more than %(mb)s MB (over %(ratio)s times its compressed "
                "size); please send the images uncompressed or with image compression instead."
            ),
            mb=str(allowance >> 20),
            ratio=str(limits.max_inflate_ratio),
        )
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = inflater.decompress(bytes(deflated))
    tail = inflater.flush()
    return inflated + tail if tail else inflated


@dataclass
class _Context:
    kind: str  # "dataset" (the top or an item) or "sequence"
    end: int | None  # None: undefined length, ended by a delimiter
    depth: int  # how many sequences enclose it
    implicit: bool  # a UN sequence of undefined length is implicit VR inside (PS3.5 6.2.2)


def _too_many_elements() -> Refused:
    return Refused(
        "too_many_elements",
        gettext_noop(
            "The file holds far more DICOM elements than an image of its size needs; it looks damaged or crafted. "
            "Please export it again from the scanner or PACS."
        ),
    )


def _walk(data: memoryview, *, implicit: bool, little: bool, limits: Limits) -> tuple[dict[int, _Element], int]:
    """Check every element's header, length and value rules; return the top-level elements and how many
    elements, items and delimiters the data set holds."""
    order = "<" if little else ">"
    tag_length = struct.Struct(order + "HHL")
    short_length = struct.Struct(order + "H")
    long_length = struct.Struct(order + "L")
    top: dict[int, _Element] = {}
    stack = [_Context("dataset", len(data), 0, implicit)]
    at, size = 0, len(data)
    headers = 0
    while True:
        context = stack[-1]
        if context.end is not None and at >= context.end:
            if at > context.end:
                raise _corrupt("an element runs past the end of the item or sequence that holds it")
            if len(stack) == 1:
                return top, headers
            stack.pop()
            continue
        if at + 8 > size:
            raise _truncated()
        headers += 1
        if headers > limits.max_elements_ever:
            raise _too_many_elements()
        group, element, item_length = tag_length.unpack_from(data, at)
        tag = group << 16 | element
        if context.kind == "sequence":
            if tag == ITEM:
                at += 8
                end = None if item_length == UNDEFINED else at + item_length
                if end is not None and end > (context.end if context.end is not None else size):
                    raise _truncated() if end > size else _corrupt("an item runs past the end of its sequence")
                stack.append(_Context("dataset", end, context.depth, context.implicit))
            elif tag == SEQUENCE_END and context.end is None:
                at += 8
                stack.pop()
            else:
                raise _corrupt("a sequence holds something other than items", tag)
            continue
        if tag == ITEM_END:
            if context.end is not None or len(stack) == 1:
                raise _corrupt("an item ends where none began")
            at += 8
            stack.pop()
            continue
        if group == 0xFFFE:
            raise _corrupt("a delimiter stands where an element should be", tag)
        if context.implicit:
            vr = _implicit_vr(tag)
            length, at = item_length, at + 8
        else:
            vr = bytes(data[at + 4 : at + 6]).decode("latin-1")
            if vr not in KNOWN_VRS:
                shown = f" '{vr}'" if vr.isascii() and vr.isalpha() else ""
                raise Refused(
                    "unknown_vr",
                    gettext_noop(
                        "Element %(tag)s has a value representation%(shown)s that DICOM does not define, so the "
                        "image could not be shown; please export it again from the scanner or PACS."
                    ),
                    tag=_tag(tag),
                    shown=shown,
                )
            if vr not in ("UI", "UN") and tag in UID_TAGS:
                raise _uid_vr(tag, vr)
            if vr in LONG_VRS:
                if at + 12 > size:
                    raise _truncated()
                (length,) = long_length.unpack_from(data, at + 8)
                at += 12
            else:
                (length,) = short_length.unpack_from(data, at + 6)
                at += 8
        limit = context.end if context.end is not None else size
        written = vr
        if vr == "UN" and length != UNDEFINED:
            # pydicom reads a public element written as UN with its dictionary's VR, a sequence as implicit VR
            # (PS3.5 6.2.2): its value is checked as what it will be read as, not skipped as opaque bytes.
            vr = _implicit_vr(tag) or "UN"
        if vr == "SQ" or (length == UNDEFINED and vr in ("UN", "") and tag != PIXEL_DATA):
            depth = context.depth + 1
            if depth > limits.max_depth:
                raise Refused(
                    "too_deep",
                    gettext_noop(
                        "The file's sequences are nested deeper than %(depth)s levels, more than any image needs; "
                        "it looks damaged or crafted."
                    ),
                    depth=str(limits.max_depth),
                )
            end = None if length == UNDEFINED else at + length
            if end is not None and end > limit:
                raise _truncated() if end > size else _corrupt("a sequence runs past the end of its item", tag)
            if len(stack) == 1:
                top[tag] = _Element("SQ", None, length)
            inner = context.implicit or written == "UN"
            stack.append(_Context("sequence", end, depth, inner))
            continue
        if length == UNDEFINED:
            if tag != PIXEL_DATA or len(stack) != 1:
                raise _corrupt("an element other than a sequence or the pixel data has no length", tag)
            at, fragments = _fragments(data, at, tag_length)
            top[tag] = _Element(vr, None, UNDEFINED, fragments)
            continue
        if at + length > limit:
            raise _truncated() if at + length > size else _corrupt("an element runs past the end of its item", tag)
        if length > limits.max_value_bytes and vr not in BULK_VRS and vr:  # "": unknown (private), opaque
            raise Refused(
                "value_too_long",
                gettext_noop(
                    "Element %(tag)s is %(length)s bytes long, more than the %(limit)s bytes this system reads in "
                    "one attribute; it looks damaged or crafted."
                ),
                tag=_tag(tag),
                length=str(length),
                limit=str(limits.max_value_bytes),
            )
        value = data[at : at + length]
        _check_value(tag, vr, value, order)
        if len(stack) == 1:
            top[tag] = _Element(written, value, length)
        at += length


def _implicit_vr(tag: int) -> str:
    """The dictionary's VR of an implicit-VR element ("" when unknown, as for private elements)."""
    if tag & 0xFFFF == 0 or (tag >> 16) & 1:
        return "UL" if tag & 0xFFFF == 0 else ""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return ""
    return vr.split(" or ")[0] if vr not in ("OB or OW", "US or SS or OW") else "OB"


def _fragments(data: memoryview, at: int, tag_length: struct.Struct) -> tuple[int, int]:
    """Walk the items of encapsulated pixel data up to its delimiter; return where it ends and the fragment count."""
    items = 0
    while True:
        if at + 8 > len(data):
            raise _truncated()
        group, element, length = tag_length.unpack_from(data, at)
        tag = group << 16 | element
        at += 8
        if tag == SEQUENCE_END:
            return at, max(items - 1, 0)  # the first item is the basic offset table
        if tag != ITEM or length == UNDEFINED:
            raise _corrupt("the compressed pixel data is not a list of fragments", PIXEL_DATA)
        if at + length > len(data):
            raise Refused("truncated", "The compressed image data is cut short.")
        at += length
        items += 1


def _check_value(tag: int, vr: str, value: memoryview, order: str) -> None:
    """A value pydicom must convert for the DICOM JSON metadata: numbers that are finite numbers, whole binary
    values, text without NULs inside."""
    size = BINARY_SIZE.get(vr)
    if size is not None:
        if len(value) % size:
            raise _corrupt(f"a {vr} value is {len(value)} bytes long, not a multiple of {size}", tag)
        code = FLOATS.get(vr)
        if code is not None and not all(math.isfinite(x) for (x,) in struct.iter_unpack(order + code, value)):
            raise _not_a_number(tag, vr)  # JSON has no NaN or Infinity
        return
    if vr not in TEXT_VRS:
        return
    text = bytes(value)
    if text.find(0) != -1 and b"\x00" in text.rstrip(b" \x00"):  # found at once where there is none at all
        raise _corrupt("a text value holds a NUL byte, which DICOM text does not allow", tag)
    if vr not in ("DS", "IS"):
        return
    for part in text.split(b"\\"):
        part = part.strip(b" \x00")
        if not part:
            continue
        try:
            number = float(part)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise _not_a_number(tag, vr)


_NOT_A_NUMBER = {
    "DS": gettext_noop(
        "Element %(tag)s should hold a decimal number but holds something else, so the image's metadata could "
        "not be served; please export it again from the scanner or PACS."
    ),
    "IS": gettext_noop(
        "Element %(tag)s should hold an integer number but holds something else, so the image's metadata could "
        "not be served; please export it again from the scanner or PACS."
    ),
}
_NOT_FINITE = gettext_noop(
    "Element %(tag)s should hold a finite number but holds something else, so the image's metadata could not be "
    "served; please export it again from the scanner or PACS."
)


def _not_a_number(tag: int, vr: str) -> Refused:
    return Refused("bad_number", _NOT_A_NUMBER.get(vr, _NOT_FINITE), tag=_tag(tag))


# -- what serving needs ---------------------------------------------------------------------------------


def _check_identity(top: dict[int, _Element], meta: dict[int, _Element], *, implicit: bool) -> None:
    """One SOP Instance UID in file meta and data set, and the identity UIDs written as UIDs."""
    for tag in IDENTITY_UIDS:
        element = top.get(tag)
        if element is not None and not implicit and element.vr != "UI":
            raise _uid_vr(tag, element.vr)
    for tag in FILING_UIDS:
        if not _text(top.get(tag)):
            raise missing_uid(tag, Refused)
    instance = _text(top.get(SOP_INSTANCE_UID))
    in_meta = _text(meta.get(MEDIA_SOP_INSTANCE_UID))
    if in_meta and in_meta != instance:
        raise Refused(
            "uid_mismatch",
            gettext_noop(
                "The file's header (file meta information) and its data set name different SOP Instance UIDs, so "
                "it is unclear which image this is; please export it again from the scanner or PACS."
            ),
        )


def _is_image_class(sop_class: str) -> bool:
    return sop_class.startswith(IMAGE_STORAGE_ROOTS) and not sop_class.startswith(NON_IMAGE_STORAGE)


def _us(top: dict[int, _Element], tag: int, little: bool) -> int | None:
    element = top.get(tag)
    if element is None or element.value is None or len(element.value) < 2:
        return None
    return int.from_bytes(element.value[:2], "little" if little else "big")


def _unservable(what: str) -> Refused:
    return Refused(
        "pixel_module",
        gettext_noop("The image cannot be shown: %(what)s. Please export it again from the scanner or PACS."),
        what=what,
    )


def _check_image(top: dict[int, _Element], *, syntax: str, little: bool) -> None:
    """The image pixel module (PS3.3 C.7.6.3) present and consistent with the pixel data it describes."""
    pixels = top.get(PIXEL_DATA)
    if pixels is None:
        if _is_image_class(_text(top.get(SOP_CLASS_UID))):
            raise Refused("pixel_data_missing", "The file has no image data (Pixel Data is missing).")
        return  # not an image: whether such an object is accepted is decided by its SOP class
    values = {}
    for tag, name in PIXEL_MODULE.items():
        value = _us(top, tag, little)
        if value is None:
            raise _unservable(f"{name} {_tag(tag)} is missing")
        values[tag] = value
    rows, columns, allocated, stored = values[ROWS], values[COLUMNS], values[BITS_ALLOCATED], values[BITS_STORED]
    samples, representation = values[SAMPLES_PER_PIXEL], values[PIXEL_REPRESENTATION]
    if rows == 0 or columns == 0:
        raise _unservable("it has no rows or no columns")
    if allocated not in (1, 8, 16, 32, 64):
        raise _unservable(f"Bits Allocated is {allocated}, not 1, 8, 16, 32 or 64")
    if not 1 <= stored <= allocated:
        raise _unservable(f"Bits Stored is {stored}, outside 1 to Bits Allocated ({allocated})")
    high = _us(top, HIGH_BIT, little)
    if high is not None and high >= allocated:
        raise _unservable(f"High Bit is {high}, outside the {allocated} bits allocated")
    if samples not in (1, 3):
        raise _unservable(f"Samples per Pixel is {samples}, not 1 or 3")
    if samples == 3 and _us(top, PLANAR_CONFIGURATION, little) is None:
        raise _unservable("a colour image has no Planar Configuration")
    if representation not in (0, 1):
        raise _unservable(f"Pixel Representation is {representation}, not 0 or 1")
    photometric = _text(top.get(PHOTOMETRIC))
    if not photometric:
        raise _unservable("Photometric Interpretation is missing")
    needs = PHOTOMETRIC_SAMPLES.get(photometric)
    if needs is None:
        raise _unservable("Photometric Interpretation is not one DICOM defines")
    if needs != samples:  # named in the message only now: a defined term, not a value of the patient's
        raise _unservable(f"Photometric Interpretation {photometric} has {needs} samples per pixel, not {samples}")
    frames = 1
    if NUMBER_OF_FRAMES in top:
        text = _text(top[NUMBER_OF_FRAMES])
        if not text.isdecimal() or int(text) < 1:
            raise _unservable("Number of Frames is not a whole number of at least 1")
        frames = int(text)
    if syntax in NATIVE:
        if pixels.length == UNDEFINED:
            raise _unservable("its pixel data is compressed although its transfer syntax says uncompressed")
        if photometric == "YBR_FULL_422":
            raise uncompressed_ybr_422(Refused)
        expected = (rows * columns * samples * frames * allocated + 7) // 8
        if pixels.length < expected:
            raise Refused("truncated", "The image data is shorter than the image size says: the file looks cut short.")
        if excess_frames(pixels.length, expected, frames):
            raise pixels_too_long(Refused)
    else:
        if pixels.length != UNDEFINED:
            raise _unservable("its transfer syntax says compressed but its pixel data is not")
        if pixels.fragments < 1:
            raise _unservable("its compressed pixel data holds no fragment")
