"""The browser's door into trials.deid: the same engine as the server, run by Pyodide in a Web Worker.

Loaded next to the unchanged trials/deid sources; imports no Django. `configure` takes the one subject's key
(never the trial key) and the trial's options as the server sends them; `run` de-identifies one file and
answers with the output bytes and a JSON record (what was done, never a value from the input).
"""

from __future__ import annotations

import hashlib
import json

from trials.deid import DeidOptions, DeidRejected, deidentify
from trials.deid.pseudonym import PseudonymSpace

_configured: dict = {}


def options_from(payload: dict) -> DeidOptions:
    """DeidOptions from the server's JSON (trials.ingest.browser.deid_options_payload)."""
    return DeidOptions(
        retain_longitudinal_modified_dates=bool(payload["retain_longitudinal_modified_dates"]),
        clean_descriptors=bool(payload["clean_descriptors"]),
        retain_device_identity=bool(payload["retain_device_identity"]),
        retain_patient_characteristics=bool(payload["retain_patient_characteristics"]),
        private_tag_safelist=frozenset((str(c), int(e)) for c, e in payload["private_tag_safelist"]),
        accepted_sop_classes=frozenset(str(uid) for uid in payload["accepted_sop_classes"]),
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
    try:
        result = deidentify(
            source,
            space=_configured["space"],
            subject_code=_configured["subject_code"],
            options=_configured["options"],
        )
    except DeidRejected as exc:
        return b"", json.dumps({"ok": False, "code": exc.code, "reason": exc.reason})
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
