// Plain geometry over DICOM attributes, in the patient coordinate system (LPS, millimetres).

const EPSILON = 1e-3;

export function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

export function dot(a, b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/**
 * A point of the patient coordinate system (LPS, mm) as image (column, row) coordinates in pixels, the top left
 * corner of the top left pixel at (0, 0) and its centre at (0.5, 0.5), as an SR's SCOORD has them (PS3.3
 * C.18.6.1.1). `plane` is an imagePlaneModule: Image Position (Patient) is the centre of the first pixel, the
 * column index grows along rowCosines by Pixel Spacing's second value (columnPixelSpacing, the distance between
 * columns), the row index along columnCosines by its first (rowPixelSpacing, the distance between rows).
 * Cornerstone's own worldToImageCoords pairs each direction with the other spacing, which is wrong wherever
 * the two spacings differ.
 */
export function worldToImage(plane, point) {
  const origin = plane.imagePositionPatient;
  const offset = [point[0] - origin[0], point[1] - origin[1], point[2] - origin[2]];
  return [
    dot(offset, plane.rowCosines) / (plane.columnPixelSpacing || 1) + 0.5,
    dot(offset, plane.columnCosines) / (plane.rowPixelSpacing || 1) + 0.5,
  ];
}

/** Image (column, row) pixel coordinates as a point of the patient coordinate system: worldToImage undone. */
export function imageToWorld(plane, [column, row]) {
  const across = (column - 0.5) * (plane.columnPixelSpacing || 1);
  const down = (row - 0.5) * (plane.rowPixelSpacing || 1);
  return [0, 1, 2].map(
    (axis) => plane.imagePositionPatient[axis] + plane.rowCosines[axis] * across + plane.columnCosines[axis] * down,
  );
}

/** The slice normal (row × column direction) of an ImageOrientationPatient, or null without one. */
export function sliceNormal(orientation) {
  if (!orientation || orientation.length < 6) return null;
  return cross(orientation.slice(0, 3), orientation.slice(3, 6));
}

/** Where a slice lies along its normal: the signed distance (mm) of ImagePositionPatient from the origin. */
export function slicePosition(position, orientation) {
  const normal = sliceNormal(orientation);
  if (!normal || !position || position.length < 3) return null;
  return dot(position, normal);
}

/**
 * The instances of a series in viewing order: along the slice normal from its far end (head first for axial
 * CT) when every instance has a position and the series one orientation, else by InstanceNumber.
 * `items` carry {position, orientation, instanceNumber}; returns a new array.
 */
export function sortSlices(items) {
  const first = items[0]?.orientation;
  const positioned =
    first &&
    items.every(
      (item) =>
        item.position &&
        item.orientation &&
        item.orientation.every((value, index) => Math.abs(value - first[index]) < EPSILON),
    );
  const byNumber = (a, b) => (a.instanceNumber ?? 0) - (b.instanceNumber ?? 0);
  if (!positioned) return [...items].sort(byNumber);
  const normal = sliceNormal(first);
  return [...items].sort((a, b) => dot(b.position, normal) - dot(a.position, normal) || byNumber(a, b));
}

// The patient direction letters of each axis of LPS: +x left, +y posterior, +z head.
const LETTERS = [
  ["R", "L"],
  ["A", "P"],
  ["F", "H"],
];

/**
 * The letters of the patient direction a vector points to, strongest axis first ("L", "LP", "HAR"...):
 * an axis counts when it carries a noticeable part of the vector, as on an oblique plane.
 */
export function directionLetters(vector) {
  if (!vector) return "";
  const axes = [0, 1, 2]
    .map((axis) => ({ axis, value: vector[axis] }))
    .filter(({ value }) => Math.abs(value) > 0.25)
    .sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
  return axes.map(({ axis, value }) => LETTERS[axis][value > 0 ? 1 : 0]).join("");
}

/** The letters at the four edges of a viewport whose screen right and screen down are the given vectors. */
export function orientationMarkers(right, down) {
  const negate = (v) => v && v.map((x) => -x);
  return {
    top: directionLetters(negate(down)),
    bottom: directionLetters(down),
    left: directionLetters(negate(right)),
    right: directionLetters(right),
  };
}

/** The index in `positions` closest to `target` (null entries are skipped); -1 when there is none. */
export function closestIndex(positions, target) {
  let best = -1;
  let distance = Infinity;
  positions.forEach((position, index) => {
    if (position === null || position === undefined) return;
    const d = Math.abs(position - target);
    if (d < distance) {
      distance = d;
      best = index;
    }
  });
  return best;
}
