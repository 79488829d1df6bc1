// The coordinator's uploader: reads a dropped folder, files or .zip in the browser, skips what is not DICOM,
// hashes each file, and sends the rest to the upload's STOW-RS endpoint in multipart/related batches. File
// names stay in the browser; the server knows a file only by its SHA-256. After a dropped connection or a
// reload, the server's list of received hashes decides what is sent again: only what it does not hold.
//
// Where the trial allows it, each file is de-identified here first, in a Web Worker running the server's own
// engine (trials/deid on Pyodide, static/dist/deid/) with the subject's key; only de-identified files and
// their records leave the browser, and their hashes (of the de-identified bytes) drive resuming. A browser
// without WebAssembly falls back to sending files as they are, if the trial allows that, and says so.

import { sha256Hex } from "./sha256.js";
import { readZip } from "./zip.js";

const gettext = window.gettext || ((text) => text);
const ngettext = window.ngettext || ((singular, plural, n) => (n === 1 ? singular : plural));
const interpolate =
  window.interpolate ||
  ((format, values, named) =>
    named
      ? format.replace(/%\((\w+)\)s/g, (match, key) => String(values[key]))
      : format.replace(/%s/g, () => String(values.shift())));

const BATCH_BYTES = 8 * 1024 * 1024;
const BATCH_FILES = 20;
const MIN_BATCH_FILES = 4;
const IN_FLIGHT = 2;
// De-identified batches waiting for a request before the workers pause (each batch at most BATCH_BYTES).
const QUEUED_BATCHES = 3;
// De-identification workers in the browser: one per core, at most this many (each is its own Python).
const ENGINE_WORKERS = 2;
const TRIES = 6;
const POLL_MS = 1000;
// While files are sent, the status is asked after each request, but at most once in this time: each answer costs
// the server a few permission checks and queries (a tenth of its time while sending, when asked after every
// request), and the states it shows need no finer step than the progress bars.
const REFRESH_GAP_MS = 1000;
const READERS = 4;
// Files handed to each de-identification worker at once: the one it runs and the ones read for it to run next
// (with 3, each worker ran files for only about half of the de-identification's time while the page was also
// sending), and the originals' bytes read ahead in all: a large multi-frame file waits for those before it.
const READ_AHEAD = 6;
const READ_AHEAD_BYTES = 64 * 1024 * 1024;
const SHOW_REJECTED = 10;
// Row states and progress bars are painted at most this often. Each change made the browser style, lay out and
// paint the page again (the file table with every row): while files went by at a hundred a second, that was most
// of the page's own work, taken from the de-identification workers and the server on a busy machine.
const PAINT_MS = 150;
// The wrong-patient guard's first pass reads this much of each file: the header up to Patient ID.
const HEAD_BYTES = 64 * 1024;
const FIRST_PASS_CHUNK = 40;
const FIRST_PASS_READERS = 8; // headers read at once (small reads: each is mostly the wait for the disk)
const DICM = [0x44, 0x49, 0x43, 0x4d];

// Row states, in the order a file goes through them; a later server answer never moves a row backwards.
const RANK = { checking: 0, waiting: 1, unsent: 1, sending: 2, received: 3, accepted: 4, duplicate: 4, earlier: 4, rejected: 4, unreadable: 4, held: 4 };
const LABELS = {
  checking: gettext("Checking"),
  waiting: gettext("Waiting"),
  unsent: gettext("Not sent"),
  sending: gettext("Sending"),
  received: gettext("Received, being processed"),
  accepted: gettext("De-identified and stored"),
  duplicate: gettext("Already stored"),
  earlier: gettext("Already received"),
  rejected: gettext("Rejected"),
  unreadable: gettext("Could not be read"),
  held: gettext("Held back in your browser"),
};
// The engine's counts (DeidResult.actions), in words: what was removed or replaced, never a value.
const ACTION_WORDS = {
  removed: gettext("%(n)s attributes removed"),
  emptied: gettext("%(n)s emptied"),
  dummied: gettext("%(n)s replaced by dummies"),
  pseudonymized: gettext("%(n)s names and IDs replaced by the subject code"),
  dates_shifted: gettext("%(n)s dates shifted"),
  uids_remapped: gettext("%(n)s UIDs replaced"),
  cleaned: gettext("%(n)s descriptions cleaned"),
  private_removed: gettext("%(n)s private attributes removed"),
  private_kept: gettext("%(n)s private attributes kept (trial safelist)"),
  pixels_examined: gettext("pixels read for text"),
  pixels_rewritten: gettext("pixels rewritten (text blanked or overlay bits cleared)"),
};
// Why the browser's engine held a file back, by its code, for pages not in English: the engine (the server's
// own Python) words its reasons in English only, naming the attribute or the kind of image; these say the
// same in the page's language, without the detail.
const HELD_REASONS = {
  ocr_unavailable: gettext("This image may carry text in its pixels, and this browser could not read it to check (the image is compressed, or OCR could not start here). Send the image uncompressed, or tell the trial's imaging team."),
  burned_in_text: gettext("Text was found in the image's pixels, which may identify the patient; this trial does not accept such images, or the text could not be removed completely."),
  burned_in_annotation: gettext("The image says it has burned-in annotation (text drawn into the pixels, which may identify the patient); please send the original images without annotation."),
  sop_class_not_accepted: gettext("This kind of image is not accepted by this trial."),
  truncated: gettext("The file ends before the DICOM data does: it looks cut short."),
  unreadable: gettext("The file could not be read as a DICOM image; please resend it."),
  not_dicom: gettext("The file is not a DICOM file."),
  no_sop_instance_uid: gettext("The file has no SOP Instance UID, so it cannot be tracked."),
  no_study_instance_uid: gettext("The file has no Study Instance UID, so it cannot be filed under its study; please export it again from the scanner or PACS."),
  no_series_instance_uid: gettext("The file has no Series Instance UID, so it cannot be filed under its series; please export it again from the scanner or PACS."),
  pixel_data_missing: gettext("The file has no image data (Pixel Data is missing)."),
  transfer_syntax_unsupported: gettext("The image is encoded in a form this system cannot decode, so it could not be shown to a reader. Please export it uncompressed, or as JPEG 2000, JPEG-LS, JPEG or RLE, and resend it."),
  phi_found: gettext("An identifying value of the original was found in the de-identified file; it was not sent. Please report this to the trial's imaging team."),
  // The server's checks of a received file (trials/ingest/validate.py), run here on each original.
  corrupt: gettext("The file's DICOM structure is damaged. Please export it again and resend it."),
  pixel_module: gettext("The image cannot be shown: its image attributes do not fit its pixel data. Please export it again from the scanner or PACS."),
  too_deep: gettext("The file's sequences are nested deeper than any image needs; it looks damaged or crafted."),
  too_large: gettext("The file is larger, once decoded, than this system accepts for one image. Please send the images uncompressed or with image compression instead."),
  uid_mismatch: gettext("The file's header (file meta information) and its data set name different SOP Instance UIDs, so it is unclear which image this is; please export it again from the scanner or PACS."),
  uid_vr: gettext("A UID of the file is not written as a UID, so the image could not be tracked consistently; please export it again from the scanner or PACS."),
  unknown_vr: gettext("The file holds a value of a kind DICOM does not define, so the image could not be shown; please export it again from the scanner or PACS."),
  value_too_long: gettext("An attribute of the file is longer than this system reads in one attribute; it looks damaged or crafted."),
  bad_number: gettext("An attribute that should hold a number holds something else, so the image's metadata could not be served; please export it again from the scanner or PACS."),
  pixels_too_long: gettext("The image data hold more than the image size says (rows, columns, frames): the file looks damaged or crafted, so it was not stored. Please export it again from the scanner or PACS and resend it."),
  ybr_full_422: gettext("The image's colour pixels are stored uncompressed as YBR_FULL_422, which this system does not take. Please export the images in RGB colour, or compressed (JPEG), and resend them."),
  palette_colour: gettext("The image's pixels are palette colour (indices into a colour table), which cannot be examined here for text that may identify the patient. Please export the images in RGB colour or greyscale, and resend them."),
  too_many_elements: gettext("The file holds far more DICOM elements than an image of its size needs; it looks damaged or crafted. Please export it again from the scanner or PACS."),
};
const heldReason = (record) =>
  document.documentElement.lang.startsWith("en") ? record.reason : HELD_REASONS[record.code] || record.reason;
