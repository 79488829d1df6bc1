// The image viewer of a timepoint: Cornerstone3D stack viewports over the trial's DICOMweb root, a series
// list with thumbnails, window/level presets, length and long/short axis measurements in mm, and a second
// viewport for another timepoint of the same subject, its scrolling linked by slice position.
//
// The page passes its configuration in a JSON block (#viewer-config): the DICOMweb root, where the codecs'
// .wasm files are served, and the subject's timepoints that hold images (visit, label, study UIDs).

import { RenderingEngine, init as coreInit } from "@cornerstonejs/core";
import { init as loaderInit } from "@cornerstonejs/dicom-image-loader";
import {
  BidirectionalTool,
  Enums as ToolEnums,
  LengthTool,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  annotation,
  init as toolsInit,
} from "@cornerstonejs/tools";

import { DicomwebClient } from "./dicomweb.js";
import { closestIndex, dot } from "./geometry.js";
import { gettext, integer, interpolate, mm, ngettext } from "./i18n.js";
import { MeasurementList } from "./measurements.js";
import { Pane, seriesTitle } from "./pane.js";
import { startRead } from "./read.js";

const { MouseBindings } = ToolEnums;
// How near a drawing (in screen pixels) a press takes it, as Cornerstone's mouse does (MOUSE_PROXIMITY).
const PROXIMITY = 6;

// Window width / level of the presets, in Hounsfield units.
const PRESETS = {
  lung: [1500, -600],
  mediastinum: [350, 50],
  abdomen: [400, 40],
  bone: [2000, 300],
  brain: [80, 40],
};

const TOOLS = {
  WindowLevel: WindowLevelTool,
  Pan: PanTool,
  Zoom: ZoomTool,
  Length: LengthTool,
  Bidirectional: BidirectionalTool,
};

/**
 * The sizes the measuring tools write beside a drawing, in the page's language and one decimal as the measurement
 * list shows them: Cornerstone's own long and short axis ("L:", "W:") were English on every page, with as many
 * decimals as the size had.
 */
const TEXT_LINES = {
  Length: (data, targetId) => {
    const { length, unit } = data.cachedStats?.[targetId] || {};
    if (!Number.isFinite(length)) return undefined;
    return [`${mm(length)} ${unit}`];
  },
  Bidirectional: (data, targetId) => {
    const { length, width, unit } = data.cachedStats?.[targetId] || {};
    const lines = data.label ? [data.label] : [];
    if (length === undefined) return lines;
    return [
      ...lines,
      interpolate(gettext("L: %(size)s %(unit)s"), { size: mm(length), unit }, true),
      interpolate(gettext("W: %(size)s %(unit)s"), { size: mm(width), unit }, true),
    ];
  },
};

const NOT_IMAGES = new Set(["SR", "PR", "KO", "DOC", "REG", "SEG", "RTSTRUCT"]);

/**
 * The series to open first: the one with the most images to scroll through, frames counted (not a scout, nor a
 * one-instance enhanced volume taken for one image), ties to the lower number.
 */
function mainSeries(list) {
  const images = list.filter((series) => !NOT_IMAGES.has(series.modality));
  return (images.length ? images : list).reduce(
    (best, series) => (best === null || (series.frames ?? 0) > (best.frames ?? 0) ? series : best),
    null,
  );
}

/** The series of another timepoint that matches `series` best: same modality and description, else modality. */
function matchingSeries(list, series) {
  if (!series) return mainSeries(list);
  const same = list.filter((s) => s.modality === series.modality);
  return (
    same.find((s) => s.description && s.description === series.description) || mainSeries(same.length ? same : list)
  );
}

class Viewer {
  constructor(root, config) {
    this.root = root;
    this.config = config;
    this.client = new DicomwebClient(new URL(config.root, window.location.href).href);
    this.timepoints = config.timepoints;
    this.seriesCache = new Map();
    this.activeTool = "WindowLevel";
    this.layout = 1;
    this.linked = true;
    this.linkOffset = 0;
    this.jumping = 0; // jumps under way: each pane goes to its own image, the link waits
    this.jumpGeneration = 0; // the newest jump's number: one overtaken while it waits is dropped
    this.jumpDone = Promise.resolve(); // settles when the last jump started has placed its panes (or failed)
    this.failed = null;
  }

