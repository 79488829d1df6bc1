// Runs the upload page's OCR (static/src/deid/ocr.mjs: Tesseract in WebAssembly with the bundled models) under
// Node, from the built bundle (static/dist/deid/): the very files the browser's worker loads. Used by
// tests/trials/deid/test_ocr_agreement.py to compare what the browser and the server read in the same frames.
//
//   node scripts/ocr-node.mjs static/dist/deid < request.json
//
// Reads {frames: [{path, rows, columns, samples, bitsAllocated, signed, little, photometric}]} as JSON on stdin
// (path: a file holding one frame's native pixel bytes) and writes {version, results: [{scale, words, image}]} as
// JSON on stdout, words as ocr.mjs answers them ([left, top, width, height, confidence, text]), image the grey
// image handed to Tesseract ({width, height, sha256}).

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";

import { bundle, importFromBundle, loadTesseractCore, readRequest } from "./node-bundle.mjs";

const { startOcr, greyImage } = await importFromBundle("ocr.mjs");
const TesseractCore = await loadTesseractCore();
const request = await readRequest();
const manifest = JSON.parse(await readFile(path.join(bundle, "manifest.json"), "utf8"));
const ocr = await startOcr({ TesseractCore, base: `${bundle}/`, read: (file) => readFile(file), manifest });
const results = [];
for (const f of request.frames) {
  const frame = new Uint8Array(await readFile(f.path));
  const args = [frame, f.rows, f.columns, f.samples, f.bitsAllocated, f.signed, f.little, f.photometric];
  const { grey, width, height } = greyImage(...args);
  const image = { width, height, sha256: createHash("sha256").update(grey).digest("hex") };
  results.push({ ...ocr.read(...args), image });
}
process.stdout.write(JSON.stringify({ version: ocr.version, results }));
