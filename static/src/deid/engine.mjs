// Starts the de-identification engine: Pyodide, then pydicom and the trials/deid sources with their bytecode
// (python.zip, compiled at build time so that nothing is compiled here), all from the bundle the build wrote
// into static/dist/deid/ (nothing from elsewhere). Used by the upload page's worker and
// by the test suite under Node, so both run the very same files.
//
//   const engine = await startEngine({ loadPyodide, TesseractCore, base, read });
//   engine.configure(subjectKeyHex, subjectCode, options);
//   const { data, record } = await engine.run(bytes);   // data: Uint8Array (empty when rejected)
//
// OCR (ocr.mjs, for the images that may carry text in their pixels) starts the first time a file needs it;
// `engine.ocrStartMs` says what that cost. Without `TesseractCore`, such images are held back with the reason.

import { startOcr } from "./ocr.mjs";

export async function startEngine({ loadPyodide, TesseractCore, base, read }) {
  const manifest = JSON.parse(new TextDecoder().decode(await read(`${base}manifest.json`)));
  const pyodide = await loadPyodide({ indexURL: `${base}pyodide/`, fullStdLib: false });
  pyodide.unpackArchive(new Uint8Array(await read(`${base}${manifest.python}`)), "zip", { extractDir: "/ctims" });
  pyodide.runPython("import sys\nsys.path.insert(0, '/ctims')");
  const entry = pyodide.pyimport("ctims_deid_entry");
  let ocr = null;

  function runOnce(bytes) {
    const answer = entry.run(bytes);
    const output = answer.get(0);
    try {
      return { data: output.toJs(), record: JSON.parse(answer.get(1)) };
    } finally {
      output.destroy();
      answer.destroy();
    }
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
      return result;
    },
  };
  return engine;
}
