"""One engine, two places: Pyodide under Node (the upload page's bundle) gives the server's bytes exactly."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
from dataclasses import MISSING
from pathlib import Path

import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.uid import SecondaryCaptureImageStorage

from trials.deid import DeidOptions
from trials.deid.pseudonym import subject_key
from trials.ingest.browser import deid_options_payload
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series

from .deid.factories import KEY_ALPHA, canary_instance, part10

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "static" / "dist" / "deid"
SUBJECT = "ALPHA-SEO-001"

# Real files from pydicom and pydicom-data: CT and MR in every transfer syntax family (explicit, implicit, big
# endian, RLE, JPEG 2000, JPEG-LS, JPEG lossless), multi-frame enhanced CT/MR, overlays and private tags,
# Japanese and Korean ISO 2022 character sets, GB18030, and files the engine must reject (truncated, no pixels).
CORPUS = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_truncated.dcm",
    "693_J2KR.dcm",
    "693_UNCI.dcm",
    "MR2_J2KI.dcm",
    "bad_sequence.dcm",
    "explicit_VR-UN.dcm",
    "eCT_Supplemental.dcm",
    "emri_small.dcm",
    "emri_small_RLE.dcm",
    "emri_small_big_endian.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm",
    "J2K_pixelrep_mismatch.dcm",
]
HEAD = 65536  # uploader.js's HEAD_BYTES: what the wrong-patient guard's first pass reads of each file
CHARSETS = ["chrI2.dcm", "chrKoreanMulti.dcm", "chrH32.dcm", "chrX1.dcm", "chrX2.dcm"]


def _entry():
    spec = importlib.util.spec_from_file_location("ctims_deid_entry", ROOT / "static/src/deid/ctims_deid_entry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_corpus(folder: Path) -> list[Path]:
    """The corpus as files in `folder`, in a fixed order."""
    files = [Path(get_testdata_file(name)) for name in CORPUS]
    files += [Path(next(p for p in get_charset_files(name))) for name in CHARSETS]
    paths = []
    for n, source in enumerate(files):
        paths.append(folder / f"{n:02d}-{source.name}")
        shutil.copyfile(source, paths[-1])
    extra = {
        "korean-canaries.dcm": part10(canary_instance().dataset),
        "ct-512.dcm": synthesize_ct_series(real_ct_template(large=True), slices=1, seed="identity")[0],
    }
    for name, data in extra.items():
        paths.append(folder / name)
        paths[-1].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def _run_node(request: dict) -> dict:
    if not (BUNDLE / "manifest.json").exists():
        pytest.fail("static/dist/deid/ is not built: run `node scripts/build-frontend.mjs` (make test does)")
    answer = subprocess.run(
        ["node", str(ROOT / "scripts/deid-node.mjs"), str(BUNDLE)],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=300,
        check=False,
        env={**os.environ, "NODE_OPTIONS": ""},
    )
    assert answer.returncode == 0, answer.stderr.decode()[-2000:]
    return json.loads(answer.stdout)


def test_pyodide_under_node_gives_byte_identical_output_for_real_files(corpus):
    options = DeidOptions(
        accepted_sop_classes=DeidOptions().accepted_sop_classes | {SecondaryCaptureImageStorage},
        private_tag_safelist=frozenset({("SIEMENS CSA HEADER", 0x08)}),
    )
    key = subject_key(KEY_ALPHA, SUBJECT)
    payload = deid_options_payload(options)
    entry = _entry()
    entry.configure(key.hex(), SUBJECT, json.dumps(payload))
    expected = []
    for path in corpus:
        data, record = entry.run(path.read_bytes())
        expected.append((hashlib.sha256(data).hexdigest() if data else None, json.loads(record)))

    # The page's worker warms the engine up before and after the subject's key arrives: nothing of it may show.
    answer = _run_node(
        {
            "key": key.hex(),
            "subject": SUBJECT,
            "options": payload,
            "files": [str(p) for p in corpus],
            "head": HEAD,
            "warm": 3,
        }
    )

    accepted = examined = held = 0
    for path, (sha, record), got in zip(corpus, expected, answer["results"], strict=True):
        # The images the server reads for text (secondary MR, overlays) are read by the browser's OCR too;
        # none of the corpus has text in its pixels, so both pass them with their pixels untouched. A
        # compressed one the browser cannot decode: it is held back at the site with the reason.
        if record.get("actions", {}).get("pixels_examined") and "compressed image" in got["record"].get("reason", ""):
            assert got["record"]["code"] == "ocr_unavailable", path.name
            held += 1
            continue
        examined += bool(record.get("actions", {}).get("pixels_examined"))
        assert got["record"] == record, path.name
        # The guard's first pass in the browser, from the file's first bytes: the engine's patient hash.
        if record["ok"] and got["patientHash"] is not None:
            assert got["patientHash"] == record["patient_hash"], path.name
        assert got["patientHash"] == entry.patient_hash(path.read_bytes()[:HEAD]), path.name
        assert set(got["timing"]) == {"input", "deid", "hash", "record", "output"}
        if sha is not None:
            accepted += 1
            assert hashlib.sha256(Path(f"{path}.out").read_bytes()).hexdigest() == sha, path.name
            assert record["sha256"] == sha
    # The corpus is mostly images the engine takes, byte for byte the same in both places; the rest are its
    # refusals, equal in both places too. Primary CT slices are never read by OCR.
    assert accepted >= 12 and examined > 0 and held > 0 and accepted + held < len(corpus)
    primary = [n for n, p in enumerate(corpus) if p.name.startswith("ct-512")]
    assert primary and not any(answer["results"][n]["record"]["actions"].get("pixels_examined") for n in primary)
    assert answer["ocrStartMs"] > 0  # OCR started for the images that needed it, once
    assert answer["snapshot"] is True  # the engine started from the build's memory snapshot


def test_the_warm_up_leaves_the_subjects_configuration_and_output_as_they_were(corpus):
    key = subject_key(KEY_ALPHA, SUBJECT)
    entry = _entry()
    entry.configure(key.hex(), SUBJECT, json.dumps(deid_options_payload(DeidOptions())))
    configured = dict(entry._configured)
    before = entry.run(corpus[0].read_bytes())
    entry.warm_once()
    entry.warm_once()
    assert entry._configured == configured
    assert entry.run(corpus[0].read_bytes()) == before
    # It needs nothing configured: a page's worker warms up before the subject is known.
    fresh = _entry()
    fresh.warm_once()
    assert fresh._configured == {}


def test_the_browser_entry_gives_what_the_server_engine_gives(corpus):
    from trials.deid import deidentify
    from trials.deid.pseudonym import PseudonymSpace

    key = subject_key(KEY_ALPHA, SUBJECT)
    entry = _entry()
    entry.configure(key.hex(), SUBJECT, json.dumps(deid_options_payload(DeidOptions())))
    data, record = entry.run(corpus[0].read_bytes())
    server = deidentify(corpus[0].read_bytes(), space=PseudonymSpace(key), subject_code=SUBJECT, options=DeidOptions())
    assert data == server.data
    assert json.loads(record)["patient_hash"] == server.source_patient_hash


def test_every_option_of_the_trial_reaches_the_browser_engine():
    from dataclasses import fields

    options = DeidOptions(
        retain_longitudinal_modified_dates=False,
        clean_descriptors=False,
        retain_device_identity=True,
        retain_patient_characteristics=True,
        private_tag_safelist=frozenset({("SIEMENS CSA HEADER", 0x08)}),
        accepted_sop_classes=frozenset({SecondaryCaptureImageStorage}),
        kept_text_attributes=frozenset({"ImageComments"}),
        burned_in_text="redact",
    )
    assert all(getattr(options, f.name) != f.default for f in fields(DeidOptions) if f.default is not MISSING)
    assert _entry().options_from(json.loads(json.dumps(deid_options_payload(options)))) == options


def test_the_bundle_carries_the_servers_engine_sources_each_with_bytecode_taken_as_it_is():
    """python.zip holds trials/deid exactly as the server runs it, and an unchecked-hash .pyc (PEP 552) for every
    module of it and of pydicom, so the worker compiles nothing at start-up."""
    import zipfile

    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    with zipfile.ZipFile(BUNDLE / manifest["python"]) as archive:
        names = set(archive.namelist())
        deid = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "trials" / "deid").rglob("*.py"))
        deid.append("trials/ingest/validate.py")  # the server's receipt checks, run on each original first
        assert deid and set(deid) <= names
        for name in deid:
            assert archive.read(name) == (ROOT / name).read_bytes(), name
        modules = [n for n in names if n.endswith(".py") and n.startswith(("trials/", "pydicom/"))]
        assert any(n.startswith("pydicom/") for n in modules)
        for name in modules:
            folder, _, file = name.rpartition("/")
            compiled = [n for n in names if n.startswith(f"{folder}/__pycache__/{file[:-3]}.cpython-")]
            assert len(compiled) == 1, name
            flags = int.from_bytes(archive.read(compiled[0])[4:8], "little")
            assert flags == 0b01, name  # hash-based, source not checked


def test_the_guards_first_pass_gives_the_engines_patient_hash_from_the_header_alone(corpus):
    """The upload page decides whose files it holds before de-identifying them: from each file's first bytes,
    the same keyed hash of the Patient ID as the engine's record (character sets, implicit and big endian
    syntaxes, files without a Patient ID), or None where those bytes do not settle it."""
    from trials.deid import DeidRejected, deidentify
    from trials.deid.pseudonym import PseudonymSpace

    options = DeidOptions(accepted_sop_classes=DeidOptions().accepted_sop_classes | {SecondaryCaptureImageStorage})
    key = subject_key(KEY_ALPHA, SUBJECT)
    entry = _entry()
    entry.configure(key.hex(), SUBJECT, json.dumps(deid_options_payload(options)))
    compared = without_patient_id = 0
    for path in corpus:
        data = path.read_bytes()
        try:
            expected = deidentify(data, space=PseudonymSpace(key), subject_code=SUBJECT, options=options)
        except DeidRejected:
            continue
        first = entry.patient_hash(data[:HEAD])
        assert first == expected.source_patient_hash, path.name
        assert entry.patient_hash(data) == first, path.name
        compared += 1
        without_patient_id += first == ""
        # Bytes that stop before the header goes past Patient ID settle nothing.
        assert entry.patient_hash(data[:200]) is None, path.name
    assert compared >= 14 and 0 < without_patient_id < compared
    hashes = {entry.patient_hash(p.read_bytes()[:HEAD]) for p in corpus}
    assert len(hashes - {None, ""}) >= 5  # different patients give different hashes
    assert entry.patient_hash(b"not a DICOM file at all" * 10) is None


def test_the_engines_memory_snapshot_carries_nothing_of_the_machine_that_built_it():
    """engine.snapshot (Pyodide's memory with the engine imported) goes to every browser: it holds Pyodide's
    default environment, not the build machine's paths or environment variables."""
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    data = (BUNDLE / manifest["snapshot"]).read_bytes()
    assert len(data) > 1_000_000  # a whole Python heap
    assert str(ROOT).encode() not in data
    for name in ("DATABASE_URL", "PATH", "VIRTUAL_ENV", "PWD"):  # long, machine-specific values where set
        value = os.environ.get(name)
        if value and len(value) > 8:
            assert value.encode() not in data, name
    assert b"HOME=/home/pyodide" in data  # Pyodide's own environment instead


def test_the_browser_refuses_each_original_the_servers_receipt_checks_refuse_with_the_same_reason():
    """The server checks a raw file within bounds before de-identifying it (trials/ingest/validate.py) but never
    sees a browser's original: the page runs the same checks on it. Without them a file the server path refuses
    (a data set named otherwise in its file meta, a deflate bomb it inflated whole) was de-identified and stored."""
    import io

    import pydicom

    from trials.ingest.validate import Refused, check_receivable

    from .test_validate import CT_SMALL, FUZZ_CASES, deflated

    entry = _entry()
    entry.configure(subject_key(KEY_ALPHA, SUBJECT).hex(), SUBJECT, json.dumps(deid_options_payload(DeidOptions())))
    cases = {name: make(CT_SMALL) for name, (make, _code) in FUZZ_CASES.items()}
    cases["deflate bomb"] = deflated(pydicom.dcmread(io.BytesIO(CT_SMALL)), zeros=256 << 20)
    codes = set()
    for name, data in cases.items():
        with pytest.raises(Refused) as server:
            check_receivable(data)
        output, record = entry.run(data)
        record = json.loads(record)
        assert output == b"" and not record["ok"], name
        assert (record["code"], record["reason"]) == (server.value.code, server.value.reason), name
        codes.add(record["code"])

    # A page in Korean says each of these refusals in Korean (the engine words its reasons in English only).
    import gettext
    import re

    script = (ROOT / "static" / "js" / "uploader.js").read_text()
    held = script[script.index("const HELD_REASONS = {") : script.index("};", script.index("const HELD_REASONS = {"))]
    sentences = dict(re.findall(r'^  (\w+): gettext\("((?:[^"\\]|\\.)*)"\)', held, re.MULTILINE))
    korean = gettext.translation("djangojs", localedir=ROOT / "locale", languages=["ko"])
    for code in codes:
        assert code in sentences, code
        assert korean.gettext(sentences[code]) != sentences[code], code
