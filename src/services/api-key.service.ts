import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { isApiKeyScope, type ApiKeyInfo, type Principal } from '../domain/api-key.js';
import { InvalidInputError, NotFoundError } from '../domain/errors.js';
import type { PrismaApiKeyRepository } from '../repositories/api-key.repository.js';

/** Recognisable in logs and secret scanners; the rest is 32 random bytes, base64url. */
const SECRET_PREFIX = 'bsk_';
const SHOWN_CHARS = SECRET_PREFIX.length + 6;
const MAX_NAME_CHARS = 100;

/**
 * Creates, lists, revokes and checks API keys. The secret leaves this service once, from
 * `create`; the database keeps its SHA-256. A slow password hash (argon2, bcrypt) protects
 * guessable secrets; 256 random bits are not guessable, so SHA-256 is enough and keeps the check
 * per request to one indexed lookup (as GitHub's and Stripe's tokens do).
 */
export class ApiKeyService {
  constructor(private readonly repo: PrismaApiKeyRepository) {}

  async create(name: string, scope: string): Promise<{ key: ApiKeyInfo; secret: string }> {
    const trimmed = name.trim();
    if (!trimmed || trimmed.length > MAX_NAME_CHARS) throw new InvalidInputError(`name: 1 to ${MAX_NAME_CHARS} characters`, { argument: 'name' });
    if (!isApiKeyScope(scope)) throw new InvalidInputError('scope: one of read, write, admin', { argument: 'scope' });
    const secret = SECRET_PREFIX + randomBytes(32).toString('base64url');
    const key = await this.repo.create({ id: randomUUID(), name: trimmed, scope, hash: hashSecret(secret), prefix: secret.slice(0, SHOWN_CHARS) });
    return { key, secret };
  }

  list(): Promise<ApiKeyInfo[]> {
    return this.repo.list();
  }

  async revoke(id: string): Promise<void> {
    if (!(await this.repo.revoke(id))) throw new NotFoundError('Live API key', id);
  }

  /** The key's principal, or null for an unknown or revoked secret. */
  async authenticate(secret: string): Promise<Extract<Principal, { kind: 'key' }> | null> {
    // Looking up by hash: the database compares hashes, so timing tells nothing about the secret.
    if (!secret.startsWith(SECRET_PREFIX) || secret.length > 200) return null;
    const key = await this.repo.findActiveByHash(hashSecret(secret));
    return key ? { kind: 'key', keyId: key.id, scope: key.scope } : null;
  }
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
