// Runs the upload page's de-identification engine under Node, from the built bundle (static/dist/deid/): the
// very files the browser's worker loads. Used by tests/trials/test_browser_deid_identity.py and by
// `manage.py bench browser_deid`.
//
//   node scripts/deid-node.mjs static/dist/deid < request.json
//
// Reads {key, subject, options, files, rounds?, ocr?, head?, profile?, warm?} as JSON on stdin (ocr: false runs
// without OCR; head: the wrong-patient guard's first pass over each file's first `head` bytes; profile: the
// engine's steps timed apart; warm: runs of the page worker's warm-up before the subject is configured and as
// many after, as a page's worker may do them) and writes {startMs, snapshot, ocrStartMs, roundMs, headMs, profile,
// results: [{record, ms, timing, patientHash}]} as JSON on stdout (snapshot: whether the engine started from the
// build's memory snapshot; timing: where the first round's time went, engine.mjs); each accepted file's output
// bytes go to `<file>.out` (first round only).

import { readFile, writeFile } from "node:fs/promises";

import { bundle, importFromBundle, loadTesseractCore, readRequest } from "./node-bundle.mjs";

const { loadPyodide } = await importFromBundle("pyodide", "pyodide.mjs");
const { startEngine } = await importFromBundle("engine.mjs");
const TesseractCore = await loadTesseractCore();
const request = await readRequest();

const started = performance.now();
const engine = await startEngine({
  loadPyodide,
  TesseractCore: request.ocr === false ? null : TesseractCore,
  base: `${bundle}/`,
  read: (file) => readFile(file),
});
const startMs = performance.now() - started;
for (let n = 0; n < (request.warm || 0); n++) engine.warmOnce();
engine.configure(request.key, request.subject, request.options);
for (let n = 0; n < (request.warm || 0); n++) engine.warmOnce();
const sources = await Promise.all(request.files.map((file) => readFile(file)));
const results = [];
const outputs = [];
const roundMs = [];
const firstPass = [];
let headMs = 0;
if (request.head) {
  const heads = sources.map((source) => new Uint8Array(source.subarray(0, request.head)));
  engine.patientHash(heads[0]); // its first call imports what it needs
  const started = performance.now();
  for (const head of heads) firstPass.push(engine.patientHash(head));
  headMs = performance.now() - started;
}
for (let round = 0; round < (request.rounds || 1); round++) {
  const roundStart = performance.now();
  for (const source of sources) {
    const t0 = performance.now();
    const ocrBefore = engine.ocrStartMs;
    const { data, record, timing } = await engine.run(new Uint8Array(source));
    const ms = performance.now() - t0 - (engine.ocrStartMs - ocrBefore);
    if (round === 0) {
      outputs.push(data);
      results.push({ record, ms, timing, patientHash: request.head ? firstPass[results.length] : undefined });
    }
  }
  roundMs.push(performance.now() - roundStart);
}
const profile = request.profile ? engine.profile(sources.map((source) => new Uint8Array(source))) : null;
for (const [n, file] of request.files.entries()) {
  if (outputs[n].byteLength) await writeFile(`${file}.out`, outputs[n]);
}
const { snapshot, ocrStartMs } = engine;
process.stdout.write(JSON.stringify({ startMs, snapshot, ocrStartMs, roundMs, headMs, profile, results }));
