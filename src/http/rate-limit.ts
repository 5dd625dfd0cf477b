import type { RequestHandler } from 'express';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Principal } from '../domain/api-key.js';
import type { Logger } from '../lib/logger.js';
import { isLoopbackAddress } from './authenticate.js';

/**
 * One point per request: a key's requests count against the key (wherever they come from), the
 * others against the client address (req.ip: TRUST_PROXY decides whose X-Forwarded-For counts).
 * Over the limit: 429, RATE_LIMITED, Retry-After. A store that fails (PostgreSQL down) lets the
 * request through and logs: availability over a limit that cannot be counted. Keyless requests
 * from this machine that AUTH lets through are not counted: the page's thumbnails alone would
 * spend a per-address budget, and whoever is on the machine is trusted anyway (docs/security.md).
 */
export function rateLimit(limiters: { address: RateLimiterAbstract; key: RateLimiterAbstract }, log: Logger): RequestHandler {
  return (req, res, next) => {
    const principal = res.locals.principal as Principal | undefined;
    if (principal?.kind === 'local' && isLoopbackAddress(req.ip)) return next();
    const [limiter, id] = principal?.kind === 'key' ? [limiters.key, principal.keyId] : [limiters.address, req.ip ?? 'unknown'];
    limiter.consume(id).then(
      () => next(),
      (rejection: unknown) => {
        if (!(rejection instanceof RateLimiterRes)) {
          log.warn({ err: rejection }, 'rate limit store failed; request let through');
          return next();
        }
        const seconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
        const message = `Too many requests; retry in ${seconds} s`;
        res.status(429).set('Retry-After', String(seconds));
        if (req.originalUrl.startsWith('/graphql')) res.json({ errors: [{ message, extensions: { code: 'RATE_LIMITED', retryAfterSeconds: seconds } }] });
        else res.json({ error: { code: 'RATE_LIMITED', message } });
      },
    );
  };
}
