import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../lib/logger.js';
import type { IngestService } from './ingest.service.js';

const IMAGE_FILE = /\.(png|jpe?g|webp|gif)$/i;

/**
 * Ingests the bundled sample scenes so a first start shows something. A sidecar `<name>.txt`, if
 * present, becomes the image's altText. Bad samples are logged and skipped, never fatal.
 */
export async function seedSamples(ingest: IngestService, samplesDir: string, log: Logger, signal?: AbortSignal): Promise<number> {
  const names = (await fs.readdir(samplesDir).catch(() => [] as string[])).filter((n) => IMAGE_FILE.test(n)).sort();
  let created = 0;
  for (const name of names) {
    if (signal?.aborted) break;
    const file = path.join(samplesDir, name);
    try {
      const altText = await fs.readFile(file.replace(IMAGE_FILE, '.txt'), 'utf8').then((t) => t.trim() || null, () => null);
      const bytes = await fs.readFile(file);
      const result = await ingest.ingestImage({
        source: { kind: 'base64', data: bytes.toString('base64') },
        altText,
        metadata: { sample: name },
      });
      if (result.created) created++;
    } catch (error) {
      log.warn({ err: error, file }, 'sample not ingested');
    }
  }
  log.info({ created, samplesDir }, 'sample images seeded');
  return created;
}