  async start() {
    coreInit();
    loaderInit({
      maxWebWorkers: Math.max(1, Math.min(4, Math.floor((navigator.hardwareConcurrency || 2) / 2))),
      wasmBasePath: new URL(this.config.wasmBase, window.location.href).href,
    });
    toolsInit();
    this.engine = new RenderingEngine("ctims-viewer");
    this.setUpTools();
    this.panes = [...this.root.querySelectorAll(".viewer-pane")].map(
      (element) => new Pane({ viewer: this, element, viewportId: element.dataset.pane }),
    );
    [this.left, this.right] = this.panes;
    this.active = this.left;
    this.measurements = new MeasurementList({
      viewer: this,
      list: this.root.querySelector("#viewer-measurements"),
      empty: this.root.querySelector("#viewer-measurements-empty"),
    });
    this.bindControls();
    const resized = new ResizeObserver(() => this.engine.resize(true, true));
    for (const pane of this.panes) resized.observe(pane.element);

    const current = this.timepoints.find((timepoint) => timepoint.current);
    this.left.setTimepoint(current);
    this.left.enable();
    this.setActive(this.left);
    const list = await this.seriesOf(current);
    await this.renderSeriesList();
    const first = mainSeries(list);
    if (!first) {
      this.left.setStatus(gettext("No series could be found for this visit."), { error: true });
      throw new Error("no series");
    }
    const shown = await this.left.show(first);
    this.renderSeriesList();
    return shown;
  }

  // --- tools ---------------------------------------------------------------------------------------------

  setUpTools() {
    for (const Tool of [...Object.values(TOOLS), StackScrollTool]) addTool(Tool);
    const group = ToolGroupManager.createToolGroup("ctims-viewer");
    for (const Tool of [...Object.values(TOOLS), StackScrollTool]) group.addTool(Tool.toolName);
    group.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
    group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
    group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
    group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
    group.setToolPassive(LengthTool.toolName);
    group.setToolPassive(BidirectionalTool.toolName);
    for (const [name, getTextLines] of Object.entries(TEXT_LINES)) {
      group.setToolConfiguration(TOOLS[name].toolName, { getTextLines });
    }
    this.toolGroup = group;
  }

