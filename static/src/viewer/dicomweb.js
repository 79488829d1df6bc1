// A small DICOMweb (PS3.18) client for one root: QIDO-RS searches and WADO-RS metadata, as DICOM JSON.

export class DicomwebError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** The first value of an attribute of a DICOM JSON object (PersonName as its alphabetic form). */
export function value(object, tag, fallback = undefined) {
  const values = object?.[tag]?.Value;
  if (!values || values.length === 0) return fallback;
  const first = values[0];
  return first && typeof first === "object" && "Alphabetic" in first ? first.Alphabetic : first;
}

/** Every value of an attribute, as numbers (for ImagePositionPatient, PixelSpacing...), or null. */
export function numbers(object, tag) {
  const values = object?.[tag]?.Value;
  if (!values || values.length === 0) return null;
  const parsed = values.map(Number);
  return parsed.every(Number.isFinite) ? parsed : null;
}

export const TAGS = {
  studyUid: "0020000D",
  seriesUid: "0020000E",
  sopUid: "00080018",
  modality: "00080060",
  seriesDescription: "0008103E",
  seriesNumber: "00200011",
  seriesInstances: "00201209",
  instanceNumber: "00200013",
  numberOfFrames: "00280008",
  position: "00200032",
  orientation: "00200037",
  pixelSpacing: "00280030",
  frameOfReference: "00200052",
};

export class DicomwebClient {
  constructor(root) {
    this.root = root.replace(/\/$/, "");
  }

  async json(path) {
    return (await this.page(path)).found;
  }

  /** A DICOM JSON answer and whether the server capped it (its Warning says more results can be requested). */
  async page(path) {
    const response = await fetch(`${this.root}${path}`, {
      headers: { Accept: "application/dicom+json" },
      credentials: "same-origin",
    });
    if (response.status === 204) return { found: [], more: false };
    if (!response.ok) throw new DicomwebError(`${response.status} ${response.statusText}`, response.status);
    const more = /additional results can be requested/i.test(response.headers.get("Warning") || "");
    return { found: await response.json(), more };
  }

  seriesUrl(studyUid, seriesUid) {
    return `${this.root}/studies/${studyUid}/series/${seriesUid}`;
  }

  /**
   * The series of a study (QIDO-RS), sorted by series number, each with its number of frames: what a reader
   * scrolls through (an enhanced CT or MR is one instance of many frames). The frames come from one search of
   * the study's instances (NumberOfFrames is one of their default attributes), made beside the series search;
   * if that fails, a series' frames are its number of instances.
   */
  async series(studyUid) {
    const study = `/studies/${encodeURIComponent(studyUid)}`;
    const [found, frames] = await Promise.all([this.json(`${study}/series`), this.framesOf(study).catch(() => null)]);
    return found
      .map((item) => {
        const seriesUid = value(item, TAGS.seriesUid);
        const instances = value(item, TAGS.seriesInstances, null);
        return {
          studyUid,
          seriesUid,
          modality: value(item, TAGS.modality, ""),
          description: value(item, TAGS.seriesDescription, ""),
          number: value(item, TAGS.seriesNumber, null),
          instances,
          frames: frames?.get(seriesUid) ?? instances,
        };
      })
      .sort((a, b) => (a.number ?? 1e9) - (b.number ?? 1e9));
  }

  /** The number of frames of each series of a study (series UID → frames), from its instances (QIDO-RS). */
  async framesOf(study) {
    const frames = new Map();
    let offset = 0;
    for (;;) {
      const { found, more } = await this.page(`${study}/instances${offset ? `?offset=${offset}` : ""}`);
      for (const item of found) {
        const series = value(item, TAGS.seriesUid);
        frames.set(series, (frames.get(series) ?? 0) + (Number(value(item, TAGS.numberOfFrames, 1)) || 1));
      }
      if (!more || !found.length) return frames;
      offset += found.length;
    }
  }

  /** Every instance's metadata (WADO-RS), one DICOM JSON object each. */
  metadata(studyUid, seriesUid) {
    return this.json(`/studies/${encodeURIComponent(studyUid)}/series/${encodeURIComponent(seriesUid)}/metadata`);
  }

  thumbnailUrl(studyUid, seriesUid, size = 128) {
    return `${this.seriesUrl(studyUid, seriesUid)}/thumbnail?viewport=${size},${size}`;
  }

  /** The wadors: image ids of an instance's frames (what Cornerstone's WADO-RS loader fetches). */
  imageIds(studyUid, seriesUid, sopUid, frames = 1) {
    const base = `wadors:${this.seriesUrl(studyUid, seriesUid)}/instances/${sopUid}/frames/`;
    return Array.from({ length: frames }, (_, n) => `${base}${n + 1}`);
  }
}
