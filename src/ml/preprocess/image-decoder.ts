import sharp, { type Metadata } from 'sharp';
import type { ImageInfo } from '../blip-engine.js';
import { ImageTooLargeError, UnsupportedImageError } from '../errors.js';
import { sharedArray } from '../runtime/shared-memory.js';
import { readCaptureInfo } from './exif-capture.js';

/** Size limits checked before any pixel is decoded. */
export interface ImageLimits {
  /** Largest accepted file, in bytes. Default 32 MiB. */
  maxBytes: number;
  /** Largest accepted width * height of the first frame, read from the header. Default 50 M pixels. */
  maxPixels: number;
}

/** Defaults for {@link ImageLimits}. */
export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({ maxBytes: 32 * 1024 * 1024, maxPixels: 25_000_000 });

/** Preprocessing constants from the manifest's `image` section. */
export interface PixelSpec {
  /** Square side S of the model input. */
  size: number;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** 1/255. */
  rescaleFactor: number;
}

/**
 * sharp resize kernels tried against PIL's BICUBIC (see test/ml/image-decoder.test.ts for the
 * measured differences); the default is the closest one.
 */
export type ResizeKernel = 'cubic' | 'mitchell' | 'lanczos3' | 'linear';

/** The kernel with the lowest measured difference from PIL BICUBIC (libvips cubic = Catmull-Rom, Keys a=-0.5). */
export const DEFAULT_RESIZE_KERNEL: ResizeKernel = 'cubic';

const MIME: Record<string, string> = {
  jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif',
  tiff: 'image/tiff', avif: 'image/avif', heif: 'image/heif',
};
const ACCEPTED = new Set(Object.keys(MIME));

/** Every content type the decoder accepts (what an upload form should list). */
export const ACCEPTED_MIME_TYPES: readonly string[] = Object.freeze(Object.values(MIME));

/** An image's header, read without decoding pixels. */
interface Header {
  info: ImageInfo;
  pages: number;
}

async function readHeader(bytes: Uint8Array, limits: ImageLimits): Promise<Header> {
  if (bytes.byteLength === 0) throw new UnsupportedImageError('empty input: no image bytes');
  if (bytes.byteLength > limits.maxBytes) throw new ImageTooLargeError('bytes', bytes.byteLength, limits.maxBytes);
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (cause) {
    // sharp's own words stay in `cause` (logs): they name library internals, not the client's mistake.
    throw new UnsupportedImageError('not a decodable image (corrupt, truncated or not an image)', { cause });
  }
  // heif covers AVIF and HEIC; sharp names the container, the compression tells which
  const format = meta.format === 'heif' && meta.compression === 'av1' ? 'avif' : String(meta.format);
  if (!ACCEPTED.has(format)) {
    throw new UnsupportedImageError(`unsupported image format "${format}"; accepted: ${[...ACCEPTED].join(', ')}`);
  }
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (width <= 0 || height <= 0) throw new UnsupportedImageError(`image header has no valid size (${width}x${height})`);
  const pixels = width * height;
  if (pixels > limits.maxPixels) throw new ImageTooLargeError('pixels', pixels, limits.maxPixels);
  const swap = (meta.orientation ?? 1) >= 5;
  return {
    info: {
      format,
      mimeType: MIME[format] ?? 'application/octet-stream',
      width: swap ? height : width,
      height: swap ? width : height,
      hasAlpha: meta.hasAlpha ?? false,
      capture: readCaptureInfo(meta.exif),
    },
    pages: meta.pages ?? 1,
  };
}

/** decodeRgb shrinks on load only for images at least this many times the model size on their short side. */
const SHRINK_FACTOR = 4;

/** Raw interleaved 8-bit RGB of the oriented first frame. */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
}

/**
 * Header checks, then a full decode of the first frame: EXIF orientation applied, converted to
 * sRGB, alpha dropped without compositing (PIL `convert("RGB")`), 8 bits per channel.
 * @throws ImageTooLargeError before decoding when bytes or header pixels exceed `limits`.
 * @throws UnsupportedImageError for anything sharp cannot decode (corrupt, truncated, not an image).
 */