  /** Give the left mouse button to a tool; the right button zooms and the middle one pans whatever is chosen. */
  chooseTool(name) {
    if (!TOOLS[name] || name === this.activeTool) return;
    this.toolGroup.setToolPassive(TOOLS[this.activeTool].toolName);
    this.toolGroup.setToolActive(TOOLS[name].toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
    this.activeTool = name;
    for (const button of this.root.querySelectorAll("[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === name));
    }
  }

  // --- controls ------------------------------------------------------------------------------------------

  bindControls() {
    // A failed load shows its message in the viewport; nothing else is left to do with the error here.
    const quietly = (promise) => promise.catch(() => {});
    this.root.querySelector(".viewer-toolbar").addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      if (button.dataset.tool) this.chooseTool(button.dataset.tool);
      else if (button.dataset.preset) this.active.setWindow(...PRESETS[button.dataset.preset]);
      else if (button.dataset.action === "reset") this.active.reset();
      else if (button.dataset.layout) quietly(this.setLayout(Number(button.dataset.layout)));
    });
    for (const button of this.root.querySelectorAll("[data-preset]")) {
      const [width, level] = PRESETS[button.dataset.preset];
      button.title = interpolate(
        gettext("W %(width)s · L %(level)s"),
        { width: integer(width), level: integer(level) },
        true,
      );
    }
    this.compareSelect = this.root.querySelector("#viewer-compare");
    this.compareSelect.addEventListener("change", () => quietly(this.compareWith(this.compareSelect.value)));
    this.linkBox = this.root.querySelector("#viewer-link");
    this.linkBox.addEventListener("change", () => this.setLinked(this.linkBox.checked));
    for (const pane of this.panes) {
      pane.root.addEventListener(
        "pointerdown",
        (event) => {
          this.setActive(pane);
          if (!event.target.closest(".viewer-frame")) return;
          // Cornerstone's mousedown keeps the browser from focusing the image: its keys (Escape, Delete, the
          // arrows) would go to whatever had the focus before, often outside the viewer.
          pane.element.focus({ preventScroll: true });
          // Before Cornerstone sees the press (it may start dragging a drawing): Escape puts a drawing back so.
          this.keepDrawings();
          if (event.button === 0) this.selectAt(pane, event);
        },
        { capture: true },
      );
      pane.root.addEventListener("focusin", () => this.setActive(pane));
      // Nor does the wheel scroll away from a line being drawn or dragged (before Cornerstone's stack scroll hears it).
      pane.root.addEventListener(
        "wheel",
        (event) => {
          if (!this.busyTool()) return;
          event.preventDefault();
          event.stopPropagation();
        },
        { capture: true, passive: false },
      );
    }
    this.root.addEventListener("keydown", (event) => this.onKey(event));
    // Cornerstone ends a drag on the document's mouseup (touchend with a finger); these listeners, on the window,
    // hear of it after.
    for (const name of ["mouseup", "touchend"]) {
      window.addEventListener(name, () => this.root.dispatchEvent(new CustomEvent("viewer:edit-end")));
    }
    this.root.querySelector("#viewer-series-list").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-series]");
      if (button) quietly(this.openSeries(button.dataset.study, button.dataset.series));
    });
  }

  onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    // Escape leaves what is under way, from anywhere in the viewer (a field too: Escape types nothing, and an open
    // list's Escape never reaches the page): a line being drawn or dragged first, then a page's own mode (a read's
    // lesion waiting for its measurement, whose site list has the focus once it is added).
    if (event.key === "Escape") {
      if (this.cancelDrawing() || this.onEscape?.()) event.preventDefault();
      return;
    }
    if (event.target.closest("input, select, textarea, [contenteditable]")) return;
    // Delete acts on the drawings: with the focus on the images or the measurement list, never in a read page's
    // lesion panel beside them, and never on a drawing being dragged.
    if (["Delete", "Backspace"].includes(event.key)) {
      if (!event.target.closest(".viewer-stage, .viewer-side") || this.busyTool()) return;
      if (this.measurements.removeSelected()) event.preventDefault();
      return;
    }
    const pane = this.active;
    const page = Math.max(1, Math.round(pane.slices.length / 10));
    const moves = {
      ArrowUp: -1,
      ArrowLeft: -1,
      ArrowDown: 1,
      ArrowRight: 1,
      PageUp: -page,
      PageDown: page,
    };
    const ends = { Home: 0, End: pane.slices.length - 1 };
    if (!(event.key in moves || event.key in ends)) return;
    event.preventDefault();
    // A line being drawn or dragged stays on the image it was started on: its points would go to another slice.
    if (this.busyTool()) return;
    this.readerMoves();
    if (event.key in moves) pane.scrollBy(moves[event.key]);
    else pane.scrollTo(ends[event.key]);
  }

  /** The measuring tool busy with a drawing (being drawn, or pressed on to drag it), and the drawing; or null. */
  busyTool() {
    for (const Tool of [LengthTool, BidirectionalTool]) {
      const tool = this.toolGroup.getToolInstance(Tool.toolName);
      const editData = tool?.editData;
      if (!editData?.annotation) continue;
      // A new drawing is under way once the tool draws it (a click without a move leaves it waiting for the end).
      if (editData.newAnnotation && !tool.isDrawing) continue;
      return { tool, item: editData.annotation, isNew: Boolean(editData.newAnnotation) };
    }
    return null;
  }

  /** Whether the drawing `uid` is being dragged: its moves are not the reader's until the button is let go. */
  isEditing(uid) {
    const busy = this.busyTool();
    return Boolean(busy && !busy.isNew && busy.item.annotationUID === uid);
  }

  /** Keep how every measurement lies now, for Escape to put back one that a drag then moves. */
  keepDrawings() {
    this.kept = new Map(
      annotation.state
        .getAllAnnotations()
        .filter((item) => TOOLS[item.metadata?.toolName] && item.data?.handles)
        .map((item) => [item.annotationUID, structuredClone(item.data.handles)]),
    );
  }

  /**
   * Select the drawing under a press of the left button, or clear the selection when there is none there (a click
   * on the image away from the drawings), so that Delete then removes nothing. Cornerstone selects a drawing
   * pressed on (only an unlocked one), but never clears the selection itself.
   */
  selectAt(pane, event) {
    if (!pane.hasImages) return;
    const element = pane.element;
    const box = element.getBoundingClientRect();
    const point = [event.clientX - box.left, event.clientY - box.top];
    const near = [LengthTool, BidirectionalTool].some((Tool) => {
      const tool = this.toolGroup.getToolInstance(Tool.toolName);
      const items = tool.filterInteractableAnnotationsForElement(
        element,
        annotation.state.getAnnotations(Tool.toolName, element) || [],
      );
      return (items || []).some(
        (item) =>
          !item.isLocked &&
          item.isVisible !== false &&
          (tool.getHandleNearImagePoint(element, item, point, PROXIMITY) ||
            tool.isPointNearTool(element, item, point, PROXIMITY, "mouse")),
      );
    });
    if (near || !annotation.selection.getAnnotationsSelectedCount()) return;
    annotation.selection.deselectAnnotation();
    this.renderAll();
  }

  /**
   * Escape: abandon a Length or Bidirectional line being drawn (it goes and nothing is recorded for it), or put a
   * drawing being dragged back exactly as it was before the press (nothing is recorded of the drag). Cornerstone's
   * own cancel completes a new drawing, which a read page would take for a measurement, and keeps a dragged one
   * where the drag left it.
   */
  cancelDrawing() {
    const busy = this.busyTool();
    if (!busy) return false;
    const { tool, item, isNew } = busy;
    const pane = this.locate(item.metadata?.referencedImageId)?.pane ?? this.active;
    if (isNew) {
      tool.editData.newAnnotation = false;
      tool.cancel(pane.element);
      annotation.state.removeAnnotation(item.annotationUID);
    } else {
      // Pressed on but not yet moved, the tool is not "drawing" and its cancel would leave it listening to the drag.
      tool.isDrawing = true;
      tool.cancel(pane.element);
      const kept = this.kept?.get(item.annotationUID);
      if (kept) {
        item.data.handles = structuredClone(kept);
        item.invalidated = true;
      }
    }
    this.renderAll();
    this.measurements.schedule();
    this.root.dispatchEvent(new CustomEvent("viewer:edit-end"));
    return true;
  }

  setActive(pane) {
    if (!pane.enabled && pane !== this.left) return;
    const changed = this.active !== pane;
    this.active = pane;
    for (const p of this.panes) p.root.classList.toggle("is-active", p === pane);
    if (changed) this.renderSeriesList();
  }

  // --- series --------------------------------------------------------------------------------------------

  /** The series of a timepoint's studies (QIDO-RS), fetched once. */
  seriesOf(timepoint) {
    if (!this.seriesCache.has(timepoint.visit)) {
      const studies = timepoint.studies.map((uid) => this.client.series(uid));
      this.seriesCache.set(
        timepoint.visit,
        Promise.all(studies).then((lists) => lists.flat()),
      );
    }
    return this.seriesCache.get(timepoint.visit);
  }

  async renderSeriesList() {
    const timepoint = this.active.timepoint;
    const heading = this.root.querySelector("#viewer-series-visit");
    const list = this.root.querySelector("#viewer-series-list");
    if (!timepoint) return;
    heading.textContent = timepoint.label;
    let series;
    try {
      series = await this.seriesOf(timepoint);
    } catch (error) {
      list.replaceChildren(this.message(gettext("The series could not be listed."), "is-error"));
      throw error;
    }
    if (this.active.timepoint !== timepoint) return;
    const studies = [...new Set(series.map((s) => s.studyUid))];
    const items = [];
    studies.forEach((studyUid, n) => {
      if (studies.length > 1) {
        const li = document.createElement("li");
        li.className = "series-study";
        li.textContent = interpolate(gettext("Study %(number)s"), { number: integer(n + 1) }, true);
        items.push(li);
      }
      for (const s of series.filter((item) => item.studyUid === studyUid)) items.push(this.seriesItem(s));
    });
    list.replaceChildren(...(items.length ? items : [this.message(gettext("No series."), "")]));
  }

  message(text, className) {
    const li = document.createElement("li");
    li.className = `series-message ${className}`;
    li.textContent = text;
    return li;
  }

  seriesItem(series) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "series-item";
    button.dataset.study = series.studyUid;
    button.dataset.series = series.seriesUid;
    const shown = this.active.series?.seriesUid === series.seriesUid;
    button.setAttribute("aria-current", String(shown));
    const img = document.createElement("img");
    img.className = "series-thumb";
    img.alt = "";
    img.width = 64;
    img.height = 64;
    img.loading = "lazy";
    img.decoding = "async";
    img.src = this.client.thumbnailUrl(series.studyUid, series.seriesUid);
    img.addEventListener("error", () => img.classList.add("is-missing"), { once: true });
    const text = document.createElement("span");
    text.className = "series-text";
    const title = document.createElement("span");
    title.className = "series-title";
    title.textContent = seriesTitle(series);
    const count = document.createElement("span");
    count.className = "series-count";
    if (series.frames !== null) {
      count.textContent = interpolate(
        ngettext("%(n)s image", "%(n)s images", series.frames),
        { n: integer(series.frames) },
        true,
      );
    }
    text.append(title, count);
    button.append(img, text);
    li.append(button);
    return li;
  }

  async openSeries(studyUid, seriesUid) {
    const pane = this.active;
    const series = (await this.seriesOf(pane.timepoint)).find(
      (s) => s.studyUid === studyUid && s.seriesUid === seriesUid,
    );
    if (!series) return;
    this.readerMoves();
    const other = this.otherPane(pane);
    const startAt = this.isLinked() && other.position !== null ? (p) => this.syncTarget(other, p) : null;
    const shown = pane.show(series, { startAt });
    this.renderSeriesList();
    await shown;
  }

  // --- layout and comparison -----------------------------------------------------------------------------

  async setLayout(layout) {
    if (layout === this.layout) return;
    this.layout = layout;
    const grid = this.root.querySelector(".viewer-grid");
    grid.dataset.layout = String(layout);
    for (const button of this.root.querySelectorAll("[data-layout]")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.layout) === layout));
    }
    this.root.querySelector(".viewer-compare-tools").hidden = layout === 1;
    this.right.root.hidden = layout === 1;
    // A new layout fits each image to its new viewport again (keeping the camera would crop it).
    if (layout === 1) {
      this.right.disable();
      this.setActive(this.left);
      this.engine.resize(true, false);
      return;
    }
    this.engine.resize(true, false);
    this.right.enable();
    await this.compareWith(this.compareSelect.value);
  }

  async compareWith(visit) {
    const timepoint = this.timepoints.find((t) => t.visit === visit);
    if (!timepoint) return;
    this.right.setTimepoint(timepoint);
    this.linkOffset = 0;
    const series = matchingSeries(await this.seriesOf(timepoint), this.left.series);
    if (this.active === this.right) this.renderSeriesList();
    if (!series) {
      this.right.setStatus(gettext("No series could be found for this visit."), { error: true });
      return;
    }
    await this.right.show(series, { startAt: (pane) => this.firstLink(pane) });
  }

  /** Link a newly shown comparison: by absolute position when the two ranges overlap, else centre to centre. */
  firstLink(pane) {
    const source = this.left;
    const positions = pane.slices.map((s) => s.position).filter((p) => p !== null);
    const theirs = source.slices.map((s) => s.position).filter((p) => p !== null);
    if (!positions.length || !theirs.length || source.position === null) return 0;
    const [lo, hi] = [Math.min(...positions), Math.max(...positions)];
    const [sLo, sHi] = [Math.min(...theirs), Math.max(...theirs)];
    this.linkOffset = hi < sLo || lo > sHi ? (lo + hi) / 2 - (sLo + sHi) / 2 : 0;
    return Math.max(0, this.syncTarget(source, pane));
  }

  otherPane(pane) {
    return pane === this.left ? this.right : this.left;
  }

  isLinked() {
    return this.layout === 2 && this.linked && !this.jumping && this.left.hasImages && this.right.enabled;
  }

  /**
   * Bring the panes to one lesion: `place()` shows, in the panes it chooses, the images that hold the lesion at
   * their visits and resolves to [{pane, index}]; each pane then goes to its own image with the link off. With
   * two panes placed the link is taken up again from there, so scrolling on keeps the lesion's images together;
   * with one, the other pane follows it through the link as it would a scroll.
   *
   * Jumps run one after another, and the newest wins: a click before the last jump's images are on screen
   * waits for it to settle, a jump overtaken while it waits is dropped, and only a jump that is still the
   * newest when it lands takes the link up again.
   */
  async jump(place) {
    const generation = ++this.jumpGeneration;
    const previous = this.jumpDone;
    let settled;
    this.jumpDone = new Promise((resolve) => {
      settled = resolve;
    });
    this.jumping += 1;
    let places = [];
    try {
      await previous;
      if (generation !== this.jumpGeneration) return places;
      places = (await place()).filter(({ index }) => index >= 0);
      await Promise.all(places.map(({ pane, index }) => pane.scrollTo(index)));
    } finally {
      this.jumping -= 1;
      settled();
    }
    if (this.jumping || generation !== this.jumpGeneration || !places.length) return places;
    // A link move cut short by the jump never echoes: its bookkeeping would swallow the next real scroll.
    for (const pane of this.panes) pane.syncExpected = undefined;
    this.setActive(places[0].pane);
    const panes = new Set(places.map(({ pane }) => pane));
    if (panes.size > 1) this.setLinked(this.linked);
    else this.onPaneScrolled(places[0].pane);
    return places;
  }

  /**
   * The reader moves a pane (keys, wheel, slider, another series from the list): a jump still loading its
   * images is overtaken. It lands where it was going without moving the panes again through the link, and jumps
   * queued behind it are dropped: the reader's last move is what stays on screen.
   */
  readerMoves() {
    if (!this.jumping) return;
    this.jumpGeneration += 1;
    for (const pane of this.panes) pane.syncExpected = undefined;
  }

  setLinked(linked) {
    this.linked = linked;
    // Linking again keeps the slices now shown together: what the reader aligned by hand stays aligned.
    if (linked && this.left.position !== null && this.right.position !== null) {
      this.linkOffset = this.right.position - this.left.position;
    }
  }

  /** The index in `target` of the slice at the same place as `source`'s current one (with the link's offset). */
  syncTarget(source, target) {
    if (source.position === null || !source.normal || !target.normal) return -1;
    const alignment = dot(source.normal, target.normal);
    if (Math.abs(alignment) < 0.99) return -1; // different planes: nothing to link
    const offset = source === this.left ? this.linkOffset : -this.linkOffset;
    const place = Math.sign(alignment) * (source.position + offset);
    return closestIndex(
      target.slices.map((s) => s.position),
      place,
    );
  }

  onPaneScrolled(pane) {
    if (pane.syncExpected !== undefined) {
      const expected = pane.syncExpected;
      pane.syncExpected = undefined;
      if (expected === pane.imageIndex) return; // the echo of a move this link made
    }
    if (!this.isLinked()) return;
    const other = this.otherPane(pane);
    if (!other.hasImages) return;
    const index = this.syncTarget(pane, other);
    if (index >= 0 && index !== other.imageIndex) {
      other.syncExpected = index;
      other.scrollTo(index);
    }
  }

  // --- measurements and helpers ----------------------------------------------------------------------------

  /** Which pane shows an image and at which index: for the measurement list. */
  locate(imageId) {
    for (const pane of this.panes) {
      const index = pane.slices.findIndex((slice) => slice.imageId === imageId);
      if (index >= 0) return { pane, index, label: pane.timepoint?.label ?? "" };
    }
    return null;
  }

  goTo(imageId) {
    const place = this.locate(imageId);
    if (!place) return;
    this.setActive(place.pane);
    place.pane.scrollTo(place.index);
  }

  renderAll() {
    for (const pane of this.panes) if (pane.enabled) pane.viewport.render();
  }

  prefetchAll() {
    for (const pane of this.panes) pane.prefetch();
  }

  state() {
    const left = this.left.state();
    return {
      ...left,
      layout: this.layout,
      panes: this.panes.filter((pane) => pane.enabled).map((pane) => pane.state()),
      measurements: this.measurements.all(),
      jumping: this.jumping > 0,
      error: this.failed,
    };
  }
}

const root = document.getElementById("viewer");
if (root) {
  const config = JSON.parse(document.getElementById("viewer-config").textContent);
  const viewer = new Viewer(root, config);
  const ready = viewer.start().then(
    (shown) => {
      root.classList.add("is-ready");
      return shown;
    },
    (error) => {
      viewer.failed = String(error?.message || error);
      root.classList.add("is-failed");
      if (viewer.left && !viewer.left.status.classList.contains("is-error")) {
        viewer.left.setStatus(gettext("The images could not be loaded. Reload the page to try again."), {
          error: true,
        });
      }
      throw error;
    },
  );
  ready.catch(() => {});
  // A small hook for the browser tests: wait for the first image without sleeping, and read the state.
  window.ctimsViewer = { ready, state: () => viewer.state(), viewer };

  // A read task's page (templates/reads/): the reader's lesions or the adjudicator's overlays beside the images.
  const readConfig = document.getElementById("read-config");
  if (readConfig) {
    const read = startRead(viewer, JSON.parse(readConfig.textContent), ready);
    // The tests' hook: `await ctimsRead.saved()` waits for the draft to be saved, `state()` reads the panel.
    window.ctimsRead = { ready: read.ready, saved: read.saved, state: read.state };
  }
}
