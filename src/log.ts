/**
 * Logging: library code takes a pino logger and defaults to a silent one; child loggers carry
 * `{ component, symbol }`.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** A logger that writes nothing: the library default. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
