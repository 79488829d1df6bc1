// OCR for the de-identification engine at the site: Tesseract compiled to WebAssembly (tesseract.js-core,
// npm, pinned) with the Korean and English models (@tesseract.js-data/kor and /eng), all from the bundle the
// build wrote into static/dist/deid/ocr/. It runs synchronously inside the engine's worker, so the Python
// engine (trials/deid/burned_in.py) calls it where the server calls tesserocr: the decision which images to
// read, the rule which words are text, and the redaction are the engine's own, in one place.
//
// (tesseract.js's own wrapper answers asynchronously from a worker of its own; the engine needs the words
// while it is in the middle of a file, so the core is used directly, as that wrapper's worker does.)
//
//   const ocr = await startOcr({ TesseractCore, base, read, manifest });
//   const { scale, words } = ocr.read(frameBytes, rows, columns, samples, bitsAllocated, signed, little, photometric);
//   // words: [left, top, width, height, confidence, text] in an image `scale` times the frame

const PSM_SPARSE_TEXT = 11; // as the server's tesserocr.PSM.SPARSE_TEXT
const OEM_LSTM_ONLY = 1;
const WORD_LEVEL = "5";
const MIN_WIDTH = 512; // narrower frames are read at twice their size, as on the server
const DPI = "96"; // the resolution Tesseract assumes, as the server's burned_in.OCR_DPI
// Each image is read with Otsu's one threshold and with Leptonica's tiled one, as burned_in.THRESHOLD_METHODS
// (text dimmer than the frame's brightest part is lost to the first); the engine merges the words.
const THRESHOLD_METHODS = ["0", "1"];

export async function startOcr({ TesseractCore, base, read, manifest }) {
  const { ocr } = manifest;
  const [wasmBinary, ...models] = await Promise.all([
    read(`${base}${ocr.wasm}`),
    ...ocr.languages.map((language) => read(`${base}${ocr.models[language]}`)),
  ]);
  const core = await TesseractCore({ wasmBinary, print() {}, printErr() {} });
  core.FS.mkdir("/tessdata");
  ocr.languages.forEach((language, n) => core.FS.writeFile(`/tessdata/${language}.traineddata`, models[n]));
  const api = new core.TessBaseAPI();
  if (api.Init("/tessdata", ocr.languages.join("+"), OEM_LSTM_ONLY) !== 0) {
    throw new Error("Tesseract could not load its Korean and English models");
  }
  api.SetPageSegMode(PSM_SPARSE_TEXT);
  api.SetVariable("user_defined_dpi", DPI);
  return {
    version: ocr.version,
    read(frame, rows, columns, samples, bitsAllocated, signed, little, photometric) {
      const { grey, width, height, scale } = greyImage(frame, rows, columns, samples, bitsAllocated, signed, little, photometric);
      const header = new TextEncoder().encode(`P5\n${width} ${height}\n255\n`);
      const image = new Uint8Array(header.length + grey.length);
      image.set(header);
      image.set(grey, header.length);
      core.FS.writeFile("/input", image);
      try {
        const words = [];
        for (const method of THRESHOLD_METHODS) {
          api.SetVariable("thresholding_method", method);
          if (api.SetImageFile(1, 0) === 1) throw new Error("Tesseract could not take the image");
          api.Recognize(null);
          words.push(...tsvWords(api.GetTSVText(0)));
          api.Clear();
        }
        return { scale, words };
      } finally {
        api.Clear();
        core.FS.unlink("/input");
      }
    },
  };
}

/** Words of Tesseract's TSV answer: [left, top, width, height, confidence, text]. */
function tsvWords(tsv) {
  const words = [];
  for (const line of tsv.split("\n")) {
    const cells = line.split("\t");
    if (cells[0] !== WORD_LEVEL || cells.length < 12) continue;
    const [left, top, width, height] = cells.slice(6, 10).map(Number);
    words.push([left, top, width, height, Number(cells[10]), cells.slice(11).join("\t")]);
  }
  return words;
}

/**
 * One frame as the 8-bit grey image the server's OCR reads (burned_in._to_image), byte for byte: colour averaged,
 * the frame's range stretched to 0-255, MONOCHROME1 inverted, frames narrower than 512 read at twice the size.
 */
export function greyImage(frame, rows, columns, samples, bitsAllocated, signed, little, photometric) {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const size = bitsAllocated / 8;
  const get = {
    1: signed ? (o) => view.getInt8(o) : (o) => view.getUint8(o),
    2: signed ? (o) => view.getInt16(o, little) : (o) => view.getUint16(o, little),
    4: signed ? (o) => view.getInt32(o, little) : (o) => view.getUint32(o, little),
  }[size];
  if (!get) throw new Error("unsupported Bits Allocated");
  const count = rows * columns;
  const values = new Float64Array(count);
  let low = Infinity;
  let high = -Infinity;
  for (let p = 0; p < count; p++) {
    let sum = 0;
    for (let s = 0; s < samples; s++) sum += get((p * samples + s) * size);
    const v = sum / samples;
    values[p] = v;
    if (v < low) low = v;
    if (v > high) high = v;
  }
  const stretch = high > low ? 255 / (high - low) : 0;
  const invert = photometric === "MONOCHROME1";
  const grey = new Uint8Array(count);
  for (let p = 0; p < count; p++) {
    const scaled = (values[p] - low) * stretch;
    grey[p] = invert ? 255 - scaled : scaled; // Uint8Array truncates, as numpy's astype(uint8)
  }
  if (columns >= MIN_WIDTH) return { grey, width: columns, height: rows, scale: 1 };
  return { grey: doubled(grey, rows, columns), width: columns * 2, height: rows * 2, scale: 2 };
}

/** The image at twice its size, bilinear, rounded half up: burned_in.doubled on the server, step for step. */
function doubled(grey, rows, columns) {
  const width = columns * 2;
  const out = new Uint8Array(width * rows * 2);
  for (let y = 0; y < rows * 2; y++) {
    const sy = Math.min(Math.max((y + 0.5) / 2 - 0.5, 0), rows - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, rows - 1);
    const fy = sy - y0;
    for (let x = 0; x < width; x++) {
      const sx = Math.min(Math.max((x + 0.5) / 2 - 0.5, 0), columns - 1);
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, columns - 1);
      const fx = sx - x0;
      const top = grey[y0 * columns + x0] * (1 - fx) + grey[y0 * columns + x1] * fx;
      const bottom = grey[y1 * columns + x0] * (1 - fx) + grey[y1 * columns + x1] * fx;
      out[y * width + x] = Math.round(top * (1 - fy) + bottom * fy);
    }
  }
  return out;
}
