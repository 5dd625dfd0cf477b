import { Router, type NextFunction, type Request, type Response } from 'express';
import { DomainError } from '../domain/errors.js';
import type { ImageService } from '../services/image.service.js';

const STATUS: Record<string, number> = { BAD_USER_INPUT: 400, NOT_FOUND: 404, PAYLOAD_TOO_LARGE: 413, UNSUPPORTED_IMAGE: 415, SERVICE_UNAVAILABLE: 503, ORIGINAL_MISSING: 500, UNAUTHENTICATED: 401, FORBIDDEN: 403 };

const EXTENSION: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/gif': 'gif', 'image/webp': 'webp' };

/**
 * GET /images/:id (the original as decoded: src/services/image.service.ts readOriginal) and GET
 * /images/:id/thumbnail (WebP). Cached privately and revalidated on every use (ETag, 304): a
 * deleted image stops being served at once, and shared caches never hold a library that needs a
 * key. Content-Disposition names the file after the image id (never a client-chosen name).
 */
export function imageRoutes(images: ImageService): Router {
  const router = Router();
  const send = (variant: 'original' | 'thumbnail', read: (id: string) => Promise<{ bytes: Buffer; mimeType: string; sha256: string }>) =>
    async (req: Request<{ id: string }>, res: Response) => {
      const file = await read(req.params.id);
      const name = `${req.params.id}${variant === 'thumbnail' ? '-thumbnail' : ''}.${EXTENSION[file.mimeType] ?? 'bin'}`;
      res.set({
        'Content-Type': file.mimeType,
        'Content-Disposition': `inline; filename="${name}"`,
        'Cache-Control': 'private, no-cache',
        ETag: `"${file.sha256}-${variant}-${file.mimeType === 'image/webp' ? 'w' : 'o'}"`,
      });
      if (req.fresh) return void res.status(304).end();
      res.send(file.bytes);
    };
  router.get('/images/:id', send('original', (id) => images.readOriginal(id)));
  router.get('/images/:id/thumbnail', send('thumbnail', (id) => images.readThumbnail(id)));
  return router;
}

/** JSON errors for the REST routes, with the same codes as GraphQL; internals masked. */
export function restErrorHandler(log: { error: (o: object, m: string) => void }) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof DomainError) {
      if (error.code === 'UNAUTHENTICATED') res.set('WWW-Authenticate', 'Bearer');
      res.status(STATUS[error.code] ?? 400);
      // Refusals before Apollo (authentication) still answer /graphql in GraphQL's shape.
      if (req.originalUrl.startsWith('/graphql')) res.json({ errors: [{ message: error.message, extensions: { code: error.code, ...error.details } }] });
      else res.json({ error: { code: error.code, message: error.message } });
      return;
    }
    const status = (error as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // body-parser / graphql-upload refusals (too large, malformed): the client's fault.
      const code = status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST';
      res.status(status).json({ errors: [{ message: (error as Error).message, extensions: { code } }] });
      return;
    }
    log.error({ err: error }, 'internal error in an HTTP route');
    res.status(500).json({ error: { code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error' } });
  };
}
