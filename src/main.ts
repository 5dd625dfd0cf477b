import { existsSync } from 'node:fs';
import path from 'node:path';
import { startApplication } from './app.js';
import { ConfigError, loadConfig } from './config/load-config.js';
import { createLogger } from './lib/logger.js';
import { createBlipEngine } from './ml/create-blip-engine.js';
import { readModelFamily } from './ml/blip2/blip2-manifest.js';
import { createBlip2Engine } from './ml/blip2/onnx-blip2-engine.js';
import { DataDirMismatchError } from './services/data-dir-binding.service.js';

/** The bundled scene BLIP-2 (docs/blip2.md), the default answerer; VQA_MODEL_DIR overrides it. */
const BUNDLED_BLIP2 = path.resolve('models/blip2-scenes');

/** Composition root: config -> engine -> application; SIGTERM/SIGINT stop it gracefully. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.logLevel, { pretty: process.stdout.isTTY === true });
  const { models, limits } = config;
  const app = await startApplication(
    config,
    (metrics) => createBlipEngine({
      modelDir: models.modelDir,
      workers: models.workers,
      threads: models.threads,
      itmBatchSize: models.itmBatchSize,
      limits: { maxBytes: limits.maxUploadBytes, maxPixels: models.maxImagePixels },
      onJobDone: (graph, seconds) => metrics.inferenceDuration.observe({ graph }, seconds),
    }),
    log,
    {
      // VQA_MODEL_DIR: a BLIP-2 folder answers askImage by default; BLIP (MODEL_DIR) still embeds,
      // captions, re-ranks, and answers when a question names it.
      answerers: async () => {
        // Unset: the bundled BLIP-2 when its folder is there. Set to MODEL_DIR: BLIP answers.
        const vqaDir = models.vqaModelDir ?? (existsSync(path.join(BUNDLED_BLIP2, 'manifest.json')) ? BUNDLED_BLIP2 : null);
        if (vqaDir === null || vqaDir === models.modelDir) return [];
        const family = await readModelFamily(vqaDir);
        if (family !== 'blip2') throw new Error(`VQA_MODEL_DIR ${vqaDir} holds a ${family} model; it must be a BLIP-2 folder (MODEL_DIR is the BLIP one)`);
        return [await createBlip2Engine({
          modelDir: vqaDir,
          workers: 1,
          ...(models.threads ? { threads: models.threads } : {}),
          limits: { maxBytes: limits.maxUploadBytes, maxPixels: models.maxImagePixels },
        })];
      },
      defaultAnswerer: true,
    },
  );
  let signals = 0;
  const shutdown = (signal: string) => {
    if (signals++ > 0) process.exit(1);
    log.info({ signal }, 'shutting down');
    app.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // A bug in one request must not take the service down; log it loudly instead.
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  // A refused start is a configuration problem: its message says what to check, a stack would not.
  if (error instanceof DataDirMismatchError) {
    console.error(error.message);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
