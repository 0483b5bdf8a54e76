import pino, { type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger } from 'pino';

/** JSON lines on stdout; one per request, plus lifecycle and error events. */
export function createLogger(config: Config['log'], destination?: pino.DestinationStream): Logger {
  return pino({ level: config.level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? pino.destination({ sync: false }));
}
