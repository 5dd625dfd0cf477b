import fs from 'node:fs';
import { generate } from '@graphql-codegen/cli';
import { describe, expect, it } from 'vitest';
import config from '../../codegen.js';

describe('schema-first contract', () => {
  it('src/graphql/__generated__ matches schema.graphql (run `npm run codegen`)', async () => {
    const [output] = await generate(config, false);
    expect(output!.content).toBe(fs.readFileSync(output!.filename, 'utf8'));
  });
});
