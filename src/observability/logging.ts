// Structured logs (pino): the process logger, which Fastify uses too. Keys are redacted at the
// logger, whatever a caller passes in. The line per GraphQL operation is a plugin's
// (graphql/plugins/operation-log.ts).
import { pino, type Logger } from 'pino';

export interface LoggerOptions {
  /** Human-readable lines (pino-pretty, loaded only then); JSON lines otherwise. */
  pretty?: boolean;
  /** Where lines go instead of stdout (tests collect them). */
  destination?: pino.DestinationStream;
}

export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const settings: pino.LoggerOptions = {
    level,
    redact: {
      paths: [
        'authorization',
        '*.authorization',
        'headers.authorization',
        '*.headers.authorization',
        'apiKey',
        '*.apiKey',
      ],
      censor: '[REDACTED]',
    },
  };
  if (options.pretty && !options.destination) {
    return pino({ ...settings, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  // Written asynchronously (a line per operation must not cost a blocking write each): lines
  // that arrive while a write is in flight go out together. main.ts flushes before exiting.
  return pino(settings, options.destination ?? pino.destination({ dest: 1, sync: false }));
}
