import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scenePng } from '../helpers/images.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

const OPERATION = `mutation($input: IngestImageInput!) { ingestImage(input: $input) { created image { id mimeType byteSize altText } } }`;

/** The GraphQL multipart request spec, as apollo-upload-client sends it. */
function multipartBody(file: Buffer, variables: Record<string, unknown> = {}): FormData {
  const form = new FormData();
  form.append('operations', JSON.stringify({ query: OPERATION, variables: { input: { file: null, ...variables } } }));
  form.append('map', JSON.stringify({ 0: ['variables.input.file'] }));
  form.append('0', new Blob([new Uint8Array(file)], { type: 'image/png' }), 'scene.png');
  return form;
}

describe('multipart upload (GraphQL multipart request spec)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { MAX_UPLOAD_BYTES: '100000' } });
  });
  afterAll(async () => server?.dispose());

  const post = (form: FormData, headers: Record<string, string> = { 'apollo-require-preflight': 'true' }) =>
    fetch(`${server.url}/graphql`, { method: 'POST', body: form, headers });

  it('ingests an uploaded file', async () => {
    const png = await scenePng([{ colour: 'purple', shape: 'circle' }]);
    const res = await post(multipartBody(png, { altText: 'a purple circle' }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { ingestImage: { created: boolean; image: { id: string; mimeType: string; byteSize: number; altText: string } } } };
    expect(body.data.ingestImage).toMatchObject({ created: true, image: { mimeType: 'image/png', byteSize: png.length, altText: 'a purple circle' } });
    const stored = await fetch(`${server.url}${`/images/${body.data.ingestImage.image.id}`}`);
    expect(Buffer.from(await stored.arrayBuffer()).equals(png)).toBe(true);
  });

  it('EXPECTED FAILURE - CSRF prevention refuses a multipart post without a preflight header', async () => {
    const png = await scenePng([{ colour: 'orange', shape: 'circle' }]);
    const res = await post(multipartBody(png), {});
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/CSRF/i);
    const count = await server.gql(`{ images(first: 1) { totalCount } }`);
    expect(count.data.images.totalCount).toBe(1);
  });

  it('EXPECTED FAILURE - an upload over MAX_UPLOAD_BYTES', async () => {
    const res = await post(multipartBody(Buffer.alloc(150_000, 7)));
    const body = (await res.json()) as { errors: Array<{ extensions: { code: string } }> };
    expect(body.errors[0]!.extensions.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('EXPECTED FAILURE - both a file and base64', async () => {
    const png = await scenePng([{ colour: 'orange', shape: 'circle' }]);
    const res = await post(multipartBody(png, { base64: png.toString('base64') }));
    const body = (await res.json()) as { errors: Array<{ extensions: { code: string } }> };
    expect(body.errors[0]!.extensions.code).toBe('BAD_USER_INPUT');
  });
});
