import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { requireScopeOf, type ApiKeyScope, type Principal } from '../domain/api-key.js';
import { UnauthenticatedError } from '../domain/errors.js';
import type { ApiKeyService } from '../services/api-key.service.js';

export interface AuthSettings {
  mode: 'required' | 'local' | 'off';
  /** Lower-case Host names without port that count as "this machine" (config.http.allowedHosts). */
  localHosts: ReadonlySet<string>;
}

/** What a keyless request may do under each AUTH mode (docs/security.md). */
const KEYLESS_SCOPE: Record<AuthSettings['mode'], ApiKeyScope | null> = { required: null, local: 'write', off: 'admin' };

/**
 * Sets res.locals.principal. A request with a key is that key, whatever AUTH says, and a key that
 * is malformed, unknown or revoked is refused rather than ignored: its client meant to use it.
 * Without a key, AUTH=local trusts a client on the loopback interface that addresses the server by
 * a local name: the Host check keeps out pages that reach 127.0.0.1 through DNS rebinding, the
 * peer check keeps out other machines, and a request a proxy forwarded is never local.
 */
export function authenticate(keys: ApiKeyService, settings: AuthSettings, options: { cookie?: boolean } = {}): RequestHandler {
  return (req, res, next) => {
    void principalOf(req, keys, settings, options.cookie ?? false).then(
      (principal) => {
        res.locals.principal = principal;
        next();
      },
      next,
    );
  };
}

async function principalOf(req: Request, keys: ApiKeyService, settings: AuthSettings, cookie: boolean): Promise<Principal> {
  const header = req.headers.authorization;
  const secret = header !== undefined ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : cookie ? keyCookie(req.headers.cookie) : undefined;
  if (header !== undefined && secret === undefined) throw new UnauthenticatedError('Authorization must be "Bearer <key>"');
  if (secret !== undefined) {
    const principal = await keys.authenticate(secret);
    if (!principal) throw new UnauthenticatedError('The API key is unknown or revoked');
    return principal;
  }
  const scope = KEYLESS_SCOPE[settings.mode];
  if (scope === null) return { kind: 'anonymous' };
  if (settings.mode === 'local' && !isLocalRequest(req, settings)) return { kind: 'anonymous' };
  return { kind: 'local', scope };
}

/**
 * The page's key for <img> requests (web/src/api-key.ts), which cannot carry Authorization. Read
 * on GET /images/* only: SameSite=Strict keeps other sites from sending it, and reads change nothing.
 */
function keyCookie(header: string | undefined): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === 'blip_key' && value.length) {
      try {
        return decodeURIComponent(value.join('=')) || undefined;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/**
 * A request that a proxy forwarded is never local, even when the proxy runs on this machine and
 * keeps a local Host: the client is whoever reached the proxy.
 */
function isLocalRequest(req: Request, settings: AuthSettings): boolean {
  if (req.headers['x-forwarded-for'] !== undefined || req.headers.forwarded !== undefined) return false;
  return isLoopbackAddress(req.ip) && settings.localHosts.has((req.hostname ?? '').toLowerCase());
}

export function isLoopbackAddress(address: string | undefined): boolean {
  return !!address && (address === '::1' || /^(::ffff:)?127\./.test(address));
}

/** Refuses requests whose principal lacks `scope`: 401 without a key, 403 with too small a one. */
export function requireScope(scope: ApiKeyScope): RequestHandler {
  return (_req: Request, res: Response, next: NextFunction) => {
    try {
      requireScopeOf(res.locals.principal as Principal, scope);
      next();
    } catch (error) {
      next(error);
    }
  };
}

/**
 * The principal of a GraphQL-over-WebSocket connection (src/graphql/subscription-server.ts): the
 * upgrade request passes no express middleware, so the Host and Origin checks and AUTH are applied
 * here. Browsers cannot set Authorization on a WebSocket, so the key may also come as the
 * connection's `authorization` parameter (web/src/jobs.ts). A page of another origin is refused
 * unless CORS_ORIGIN lists it: browsers send cookies and reach loopback from any page, and
 * WebSockets have no preflight (cross-site WebSocket hijacking).
 * @returns null when the connection must be refused outright (Host or Origin).
 */
export async function principalOfUpgrade(
  req: IncomingMessage,
  params: Readonly<Record<string, unknown>> | undefined,
  keys: ApiKeyService,
  settings: AuthSettings & { allowedHosts: ReadonlySet<string>; corsOrigins: readonly string[] },
): Promise<Principal | null> {
  const host = (req.headers.host ?? '').toLowerCase();
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0] ?? '';
  if (!settings.allowedHosts.has(hostname)) return null;
  const origin = req.headers.origin;
  if (origin !== undefined && !settings.corsOrigins.includes('*') && !settings.corsOrigins.includes(origin)) {
    if (!URL.canParse(origin) || new URL(origin).host.toLowerCase() !== host) return null;
  }
  const fromParams = typeof params?.authorization === 'string' ? params.authorization : undefined;
  const header = fromParams ?? req.headers.authorization;
  if (header !== undefined) {
    const secret = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (secret === undefined) throw new UnauthenticatedError('Authorization must be "Bearer <key>"');
    const principal = await keys.authenticate(secret);
    if (!principal) throw new UnauthenticatedError('The API key is unknown or revoked');
    return principal;
  }
  const scope = KEYLESS_SCOPE[settings.mode];
  if (scope === null) return { kind: 'anonymous' };
  const forwarded = req.headers['x-forwarded-for'] !== undefined || req.headers.forwarded !== undefined;
  if (settings.mode === 'local' && (forwarded || !isLoopbackAddress(req.socket.remoteAddress) || !settings.localHosts.has(hostname))) {
    return { kind: 'anonymous' };
  }
  return { kind: 'local', scope };
}
