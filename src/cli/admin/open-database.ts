import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, type AppConfig } from '../../config/load-config.js';
import { createPrismaClient, type DbClient } from '../../repositories/database.js';
import { runMigrations } from '../../repositories/run-migrations.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * The server's database for a command: the same environment and loadConfig as src/main.ts, and
 * the same migrations (idempotent, locked against a server starting at once), so a command run
 * before the first start finds its tables. Configuration errors end the process with status 2.
 */
export async function openDatabase(): Promise<{ config: Readonly<AppConfig>; db: DbClient }> {
  let config: Readonly<AppConfig>;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  await runMigrations(config.db, path.join(ROOT, 'prisma'));
  return { config, db: createPrismaClient(config.db) };
}
