import sharp from 'sharp';

/**
 * Thumbnails are a transport concern, not inference, so they do not go through BlipEngine; sharp is
 * the library the ML layer already uses for decoding. Input bytes were validated at ingest.
 */
export async function renderThumbnail(original: Uint8Array, size: number): Promise<Buffer> {
  return sharp(original, { limitInputPixels: false })
    .rotate()
    .resize(size, size, { fit: 'inside', withoutEnlargement: true })
    .webp({ quality: 80 })
    .toBuffer();
}
