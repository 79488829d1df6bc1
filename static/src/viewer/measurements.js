// The measurement list beside the viewports: every Length and Bidirectional annotation with its size in mm
// and its points in image (column, row) pixels, which is what a read stores.

import { eventTarget, metaData } from "@cornerstonejs/core";
import { BidirectionalTool, Enums as ToolEnums, LengthTool, annotation } from "@cornerstonejs/tools";

import { worldToImage } from "./geometry.js";
import { gettext, integer, interpolate, mm } from "./i18n.js";

const MEASURED = new Set([LengthTool.toolName, BidirectionalTool.toolName]);
const round = (x) => Math.round(x * 10) / 10;

/**
 * One annotation as plain data: its tool, size(s) in mm, the frame it lies on and its points in pixels.
 *
 * The points are kept to a tenth of a pixel, and on an image with a Pixel Spacing the sizes are the lengths of
 * the lines between those points (each axis at its own spacing), as the server recomputes them and the SR's
 * SCOORDs show them: Cornerstone's figure is for the unrounded line, which differs by up to a tenth of a pixel
 * at each end (0.4 mm on 4 mm pixels). Without a spacing, Cornerstone's figure in pixels is kept.
 */
export function describe(item) {
  const imageId = item.metadata?.referencedImageId;
  const stats = Object.values(item.data?.cachedStats || {})[0] || {};
  const recorded = item.data?.recorded || {};
  const plane = imageId ? metaData.get("imagePlaneModule", imageId) : null;
  const points = (item.data?.handles?.points || []).map((point) => {
    const [column, row] = plane?.imagePositionPatient ? worldToImage(plane, point) : [NaN, NaN];
    return [round(column), round(row)];
  });
  const spaced = Boolean(plane?.pixelSpacing);
  // A locked drawing (an earlier read's, another reader's) cannot move: it shows the sizes its read recorded.
  if (item.isLocked && recorded.mm !== undefined) {
    return {
      uid: item.annotationUID,
      tool: item.metadata?.toolName,
      imageId,
      label: item.data?.label || null,
      locked: true,
      unit: spaced ? "mm" : stats.unit || null,
      mm: recorded.mm ?? null,
      points,
      ...(item.metadata?.toolName === BidirectionalTool.toolName ? { shortMm: recorded.shortMm ?? null } : {}),
    };
  }
  const lengthOf = (a, b) =>
    a && b && [...a, ...b].every(Number.isFinite)
      ? round(Math.hypot((b[0] - a[0]) * plane.columnPixelSpacing, (b[1] - a[1]) * plane.rowPixelSpacing))
      : null;
  const result = {
    uid: item.annotationUID,
    tool: item.metadata?.toolName,
    imageId,
    label: item.data?.label || null,
    locked: Boolean(item.isLocked),
    unit: spaced ? "mm" : stats.unit || null,
    mm: spaced
      ? lengthOf(points[0], points[1])
      : Number.isFinite(stats.length)
        ? round(stats.length)
        : (recorded.mm ?? null),
    points,
  };
  if (result.tool === BidirectionalTool.toolName) {
    result.shortMm = spaced
      ? lengthOf(points[2], points[3])
      : Number.isFinite(stats.width)
        ? round(stats.width)
        : (recorded.shortMm ?? null);
  }
  return result;
}

export class MeasurementList {
  constructor({ viewer, list, empty }) {
    this.viewer = viewer;
    this.list = list;
    this.empty = empty;
    this.pending = false;
    // A read page may take a click on a measurement that belongs to a lesion: `onGo(uid)` is true when it did.
    this.onGo = null;
    const { Events } = ToolEnums;
    for (const name of [Events.ANNOTATION_COMPLETED, Events.ANNOTATION_MODIFIED, Events.ANNOTATION_REMOVED]) {
      eventTarget.addEventListener(name, () => this.schedule());
    }
    this.list.addEventListener("click", (event) => this.onClick(event));
  }

