"""The browser's door into trials.deid: the same engine as the server, run by Pyodide in a Web Worker.

Loaded next to the unchanged trials/deid sources; imports no Django. `configure` takes the one subject's key
(never the trial key) and the trial's options as the server sends them; `run` de-identifies one file and
answers with the output bytes and a JSON record (what was done, never a value from the input).

`use_ocr` hands the engine the worker's Tesseract (static/src/deid/ocr.mjs) for the images it must read for
text. It is started only when a file first needs it: until then such a file's record says `ocr_wanted`, and
the worker starts OCR and runs the file again; if OCR cannot start, the file is held back with the reason.
"""

from __future__ import annotations

import hashlib
import json

from trials.deid import DeidOptions, DeidRejected, burned_in, deidentify
from trials.deid.pseudonym import PseudonymSpace

_configured: dict = {}
_ocr: dict = {"reader": None, "failure": "", "wanted": False}


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
    burned_in.use_external_ocr(_read_frame)


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


def run(data) -> tuple[bytes, str]:
    """De-identify one file: (output bytes, record JSON); a rejected file gives (b"", its code and reason).

    `data` is bytes, or a JavaScript Uint8Array as Pyodide hands it over.
    """
    source = data.to_bytes() if hasattr(data, "to_bytes") else bytes(data)
    _ocr["wanted"] = False
    try:
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
        return b"", json.dumps(record)
    sha256 = hashlib.sha256(result.data).hexdigest()
    record = {
        "ok": True,
        "sha256": sha256,
        "key_check": _configured["space"].key_check(sha256),
        "sop_instance_uid": result.sop_instance_uid,
        "study_instance_uid": result.study_instance_uid,
        "series_instance_uid": result.series_instance_uid,
        "patient_hash": result.source_patient_hash,
        "actions": result.actions,
        "method": result.deid_method,
    }
    return result.data, json.dumps(record)
