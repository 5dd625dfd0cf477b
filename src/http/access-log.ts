import type { RequestHandler } from 'express';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';

/** A bounded route label: ids and file names must not become label values. */
export function routeLabel(path: string): string {
  if (path === '/graphql' || path.startsWith('/graphql?')) return '/graphql';
  if (/^\/images\/[^/]+\/thumbnail/.test(path)) return '/images/:id/thumbnail';
  if (path.startsWith('/images/')) return '/images/:id';
  if (path === '/healthz' || path === '/metrics') return path;
  return 'static';
}

/**
 * One access-log line per request with its duration, and the request-latency histogram: both on
 * the response's 'finish' (or 'close' for a client that went away). Hand-written rather than
 * pino-http: the metric needs the same hook and the same route label, and this is all of it.
 */
export function accessLog(log: Logger, metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeLabel(req.originalUrl.split('?')[0] ?? '/'); // req.path is relative inside mounted routers
      const status = res.writableFinished ? res.statusCode : 499; // 499: the client closed first
      metrics.httpDuration.observe({ method: req.method, route, status: String(status) }, seconds);
      if (route === '/metrics' || route === '/healthz') return; // scrapes and probes would drown the log
      log.info({ method: req.method, url: req.originalUrl.slice(0, 200), status, ms: Math.round(seconds * 10_000) / 10, bytes: Number(res.getHeader('content-length') ?? 0) || undefined }, 'request');
    };
    res.once('finish', done);
    res.once('close', done);
    next();
  };
}
