// Build the browser bundles into static/dist/ (ignored by git): `node scripts/build-frontend.mjs`.
//
// The viewer is Cornerstone3D bundled with esbuild as ES modules. The DICOM image loader decodes in a web
// worker it creates with `new URL("./decodeImageFrameWorker.js", import.meta.url)`, so that worker is a second
// entry point written next to the viewer's chunks; the codecs' WebAssembly files are copied beside them and
// the page passes their base URL to the loader's init. Nothing is fetched from elsewhere at run time.
//
// The uploader's de-identification engine (static/dist/deid/) is the server's own trials/deid, run by
// Pyodide (npm, pinned in package-lock.json) with pydicom's pure-Python wheel (PyPI, the version pinned in
// requirements.txt, its SHA-256 pinned below; pip downloads it at build time, never at run time). Its OCR
// for text in pixels is Tesseract in WebAssembly (tesseract.js-core, the SIMD LSTM build) with the Korean and
// English models (@tesseract.js-data/kor and /eng, tesseract.js's default "best_int" models, unzipped here),
// all pinned in package-lock.json and written into static/dist/deid/ocr/.
//
// pydicom and the engine's sources reach the worker as one zip (python.zip), together with their bytecode,
// compiled here by the very Pyodide the worker runs (hash-based .pyc that Python takes without re-reading the
// source): the worker then imports them without compiling pydicom's modules on every page load, which was
// most of the engine's start-up after Pyodide itself.
//
// The engine then starts from a memory snapshot (engine.snapshot): Pyodide booted and the engine imported here,
// by the very Pyodide the worker runs, its WebAssembly memory saved (Pyodide's `makeMemorySnapshot`; its
// environment is Pyodide's default, nothing of this machine's). The worker restores it instead of booting
// Python and importing pydicom, and unpacks python.zip into its file system again, where it was (the files the
// engine opens and imports later). Without a snapshot (or if it cannot be restored) it starts as before.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gunzipSync } from "node:zlib";

import * as esbuild from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT = path.join(ROOT, "static", "dist", "viewer");
const DEID_OUT = path.join(ROOT, "static", "dist", "deid");
const WHEEL_CACHE = path.join(ROOT, "var", "cache", "wheels");
// pydicom's wheel for the version in requirements.txt: a new pin fails the build here until its hash is checked.
const PYDICOM_WHEELS = {
  "3.0.2": "abf971a5440f84dbaf42c4b6758e30e62480902584f8b270b9a5d146e278a07b",
};
const PYODIDE_FILES = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"];
const OCR_CORE = "tesseract-core-simd-lstm"; // what tesseract.js loads for its default (LSTM) engine with SIMD
const OCR_LANGUAGES = ["kor", "eng"]; // as the server's trials.deid.burned_in.OCR_LANGUAGES
const OCR_MODELS = "4.0.0_best_int";
const DEID_SOURCES = ["engine.mjs", "ocr.mjs", "worker.js"];
const PYTHON_ZIP = "python.zip"; // pydicom and the engine's sources, with their bytecode
const SNAPSHOT = "engine.snapshot"; // Pyodide's memory with the engine imported (engine.mjs restores it)
const PYTHON_DIR = "/ctims"; // where the worker unpacks python.zip, on Python's path (engine.mjs)
const require = createRequire(path.join(ROOT, "package.json"));
const LOADER = path.dirname(require.resolve("@cornerstonejs/dicom-image-loader"));

// The decoders' WebAssembly, by the names the loader asks for under its wasmBasePath.
const WASM = [
  "@cornerstonejs/codec-openjpeg/dist/openjpegwasm_decode.wasm",
  "@cornerstonejs/codec-openjph/dist/openjphjs.wasm",
  "@cornerstonejs/codec-charls/dist/charlswasm_decode.wasm",
  "@cornerstonejs/codec-libjpeg-turbo-8bit/dist/libjpegturbowasm_decode.wasm",
  "@cornerstonejs/codec-libjxl/dist/jpegxlwasm_decode.wasm",
];

// Source edits for a strict Content-Security-Policy (style-src 'self'): an element's style *attribute* set
// from script is refused, its style *property* is not. Each edit must apply, or the build fails: a new
// Cornerstone version is then checked again rather than silently logging CSP violations.
const CSP_EDITS = [
  {
    file: /@cornerstonejs[\\/]tools[\\/].*[\\/]drawingSvg[\\/]drawTextBox\.js$/,
    from: "textElement.setAttribute('style', combinedStyle);",
    to: "textElement.style.cssText = combinedStyle;",
  },
];

const cspEdits = {
  name: "csp-edits",
  setup(build) {
    const applied = new Set();
    build.onLoad({ filter: /drawTextBox\.js$/ }, async (args) => {
      let contents = await readFile(args.path, "utf8");
      for (const edit of CSP_EDITS) {
        if (!edit.file.test(args.path)) continue;
        if (!contents.includes(edit.from)) throw new Error(`CSP edit no longer applies to ${args.path}`);
        contents = contents.replace(edit.from, edit.to);
        applied.add(edit);
      }
      return { contents, loader: "js" };
    });
    build.onEnd((result) => {
      if (result.errors.length === 0 && applied.size !== CSP_EDITS.length) {
        throw new Error("a CSP edit found no file to apply to");
      }
    });
  },
};

