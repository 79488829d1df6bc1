// The upload page's de-identification worker: one engine, files one at a time, the subject key kept here.
// Messages in:  {type: "start"} · {type: "configure", key, subject, options} · {type: "run", id, bytes} ·
//               {type: "patients", id, heads}
// Messages out: {type: "ready", version, startMs, snapshot} · {type: "warm", ms, runs, interrupted, failed} ·
//               {type: "done", id, data, record, ms, timing, ocrStartMs} · {type: "patients", id, hashes, ms} ·
//               {type: "error", id?, message}
// "patients": the wrong-patient guard's first pass, each file's patient hash from its first bytes (or null).
// "warm": once ready, the worker runs the engine on a built-in sample for up to WARM_MS, in slices that let a
// message in between, so that the browser has optimized the engine's code before the first file; the first file
// (or first pass) to arrive ends it at once.

import { loadPyodide } from "./pyodide/pyodide.mjs";
import { startEngine } from "./engine.mjs";
import TesseractCore from "./ocr/tesseract-core.mjs";

const base = new URL("./", import.meta.url).href;
const WARM_MS = 1000;
const WARM_SLICE_MS = 20;
let engine = null;
let starting = null;
let interrupted = false;

async function warmUp() {
  const started = performance.now();
  let runs = 0;
  let failed = false;
  try {
    while (!interrupted && performance.now() - started < WARM_MS) {
      const slice = performance.now() + WARM_SLICE_MS;
      while (performance.now() < slice) {
        engine.warmOnce();
        runs += 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 0)); // a waiting message is handled here
    }
  } catch {
    failed = true; // only slower first files: the engine itself answers for every real file
  }
  self.postMessage({ type: "warm", ms: performance.now() - started, runs, interrupted, failed });
}

async function read(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${response.status} for ${url}`);
  return new Uint8Array(await response.arrayBuffer());
}

self.onmessage = async (event) => {
  const message = event.data;
  if (message.type === "run" || message.type === "patients") interrupted = true; // the files come first
  try {
    if (message.type === "start") {
      const started = performance.now();
      starting ??= startEngine({ loadPyodide, TesseractCore, base, read });
      engine = await starting;
      const startMs = performance.now() - started;
      self.postMessage({ type: "ready", version: engine.version, startMs, snapshot: engine.snapshot });
      await warmUp();
    } else if (message.type === "configure") {
      engine.configure(message.key, message.subject, message.options);
      self.postMessage({ type: "configured" });
    } else if (message.type === "patients") {
      const started = performance.now();
      const hashes = message.heads.map((head) => engine.patientHash(head));
      self.postMessage({ type: "patients", id: message.id, hashes, ms: performance.now() - started });
    } else if (message.type === "run") {
      const started = performance.now();
      const ocrBefore = engine.ocrStartMs;
      const { data, record, timing } = await engine.run(message.bytes);
      // The file's own time: OCR's start-up (paid once, by the first file that needs it) is reported apart.
      const ocrStartMs = engine.ocrStartMs - ocrBefore;
      const ms = performance.now() - started - ocrStartMs;
      // Hand the bytes over without a copy when they own their buffer (never the engine's memory itself).
      const out = data.byteOffset === 0 && data.buffer.byteLength === data.byteLength ? data : data.slice();
      self.postMessage(
        { type: "done", id: message.id, data: out, record, ms, timing, ocrStartMs },
        out.byteLength ? [out.buffer] : [],
      );
    }
  } catch (error) {
    // Never the file's content: only the engine's own message (an exception type, a path in the bundle).
    self.postMessage({ type: "error", id: message.id, message: String((error && error.message) || error).slice(0, 300) });
  }
};
