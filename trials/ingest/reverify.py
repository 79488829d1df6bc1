"""The server's second look at a file de-identified in the site's browser.

The server never sees the original, so it checks what the received bytes and the browser's declaration
can show: the file was made with this subject's key (the declaration's key check), it says it was
de-identified by this trial's method, it names the patient by the subject code only, it holds only what the
trial's Annex E profile lets through, every instance UID is in the pseudonymous ``2.25.`` form, and no text
holds a resident registration number, a phone number or an e-mail address. The pixels of an image that may
carry text (the engine's own decision, trials.deid.burned_in.ocr_reasons, or the browser's record that it read
them) are read again by the server's OCR: text the browser should have redacted or refused, or bits left set
above Bits Stored, reject the file. A file failing any of these is rejected with the reason and never stored;
the reason names the attribute, never its value.

The identifier detectors are the engine's own (trials.deid.patterns); they look at every text value but UIDs,
the file meta's too, as the server path's verifier searches every byte of its output. The file meta and the
record of the method (its code sequence, Longitudinal Temporal Information Modified) must be what the engine
writes for the trial's options.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset
from pydicom.uid import UID

from ctims.i18n import Text, gettext_noop

from ..deid import DeidOptions, DeidRejected, DeidResult, burned_in, deidentify, patterns
from ..deid import profile as p
from ..deid.charsets import STRING_VRS
from ..deid.engine import CLASS_UID_TAGS, DICOM_ROOT, DUMMY_BY_VR, DUMMY_TEXT, _method_values, method_text
from ..deid.fastread import dcmread_bytes, open_sequences, raw_text, raw_us
from ..deid.index import build_index
from ..deid.pseudonym import PseudonymSpace
from ..deid.writer import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from ..dicomweb.wado import metadata_from_read
from ..models import BrowserDeidRecord, Instance, Upload

PATIENT_IDENTITY_REMOVED = 0x00120062
DEID_METHOD = 0x00120063
DEID_METHOD_CODES = 0x00120064
TEMPORAL_MODIFIED = 0x00280303
BURNED_IN_ANNOTATION = 0x00280301
SPECIFIC_CHARACTER_SET = 0x00080005
IMAGE_TYPE = 0x00080008
PIXEL_DATA = 0x7FE00010
# Attributes the engine writes itself; the profile's rule for them is not what the output shows.
WRITTEN_BY_ENGINE = frozenset(
    {SPECIFIC_CHARACTER_SET, PATIENT_IDENTITY_REMOVED, DEID_METHOD, DEID_METHOD_CODES, TEMPORAL_MODIFIED}
)
SUBJECT_CODE_KEYWORDS = frozenset({"PatientName", "PatientID", "ClinicalTrialSubjectID"})
# The file meta the engine writes (trials.deid.writer.file_meta): these elements, the implementation's own values.
ENGINE_FILE_META = {
    0x00020000: None,
    0x00020001: None,
    0x00020002: None,  # the SOP class, checked with the data set's
    0x00020003: None,  # the SOP instance, checked with the data set's
    0x00020010: None,  # the transfer syntax, checked by ingest's receipt checks
    0x00020012: IMPLEMENTATION_CLASS_UID,
    0x00020013: IMPLEMENTATION_VERSION_NAME,
}
log = logging.getLogger(__name__)
PSEUDONYM_UID = re.compile(r"2\.25\.(0|[1-9]\d{0,38})")

# The engine's own detectors (trials.deid.patterns): a resident registration number, a phone number or an
# e-mail address anywhere in free text rejects the file (PIPA forbids them in pseudonymised data).
FORBIDDEN = frozenset({patterns.RRN, patterns.PHONE, patterns.EMAIL})
SKIPPED = patterns.ALL_REASONS - FORBIDDEN


@dataclass(frozen=True)
class Reverified(DeidResult):
    """A browser's file that passed re-verification, with its DICOM JSON and frame layout made from the same read
    (trials.dicomweb.wado.metadata_from_read): ingest keeps them with the index row instead of parsing the bytes
    again. None where that read does not give them (the stored file's first read then makes them)."""

    metadata: dict | None = field(default=None, repr=False)
    pixel_layout: dict | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Declared:
    """The browser's declaration of one file (a BrowserDeidRecord)."""

    key_check: str
    patient_hash: str
    actions: Mapping[str, int] = field(default_factory=dict)


def _reject(code: str, reason: str) -> DeidRejected:
    return DeidRejected(code, reason)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(_text(v) for v in value)
    return str(value)


def _vr(tag: int, elem: Any) -> str:
    vr = elem.VR
    if vr and vr != "UN" and len(vr) == 2:
        return vr
    entry = DicomDictionary.get(tag)
    if entry is not None:
        return entry[0].split(" or ")[0]
    return "SQ" if getattr(elem, "length", 0) == 0xFFFFFFFF else (vr or "UN")


def _elements(ds: Dataset) -> Iterator[tuple[Dataset, int, str, Any]]:
    """(holder, tag, VR, raw element) of `ds` and of its sequences' items, depth first. Values are not
    converted: a check reads the bytes of only the values it needs (never the pixel data)."""
    for tag, elem in ds._dict.items():
        vr = _vr(tag, elem)
        yield ds, tag, vr, elem
        if vr == "SQ" and not isinstance(elem.value, bytes):
            for item in elem.value or []:
                yield from _elements(item)


def _name(tag: int) -> str:
    entry = DicomDictionary.get(tag)
    return entry[4] if entry is not None and entry[4] else f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _profile_action(tag: int, vr: str, profile: p.CompiledProfile) -> str | None:
    group = tag >> 16
    rule = profile.rules.get(tag)
    if rule is not None:
        action = rule.action
        if vr not in STRING_VRS and vr != "SQ" and action in (p.CLEAN, p.SHIFT):
            return rule.fallback
        if action == p.SHIFT and vr not in ("DA", "DT"):
            return p.KEEP if vr == "TM" else rule.fallback
        return action
    if 0x5000 <= group <= 0x50FF:
        return profile.curve_action
    if 0x6000 <= group <= 0x60FF:
        return profile.overlay_action
    if not p.defined_by_dicom(tag):
        return p.REMOVE  # the engine removes it
    return None


def _check_identifiers(tag: int, vr: str, elem: Any) -> None:
    """No resident registration number, phone number or e-mail address in any text value (the server path's
    verifier searches every byte of its output for them): descriptions, coded values, URLs, the file meta."""
    if vr in STRING_VRS and vr != "UI":
        found = next(patterns.find_identifiers(_text(elem.value), skip=SKIPPED), None)
        if found is not None:
            raise _reject(
                "identifying_text",
                Text(
                    gettext_noop("%(name)s holds what looks like an identifier (%(what)s); the file was not stored."),
                    **{"name": _name(tag), "what": found.reason},
                ),
            )


def _check_file_meta(meta: Dataset) -> None:
    """The file meta holds what the engine writes and nothing else (it writes a fresh one)."""
    for tag, elem in meta._dict.items():
        if tag not in ENGINE_FILE_META:
            raise _reject(
                "extra_attribute",
                Text(
                    gettext_noop("The file keeps %(name)s, which this trial's de-identification removes."),
                    **{"name": _name(tag)},
                ),
            )
        vr = _vr(tag, elem)
        _check_identifiers(tag, vr, elem)
        expected = ENGINE_FILE_META[tag]
        if expected is not None and _value(meta, tag) != expected:
            raise _reject(
                "extra_attribute",
                Text(
                    gettext_noop(
                        "The file keeps a real value in %(name)s, which this trial's de-identification replaces."
                    ),
                    **{"name": _name(tag)},
                ),
            )


def _check_element(
    holder: Dataset,
    tag: int,
    vr: str,
    elem: Any,
    *,
    subject_code: str,
    options: DeidOptions,
    profile: p.CompiledProfile,
) -> None:
    group, element = tag >> 16, tag & 0xFFFF
    _check_identifiers(tag, vr, elem)
    if group & 1:
        if 0x0010 <= element <= 0x00FF:
            return  # a private creator: kept only with a safelisted element of its block, checked there
        creator = holder._dict.get((group << 16) | (element >> 8))
        creator_name = _text(creator.value).strip(" \x00") if creator is not None else ""
        if (creator_name, element & 0xFF) not in options.private_tag_safelist:
            raise _reject(
                "extra_attribute",
                Text(
                    gettext_noop("The file keeps a private attribute %(name)s that this trial removes."),
                    **{"name": _name(tag)},
                ),
            )
        return
    if group <= 0x0002 or element == 0 or tag in WRITTEN_BY_ENGINE:
        return
    name = _name(tag)
    if name in SUBJECT_CODE_KEYWORDS:
        if _text(elem.value).strip(" \x00") != subject_code:
            raise _reject(
                "not_subject_code",
                Text(
                    gettext_noop("%(name)s is not the subject code %(subject)s."),
                    **{"name": name, "subject": subject_code},
                ),
            )
        return
    action = _profile_action(tag, vr, profile)
    if action == p.REMOVE:
        raise _reject(
            "extra_attribute",
            Text(
                gettext_noop("The file keeps %(name)s, which this trial's de-identification removes."), **{"name": name}
            ),
        )
    if action in (p.EMPTY, p.DUMMY):
        text = "" if vr == "SQ" else _text(elem.value).strip(" \x00")
        empty = not elem.value if vr == "SQ" else not text
        # A UID's dummy is its pseudonym (the engine maps every UID it does not remove or empty): checked below.
        allowed = action == p.DUMMY and (vr == "UI" or text == DUMMY_BY_VR.get(vr, DUMMY_TEXT))
        if not empty and not allowed:
            raise _reject(
                "extra_attribute",
                Text(
                    gettext_noop(
                        "The file keeps a real value in %(name)s, which this trial's de-identification replaces."
                    ),
                    **{"name": name},
                ),
            )
    if vr == "UI" and tag not in CLASS_UID_TAGS and action != p.KEEP:
        for uid in _text(elem.value).split("\\"):
            uid = uid.strip(" \x00")
            if uid and not uid.startswith(DICOM_ROOT) and not PSEUDONYM_UID.fullmatch(uid):
                raise _reject(
                    "uid_not_pseudonymous",
                    Text(gettext_noop("%(name)s is not a pseudonymous UID of this trial (2.25.…)."), **{"name": name}),
                )


def _value(ds: Dataset, tag: int) -> str:
    """`tag`'s value as text, trimmed ("" where `ds` has none); a raw CS or UI value is read as pydicom reads it."""
    elem = ds._dict.get(tag)
    if elem is None:
        return ""
    text = raw_text(elem)
    return (text if text is not None else _text(ds[tag].value)).strip(" \x00")


def _us(ds: Dataset, tag: int, default: int) -> int:
    """`tag`'s US value (`default` where `ds` has none or it is empty); a raw one is read as pydicom reads it."""
    elem = ds._dict.get(tag)
    if elem is None:
        return default
    number = raw_us(elem)
    return int((number if number is not None else ds[tag].value) or default)


def _pixel_module(ds: Dataset) -> burned_in.PixelModule:
    frames = _value(ds, 0x00280008)
    bits_allocated = _us(ds, 0x00280100, 0)
    return burned_in.PixelModule(
        rows=_us(ds, 0x00280010, 0),
        columns=_us(ds, 0x00280011, 0),
        samples=_us(ds, 0x00280002, 1),
        frames=int(frames) if frames.isdecimal() else 1,
        bits_allocated=bits_allocated,
        bits_stored=_us(ds, 0x00280101, bits_allocated),
        signed=_us(ds, 0x00280103, 0) == 1,
        little=ds.original_encoding[1] is not False,
        photometric=_value(ds, 0x00280004).upper(),
        planar=_us(ds, 0x00280006, 0) == 1,
    )


def _check_pixels(ds: Dataset, declared: Declared) -> None:
    """Read the pixels again where they may carry text; reject a file still carrying any."""
    if PIXEL_DATA not in ds._dict:
        return
    reasons = burned_in.ocr_reasons(
        image_type=_value(ds, IMAGE_TYPE).split("\\"),
        sop_class_uid=_value(ds, 0x00080016),
        burned_in_annotation=_value(ds, BURNED_IN_ANNOTATION),
        has_overlay=any(0x6000 <= tag >> 16 <= 0x60FF and not (tag >> 16) & 1 for tag in ds._dict),
    )
    if declared.actions.get("pixels_examined"):
        reasons.append("read by the browser")
    module = _pixel_module(ds)
    encapsulated = UID(_value(ds.file_meta, 0x00020010)).is_encapsulated
    if (
        not encapsulated
        and 0 < module.bits_stored < module.bits_allocated
        and burned_in.high_bits_set(ds._dict[PIXEL_DATA].value, module)
    ):
        raise _reject(
            "high_bits",
            Text(
                gettext_noop(
                    "The image has bits set above Bits Stored (an overlay that may hold text); it was not stored."
                )
            ),
        )
    if not reasons:
        return
    burned_in.require_examinable(module.photometric)
    try:
        if encapsulated:
            frames = ds.pixel_array.reshape(module.shape)
        else:
            frames = burned_in.native_array(ds._dict[PIXEL_DATA].value, module, writable=False)
        found = burned_in.has_text(frames, module.photometric)
    except burned_in.OcrUnavailable:
        rejection = _reject(
            "ocr_unavailable",
            Text(
                gettext_noop(
                    "This image may carry text in its pixels and the server could not read it to check; it was not "
                    "stored. Please tell the trial's imaging team."
                )
            ),
        )
    except Exception as exc:  # noqa: BLE001 - only the type is kept
        rejection = _reject(
            "pixels_unreadable",
            Text(
                gettext_noop("The image's pixels could not be read to check them for text (%(type)s)."),
                type=type(exc).__name__,
            ),
        )
    else:
        rejection = None
        if found and declared.actions.get("pixels_rewritten"):
            # The browser blanked the text its OCR read; the server's OCR (another build of Tesseract) reads more.
            rejection = _reject(
                "burned_in_text",
                Text(
                    gettext_noop(
                        "The server still found text in the image's pixels after your browser blanked the text it "
                        "found, so it was not stored. Please export the image without annotations, or tell the "
                        "trial's imaging team."
                    )
                ),
            )
        elif found:
            rejection = _reject(
                "burned_in_text",
                Text(
                    gettext_noop(
                        "The server found text in the image's pixels, which may identify the patient; it was not "
                        "stored. Text in such images must be removed at the site before they are sent."
                    )
                ),
            )
    if rejection is not None:
        raise rejection


def _records_the_method(ds: Dataset, options: DeidOptions) -> bool:
    """The De-identification Method Code Sequence and Longitudinal Temporal Information Modified say what the
    engine writes for this trial's options, and nothing else."""
    temporal = "MODIFIED" if options.retain_longitudinal_modified_dates else "REMOVED"
    if _value(ds, TEMPORAL_MODIFIED) != temporal:
        return False
    codes = ds._dict.get(DEID_METHOD_CODES)
    items = [] if codes is None or isinstance(codes.value, bytes) else list(codes.value or [])
    written = [
        (_value(item, 0x00080100), _value(item, 0x00080102), _value(item, 0x00080104), len(item._dict))
        for item in items
    ]
    return written == [(value, "DCM", meaning, 3) for value, meaning, _ in _method_values(options)]


def _parse(data: bytes) -> tuple[Dataset, Any, list[tuple[Dataset, int, str, Any]]]:
    """`data` read as DICOM: the data set, its index and every element (sequences opened); DeidRejected if it
    cannot be read."""
    try:
        ds = dcmread_bytes(data)
        # The index reads raw values in parsed sequences; walking the elements below converts them all.
        open_sequences(ds, lambda tag, elem: _vr(tag, elem) == "SQ")
        index = build_index(ds, little=ds.original_encoding[1] is not False)
        ds_elements = list(_elements(ds))
    except Exception as exc:  # noqa: BLE001 - only the type is kept: a parser message may quote a value
        rejection = _reject(
            "not_dicom",
            Text(gettext_noop("The file could not be read as DICOM (%(type)s)."), **{"type": type(exc).__name__}),
        )
    else:
        return ds, index, ds_elements
    raise rejection


def _check_identity_removed(ds: Dataset) -> None:
    if _value(ds, PATIENT_IDENTITY_REMOVED).upper() != "YES":
        raise _reject(
            "not_deidentified",
            Text(
                gettext_noop(
                    "This file was not de-identified: it does not say Patient Identity Removed. Nothing identified is stored."
                )
            ),
        )


def _check_content(
    ds: Dataset, ds_elements: list[tuple[Dataset, int, str, Any]], *, subject_code: str, options: DeidOptions
) -> None:
    """What the bytes alone show: the engine's file meta naming this instance, only attributes the trial's
    profile keeps (with no identifier pattern in any text value), the subject code as the patient's name and
    ID, and pseudonymous filing UIDs."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or _value(meta, 0x00020003) != _value(ds, 0x00080018):
        raise _reject(
            "uid_not_pseudonymous", Text(gettext_noop("The file's header names another instance than its data set."))
        )
    _check_file_meta(meta)
    profile = p.compile_profile(options)
    for holder, tag, vr, elem in ds_elements:
        _check_element(holder, tag, vr, elem, subject_code=subject_code, options=options, profile=profile)
    for name, tag in (
        ("SOPInstanceUID", 0x00080018),
        ("StudyInstanceUID", 0x0020000D),
        ("SeriesInstanceUID", 0x0020000E),
    ):
        if not PSEUDONYM_UID.fullmatch(_value(ds, tag)):
            raise _reject(
                "uid_not_pseudonymous",
                Text(gettext_noop("%(name)s is not a pseudonymous UID of this trial (2.25.…)."), **{"name": name}),
            )


def recheck_stored(data: bytes, *, subject_code: str, options: DeidOptions) -> None:
    """Check a stored de-identified file again with today's checks of received bytes (DeidRejected if one
    fails): those that do not depend on the trial's settings at the time it was stored (the method it declares,
    the kinds of image accepted) nor on the browser's record of it."""
    ds, _index, ds_elements = _parse(data)
    _check_identity_removed(ds)
    _check_content(ds, ds_elements, subject_code=subject_code, options=options)