async function size(dir, files) {
  const sizes = await Promise.all(files.map((f) => stat(path.join(dir, f)).then((s) => s.size)));
  return sizes.reduce((a, b) => a + b, 0);
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

async function pydicomWheel() {
  const requirements = await readFile(path.join(ROOT, "requirements.txt"), "utf8");
  const version = /^pydicom==([^\s;#]+)/m.exec(requirements)?.[1];
  if (!version) throw new Error("requirements.txt pins no pydicom version");
  const expected = PYDICOM_WHEELS[version];
  if (!expected) throw new Error(`pydicom ${version}: add its wheel's SHA-256 to PYDICOM_WHEELS after checking it`);
  const name = `pydicom-${version}-py3-none-any.whl`;
  const cached = path.join(WHEEL_CACHE, name);
  if (!existsSync(cached)) {
    const venvPython = path.join(ROOT, ".venv", "bin", "python");
    const python = process.env.PYTHON_FOR_WHEELS || (existsSync(venvPython) ? venvPython : "python3");
    await mkdir(WHEEL_CACHE, { recursive: true });
    execFileSync(
      python,
      ["-m", "pip", "download", `pydicom==${version}`, "--no-deps", "--only-binary=:all:", "--quiet", "-d", WHEEL_CACHE],
      { stdio: "inherit" },
    );
  }
  const bytes = await readFile(cached);
  if (sha256(bytes) !== expected) throw new Error(`${name} does not have the pinned SHA-256`);
  return { name, bytes };
}

/**
 * trials/deid's Python sources and table, with the browser entry module and the server's checks of a received
 * file (trials/ingest/validate.py, pure Python: the page runs them on each original, which the server never
 * sees): path in the worker's file system -> text.
 */
async function engineSources() {
  // The Django app's packages, without Django (trials.ingest's own __init__ is a docstring).
  const sources = { "trials/__init__.py": "", "trials/ingest/__init__.py": "" };
  sources["trials/ingest/validate.py"] = await readFile(path.join(ROOT, "trials", "ingest", "validate.py"), "utf8");
  const deid = path.join(ROOT, "trials", "deid");
  const entries = await readdir(deid, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile() || !/\.(py|json)$/.test(entry.name) || entry.parentPath.includes("__pycache__")) continue;
    const relative = path.relative(ROOT, path.join(entry.parentPath, entry.name)).split(path.sep).join("/");
    sources[relative] = await readFile(path.join(entry.parentPath, entry.name), "utf8");
  }
  sources["ctims_deid_entry.py"] = await readFile(path.join(ROOT, "static", "src", "deid", "ctims_deid_entry.py"), "utf8");
  return sources;
}

/**
 * pydicom (its wheel's files) and the engine's sources with their bytecode, as one zip for the worker's /ctims.
 * Compiled by the bundle's own Pyodide, so the .pyc match the Python that imports them; each .pyc is
 * "unchecked-hash" (PEP 552): taken as it is, the sources beside it being the very ones it was compiled from.
 */
async function compiledPython(pyodideDir, wheel, sources) {
  const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
  const pyodide = await loadPyodide({ indexURL: `${pyodideDir}/`, fullStdLib: false });
  pyodide.unpackArchive(new Uint8Array(wheel.bytes), "wheel", { extractDir: "/build" });
  for (const [relative, text] of Object.entries(sources)) {
    const file = `/build/${relative}`;
    pyodide.FS.mkdirTree(file.slice(0, file.lastIndexOf("/")));
    pyodide.FS.writeFile(file, text);
  }
  pyodide.runPython(`
import compileall, os, py_compile, zipfile
if not compileall.compile_dir("/build", quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH):
    raise SystemExit("the engine's Python did not compile")
with zipfile.ZipFile("/python.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
    for root, dirs, files in os.walk("/build"):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            info = zipfile.ZipInfo(os.path.relpath(full, "/build"), date_time=(1980, 1, 1, 0, 0, 0))
            with open(full, "rb") as f:
                archive.writestr(info, f.read(), zipfile.ZIP_DEFLATED)
`);
  return pyodide.FS.readFile("/python.zip");
}

/** Pyodide booted with python.zip on its path and the engine imported: its memory, for the worker to restore. */
async function engineSnapshot(pyodideDir, zip) {
  const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
  // The program's name as a browser worker has it (under Node it would be this script's path, which the
  // snapshot would then carry into every browser).
  const pyodide = await loadPyodide({
    indexURL: `${pyodideDir}/`,
    fullStdLib: false,
    _makeSnapshot: true,
    _sysExecutable: "./this.program",
  });
  pyodide.unpackArchive(zip, "zip", { extractDir: PYTHON_DIR });
  pyodide.runPython(`import sys\nsys.path.insert(0, "${PYTHON_DIR}")\nimport ctims_deid_entry`);
  return pyodide.makeMemorySnapshot();
}

const packageVersion = async (name) =>
  JSON.parse(await readFile(require.resolve(`${name}/package.json`), "utf8")).version;

/** Tesseract's core as an ES module the worker imports (its script defines a global factory) and its models. */
async function buildOcr() {
  const out = path.join(DEID_OUT, "ocr");
  await mkdir(out, { recursive: true });
  const core = path.dirname(require.resolve("tesseract.js-core/package.json"));
  const script = await readFile(path.join(core, `${OCR_CORE}.js`), "utf8");
  if (!script.startsWith("var TesseractCore=")) throw new Error("tesseract.js-core no longer defines TesseractCore");
  await writeFile(path.join(out, "tesseract-core.mjs"), `${script}\nexport default TesseractCore;\n`);
  await copyFile(path.join(core, `${OCR_CORE}.wasm`), path.join(out, "tesseract-core.wasm"));
  const models = {};
  for (const language of OCR_LANGUAGES) {
    const data = path.dirname(require.resolve(`@tesseract.js-data/${language}/package.json`));
    const gz = await readFile(path.join(data, OCR_MODELS, `${language}.traineddata.gz`));
    models[language] = `ocr/${language}.traineddata`;
    await writeFile(path.join(DEID_OUT, models[language]), gunzipSync(gz));
  }
  const versions = [`tesseract.js-core ${await packageVersion("tesseract.js-core")}`];
  for (const language of OCR_LANGUAGES) {
    versions.push(`${language} ${await packageVersion(`@tesseract.js-data/${language}`)} ${OCR_MODELS}`);
  }
  return {
    version: versions.join(", "),
    wasm: "ocr/tesseract-core.wasm",
    languages: OCR_LANGUAGES,
    models,
    files: ["ocr/tesseract-core.mjs", "ocr/tesseract-core.wasm", ...Object.values(models)],
  };
}

async function buildDeid() {
  await rm(DEID_OUT, { recursive: true, force: true });
  await mkdir(path.join(DEID_OUT, "pyodide"), { recursive: true });
  const pyodide = path.dirname(require.resolve("pyodide/package.json"));
  await Promise.all(
    PYODIDE_FILES.map((f) => copyFile(path.join(pyodide, f), path.join(DEID_OUT, "pyodide", f))),
  );
  const wheel = await pydicomWheel();
  const sources = await engineSources();
  const zip = await compiledPython(pyodide, wheel, sources);
  await writeFile(path.join(DEID_OUT, PYTHON_ZIP), zip);
  await writeFile(path.join(DEID_OUT, SNAPSHOT), await engineSnapshot(pyodide, zip));
  const { files: ocrFiles, ...ocr } = await buildOcr();
  const version = sha256(JSON.stringify([wheel.name, sources, ocr])).slice(0, 16);
  const manifest = {
    version,
    pydicom: wheel.name,
    python: PYTHON_ZIP,
    snapshot: SNAPSHOT,
    pythonDir: PYTHON_DIR,
    sources: Object.keys(sources),
    ocr,
  };
  await writeFile(path.join(DEID_OUT, "manifest.json"), JSON.stringify(manifest));
  for (const f of DEID_SOURCES) {
    await copyFile(path.join(ROOT, "static", "src", "deid", f), path.join(DEID_OUT, f));
  }
  const bytes = await size(DEID_OUT, [...PYODIDE_FILES.map((f) => `pyodide/${f}`), PYTHON_ZIP, SNAPSHOT, "manifest.json"]);
  const ocrBytes = await size(DEID_OUT, ocrFiles);
  console.log(
    `static/dist/deid: Pyodide, ${wheel.name} and ${Object.keys(sources).length} engine files compiled, ` +
      `${(bytes / 1024 / 1024).toFixed(1)} MB; OCR (${ocr.version}) ${(ocrBytes / 1024 / 1024).toFixed(1)} MB`,
  );
}

async function main() {
  const started = performance.now();
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: {
      viewer: "static/src/viewer/index.js",
      decodeImageFrameWorker: path.join(LOADER, "decodeImageFrameWorker.js"),
    },
    outdir: OUT,
    bundle: true,
    format: "esm",
    splitting: true,
    chunkNames: "chunk-[hash]",
    platform: "browser",
    target: ["es2022"],
    external: ["fs", "path"],
    minify: true,
    sourcemap: "linked",
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
    define: { "process.env.NODE_ENV": '"production"' },
    plugins: [cspEdits],
  });
  await Promise.all(
    WASM.map((file) => copyFile(path.join(ROOT, "node_modules", file), path.join(OUT, path.basename(file)))),
  );
  const outputs = Object.keys(result.metafile.outputs).filter((f) => f.endsWith(".js"));
  const js = await size(ROOT, outputs);
  const wasm = await size(
    OUT,
    WASM.map((f) => path.basename(f)),
  );
  const mb = (n) => (n / 1024 / 1024).toFixed(1);
  console.log(
    `static/dist/viewer: ${outputs.length} JS files ${mb(js)} MB, ${WASM.length} wasm ${mb(wasm)} MB,` +
      ` built in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

Promise.all([main(), buildDeid()]).catch((error) => {
  console.error(error.message || error);
  process.exit(1);
});
