import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { COLOURS } from './fake-blip-engine.js';

type Colour = keyof typeof COLOURS;
const BACKGROUNDS = { white: '#f5f5f5', gray: '#808080', black: '#141414' } as const;

/** A scenes.md-style scene: one shape per entry, left to right, on a flat background. */
export async function scenePng(
  shapes: Array<{ colour: Colour; shape: 'circle' | 'square'; size?: 'small' | 'large' }>,
  background: keyof typeof BACKGROUNDS = 'white',
): Promise<Buffer> {
  const parts = shapes.map((s, i) => {
    const cx = Math.round((128 / (shapes.length + 1)) * (i + 1));
    const r = s.size === 'small' ? 14 : 28 / Math.max(1, shapes.length - 1);
    const fill = `rgb(${COLOURS[s.colour].join(',')})`;
    return s.shape === 'circle'
      ? `<circle cx="${cx}" cy="64" r="${r}" fill="${fill}"/>`
      : `<rect x="${cx - r}" y="${64 - r}" width="${2 * r}" height="${2 * r}" fill="${fill}"/>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="128" height="128"><rect width="128" height="128" fill="${BACKGROUNDS[background]}"/>${parts.join('')}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A valid-looking PNG of a few hundred bytes whose header claims width x height (a pixel bomb). */
export function pixelBombPng(width = 25000, height = 25000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([1, 0, 0, 0, 0], 8); // 1-bit greyscale
  const rows = deflateSync(Buffer.alloc(64 * 1024)); // zeros compress to almost nothing
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', rows), chunk('IEND', Buffer.alloc(0))]);
}

/** A JPEG of `png` carrying EXIF camera and capture time, as a phone writes them. */
export async function jpegWithExif(
  png: Buffer,
  exif: { make?: string; model?: string; dateTimeOriginal?: string; offsetTimeOriginal?: string },
): Promise<Buffer> {
  const ifd0: Record<string, string> = {};
  if (exif.make) ifd0.Make = exif.make;
  if (exif.model) ifd0.Model = exif.model;
  const photo: Record<string, string> = {};
  if (exif.dateTimeOriginal) photo.DateTimeOriginal = exif.dateTimeOriginal;
  if (exif.offsetTimeOriginal) photo.OffsetTimeOriginal = exif.offsetTimeOriginal;
  // libvips names the EXIF sub-IFD "IFD2".
  return sharp(png).jpeg({ quality: 92 }).withExif({ IFD0: ifd0, IFD2: photo }).toBuffer();
}
