import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load-config.js';

describe('loadConfig', () => {
  it('defaults: SQLite under ./data, port 4000, seeding on', () => {
    const config = loadConfig({});
    expect(config.http.port).toBe(4000);
    expect(config.dataDir).toBe(path.resolve('data'));
    expect(config.db).toEqual({ provider: 'sqlite', url: `file:${path.resolve('data/blip-search.db')}`, filePath: path.resolve('data/blip-search.db') });
    expect(config.seed.enabled).toBe(true);
    expect(Object.isFrozen(config) && Object.isFrozen(config.limits)).toBe(true);
  });

  it('safe network defaults: loopback only, AUTH=local, no other origin', () => {
    const config = loadConfig({});
    expect(config.http.host).toBe('127.0.0.1');
    expect(config.auth.mode).toBe('local');
    expect(config.http.corsOrigins).toEqual([]);
    expect(config.http.allowedHosts).toEqual(['localhost', '127.0.0.1', '[::1]']);
    expect(loadConfig({ ALLOWED_HOSTS: 'Photos.LAN, nas' }).http.allowedHosts).toEqual(['localhost', '127.0.0.1', '[::1]', 'photos.lan', 'nas']);
  });

  it('EXPECTED FAILURE - AUTH=off on a non-loopback HOST refuses to start unless ALLOW_INSECURE=true', () => {
    expect(() => loadConfig({ AUTH: 'off', HOST: '0.0.0.0' })).toThrow(/AUTH=off with HOST=0.0.0.0/);
    expect(loadConfig({ AUTH: 'off', HOST: '0.0.0.0', ALLOW_INSECURE: 'true' }).auth.mode).toBe('off');
    expect(loadConfig({ AUTH: 'off', HOST: '127.0.0.1' }).auth.mode).toBe('off');
    expect(loadConfig({ AUTH: 'local', HOST: '0.0.0.0' }).http.host).toBe('0.0.0.0');
  });

  it("EXPECTED FAILURE - CORS_ORIGIN '*' needs AUTH=required; each origin must be one", () => {
    expect(() => loadConfig({ CORS_ORIGIN: '*' })).toThrow(/AUTH=required/);
    expect(loadConfig({ CORS_ORIGIN: '*', AUTH: 'required' }).http.corsOrigins).toEqual(['*']);
    expect(() => loadConfig({ CORS_ORIGIN: 'https://a.example/path' })).toThrow(/not an origin/);
    expect(loadConfig({ CORS_ORIGIN: 'https://a.example, http://b.example:8080' }).http.corsOrigins).toEqual(['https://a.example', 'http://b.example:8080']);
  });

  it('re-ranks by default as deep as the bundled model was evaluated (its manifest chooses; eval.json figures are what a search gets)', () => {
    const evaluated = JSON.parse(fs.readFileSync('models/blip-scenes/eval.json', 'utf8')) as { precision_at_10: { rerank_candidates: number } };
    const manifest = JSON.parse(fs.readFileSync('models/blip-scenes/manifest.json', 'utf8')) as { search: { defaultCandidates: number } };
    expect(manifest.search.defaultCandidates).toBe(evaluated.precision_at_10.rerank_candidates);
    expect(loadConfig({}).search.defaultCandidates).toBeUndefined();
    expect(loadConfig({ SEARCH_CANDIDATES: '32' }).search.defaultCandidates).toBe(32);
  });

  it('PostgreSQL when DATABASE_URL is postgres://, with its ?schema=', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://u@h:5432/db?schema=s1', SEED_SAMPLES: 'false' });
    expect(config.db).toEqual({ provider: 'postgresql', url: 'postgres://u@h:5432/db?schema=s1', schema: 's1' });
    expect(config.seed.enabled).toBe(false);
  });

  it('EXPECTED FAILURE - lists every invalid variable at once', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', SEED_SAMPLES: 'maybe', MAX_PAGE_SIZE: '0' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues.join('\n');
    for (const name of ['PORT', 'DATABASE_URL', 'SEED_SAMPLES', 'MAX_PAGE_SIZE']) expect(issues).toContain(name);
  });
});
