import express, { type Express } from 'express';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import type { ApiKeyService } from '../services/api-key.service.js';
import { accessLog } from './access-log.js';
import { authenticate, requireScope, type AuthSettings } from './authenticate.js';
import { healthz, type HttpAppOptions } from './create-http-app.js';

/**
 * A worker (ROLE=worker) serves no API: only /healthz, for orchestrators, and /metrics (its jobs
 * and inference times, with the read scope as on the API: src/http/create-http-app.ts);
 * everything else is 404.
 */
export function createWorkerHttpApp(options: Pick<HttpAppOptions, 'isReady' | 'health'> & { log: Logger; metrics: Metrics; keys: ApiKeyService; auth: AuthSettings }): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(accessLog(options.log.child({ module: 'http' }), options.metrics));
  app.get('/metrics', authenticate(options.keys, options.auth), requireScope('read'), async (_req, res, next) => {
    try {
      res.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
    } catch (error) {
      next(error);
    }
  });
  app.get('/healthz', healthz(options));
  app.use((_req, res) => {
    res.status(404).json({ errors: [{ message: 'This process is a worker (ROLE=worker): it runs jobs and serves no API', extensions: { code: 'NOT_FOUND' } }] });
  });
  return app;
}
