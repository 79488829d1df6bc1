"""The browser's door into trials.deid: the same engine as the server, run by Pyodide in a Web Worker.

Loaded next to the unchanged trials/deid sources and trials/ingest/validate.py (the server's checks of a received
file, run here on each original before it is de-identified, as the server runs them on a raw file); imports no
Django. `configure` takes the one subject's key
(never the trial key) and the trial's options as the server sends them; `run` de-identifies one file and
answers with the output bytes and a JSON record (what was done, never a value from the input).

`use_ocr` hands the engine the worker's Tesseract (static/src/deid/ocr.mjs) for the images it must read for
text. It is started only when a file first needs it: until then such a file's record says `ocr_wanted`, and
the worker starts OCR and runs the file again; if OCR cannot start, the file is held back with the reason.

`warm_once` runs the engine once on pydicom's own small CT with a throwaway key, touching nothing of the
subject's configuration: the worker calls it while the page waits for a folder, so that the browser compiles the
interpreter's hot paths to optimized code before the coordinator's files arrive rather than during their first
hundred or so (WebAssembly starts in a baseline tier and is optimized function by function as it runs).

`patient_hash` is the wrong-patient guard's first pass: the keyed hash of a file's Patient ID read from its
first bytes only (the header up to Patient ID, decoded as the engine decodes it), so the page knows whose files
it holds before any is de-identified. `run(data, hash_here=False)` leaves the output's SHA-256 to the worker
(Web Crypto hashes several times faster than Python's hashlib in WebAssembly); the worker then asks
`key_check` for the record's keyed tag.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from importlib.resources import files as package_files

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial
from pydicom.uid import DeflatedExplicitVRLittleEndian as DEFLATED

from trials.deid import DeidOptions, DeidRejected, burned_in, deidentify
from trials.deid.engine import (
    PATIENT_ID,
    SPECIFIC_CHARACTER_SET,
    _ascii,
    _looks_like_raw_dataset,
    dataset_encodings,
    source_patient_id,
)
from trials.deid.pseudonym import PseudonymSpace
from trials.ingest.validate import check_receivable

_configured: dict = {}
_ocr: dict = {"reader": None, "failure": "", "wanted": False}
_warm: dict = {}


def use_ocr(reader, failure: str = "") -> None:
    """The worker's OCR (a JavaScript object with `read`), or None and why it could not start."""
    _ocr.update(reader=reader, failure=failure)


def _read_frame(frame: bytes, module: burned_in.PixelModule):
    reader = _ocr["reader"]
    if reader is None:
        if not _ocr["failure"]:
            _ocr["wanted"] = True  # the worker starts OCR and runs the file again
            raise burned_in.OcrUnavailable("OCR is not started yet")
        raise burned_in.OcrUnavailable(_ocr["failure"])
    from pyodide.ffi import to_js

    answer = reader.read(
        to_js(memoryview(frame)),
        module.rows,
        module.columns,
        module.samples,
        module.bits_allocated,
        module.signed,
        module.little,
        module.photometric,
    )
    return float(answer.scale), [tuple(word) for word in answer.words.to_py()]


if burned_in.np is None:  # Pyodide; imported by the server's tests, the server's own OCR stays
    burned_in.use_external_ocr(_read_frame, margin=burned_in.BROWSER_MARGIN)


def options_from(payload: dict) -> DeidOptions:
    """DeidOptions from the server's JSON (trials.ingest.browser.deid_options_payload)."""
    return DeidOptions(
        retain_longitudinal_modified_dates=bool(payload["retain_longitudinal_modified_dates"]),
        clean_descriptors=bool(payload["clean_descriptors"]),
        retain_device_identity=bool(payload["retain_device_identity"]),
        retain_patient_characteristics=bool(payload["retain_patient_characteristics"]),
        private_tag_safelist=frozenset((str(c), int(e)) for c, e in payload["private_tag_safelist"]),
        accepted_sop_classes=frozenset(str(uid) for uid in payload["accepted_sop_classes"]),
        kept_text_attributes=frozenset(str(k) for k in payload["kept_text_attributes"]),
        burned_in_text=str(payload["burned_in_text"]),
    )


def configure(subject_key_hex: str, subject_code: str, options_json: str) -> None:
    _configured.clear()
    _configured.update(
        space=PseudonymSpace(bytes.fromhex(subject_key_hex)),
        subject_code=subject_code,
        options=options_from(json.loads(options_json)),
    )


def key_check(sha256: str) -> str:
    """The keyed tag of an output's SHA-256 (computed by the worker) for the file's record."""
    return _configured["space"].key_check(sha256)


_TAGS = [SPECIFIC_CHARACTER_SET, PATIENT_ID]  # what the first pass reads the values of; the rest is skipped


def _past_patient_id(tag, vr, length) -> bool:
    return tag > PATIENT_ID


