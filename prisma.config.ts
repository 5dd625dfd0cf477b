import { defineConfig } from 'prisma/config';

// For the ordinary Prisma CLI flow where the network allows it (`prisma migrate deploy`,
// `prisma migrate dev`, `prisma studio`). The service itself applies the same committed migrations
// at start-up (src/repositories/run-migrations.ts), recording them in Prisma's own
// _prisma_migrations table, so both routes agree on what has been applied.
const url = process.env.DATABASE_URL ?? `file:${process.env.DATA_DIR ?? './data'}/blip-search.db`;
const flavour = url.startsWith('postgres') ? 'postgresql' : 'sqlite';

export default defineConfig({
  schema: `prisma/${flavour}/schema.prisma`,
  migrations: { path: `prisma/${flavour}/migrations` },
  datasource: { url },
});