  all() {
    return annotation.state
      .getAllAnnotations()
      .filter((item) => MEASURED.has(item.metadata?.toolName) && !item.isPreview)
      .map(describe);
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const items = this.all();
    this.list.replaceChildren(...items.map((item, n) => this.row(item, n + 1)));
    this.empty.hidden = items.length > 0;
  }

  size(item) {
    const unit = item.unit || "mm";
    if (item.mm === null) return "…";
    if (item.tool === BidirectionalTool.toolName && item.shortMm !== null) {
      return `${mm(item.mm)} × ${mm(item.shortMm)} ${unit}`;
    }
    return `${mm(item.mm)} ${unit}`;
  }

  row(item, number) {
    const li = document.createElement("li");
    li.className = "measurement";
    li.dataset.uid = item.uid;
    const go = document.createElement("button");
    go.type = "button";
    go.className = "measurement-go";
    const name = document.createElement("span");
    name.className = "measurement-name";
    const kind = item.tool === BidirectionalTool.toolName ? gettext("Long and short axis") : gettext("Length");
    // A measurement that belongs to a lesion of a read goes by the lesion's label ("T01").
    name.textContent = item.label ? `${item.label} · ${kind}` : `${integer(number)}. ${kind}`;
    const size = document.createElement("span");
    size.className = "measurement-value";
    size.textContent = this.size(item);
    const where = document.createElement("span");
    where.className = "measurement-where";
    const place = this.viewer.locate(item.imageId);
    where.textContent = place
      ? interpolate(
          gettext("%(visit)s · image %(index)s"),
          { visit: place.label, index: integer(place.index + 1) },
          true,
        )
      : "";
    go.append(name, size, where);
    li.append(go);
    if (item.locked) return li;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "measurement-remove";
    remove.setAttribute("aria-label", gettext("Remove this measurement"));
    remove.textContent = "×";
    li.append(remove);
    return li;
  }

  /**
   * Remove a measurement the reader may change (never a locked one: an earlier read's, another reader's), as the
   * list's × and the Delete key do. A read page hears of it (ANNOTATION_REMOVED) and saves its draft without it.
   */
  remove(uid) {
    if (!annotation.state.getAnnotation(uid) || annotation.locking.isAnnotationLocked(uid)) return false;
    annotation.state.removeAnnotation(uid);
    this.viewer.renderAll();
    this.schedule();
    return true;
  }

  /**
   * The selected measurements the reader may remove: a drawing is selected when it is drawn or clicked (or chosen
   * in the list), and only one on an image a pane shows counts, so a key never removes what is out of sight.
   */
  selected() {
    const shown = new Set(
      this.viewer.panes
        .filter((pane) => pane.enabled && pane.hasImages)
        .map((pane) => pane.slices[pane.imageIndex]?.imageId),
    );
    return annotation.selection.getAnnotationsSelected().filter((uid) => {
      const item = annotation.state.getAnnotation(uid);
      return (
        item &&
        MEASURED.has(item.metadata?.toolName) &&
        !annotation.locking.isAnnotationLocked(uid) &&
        shown.has(item.metadata?.referencedImageId)
      );
    });
  }

  /** Remove the selected measurements (the Delete key); false when none was. */
  removeSelected() {
    const uids = this.selected();
    for (const uid of uids) this.remove(uid);
    return uids.length > 0;
  }

  onClick(event) {
    const li = event.target.closest("li.measurement");
    if (!li) return;
    const uid = li.dataset.uid;
    if (event.target.closest(".measurement-remove")) {
      this.remove(uid);
      return;
    }
    // The measurement chosen in the list is the selected one, as a click on its drawing makes it: Delete removes it.
    if (annotation.state.getAnnotation(uid)) annotation.selection.setAnnotationSelected(uid, true, false);
    if (this.onGo?.(uid)) return;
    const item = annotation.state.getAnnotation(uid);
    if (item) this.viewer.goTo(item.metadata?.referencedImageId);
  }
}
