import http from 'node:http';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type DbFlavour, type TestServer } from '../helpers/test-server.js';

const flavours: DbFlavour[] = process.env.BLIP_TEST_PG === 'off' ? ['sqlite'] : ['sqlite', 'postgresql'];
const INGEST = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { image { id mimeType } } }`;

/** GET with headers fetch would not send as given (Host; If-None-Match, beside which fetch adds Cache-Control: no-cache). */
function get(url: string, path: string, headers: string | Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(`${url}${path}`, { headers: typeof headers === 'string' ? { host: headers } : headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

describe('origins, Host and security headers', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { CORS_ORIGIN: 'https://app.example' } });
  });
  afterAll(async () => server?.dispose());

  const preflight = (origin: string) =>
    fetch(`${server.url}/graphql`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });

  it('EXPECTED FAILURE - a cross-origin preflight from an unlisted origin is not approved; a listed one is', async () => {
    const evil = await preflight('https://evil.example');
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    const listed = await preflight('https://app.example');
    expect(listed.headers.get('access-control-allow-origin')).toBe('https://app.example');
  });

  it('EXPECTED FAILURE - a Host outside the allowed set gets 421 everywhere but /healthz (DNS rebinding)', async () => {
    for (const path of ['/graphql', '/images/00000000-0000-4000-8000-000000000000', '/']) {
      expect(await get(server.url, path, 'evil.example'), path).toBe(421);
      expect(await get(server.url, path, `evil.example:${server.app.port}`), path).toBe(421);
    }
    expect(await get(server.url, '/healthz', '10.1.2.3:4000')).toBe(200);
    expect(await get(server.url, '/', `localhost:${server.app.port}`)).toBe(200);
  });

  it('every response carries helmet headers: CSP with frame-ancestors none, nosniff', async () => {
    for (const res of [await fetch(`${server.url}/`), await fetch(`${server.url}/healthz`), await server.gql('{ serviceInfo { modelId } }').then(() => fetch(`${server.url}/graphql?query=%7B__typename%7D`))]) {
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    }
  });

  it('the built page needs nothing the CSP forbids: no inline scripts or styles, same-origin assets', async () => {
    const html = await (await fetch(`${server.url}/`)).text();
    expect(html).toContain('<div id="app">');
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(body!.trim(), 'inline script').toBe('');
      expect(attrs).toMatch(/src="\/[^/]/);
    }
    expect(html).not.toMatch(/<style\b|\sstyle="/);
    for (const [, href] of html.matchAll(/<link\b[^>]*href="([^"]+)"/g)) expect(href).toMatch(/^\/[^/]/);
  });
});

describe.each(flavours)('originals are served as decoded (%s)', (db) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ db });
  });
  afterAll(async () => server?.dispose());

  const ingest = async (bytes: Buffer) => {
    const res = await server.gql(INGEST, { input: { base64: bytes.toString('base64') } });
    expect(res.errors).toBeUndefined();
    return res.data.ingestImage.image as { id: string; mimeType: string };
  };

  it('EXPECTED FAILURE - data appended to a PNG, JPEG, GIF or WebP is never served', async () => {
    const png = await scenePng([{ colour: 'red', shape: 'square' }], 'black');
    const junk = Buffer.alloc(3 * 1024 * 1024, 'not part of any image. ');
    const variants = {
      'image/png': png,
      'image/jpeg': await sharp(png).jpeg({ progressive: true }).toBuffer(),
      'image/gif': await sharp(png).gif().toBuffer(),
      'image/webp': await sharp(png).webp().toBuffer(),
    };
    for (const [mime, clean] of Object.entries(variants)) {
      const image = await ingest(Buffer.concat([clean, junk]));
      expect(image.mimeType).toBe(mime);
      const res = await fetch(`${server.url}/images/${image.id}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(mime);
      const served = Buffer.from(await res.arrayBuffer());
      expect(served.length, mime).toBe(clean.length);
      expect(served.equals(clean), mime).toBe(true);
    }
  });

  it('a format whose end cannot be found (TIFF) is served as a lossless WebP of what was decoded', async () => {
    const png = await scenePng([{ colour: 'green', shape: 'circle' }]);
    const tiff = Buffer.concat([await sharp(png).tiff({ compression: 'lzw' }).toBuffer(), Buffer.alloc(4096, 'junk')]);
    const image = await ingest(tiff);
    const res = await fetch(`${server.url}/images/${image.id}`);
    expect(res.headers.get('content-type')).toBe('image/webp');
    const served = Buffer.from(await res.arrayBuffer());
    expect(served.includes(Buffer.from('junkjunk'))).toBe(false);
    const [a, b] = await Promise.all([sharp(served).removeAlpha().raw().toBuffer(), sharp(png).removeAlpha().raw().toBuffer()]);
    expect(a.equals(b)).toBe(true);
  });

  it('Content-Disposition, private revalidated caching, 304, and gone after delete', async () => {
    const image = await ingest(await scenePng([{ colour: 'blue', shape: 'circle' }], 'gray'));
    for (const path of [`/images/${image.id}`, `/images/${image.id}/thumbnail`]) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.headers.get('cache-control')).toBe('private, no-cache');
      expect(res.headers.get('cache-control')).not.toContain('immutable');
      expect(res.headers.get('content-disposition')).toMatch(new RegExp(`^inline; filename="${image.id}(-thumbnail)?\\.(png|webp)"$`));
      const etag = res.headers.get('etag')!;
      expect(await get(server.url, path, { 'if-none-match': etag })).toBe(304);
    }
    await server.admin(`mutation($id: ID!) { deleteImage(id: $id) { deleted } }`, { id: image.id });
    expect((await fetch(`${server.url}/images/${image.id}`)).status).toBe(404);
  });
});
