// Starts the de-identification engine: Pyodide, then pydicom and the trials/deid sources with their bytecode
// (python.zip, compiled at build time so that nothing is compiled here), all from the bundle the build wrote
// into static/dist/deid/ (nothing from elsewhere). Where the bundle has a memory snapshot (engine.snapshot,
// Pyodide with the engine imported), it is restored instead of booting Python and importing the engine. Used by the upload page's worker and
// by the test suite under Node, so both run the very same files.
//
//   const engine = await startEngine({ loadPyodide, TesseractCore, base, read });
//   engine.configure(subjectKeyHex, subjectCode, options);
//   const { data, record, timing } = await engine.run(bytes);   // data: Uint8Array (empty when rejected)
//   const hash = engine.patientHash(head);   // the guard's first pass: from a file's first bytes, or null
//   engine.warmOnce();   // one run on a built-in sample, to have the browser optimize the engine's code
//
// The output's SHA-256 (the record's `sha256`, and its keyed `key_check` from the engine) is computed here with
// Web Crypto where the page has it (a secure context, and Node), several times faster than Python's hashlib in
// WebAssembly. `timing` says where a file's time went, in milliseconds: `input` (the bytes into Python),
// `deid` (the engine), `hash`, `record` and `output` (the bytes back out of Python).
//
// OCR (ocr.mjs, for the images that may carry text in their pixels) starts the first time a file needs it;
// `engine.ocrStartMs` says what that cost. Without `TesseractCore`, such images are held back with the reason.

import { startOcr } from "./ocr.mjs";

export async function startEngine({ loadPyodide, TesseractCore, base, read }) {
  const manifest = JSON.parse(new TextDecoder().decode(await read(`${base}manifest.json`)));
  const zip = read(`${base}${manifest.python}`);
  let pyodide = null;
  let snapshot = false;
  if (manifest.snapshot) {
    // Python with the engine already imported (scripts/build-frontend.mjs); python.zip goes back where it was.
    try {
      pyodide = await loadPyodide({
        indexURL: `${base}pyodide/`,
        fullStdLib: false,
        _loadSnapshot: read(`${base}${manifest.snapshot}`),
      });
      pyodide.unpackArchive(new Uint8Array(await zip), "zip", { extractDir: manifest.pythonDir });
      snapshot = true;
    } catch {
      pyodide = null; // started as without a snapshot
    }
  }
  if (!pyodide) {
    pyodide = await loadPyodide({ indexURL: `${base}pyodide/`, fullStdLib: false });
    pyodide.unpackArchive(new Uint8Array(await zip), "zip", { extractDir: "/ctims" });
    pyodide.runPython("import sys\nsys.path.insert(0, '/ctims')");
  }
  const entry = pyodide.pyimport("ctims_deid_entry");
  const subtle = globalThis.crypto?.subtle;
  let ocr = null;

  function runOnce(bytes) {
    const answer = entry.run(bytes, !subtle, true);
    const output = answer.get(0);
    try {
      const timing = JSON.parse(answer.get(2));
      const started = performance.now();
      const data = output.toJs();
      timing.output = performance.now() - started;
      return { data, record: JSON.parse(answer.get(1)), timing };
    } finally {
      output.destroy();
      answer.destroy();
    }
  }

  async function hashed(result) {
    if (!result.record.ok || result.record.sha256) return result;
    const started = performance.now();
    const digest = new Uint8Array(await subtle.digest("SHA-256", result.data));
    const sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    result.record.sha256 = sha256;
    result.record.key_check = entry.key_check(sha256);
    result.timing.hash += performance.now() - started;
    return result;
  }

  async function startingOcr() {
    const started = performance.now();
    try {
      if (!TesseractCore) throw new Error("OCR is not part of this page");
      entry.use_ocr(await startOcr({ TesseractCore, base, read, manifest }), "");
    } catch (error) {
      // Held back with the reason from now on (the engine's message adds what to do).
      entry.use_ocr(undefined, `OCR could not start in this browser (${String(error?.message || error).slice(0, 200)})`);
    }
    engine.ocrStartMs = performance.now() - started;
  }

  const engine = {
    version: manifest.version,
    snapshot,
    ocrStartMs: 0,
    configure(subjectKeyHex, subjectCode, options) {
      entry.configure(subjectKeyHex, subjectCode, JSON.stringify(options));
    },
    async run(bytes) {
      let result = runOnce(bytes);
      if (result.record.ocr_wanted) {
        ocr ??= startingOcr();
        await ocr;
        result = runOnce(bytes);
      }
      return hashed(result);
    },
    warmOnce() {
      entry.warm_once();
    },
    patientHash(head) {
      const hash = entry.patient_hash(head);
      return hash === undefined || hash === null ? null : String(hash);
    },
    /** For `manage.py bench browser_deid`: the engine's own steps, ms per file (parse, verify, the rest). */
    profile(files) {
      return JSON.parse(entry.profile(files));
    },
  };
  return engine;
}
