import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { createPrismaClient } from '../../src/repositories/database.js';
import { JobRepository } from '../../src/repositories/job.repository.js';
import { runMigrations } from '../../src/repositories/run-migrations.js';
import { createPgSchema, type DbFlavour } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];

/**
 * The claim that lets several processes share the queue: consumers with their own connections
 * (as separate processes would have) race for the same jobs; each job is claimed exactly once,
 * oldest first, and a lease that ran out hands a job to another consumer.
 */
describe.each(flavours)('Job table as a queue (%s)', (db) => {
  it('concurrent consumers claim every job exactly once; an expired lease is taken over', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-jobs-repo-'));
    const pg = db === 'postgresql' ? await createPgSchema() : null;
    const config = loadConfig({ DATA_DIR: dataDir, ...(pg ? { DATABASE_URL: pg.url } : {}) });
    await runMigrations(config.db, 'prisma');
    const clients = [0, 1, 2, 3].map(() => createPrismaClient(config.db));
    const repos = clients.map((c) => new JobRepository(c, config.db.provider));
    try {
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) ids.push((await repos[0]!.create({ id: randomUUID(), kind: 'INGEST' })).id);

      const claimed = new Map<string, string>();
      const duplicates: string[] = [];
      await Promise.all(
        repos.map(async (repo, worker) => {
          for (;;) {
            const job = await repo.claim(`worker-${worker}`, 60_000);
            if (!job) return;
            if (claimed.has(job.id)) duplicates.push(job.id);
            claimed.set(job.id, `worker-${worker}`);
            expect(job).toMatchObject({ state: 'RUNNING', attempts: 1 });
            await repo.finish(job.id, `worker-${worker}`, 'SUCCEEDED', null);
          }
        }),
      );
      expect(duplicates).toEqual([]);
      expect([...claimed.keys()].sort()).toEqual([...ids].sort());
      expect(await repos[0]!.count({ states: ['SUCCEEDED'] })).toBe(40);

      // A job held by a consumer that died: taken over only once its lease has run out.
      const orphan = await repos[0]!.create({ id: randomUUID(), kind: 'REEMBED' });
      const now = Date.now();
      expect((await repos[0]!.claim('dead', 1000, now))?.id).toBe(orphan.id);
      expect(await repos[1]!.claim('alive', 1000, now + 500)).toBeNull();
      const taken = await repos[1]!.claim('alive', 1000, now + 1500);
      expect(taken).toMatchObject({ id: orphan.id, attempts: 2 });
      // The dead holder can no longer report or finish it.
      expect(await repos[0]!.finish(orphan.id, 'dead', 'SUCCEEDED', null)).toBeNull();
      expect(await repos[1]!.finish(orphan.id, 'alive', 'SUCCEEDED', null)).toMatchObject({ state: 'SUCCEEDED', progress: 1 });
    } finally {
      await Promise.all(clients.map((c) => c.$disconnect()));
      await pg?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
