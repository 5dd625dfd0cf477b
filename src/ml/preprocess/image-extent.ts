/**
 * Where an image file's own data ends, from its container structure: bytes after that point are
 * not part of the picture (a PNG with 20 MB appended decodes the same), and serving them would make
 * the server a host for arbitrary files. PNG (IEND), JPEG (EOI after the last scan), GIF (trailer)
 * and WebP (RIFF size) are walked here; null for other formats or a structure that does not parse,
 * whose callers re-encode instead (src/services/image.service.ts). Pure byte parsing, no decoder.
 */
export function imageExtent(bytes: Buffer, mimeType: string): number | null {
  try {
    switch (mimeType) {
      case 'image/png':
        return pngEnd(bytes);
      case 'image/jpeg':
        return jpegEnd(bytes);
      case 'image/gif':
        return gifEnd(bytes);
      case 'image/webp':
        return webpEnd(bytes);
      default:
        return null;
    }
  } catch {
    return null; // ran off the end: a truncated or odd file
  }
}

function need(bytes: Buffer, end: number): void {
  if (end > bytes.length) throw new RangeError('past the end');
}

function pngEnd(bytes: Buffer): number | null {
  let at = 8;
  for (;;) {
    need(bytes, at + 8);
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    at += 12 + length;
    need(bytes, at);
    if (type === 'IEND') return at;
  }
}

function jpegEnd(bytes: Buffer): number | null {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  let at = 2;
  for (;;) {
    need(bytes, at + 2);
    if (bytes[at] !== 0xff) return null;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (marker === 0xd9) return at + 2; // EOI
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      at += 2;
      continue;
    }
    need(bytes, at + 4);
    at += 2 + bytes.readUInt16BE(at + 2);
    if (marker === 0xda) {
      // Entropy-coded data: runs to the next marker that is neither a stuffed 0xFF00 nor a restart.
      for (;;) {
        need(bytes, at + 2);
        if (bytes[at] === 0xff && bytes[at + 1] !== 0x00 && !(bytes[at + 1]! >= 0xd0 && bytes[at + 1]! <= 0xd7)) break;
        at += 1;
      }
    }
  }
}

function gifEnd(bytes: Buffer): number | null {
  need(bytes, 13);
  let at = 13;
  const flags = bytes[10]!;
  if (flags & 0x80) at += 3 * (2 << (flags & 7));
  const skipSubBlocks = () => {
    for (;;) {
      need(bytes, at + 1);
      const size = bytes[at]!;
      at += 1 + size;
      if (size === 0) return;
    }
  };
  for (;;) {
    need(bytes, at + 1);
    const block = bytes[at]!;
    if (block === 0x3b) return at + 1;
    if (block === 0x21) {
      at += 2;
      skipSubBlocks();
    } else if (block === 0x2c) {
      need(bytes, at + 10);
      const local = bytes[at + 9]!;
      at += 10;
      if (local & 0x80) at += 3 * (2 << (local & 7));
      at += 1; // LZW minimum code size
      skipSubBlocks();
    } else {
      return null;
    }
  }
}

function webpEnd(bytes: Buffer): number | null {
  need(bytes, 12);
  if (bytes.toString('latin1', 0, 4) !== 'RIFF' || bytes.toString('latin1', 8, 12) !== 'WEBP') return null;
  const end = 8 + bytes.readUInt32LE(4);
  need(bytes, end);
  return end;
}
