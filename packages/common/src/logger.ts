import pino from 'pino';

/** Tandem's structured logger (pino). */
export type Logger = pino.Logger;

/** Paths redacted from every log line, wherever they appear. */
export const REDACTED_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'password',
  '*.password',
  'apiKey',
  '*.apiKey',
  'secret',
  '*.secret',
  // Redis URLs may carry a password; per-run credentials and request headers carry tokens.
  'redisUrl',
  '*.redisUrl',
  'credentials',
  '*.credentials',
  'headers.cookie',
  '*.headers.cookie',
];

/** Options for {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Component name, the `name` field of every line. */
  name: string;
  /** @default 'info' */
  level?: string;
  /** Where lines go; @default stderr (stdout is for machine-readable output). */
  destination?: pino.DestinationStream;
}

/** A structured pino logger with secrets redacted; components take `.child({...})`. */
export function createLogger(options: CreateLoggerOptions): Logger {
  const pinoOptions: pino.LoggerOptions = {
    name: options.name,
    level: options.level ?? 'info',
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return pino(pinoOptions, options.destination ?? pino.destination(2));
}

/** A logger that drops everything, for tests and library defaults. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
