import fs from 'node:fs/promises';
import path from 'node:path';
import exifReader from 'exif-reader';

/**
 * Alt text for a file: a sidecar text file (`photo.txt` or `photo.jpg.txt` beside `photo.jpg`),
 * else the EXIF ImageDescription. The EXIF block is found here rather than by decoding: the CLI
 * is a client and reads only the container (JPEG APP1, PNG eXIf, WebP EXIF chunk).
 */
export async function readAltText(file: string, bytes: Uint8Array): Promise<string | null> {
  const parsed = path.parse(file);
  for (const sidecar of [path.join(parsed.dir, `${parsed.name}.txt`), `${file}.txt`]) {
    try {
      const text = (await fs.readFile(sidecar, 'utf8')).trim();
      if (text) return text;
    } catch {
      // no sidecar
    }
  }
  const exif = findExif(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  if (!exif) return null;
  try {
    const description = exifReader(exif).Image?.ImageDescription;
    const text = typeof description === 'string' ? description.replace(/\0+$/, '').trim() : '';
    return text || null;
  } catch {
    return null;
  }
}

/** The EXIF block (starting at "Exif\0\0" or the TIFF header), or null. */
export function findExif(buf: Buffer): Buffer | null {
  if (buf[0] === 0xff && buf[1] === 0xd8) {
    let offset = 2;
    while (offset + 4 <= buf.length && buf[offset] === 0xff) {
      const marker = buf[offset + 1]!;
      if (marker === 0xda || marker === 0xd9) break; // start of scan: no more metadata
      const length = buf.readUInt16BE(offset + 2);
      const start = offset + 4;
      if (marker === 0xe1 && buf.subarray(start, start + 6).toString('latin1') === 'Exif\0\0') return buf.subarray(start, offset + 2 + length);
      offset += 2 + length;
    }
    return null;
  }
  if (buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    let offset = 8;
    while (offset + 8 <= buf.length) {
      const length = buf.readUInt32BE(offset);
      const type = buf.subarray(offset + 4, offset + 8).toString('latin1');
      if (type === 'eXIf') return buf.subarray(offset + 8, offset + 8 + length);
      if (type === 'IDAT' || type === 'IEND') return null;
      offset += 12 + length;
    }
    return null;
  }
  if (buf.subarray(0, 4).toString('latin1') === 'RIFF' && buf.subarray(8, 12).toString('latin1') === 'WEBP') {
    let offset = 12;
    while (offset + 8 <= buf.length) {
      const type = buf.subarray(offset, offset + 4).toString('latin1');
      const length = buf.readUInt32LE(offset + 4);
      if (type === 'EXIF') return buf.subarray(offset + 8, offset + 8 + length);
      offset += 8 + length + (length % 2);
    }
  }
  return null;
}
