import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { createPrismaClient } from '../../src/repositories/database.js';
import { ingest } from '../helpers/gql-ops.js';
import { jpegWithExif, scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

describe.each(flavours)('capture info of images stored before it was extracted (%s)', (db) => {
  it('is read from their originals once, in the background, after an upgrade', async () => {
    let server = await startTestServer({ db });
    try {
      const jpeg = await jpegWithExif(await scenePng([{ colour: 'blue', shape: 'circle' }]), { make: 'Sony', model: 'ILCE-7M4', dateTimeOriginal: '2022:08:09 10:11:12', offsetTimeOriginal: '+00:00' });
      const withExif = await ingest(server, jpeg);
      const without = await ingest(server, await scenePng([{ colour: 'red', shape: 'square' }]));
      expect(withExif.cameraModel).toBe('ILCE-7M4');
      await server.stop();

      // The database as the previous version left it: no capture info, no backfill plan.
      const client = createPrismaClient(loadConfig(server.env).db);
      await client.image.updateMany({ data: { takenAt: null, cameraMake: null, cameraModel: null } });
      await client.setting.deleteMany({ where: { key: 'captureInfoBackfill' } });
      await client.$disconnect();

      server = await startTestServer({ db, reuse: { dataDir: server.dataDir, env: server.env } });
      const read = async (id: string) => (await server.gql(`query($id: ID!) { image(id: $id) { takenAt cameraMake cameraModel } }`, { id })).data.image;
      await expect.poll(() => read(withExif.id), { timeout: 10_000 }).toEqual({ takenAt: '2022-08-09T10:11:12.000Z', cameraMake: 'Sony', cameraModel: 'ILCE-7M4' });
      expect(await read(without.id)).toEqual({ takenAt: null, cameraMake: null, cameraModel: null });
      const filtered = await server.gql(`{ images(first: 5, filter: { takenAfter: "2022-01-01T00:00:00Z" }) { totalCount } }`);
      expect(filtered.data.images.totalCount).toBe(1);
    } finally {
      await server.dispose();
    }
  });
});
