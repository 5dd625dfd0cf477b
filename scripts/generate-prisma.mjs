// Generates both Prisma clients (SQLite and PostgreSQL flavours). `prisma generate` does not run
// the schema engine, but the CLI insists on downloading it unless PRISMA_SCHEMA_ENGINE_BINARY
// names an existing file, and that download is impossible offline; so point it at this file.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const env = { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? fileURLToPath(import.meta.url) };
for (const flavour of ['sqlite', 'postgresql']) {
  execFileSync('npx', ['--no-install', 'prisma', 'generate', '--schema', `prisma/${flavour}/schema.prisma`], { stdio: 'inherit', env });
}
