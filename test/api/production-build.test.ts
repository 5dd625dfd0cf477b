import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, ROOT, startService, type ServiceProcess } from '../e2e/service.js';

/**
 * The deployment path of the README: `npm run build` compiles the service to dist/, and
 * `node dist/main.js` runs it with production dependencies only (no tsx, no TypeScript).
 */
const DIST = path.join(ROOT, 'dist');

function jsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? jsFiles(p) : e.name.endsWith('.js') ? [p] : [];
  });
}

/** Package names a compiled file imports: static, dynamic and re-exports; relative paths excluded. */
function importedPackages(code: string): string[] {
  const statics = [...code.matchAll(/^\s*(?:import\s*['"]|(?:import|export)\b[^'";]*?\bfrom\s*['"])([^'"]+)['"]/gm)].map((m) => m[1]!);
  const dynamics = [...code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!);
  const specs = [...statics, ...dynamics];
  return specs
    .filter((s) => !s.startsWith('.') && !s.startsWith('/'))
    .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
}

describe('production build (node dist/main.js)', () => {
  let service: ServiceProcess | undefined;

  beforeAll(() => {
    fs.rmSync(DIST, { recursive: true, force: true });
    execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' });
  }, 120_000);

  afterAll(async () => {
    await service?.stop();
  }, 30_000);

  it('imports only node built-ins and production dependencies', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const allowed = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
    const files = jsFiles(DIST);
    expect(files).toContain(path.join(DIST, 'main.js'));
    expect(files).toContain(path.join(DIST, 'ml', 'runtime', 'inference-worker.js'));
    const offending = files.flatMap((f) =>
      importedPackages(fs.readFileSync(f, 'utf8'))
        .filter((p) => !p.startsWith('node:') && !allowed.has(p))
        .map((p) => `${path.relative(ROOT, f)} imports ${p}`),
    );
    expect(offending).toEqual([]);
  });

  it('serves the API with the bundled model: ingest, caption, search', async () => {
    service = await startService(path.join(ROOT, 'models', 'blip-scenes'), 90_000, { bin: process.execPath, args: ['dist/main.js'] });
    // A sample scene and its true caption (samples/samples.json): the search uses the truth, not
    // the model's own caption, so the test does not depend on the caption being right.
    const sample = (JSON.parse(fs.readFileSync(path.join(ROOT, 'samples', 'samples.json'), 'utf8')) as Array<{ file: string; caption: string }>)[2]!;
    const png = fs.readFileSync(path.join(ROOT, 'samples', sample.file));
    const ingested = await gql<{ ingestImage: { created: boolean; image: { id: string; caption: string } } }>(
      service.url,
      `mutation($input: IngestImageInput!) { ingestImage(input: $input) { created image { id caption } } }`,
      { input: { base64: png.toString('base64') } },
    );
    expect(ingested.ingestImage.created).toBe(true);
    expect(ingested.ingestImage.image.caption).toMatch(/background/);
    const found = await gql<{ searchImages: { edges: Array<{ node: { id: string }; itmScore: number | null }> } }>(
      service.url,
      `query($text: String!) { searchImages(text: $text, first: 5) { edges { node { id } itmScore } } }`,
      { text: sample.caption },
    );
    expect(found.searchImages.edges[0]?.node.id).toBe(ingested.ingestImage.image.id);
    expect(found.searchImages.edges[0]?.itmScore).toBeGreaterThan(0.5);
    // The inference worker ran from its compiled file (a missing inference-worker.js fails the ingest above).
    expect(service.logs.join('\n')).not.toMatch(/"level":50/);
  }, 120_000);
});
