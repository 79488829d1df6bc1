"""pydicom's reading of the common DICOM file, without its per-element file calls.

`read_file(data)` gives what `pydicom.dcmread(io.BytesIO(data))` gives: the same FileDataset, holding the same
RawDataElements (tag, VR, length, value bytes, offset), file meta and encodings, so that whatever reads it (the
engine, the server's re-verification) cannot tell the two apart. It does so only for the file nearly every
modality writes: a preamble and "DICM", file meta in explicit VR little endian, then a data set in explicit VR
little endian (native or encapsulated pixels), every VR one that pydicom knows, every defined length inside the
file. It answers None for anything else (implicit VR, big endian, deflated, a command set, no file meta, a
truncated value, an unknown VR, an undefined-length UN), and the caller reads the file with pydicom itself.

The elements are cut from the bytes with `struct.unpack_from` in one loop, items of sequences included; pydicom
reads each element through its file object (read, tell, seek: several calls per element) and builds each item
through three layers of functions. A 512x512 CT slice is read in about three quarters of pydicom's time in CPython
(0.65 ms against 0.87) and two thirds in the browser's WebAssembly (0.98 against 1.43); most of what is left is the
making of pydicom's objects. They are made by pydicom's own constructors, in pydicom's order, with the attributes it
sets; an undefined-length value other than a sequence (encapsulated pixel data) is read by pydicom's own function.
tests/trials/deid/test_fastread.py compares the two readings element by element over every real file of the test
corpus, and the engine's outputs with and without this reading.

The same goes for values read later from a data set (by anyone's reader): `converted_element` and
`open_sequences` convert a defined-length sequence with the same loop (pydicom's convert_SQ reads it through a
file object), and `raw_text` / `raw_us` read a raw CS, UI or one-value US element as pydicom converts it; each
leaves to pydicom what it does not take, and the test compares each with pydicom over the same corpus.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from struct import Struct
from typing import Any

from pydicom import config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filereader import dcmread
from pydicom.fileutil import read_undefined_length_value
from pydicom.hooks import hooks, raw_element_value, raw_element_vr
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, SequenceDelimiterTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    PrivateTransferSyntaxes,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR
from pydicom.values import convert_string

_HEADER = Struct("<HH2sH").unpack_from  # tag group, element, VR, 16-bit length
_LENGTH_32 = Struct("<L").unpack_from
_ITEM = Struct("<HHL").unpack_from  # an item's or delimiter's tag and length
# Two-letter VRs pydicom knows, as they appear in a file -> (the VR as pydicom stores it, 32-bit length?).
_KNOWN_VR = {
    vr.value.encode(default_encoding): (vr.value, vr in EXPLICIT_VR_LENGTH_32) for vr in VR if len(vr.value) == 2
}
_UNDEFINED = 0xFFFFFFFF
_ITEM_DELIMITATION = 0xFFFEE00D
_CHARSET = 0x00080005
_NOT_EXPLICIT_LITTLE = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian, *PrivateTransferSyntaxes}
)


class _Uncommon(Exception):
    """The bytes are not the common file this reader takes: pydicom reads them."""


def read_file(data: bytes) -> FileDataset | None:
    """The FileDataset pydicom's dcmread would give for `data` (bytes), or None where this reader does not
    take the file (then read it with pydicom, which also raises or warns as it does for any file)."""
    if len(data) < 140 or data[128:132] != b"DICM":
        return None
    try:
        return _read(data)
    except Exception:  # noqa: BLE001 - _Uncommon, or pydicom's own functions failing: pydicom reads it from the start
        return None


def dcmread_bytes(data: bytes, *, force: bool = False) -> FileDataset:
    """`pydicom.dcmread(io.BytesIO(data), force=force)`, read by `read_file` where it takes the file."""
    ds = read_file(data)
    return ds if ds is not None else dcmread(io.BytesIO(data), force=force)


def _read(data: bytes) -> FileDataset:
    meta_elements, end_of_meta = _elements(data, 132, group=0x0002)
    if not meta_elements or end_of_meta + 8 > len(data) or data[end_of_meta : end_of_meta + 2] == b"\x00\x00":
        raise _Uncommon  # no file meta, nothing after it, or a command set (group 0000) next
    file_meta = _file_meta(meta_elements)
    syntax = file_meta.get("TransferSyntaxUID")
    if syntax is None or syntax in _NOT_EXPLICIT_LITTLE:
        raise _Uncommon
    elements, end = _elements(data, end_of_meta, group=None)
    if end != len(data):
        raise _Uncommon
    dataset = _dataset(elements, default_encoding)
    buffer = io.BytesIO(data)
    buffer.seek(0, io.SEEK_END)  # where pydicom leaves the buffer it read
    ds = FileDataset(buffer, dataset, data[:128], file_meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds


def _dataset(elements: dict, parent_encoding: str | list[str]) -> Dataset:
    """A data set (the file's, or an item) as pydicom's read_dataset makes it of its elements."""
    dataset = Dataset(elements, parent_encoding=parent_encoding)
    if _CHARSET in elements:
        encoding = convert_encodings(convert_raw_data_element(elements[BaseTag(_CHARSET)]).value)
    else:
        encoding = parent_encoding
    dataset.set_original_encoding(False, True, encoding)
    return dataset


def _file_meta(elements: dict) -> FileMetaDataset:
    """As pydicom's _read_file_meta_info makes it, including the elements it converts as it reads."""
    meta = Dataset(elements, parent_encoding=default_encoding)
    meta.set_original_encoding(False, True, default_encoding)
    file_meta = FileMetaDataset(meta)
    file_meta.set_original_encoding(is_implicit_vr=False, is_little_endian=True, character_encoding=default_encoding)
    file_meta[min(file_meta._dict)]  # pydicom's check that explicit VR reads its first element (and converts it)
    if "FileMetaInformationGroupLength" in file_meta:
        file_meta.FileMetaInformationGroupLength  # noqa: B018 - pydicom reads it to compare (and converts it)
    return file_meta


def _elements(
    data: bytes,
    pos: int,
    *,
    end: int | None = None,
    group: int | None = None,
    delimited: bool = False,
    encoding: str | list[str] = default_encoding,
) -> tuple[dict, int]:
    """The elements from `pos` as pydicom's data_element_generator yields them, and where reading ended. They end
    at `end` (the end of `data` by default), or with `group` at the first element of another group, or,
    `delimited`, after an item delimitation item. `encoding` is the parent's character set: a sequence here is
    read with it, or with this data set's own once its Specific Character Set is read, as pydicom does."""
    if end is None:
        end = len(data)
    elements: dict = {}
    while pos < end:
        if end - pos < 8:
            raise _Uncommon  # pydicom stops quietly at a short tail; not the common file
        tag_group, tag_element, raw_vr, length = _HEADER(data, pos)
        if group is not None and tag_group != group:
            break
        tag = tag_group << 16 | tag_element  # an int: BaseTag's comparisons are Python calls
        if tag == _ITEM_DELIMITATION:
            if not delimited:
                raise _Uncommon
            return elements, pos + 8
        key = BaseTag(tag)
        known = _KNOWN_VR.get(raw_vr)
        if known is None:
            raise _Uncommon  # implicit VR, or a VR pydicom does not know
        vr, long_length = known
        pos += 8
        if long_length:
            if end - pos < 4:
                raise _Uncommon
            length = _LENGTH_32(data, pos)[0]
            pos += 4
        if length == _UNDEFINED:
            if vr == "SQ":
                sequence, after = _sequence(data, pos, encoding)
                elements[key] = DataElement(key, vr, sequence, pos, is_undefined_length=True)
            elif vr == "UN":
                raise _Uncommon  # pydicom may take it for a sequence, by its settings or its dictionary
            else:
                fp = io.BytesIO(data)
                fp.seek(pos)
                value = read_undefined_length_value(fp, True, SequenceDelimiterTag, None)
                elements[key] = RawDataElement(key, vr, length, value, pos, False, True)
                after = fp.tell()
            if after > end:
                raise _Uncommon
            pos = after
            continue
        if pos + length > end:
            raise _Uncommon
        value = data[pos : pos + length] if length else empty_value_for_VR(vr, raw=True)
        if tag == _CHARSET:
            encoding = convert_encodings(convert_string(value or b"", True))
        elements[key] = RawDataElement(key, vr, length, value, pos, False, True)
        pos += length
    if delimited or (group is None and pos != end):
        raise _Uncommon  # an item without its delimiter, or an element running past its item
    return elements, pos


def _sequence(
    data: bytes, pos: int, encoding: str | list[str], *, end: int | None = None, offset: int = 0
) -> tuple[Sequence, int]:
    """A sequence's items from `pos`, as pydicom's read_sequence reads them, and where reading ended: an
    undefined-length sequence (`end` None) up to its sequence delimitation item, a defined-length one up to
    `end` (or such an item). `offset` is added to the items' own positions, as convert_SQ adds where the value
    it reads apart lies in the file."""
    items = []
    while end is None or pos < end:
        if len(data) - pos < 8:
            raise _Uncommon
        tag_group, tag_element, length = _ITEM(data, pos)
        item_start, pos = pos, pos + 8
        if (tag_group, tag_element) == (0xFFFE, 0xE0DD):
            break
        if (tag_group, tag_element) != (0xFFFE, 0xE000) or (length and data[pos + 4 : pos + 6] not in _KNOWN_VR):
            raise _Uncommon  # not an item, or an item in implicit VR (which pydicom allows in a sequence)
        if length == _UNDEFINED:
            elements, pos = _elements(data, pos, delimited=True, encoding=encoding)
        else:
            elements, pos = _elements(data, pos, end=pos + length, encoding=encoding)
        item = _dataset(elements, encoding)
        item.is_undefined_length_sequence_item = length == _UNDEFINED
        item.seq_item_tell = item_start + offset
        item.file_tell = item_start + offset
        items.append(item)
    sequence = Sequence(items)
    sequence.is_undefined_length = end is None
    return sequence, pos


def open_sequences(ds: Dataset, is_sequence: Callable[[int, Any], bool]) -> None:
    """Convert the sequences of `ds` and of their items in turn, each by `converted_element` (`is_sequence(tag,
    element)` says which elements to convert), leaving every other value raw. ValueError where pydicom could not
    read as a sequence what `is_sequence` says is one."""
    for tag, elem in list(ds._dict.items()):
        if not isinstance(elem, RawDataElement):
            if elem.VR == "SQ":
                for item in elem.value or []:
                    open_sequences(item, is_sequence)
            continue
        if not is_sequence(tag, elem):
            continue
        converted = converted_element(ds, tag)
        if converted.VR != "SQ":
            raise ValueError("a sequence could not be read as one")  # pydicom kept its bytes (as UN)
        for item in converted.value or []:
            open_sequences(item, is_sequence)


def converted_element(ds: Dataset, tag: int) -> DataElement:
    """`ds[tag]`: the element converted as pydicom converts it. A raw defined-length sequence in explicit VR little
    endian is read by this module's loop into the items pydicom's convert_SQ makes, and set as Dataset.__getitem__
    sets a converted element; any other element is converted by pydicom itself."""
    elem = ds._dict[tag]
    sequence = _defined_length_sequence(ds, elem) if isinstance(elem, RawDataElement) else None
    if sequence is None:
        return ds[tag]
    # Dataset.__setitem__ does the rest of what __getitem__ does (the pixel representation into the items).
    ds[tag] = DataElement(elem.tag, "SQ", sequence, elem.value_tell, False, already_converted=True)
    return ds._dict[tag]


def _converted_by_default() -> bool:
    """Whether pydicom converts raw values its own way (no callback or hook of an application's set)."""
    return (
        config.data_element_callback is None
        and not hooks.raw_element_kwargs
        and hooks.raw_element_vr is raw_element_vr
        and hooks.raw_element_value is raw_element_value
    )


def raw_text(elem: Any) -> str | None:
    """A raw CS or UI element's value as text, as pydicom converts it with its values joined by backslashes; None
    for any other element (convert that with pydicom). pydicom decodes these VRs in its default encoding whatever
    the character set, and drops trailing spaces and NULs before splitting at backslashes."""
    if type(elem) is not RawDataElement or elem.VR not in ("CS", "UI") or not isinstance(elem.value, bytes):
        return None
    return elem.value.decode(default_encoding).rstrip(" \x00") if _converted_by_default() else None


def raw_us(elem: Any) -> int | None:
    """A raw US element of one value as pydicom converts it; None for any other element."""
    if type(elem) is not RawDataElement or elem.VR != "US" or not isinstance(elem.value, bytes):
        return None
    if len(elem.value) != 2 or not _converted_by_default():
        return None
    return int.from_bytes(elem.value, "little" if elem.is_little_endian else "big")


def _defined_length_sequence(ds: Dataset, elem: RawDataElement) -> Sequence | None:
    """The Sequence pydicom's convert_SQ makes of `elem`'s value, or None where this module does not read it."""
    value = elem.value
    if (
        elem.VR != "SQ"
        or elem.length == _UNDEFINED
        or not isinstance(value, bytes)
        or not value
        or elem.is_implicit_VR
        or not elem.is_little_endian
        or not _converted_by_default()
    ):
        return None
    encoding = ds.original_character_set or ds._character_set or [default_encoding]
    try:
        sequence, _ = _sequence(
            value, 0, [encoding] if isinstance(encoding, str) else encoding, end=len(value), offset=elem.value_tell
        )
    except Exception:  # noqa: BLE001 - _Uncommon, or pydicom's own functions failing: pydicom converts it
        return None
    return sequence
