import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataDirMismatchError } from '../../src/services/data-dir-binding.service.js';
import { scenePng } from '../helpers/images.js';
import { startS3Server } from '../helpers/s3-server.js';
import { startTestServer } from '../helpers/test-server.js';

const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { image { id sha256 } } }`;

describe.skipIf(process.env.BLIP_TEST_PG === 'off').each(['s3', 'postgres'] as const)('shared originals (BLOB_STORE=%s)', (kind) => {
  it('a process on "another machine" (its own empty DATA_DIR) serves the originals, thumbnails and searches; deletes reach the store', async () => {
    const s3 = kind === 's3' ? await startS3Server() : null;
    const a = await startTestServer({ db: 'postgresql', env: s3?.env ?? { BLOB_STORE: 'postgres' } });
    const dirB = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-test-b-'));
    let b: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      const png = await scenePng([{ colour: 'blue', shape: 'square' }]);
      const { id, sha256 } = (await a.gql(INGEST, { input: { base64: png.toString('base64') } })).data.ingestImage.image;
      // Not in A's DATA_DIR: in the store.
      expect(fs.existsSync(path.join(a.dataDir, 'images'))).toBe(false);

      b = await startTestServer({ reuse: { dataDir: dirB, env: { ...a.env, DATA_DIR: dirB, ROLE: 'api' } } });
      const original = await fetch(`${b.url}/images/${id}`);
      expect(original.status).toBe(200);
      expect(Buffer.compare(Buffer.from(await original.arrayBuffer()), png)).toBe(0);
      // B never had the thumbnail or the ITM states: made from the original where they are missing.
      const thumb = await fetch(`${b.url}/images/${id}/thumbnail`);
      expect(thumb.status).toBe(200);
      expect(thumb.headers.get('content-type')).toMatch(/webp/);
      const found = await b.gql(`{ searchImages(text: "blue square", first: 1, rerank: true) { edges { node { id } } } }`);
      expect(found.errors).toBeUndefined();
      expect(found.data.searchImages.edges[0].node.id).toBe(id);
      expect(fs.existsSync(path.join(dirB, 'images', sha256.slice(0, 2), sha256))).toBe(false);

      expect((await b.admin(`mutation($id: ID!) { deleteImage(id: $id) { deleted } }`, { id })).data.deleteImage.deleted).toBe(true);
      expect((await fetch(`${a.url}/images/${id}`)).status).toBe(404);

      if (s3) {
        // EXPECTED FAILURE - the same bucket with another (new) database: refused, as a DATA_DIR is.
        const other = startTestServer({ db: 'postgresql', env: s3.env });
        await expect(other).rejects.toThrow(DataDirMismatchError);
      }
    } finally {
      await b?.stop();
      fs.rmSync(dirB, { recursive: true, force: true });
      await a.dispose();
      await s3?.close();
    }
  }, 60_000);
});
