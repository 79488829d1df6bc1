"""The fast reading of the common DICOM file (trials.deid.fastread) is pydicom's reading, in every detail, for
every real file it takes; every other file is left to pydicom; and the engine's outputs do not change."""

from __future__ import annotations

import io
import random
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from trials.deid import DeidRejected, deidentify, engine, fastread
from trials.deid.fastread import dcmread_bytes, read_file
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series

from .factories import DEFAULT, SUBJECT, real_dicom_files, space

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ATTRIBUTES = (
    "preamble",
    "original_encoding",
    "_character_set",
    "is_undefined_length_sequence_item",
    "seq_item_tell",
    "file_tell",
    "_parent_encoding",
)


def differences(fast: Dataset, slow: Dataset, where: str = "") -> list[str]:
    """Where two readings differ: element by element (a raw element's every field; a sequence's items in
    turn), and the data sets' own attributes."""
    found = []
    if type(fast) is not type(slow):
        return [f"{where}: {type(fast).__name__} against {type(slow).__name__}"]
    if list(fast._dict) != list(slow._dict):
        return [f"{where}: other tags or order"]
    for tag, a in fast._dict.items():
        b = slow._dict[tag]
        here = f"{where} ({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if type(a) is not type(b):
            found.append(f"{here}: {type(a).__name__} against {type(b).__name__}")
        elif isinstance(a, RawDataElement):
            if tuple(a) != tuple(b):
                found.append(f"{here}: raw element")
        elif (a.VR, a.file_tell, a.is_undefined_length) != (b.VR, b.file_tell, b.is_undefined_length):
            found.append(f"{here}: element")
        elif a.VR == "SQ":
            undefined = (getattr(a.value, "is_undefined_length", None), getattr(b.value, "is_undefined_length", None))
            if len(a.value) != len(b.value) or undefined[0] != undefined[1]:
                found.append(f"{here}: sequence")
            for n, (x, y) in enumerate(zip(a.value, b.value, strict=False)):
                found += differences(x, y, f"{here}[{n}]")
        elif a.value != b.value:
            found.append(f"{here}: value")
    if set(vars(fast)) != set(vars(slow)):
        found.append(f"{where}: attributes {sorted(set(vars(fast)) ^ set(vars(slow)))}")
    found += [f"{where}: {name}" for name in ATTRIBUTES if getattr(fast, name, None) != getattr(slow, name, None)]
    if hasattr(slow, "file_meta"):
        found += differences(fast.file_meta, slow.file_meta, f"{where} file meta")
        found += [
            f"{where}: {name}"
            for name in ("is_implicit_VR", "is_little_endian", "_read_implicit", "_read_little")
            if getattr(fast, name) != getattr(slow, name)
        ]
    return found


def test_every_real_file_it_takes_reads_as_pydicom_reads_it():
    taken, differ = [], {}
    for path in real_dicom_files():
        data = path.read_bytes()
        fast = read_file(data)
        if fast is None:
            continue
        taken.append(path.name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = differences(fast, pydicom.dcmread(io.BytesIO(data)), path.name)
        if found:
            differ[path.name] = found[:3]
    # Native and compressed CT and MR, enhanced multi-frame with functional groups nested three deep, Korean and
    # other character sets, private blocks, deid-data's files with their traps.
    assert len(taken) >= 100
    assert {
        "693_UNCI.dcm",
        "693_J2KR.dcm",
        "eCT_Supplemental.dcm",
        "emri_small.dcm",
        "chrKoreanMulti.dcm",
        "chrSQEncoding.dcm",
    } <= set(taken)
    assert differ == {}


def test_a_synthesized_ct_series_is_read_by_it():
    files = synthesize_ct_series(real_ct_template(large=False), slices=3, seed="fastread")
    for data in files:
        fast = read_file(data)
        assert fast is not None
        assert differences(fast, pydicom.dcmread(io.BytesIO(data))) == []


def _ct() -> bytes:
    return Path(get_testdata_file("CT_small.dcm")).read_bytes()


def _end_of_meta(data: bytes) -> int:
    meta_length = struct.unpack_from("<L", data, 132 + 8)[0]
    return 132 + 12 + meta_length


def _with_element(data: bytes, element: bytes) -> bytes:
    """`data` with `element` (encoded bytes) as the first element after the file meta."""
    end = _end_of_meta(data)
    return data[:end] + element + data[end:]


def _explicit(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"UN", b"SQ", b"UT"):
        return struct.pack("<HH2sHL", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


UNDEFINED = 0xFFFFFFFF
ITEM_OF_UNDEFINED_LENGTH = struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED)
ITEM_END = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
SEQUENCE_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)

