import exifReader from 'exif-reader';
import type { CaptureInfo } from '../blip-engine.js';

/**
 * Earlier times are read as "unset": a camera with a zeroed clock writes "0000:00:00 00:00:00",
 * which exif-reader's Date.UTC turns into 1899-11-30 (years 0-99 count from 1900).
 */
const EARLIEST = Date.UTC(1900, 0, 1);
/** A day of clock skew is tolerated; later than that is a wrong camera clock. */
const FUTURE_SLACK_MS = 24 * 3600 * 1000;

const NONE: CaptureInfo = Object.freeze({ takenAt: null, cameraMake: null, cameraModel: null });

/**
 * Capture time and camera from an EXIF block (sharp's `metadata().exif`), parsed by exif-reader.
 * EXIF times are local wall-clock times without a zone: exif-reader reads them as UTC, and the
 * EXIF 2.31 offset tag, when present, turns them into the real instant. A broken EXIF block is
 * ignored (the image is still fine), so this never throws.
 */
export function readCaptureInfo(exif: Buffer | undefined, now = Date.now()): CaptureInfo {
  if (!exif || exif.byteLength === 0) return NONE;
  let tags: ReturnType<typeof exifReader>;
  try {
    tags = exifReader(exif);
  } catch {
    return NONE;
  }
  const photo = tags.Photo ?? {};
  const local = validDate(photo.DateTimeOriginal) ?? validDate(photo.DateTimeDigitized);
  const offset = parseOffset(photo.DateTimeOriginal ? photo.OffsetTimeOriginal : photo.OffsetTimeDigitized);
  const subSeconds = parseSubSeconds(photo.DateTimeOriginal ? photo.SubSecTimeOriginal : photo.SubSecTimeDigitized);
  let takenAt: Date | null = null;
  if (local) {
    const ms = local.getTime() + subSeconds - offset * 60_000;
    takenAt = ms >= EARLIEST && ms <= now + FUTURE_SLACK_MS ? new Date(ms) : null;
  }
  return { takenAt, cameraMake: cleanText(tags.Image?.Make), cameraModel: cleanText(tags.Image?.Model) };
}

function validDate(value: unknown): Date | null {
  return value instanceof Date && Number.isFinite(value.getTime()) ? value : null;
}

/** "+02:00" -> 120 (minutes east of UTC); 0 when absent or malformed. */
function parseOffset(value: unknown): number {
  const m = typeof value === 'string' ? /^\s*([+-])(\d{2}):(\d{2})/.exec(value) : null;
  if (!m) return 0;
  const minutes = Number(m[2]) * 60 + Number(m[3]);
  return minutes > 14 * 60 ? 0 : (m[1] === '-' ? -1 : 1) * minutes;
}

/** SubSecTime "123" -> 123 ms, "5" -> 500 ms. */
function parseSubSeconds(value: unknown): number {
  const m = typeof value === 'string' ? /^\s*(\d{1,9})/.exec(value) : null;
  return m ? Math.round(Number(`0.${m[1]}`) * 1000) % 1000 : 0;
}

/** EXIF ASCII fields are NUL-padded and often space-padded; at most 128 characters are kept. */
function cleanText(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  // eslint-disable-next-line no-control-regex
  const text = value.replace(/[\u0000-\u001f\u007f]/g, ' ').trim().replace(/\s+/g, ' ');
  return text ? text.slice(0, 128) : null;
}
