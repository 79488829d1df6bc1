// One viewport of the viewer: a stack of one series, its slider, readouts, orientation letters and load progress.

import {
  Enums as CoreEnums,
  cache,
  eventTarget,
  imageLoadPoolManager,
  imageLoader,
  utilities as coreUtilities,
} from "@cornerstonejs/core";
import { wadors } from "@cornerstonejs/dicom-image-loader";

import { TAGS, numbers, value } from "./dicomweb.js";
import { cross, orientationMarkers, sliceNormal, slicePosition, sortSlices } from "./geometry.js";
import { gettext, integer, interpolate, mm } from "./i18n.js";

const { Events, RequestType } = CoreEnums;

// Enhanced (multi-frame) images keep each frame's geometry in functional groups (PS3.3 C.7.6.16).
const SHARED_GROUPS = "52009229";
const PER_FRAME_GROUPS = "52009230";
const PLANE_POSITION = "00209113";
const PLANE_ORIENTATION = "00209116";

/** The first item of a sequence attribute of a DICOM JSON object, or undefined. */
function firstItem(object, tag) {
  return object?.[tag]?.Value?.[0];
}

/**
 * Each frame's Image Position and Orientation (Patient): a single-frame image's own; an enhanced image's from
 * its Per-frame Functional Groups, the orientation from the Shared ones when the frames share it.
 */
function framePlanes(object, frames) {
  const perFrame = object?.[PER_FRAME_GROUPS]?.Value || [];
  const shared = firstItem(object, SHARED_GROUPS);
  const top = { position: numbers(object, TAGS.position), orientation: numbers(object, TAGS.orientation) };
  return Array.from({ length: frames }, (_, n) => {
    const item = perFrame[n];
    const position = numbers(firstItem(item, PLANE_POSITION), TAGS.position);
    const orientation =
      numbers(firstItem(item, PLANE_ORIENTATION), TAGS.orientation) ??
      numbers(firstItem(shared, PLANE_ORIENTATION), TAGS.orientation);
    return { position: position ?? (frames === 1 ? top.position : null), orientation: orientation ?? top.orientation };
  });
}

/** The frames of a series in viewing order, each with its image id, position along the normal and instance. */
function slicesOf(client, series, metadata) {
  const frames = [];
  for (const object of metadata) {
    const sopUid = value(object, TAGS.sopUid);
    const count = Number(value(object, TAGS.numberOfFrames, 1)) || 1;
    const ids = client.imageIds(series.studyUid, series.seriesUid, sopUid, count);
    // The loader reads a frame's attributes from what is registered under its instance's first frame.
    wadors.metaDataManager.add(ids[0], object);
    framePlanes(object, count).forEach(({ position, orientation }, n) =>
      frames.push({
        imageId: ids[n],
        sopUid,
        frame: n + 1,
        instanceNumber: value(object, TAGS.instanceNumber, null),
        position,
        orientation,
      }),
    );
  }
  // Every frame in the order of its place along the normal when all have one, else by instance (and frame).
  const slices = sortSlices(frames).map((item) => ({
    imageId: item.imageId,
    sopUid: item.sopUid,
    frame: item.frame,
    position: slicePosition(item.position, item.orientation),
  }));
  const normal = sliceNormal(frames.find((item) => item.orientation)?.orientation);
  return { slices, normal };
}

export class Pane {
  constructor({ viewer, element, viewportId }) {
    this.viewer = viewer;
    this.root = element;
    this.viewportId = viewportId;
    this.element = element.querySelector(".viewer-viewport");
    this.label = element.querySelector(".viewer-pane-label");
    this.title = element.querySelector(".viewer-pane-series");
    this.readout = element.querySelector(".viewer-readout");
    this.voi = element.querySelector(".viewer-voi");
    this.slider = element.querySelector(".viewer-slider");
    this.progress = element.querySelector(".viewer-progress");
    this.progressBar = element.querySelector(".viewer-progress progress");
    this.progressText = element.querySelector(".viewer-progress-text");
    this.status = element.querySelector(".viewer-status");
    this.markers = Object.fromEntries(
      ["top", "bottom", "left", "right"].map((edge) => [edge, element.querySelector(`.viewer-marker-${edge}`)]),
    );
    this.timepoint = null;
    this.series = null;
    this.slices = [];
    this.normal = null;
    this.loaded = new Set();
    this.generation = 0;
    this.enabled = false;
    this.shown = false; // the first image of the series is on the canvas

    this.element.addEventListener("contextmenu", (event) => event.preventDefault());
    this.element.addEventListener(Events.STACK_NEW_IMAGE, (event) => this.onNewImage(event.detail.imageIdIndex));
    this.element.addEventListener(Events.VOI_MODIFIED, (event) => this.showVoi(event.detail.range));
    this.slider.addEventListener("input", () => {
      this.viewer.readerMoves();
      this.scrollTo(Number(this.slider.value) - 1);
    });
    // The wheel scrolls through Cornerstone's stack scroll tool, the one caller of the viewport's scroll().
    this.element.addEventListener(Events.STACK_VIEWPORT_SCROLL, () => this.viewer.readerMoves());
    eventTarget.addEventListener(Events.IMAGE_LOADED, (event) => this.onImageLoaded(event.detail.image.imageId));
    // The viewport's own loads (the image to show) that fail; prefetching catches its failures itself.
    eventTarget.addEventListener(Events.IMAGE_LOAD_ERROR, (event) => this.onImageLoadError(event.detail));
    this.imageError = null; // the index of the image shown as not loaded, or null
    this.firstFailed = null; // rejects the wait for the first image of a series being loaded
  }

