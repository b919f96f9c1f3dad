/**
 * The CLI's logger: pino JSON lines (one object per line, for log shippers, PM2 and journald),
 * or the same records made readable by pino-pretty when the output is a terminal. Both write in
 * the main thread, so nothing is lost when the process exits right after a last line.
 *
 * @example
 * ```ts
 * const logger = createCliLogger({ level: 'info', stream: process.stdout });
 * logger.child({ component: 'cli' }).info({ url }, 'HTTP API listening');
 * ```
 */
import type { Writable } from 'node:stream';
import { pino } from 'pino';
import PinoPretty from 'pino-pretty';
import type { Logger } from '../log.js';

/** Options of {@link createCliLogger}. */
export interface CliLoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace or silent. */
  readonly level: string;
  /** Where lines go; a TTY gets pretty lines unless `pretty` says otherwise. */
  readonly stream: Writable & { isTTY?: boolean };
  /** Force pretty (true) or JSON (false) output; default: pretty on a TTY. */
  readonly pretty?: boolean;
}

/**
 * A pino logger writing JSON lines, or pretty lines on a terminal.
 *
 * @example
 * ```ts
 * const logger = createCliLogger({ level: rule.LOG_LEVEL, stream: process.stdout, pretty: false });
 * ```
 */
export function createCliLogger(options: CliLoggerOptions): Logger {
  const isPretty = options.pretty ?? options.stream.isTTY === true;
  // No pid/hostname: PM2 and journald already say which process wrote a line.
  const settings = { level: options.level, base: {}, timestamp: pino.stdTimeFunctions.isoTime };
  if (!isPretty) return pino(settings, options.stream);
  const pretty = PinoPretty({
    destination: options.stream,
    colorize: true,
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    messageFormat: '{if component}[{component}{if symbol} {symbol}{end}] {end}{msg}',
  });
  return pino(settings, pretty);
}
