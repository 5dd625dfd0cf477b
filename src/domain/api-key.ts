import { ForbiddenError, UnauthenticatedError } from './errors.js';

/**
 * API key scopes, each including the ones before it: `read` (queries, /images/*), `write` (also
 * ingest, recaption, edits), `admin` (also delete and key management). docs/security.md.
 */
export const API_KEY_SCOPES = ['read', 'write', 'admin'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export function isApiKeyScope(value: string): value is ApiKeyScope {
  return (API_KEY_SCOPES as readonly string[]).includes(value);
}

/** Whether a holder of `held` may do what needs `required`. */
export function scopeCovers(held: ApiKeyScope, required: ApiKeyScope): boolean {
  return API_KEY_SCOPES.indexOf(held) >= API_KEY_SCOPES.indexOf(required);
}

/** A key as listed: never its secret (only a hash is stored) but the secret's first characters. */
export interface ApiKeyInfo {
  id: string;
  name: string;
  scope: ApiKeyScope;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** Who a request acts as: a key, or a keyless request that AUTH lets through (docs/security.md). */
export type Principal =
  | { kind: 'key'; keyId: string; scope: ApiKeyScope }
  | { kind: 'local'; scope: ApiKeyScope }
  | { kind: 'anonymous' };

/** Throws UNAUTHENTICATED for a request without a usable key, FORBIDDEN for too small a scope. */
export function requireScopeOf(principal: Principal, required: ApiKeyScope): void {
  if (principal.kind === 'anonymous') throw new UnauthenticatedError();
  if (!scopeCovers(principal.scope, required)) {
    throw new ForbiddenError(required, principal.kind === 'key' ? `a ${principal.scope} key` : `no key (${principal.scope} without one)`);
  }
}
