/**
 * A pino logger whose lines land in an array, so tests can assert on what operators would read.
 *
 * @example
 * ```ts
 * const log = captureLog();
 * doWork({ logger: log.logger });
 * expect(log.messages()).toContain('COMPLETE PREPARE candle_map');
 * ```
 */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export interface CapturedLog {
  readonly logger: Logger;
  /** Every line written so far, parsed. */
  lines(): Array<Record<string, unknown>>;
  /** The `msg` of every line. */
  messages(): string[];
}

export function captureLog(level: pino.LevelWithSilent = 'debug'): CapturedLog {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      raw.push(String(chunk));
      callback();
    },
  });
  const logger = pino({ level }, stream);
  const lines = (): Array<Record<string, unknown>> =>
    raw
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, messages: () => lines().map((line) => String(line.msg)) };
}
