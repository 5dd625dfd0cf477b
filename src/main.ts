import { startApplication } from './app.js';
import { ConfigError, loadConfig } from './config/load-config.js';
import { createLogger } from './lib/logger.js';
import { createBlipEngine } from './ml/create-blip-engine.js';
import { DataDirMismatchError } from './services/data-dir-binding.service.js';

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
