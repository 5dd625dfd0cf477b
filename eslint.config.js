// ESLint (flat config): typescript-eslint's recommended rules, no import cycles, and the layering
// of CONTRIBUTING.md ("Code layout"). Layers are checked on resolved paths (import-x's
// no-restricted-paths), native and transport packages by name (no-restricted-imports).
import js from '@eslint/js';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import reactHooks from 'eslint-plugin-react-hooks';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

// Packages that belong to one layer each (design: one module per native dependency).
const TRANSPORT = ['graphql', 'graphql-*', '@apollo/*', '@as-integrations/*', 'express', 'cors', 'helmet'];
// Storage clients too: the S3 SDK backs the blob store (src/repositories/s3-blob-store.ts).
const DATABASE = ['@prisma/*', 'better-sqlite3', 'pg', 'ioredis', '@aws-sdk/*'];
const INDEX = ['hnswlib-node'];
const ONNX = ['onnxruntime-node', 'onnxruntime-common'];
const SHARP = ['sharp'];

/** A no-restricted-imports pattern for package names (`*` within a segment), subpaths included. */
const only = (names, where) => ({
  regex: `^(?:${names.map((n) => n.replace(/[.+?^${}()|[\]\\/]/g, '\\$&').replace(/\*/g, '[^/]*')).join('|')})(?:/.*)?$`,
  message: `only ${where} imports this package (CONTRIBUTING.md, "Code layout")`,
});

/** no-restricted-imports for one part of src/: flat config replaces a rule's options per block, so each block lists all of its own. */
function packages(...groups) {
  return { 'no-restricted-imports': ['error', { patterns: groups }] };
}

const onnxOnlyInRuntime = only(ONNX, 'src/ml/runtime/');
const sharpOnlyInDecoder = only(SHARP, 'src/ml/preprocess/image-decoder.ts');
const noTransport = only(TRANSPORT, 'src/graphql/ and src/http/');
const noDatabase = only(DATABASE, 'src/repositories/');
const noIndex = only(INDEX, 'src/index/');

/** import-x/no-restricted-paths zones: `target` may not import from `from` (paths from the repo root). */
const zone = (target, from, message, except) => ({ target, from, message, ...(except ? { except } : {}) });
const ENTRY = ['./src/main.ts', './src/app.ts', './src/cli'];
const LAYERS = [
  zone('./src/domain', './src', 'src/domain/ imports nothing from the rest of the project', ['./domain']),
  zone('./src/lib', './src', 'src/lib/ imports nothing from the layers', ['./lib']),
  zone('./src/ml', ['./src/graphql', './src/http', './src/services', './src/repositories', './src/index', './src/generated', ...ENTRY],
    'src/ml/ knows nothing of transport, services, storage or the index'),
  zone('./src/index', ['./src/graphql', './src/http', './src/services', './src/repositories', './src/ml', './src/generated', ...ENTRY],
    'src/index/ knows nothing of transport, services, storage or inference'),
  zone('./src/repositories', ['./src/graphql', './src/http', './src/services', './src/ml', './src/index', ...ENTRY],
    'repositories own storage and nothing above or beside it'),
  zone('./src/services', ['./src/graphql', './src/http', './src/generated', ...ENTRY],
    'services do not know the transport or the generated Prisma clients'),
  zone(['./src/graphql', './src/http'], ['./src/repositories', './src/ml', './src/index', './src/generated'],
    'transport calls services; it does not reach storage, the index or inference'),
  zone('./src', './src/main.ts', 'nothing imports the composition root'),
  zone('./src/cli/client', './src', 'src/cli/client/ is a client of the GraphQL API: it imports nothing of the server', ['./cli/client']),
];

export default defineConfig(
  {
    ignores: ['node_modules/', 'dist/', 'web/dist/', '.cache/', 'data/', 'test-artifacts/', 'src/generated/',
      'src/graphql/__generated__/', 'tools/', 'models/', 'samples/', 'test/fixtures/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{ts,tsx,js,mjs}'],
    plugins: { 'import-x': importX },
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly' },
    },
    settings: {
      ...importX.flatConfigs.typescript.settings, // parse imported .ts files with typescript-eslint's parser
      // NodeNext sources import './x.js' for './x.ts'
      'import-x/resolver-next': [createNodeResolver({ extensionAlias: { '.js': ['.ts', '.tsx', '.js'] } })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-self-import': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // the page's Preact hooks follow React's rules
    files: ['web/src/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    rules: { 'react-hooks/rules-of-hooks': 'error', 'react-hooks/exhaustive-deps': 'error' },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: LAYERS }],
      ...packages(onnxOnlyInRuntime, sharpOnlyInDecoder),
    },
  },
  { files: ['src/services/**/*.ts'], rules: packages(onnxOnlyInRuntime, sharpOnlyInDecoder, noTransport, noDatabase, noIndex) },
  { files: ['src/graphql/**/*.ts', 'src/http/**/*.ts'], rules: packages(onnxOnlyInRuntime, sharpOnlyInDecoder, noDatabase, noIndex) },
  { files: ['src/repositories/**/*.ts'], rules: packages(onnxOnlyInRuntime, sharpOnlyInDecoder, noTransport, noIndex) },
  { files: ['src/index/**/*.ts'], rules: packages(onnxOnlyInRuntime, sharpOnlyInDecoder, noTransport, noDatabase) },
  { files: ['src/domain/**/*.ts', 'src/lib/**/*.ts'], rules: packages(onnxOnlyInRuntime, sharpOnlyInDecoder, noTransport, noDatabase, noIndex) },
  { files: ['src/cli/**/*.ts'], rules: packages(onnxOnlyInRuntime, sharpOnlyInDecoder, noTransport, noDatabase, noIndex) },
  { files: ['src/ml/**/*.ts'], rules: packages(onnxOnlyInRuntime, sharpOnlyInDecoder, noTransport, noDatabase, noIndex) },
  { files: ['src/ml/runtime/**/*.ts'], rules: packages(sharpOnlyInDecoder, noTransport, noDatabase, noIndex) },
  { files: ['src/ml/preprocess/image-decoder.ts'], rules: packages(onnxOnlyInRuntime, noTransport, noDatabase, noIndex) },
);
