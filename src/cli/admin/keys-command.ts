import type { Command } from 'commander';
import { API_KEY_SCOPES } from '../../domain/api-key.js';
import { DomainError } from '../../domain/errors.js';
import { PrismaApiKeyRepository } from '../../repositories/api-key.repository.js';
import { ApiKeyService } from '../../services/api-key.service.js';
import { openDatabase } from './open-database.js';

/** Runs `use` against the API key service, closing the database after; domain errors exit 1 with their message. */
async function withKeys(use: (keys: ApiKeyService) => Promise<void>): Promise<void> {
  const { db } = await openDatabase();
  try {
    await use(new ApiKeyService(new PrismaApiKeyRepository(db)));
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    console.error(`error: ${error.message}`);
    process.exitCode = 1;
  } finally {
    await db.$disconnect();
  }
}

/** `keys create|list|revoke` (docs/security.md). */
export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('API keys: create, list, revoke');
  keys
    .command('create')
    .description('create a key; its secret is printed once, as the last line')
    .requiredOption('--name <name>', 'who or what uses the key')
    .requiredOption('--scope <scope>', `one of ${API_KEY_SCOPES.join(', ')}`)
    .action((options: { name: string; scope: string }) =>
      withKeys(async (service) => {
        const { key, secret } = await service.create(options.name, options.scope);
        console.log(`Created API key ${key.id} (${key.name}, scope ${key.scope}). Store the secret now; it is not shown again:`);
        console.log(secret);
      }),
    );
  keys
    .command('list')
    .description('list keys (never their secrets)')
    .action(() =>
      withKeys(async (service) => {
        const list = await service.list();
        if (!list.length) console.log('No API keys.');
        for (const k of list) {
          const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active';
          console.log([k.id, k.scope.padEnd(5), `${k.prefix}…`, k.createdAt.toISOString(), state, k.name].join('  '));
        }
      }),
    );
  keys
    .command('revoke')
    .description('revoke a key by id; requests with it are refused from then on')
    .argument('<id>', 'the key id (keys list)')
    .action((id: string) =>
      withKeys(async (service) => {
        await service.revoke(id);
        console.log(`Revoked API key ${id}`);
      }),
    );
}