// The files' de-identification records travel in the STOW request itself, in a part before the files.
const RECORDS_MEDIA = "application/vnd.ctims.deid-records+json";
// "resend": the server's copy failed its checksum; the file is sent again while the upload is open.
const FROM_SERVER = {
  quarantined: "received",
  resend: "waiting",
  accepted: "accepted",
  duplicate: "duplicate",
  rejected: "rejected",
};

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
const lang = document.documentElement.lang || undefined;
const decimal = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat(lang);
const percent = new Intl.NumberFormat(lang, { style: "percent" });

class UploadError extends Error {
  constructor(message, { transient = false } = {}) {
    super(message);
    this.transient = transient;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? whole.format(n) : decimal.format(n)} ${units[unit]}`;
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomBoundary() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `ctims-${hex(bytes)}`;
}

async function sha256(bytes) {
  if (window.isSecureContext && crypto.subtle) return hex(await crypto.subtle.digest("SHA-256", bytes));
  return sha256Hex(bytes);
}

function baseName(path) {
  return path.split("/").pop();
}

/** A path that wraps only after its slashes: folders muted, the file's own name whole. */
function pathNodes(path) {
  const parts = path.split("/");
  const nodes = [];
  parts.slice(0, -1).forEach((folder) => {
    const span = document.createElement("span");
    span.className = "file-dir";
    span.textContent = `${folder}/`;
    nodes.push(span, document.createElement("wbr"));
  });
  const own = document.createElement("span");
  own.className = "file-own";
  own.textContent = parts[parts.length - 1];
  nodes.push(own);
  return nodes;
}

/** A list of files, each with what became of it. */
function fileList(entries, className) {
  const list = document.createElement("ul");
  list.className = `file-list ${className}`;
  for (const entry of entries) {
    const li = document.createElement("li");
    const why = document.createElement("span");
    why.className = "muted";
    why.textContent = ` — ${entry.detail}`;
    li.append(...pathNodes(entry.path), why);
    list.append(li);
  }
  return list;
}

/** Run `work` over `items` with at most `limit` at a time; results keep the items' order. */
async function pool(items, limit, work) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function errorMessage(body, status) {
  const error = body && body.error;
  const words = error && typeof error.message === "string" ? error.message : typeof error === "string" ? error : "";
  // A session that ended (or a log-in elsewhere the page cannot follow) is refused in the framework's own words.
  const loggedOut = status === 401 || (status === 403 && (!words || /CSRF|credentials/i.test(words)));
  if (words && !loggedOut) return words;
  if (status === 401 || status === 403) return gettext("The server refused the request: your session may have ended. Log in again and retry.");
  if (status === 413) return gettext("The server refused a request as too large.");
  return interpolate(gettext("The server answered with an error (HTTP %(status)s)."), { status }, true);
}

// --- reading what was dropped or chosen ------------------------------------------------------------------------

function fileFromEntry(entry) {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

function readDirectory(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function walk(entry, found) {
  const path = entry.fullPath.replace(/^\//, "");
  try {
    if (entry.isFile) {
      found.push({ path, file: await fileFromEntry(entry) });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      // readEntries answers in chunks (100 in Chromium) until it answers with none.
      for (let chunk = await readDirectory(reader); chunk.length; chunk = await readDirectory(reader)) {
        for (const child of chunk) await walk(child, found);
      }
    }
  } catch {
    found.push({ path, unreadable: true });
  }
}

/** What a drop holds, captured while the event lasts (the browser empties the list afterwards). */
function dropped(dataTransfer) {
  const roots = [];
  for (const item of Array.from(dataTransfer.items || [])) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    const file = entry ? null : item.getAsFile();
    if (entry || file) roots.push(entry || file);
  }
  return async () => {
    const found = [];
    for (const root of roots) {
      if (root instanceof File) found.push({ path: root.name, file: root });
      else await walk(root, found);
    }
    return found;
  };
}

function chosen(input) {
  const found = Array.from(input.files, (file) => ({ path: file.webkitRelativePath || file.name, file }));
  return async () => found;
}

/** Plain files and the entries of .zip files, as candidates with a size, a head and a body. */
async function expand(found, skip) {
  const candidates = [];
  for (const item of found) {
    if (item.unreadable) {
      skip(item.path, gettext("could not be read"));
    } else if (/\.zip$/i.test(item.path)) {
      let entries;
      try {
        entries = await readZip(item.file);
      } catch {
        skip(item.path, gettext("not a readable zip file"));
        continue;
      }
      for (const entry of entries) {
        const path = `${item.path}/${entry.name}`;
        if (entry.encrypted) skip(path, gettext("encrypted in the zip file"));
        else if (!entry.supported) skip(path, gettext("compressed in a way this browser cannot read"));
        else candidates.push({ path, size: entry.size, head: (n) => entry.head(n), blob: () => entry.blob() });
      }
    } else {
      const file = item.file;
      candidates.push({
        path: item.path,
        size: file.size,
        head: async (n) => new Uint8Array(await file.slice(0, n).arrayBuffer()),
        blob: async () => file,
      });
    }
  }
  return candidates.sort((a, b) => collator.compare(a.path, b.path));
}

async function isDicom(candidate) {
  if (candidate.size < 132) return false;
  const head = await candidate.head(132);
  return head.length === 132 && DICM.every((byte, i) => head[128 + i] === byte);
}

// --- the page ------------------------------------------------------------------------------------------------

class Uploader {
  constructor(root) {
    const data = root.dataset;
    this.root = root;
    this.urls = {
      open: data.openUrl,
      status: data.statusUrl,
      finish: data.finishUrl,
      resume: data.resumeUrl,
      key: data.keyUrl,
      worker: data.deidWorker,
    };
    this.writes = new Map(); // what `later` will paint
    this.writeTimer = null;
    // "server", "either" or "browser": where the trial lets this page de-identify.
    this.paths = data.deidPaths || "server";
    this.engine = null;
    this.stateLabels = JSON.parse(data.stateLabels || "{}");
    this.earlier = new Map(JSON.parse(data.received || "[]").map((item) => [item.sha256, item]));
    this.servedCsrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
    const $ = (id) => document.getElementById(id);
    this.el = {
      zone: $("upload-drop"),
      files: $("upload-pick-files"),
      folder: $("upload-pick-folder"),
      chooseFolder: $("upload-choose-folder"),
      panel: $("upload-panel"),
      phase: $("upload-phase"),
      checkRow: $("upload-check"),
      checkBar: $("upload-check-progress"),
      checkText: $("upload-check-text"),
      sendRow: $("upload-send"),
      sendBar: $("upload-send-progress"),
      sendText: $("upload-send-text"),
      batches: $("upload-batches"),
      processRow: $("upload-process"),
      processBar: $("upload-process-progress"),
      processText: $("upload-process-text"),
      result: $("upload-result"),
      back: $("upload-back"),
      error: $("upload-error"),
      errorText: $("upload-error-text"),
      retry: $("upload-retry"),
      skipped: $("upload-skipped"),
      skippedTitle: $("upload-skipped-title"),
      skippedList: $("upload-skipped-list"),
      table: $("upload-files"),
      rows: $("upload-rows"),
      timepointState: $("timepoint-state"),
      stored: $("timepoint-stored"),
      mode: $("upload-deid-mode"),
    };
    // The file table's column names, in the page's language.
    this.columns = [...this.el.table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    this.upload = null;
    this.current = new Map(); // sha256 -> item of the open (or last) upload session
    this.previous = new Map(); // sha256 -> item of the sessions this page sent to before that one
    this.entries = [];
    this.bySha = new Map();
    this.skippedCount = 0;
    this.batchList = [];
    this.busy = false;
    this.sending = false;
    this.sentAny = false; // a request of this drop was answered with its files taken
    this.dropped = performance.now();
    this.timeline = {};
    this.bind();
  }

  bind() {
    const { zone, files, folder, chooseFolder, retry } = this.el;
    zone.addEventListener("click", () => this.busy || files.click());
    chooseFolder.addEventListener("click", () => this.busy || folder.click());
    for (const input of [files, folder]) {
      input.addEventListener("change", () => {
        const collect = chosen(input);
        input.value = "";
        this.take(collect);
      });
    }
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = this.busy ? "none" : "copy";
      zone.classList.add("is-over");
    });
    zone.addEventListener("dragleave", (event) => {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove("is-over");
    });
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("is-over");
      if (!this.busy) this.take(dropped(event.dataTransfer));
    });
    // A file dropped beside the zone would make the browser open it and leave the page.
    for (const type of ["dragover", "drop"]) {
      document.addEventListener(type, (event) => {
        if (event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files")) event.preventDefault();
      });
    }
    retry.addEventListener("click", () => this.retry());
    window.addEventListener("beforeunload", (event) => {
      if (this.sending) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
  }

  /**
   * The CSRF token as the browser holds it now: a log-in (in another tab, after the session ended) gives a new
   * one, and the token the page was served with is then refused until a reload. The page's own is the fallback.
   */
  csrf() {
    const cookie = document.cookie.split("; ").find((pair) => pair.startsWith("csrftoken="));
    return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : this.servedCsrf;
  }

  uploadUrl(template) {
    return template.replace("/uploads/0/", `/uploads/${this.upload.id}/`);
  }

  setBusy(busy) {
    this.paintNow();
    this.busy = busy;
    this.el.zone.setAttribute("aria-disabled", String(busy));
    this.el.chooseFolder.disabled = busy;
    this.el.zone.classList.toggle("is-busy", busy);
  }

  // --- start: resume what the server holds -----------------------------------------------------------------

  async start() {
    // The engine starts while the coordinator chooses the folder: its start-up is then mostly behind them.
    const capable = typeof WebAssembly === "object" && typeof Worker === "function" && this.urls.worker;
    if (this.paths !== "server" && capable) {
      this.startEngine().catch(() => {});
    } else if (this.paths === "browser") {
      // Said before the coordinator chooses a folder that this browser cannot send one.
      this.showMode(this.browserOnly(gettext("This browser cannot run WebAssembly")), "message-warning");
    }
    if (!this.urls.resume) return;
    this.setBusy(true);
    try {
      this.showPanel();
      this.adopt(await this.apiPatiently("GET", this.urls.resume));
      const held = this.upload.counts.total;
      if (this.upload.state === "open" && !held) {
        // Opened (for the subject key, or by a tab closed before its first request) and nothing arrived: there is
        // nothing to finish or process yet, and the next drop goes into this session.
        this.el.processRow.hidden = true;
        this.phase(gettext("An upload of this visit was started earlier, but no file reached the server. Drop the folder to send it."));
      } else if (this.upload.state === "open") {
        this.phase(
          interpolate(
            ngettext(
              "Your earlier upload for this visit was interrupted; the server holds %(n)s file of it. Drop the same folder again to send the rest: files already received are not sent again.",
              "Your earlier upload for this visit was interrupted; the server holds %(n)s files of it. Drop the same folder again to send the rest: files already received are not sent again.",
              held,
            ),
            { n: whole.format(held) },
            true,
          ),
        );
      } else {
        await this.poll();
        this.report({ touched: true });
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.setBusy(false);
    }
  }

  // --- one drop: read, check, hash, send, finish ------------------------------------------------------------

  /** A moment of this drop's upload, in ms since the drop (`data-timeline`, read by `manage.py bench`). */
  mark(name) {
    this.timeline[name] = Math.round(performance.now() - this.dropped);
    this.root.dataset.timeline = JSON.stringify(this.timeline);
  }

  async take(collect) {
    if (this.busy) return;
    this.dropped = performance.now();
    this.timeline = {};
    this.setBusy(true);
    this.reset();
    this.showPanel();
    try {
      this.phase(gettext("Reading the files…"));
      const candidates = await expand(await collect(), (path, reason) => this.skip(path, reason));
      await this.classify(candidates);
      if (!this.entries.length) {
        this.phase(gettext("No DICOM files were found in what you chose."));
        return;
      }
      this.mark("read");
      await this.check(this.entries);
      this.mark("checked");
      await this.deliver();
      this.mark("done");
    } catch (error) {
      this.fail(error);
    } finally {
      this.setBusy(false);
    }
  }

  async retry() {
    if (this.busy) return;
    this.el.error.hidden = true;
    if (!this.entries.length) {
      this.start();
      return;
    }
    this.setBusy(true);
    try {
      // Files the stopped upload never de-identified (or hashed) are checked first: the server cannot list
      // them, and the upload must not be finished without them.
      const unchecked = this.unchecked();
      if (unchecked.length) {
        await this.check(unchecked);
      } else {
        this.phase(gettext("Asking the server what it already holds…"));
        if (this.upload) this.adopt(await this.apiPatiently("GET", this.uploadUrl(this.urls.status)));
      }
      await this.deliver();
    } catch (error) {
      this.fail(error);
    } finally {
      this.setBusy(false);
    }
  }

  reset() {
    this.preparing = null;
    if (!this.upload || this.upload.state !== "open") {
      // A new drop after an upload of this page ended: what the ended sessions took are earlier uploads to it,
      // as those listed when the page opened (its rows say "Already received", not "De-identified and stored").
      for (const sessions of [this.previous, this.current]) {
        for (const [sha, item] of sessions) {
          if (item.state === "resend") continue;
          const known = this.earlier.get(sha);
          if (!known || known.state === "rejected") this.earlier.set(sha, { sha256: sha, state: item.state, reason: item.reason || "" });
        }
      }
      this.previous = new Map();
      this.current = new Map();
    }
    this.sentAny = false;
    this.entries = [];
    this.bySha = new Map();
    this.skippedCount = 0;
    this.batchList = [];
    this.el.rows.replaceChildren();
    this.el.table.hidden = true;
    this.el.skipped.hidden = true;
    this.el.skipped.open = false;
    this.el.skippedList.replaceChildren();
    this.el.result.replaceChildren();
    this.el.back.hidden = true;
    this.el.error.hidden = true;
    this.el.batches.replaceChildren();
    this.el.checkRow.hidden = false;
    this.el.sendRow.hidden = true;
    this.el.processRow.hidden = true;
    this.setBar(this.el.checkBar, this.el.checkText, 0, 0, "");
    this.setBar(this.el.sendBar, this.el.sendText, 0, 0, "");
  }

  skip(path, reason) {
    this.skippedCount += 1;
    const li = document.createElement("li");
    const why = document.createElement("span");
    why.className = "muted";
    why.textContent = ` — ${reason}`;
    li.append(...pathNodes(path), why);
    this.el.skippedList.append(li);
    this.el.skippedTitle.textContent = interpolate(
      ngettext("Skipped (not images): %(n)s file", "Skipped (not images): %(n)s files", this.skippedCount),
      { n: whole.format(this.skippedCount) },
      true,
    );
    this.el.skipped.hidden = false;
  }

  async classify(candidates) {
    const capable = typeof WebAssembly === "object" && typeof Worker === "function" && this.urls.worker;
    const early = this.paths !== "server" && capable && !this.preparing;
    const verdicts = await pool(candidates, 8, async (candidate) => {
      if (baseName(candidate.path).toUpperCase() === "DICOMDIR") return gettext("DICOMDIR index, not an image");
      try {
        if (!(await isDicom(candidate))) return gettext("not a DICOM file");
        // Its outcome (or failure) is taken by deidentifyAll; the engine may yet fail to start, and the drop
        // then goes as it is (`deliver` opens the session again for that).
        if (early && !this.preparing) this.browserSession().catch(() => {});
        return null;
      } catch {
        return gettext("could not be read");
      }
    });
    const rows = document.createDocumentFragment();
    candidates.forEach((candidate, i) => {
      if (verdicts[i]) {
        this.skip(candidate.path, verdicts[i]);
        return;
      }
      const entry = { ...candidate, sha: null, state: null, detail: "" };
      this.entries.push(entry);
      rows.append(this.row(entry));
      this.setState(entry, "checking");
    });
    this.el.rows.append(rows);
    this.el.table.hidden = this.entries.length === 0;
  }

  row(entry) {
    const tr = document.createElement("tr");
    const name = document.createElement("th");
    name.scope = "row";
    name.className = "file-name";
    name.append(...pathNodes(entry.path));
    const size = document.createElement("td");
    size.className = "num nowrap";
    size.textContent = formatBytes(entry.size);
    const state = document.createElement("td");
    state.className = "nowrap";
    entry.stateEl = document.createElement("span");
    state.append(entry.stateEl);
    entry.detailEl = document.createElement("td");
    entry.detailEl.className = "file-detail";
    // On a phone each row is a card and a cell says which column it is (see "small screens" in ctims.css).
    const cells = [size, state, entry.detailEl];
    cells.forEach((cell, n) => {
      cell.dataset.label = this.columns[n + 1];
    });
    tr.append(name, ...cells);
    entry.row = tr;
    return tr;
  }

  setState(entry, state, detail = "") {
    // A stored file keeps showing what was removed from it here and why.
    if (!detail && entry.deidNote && (state === "accepted" || state === "waiting" || state === "received")) {
      detail = entry.deidNote;
    }
    if (entry.state === state && entry.detail === detail) return;
    entry.state = state;
    entry.detail = detail;
    this.later(entry, () => {
      entry.stateEl.className = `file-state fs-${entry.state}`;
      entry.stateEl.textContent = LABELS[entry.state];
      entry.detailEl.textContent = entry.detail;
    });
  }

  setShaState(sha, state, detail = "", { force = false } = {}) {
    for (const entry of this.bySha.get(sha) || []) {
      if (force || RANK[state] >= RANK[entry.state]) this.setState(entry, state, detail);
    }
  }

  /** De-identify (or, on the server path, hash) `entries`: only what has been checked can be sent. */
  async check(entries) {
    if (await this.inBrowser()) {
      await this.deidentifyAll(entries);
    } else {
      // A session asked for early for the browser path is settled first: `deliver` then sends files as they are
      // into it, or into the one it opens for them (never two opened at once).
      if (this.preparing) await this.preparing.catch(() => {});
      await this.hashAll(entries);
    }
  }

  /** The files this page has not yet de-identified or hashed (none held back or unreadable here). */
  unchecked() {
    return this.entries.filter((entry) => !entry.sha && entry.state !== "held" && entry.state !== "unreadable");
  }

  async hashAll(entries) {
    const total = entries.length;
    let done = 0;
    this.phase(
      interpolate(
        ngettext("Checking %(n)s DICOM file…", "Checking %(n)s DICOM files…", total),
        { n: whole.format(total) },
        true,
      ),
    );
    await pool(entries, READERS, async (entry) => {
      try {
        const bytes = new Uint8Array(await (await entry.blob()).arrayBuffer());
        entry.sha = await sha256(bytes);
        if (!this.bySha.has(entry.sha)) this.bySha.set(entry.sha, []);
        this.bySha.get(entry.sha).push(entry);
      } catch {
        this.setState(entry, "unreadable", gettext("The file could not be read from your disk."));
      }
      done += 1;
      this.setBar(this.el.checkBar, this.el.checkText, done, total, this.countText(done, total));
    });
  }

  // --- de-identification in this browser ---------------------------------------------------------------------

  /** Whether this drop is de-identified here; says which path is taken and why on the page. */
  async inBrowser() {
    this.browserMode = false;
    if (this.paths === "server") return false;
    const capable = typeof WebAssembly === "object" && typeof Worker === "function" && this.urls.worker;
    if (!capable) return this.noEngine(gettext("This browser cannot run WebAssembly"));
    try {
      this.phase(gettext("Starting the de-identification engine in your browser…"));
      await this.startEngine();
    } catch {
      return this.noEngine(gettext("The de-identification engine could not start in this browser"));
    }
    this.browserMode = true;
    this.showMode(gettext("Images are de-identified in your browser before they are sent: no identified image leaves this computer."), "message-info");
    return true;
  }

  browserOnly(why) {
    return interpolate(gettext("%(why)s, and this trial accepts only images de-identified in the browser. Use a current browser (Chrome, Edge, Firefox or Safari)."), { why }, true);
  }

  noEngine(why) {
    if (this.paths === "browser") {
      this.showMode(this.browserOnly(why), "message-warning");
      throw new UploadError(interpolate(gettext("%(why)s: nothing was sent."), { why }, true));
    }
    this.showMode(
      interpolate(gettext("%(why)s: the images are sent as they are and de-identified on the server."), { why }, true),
      "message-warning",
    );
    return false;
  }

  showMode(text, kind) {
    const mode = this.el.mode;
    if (!mode) return;
    mode.className = `message ${kind} upload-mode`;
    mode.textContent = text;
    mode.hidden = false;
  }

  /**
   * The de-identification workers: one per core up to ENGINE_WORKERS, each its own Pyodide, started together.
   * The engine is ready when the first worker is (its start-up, `startMs`, is what a coordinator waits for);
   * the others take files as they become ready, configured with the subject key first. `run` hands a file to
   * the ready worker with the fewest files waiting.
   */
  startEngine() {
    if (this.engine) return this.engine.ready;
    const count = Math.max(1, Math.min(ENGINE_WORKERS, navigator.hardwareConcurrency || 1));
    const workers = Array.from({ length: count }, () => this.startWorker());
    const engine = { workers, live: [], key: null, startMs: 0 };
    const join = async (w) => {
      const ms = await w.ready;
      if (engine.key) await w.configure(engine.key);
      engine.live.push(w);
      this.root.dataset.deidWorkers = String(engine.live.length);
      return ms;
    };
    engine.ready = Promise.any(workers.map(join)).then((ms) => {
      engine.startMs = ms;
    });
    engine.configure = (key) => {
      engine.key = key;
      return Promise.all(engine.live.map((w) => w.configure(key)));
    };
    engine.run = (bytes) => engine.live.reduce((a, b) => (b.waiting.size < a.waiting.size ? b : a)).run(bytes);
    // The guard's first pass, its files shared out among the ready workers: each file's hash or null.
    engine.patients = async (heads) => {
      const share = Math.ceil(heads.length / engine.live.length);
      const answers = await Promise.all(
        engine.live.map((w, n) => w.patients(heads.slice(n * share, (n + 1) * share))),
      );
      return answers.flatMap((answer) => answer.hashes);
    };
    this.engine = engine;
    // One handler for both outcomes: a `then` of its own would leave its failure unhandled in the page.
    engine.ready.then(
      () => {
        this.root.dataset.engine = "ready";
      },
      () => {
        for (const w of workers) w.worker.terminate();
        this.engine = null;
      },
    );
    return engine.ready;
  }

  /** Every worker has run its warm-up (or been interrupted by the first file): the page says so, with the time. */
  engineWarmed() {
    const workers = this.engine?.workers || [];
    if (!workers.length || workers.some((w) => w.warmMs === null)) return;
    this.root.dataset.deidWarmMs = String(Math.max(...workers.map((w) => w.warmMs)));
    this.root.dataset.deidWarmRuns = String(workers.reduce((sum, w) => sum + (w.warmRuns || 0), 0));
    this.root.dataset.engineWarm = "true";
  }

  startWorker() {
    const worker = new Worker(this.urls.worker, { type: "module" });
    const waiting = new Map();
    let nextId = 1;
    const handle = { worker, waiting, warmMs: null };
    handle.ready = new Promise((resolve, reject) => {
      worker.onmessage = (event) => {
        const message = event.data;
        if (message.type === "ready") {
          this.root.dataset.deidSnapshot = String(Boolean(message.snapshot));
          resolve(message.startMs);
        } else if (message.type === "warm") {
          handle.warmMs = message.ms;
          handle.warmRuns = message.failed ? 0 : message.runs;
          this.engineWarmed();
        } else if (message.type === "configured") {
          handle.onConfigured?.();
        } else if (message.type === "done" || message.type === "patients" || message.type === "error") {
          const pending = waiting.get(message.id);
          if (pending) {
            waiting.delete(message.id);
            if (message.type !== "error") pending.resolve(message);
            else pending.reject(new Error(message.message));
          } else if (message.type === "error") {
            reject(new Error(message.message));
          }
        }
      };
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error("worker"));
        handle.warmMs ??= 0; // a worker that failed warms nothing: the others are not waited for
        this.engineWarmed();
        for (const pending of waiting.values()) pending.reject(new Error("worker"));
        waiting.clear();
      };
    });
    handle.configure = (key) =>
      new Promise((resolve) => {
        handle.onConfigured = resolve;
        worker.postMessage({ type: "configure", key: key.subject_key, subject: key.subject, options: key.options });
      });
    handle.run = (bytes) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve, reject });
        worker.postMessage({ type: "run", id, bytes }, [bytes.buffer]);
      });
    handle.patients = (heads) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve, reject });
        worker.postMessage({ type: "patients", id, heads }, heads.map((head) => head.buffer));
      });
    worker.postMessage({ type: "start" });
    return handle;
  }

  async openUpload(path) {
    this.adopt(await this.apiPatiently("POST", this.urls.open, { deid_path: path }), { fresh: true });
  }

  /**
   * De-identify every file in the workers with the subject key and send what passes while the rest is being
   * de-identified: files go out in batches as they are ready (at most IN_FLIGHT requests at a time; the
   * workers wait while a further batch is ready and unsent), and a sent file's de-identified copy is let go
   * (made again from the original if it must be resent). Files of another patient, or that fail, are held
   * back here.
   *
   * The wrong-patient guard: the subject's patient if the server knows it, else the patient of most of the
   * files here. On a subject's first upload, a first pass reads every file's header up to Patient ID (the
   * engine's patient hash, from HEAD_BYTES of it): when more than half of the files are one patient, that
   * patient is decided before any file is de-identified, and files go as soon as they are ready. Otherwise
   * (files whose header the first pass cannot settle), until more than half of the files are known to be one
   * patient from their de-identified records, the ready files wait; then that patient is the most frequent
   * whatever the rest are, and they go. Either way a file is sent only if its own record names that patient.
   */
  async deidentifyAll(entries) {
    if (!this.preparing) this.phase(gettext("Opening the upload…"));
    let key;
    try {
      key = await this.browserSession();
    } finally {
      this.preparing = null; // a retry asks again
    }
    if (key === null) {
      // An unfinished upload of this visit was sent as it was: finish it the same way.
      this.browserMode = false;
      this.showMode(gettext("Your unfinished upload of this visit sends the images as they are; it is finished that way."), "message-warning");
      await this.hashAll(entries);
      return;
    }
    await this.engine.configure(key);
    this.mark("configured");
    const total = entries.length;
    let done = 0;
    let workerMs = 0;
    this.phase(
      interpolate(
        ngettext("De-identifying %(n)s DICOM file in your browser…", "De-identifying %(n)s DICOM files in your browser…", total),
        { n: whole.format(total) },
        true,
      ),
    );
    const stream = this.startStream(entries);
    const timing = {};
    const guard = { patient: key.patient_hash || "", counts: new Map(), waiting: [] };
    if (!guard.patient) guard.patient = await this.firstPass(entries);
    this.mark("guard");
    const settle = (entry, answer) => {
      const record = answer.record;
      if (record.patient_hash !== guard.patient) {
        this.setState(
          entry,
          "held",
          interpolate(gettext("Not sent: this file belongs to a different patient than %(subject)s. Upload it under the right subject."), { subject: key.subject }, true),
        );
      } else {
        this.ready(entry, answer, stream);
      }
    };
    const decide = (patient) => {
      guard.patient = patient;
      for (const { entry, answer } of guard.waiting.splice(0)) settle(entry, answer);
    };
    // Files are read ahead, READ_AHEAD per worker and READ_AHEAD_BYTES in all, so that a worker finding a file
    // done has the next one waiting in its queue: reading a file from the disk takes longer than the worker's
    // turn at high load.
    // (data-read-ahead-bytes overrides the budget for tests; data-read-ahead-peak tells the most files held.)
    const budget = Number(this.root.dataset.readAheadBytes) || READ_AHEAD_BYTES;
    const ahead = { bytes: 0, files: 0, peak: 0, waiters: [] };
    await pool(entries, this.engine.workers.length * READ_AHEAD, async (entry) => {
      await stream.room();
      if (stream.failed) return;
      const size = entry.size;
      while (ahead.files > 0 && ahead.bytes + size > budget) await new Promise((resolve) => ahead.waiters.push(resolve));
      ahead.bytes += size;
      ahead.files += 1;
      ahead.peak = Math.max(ahead.peak, ahead.files);
      this.root.dataset.readAheadPeak = String(ahead.peak);
      try {
        let answer;
        try {
          const bytes = new Uint8Array(await (await entry.blob()).arrayBuffer());
          answer = await this.engine.run(bytes);
        } finally {
          ahead.bytes -= size; // the worker has let the original go
          ahead.files -= 1;
          for (const resolve of ahead.waiters.splice(0)) resolve();
        }
        workerMs += answer.ms;
        for (const [step, ms] of Object.entries(answer.timing || {})) timing[step] = (timing[step] || 0) + ms;
        if (done === 0) this.mark("first de-identified");
        const record = answer.record;
        if (!record.ok) {
          this.setState(entry, "held", interpolate(gettext("Not sent: %(reason)s"), { reason: heldReason(record) }, true));
        } else if (!record.patient_hash) {
          this.setState(entry, "held", gettext("Not sent: this file has no Patient ID, so it cannot be matched to the subject."));
        } else if (guard.patient) {
          settle(entry, answer);
        } else {
          guard.waiting.push({ entry, answer });
          const n = (guard.counts.get(record.patient_hash) || 0) + 1;
          guard.counts.set(record.patient_hash, n);
          if (n * 2 > total) decide(record.patient_hash);
        }
      } catch {
        this.setState(entry, "unreadable", gettext("The file could not be read or de-identified in your browser."));
      }
      done += 1;
      this.setBar(this.el.checkBar, this.el.checkText, done, total, this.countText(done, total));
    });
    if (!guard.patient && guard.waiting.length) {
      // No patient has more than half of the files: the most frequent one (the first seen of equals).
      decide([...guard.counts.entries()].sort((a, b) => b[1] - a[1])[0][0]);
    }
    this.engineTimes = { startMs: this.engine.startMs, perFileMs: total ? workerMs / total : 0 };
    this.root.dataset.deidPerFileMs = String(this.engineTimes.perFileMs);
    this.root.dataset.deidStartMs = String(this.engineTimes.startMs);
    for (const step of Object.keys(timing)) timing[step] /= total || 1;
    this.root.dataset.deidTiming = JSON.stringify(timing);
    this.mark("all de-identified");
    await stream.finish();
  }

  /**
   * The browser path's open session and the subject key for it, asked for once per drop: from `classify` as soon
   * as the drop is known to hold a DICOM file, so that the two requests run while the rest of it is read and the
   * engine starts, not after. Null when the session sends files as they are (an unfinished upload of this
   * visit was sent that way).
   */
  browserSession() {
    this.preparing ??= (async () => {
      if (!this.upload || this.upload.state !== "open" || this.upload.deid_path !== "browser") {
        await this.openUpload("browser");
      }
      if (this.upload.deid_path !== "browser") return null;
      return this.apiPatiently("GET", this.uploadUrl(this.urls.key));
    })();
    return this.preparing;
  }

  /**
   * The patient of more than half of the files by the first pass over their headers, or "" if none is. The
   * headers are read FIRST_PASS_CHUNK at a time, shared among the workers, and the pass stops as soon as one
   * patient has more than half of all the files: one patient's folder costs the first pass over half of it.
   */
  async firstPass(entries) {
    const total = entries.length;
    const counts = new Map();
    // The next chunk's headers are read from the disk while the workers hash this one's (one after the other,
    // the reading and the hashing each waited for the other: the pass took 0.4 to 1.8 s of a subject's first
    // upload of 300 slices in the upload bench, before any file was de-identified).
    const read = (start) =>
      start < total
        ? pool(entries.slice(start, start + FIRST_PASS_CHUNK), FIRST_PASS_READERS, async (entry) => {
            try {
              return await entry.head(HEAD_BYTES);
            } catch {
              return new Uint8Array(0);
            }
          })
        : null;
    let next = read(0);
    for (let start = 0; start < total; start += FIRST_PASS_CHUNK) {
      const heads = await next;
      next = read(start + FIRST_PASS_CHUNK); // left unread if this chunk decides: its readers never fail
      let hashes;
      try {
        hashes = await this.engine.patients(heads);
      } catch {
        return "";
      }
      for (const hash of hashes) {
        if (!hash) continue; // unsettled by the header, or no Patient ID: judged by the record alone
        const n = (counts.get(hash) || 0) + 1;
        counts.set(hash, n);
        if (n * 2 > total) return hash;
      }
    }
    return "";
  }

  /** A de-identified file of the subject's patient: shown, and sent unless the server holds it already. */
  ready(entry, answer, stream) {
    const record = answer.record;
    const data = answer.data;
    const source = entry.blob;
    entry.sha = record.sha256;
    entry.size = data.byteLength;
    entry.blob = async () => new Blob([data], { type: "application/dicom" });
    entry.record = record;
    entry.deidNote = this.deidNote(record);
    entry.sent = () => {
      // Sent: keep only the way to make the copy again (the engine gives the same bytes) if it must be resent.
      entry.blob = async () => {
        const again = await this.engine.run(new Uint8Array(await (await source()).arrayBuffer()));
        return new Blob([again.data], { type: "application/dicom" });
      };
    };
    const twin = this.bySha.has(entry.sha);
    if (!twin) this.bySha.set(entry.sha, []);
    this.bySha.get(entry.sha).push(entry);
    if (twin) {
      this.setState(entry, this.bySha.get(entry.sha)[0].state || "waiting");
    } else if (!this.serverHolds(entry.sha)) {
      this.setState(entry, "waiting");
      stream.add(entry);
    }
  }

  /**
   * Sending while de-identifying: batches of ready files go out as they fill, IN_FLIGHT requests at a time,
   * each carrying its files' records. `room()` makes the workers wait while QUEUED_BATCHES full batches are
   * queued unsent (the workers run ahead of the server by that much, never waiting on a request while one is
   * due), so at most IN_FLIGHT + QUEUED_BATCHES + 1 batches of de-identified copies are held at once.
   */
  startStream(entries) {
    const total = entries.length;
    this.batchList = [];
    this.batchCount = Math.max(1, Math.ceil(total / BATCH_FILES));
    this.transferTotal = entries.reduce((sum, entry) => sum + entry.size, 0);
    this.expected = this.current.size + total;
    this.stopped = false;
    this.sending = true;
    this.el.sendRow.hidden = false;
    const queue = [];
    let active = 0;
    let wake = null;
    let changed = new Promise((resolve) => (wake = resolve));
    const notify = () => {
      wake();
      changed = new Promise((resolve) => (wake = resolve));
    };
    const stream = { failed: null, open: null };
    // Request slots left idle while sending (slot-milliseconds, from the first request), for `manage.py bench`.
    let idleSince = null;
    let idle = 0;
    const account = () => {
      const now = performance.now();
      if (idleSince !== null) idle += (IN_FLIGHT - active) * (now - idleSince);
      idleSince = now;
    };
    const pump = () => {
      while (active < IN_FLIGHT && queue.length && !stream.failed) {
        const batch = queue.shift();
        account();
        active += 1;
        (async () => {
          await this.sendBatch(batch);
          for (const entry of batch.entries) entry.sent();
        })()
          .catch((error) => {
            stream.failed ??= error;
            this.stopped = true;
          })
          .finally(() => {
            account();
            active -= 1;
            pump();
            early();
            notify();
          });
      }
    };
    // A request slot free and nothing queued: the batch being filled goes now if it has MIN_BATCH_FILES, so
    // the server is never left waiting for a batch to fill (batches are full while the server is the slower).
    const early = () => {
      if (active < IN_FLIGHT && !queue.length && stream.open?.entries.length >= MIN_BATCH_FILES) flush();
    };
    const flush = () => {
      if (stream.open?.entries.length) {
        this.batchCount = Math.max(this.batchCount, stream.open.number);
        queue.push(stream.open);
        pump();
      }
      stream.open = null;
    };
    stream.add = (entry) => {
      if (!stream.open) {
        stream.open = { number: this.batchList.length + 1, entries: [], bytes: 0, settled: 0, attemptBytes: 0, fraction: 0 };
        this.batchList.push(stream.open);
      }
      stream.open.entries.push(entry);
      stream.open.bytes += entry.size;
      if (stream.open.entries.length >= BATCH_FILES || stream.open.bytes >= BATCH_BYTES) flush();
      else early();
      this.paintTransfer();
    };
    stream.room = async () => {
      if (queue.length < QUEUED_BATCHES || stream.failed) return;
      const waited = performance.now();
      while (!stream.failed && queue.length >= QUEUED_BATCHES) await changed;
      // How long files waited for the requests before going to a worker (summed), for `manage.py bench`.
      this.timeline["room wait"] = (this.timeline["room wait"] || 0) + Math.round(performance.now() - waited);
    };
    stream.finish = async () => {
      flush();
      while ((queue.length && !stream.failed) || active) await changed;
      this.sending = false;
      this.transferTotal = this.batchList.reduce((sum, batch) => sum + batch.bytes, 0);
      this.paintTransfer();
      if (stream.failed) {
        for (const entry of this.entries) {
          if (entry.state === "waiting" || entry.state === "sending") this.setShaState(entry.sha, "unsent", "", { force: true });
        }
        throw stream.failed;
      }
      this.mark("all sent");
      this.timeline["idle request slots"] = Math.round(idle);
      await this.refreshed();
      // What the server now lists: the delivery that follows sends only what it does not.
      this.adopt(await this.apiPatiently("GET", this.uploadUrl(this.urls.status)));
    };
    return stream;
  }

  deidNote(record) {
    const parts = [];
    for (const [action, words] of Object.entries(ACTION_WORDS)) {
      const n = record.actions[action];
      if (n) parts.push(interpolate(words, { n: whole.format(n) }, true));
    }
    return interpolate(gettext("De-identified in your browser (%(method)s): %(what)s."), { method: record.method, what: parts.join(", ") || gettext("nothing to change") }, true);
  }

  /** The records of files de-identified here, as a STOW part: keyed hashes and counts, never a value of the original. */
  recordsPart(entries, boundary) {
    const records = entries
      .filter((entry) => entry.record)
      .map((entry) => ({
        sha256: entry.record.sha256,
        key_check: entry.record.key_check,
        patient_hash: entry.record.patient_hash,
        actions: entry.record.actions,
      }));
    return records.length ? `--${boundary}\r\nContent-Type: ${RECORDS_MEDIA}\r\n\r\n${JSON.stringify({ records })}\r\n` : "";
  }

  /** Rows for what the server already holds; the files it does not hold, one a content. */
  pending() {
    const waiting = [];
    for (const [sha, entries] of this.bySha) {
      if (!this.serverHolds(sha)) {
        this.setShaState(sha, "waiting", "", { force: true });
        waiting.push(entries[0]);
      }
    }
    return waiting;
  }

  /** Whether the server holds the file (this upload or an earlier one); its rows then say so. */
  serverHolds(sha) {
    const item = this.current.get(sha) || this.previous.get(sha);
    const known = this.earlier.get(sha);
    if (item && item.state !== "resend") {
      this.setShaState(sha, FROM_SERVER[item.state], item.reason || "", { force: true });
    } else if (!item && known && known.state === "rejected") {
      const detail = interpolate(gettext("In an earlier upload: %(reason)s"), { reason: known.reason }, true);
      this.setShaState(sha, "rejected", detail, { force: true });
    } else if (!item && known) {
      this.setShaState(sha, "earlier", gettext("Stored in an earlier upload; not sent again."), { force: true });
    } else {
      return false;
    }
    return true;
  }

  async deliver() {
    let waiting = this.pending();
    // Files of this drop the server took (while de-identifying, or on an earlier try): the upload took place even
    // if another tab of the same session finished it meanwhile.
    let touched = this.sentAny;
    // A session opened early for the browser path, while the engine then could not start, sends files as they are.
    const unused = this.upload && !this.browserMode && this.upload.deid_path === "browser" && !this.upload.counts.total;
    if (waiting.length && (!this.upload || this.upload.state !== "open" || unused)) {
      this.phase(gettext("Opening the upload…"));
      await this.openUpload(this.browserMode ? "browser" : "server");
      waiting = this.pending();
    }
    if (waiting.length) {
      touched = true;
      await this.send(waiting);
    }
    if (this.upload && this.upload.state === "open") {
      this.phase(gettext("All files sent. Closing the upload…"));
      this.mark("finishing");
      this.adopt(await this.apiPatiently("POST", this.uploadUrl(this.urls.finish)));
      this.mark("finished");
      // A session that received no file (opened here for the subject key, then nothing to send) is discarded
      // by the server ("cancelled"): no upload took place, and the visit is as it was.
      touched ||= this.upload.state !== "cancelled";
    }
    if (touched) await this.poll();
    this.report({ touched });
  }

  // --- sending ------------------------------------------------------------------------------------------------

  batches(entries) {
    const batches = [];
    let batch = null;
    for (const entry of entries) {
      if (!batch || batch.entries.length >= BATCH_FILES || (batch.bytes && batch.bytes + entry.size > BATCH_BYTES)) {
        batch = { number: batches.length + 1, entries: [], bytes: 0, settled: 0, attemptBytes: 0, fraction: 0 };
        batches.push(batch);
      }
      batch.entries.push(entry);
      batch.bytes += entry.size;
    }
    return batches;
  }

  async send(entries) {
    this.batchList = this.batches(entries);
    this.batchCount = this.batchList.length;
    this.transferTotal = entries.reduce((sum, entry) => sum + entry.size, 0);
    this.expected = this.current.size + entries.length;
    this.queue = [...this.batchList];
    this.stopped = false;
    this.sending = true;
    this.el.sendRow.hidden = false;
    this.phase(
      interpolate(
        ngettext(
          "Sending %(n)s file in %(batches)s request…",
          "Sending %(n)s files in %(batches)s requests…",
          entries.length,
        ),
        { n: whole.format(entries.length), batches: whole.format(this.batchCount) },
        true,
      ),
    );
    this.paintTransfer();
    const worker = async () => {
      while (!this.stopped && this.queue.length) {
        const batch = this.queue.shift();
        try {
          await this.sendBatch(batch);
        } catch (error) {
          this.stopped = true;
          throw error;
        }
      }
    };
    try {
      const results = await Promise.allSettled(Array.from({ length: Math.min(IN_FLIGHT, this.queue.length) }, worker));
      const failed = results.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
      this.mark("all sent");
      await this.refreshed();
    } finally {
      this.sending = false;
      for (const entry of entries) {
        if (entry.state === "waiting" || entry.state === "sending") this.setShaState(entry.sha, "unsent", "", { force: true });
      }
    }
  }

  async sendBatch(batch) {
    if (!("first sent" in this.timeline)) this.mark("first sent");
    let entries = batch.entries;
    const bar = this.batchBar(batch);
    try {
      for (let attempt = 1; ; attempt++) {
        for (const entry of entries) this.setShaState(entry.sha, "sending", "", { force: true });
        batch.attemptBytes = entries.reduce((sum, entry) => sum + entry.size, 0);
        batch.fraction = 0;
        const answer = await this.post(entries, batch, bar);
        if (answer.ok) {
          this.sentAny = true;
          for (const entry of entries) this.setShaState(entry.sha, "received");
          batch.settled = batch.bytes;
          batch.attemptBytes = 0;
          this.paintTransfer();
          this.refresh();
          return;
        }
        if (!answer.retry) throw await this.refusal(answer.message);
        if (attempt >= TRIES) {
          throw new UploadError(
            gettext(
              "The connection to the server keeps failing. Check the network, then press Retry: files the server already holds will not be sent again.",
            ),
          );
        }
        const seconds = 2 ** (attempt - 1);
        const note = interpolate(gettext("Connection lost; trying again in %(s)s s."), { s: seconds }, true);
        for (const entry of entries) this.setShaState(entry.sha, "waiting", note, { force: true });
        this.phase(note);
        batch.fraction = 0;
        this.paintTransfer();
        await sleep(seconds * 1000);
        try {
          this.adopt(await this.api("GET", this.uploadUrl(this.urls.status)));
        } catch (error) {
          if (!error.transient) throw error;
        }
        // Send again only what the server does not list.
        entries = entries.filter((entry) => !this.current.has(entry.sha));
        batch.settled = batch.bytes - entries.reduce((sum, entry) => sum + entry.size, 0);
        if (!entries.length) {
          batch.attemptBytes = 0;
          this.paintTransfer();
          return;
        }
        this.phase(gettext("Sending the files the server has not received…"));
      }
    } finally {
      bar.remove();
    }
  }

  /** Why a request was refused: the session closed under this page (another tab or window of the person, sharing
   * it, finished it) is said so; anything else as the server words it. */
  async refusal(message) {
    try {
      const upload = await this.api("GET", this.uploadUrl(this.urls.status));
      if (upload.id === this.upload.id && upload.state !== "open") {
        this.adopt(upload);
        return new UploadError(
          gettext(
            "This upload was finished in another tab or window while this one was sending. Press Retry to send the rest in a new upload: files the server already holds are not sent again.",
          ),
        );
      }
    } catch {
      // The server's own words, below.
    }
    return new UploadError(message);
  }

  batchBar(batch) {
    const row = document.createElement("div");
    row.className = "progress-row batch";
    const id = `upload-batch-${batch.number}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = interpolate(
      ngettext("Request %(i)s of %(n)s (%(files)s file)", "Request %(i)s of %(n)s (%(files)s files)", batch.entries.length),
      { i: batch.number, n: this.batchCount, files: batch.entries.length },
      true,
    );
    const progress = document.createElement("progress");
    progress.id = id;
    progress.max = 100;
    progress.value = 0;
    row.append(label, progress);
    this.el.batches.append(row);
    return row;
  }

  async post(entries, batch, bar) {
    const boundary = randomBoundary();
    const parts = [this.recordsPart(entries, boundary)];
    for (const entry of entries) {
      parts.push(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, await entry.blob(), "\r\n");
    }
    parts.push(`--${boundary}--\r\n`);
    const body = new Blob(parts);
    const progress = bar.querySelector("progress");
    const posted = performance.now();
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.upload.stow_url);
      xhr.setRequestHeader("Content-Type", `multipart/related; type="application/dicom"; boundary=${boundary}`);
      xhr.setRequestHeader("Accept", "application/dicom+json");
      xhr.setRequestHeader("X-CSRFToken", this.csrf());
      xhr.upload.onprogress = (event) => {
        batch.fraction = event.lengthComputable && event.total ? event.loaded / event.total : 0;
        this.later(progress, () => {
          progress.value = Math.round(batch.fraction * 100);
        });
        this.paintTransfer();
      };
      xhr.onload = () => {
        const status = xhr.status;
        // How long the server took over its requests (sent, stored, checked), for `manage.py bench`.
        this.timeline.requests = (this.timeline.requests || 0) + 1;
        this.timeline["request time"] = (this.timeline["request time"] || 0) + Math.round(performance.now() - posted);
        this.root.dataset.timeline = JSON.stringify(this.timeline);
        let answer = null;
        try {
          answer = JSON.parse(xhr.responseText);
        } catch {
          answer = null;
        }
        if (status >= 200 && status < 300) resolve({ ok: true });
        // 409 with a Failed SOP Sequence: every file arrived and was refused; the reasons come with the status.
        else if (status === 409 && answer && answer["00081198"]) resolve({ ok: true });
        else if (status >= 500 || status === 408 || status === 429) resolve({ retry: true });
        else resolve({ message: errorMessage(answer, status) });
      };
      xhr.onerror = xhr.ontimeout = xhr.onabort = () => resolve({ retry: true });
      xhr.send(body);
    });
  }

  // --- the server's view -------------------------------------------------------------------------------------

  async api(method, url, body = undefined) {
    let response;
    const headers = { Accept: "application/json", "X-CSRFToken": this.csrf() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        cache: "no-store",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new UploadError(gettext("The server cannot be reached."), { transient: true });
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    if (response.ok && answer) return answer;
    throw new UploadError(errorMessage(answer, response.status), { transient: response.status >= 500 });
  }

  async apiPatiently(method, url, body = undefined) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.api(method, url, body);
      } catch (error) {
        if (!error.transient || attempt >= TRIES) throw error;
        await sleep(1000 * 2 ** (attempt - 1));
      }
    }
  }

  /**
   * The status URL for a poll: only the files from the last answer's cursor on (those not settled then, and any
   * received since), as settled files do not change. A file committed late behind the cursor may be missed by
   * such a poll; the lists that decide what is sent (after the last batch, on retry) and the final one (the
   * upload complete) are whole.
   */
  pollUrl() {
    const url = this.uploadUrl(this.urls.status);
    return Number.isInteger(this.cursor) ? `${url}?items_from=${this.cursor}` : url;
  }

  /**
   * Ask for the upload's status after a batch: one request at a time, at most one per REFRESH_GAP_MS (a batch
   * answered while the next request waits its turn is covered by that request).
   */
  refresh() {
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = (async () => {
      do {
        const wait = (this.lastRefresh ?? -Infinity) + REFRESH_GAP_MS - performance.now();
        if (wait > 0) {
          await new Promise((resolve) => {
            this.wakeRefresh = resolve;
            setTimeout(resolve, wait);
          });
          this.wakeRefresh = null;
        }
        this.refreshAgain = false;
        this.lastRefresh = performance.now();
        try {
          this.adopt(await this.api("GET", this.pollUrl()));
        } catch {
          // The next batch or the finish asks again.
        }
      } while (this.refreshAgain);
      this.refreshing = null;
    })();
  }

  /** Once every file is sent: the status asked for now if it was waiting its turn, and its answer awaited. */
  async refreshed() {
    if (this.wakeRefresh) this.wakeRefresh();
    await this.refreshing;
  }

  adopt(upload, { fresh = false } = {}) {
    if (!fresh && this.upload && this.upload.id !== upload.id) {
      // A late answer about a session this page has left (a poll sent before it opened another): what that
      // session holds is still known, but the page stays with the session it sends to.
      for (const item of upload.items) this.previous.set(item.sha256, item);
      return;
    }
    if (fresh && this.upload && this.upload.id !== upload.id) {
      // Another session (the last one closed under this page): what the earlier one holds is not sent again.
      for (const [sha, item] of this.current) this.previous.set(sha, item);
    }
    if (fresh || (this.upload && this.upload.id !== upload.id)) {
      this.current = new Map();
      this.cursor = undefined;
    }
    this.upload = upload;
    if (Number.isInteger(upload.cursor)) this.cursor = upload.cursor;
    this.el.processRow.hidden = false;
    for (const item of upload.items) {
      this.current.set(item.sha256, item);
      if (this.bySha.has(item.sha256)) this.setShaState(item.sha256, FROM_SERVER[item.state], item.reason || "");
    }
    this.paintProcessing();
    this.paintTimepoint(upload.timepoint_state);
  }

  async poll() {
    this.phase(gettext("The server is de-identifying and storing the images…"));
    while (this.upload.state === "processing") {
      await sleep(POLL_MS);
      this.adopt(await this.apiPatiently("GET", this.pollUrl()));
    }
  }

  // --- painting --------------------------------------------------------------------------------------------

  showPanel() {
    this.el.panel.hidden = false;
  }

  phase(text) {
    this.paintNow();
    this.el.phase.textContent = text;
  }

  /** A change to show: for each `key`, the latest `write` is run at the next paint (at most every PAINT_MS). */
  later(key, write) {
    this.writes.set(key, write);
    this.writeTimer ??= setTimeout(() => this.paintNow(), PAINT_MS);
  }

  /** Shows every change waiting: at each step's start and end, so that what a step says is what is true. */
  paintNow() {
    clearTimeout(this.writeTimer);
    this.writeTimer = null;
    const writes = [...this.writes.values()];
    this.writes.clear();
    for (const write of writes) write();
  }

  countText(done, total) {
    return interpolate(gettext("%(done)s of %(total)s"), { done: whole.format(done), total: whole.format(total) }, true);
  }

  setBar(bar, label, done, total, text) {
    this.later(bar, () => this.writeBar(bar, label, done, total, text));
  }

  writeBar(bar, label, done, total, text) {
    bar.max = Math.max(total, 1);
    bar.value = Math.min(done, bar.max);
    label.textContent = text;
  }

  paintTransfer() {
    // Worked out when painted, from the batches' progress then.
    this.later(this.el.sendBar, () => {
      const total = this.transferTotal || 0;
      let sent = 0;
      for (const batch of this.batchList) sent += batch.settled + batch.attemptBytes * batch.fraction;
      sent = Math.min(Math.round(sent), total);
      const share = total ? Math.floor((sent / total) * 100) / 100 : 1;
      const text = interpolate(
        gettext("%(sent)s of %(total)s · %(percent)s"),
        { sent: formatBytes(sent), total: formatBytes(total), percent: percent.format(share) },
        true,
      );
      this.writeBar(this.el.sendBar, this.el.sendText, sent, total, text);
    });
  }

  paintProcessing() {
    const counts = this.upload.counts;
    const total = Math.max(counts.total, this.sending ? this.expected || 0 : 0);
    const done = counts.total - counts.quarantined;
    const text = interpolate(
      ngettext("%(done)s of %(total)s file processed", "%(done)s of %(total)s files processed", total),
      { done: whole.format(done), total: whole.format(total) },
      true,
    );
    this.setBar(this.el.processBar, this.el.processText, done, total, text);
  }

  paintTimepoint(state) {
    const badge = this.el.timepointState;
    if (!badge || !state) return;
    badge.className = `badge state-${state}`;
    badge.textContent = this.stateLabels[state] || state;
  }

  report({ touched }) {
    this.paintNow(); // the rows and bars say what the result says
    const tally = { accepted: 0, already: 0, rejected: 0, unsent: 0 };
    if (this.bySha.size) {
      for (const [, entries] of this.bySha) {
        const state = entries[0].state;
        if (state === "accepted") tally.accepted += 1;
        else if (state === "duplicate" || state === "earlier") tally.already += 1;
        else if (state === "rejected") tally.rejected += 1;
        else tally.unsent += 1;
      }
    } else if (this.upload) {
      tally.accepted = this.upload.counts.accepted;
      tally.already = this.upload.counts.duplicate;
      tally.rejected = this.upload.counts.rejected;
    }
    const result = this.el.result;
    result.replaceChildren();
    const add = (className, ...nodes) => {
      const p = document.createElement("p");
      p.className = className;
      p.append(...nodes);
      result.append(p);
      return p;
    };
    // A note counting `entries` (`note`, already counted and in the page's language) and the first of them.
    const listed = (entries, note, className) => {
      if (!entries.length) return;
      add("result-note", interpolate(note, { n: whole.format(entries.length) }, true));
      result.append(fileList(entries.slice(0, SHOW_REJECTED), className));
    };
    const line = document.createElement("strong");
    line.textContent = interpolate(
      gettext("%(accepted)s de-identified and stored, %(already)s already stored, %(rejected)s rejected."),
      { accepted: whole.format(tally.accepted), already: whole.format(tally.already), rejected: whole.format(tally.rejected) },
      true,
    );
    if (!touched) {
      // Nothing went out: say how many files the server holds and how many were not sent (listed below).
      const notSent = this.entries.filter((e) => e.state === "held" || e.state === "unreadable").length;
      const holds = tally.accepted + tally.already + tally.rejected;
      if (!notSent) {
        this.phase(gettext("Nothing new to send: the server already holds every one of these files."));
      } else if (holds) {
        this.phase(
          interpolate(
            ngettext(
              "Nothing new to send: the server already holds %(holds)s of these files; %(n)s was not sent (listed below).",
              "Nothing new to send: the server already holds %(holds)s of these files; %(n)s were not sent (listed below).",
              notSent,
            ),
            { holds: whole.format(holds), n: whole.format(notSent) },
            true,
          ),
        );
      } else {
        this.phase(gettext("Nothing was sent: none of these files could be sent (listed below)."));
      }
    } else {
      this.phase(gettext("Upload complete."));
    }
    add("result-line", line);
    const state = this.upload && touched ? this.upload.timepoint_state : null;
    const holds = this.upload && this.upload.timepoint_stored;
    if (state && holds && holds.instances) {
      // What the visit holds, as the server counts it (a resumed upload's own count includes what was stored
      // before the reload, so adding the two counted those files twice).
      this.el.stored.textContent = `${interpolate(
        ngettext("%(n)s series", "%(n)s series", holds.series),
        { n: whole.format(holds.series) },
        true,
      )} / ${interpolate(ngettext("%(n)s image", "%(n)s images", holds.instances), { n: whole.format(holds.instances) }, true)}`;
    }
    if (state) {
      const [before, after] = gettext("The visit is now %(state)s.").split("%(state)s");
      const badge = document.createElement("span");
      badge.className = `badge state-${state}`;
      badge.textContent = this.stateLabels[state] || state;
      add("result-state", before, badge, after || "");
      if (state === "expected") {
        add(
          "message message-warning",
          gettext(
            "No image was stored: every file was rejected, so the visit is still expected. The reasons are listed below.",
          ),
        );
      }
    }
    const held = this.entries.filter((e) => e.state === "held");
    listed(
      held,
      ngettext("%(n)s file was held back in your browser and not sent:", "%(n)s files were held back in your browser and not sent:", held.length),
      "held-list",
    );
    // The counts above are of distinct files: a file found twice in what was dropped went once.
    let copies = 0;
    for (const [, entries] of this.bySha) copies += entries.length - 1;
    if (copies) {
      add(
        "result-note",
        interpolate(
          ngettext(
            "%(n)s file was a copy of another file here and is counted once.",
            "%(n)s files were copies of other files here and are counted once.",
            copies,
          ),
          { n: whole.format(copies) },
          true,
        ),
      );
    }
    const unreadable = this.entries.filter((e) => e.state === "unreadable");
    listed(
      unreadable,
      ngettext("%(n)s file could not be read and was not sent:", "%(n)s files could not be read and were not sent:", unreadable.length),
      "unreadable-list",
    );
    const rejected = [...this.bySha.values()].map((entries) => entries[0]).filter((e) => e.state === "rejected");
    if (rejected.length) {
      add("result-note", gettext("These files were not stored:"));
      result.append(fileList(rejected.slice(0, SHOW_REJECTED), "rejected-list"));
      if (rejected.length > SHOW_REJECTED) {
        const more = rejected.length - SHOW_REJECTED;
        add(
          "muted small",
          interpolate(
            ngettext("…and %(n)s more, listed in the table below.", "…and %(n)s more, listed in the table below.", more),
            { n: whole.format(more) },
            true,
          ),
        );
      }
    }
    this.el.back.hidden = false;
  }

  fail(error) {
    console.error(error);
    // Files the upload stopped before checking are not being checked any more: they say so until Retry.
    for (const entry of this.unchecked()) {
      if (entry.state === "checking") this.setState(entry, "unsent");
    }
    this.paintNow();
    this.el.errorText.textContent = error instanceof UploadError ? error.message : gettext("Something went wrong in the browser while reading or sending the files.");
    this.el.error.hidden = false;
    this.phase(gettext("The upload stopped."));
  }
}

const root = document.getElementById("uploader");
if (root) {
  // "is-ready" once the page takes files: after resuming what the server holds.
  new Uploader(root).start().finally(() => root.classList.add("is-ready"));
}