def reverify(
    data: bytes,
    *,
    space: PseudonymSpace,
    subject_code: str,
    options: DeidOptions,
    declared: Declared | None,
    sha256: str | None = None,
) -> DeidResult:
    """Check one browser-de-identified file for subject `subject_code`; its DeidResult, or DeidRejected.

    `sha256`: the SHA-256 of `data` where the caller has just checked it (ingest reads the quarantine copy
    verified against it), so it is not computed again.
    """
    if declared is None:
        raise _reject(
            "no_browser_record",
            Text(
                gettext_noop("The browser sent this file without its de-identification record; please upload it again.")
            ),
        )
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(declared.key_check, space.key_check(sha256)):
        raise _reject(
            "wrong_subject_key",
            Text(
                gettext_noop(
                    "This file was not de-identified with the key of subject %(subject)s: it may belong to another "
                    "subject's upload. Reload the page and upload it again."
                ),
                **{"subject": subject_code},
            ),
        )
    ds, index, ds_elements = _parse(data)
    _check_identity_removed(ds)
    expected_method = method_text(options)
    if _value(ds, DEID_METHOD).split("\\") != expected_method or not _records_the_method(ds, options):
        raise _reject(
            "deid_method",
            Text(
                gettext_noop("The file declares a de-identification method other than this trial's (%(method)s)."),
                **{"method": "; ".join(expected_method)},
            ),
        )
    sop_class = _value(ds, 0x00080016)
    if sop_class not in options.accepted_sop_classes:
        raise _reject("sop_class_not_accepted", Text(gettext_noop("This kind of image is not accepted by this trial.")))
    if _value(ds, BURNED_IN_ANNOTATION).upper() == "YES":
        raise _reject(
            "burned_in_annotation", Text(gettext_noop("The image says it has burned-in annotation; it was not stored."))
        )
    _check_content(ds, ds_elements, subject_code=subject_code, options=options)
    meta, sop_instance = ds.file_meta, _value(ds, 0x00080018)
    _check_pixels(ds, declared)

    transfer_syntax = str(UID(_value(meta, 0x00020010)))
    metadata, layout = _metadata(ds, data, transfer_syntax_uid=transfer_syntax)
    return Reverified(
        metadata=metadata,
        pixel_layout=layout,
        data=data,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        study_instance_uid=_value(ds, 0x0020000D) or None,
        series_instance_uid=_value(ds, 0x0020000E) or None,
        frame_of_reference_uid=_value(ds, 0x00200052) or None,
        source_patient_hash=declared.patient_hash,
        transfer_syntax_uid=transfer_syntax,
        actions=dict(declared.actions),
        index=index,
        deid_method="; ".join(expected_method),
    )


