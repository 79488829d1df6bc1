// A small zip reader for the uploader: reads the central directory of a File (zip64 included) and opens
// entries that are stored or deflated (with the browser's DecompressionStream). Nothing is held in memory
// but the directory; an entry is read only when asked for.

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_COMMENT = 0xffff;

export class ZipError extends Error {}

async function bytesAt(file, start, length) {
  return new DataView(await file.slice(start, start + length).arrayBuffer());
}

function u64(view, offset) {
  return Number(view.getBigUint64(offset, true));
}

async function findDirectory(file) {
  const tailLength = Math.min(file.size, 22 + MAX_COMMENT + 20);
  const tailStart = file.size - tailLength;
  const tail = await bytesAt(file, tailStart, tailLength);
  let at = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (tail.getUint32(i, true) === EOCD) {
      at = i;
      break;
    }
  }
  if (at < 0) throw new ZipError("no end of central directory");
  let count = tail.getUint16(at + 10, true);
  let size = tail.getUint32(at + 12, true);
  let offset = tail.getUint32(at + 16, true);
  if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
    if (at < 20 || tail.getUint32(at - 20, true) !== ZIP64_LOCATOR) throw new ZipError("zip64 locator missing");
    const record = await bytesAt(file, u64(tail, at - 20 + 8), 56);
    if (record.getUint32(0, true) !== ZIP64_EOCD) throw new ZipError("zip64 directory missing");
    count = u64(record, 32);
    size = u64(record, 40);
    offset = u64(record, 48);
  }
  if (offset + size > file.size) throw new ZipError("directory outside the file");
  return { count, size, offset };
}

function zip64Extra(view, start, length, entry) {
  for (let at = start; at + 4 <= start + length; ) {
    const id = view.getUint16(at, true);
    const size = view.getUint16(at + 2, true);
    if (id === 0x0001) {
      let field = at + 4;
      for (const key of ["size", "compressedSize", "localOffset"]) {
        if (entry[key] === 0xffffffff && field + 8 <= at + 4 + size) {
          entry[key] = u64(view, field);
          field += 8;
        }
      }
      return;
    }
    at += 4 + size;
  }
}

const UTF8_NAME = 0x800; // general purpose flag bit 11: the name is UTF-8

/**
 * An entry's name. Without the UTF-8 flag a name is in the writer's code page: Windows' own "Compress" in a Korean
 * locale writes code page 949 (EUC-KR in browsers' terms), while most other tools write UTF-8 and leave the flag
 * unset. So: UTF-8 when flagged or when the bytes are valid UTF-8, else code page 949.
 */
function entryName(bytes, flags) {
  if (flags & UTF8_NAME) return new TextDecoder("utf-8").decode(bytes);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder("euc-kr").decode(bytes);
  }
}

/** The entries of a zip File: [{name, size, method, encrypted, head(n), blob()}], directories left out. */
export async function readZip(file) {
  const directory = await findDirectory(file);
  const view = await bytesAt(file, directory.offset, directory.size);
  const entries = [];
  let at = 0;
  for (let n = 0; n < directory.count; n++) {
    if (at + 46 > view.byteLength || view.getUint32(at, true) !== CENTRAL) throw new ZipError("damaged directory");
    const flags = view.getUint16(at + 8, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const entry = {
      method: view.getUint16(at + 10, true),
      compressedSize: view.getUint32(at + 20, true),
      size: view.getUint32(at + 24, true),
      localOffset: view.getUint32(at + 42, true),
      encrypted: (flags & 1) === 1,
      name: entryName(new Uint8Array(view.buffer, view.byteOffset + at + 46, nameLength), flags),
    };
    zip64Extra(view, at + 46 + nameLength, extraLength, entry);
    at += 46 + nameLength + extraLength + commentLength;
    if (!entry.name.endsWith("/")) entries.push(new ZipEntry(file, entry));
  }
  return entries;
}

class ZipEntry {
  constructor(file, entry) {
    Object.assign(this, entry);
    this.file = file;
    this.dataStart = null;
  }

  get supported() {
    return !this.encrypted && (this.method === 0 || this.method === 8);
  }

  async compressed() {
    if (this.dataStart === null) {
      const local = await bytesAt(this.file, this.localOffset, 30);
      if (local.getUint32(0, true) !== LOCAL) throw new ZipError("damaged entry");
      this.dataStart = this.localOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
    }
    return this.file.slice(this.dataStart, this.dataStart + this.compressedSize);
  }

  async stream() {
    const raw = (await this.compressed()).stream();
    return this.method === 8 ? raw.pipeThrough(new DecompressionStream("deflate-raw")) : raw;
  }

  /** The first `n` bytes of the content (fewer if it is shorter), decompressing no more than needed. */
  async head(n) {
    if (this.method === 0) return new Uint8Array(await (await this.compressed()).slice(0, n).arrayBuffer());
    const reader = (await this.stream()).getReader();
    const out = new Uint8Array(n);
    let filled = 0;
    try {
      while (filled < n) {
        const { done, value } = await reader.read();
        if (done) break;
        const take = Math.min(value.length, n - filled);
        out.set(value.subarray(0, take), filled);
        filled += take;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    return out.subarray(0, filled);
  }

  /** The whole content as a Blob: a slice of the zip when stored, decompressed in memory when deflated. */
  async blob() {
    if (this.method === 0) return this.compressed();
    return new Response(await this.stream()).blob();
  }
}