  get viewport() {
    return this.enabled ? this.viewer.engine.getViewport(this.viewportId) : null;
  }

  get hasImages() {
    return this.slices.length > 0 && this.viewport?.getImageIds().length > 0;
  }

  get imageIndex() {
    return this.hasImages ? this.viewport.getCurrentImageIdIndex() : -1;
  }

  /** Where the shown slice lies along the normal (mm), or null. */
  get position() {
    const index = this.imageIndex;
    return index < 0 ? null : this.slices[index].position;
  }

  enable() {
    if (this.enabled) return;
    this.viewer.engine.enableElement({
      viewportId: this.viewportId,
      type: CoreEnums.ViewportType.STACK,
      element: this.element,
      defaultOptions: { background: [0, 0, 0] },
    });
    this.viewer.toolGroup.addViewport(this.viewportId, this.viewer.engine.id);
    this.enabled = true;
  }

  disable() {
    if (!this.enabled) return;
    this.generation += 1;
    this.viewer.toolGroup.removeViewports(this.viewer.engine.id, this.viewportId);
    this.viewer.engine.disableElement(this.viewportId);
    this.enabled = false;
    this.series = null;
    this.slices = [];
    this.imageIdSet = new Set();
    this.shown = false;
    this.loaded.clear();
    this.clearOverlays();
  }

  setTimepoint(timepoint) {
    this.timepoint = timepoint;
    this.label.textContent = timepoint ? timepoint.label : "";
  }

  setStatus(text, { error = false } = {}) {
    this.status.textContent = text;
    this.status.hidden = !text;
    this.status.classList.toggle("is-error", error);
  }

  clearOverlays() {
    this.title.textContent = "";
    this.readout.textContent = "";
    this.voi.textContent = "";
    this.progress.hidden = true;
    this.slider.disabled = true;
    for (const marker of Object.values(this.markers)) marker.textContent = "";
  }

  /**
   * Show a series: its metadata first, then the first image as soon as its frame arrives, while the others
   * are fetched in the background from the shown slice outwards. Resolves when the first image is on screen.
   */
  async show(series, options = {}) {
    const generation = this.generation + 1;
    try {
      return await this.load(series, options);
    } catch (error) {
      if (generation === this.generation) {
        this.setStatus(gettext("The images could not be loaded. Reload the page to try again."), { error: true });
      }
      throw error;
    }
  }

  async load(series, { startAt = null }) {
    this.enable();
    const generation = ++this.generation;
    this.series = series;
    this.slices = [];
    // Until this series' metadata names its images, no image counts as loaded for it (the series left may still
    // be arriving).
    this.imageIdSet = new Set();
    this.shown = false;
    this.loaded.clear();
    this.clearOverlays();
    this.title.textContent = seriesTitle(series);
    this.setStatus(gettext("Loading the series…"));
    const metadata = await this.viewer.client.metadata(series.studyUid, series.seriesUid);
    if (generation !== this.generation) return false;
    if (!metadata.length) {
      this.setStatus(gettext("This series holds no images."), { error: true });
      return false;
    }
    const { slices, normal } = slicesOf(this.viewer.client, series, metadata);
    this.slices = slices;
    this.normal = normal;
    this.imageIdSet = new Set(slices.map((slice) => slice.imageId));
    for (const slice of slices) if (cache.isLoaded(slice.imageId)) this.loaded.add(slice.imageId);
    const start = startAt === null ? 0 : Math.max(0, Math.min(slices.length - 1, startAt(this)));
    this.slider.max = String(slices.length);
    this.slider.value = String(start + 1);
    this.showProgress();
    const rendered = new Promise((resolve) =>
      this.element.addEventListener(Events.IMAGE_RENDERED, resolve, { once: true }),
    );
    // Cornerstone's setStack resolves even when the image fails to load, and nothing renders: wait for either.
    const failed = new Promise((resolve, reject) => {
      this.firstFailed = { imageId: slices[start].imageId, reject };
    });
    try {
      await this.viewport.setStack(
        slices.map((slice) => slice.imageId),
        start,
      );
      await Promise.race([rendered, failed]);
    } finally {
      this.firstFailed = null;
    }
    if (generation !== this.generation) return false;
    this.shown = true;
    this.setStatus("");
    this.slider.disabled = slices.length < 2;
    this.showMarkers();
    this.onNewImage(this.viewport.getCurrentImageIdIndex());
    this.showVoi(this.viewport.getProperties().voiRange);
    this.viewer.prefetchAll();
    return true;
  }

