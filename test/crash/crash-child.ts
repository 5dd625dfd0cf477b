// A real server process for the crash test: the application with the fake engine (slowed down so
// kills land mid-ingest; FAKE_MODEL_ID names another model). Prints "READY <port>" once listening.
import { startApplication } from '../../src/app.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/lib/logger.js';
import { FakeBlipEngine } from '../helpers/fake-blip-engine.js';

const config = loadConfig(process.env);
const app = await startApplication(config, new FakeBlipEngine({ delayMs: Number(process.env.FAKE_DELAY_MS ?? 0), ...(process.env.FAKE_MODEL_ID ? { modelId: process.env.FAKE_MODEL_ID } : {}) }), createLogger(config.logLevel));
process.stdout.write(`READY ${app.port}\n`);
process.on('SIGTERM', () => void app.stop().then(() => process.exit(0)));
