/** READY: row, file and embedding exist. DELETING: a delete started and may not have finished. */
export type ImageStatus = 'READY' | 'DELETING';

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
  altText: string | null;
  altTextMatch: number | null;
  metadata: unknown;
  createdAt: Date;
}

/** CapFilt: show the publisher's alt text only when the model agrees that it matches the image. */
export function describeImage(image: ImageRecord, minAltTextMatch: number): string | null {
  if (image.altText && image.altTextMatch !== null && image.altTextMatch >= minAltTextMatch) {
    return image.altText;
  }
  return image.caption ?? image.altText;
}
