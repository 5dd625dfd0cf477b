import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// The layering rules of eslint.config.js, on source text placed where it would live: each refusal
// names its rule, and the same import is allowed where the layering allows it. A resolver that
// stopped resolving './x.js' to './x.ts' would make the path rules pass vacuously; these catch that.
const eslint = new ESLint({ ignore: false });

async function rulesBroken(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${code}\nexport {};\n`, { filePath });
  return (result?.messages ?? []).map((m) => m.ruleId ?? m.message);
}

describe('layering rules', () => {
  it('EXPECTED FAILURE - src/ml/ importing a service, the transport or the Prisma clients is refused', async () => {
    for (const spec of ['../services/search.service.js', '../graphql/format-error.js', '../generated/prisma-sqlite/client.js']) {
      expect(await rulesBroken('src/ml/probe.ts', `import '${spec}';`), spec).toEqual(['import-x/no-restricted-paths']);
    }
    expect(await rulesBroken('src/ml/probe.ts', `import express from 'express';`)).toContain('no-restricted-imports');
    expect(await rulesBroken('src/ml/probe.ts', `import '@prisma/client';`)).toEqual(['no-restricted-imports']);
    expect(await rulesBroken('src/ml/probe.ts', `import '../domain/errors.js';`)).toEqual([]);
  });

  it('EXPECTED FAILURE - src/cli/client/ (a client of the API) importing the server or its packages is refused', async () => {
    for (const spec of ['../../services/ingest.service.js', '../../domain/errors.js', '../../graphql/context.js']) {
      expect(await rulesBroken('src/cli/client/probe.ts', `import '${spec}';`), spec).toEqual(['import-x/no-restricted-paths']);
    }
    expect(await rulesBroken('src/cli/client/probe.ts', `import '@prisma/client';`)).toEqual(['no-restricted-imports']);
    expect(await rulesBroken('src/cli/client/probe.ts', `import './api-client.js';`)).toEqual([]);
    // The admin commands open the database as the server does: that is their job.
    expect(await rulesBroken('src/cli/admin/probe.ts', `import '../../services/api-key.service.js';`)).toEqual([]);
  });

  it('EXPECTED FAILURE - src/domain/ importing any other part of the project is refused', async () => {
    expect(await rulesBroken('src/domain/probe.ts', `import '../lib/invariant.js';`)).toEqual(['import-x/no-restricted-paths']);
    expect(await rulesBroken('src/domain/probe.ts', `import '../ml/errors.js';`)).toEqual(['import-x/no-restricted-paths']);
    expect(await rulesBroken('src/domain/probe.ts', `import './errors.js';`)).toEqual([]);
  });

  it('EXPECTED FAILURE - onnxruntime-node outside src/ml/runtime/, sharp outside the image decoder', async () => {
    expect(await rulesBroken('src/ml/blip/probe.ts', `import 'onnxruntime-node';`)).toEqual(['no-restricted-imports']);
    expect(await rulesBroken('src/services/probe.ts', `import 'onnxruntime-node';`)).toEqual(['no-restricted-imports']);
    expect(await rulesBroken('src/ml/runtime/probe.ts', `import 'onnxruntime-node';`)).toEqual([]);
    expect(await rulesBroken('src/repositories/probe.ts', `import 'sharp';`)).toEqual(['no-restricted-imports']);
    expect(await rulesBroken('src/ml/preprocess/probe.ts', `import 'sharp';`)).toEqual(['no-restricted-imports']);
    expect(await rulesBroken('src/ml/preprocess/image-decoder.ts', `import 'sharp';`)).toEqual([]);
  });

  it('EXPECTED FAILURE - services reaching the transport, storage reaching services, anyone importing main.ts', async () => {
    expect(await rulesBroken('src/services/probe.ts', `import '../graphql/context.js';`)).toEqual(['import-x/no-restricted-paths']);
    expect(await rulesBroken('src/services/probe.ts', `import 'graphql';`)).toEqual(['no-restricted-imports']);
    expect(await rulesBroken('src/repositories/probe.ts', `import '../services/image.service.js';`)).toEqual(['import-x/no-restricted-paths']);
    expect(await rulesBroken('src/graphql/probe.ts', `import '../repositories/database.js';`)).toEqual(['import-x/no-restricted-paths']);
    expect(await rulesBroken('src/http/probe.ts', `import '../main.js';`)).toEqual(['import-x/no-restricted-paths']);
    expect(await rulesBroken('src/services/probe.ts', `import '../repositories/image.repository.js';`)).toEqual([]);
  });

  it('EXPECTED FAILURE - an import cycle is refused', async () => {
    const [result] = await eslint.lintFiles(['test/fixtures/lint-cycle/a.ts']);
    expect(result?.messages.map((m) => m.ruleId)).toEqual(['import-x/no-cycle']);
  });
});