def _metadata(ds: Dataset, data: bytes, *, transfer_syntax_uid: str) -> tuple[dict | None, dict | None]:
    """The file's DICOM JSON and frame layout from the re-verification's read of it, or (None, None)."""
    made = Instance(transfer_syntax_uid=transfer_syntax_uid)
    try:
        metadata_from_read(made, ds, data)
    except Exception as exc:  # noqa: BLE001 - only the type is logged; the stored file's first read makes them
        log.warning("a re-verified file's metadata is left for its first read (%s)", type(exc).__name__)
        return None, None
    return made.metadata, made.pixel_layout


def file_processor(
    *,
    upload: Upload,
    shas: list[str],
    space: PseudonymSpace,
    subject_code: str,
    options: DeidOptions,
    records: Mapping[str, BrowserDeidRecord] | None = None,
) -> Callable[[bytes, str], DeidResult]:
    """How ingest turns one received file of `upload` into a DeidResult (or DeidRejected).

    Server path: the engine de-identifies the raw file. Browser path: the file arrived de-identified and is
    re-verified against the browser's record of it: the one kept for the upload (looked up once for the batch's
    `shas`), or else the one that came with it in `records` (checked, saved with the file's row).
    """
    if upload.deid_path != Upload.DeidPath.BROWSER:
        return lambda raw, _sha: deidentify(raw, space=space, subject_code=subject_code, options=options)
    kept = {r.sha256: r for r in BrowserDeidRecord.objects.filter(upload=upload, sha256__in=shas)}
    declared = {
        sha: Declared(key_check=r.key_check, patient_hash=r.patient_hash, actions=r.actions)
        for sha, r in {**(records or {}), **kept}.items()  # a record kept before stands, as when saved
    }
    return lambda raw, sha: reverify(
        raw, space=space, subject_code=subject_code, options=options, declared=declared.get(sha), sha256=sha
    )