UNCOMMON = {
    "implicit VR": lambda: Path(get_testdata_file("MR_small_implicit.dcm")).read_bytes(),
    "big endian": lambda: Path(get_testdata_file("MR_small_bigendian.dcm")).read_bytes(),
    "deflated": lambda: Path(get_testdata_file("image_dfl.dcm")).read_bytes(),
    "no preamble": lambda: _ct()[132:],
    "cut short in a value": lambda: _ct()[:-10],
    "cut short in a header": lambda: _ct() + b"\x08\x00",
    "only the file meta": lambda: _ct()[: _end_of_meta(_ct())],
    "a command set": lambda: _with_element(_ct(), struct.pack("<HHLL", 0x0000, 0x0000, 4, 0)),
    "a VR pydicom does not know": lambda: _with_element(_ct(), _explicit(0x0008, 0x0001, b"XX", b"ab")),
    "an undefined-length UN": lambda: _with_element(
        _ct(),
        struct.pack("<HH2sHL", 0x0009, 0x1001, b"UN", 0, UNDEFINED)
        + ITEM_OF_UNDEFINED_LENGTH
        + ITEM_END
        + SEQUENCE_END,
    ),
    "an item in implicit VR": lambda: _with_element(
        _ct(),
        struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, UNDEFINED)
        + ITEM_OF_UNDEFINED_LENGTH
        + struct.pack("<HHL", 0x0008, 0x1150, 4)
        + b"1.2\x00"
        + ITEM_END
        + SEQUENCE_END,
    ),
    "a sequence without its delimiter": lambda: _ct() + struct.pack("<HH2sHL", 0x7FE1, 0x0010, b"SQ", 0, UNDEFINED),
}


@pytest.mark.parametrize("case", UNCOMMON, ids=list(UNCOMMON))
def test_any_other_file_is_left_to_pydicom(case):
    data = UNCOMMON[case]()
    assert read_file(data) is None
    try:
        expected = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - the same failure either way
        with pytest.raises(type(exc)):
            dcmread_bytes(data)
    else:
        assert differences(dcmread_bytes(data), expected) == []


def test_a_sequence_of_explicit_items_it_reads_itself_as_pydicom_does():
    sequence = (
        struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, UNDEFINED)
        + ITEM_OF_UNDEFINED_LENGTH
        + _explicit(0x0008, 0x1150, b"UI", b"1.2\x00")
        + ITEM_END
        + struct.pack("<HHL", 0xFFFE, 0xE000, 12)
        + _explicit(0x0008, 0x1155, b"UI", b"1.3\x00")
        + SEQUENCE_END
    )
    data = _with_element(_ct(), sequence)
    fast = read_file(data)
    assert fast is not None
    assert differences(fast, pydicom.dcmread(io.BytesIO(data))) == []
    items = fast[0x00081140].value
    assert [item.get("ReferencedSOPClassUID") for item in items] == ["1.2", None]
    assert [item.is_undefined_length_sequence_item for item in items] == [True, False]


def _outcome(data: bytes):
    try:
        result = deidentify(data, space=space(), subject_code=SUBJECT, options=DEFAULT)
    except DeidRejected as rejection:
        return rejection.code, str(rejection.reason)
    return result.data, result.index, result.actions


def test_the_engine_gives_the_same_outputs_and_rejections_without_it(monkeypatch):
    paths = real_dicom_files()
    fast = [_outcome(path.read_bytes()) for path in paths]
    monkeypatch.setattr(engine, "read_file", lambda data: None)
    monkeypatch.setattr(fastread, "read_file", lambda data: None)
    slow = [_outcome(path.read_bytes()) for path in paths]
    assert [p.name for p, a, b in zip(paths, fast, slow, strict=True) if a != b] == []
    assert sum(1 for outcome in fast if isinstance(outcome[0], bytes)) >= 20  # de-identified, not only rejected


