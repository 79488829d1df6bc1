// The blinded reader's read and the adjudicator's comparison, on top of the viewer: index.js starts this when
// the page has a #read-config block (templates/reads/read.html and adjudicate.html).
//
// A read is a list of lesions. At baseline the reader adds target lesions, each tied to one Length or
// Bidirectional annotation, and non-target lesions; at follow-up the lesions tracked from the reader's earlier
// reads are listed with their previous values, each gets a status (a target is measured again), and new
// lesions are reported. Every change is saved as a draft (PUT to read_config.draft_url, after a short pause);
// the server validates it and answers with the RECIST assessment, shown under the lesions, and whether the read
// can be signed. What is sent follows the reads contract: sizes in mm as one-decimal strings, points as image
// (column, row) pixels, the image as the de-identified study, series and instance UIDs the viewer loads.

import { metaData, eventTarget, utilities as coreUtilities } from "@cornerstonejs/core";
import { wadors } from "@cornerstonejs/dicom-image-loader";
import { BidirectionalTool, Enums as ToolEnums, LengthTool, annotation } from "@cornerstonejs/tools";

import { TAGS, value } from "./dicomweb.js";
import { cross, imageToWorld } from "./geometry.js";
import { gettext, integer, interpolate, mm } from "./i18n.js";
import { describe } from "./measurements.js";

const { Events } = ToolEnums;
const MEASURED = new Set([LengthTool.toolName, BidirectionalTool.toolName]);
const SAVE_DELAY = 600; // ms after the last change: one request for a burst of edits
const RETRY_DELAY = 5000; // ms before saving again after the network or the server failed
// Each reader's colour on the adjudication page; ctims.css gives the legend the same ones.
const READER_COLOURS = { 1: "rgb(64, 196, 255)", 2: "rgb(255, 140, 60)" };
// The reader's own earlier measurements, drawn read-only on the earlier visit's images: dashed and yellow (ctims.css
// marks a lesion's earlier value in the read panel with a dashed line of a darker yellow, readable on white).
const PRIOR_STYLE = { colour: "rgb(255, 214, 10)", dashed: true };
const IMAGE_PATH = /\/studies\/([^/]+)\/series\/([^/]+)\/instances\/([^/]+)\/frames\/(\d+)$/;
const POINT_TOLERANCE = 0.051; // pixels: points are kept to a tenth of a pixel

/** Response, new-lesion and lesion status codes in words (templates/reads/_code.html has the same). */
function codeLabel(code) {
  if (code === null || code === undefined || code === "") return "—";
  const labels = {
    CR: gettext("Complete response"),
    PR: gettext("Partial response"),
    SD: gettext("Stable disease"),
    PD: gettext("Progressive disease"),
    NE: gettext("Not evaluable"),
    NOT_EVALUABLE: gettext("Not evaluable"),
    NON_CR_NON_PD: gettext("Non-CR/non-PD"),
    NOT_APPLICABLE: gettext("Not applicable"),
    BASELINE: gettext("Baseline"),
    NONE: gettext("None"),
    EQUIVOCAL: gettext("Equivocal"),
    UNEQUIVOCAL: gettext("Unequivocal"),
    MEASURED: gettext("Measured"),
    TOO_SMALL: gettext("Too small to measure"),
    DISAPPEARED: gettext("Disappeared"),
    PRESENT: gettext("Present"),
    ABSENT: gettext("Absent"),
    UNEQUIVOCAL_PROGRESSION: gettext("Unequivocal progression"),
  };
  return labels[String(code).toUpperCase()] ?? String(code);
}

const TARGET_STATUSES = ["measured", "too_small", "disappeared", "not_evaluable"];
const NON_TARGET_STATUSES = ["present", "absent", "unequivocal_progression", "not_evaluable"];

/** The image an annotation lies on, from its wadors image id: {study, series, sop, frame}, or null. */
export function imageOf(imageId) {
  const match = imageId ? IMAGE_PATH.exec(imageId) : null;
  if (!match) return null;
  const [study, series, sop] = match.slice(1, 4).map(decodeURIComponent);
  return { study, series, sop, frame: Number(match[4]) };
}

const oneDecimal = (x) => (Number.isFinite(x) ? x.toFixed(1) : null);

/** An annotation as a read's measurement: long and short axis (mm strings, pixel points) and its image. */
function measurementOf(item) {
  const d = describe(item);
  let long = { mm: d.mm, points: d.points.slice(0, 2) };
  let short = null;
  if (d.tool === BidirectionalTool.toolName) {
    short = { mm: d.shortMm ?? null, points: d.points.slice(2, 4) };
    // The reader may have dragged the "short" axis longer than the long one: the longer is the long axis.
    if (short.mm !== null && long.mm !== null && short.mm > long.mm) [long, short] = [short, long];
  }
  return {
    uid: d.uid,
    tool: d.tool,
    image: imageOf(d.imageId),
    long_mm: oneDecimal(long.mm),
    short_mm: short ? oneDecimal(short.mm) : null,
    long_points: long.points,
    short_points: short ? short.points : null,
  };
}

