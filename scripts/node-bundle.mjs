// What the scripts that run the upload page's bundle under Node share (deid-node.mjs, ocr-node.mjs): the bundle's
// folder from the command line, Tesseract's WebAssembly core loaded as the browser's worker loads it, and the
// request read as JSON from stdin.

import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

/** The built bundle's folder: the first argument, static/dist/deid by default. */
export const bundle = path.resolve(process.argv[2] || "static/dist/deid");

/** A module of the bundle, by its path inside it. */
export function importFromBundle(...parts) {
  return import(pathToFileURL(path.join(bundle, ...parts)).href);
}

/**
 * Tesseract's Emscripten core. Seeing Node, it reaches for CommonJS's `require` and `__dirname`, which an ES
 * module lacks; it is handed its WebAssembly, so they locate nothing.
 */
export async function loadTesseractCore() {
  const ocrCore = path.join(bundle, "ocr", "tesseract-core.mjs");
  globalThis.require ??= createRequire(ocrCore);
  globalThis.__dirname ??= path.dirname(ocrCore);
  return (await import(pathToFileURL(ocrCore).href)).default;
}

/** The request: all of stdin, as JSON. */
export async function readRequest() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  return JSON.parse(input);
}