def _mutated(rng: random.Random, data: bytes) -> bytes:
    """`data` with a few bytes changed, cut out, put in, or its end cut off; half of the changes in the file meta
    and the first elements, where a changed byte turns into another tag, VR or length."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if len(out) < 140:
            break
        pos = rng.randrange(132, min(len(out), 400 if rng.random() < 0.5 else 4000))
        kind = rng.random()
        if kind < 0.5:
            out[pos] = rng.randrange(256)
        elif kind < 0.7:
            del out[pos : pos + rng.randint(1, 8)]
        elif kind < 0.85:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            out = out[: rng.randrange(132, len(out))]
    return bytes(out)


def test_damaged_files_read_as_pydicom_reads_them_or_are_left_to_it():
    """Real files with random damage (a fixed seed): each is either left to pydicom or read exactly as pydicom
    reads it; none is read where pydicom refuses it."""
    originals = [
        Path(get_testdata_file(name)).read_bytes()
        for name in ("CT_small.dcm", "eCT_Supplemental.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg.dcm")
    ]
    rng = random.Random(20261206)
    taken, wrong = 0, []
    for n in range(3000):
        data = _mutated(rng, rng.choice(originals))
        fast = read_file(data)
        if fast is None:
            continue
        taken += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                slow = pydicom.dcmread(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - pydicom refuses what was read: a failure of this test
            wrong.append((n, type(exc).__name__))
            continue
        found = differences(fast, slow)
        if found:
            wrong.append((n, found[0]))
    assert taken >= 300
    assert wrong == []


@pytest.fixture(scope="module")
def corpus_and_outputs() -> list[bytes]:
    """Every real file of the corpus, then the engine's output of each it de-identifies (de-identified once for the
    tests that read both)."""
    datas = [path.read_bytes() for path in real_dicom_files()]
    return datas + [outcome[0] for outcome in map(_outcome, datas) if isinstance(outcome[0], bytes)]


def _opened_by_pydicom(ds: Dataset, is_sequence) -> None:
    """What reverify did before fastread.open_sequences: each sequence converted by Dataset.__getitem__."""
    for tag, elem in list(ds._dict.items()):
        if is_sequence(tag, elem):
            for item in ds[tag].value or []:
                _opened_by_pydicom(item, is_sequence)


def _is_sequence(tag, elem) -> bool:
    return elem.VR == "SQ" or (elem.VR == "UN" and pydicom.datadict.dictionary_VR(tag) == "SQ")


def test_sequences_it_opens_are_the_ones_pydicom_converts(corpus_and_outputs):
    """Every sequence of every real file (and of the engine's outputs), opened by open_sequences, holds exactly
    the items, raw elements and attributes that pydicom's own conversion gives; and it reads every defined-length
    one in explicit VR little endian itself (pydicom converts those in implicit VR or big endian, and a UN that the
    dictionary calls a sequence)."""
    read_here = 0
    fallbacks = []
    original = fastread._defined_length_sequence

    def counted(ds, elem):
        nonlocal read_here
        sequence = original(ds, elem)
        if sequence is None and elem.VR == "SQ" and not elem.is_implicit_VR and elem.is_little_endian and elem.value:
            fallbacks.append(elem.tag)
        else:
            read_here += 1
        return sequence

    datas = corpus_and_outputs
    differ = {}
    for n, data in enumerate(datas):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                slow = pydicom.dcmread(io.BytesIO(data), force=True)
                _opened_by_pydicom(slow, _is_sequence)
            except Exception as exc:  # noqa: BLE001 - then open_sequences fails too
                fast = pydicom.dcmread(io.BytesIO(data), force=True)
                with pytest.raises(Exception) as raised:  # noqa: PT011 - whichever pydicom raises
                    fastread.open_sequences(fast, _is_sequence)
                assert isinstance(raised.value, type(exc) | ValueError)
                continue
            fast = pydicom.dcmread(io.BytesIO(data), force=True)
            fastread._defined_length_sequence = counted
            try:
                fastread.open_sequences(fast, _is_sequence)
            finally:
                fastread._defined_length_sequence = original
        found = differences(fast, slow, str(n))
        if found:
            differ[n] = found[:3]
    assert differ == {}
    assert read_here >= 200
    assert fallbacks == []


def test_a_defined_length_sequence_with_nested_and_delimited_items_opens_as_pydicom_converts_it():
    inner = ITEM_OF_UNDEFINED_LENGTH + _explicit(0x0008, 0x1150, b"UI", b"1.2\x00") + ITEM_END
    nested = struct.pack("<HH2sHL", 0x0008, 0x1199, b"SQ", 0, UNDEFINED) + inner + SEQUENCE_END
    item = _explicit(0x0008, 0x1155, b"UI", b"1.3\x00") + nested
    value = struct.pack("<HHL", 0xFFFE, 0xE000, len(item)) + item + ITEM_OF_UNDEFINED_LENGTH + ITEM_END
    data = _with_element(_ct(), _explicit(0x0008, 0x1140, b"SQ", value))
    slow = pydicom.dcmread(io.BytesIO(data))
    _opened_by_pydicom(slow, _is_sequence)
    fast = pydicom.dcmread(io.BytesIO(data))
    fastread.open_sequences(fast, _is_sequence)
    assert differences(fast, slow) == []
    assert [i.is_undefined_length_sequence_item for i in fast[0x00081140].value] == [False, True]
    assert fast[0x00081140].value[0][0x00081199].value[0].ReferencedSOPClassUID == "1.2"
    # A value this reader does not take (an item in implicit VR) is converted by pydicom, to the same result.
    implicit = struct.pack("<HHL", 0xFFFE, 0xE000, 12) + struct.pack("<HHL", 0x0008, 0x1150, 4) + b"1.2\x00"
    data = _with_element(_ct(), _explicit(0x0008, 0x1140, b"SQ", implicit))
    slow, fast = pydicom.dcmread(io.BytesIO(data)), pydicom.dcmread(io.BytesIO(data))
    _opened_by_pydicom(slow, _is_sequence)
    fastread.open_sequences(fast, _is_sequence)
    assert differences(fast, slow) == []


def _joined(value) -> str:
    return "\\".join(str(v) for v in value) if isinstance(value, list | tuple | MultiValue) else str(value)


def test_cs_ui_and_us_values_it_reads_raw_are_the_values_pydicom_converts(corpus_and_outputs):
    """raw_text and raw_us (what reverify reads of the values it checks) against pydicom's conversion of the
    same element, for every CS, UI and US element of every real file and of the engine's outputs."""
    datas = corpus_and_outputs
    read, differ = {"CS": 0, "UI": 0, "US": 0}, []

    def compare(ds: Dataset, where: str) -> None:
        for tag, elem in list(ds._dict.items()):
            text, number = fastread.raw_text(elem), fastread.raw_us(elem)
            if elem.VR == "SQ":
                for n, item in enumerate(ds[tag].value or []):
                    compare(item, f"{where} ({tag})[{n}]")
                continue
            if text is None and number is None:
                continue
            read[elem.VR] += 1
            value = ds[tag].value
            expected = (_joined(value) if value is not None else "") if text is not None else value
            if (text if text is not None else number) != expected:
                differ.append(f"{where} {tag}")

    for n, data in enumerate(datas):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(io.BytesIO(data), force=True)
            except Exception:  # noqa: BLE001 - not a file pydicom reads: nothing to compare
                continue
            compare(ds, str(n))
    assert differ == []
    assert min(read.values()) >= 500
    # Values it leaves to pydicom: another VR, more than one number, an element already converted.
    assert fastread.raw_us(RawDataElement(0x00280010, "US", 4, b"\x01\x00\x02\x00", 0, False, True)) is None
    assert fastread.raw_text(RawDataElement(0x00100010, "PN", 4, b"A^B ", 0, False, True)) is None
    assert fastread.raw_text(pydicom.DataElement(0x00080060, "CS", "CT")) is None
    assert fastread.raw_text(RawDataElement(0x00080008, "CS", 8, b"A\\B \x00", 0, False, True)) == "A\\B"
