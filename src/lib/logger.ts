import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines (for log shippers), or pino-pretty's coloured lines when `pretty` (src/main.ts: stdout
 * is a terminal). pino-pretty runs in pino's transport thread, so formatting never blocks requests.
 */
export function createLogger(level: string, options: { pretty?: boolean } = {}): Logger {
  return pino({
    level,
    base: { service: 'blip-search' },
    ...(options.pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } } : {}),
  });
}
