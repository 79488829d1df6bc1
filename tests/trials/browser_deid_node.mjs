// Runs the upload page's de-identification engine under Node, from the built bundle (static/dist/deid/), for
// tests/trials/test_browser_deid_identity.py. Reads {key, subject, options, files} as JSON on stdin and writes
// {startMs, results: [{sha256, record, ms}]} as JSON on stdout; the output bytes themselves go to `<file>.out`.

import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";

const bundle = path.resolve(process.argv[2]);
const { loadPyodide } = await import(pathToFileURL(path.join(bundle, "pyodide", "pyodide.mjs")).href);
const { startEngine } = await import(pathToFileURL(path.join(bundle, "engine.mjs")).href);

let input = "";
for await (const chunk of process.stdin) input += chunk;
const request = JSON.parse(input);

const started = performance.now();
const engine = await startEngine({ loadPyodide, base: `${bundle}/`, read: (file) => readFile(file) });
const startMs = performance.now() - started;
engine.configure(request.key, request.subject, request.options);
const results = [];
for (const file of request.files) {
  const bytes = new Uint8Array(await readFile(file));
  const t0 = performance.now();
  const { data, record } = engine.run(bytes);
  const ms = performance.now() - t0;
  if (data.byteLength) await writeFile(`${file}.out`, data);
  results.push({ record, ms });
}
process.stdout.write(JSON.stringify({ startMs, results }));
