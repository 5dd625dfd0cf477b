import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));
// Where `npm run dev:web` forwards API calls (run `npm start` alongside it).
const api = process.env.BLIP_API_URL ?? 'http://127.0.0.1:4000';

/**
 * The web page: Preact + plain CSS, built into web/dist, which the service serves at `/`
 * (WEB_DIR, default web/dist). `npm run build:web` builds it; the root postinstall runs that.
 */
export default defineConfig({
  root,
  base: '/',
  // Preact's automatic JSX runtime (Vite 8 transforms TS/JSX with Oxc).
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: false,
  },
  server: {
    // ws: the jobUpdates subscription (graphql-ws) shares /graphql.
    proxy: { '/graphql': { target: api, ws: true }, '/images': api, '/healthz': api },
  },
});
