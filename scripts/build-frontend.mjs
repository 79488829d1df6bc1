// Build the browser bundles into static/dist/ (ignored by git): `node scripts/build-frontend.mjs`.
//
// The viewer is Cornerstone3D bundled with esbuild as ES modules. The DICOM image loader decodes in a web
// worker it creates with `new URL("./decodeImageFrameWorker.js", import.meta.url)`, so that worker is a second
// entry point written next to the viewer's chunks; the codecs' WebAssembly files are copied beside them and
// the page passes their base URL to the loader's init. Nothing is fetched from elsewhere at run time.

import { copyFile, mkdir, readFile, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT = path.join(ROOT, "static", "dist", "viewer");
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

main().catch((error) => {
  console.error(error.message || error);
  process.exit(1);
});
