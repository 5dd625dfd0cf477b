import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

/**
 * GraphQL over WebSocket skips the HTTP middleware, so src/http/authenticate.ts
 * (principalOfUpgrade) applies the same rules to the upgrade: Host, Origin, AUTH and the read scope.
 */
const QUERY = 'subscription { jobUpdates { id state } }';

/** Resolves 'open' once the server acknowledged the connection, or the close code it gave. */
function connect(url: string, options: { key?: string; origin?: string; host?: string } = {}): Promise<'open' | number> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = {};
    if (options.origin) headers.origin = options.origin;
    if (options.host) headers.host = options.host;
    class Socket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers });
      }
    }
    const client = createClient({
      url: url.replace(/^http/, 'ws') + '/graphql',
      webSocketImpl: Socket,
      lazy: true,
      retryAttempts: 0,
      connectionParams: options.key ? { authorization: `Bearer ${options.key}` } : {},
      on: {
        connected: () => {
          resolve('open');
          void client.dispose();
        },
        closed: (event) => resolve((event as { code: number }).code),
      },
    });
    client.subscribe({ query: QUERY }, { next: () => undefined, error: () => undefined, complete: () => undefined });
  });
}

describe('WebSocket subscriptions: the HTTP rules apply to the upgrade', () => {
  let required: TestServer;
  let local: TestServer;
  beforeAll(async () => {
    [required, local] = await Promise.all([startTestServer({ env: { AUTH: 'required' } }), startTestServer()]);
  });
  afterAll(async () => {
    await Promise.all([required?.dispose(), local?.dispose()]);
  });

  it('EXPECTED FAILURE - AUTH=required: no key and a revoked-looking key are refused; a read key connects', async () => {
    expect(await connect(required.url)).not.toBe('open');
    expect(await connect(required.url, { key: 'bsk_not-a-real-key' })).not.toBe('open');
    expect(await connect(required.url, { key: await required.createKey('read') })).toBe('open');
  });

  it('EXPECTED FAILURE - AUTH=local: a local client connects without a key, a page of another origin or a rebound Host does not', async () => {
    expect(await connect(local.url)).toBe('open');
    const port = new URL(local.url).port;
    expect(await connect(local.url, { origin: `http://127.0.0.1:${port}` })).toBe('open');
    expect(await connect(local.url, { origin: 'https://evil.example' })).not.toBe('open');
    expect(await connect(local.url, { host: `rebound.example:${port}` })).not.toBe('open');
  });
});