  /** Queue every frame not yet loaded, nearest to the shown slice first, at prefetch priority. */
  prefetch() {
    if (!this.hasImages) return;
    const current = this.imageIndex;
    const order = this.slices
      .map((slice, index) => ({ slice, distance: Math.abs(index - current) }))
      .filter(({ slice }) => !this.loaded.has(slice.imageId))
      .sort((a, b) => a.distance - b.distance);
    const generation = this.generation;
    for (const { slice } of order) {
      const request = () => {
        if (generation !== this.generation || cache.isLoaded(slice.imageId)) return Promise.resolve();
        return imageLoader.loadAndCacheImage(slice.imageId, { requestType: RequestType.Prefetch }).catch(() => {
          // A frame that fails here is fetched again, with its error shown, when the reader scrolls to it.
        });
      };
      imageLoadPoolManager.addRequest(request, RequestType.Prefetch, { imageId: slice.imageId }, 0);
    }
  }

  /** A load the viewport asked for failed: the first image of the series, or the one scrolled to, says so. */
  onImageLoadError(detail) {
    const imageId = detail?.imageId;
    if (!imageId || !this.imageIdSet?.has(imageId)) return;
    if (this.firstFailed?.imageId === imageId) {
      this.firstFailed.reject(new Error("the first image could not be loaded"));
      return;
    }
    const index = this.slices.findIndex((slice) => slice.imageId === imageId);
    if (!this.shown || index < 0 || index !== this.viewport?.getTargetImageIdIndex()) return;
    this.imageError = index;
    this.setStatus(
      interpolate(
        gettext("Image %(index)s could not be loaded: scroll on, or reload the page to try again."),
        { index: integer(index + 1) },
        true,
      ),
      { error: true },
    );
  }

  onImageLoaded(imageId) {
    if (!this.imageIdSet?.has(imageId) || this.loaded.has(imageId)) return;
    this.loaded.add(imageId);
    this.showProgress();
  }

  showProgress() {
    const total = this.slices.length;
    const done = this.loaded.size;
    this.progressBar.max = total;
    this.progressBar.value = done;
    this.progressText.textContent = interpolate(
      gettext("%(done)s of %(total)s images loaded"),
      { done: integer(done), total: integer(total) },
      true,
    );
    this.progress.hidden = total === 0 || done >= total;
    this.root.classList.toggle("is-complete", total > 0 && done >= total);
  }

  onNewImage(index) {
    const slice = this.slices[index];
    if (!slice) return;
    if (this.imageError !== null) {
      this.imageError = null;
      this.setStatus("");
    }
    this.slider.value = String(index + 1);
    const parts = [
      interpolate(
        gettext("Image %(index)s/%(total)s"),
        { index: integer(index + 1), total: integer(this.slices.length) },
        true,
      ),
    ];
    if (slice.position !== null) {
      parts.push(interpolate(gettext("position %(position)s mm"), { position: mm(slice.position) }, true));
    }
    this.readout.textContent = parts.join(" · ");
    this.viewer.onPaneScrolled(this);
  }

  showVoi(range) {
    if (!range) return;
    const { windowWidth, windowCenter } = coreUtilities.windowLevel.toWindowLevel(range.lower, range.upper);
    this.voi.textContent = interpolate(
      gettext("W %(width)s · L %(level)s"),
      { width: integer(windowWidth), level: integer(windowCenter) },
      true,
    );
  }

  /** The patient direction at each edge, from the camera: screen right is viewUp × normal, down is −viewUp. */
  showMarkers() {
    const { viewUp, viewPlaneNormal } = this.viewport.getCamera();
    const letters =
      viewUp && viewPlaneNormal
        ? orientationMarkers(
            cross(viewUp, viewPlaneNormal),
            viewUp.map((x) => -x),
          )
        : {};
    for (const [edge, marker] of Object.entries(this.markers)) marker.textContent = letters[edge] || "";
  }

  /** Show the slice at `index`; resolves once it is on screen. */
  async scrollTo(index) {
    if (!this.hasImages) return;
    const target = Math.max(0, Math.min(this.slices.length - 1, index));
    if (target !== this.imageIndex) await this.viewport.setImageIdIndex(target);
  }

  scrollBy(delta) {
    if (this.hasImages) this.scrollTo(this.imageIndex + delta).catch(() => {});
  }

  setWindow(width, center) {
    if (!this.hasImages) return;
    this.viewport.setProperties({ voiRange: coreUtilities.windowLevel.toLowHighRange(width, center) });
    this.viewport.render();
  }

  reset() {
    if (!this.hasImages) return;
    this.viewport.resetCamera();
    this.viewport.resetProperties();
    this.viewport.render();
  }

  state() {
    return {
      timepoint: this.timepoint?.visit ?? null,
      series: this.series?.seriesUid ?? null,
      shown: this.shown,
      imageIndex: this.imageIndex,
      sop: this.slices[this.imageIndex]?.sopUid ?? null,
      total: this.slices.length,
      loaded: this.loaded.size,
      position: this.position,
    };
  }
}

export function seriesTitle(series) {
  const number =
    series.number === null ? "" : interpolate(gettext("Series %(number)s"), { number: series.number }, true);
  return [number, series.modality, series.description].filter(Boolean).join(" · ");
}
