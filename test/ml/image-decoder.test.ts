import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { ImageTooLargeError, UnsupportedImageError } from '../../src/ml/errors.js';
import { decodeImage, decodeRgb, probeImage, renderThumbnail, type ResizeKernel } from '../../src/ml/preprocess/image-decoder.js';

const golden = JSON.parse(readFileSync('test/golden/tiny-random.json', 'utf8')) as {
  images: Array<{ file: string; pixels: number[] }>;
};
const manifest = JSON.parse(readFileSync('test/fixtures/tiny-random/manifest.json', 'utf8'));
const spec = manifest.image;

function mad(a: Float32Array, b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs((a[i] as number) - (b[i] as number));
  return s / a.length;
}

async function solid(format: 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff' | 'avif', rgba = false): Promise<Buffer> {
  const img = sharp({ create: { width: 40, height: 20, channels: rgba ? 4 : 3, background: { r: 200, g: 30, b: 60, alpha: rgba ? 0 : 1 } } });
  return img.toFormat(format).toBuffer();
}

describe('image decoder vs PIL goldens', () => {
  for (const im of golden.images) {
    it(`pixels of ${im.file}: mean abs diff <= 0.01 with the default kernel`, async () => {
      const { pixels } = await decodeImage(readFileSync(`test/golden/images/${im.file}`), spec);
      expect(pixels).toHaveLength(3 * spec.size * spec.size);
      const d = mad(pixels, im.pixels);
      console.log(`pixel MAD ${im.file}: ${d.toFixed(5)}`);
      expect(d).toBeLessThanOrEqual(0.01);
    });
  }
  it('the default kernel (cubic) is the closest of the sharp kernels', async () => {
    const score: Record<string, number> = {};
    for (const kernel of ['cubic', 'mitchell', 'lanczos3', 'linear'] as ResizeKernel[]) {
      let total = 0;
      for (const im of golden.images) total += mad((await decodeImage(readFileSync(`test/golden/images/${im.file}`), spec, undefined, kernel)).pixels, im.pixels);
      score[kernel] = total / golden.images.length;
    }
    console.log('mean pixel MAD per kernel', score);
    expect(Math.min(...Object.values(score))).toBe(score.cubic);
  });
});

describe('image decoder formats and semantics', () => {
  for (const format of ['png', 'jpeg', 'webp', 'gif', 'tiff', 'avif'] as const) {
    it(`decodes ${format}`, async () => {
      const { info, pixels } = await decodeImage(await solid(format), spec);
      expect(info.format).toBe(format);
      expect([info.width, info.height]).toEqual([40, 20]);
      expect(pixels).toHaveLength(3 * 32 * 32);
    });
  }
  it('drops alpha without compositing (fully transparent pixels keep their colour)', async () => {
    const { info, rgb } = await decodeRgb(await solid('png', true));
    expect(info.hasAlpha).toBe(true);
    expect([rgb.data[0], rgb.data[1], rgb.data[2]]).toEqual([200, 30, 60]);
  });
  it('applies EXIF orientation (reported size is the oriented one)', async () => {
    const bytes = await sharp({ create: { width: 30, height: 10, channels: 3, background: '#808080' } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const { info, rgb } = await decodeRgb(bytes);
    expect([info.width, info.height, rgb.width, rgb.height]).toEqual([10, 30, 10, 30]);
  });
  it('grayscale becomes 3 equal channels', async () => {
    const bytes = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#404040' } }).grayscale().png().toBuffer();
    const { rgb } = await decodeRgb(bytes);
    expect(rgb.data.length).toBe(8 * 8 * 3);
  });
  it('first frame of an animated GIF', async () => {
    const frames = sharp({ create: { width: 8, height: 16, channels: 3, background: '#ff0000' } });
    const gif = await frames.gif().toBuffer();
    const anim = await sharp(gif, { pages: -1 }).gif({ loop: 0 }).toBuffer();
    const { info } = await decodeRgb(anim);
    expect(info.format).toBe('gif');
  });
});

describe('EXPECTED FAILURE - bad or oversized images', () => {
  it('rejects bytes that are not an image', async () => {
    await expect(decodeImage(Buffer.from('hello, not an image'), spec)).rejects.toBeInstanceOf(UnsupportedImageError);
  });
  it('rejects empty input', async () => {
    await expect(decodeImage(new Uint8Array(0), spec)).rejects.toBeInstanceOf(UnsupportedImageError);
  });
  it('rejects a truncated JPEG', async () => {
    const full = readFileSync('test/golden/images/scene.jpg');
    await expect(decodeImage(full.subarray(0, Math.floor(full.length / 2)), spec)).rejects.toBeInstanceOf(UnsupportedImageError);
  });
  it('rejects over the byte limit with the limit in the message', async () => {
    const bytes = readFileSync('test/golden/images/scene.png');
    await expect(decodeImage(bytes, spec, { maxBytes: 100, maxPixels: 1e9 })).rejects.toThrow(/limit is 100 bytes/);
  });
  it('rejects a tiny PNG whose header claims 25000x25000 before decoding it', async () => {
    const png = await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).png().toBuffer();
    const forged = Buffer.from(png);
    forged.writeUInt32BE(25000, 16);
    forged.writeUInt32BE(25000, 20);
    expect(forged.length).toBeLessThan(200);
    const err = await probeImage(forged, { maxBytes: 1e6, maxPixels: 50_000_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageTooLargeError);
    expect((err as Error).message).toMatch(/625000000 pixels; the limit is 50000000 pixels/);
    await expect(decodeImage(forged, spec)).rejects.toBeInstanceOf(ImageTooLargeError);
  });
});

describe('thumbnails', () => {
  it('WebP within maxSide on its longest side, aspect kept, never enlarged', async () => {
    const wide = await sharp({ create: { width: 200, height: 50, channels: 3, background: '#c33' } }).png().toBuffer();
    const meta = await sharp(await renderThumbnail(wide, 64)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 64, 16]);
    const small = await sharp(await renderThumbnail(await solid('png', true), 256)).metadata();
    expect([small.format, small.width, small.height, small.hasAlpha]).toEqual(['webp', 40, 20, true]);
  });

  it('applies EXIF orientation and drops it', async () => {
    // 40 x 20 pixels stored, EXIF orientation 6 (rotate 90 degrees clockwise to display): 20 x 40 shown
    const stored = await sharp({ create: { width: 40, height: 20, channels: 3, background: '#36c' } })
      .jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const meta = await sharp(await renderThumbnail(stored, 1000)).metadata();
    expect([meta.format, meta.width, meta.height, meta.orientation]).toEqual(['webp', 20, 40, undefined]);
  });
});