def patient_hash(head) -> str | None:
    """The patient hash the engine will record for a file, from its first bytes (`head`, bytes or a Uint8Array):
    "" when the file has no Patient ID, None when these bytes do not settle it (not DICOM as the parser reads
    it, or the header goes on past them): the file is then judged by its de-identified record alone.
    """
    data = head.to_bytes() if hasattr(head, "to_bytes") else bytes(head)
    try:
        stream = io.BytesIO(data)
        try:
            ds = read_partial(stream, stop_when=_past_patient_id, specific_tags=_TAGS)
        except InvalidDicomError:
            if not _looks_like_raw_dataset(data):
                return None
            stream = io.BytesIO(data)
            ds = read_partial(stream, stop_when=_past_patient_id, force=True, specific_tags=_TAGS)
        # Settled only where the parser stopped at an element past Patient ID, before the end of these bytes
        # (a Patient ID cut short by them would give another hash); a deflated data set is not read here.
        meta = getattr(ds, "file_meta", None)
        if stream.tell() >= len(data) or (meta is not None and _ascii(meta._dict.get(0x00020010)) == DEFLATED):
            return None
        text = source_patient_id(ds, dataset_encodings(ds))  # as the engine takes it
    except Exception:  # noqa: BLE001 - anything unreadable here is decided by the engine's own run
        return None
    return _configured["space"].patient_hash(text) if text else ""


def run(data, hash_here: bool = True, timed: bool = False) -> tuple:
    """De-identify one file: (output bytes, record JSON); a rejected file gives (b"", its code and reason).

    `data` is bytes, or a JavaScript Uint8Array as Pyodide hands it over. Without `hash_here` the record leaves
    out `sha256` and `key_check`, for the caller to add (it hashes the output itself, then asks `key_check`).
    `timed` adds a third member, JSON of where the time went in milliseconds (`input`, taking the bytes in;
    `deid`, the engine; `hash`; `record`).
    """
    t0 = time.perf_counter()
    source = data.to_bytes() if hasattr(data, "to_bytes") else bytes(data)
    t1 = time.perf_counter()
    _ocr["wanted"] = False
    try:
        # What the server checks of a raw file before de-identifying it (bounded parsing, what serving needs):
        # it never sees this one, so the same refusals, with the same reasons, are made here.
        check_receivable(source)
        result = deidentify(
            source,
            space=_configured["space"],
            subject_code=_configured["subject_code"],
            options=_configured["options"],
        )
    except DeidRejected as exc:
        record = {"ok": False, "code": exc.code, "reason": exc.reason}
        if exc.code == "ocr_unavailable" and _ocr["wanted"]:
            record["ocr_wanted"] = True
        t2 = time.perf_counter()
        return (b"", json.dumps(record)) + ((_timings(t0, t1, t2, t2),) if timed else ())
    t2 = time.perf_counter()
    record = {"ok": True}
    if hash_here:
        sha256 = hashlib.sha256(result.data).hexdigest()
        record.update(sha256=sha256, key_check=key_check(sha256))
    t3 = time.perf_counter()
    record.update(
        sop_instance_uid=result.sop_instance_uid,
        study_instance_uid=result.study_instance_uid,
        series_instance_uid=result.series_instance_uid,
        patient_hash=result.source_patient_hash,
        actions=result.actions,
        method=result.deid_method,
    )
    return (result.data, json.dumps(record)) + ((_timings(t0, t1, t2, t3),) if timed else ())


def warm_once() -> None:
    """One run of the engine on a real CT header (pydicom's CT_small.dcm, part of its wheel) for the optimizing
    compiler's sake; its output is dropped. Its own key and options: the subject's are neither needed nor used."""
    if not _warm:
        _warm.update(
            sample=(package_files("pydicom") / "data" / "test_files" / "CT_small.dcm").read_bytes(),
            space=PseudonymSpace(bytes(32)),
            options=DeidOptions(),
        )
    check_receivable(_warm["sample"])
    deidentify(_warm["sample"], space=_warm["space"], subject_code="WARM-UP", options=_warm["options"])


def _timings(t0: float, t1: float, t2: float, t3: float) -> str:
    now = time.perf_counter()
    return json.dumps(
        {"input": (t1 - t0) * 1e3, "deid": (t2 - t1) * 1e3, "hash": (t3 - t2) * 1e3, "record": (now - t3) * 1e3}
    )


def profile(files) -> str:
    """For `manage.py bench browser_deid`: milliseconds per file, summed over `files` (each run once before),
    of the engine's steps, by timing its parse and its final check of the output apart."""
    from trials.deid import engine

    sources = [f.to_bytes() if hasattr(f, "to_bytes") else bytes(f) for f in files]
    spent = {"parse": 0.0, "verify": 0.0}
    parse, verify = engine._parse, engine.verify_bytes

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return wrapper

    engine._parse, engine.verify_bytes = timed("parse", parse), timed("verify", verify)
    try:
        start = time.perf_counter()
        for source in sources:
            with contextlib.suppress(DeidRejected):
                deidentify(
                    source,
                    space=_configured["space"],
                    subject_code=_configured["subject_code"],
                    options=_configured["options"],
                )
        total = time.perf_counter() - start
    finally:
        engine._parse, engine.verify_bytes = parse, verify
    hashing = time.perf_counter()
    for source in sources:
        hashlib.sha256(source).hexdigest()
    hashing = time.perf_counter() - hashing
    n = max(len(sources), 1)
    per_file = {
        "engine": total,
        "parse": spent["parse"],
        "verify": spent["verify"],
        "rest": total - spent["parse"] - spent["verify"],
        "hashlib": hashing,
    }
    return json.dumps({name: value * 1e3 / n for name, value in per_file.items()})