export async function decodeRgb(bytes: Uint8Array, limits: ImageLimits = DEFAULT_IMAGE_LIMITS, shrinkFor?: number): Promise<{ info: ImageInfo; rgb: RgbImage }> {
  const header = await readHeader(bytes, limits);
  try {
    let pipeline = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'error', page: 0, pages: 1, sequentialRead: true }).rotate();
    // Far larger than the model needs: shrink while decoding (libjpeg DCT scaling, WebP's scaled
    // decode) to twice the model size, so a 50 MP photo never exists in memory at full size. Below
    // SHRINK_FACTOR x the decode stays exact, as PIL's, which the parity goldens check. Not with
    // alpha: libvips resizes before dropping it, premultiplied, which changes transparent pixels'
    // colours where PIL keeps them.
    const { width, height, hasAlpha } = header.info;
    if (shrinkFor !== undefined && !hasAlpha && Math.min(width, height) >= SHRINK_FACTOR * shrinkFor) {
      pipeline = pipeline.resize(2 * shrinkFor, 2 * shrinkFor, { fit: 'outside', kernel: 'lanczos3', fastShrinkOnLoad: true });
    }
    const { data, info } = await pipeline
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { info: header.info, rgb: { data, width: info.width, height: info.height } };
  } catch (cause) {
    if (cause instanceof ImageTooLargeError) throw cause;
    throw new UnsupportedImageError(`cannot decode this ${header.info.format} image (corrupt or truncated)`, { cause });
  }
}

/**
 * Resizes RGB to exactly S x S (no aspect preservation), as PIL `resize((S,S), BICUBIC)`.
 * Decoding and resizing are two sharp pipelines on purpose: one pipeline would let libvips
 * shrink JPEGs on load and resize before dropping alpha, both of which move it away from PIL.
 * @returns S*S*3 bytes, interleaved RGB.
 */
export async function resizeRgb(rgb: RgbImage, size: number, kernel: ResizeKernel = DEFAULT_RESIZE_KERNEL): Promise<Buffer> {
  if (rgb.width === size && rgb.height === size) return rgb.data;
  return sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } })
    .resize(size, size, { fit: 'fill', kernel, fastShrinkOnLoad: false })
    .raw()
    .toBuffer();
}

/**
 * Interleaved RGB bytes -> CHW float32: `(v * rescaleFactor - mean[c]) / std[c]`.
 * @returns Float32Array(3 * S * S), channel-major, in shared memory (it is posted to an
 *   inference worker once per vision graph: src/ml/runtime/shared-memory.ts).
 */
export function normalizeRgb(data: Uint8Array, spec: PixelSpec): Float32Array {
  const plane = spec.size * spec.size;
  const out = sharedArray(Float32Array, 3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = spec.mean[c] as number;
    const std = spec.std[c] as number;
    for (let i = 0; i < plane; i++) out[c * plane + i] = ((data[i * 3 + c] as number) * spec.rescaleFactor - mean) / std;
  }
  return out;
}

/**
 * Bytes -> model pixels: decode ({@link decodeRgb}), resize to S x S with bicubic, /255, CLIP
 * mean/std.
 * @returns info of the oriented image and pixels Float32Array(3*S*S) in CHW order (values about -1.8..2.2).
 */
export async function decodeImage(
  bytes: Uint8Array,
  spec: PixelSpec,
  limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
  kernel: ResizeKernel = DEFAULT_RESIZE_KERNEL,
): Promise<{ info: ImageInfo; pixels: Float32Array; modelInput: Buffer }> {
  const { info, rgb } = await decodeRgb(bytes, limits, spec.size);
  const resized = await resizeRgb(rgb, spec.size, kernel);
  // The S x S RGB as lossless PNG: decoding it later gives these exact pixels (no resize, no
  // orientation), so questions and captions never decode the original again.
  const modelInput = await sharp(resized, { raw: { width: spec.size, height: spec.size, channels: 3 } }).png({ compressionLevel: 6 }).toBuffer();
  return { info, pixels: normalizeRgb(resized, spec), modelInput };
}

/**
 * A WebP thumbnail no larger than `maxSide` on either side (aspect kept, never enlarged), EXIF
 * orientation applied, metadata stripped. For originals already accepted at ingest: no size limit
 * is applied again, so lowering MAX_IMAGE_PIXELS later does not refuse thumbnails of stored images.
 * Thumbnails are a transport concern, not inference, so they do not go through BlipEngine; they
 * live here because this is the one module that imports sharp.
 */
export async function renderThumbnail(original: Uint8Array, maxSide: number): Promise<Buffer> {
  return sharp(original, { limitInputPixels: false })
    .rotate()
    .resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true })
    .webp({ quality: 80 })
    .toBuffer();
}

/**
 * A full-size copy of an original whose container cannot be checked for appended data
 * (src/ml/preprocess/image-extent.ts): what the decoder saw, re-encoded as lossless WebP (EXIF
 * orientation applied, metadata dropped; WebP's 16383-pixel side limit applies).
 */
export async function renderServableCopy(original: Uint8Array): Promise<Buffer> {
  return sharp(original, { limitInputPixels: false })
    .rotate()
    .resize(16383, 16383, { fit: 'inside', withoutEnlargement: true })
    .webp({ lossless: true })
    .toBuffer();
}

/** Reads only the header: format, oriented size, alpha. Enforces the byte and pixel limits. */
export async function probeImage(bytes: Uint8Array, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<ImageInfo> {
  return (await readHeader(bytes, limits)).info;
}