function samePoints(a, b) {
  if (!a || !b || a.length !== b.length) return !a && !b;
  return a.every((point, i) => point.every((x, j) => Math.abs(x - b[i][j]) <= POINT_TOLERANCE));
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(className, text) {
  const node = element("button", className, text);
  node.type = "button";
  return node;
}

// --- drawing saved measurements back ---------------------------------------------------------------------

/** Puts measurements stored as image pixels back on the images as Cornerstone annotations. */
class Drawing {
  constructor(viewer) {
    this.viewer = viewer;
    this.registered = new Map();
  }

  imageIdOf(image) {
    return this.viewer.client.imageIds(image.study, image.series, image.sop, image.frame)[image.frame - 1];
  }

  /** Register a series' instance metadata with the loader (once), so an image's geometry is known unshown. */
  register(study, series) {
    const key = `${study}/${series}`;
    if (!this.registered.has(key)) {
      const client = this.viewer.client;
      this.registered.set(
        key,
        client.metadata(study, series).then((objects) => {
          for (const object of objects) {
            const [first] = client.imageIds(study, series, value(object, TAGS.sopUid), 1);
            wadors.metaDataManager.add(first, object);
          }
        }),
      );
    }
    return this.registered.get(key);
  }

  /** Add a Length (two points) or Bidirectional (four) annotation; resolves to its UID, or null. */
  async draw({ image, points, label, locked = false, colour = null, dashed = false, recorded = null }) {
    await this.register(image.study, image.series);
    const imageId = this.imageIdOf(image);
    const plane = metaData.get("imagePlaneModule", imageId);
    if (!plane?.imagePositionPatient || !plane.rowCosines || !plane.columnCosines) return null;
    const tool = points.length === 4 ? BidirectionalTool.toolName : LengthTool.toolName;
    const item = {
      annotationUID: coreUtilities.uuidv4(),
      highlighted: false,
      invalidated: true,
      isLocked: false,
      isVisible: true,
      metadata: {
        toolName: tool,
        FrameOfReferenceUID: plane.frameOfReferenceUID,
        referencedImageId: imageId,
        viewPlaneNormal: cross(plane.rowCosines, plane.columnCosines),
      },
      data: {
        label,
        // The sizes the read recorded, shown until Cornerstone measures the drawing on a displayed image.
        recorded,
        handles: {
          points: points.map((point) => imageToWorld(plane, point)),
          activeHandleIndex: null,
        },
        cachedStats: {},
      },
    };
    annotation.state.addAnnotation(item, plane.frameOfReferenceUID);
    if (colour) {
      annotation.config.style.setAnnotationStyles(item.annotationUID, {
        color: colour,
        colorLocked: colour,
        colorHighlighted: colour,
        colorSelected: colour,
        textBoxColor: colour,
        textBoxColorLocked: colour,
        textBoxColorHighlighted: colour,
        textBoxColorSelected: colour,
        ...(dashed ? { lineDash: "6,4" } : {}),
      });
    }
    if (locked) annotation.locking.setAnnotationLocked(item.annotationUID, true);
    return item.annotationUID;
  }
}

/** A millimetre string from the server ("23.0") as a number, or null. */
function toNumber(value) {
  const number = value === null || value === undefined || value === "" ? NaN : Number(value);
  return Number.isFinite(number) ? number : null;
}

/**
 * Put an image of a visit in a pane without scrolling to it yet: the left pane for the current visit, else the
 * comparison pane (opened on that visit if it shows another). Resolves to {pane, index}, or null.
 */
async function placeOf(viewer, drawing, image, visitCode = null) {
  const timepoint = viewer.timepoints.find((t) => (visitCode ? t.visit === visitCode : t.current));
  if (!timepoint || !image) return null;
  const imageId = drawing.imageIdOf(image);
  const at = (p) => p.slices.findIndex((slice) => slice.imageId === imageId);
  let pane = viewer.panes.find((p) => p.enabled && p.timepoint?.visit === timepoint.visit);
  if (!pane && timepoint.current) pane = viewer.left;
  if (!pane) {
    viewer.compareSelect.value = timepoint.visit;
    if (viewer.layout === 2) await viewer.compareWith(timepoint.visit);
    else await viewer.setLayout(2);
    pane = viewer.right;
  }
  if (pane.series?.studyUid !== image.study || pane.series?.seriesUid !== image.series) {
    const series = (await viewer.seriesOf(timepoint)).find(
      (s) => s.studyUid === image.study && s.seriesUid === image.series,
    );
    if (!series) return null;
    await pane.show(series, { startAt: at });
  }
  return { pane, index: at(pane) };
}

/**
 * Bring the panes to the images `places()` names ([{image, visit}], the current visit's visit null), together,
 * once the viewer has shown its first image (`viewerReady`): a click before that would race its first series.
 * The places are asked for when the jump gets its turn, so they see the panes an earlier jump left.
 */
async function showPlaces(viewer, drawing, places, viewerReady) {
  await viewerReady;
  await viewer.jump(async () => {
    const found = [];
    for (const { image, visit } of places()) {
      const place = await placeOf(viewer, drawing, image, visit);
      if (place) found.push(place);
    }
    return found;
  });
  await viewer.renderSeriesList();
}

/** Make the tools print a measurement's lesion label ("T01") above its size. */
function labelMeasurements(viewer) {
  for (const Tool of [LengthTool, BidirectionalTool]) {
    const tool = viewer.toolGroup.getToolInstance(Tool.toolName);
    const original = tool?.configuration?.getTextLines;
    if (!original) continue;
    viewer.toolGroup.setToolConfiguration(Tool.toolName, {
      getTextLines: (data, targetId) => {
        const lines = original(data, targetId);
        // Bidirectional's own lines start with the label already; Length's do not.
        return data.label && lines && lines[0] !== data.label ? [data.label, ...lines] : lines;
      },
    });
  }
}

// --- the reader's read ------------------------------------------------------------------------------------

class SaveError extends Error {
  constructor(status, data) {
    super(data?.error?.message || `${status}`);
    this.status = status;
    this.data = data || {};
  }
}

class ReadPanel {
  constructor(viewer, config) {
    this.viewer = viewer;
    this.config = config;
    this.drawing = new Drawing(viewer);
    this.editable = Boolean(config.editable);
    this.baseline = Boolean(config.baseline);
    this.sites = new Map((config.sites || []).map((site) => [site.code, site]));
    this.limits = config.limits || {};
    this.rows = [];
    this.priorUids = new Map(); // the drawn earlier measurements: annotation UID -> the row of their lesion
    this.pending = null; // the target row the next completed annotation belongs to
    this.moving = new Set(); // the rows whose drawing is being dragged
    this.newLesions = "none";
    this.newLesionsChosen = this.baseline;
    this.assessment = config.assessment || null;
    this.ready = false;
    // Saving: each change bumps `version`; `savedVersion` is the one the server last accepted.
    this.version = 0;
    this.savedVersion = 0;
    this.inFlight = false;
    this.timer = null;
    this.retrying = false;
    this.error = null;
    this.waiters = [];
    // The draft's revision this page shows (reads.read_services.draft_revision): each save and the signature name
    // it, and the server refuses them if another tab or window changed the read since.
    this.revision = config.revision ?? "";
    this.saves = 0; // saves started: a revision read while one was out may be this page's own
    this.conflict = false;

    const $ = (id) => document.getElementById(id);
    this.panel = $("read-panel");
    this.lists = { target: $("read-targets"), non_target: $("read-non-targets"), new: $("read-new") };
    this.addTargetButton = $("read-add-target");
    this.addNonTargetButton = $("read-add-non-target");
    this.addNewButton = $("read-add-new");
    this.newChoice = $("read-new-lesions");
    this.saveState = $("read-save-state");
    this.assessmentBody = $("read-assessment-body");
    this.signButton = $("read-sign-button");
    this.signHint = $("read-sign-hint");
    this.signResponse = document.querySelector("#read-sign-response strong");
    this.confirmed = $("read-confirmed-response");
    this.revisionInput = $("read-revision");
  }

  // --- set-up --------------------------------------------------------------------------------------------

  start(viewerReady) {
    this.viewerReady = viewerReady;
    this.restoreRows();
    for (const row of this.rows) this.appendRow(row);
    this.renderNewChoice();
    this.bind();
    this.markProblems();
    this.updateAddButtons();
    this.updateSignState();
    const ready = viewerReady.then(async () => {
      labelMeasurements(this.viewer);
      this.viewer.measurements.onGo = (uid) => this.onGo(uid);
      await this.drawSaved();
      await this.drawPriors();
    });
    if (this.editable) {
      // The page knows the saved draft and its assessment; whether it may be signed comes from the server.
      this.fetchDraft().catch(() => {});
    }
    return ready;
  }

  bind() {
    this.panel.addEventListener("click", (event) => this.onClick(event));
    this.panel.addEventListener("change", (event) => this.onChange(event));
    if (!this.editable) return;
    eventTarget.addEventListener(Events.ANNOTATION_COMPLETED, (event) => this.onCompleted(event.detail.annotation));
    eventTarget.addEventListener(Events.ANNOTATION_MODIFIED, (event) => this.onModified(event.detail.annotation));
    eventTarget.addEventListener(Events.ANNOTATION_REMOVED, (event) => this.onRemoved(event.detail.annotation));
    // A drawing let go (or put back with Escape) is taken as it now lies.
    this.viewer.root.addEventListener("viewer:edit-end", () => {
      for (const row of [...this.moving]) {
        const item = row.uid && annotation.state.getAnnotation(row.uid);
        if (item) this.onModified(item);
        else this.moving.delete(row);
      }
    });
    // Escape with nothing being drawn: a lesion waiting for its measurement waits no more.
    this.viewer.onEscape = () => {
      if (!this.pending) return false;
      this.stopMeasuring();
      return true;
    };
    // Back to this tab: has another one changed the read meanwhile?
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.editable) this.fetchDraft().catch(() => {});
    });
    window.addEventListener("beforeunload", (event) => {
      if (this.version !== this.savedVersion) event.preventDefault();
    });
    const sign = document.getElementById("read-sign-form");
    sign?.addEventListener("submit", (event) => {
      if (this.signButton.disabled) event.preventDefault();
    });
  }

  /** The rows of the saved content, and at follow-up one for every tracked lesion. */
  restoreRows() {
    const content = this.config.content || {};
    const make = (category, item, tracked = null) => {
      const site = item.site ?? tracked?.site ?? "";
      const row = {
        category,
        label: item.label,
        site,
        isNode: tracked ? Boolean(tracked.is_node) : Boolean(item.is_node ?? this.sites.get(site)?.node),
        status: item.status || "",
        tracked,
        measurement: null,
        image: category === "target" ? null : item.image || null,
        uid: null,
        element: null,
      };
      if (category === "target" && item.image && (item.long_points || item.short_points)) {
        row.measurement = {
          uid: null,
          tool: item.short_points ? BidirectionalTool.toolName : LengthTool.toolName,
          image: item.image,
          long_mm: item.long_mm ?? null,
          short_mm: item.short_mm ?? null,
          long_points: item.long_points ?? null,
          short_points: item.short_points ?? null,
        };
      }
      if (this.baseline) row.status = category === "target" ? "measured" : category === "non_target" ? "present" : "";
      return row;
    };
    if (this.baseline) {
      for (const item of content.targets || []) this.rows.push(make("target", item));
      for (const item of content.non_targets || []) this.rows.push(make("non_target", item));
      return;
    }
    const saved = {
      target: new Map((content.targets || []).map((item) => [item.label, item])),
      non_target: new Map((content.non_targets || []).map((item) => [item.label, item])),
      new: new Map((content.new || []).map((item) => [item.label, item])),
    };
    for (const tracked of this.config.tracked || []) {
      const mine = saved[tracked.category]?.get(tracked.label);
      saved[tracked.category]?.delete(tracked.label);
      this.rows.push(make(tracked.category, mine || { label: tracked.label, site: tracked.site }, tracked));
    }
    for (const item of saved.new.values()) this.rows.push(make("new", item));
    if (content.new_lesions) {
      this.newLesions = content.new_lesions;
      this.newLesionsChosen = true;
    }
  }

  async drawSaved() {
    for (const row of this.rows) {
      const m = row.measurement;
      if (!m?.image || !m.long_points) continue;
      const points = m.short_points ? [...m.long_points, ...m.short_points] : m.long_points;
      try {
        const uid = await this.drawing.draw({
          image: m.image,
          points,
          label: row.label,
          locked: !this.editable,
          recorded: { mm: toNumber(m.long_mm), shortMm: toNumber(m.short_mm) },
        });
        if (uid && row.measurement === m) {
          row.uid = uid;
          m.uid = uid;
          m.restored = true;
        } else if (uid) {
          annotation.state.removeAnnotation(uid); // re-measured meanwhile
        }
      } catch {
        // The image could not be found again: the values stay in the list; the drawing is only missing.
      }
    }
    this.viewer.renderAll();
    this.viewer.measurements.schedule();
  }

  /**
   * Draw where the reader measured each tracked target in their own signed reads of earlier visits, read-only
   * and dashed, on those visits' images: what comparing with an earlier visit shows beside the lesion.
   */
  async drawPriors() {
    for (const row of this.rows) {
      for (const prior of row.tracked?.priors || []) {
        if (!prior.long_points && !prior.short_points) continue;
        const points = [...(prior.long_points || []), ...(prior.short_points || [])];
        try {
          const uid = await this.drawing.draw({
            image: prior.image,
            points,
            label: interpolate(gettext("%(label)s · %(visit)s"), { label: row.label, visit: prior.visit_label }, true),
            locked: true,
            ...PRIOR_STYLE,
            recorded: { mm: toNumber(prior.long_mm), shortMm: toNumber(prior.short_mm) },
          });
          if (uid) {
            this.priorUids.set(uid, row);
            prior.uid = uid;
          }
        } catch {
          // The earlier image could not be found: its value stays in the lesion's row; only the drawing is missing.
        }
      }
      this.updateRow(row);
    }
    this.viewer.renderAll();
    this.viewer.measurements.schedule();
  }

  /** A click on a lesion's measurement in the viewer's list (the current one or an earlier one) jumps to it. */
  onGo(uid) {
    const row = this.rowByUid(uid) || this.priorUids.get(uid);
    if (!row) return false;
    this.jumpTo(row).catch(() => {});
    return true;
  }

  /** The lesion's images: this visit's (if recorded) and the earlier one the comparison pane shows, else the latest. */
  placesOf(row) {
    const current = row.category === "target" ? row.measurement?.image : row.image;
    const priors = row.tracked?.priors || [];
    const compared = this.viewer.layout === 2 ? this.viewer.right.timepoint?.visit : null;
    const prior = priors.find((p) => p.visit === compared) || priors[priors.length - 1];
    const places = [];
    if (current) places.push({ image: current, visit: null });
    if (prior) places.push({ image: prior.image, visit: prior.visit });
    return places;
  }

  /** Bring both panes to a lesion: this visit's image of it on the left, its earlier image on the right. */
  jumpTo(row) {
    return showPlaces(this.viewer, this.drawing, () => this.placesOf(row), this.viewerReady);
  }

  // --- rows ----------------------------------------------------------------------------------------------

  rowsOf(category) {
    return this.rows.filter((row) => row.category === category).sort((a, b) => a.label.localeCompare(b.label));
  }

  rowByUid(uid) {
    return uid ? this.rows.find((row) => row.uid === uid) : undefined;
  }

  nextLabel(category) {
    const prefix = { target: "T", non_target: "NT", new: "N" }[category];
    const used = new Set(this.rowsOf(category).map((row) => row.label));
    for (let n = 1; ; n += 1) {
      const label = `${prefix}${String(n).padStart(2, "0")}`;
      if (!used.has(label)) return label;
    }
  }

  addRow(category) {
    const row = {
      category,
      label: this.nextLabel(category),
      site: "",
      isNode: false,
      status: category === "target" ? "measured" : category === "non_target" ? "present" : "",
      tracked: null,
      measurement: null,
      image: null,
      uid: null,
      element: null,
    };
    this.rows.push(row);
    this.appendRow(row);
    if (category === "target") this.startMeasuring(row);
    row.element.querySelector(".lesion-site")?.focus();
    this.updateAddButtons();
    this.changed();
    return row;
  }

  removeRow(row) {
    if (this.pending === row) this.pending = null;
    this.rows = this.rows.filter((r) => r !== row);
    row.element.remove();
    if (row.uid) {
      const uid = row.uid;
      row.uid = null;
      annotation.state.removeAnnotation(uid);
      this.viewer.renderAll();
    }
    this.updateAddButtons();
    this.changed();
    const add = { target: this.addTargetButton, non_target: this.addNonTargetButton, new: this.addNewButton }[
      row.category
    ];
    add?.focus();
  }

  siteSelect(row) {
    const select = element("select", "lesion-site");
    select.id = `read-${row.label}-site`;
    select.disabled = !this.editable;
    const none = element("option", "", gettext("Choose a site…"));
    none.value = "";
    select.append(none);
    for (const site of this.sites.values()) {
      const option = element("option", "", site.meaning);
      option.value = site.code;
      select.append(option);
    }
    select.value = row.site;
    return select;
  }

  statusSelect(row, statuses) {
    const select = element("select", "lesion-status");
    select.id = `read-${row.label}-status`;
    select.disabled = !this.editable;
    const none = element("option", "", gettext("Choose…"));
    none.value = "";
    select.append(none);
    for (const status of statuses) {
      const option = element("option", "", codeLabel(status));
      option.value = status;
      select.append(option);
    }
    select.value = row.status;
    return select;
  }

  field(label, control) {
    const wrap = element("div", "lesion-field");
    const text = element("label", "", label);
    text.htmlFor = control.id;
    wrap.append(text, control);
    return wrap;
  }

  appendRow(row) {
    const li = element("li", `lesion lesion-${row.category.replace("_", "-")}`);
    li.id = `read-lesion-${row.label}`;
    li.dataset.label = row.label;
    const head = element("div", "lesion-head");
    head.append(element("span", "lesion-label", row.label), element("span", "lesion-value"));
    li.append(head);
    if (row.tracked?.previous) {
      const previous = element("p", "lesion-previous", this.previousText(row));
      if (row.tracked.priors?.some((p) => p.long_points || p.short_points)) previous.classList.add("is-drawn");
      li.append(previous);
    }

    const fields = element("div", "lesion-fields");
    if (row.tracked) {
      const meaning = row.tracked.site_meaning || this.sites.get(row.site)?.meaning || "";
      fields.append(element("p", "lesion-site-text", meaning));
    } else {
      fields.append(this.field(gettext("Site"), this.siteSelect(row)));
    }
    if (!this.baseline && row.category === "target") {
      fields.append(this.field(gettext("Status"), this.statusSelect(row, TARGET_STATUSES)));
    } else if (!this.baseline && row.category === "non_target") {
      fields.append(this.field(gettext("Status"), this.statusSelect(row, NON_TARGET_STATUSES)));
    }
    li.append(fields);

    const actions = element("div", "lesion-actions");
    if (this.editable && row.category === "target") actions.append(button("button small lesion-measure"));
    if (this.editable && row.category !== "target") {
      actions.append(button("button small lesion-image", gettext("Use the image shown")));
    }
    actions.append(button("button small lesion-show", gettext("Show")));
    if (this.editable && !row.tracked) {
      const remove = button("button small danger lesion-remove", gettext("Remove"));
      remove.setAttribute("aria-label", interpolate(gettext("Remove %(label)s"), { label: row.label }, true));
      actions.append(remove);
    }
    li.append(actions);
    li.append(element("p", "lesion-state"));
    const problem = element("p", "lesion-problem");
    problem.hidden = true;
    li.append(problem);
    row.element = li;
    this.updateRow(row);

    const list = this.lists[row.category];
    const next = this.rowsOf(row.category).find((r) => r.element && r !== row && r.label > row.label);
    list.insertBefore(li, next ? next.element : null);
  }

  previousText(row) {
    const previous = row.tracked.previous;
    const visit = previous.visit || gettext("Before");
    if (row.category === "target" && previous.status === "measured") {
      const size = row.isNode
        ? interpolate(gettext("%(size)s mm short axis"), { size: mm(Number(previous.short_mm)) }, true)
        : interpolate(gettext("%(size)s mm"), { size: mm(Number(previous.long_mm)) }, true);
      return interpolate(gettext("%(visit)s: %(value)s"), { visit, value: size }, true);
    }
    return interpolate(gettext("%(visit)s: %(value)s"), { visit, value: codeLabel(previous.status) }, true);
  }

  hasMeasurement(row) {
    const m = row.measurement;
    return Boolean(m?.image && (m.long_mm !== null || m.short_mm !== null));
  }

  /** Whether a row goes into the content sent: rows still waiting for a status or a measurement do not. */
  reported(row) {
    if (row.category === "new") return Boolean(row.image); // a new lesion is recorded with the image it is seen on
    if (!row.status) return false;
    if (row.category === "target" && row.status === "measured") return this.hasMeasurement(row);
    return true;
  }

  updateRow(row) {
    const li = row.element;
    if (!li) return;
    const m = row.measurement;
    const value = li.querySelector(".lesion-value");
    const state = li.querySelector(".lesion-state");
    let stateText = "";
    if (row.category === "target") {
      if (this.hasMeasurement(row)) {
        value.textContent = row.isNode
          ? m.short_mm !== null
            ? interpolate(gettext("%(size)s mm short axis"), { size: mm(Number(m.short_mm)) }, true)
            : ""
          : interpolate(gettext("%(size)s mm"), { size: mm(Number(m.long_mm ?? m.short_mm)) }, true);
        if (row.isNode && m.short_mm === null) {
          stateText = gettext("A lymph node needs its short axis: measure it with Long and short axis.");
        }
      } else {
        value.textContent = "";
      }
      if (this.pending === row) {
        stateText = gettext("Draw the long and short axis on an image of this visit.");
      } else if (row.status === "measured" && !this.hasMeasurement(row)) {
        stateText = gettext("Awaiting a measurement.");
      } else if (!row.status) {
        stateText = gettext("Choose a status.");
      }
    } else {
      const place = row.image ? this.viewer.locate?.(this.drawing.imageIdOf(row.image)) : null;
      value.textContent = row.image
        ? place
          ? interpolate(gettext("image %(index)s"), { index: integer(place.index + 1) }, true)
          : gettext("image chosen")
        : "";
      if (row.category === "non_target" && !row.status) stateText = gettext("Choose a status.");
      if (row.category === "new" && !row.image) {
        stateText = gettext("Show an image it is seen on and choose Use the image shown.");
      }
    }
    state.textContent = stateText;
    state.hidden = !stateText;
    li.classList.toggle("is-pending", this.pending === row);
    li.classList.toggle("is-awaiting", !this.reported(row));
    const measure = li.querySelector(".lesion-measure");
    if (measure) {
      measure.textContent =
        this.pending === row ? gettext("Cancel") : m ? gettext("Measure again") : gettext("Measure");
      measure.setAttribute("aria-pressed", String(this.pending === row));
    }
    const show = li.querySelector(".lesion-show");
    show.hidden = this.placesOf(row).length === 0;
  }

  startMeasuring(row) {
    const previous = this.pending;
    this.pending = row;
    if (previous && previous !== row) this.updateRow(previous);
    this.viewer.chooseTool("Bidirectional");
    this.updateRow(row);
    this.say(interpolate(gettext("Measure %(label)s on the image."), { label: row.label }, true));
  }

  stopMeasuring() {
    const row = this.pending;
    this.pending = null;
    if (row) this.updateRow(row);
  }

  // --- events --------------------------------------------------------------------------------------------

  onClick(event) {
    const target = event.target.closest("button");
    if (!target) return;
    if (target === this.addTargetButton) this.addRow("target");
    else if (target === this.addNonTargetButton) this.addRow("non_target");
    else if (target === this.addNewButton) this.addRow("new");
    const li = target.closest("li.lesion");
    const row = li && this.rows.find((r) => r.element === li);
    if (!row) return;
    if (target.classList.contains("lesion-measure")) {
      if (this.pending === row) this.stopMeasuring();
      else this.startMeasuring(row);
    } else if (target.classList.contains("lesion-remove")) {
      this.removeRow(row);
    } else if (target.classList.contains("lesion-image")) {
      this.useShownImage(row);
    } else if (target.classList.contains("lesion-show")) {
      this.jumpTo(row).catch(() => {});
    }
  }

  onChange(event) {
    const control = event.target;
    if (control.name === "read-new-lesions") {
      this.newLesions = control.value;
      this.newLesionsChosen = true;
      this.renderNewChoice();
      this.changed();
      return;
    }
    const li = control.closest("li.lesion");
    const row = li && this.rows.find((r) => r.element === li);
    if (!row) return;
    if (control.classList.contains("lesion-site")) {
      row.site = control.value;
      row.isNode = Boolean(this.sites.get(row.site)?.node);
    } else if (control.classList.contains("lesion-status")) {
      row.status = control.value;
      if (row.category === "target" && row.status === "measured" && !row.measurement) this.startMeasuring(row);
      else if (this.pending === row && row.status !== "measured") this.stopMeasuring();
    } else {
      return;
    }
    this.updateRow(row);
    this.changed();
  }

  useShownImage(row) {
    const pane = this.viewer.active;
    const imageId = pane?.hasImages ? pane.slices[pane.imageIndex]?.imageId : null;
    if (!imageId || !this.isCurrentVisit(imageId)) {
      this.say(gettext("Show an image of this visit first."), { error: true });
      return;
    }
    row.image = imageOf(imageId);
    this.updateRow(row);
    this.changed();
  }

  isCurrentVisit(imageId) {
    const image = imageOf(imageId);
    const current = this.viewer.timepoints.find((t) => t.current);
    return Boolean(image && current?.studies.includes(image.study));
  }

  onCompleted(item) {
    const row = this.pending;
    if (!row || !item || item.isPreview || !MEASURED.has(item.metadata?.toolName)) return;
    if (this.rowByUid(item.annotationUID)) return;
    if (!this.isCurrentVisit(item.metadata.referencedImageId)) {
      this.say(gettext("Measure on an image of this visit (the left viewport)."), { error: true });
      return;
    }
    // Without Pixel Spacing Cornerstone measures in pixels: that figure is no size in mm for a lesion.
    if (!metaData.get("imagePlaneModule", item.metadata.referencedImageId)?.pixelSpacing) {
      this.say(
        gettext(
          "This image has no pixel spacing: a length drawn on it is in pixels, not millimetres. Measure on an image with a pixel spacing.",
        ),
        { error: true },
      );
      return;
    }
    if (row.uid) {
      const old = row.uid;
      row.uid = null;
      annotation.state.removeAnnotation(old);
    }
    row.uid = item.annotationUID;
    item.data.label = row.label;
    row.measurement = measurementOf(item);
    if (!row.status) row.status = "measured";
    const status = row.element.querySelector(".lesion-status");
    if (status) status.value = row.status;
    this.pending = null;
    this.updateRow(row);
    this.say(interpolate(gettext("%(label)s measured."), { label: row.label }, true));
    this.viewer.measurements.schedule();
    this.viewer.renderAll();
    this.changed();
  }

  onModified(item) {
    const row = this.rowByUid(item?.annotationUID);
    if (!row) return;
    // A drawing being dragged is not yet the reader's: Escape puts it back as it was, and no draft is saved with a
    // point it only passed through. It is taken when let go (viewer:edit-end).
    if (this.viewer.isEditing(item.annotationUID)) {
      this.moving.add(row);
      return;
    }
    this.moving.delete(row);
    const next = measurementOf(item);
    const m = row.measurement;
    const moved = !m || !samePoints(m.long_points, next.long_points) || !samePoints(m.short_points, next.short_points);
    // A saved measurement drawn back computes its size again from points kept to a tenth of a pixel: that
    // echo is not a change. A new annotation's size is (Cornerstone computes it throttled, after the points).
    if (!moved && (m.restored || (next.long_mm === m.long_mm && next.short_mm === m.short_mm))) return;
    row.measurement = next;
    this.updateRow(row);
    this.changed();
  }

  onRemoved(item) {
    const row = this.rowByUid(item?.annotationUID);
    if (!row) return;
    row.uid = null;
    row.measurement = null;
    this.updateRow(row);
    this.changed();
  }

  renderNewChoice() {
    if (!this.newChoice) return;
    for (const radio of this.newChoice.querySelectorAll("input[type=radio]")) {
      radio.checked = this.newLesionsChosen && radio.value === this.newLesions;
    }
    const shown = this.newLesions !== "none";
    this.lists.new.hidden = !shown;
    if (this.addNewButton) this.addNewButton.hidden = !shown;
  }

  updateAddButtons() {
    if (this.addTargetButton) {
      const max = this.limits.max_targets;
      const full = Number.isFinite(max) && this.rowsOf("target").length >= max;
      this.addTargetButton.disabled = full;
      this.addTargetButton.title = full
        ? interpolate(gettext("At most %(max)s target lesions."), { max: integer(max) }, true)
        : "";
    }
  }

  // --- content and saving --------------------------------------------------------------------------------

  content() {
    const targets = this.rowsOf("target")
      .filter((row) => this.reported(row))
      .map((row) => {
        const m = this.hasMeasurement(row) ? row.measurement : null;
        return {
          label: row.label,
          site: row.site,
          is_node: row.isNode,
          status: row.status,
          long_mm: m?.long_mm ?? null,
          short_mm: m?.short_mm ?? null,
          long_points: m?.long_points ?? null,
          short_points: m?.short_points ?? null,
          image: m?.image ?? null,
        };
      });
    const nonTargets = this.rowsOf("non_target")
      .filter((row) => this.reported(row))
      .map((row) => ({
        label: row.label,
        site: row.site,
        is_node: row.isNode,
        status: row.status,
        image: row.image,
      }));
    const newLesions = this.baseline ? "none" : this.newLesions;
    const found =
      newLesions === "none"
        ? []
        : this.rowsOf("new")
            .filter((row) => this.reported(row))
            .map((row) => ({ label: row.label, site: row.site, is_node: row.isNode, image: row.image }));
    return { targets, non_targets: nonTargets, new_lesions: newLesions, new: found };
  }

  /** Labels of the lesions not yet assessed: they keep the read from being signed. */
  awaiting() {
    return this.rows
      .filter((row) => {
        if (row.category === "new" && this.newLesions === "none") return false;
        return !this.reported(row) || (!row.tracked && !row.site);
      })
      .sort((a, b) => a.label.localeCompare(b.label))
      .map((row) => row.label);
  }

  changed() {
    if (!this.editable) return;
    this.version += 1;
    this.scheduleSave(SAVE_DELAY);
    this.updateSignState();
  }

  scheduleSave(delay) {
    clearTimeout(this.timer);
    this.retrying = false;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.save();
    }, delay);
  }

  async save() {
    if (this.inFlight) return; // the request in flight saves again when it ends
    const version = this.version;
    const body = JSON.stringify({ content: this.content(), revision: this.revision });
    this.saves += 1;
    this.inFlight = true;
    this.setSaveState("saving");
    this.updateSignState();
    try {
      const data = await this.request("PUT", body);
      this.revision = data.revision ?? this.revision;
      this.savedVersion = version;
      this.error = null;
      this.apply(data);
    } catch (error) {
      this.error = error;
    } finally {
      this.inFlight = false;
    }
    // The server or the network failing is worth another try after a pause; refused content is not, until
    // the reader changes it (a change made while this request was out is sent at once).
    const transient = this.error && !(this.error.status >= 400 && this.error.status < 500);
    if (this.error?.status === 409) {
      this.stale(this.error.data?.error?.code === "read_changed" ? this.error.data.error.message : null);
    } else if (!this.timer && (this.version !== version || transient)) {
      this.scheduleSave(transient ? RETRY_DELAY : 0);
      this.retrying = Boolean(transient);
    }
    if (this.error && this.error.status !== 409) this.setSaveState("error", this.errorText(this.error));
    else if (!this.error && !this.conflict) this.setSaveState(this.version === this.savedVersion ? "saved" : "saving");
    this.updateSignState();
    this.settle();
  }

  async request(method, body = undefined) {
    let response;
    try {
      response = await fetch(this.config.draft_url, {
        method,
        credentials: "same-origin",
        headers: {
          Accept: "application/json",
          ...(body ? { "Content-Type": "application/json", "X-CSRFToken": csrfToken() } : {}),
        },
        body,
      });
    } catch {
      throw new SaveError(0, { error: { message: gettext("The server could not be reached.") } });
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new SaveError(response.status, data);
    return data;
  }

  async fetchDraft() {
    const version = this.version;
    const saves = this.saves;
    const data = await this.request("GET");
    if (this.saves === saves && !this.inFlight && data.revision !== this.revision) {
      this.stale(
        data.signed
          ? null
          : gettext("This read was changed in another tab or window; reload the page to see the read as it is now."),
      );
      return;
    }
    if (this.version === version && !this.inFlight) {
      this.apply(data);
      this.updateSignState();
    }
  }

  /**
   * The read was signed or changed elsewhere: this page stops saving and signing, and says so instead of "Saved"
   * (`message`: why, else that the read was signed).
   */
  stale(message) {
    this.editable = false;
    this.conflict = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.setSaveState("error", message || gettext("This read has been signed meanwhile; reload the page to see it."));
    this.updateSignState();
    this.settle();
  }

  errorText(error) {
    const fallback = error.status ? `${error.status}` : gettext("The server could not be reached.");
    // The project's one error shape: {"error": {"code", "message", "fields"}} (ctims.api_errors.error_body).
    const parts = [error.data?.error?.message || fallback];
    // Each field's messages once, without the field's path ("targets[0].long_mm" means nothing to a reader).
    for (const messages of Object.values(error.data?.error?.fields || {})) {
      for (const message of [].concat(messages)) if (!parts.includes(message)) parts.push(message);
    }
    return interpolate(gettext("Not saved: %(reason)s"), { reason: parts.join(" ") }, true);
  }

  setSaveState(state, text = null) {
    this.saveStateName = state;
    const texts = { saving: gettext("Saving…"), saved: gettext("Saved") };
    this.saveState.textContent = text ?? texts[state] ?? "";
    this.saveState.dataset.state = state;
    this.saveState.classList.toggle("is-error", state === "error");
  }

  say(text, { error = false } = {}) {
    // Guidance goes to the same live region as the save state; the next save state replaces it.
    this.saveState.textContent = text;
    this.saveState.dataset.state = error ? "hint-error" : "hint";
    this.saveState.classList.toggle("is-error", error);
  }

  apply(data) {
    if (!data) return;
    this.ready = Boolean(data.ready);
    if ("assessment" in data) {
      this.assessment = data.assessment;
      this.renderAssessment();
      this.markProblems();
    }
  }

  /** Resolves once nothing is waiting to be saved: "saved", or "error" when the last save failed. */
  whenSaved() {
    if (this.idle()) return Promise.resolve(this.error || this.conflict ? "error" : "saved");
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Nothing to send but a retry after a failure: waiters hear of the failure at once. */
  idle() {
    return !this.inFlight && (!this.timer || this.retrying);
  }

  settle() {
    if (!this.idle()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve(this.error || this.conflict ? "error" : "saved");
  }

  // --- assessment and signing ----------------------------------------------------------------------------

  renderAssessment() {
    const a = this.assessment;
    if (!a) {
      this.assessmentBody.replaceChildren(
        element("p", "muted small", gettext("The assessment is computed each time the read is saved.")),
      );
      return;
    }
    const dl = element("dl", "assessment");
    const fact = (field, term, text, className = "") => {
      const div = element("div", className);
      div.dataset.field = field;
      div.append(element("dt", "", term), element("dd", "", text));
      dl.append(div);
    };
    const size = (x) => (x === null || x === undefined ? "—" : `${x} mm`);
    const percent = (x) => (x === null || x === undefined ? "—" : `${x} %`);
    fact(
      "overall_response",
      a.baseline ? gettext("Time point") : gettext("Overall response"),
      a.response_display || codeLabel(a.overall_response),
      "assessment-overall",
    );
    fact("sum_mm", gettext("Sum of diameters"), size(a.sum_mm));
    if (!a.baseline) {
      fact("baseline_sum_mm", gettext("Baseline sum"), size(a.baseline_sum_mm));
      fact("nadir_mm", gettext("Nadir"), size(a.nadir_mm));
      fact("change_from_baseline", gettext("Change from baseline"), percent(a.change_from_baseline));
      fact("change_from_nadir", gettext("Change from nadir"), percent(a.change_from_nadir));
      fact("target_response", gettext("Target lesions"), codeLabel(a.target_response));
      fact("non_target_response", gettext("Non-target lesions"), codeLabel(a.non_target_response));
      fact("new_lesions", gettext("New lesions"), codeLabel(a.new_lesions));
    }
    const parts = [dl];
    if (a.reasons?.length) {
      const ul = element("ul", "assessment-reasons");
      for (const reason of a.reasons) ul.append(element("li", "", reason));
      parts.push(ul);
    }
    if (a.problems?.length) {
      const box = element("div", "assessment-problems");
      box.setAttribute("role", "alert");
      box.append(element("p", "", gettext("To resolve before signing:")));
      const ul = element("ul");
      for (const problem of a.problems) {
        const li = element("li");
        li.dataset.code = problem.code;
        if (problem.label) {
          li.dataset.label = problem.label;
          li.append(element("strong", "", problem.label), ": ");
        }
        li.append(problem.message);
        ul.append(li);
      }
      box.append(ul);
      parts.push(box);
    }
    this.assessmentBody.replaceChildren(...parts);
  }

  markProblems() {
    const problems = this.assessment?.problems || [];
    for (const row of this.rows) {
      const mine = problems.filter((p) => p.label === row.label);
      const box = row.element?.querySelector(".lesion-problem");
      if (!box) continue;
      box.textContent = mine.map((p) => p.message).join(" ");
      box.hidden = mine.length === 0;
      row.element.classList.toggle("has-problem", mine.length > 0);
    }
  }

  updateSignState() {
    if (this.confirmed) {
      this.confirmed.value = this.baseline ? "baseline" : (this.assessment?.overall_response ?? "");
    }
    if (this.signResponse) {
      this.signResponse.textContent = this.assessment?.response_display || "—";
    }
    if (this.revisionInput) this.revisionInput.value = this.revision;
    if (!this.signButton) return;
    const awaiting = this.awaiting();
    const clean = this.version === this.savedVersion && !this.inFlight && !this.timer && !this.error;
    let hint = "";
    if (awaiting.length) {
      hint = interpolate(gettext("Still to assess: %(labels)s."), { labels: awaiting.join(", ") }, true);
    } else if (!this.newLesionsChosen) {
      hint = gettext("Say whether there are new lesions.");
    } else if (!clean) {
      hint = gettext("Signing opens once the read is saved.");
    } else if (!this.ready) {
      hint = gettext("The read is not complete: see the assessment above.");
    }
    this.signButton.disabled = !this.editable || Boolean(hint);
    if (this.signHint) {
      this.signHint.textContent = hint;
      this.signHint.hidden = !hint;
    }
  }

  state() {
    return {
      kind: "read",
      editable: this.editable,
      baseline: this.baseline,
      content: this.content(),
      rows: this.rows.map((row) => ({
        category: row.category,
        label: row.label,
        site: row.site,
        status: row.status,
        uid: row.uid,
        measured: this.hasMeasurement(row),
        priors: (row.tracked?.priors || []).map((p) => ({ visit: p.visit, sop: p.image.sop, uid: p.uid ?? null })),
      })),
      pending: this.pending?.label ?? null,
      awaiting: this.awaiting(),
      save: this.saveStateName ?? null,
      saved: this.version === this.savedVersion && !this.inFlight && !this.timer,
      error: this.error ? this.errorText(this.error) : null,
      revision: this.revision,
      conflict: this.conflict,
      ready: this.ready,
      signable: this.signButton ? !this.signButton.disabled : false,
      assessment: this.assessment,
    };
  }
}

// --- the adjudicator's comparison -------------------------------------------------------------------------

class AdjudicationOverlays {
  constructor(viewer, config) {
    this.viewer = viewer;
    this.overlays = config.overlays || [];
    this.drawing = new Drawing(viewer);
    this.list = document.getElementById("adjudicate-overlays");
    this.drawn = [];
  }

  start(viewerReady) {
    this.viewerReady = viewerReady;
    this.renderList();
    this.list?.addEventListener("click", (event) => {
      const item = event.target.closest("button[data-overlay]");
      const overlay = item ? this.overlays[Number(item.dataset.overlay)] : null;
      if (overlay?.image) this.jumpTo(overlay).catch(() => {});
    });
    // A lesion in the comparison table below the images: bring the images back into view, on that lesion.
    document.getElementById("adjudicate-table")?.addEventListener("click", (event) => {
      const item = event.target.closest("button.adjudicate-show");
      const { reader, visit, label } = item?.dataset || {};
      const overlay = this.overlays.find(
        (o) => String(o.reader) === reader && o.visit === visit && o.label === label && o.image,
      );
      if (!overlay) return;
      this.viewer.root.scrollIntoView({ block: "start" });
      this.jumpTo(overlay).catch(() => {});
    });
    return viewerReady.then(async () => {
      labelMeasurements(this.viewer);
      this.viewer.measurements.onGo = (uid) => this.onGo(uid);
      for (const overlay of this.overlays) {
        if (!overlay.image || !overlay.long_points) continue; // a non-target or new lesion is shown, not drawn
        const points = overlay.short_points ? [...overlay.long_points, ...overlay.short_points] : overlay.long_points;
        try {
          const uid = await this.drawing.draw({
            image: overlay.image,
            points,
            label: interpolate(
              gettext("R%(reader)s %(label)s"),
              { reader: overlay.reader, label: overlay.label },
              true,
            ),
            locked: true,
            colour: READER_COLOURS[overlay.reader] || null,
            recorded: { mm: toNumber(overlay.long_mm), shortMm: toNumber(overlay.short_mm) },
          });
          if (uid) {
            this.drawn.push(uid);
            overlay.uid = uid;
          }
        } catch {
          // An image that cannot be found is still listed; only its drawing is missing.
        }
      }
      this.viewer.renderAll();
      this.viewer.measurements.schedule();
    });
  }

  /** A click on a reader's drawn measurement in the viewer's list jumps to it as the list beside does. */
  onGo(uid) {
    const overlay = this.overlays.find((o) => o.uid === uid);
    if (!overlay) return false;
    this.jumpTo(overlay).catch(() => {});
    return true;
  }

  /**
   * Bring the panes to a reader's lesion: the pane of its visit to its image, and the other pane to where the
   * same reader recorded the same lesion at the visit that pane shows, if they did.
   */
  jumpTo(overlay) {
    return showPlaces(this.viewer, this.drawing, () => this.placesOf(overlay), this.viewerReady);
  }

  /** The overlay's image, and the same reader's image of the same lesion at the visit the other pane shows. */
  placesOf(overlay) {
    const places = [{ image: overlay.image, visit: overlay.visit }];
    const current = this.viewer.timepoints.find((t) => t.current)?.visit;
    const compared = this.viewer.layout === 2 ? this.viewer.right.timepoint?.visit : null;
    const otherVisit = overlay.visit === current ? compared : current;
    const same = this.overlays.find(
      (o) =>
        o.reader === overlay.reader && o.label === overlay.label && o.visit === otherVisit && o !== overlay && o.image,
    );
    if (same) places.push({ image: same.image, visit: same.visit });
    return places;
  }

  visitLabel(code) {
    return this.viewer.timepoints.find((t) => t.visit === code)?.label ?? code;
  }

  renderList() {
    if (!this.list) return;
    const items = this.overlays.map((overlay, n) => {
      const li = element("li");
      // A lesion tied to no image is listed all the same, with nothing to bring the panes to.
      const classes = `overlay-item reader-${overlay.reader}${overlay.disputed ? " is-disputed" : ""}`;
      const item = overlay.image ? button(classes) : element("div", `${classes} is-unplaced`);
      item.dataset.overlay = String(n);
      item.dataset.label = overlay.label;
      item.dataset.reader = String(overlay.reader);
      item.dataset.visit = overlay.visit;
      const swatch = element("span", `reader-swatch reader-${overlay.reader}`);
      swatch.setAttribute("aria-hidden", "true");
      const name = element(
        "span",
        "overlay-name",
        interpolate(gettext("Reader %(reader)s · %(label)s"), { reader: overlay.reader, label: overlay.label }, true),
      );
      const sizes = [overlay.long_mm, overlay.short_mm].filter((x) => x !== null && x !== undefined);
      const size = element(
        "span",
        "overlay-size",
        sizes.length ? `${sizes.map((x) => mm(Number(x))).join(" × ")} mm` : "",
      );
      const where = element("span", "overlay-visit", this.visitLabel(overlay.visit));
      const kinds = { non_target: gettext("Non-target lesion"), new: gettext("New lesion") };
      if (kinds[overlay.category]) where.append(" · ", kinds[overlay.category]);
      if (!overlay.image) where.append(" · ", gettext("no image recorded"));
      item.append(swatch, name, size, where);
      if (overlay.disputed) item.append(element("span", "tag differs-tag overlay-disputed", gettext("Readers differ")));
      li.append(item);
      return li;
    });
    if (!items.length) items.push(element("li", "muted small", gettext("No measurements to show.")));
    this.list.replaceChildren(...items);
  }

  state() {
    return { kind: "adjudication", overlays: this.overlays.length, drawn: [...this.drawn] };
  }
}

/** Start the read panel or the adjudication overlays; `viewerReady` resolves once the first image shows. */
export function startRead(viewer, config, viewerReady) {
  const ready = viewerReady.catch(() => {});
  if (config.kind === "adjudication") {
    const overlays = new AdjudicationOverlays(viewer, config);
    return { ready: overlays.start(ready), saved: () => Promise.resolve("saved"), state: () => overlays.state() };
  }
  const panel = new ReadPanel(viewer, config);
  return { ready: panel.start(ready), saved: () => panel.whenSaved(), state: () => panel.state(), panel };
}
