/**
 * READY: row, file and embedding exist. PROCESSING: the original and the row are stored and an
 * INGEST job will caption and embed it (an asynchronous ingest). DELETING: a delete started and
 * may not have finished.
 */
export type ImageStatus = 'READY' | 'PROCESSING' | 'DELETING';

/** A stored image as the services see it (no Prisma types cross this line). */
export interface ImageRecord {
  /** Public opaque id (UUID). */
  id: string;
  /** Integer key, also the image's label in the vector index. */
  label: number;
  sha256: string;
  status: ImageStatus;
  mimeType: string;
  format: string;
  width: number;
  height: number;
  byteSize: number;
  caption: string | null;
  captionModelId: string | null;
  /** ITM match probability of the caption. */
  captionMatch: number | null;
  altText: string | null;
  altTextMatch: number | null;
  metadata: unknown;
  /** EXIF capture time (DateTimeOriginal), when the file carries one. */
  takenAt: Date | null;
  /** EXIF camera maker and model. */
  cameraMake: string | null;
  cameraModel: string | null;
  createdAt: Date;
}

/**
 * CapFilt per image: of the publisher's alt text and the generated caption, show the one the ITM
 * head rates as the better match, and the alt text only if it clears minAltTextMatch at all.
 */
export function describeImage(image: ImageRecord, minAltTextMatch: number): string | null {
  const alt = image.altTextMatch;
  if (image.altText && alt !== null && alt >= minAltTextMatch && (image.captionMatch === null || alt >= image.captionMatch)) {
    return image.altText;
  }
  return image.caption ?? image.altText;
}
