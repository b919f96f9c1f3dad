/**
 * Command-line parsing for the `candle-server` bin: a thin layer over `node:util` parseArgs that
 * adds per-command help text and turns every mistake (unknown option, missing value, bad number)
 * into one InvalidArgumentError whose message is the single line the user sees.
 *
 * @example
 * ```ts
 * const spec: CommandSpec = {
 *   name: 'inspect', summary: 'Show a snapshot or daily file', usage: 'inspect FILE [options]',
 *   options: { rows: { type: 'string', value: 'N', description: 'rows per symbol' } },
 * };
 * const parsed = parseCommand(spec, ['snap.bin', '--rows', '5']);
 * parsed.positionals; // ['snap.bin']
 * integerOption(parsed.values, 'rows', { min: 1 }); // 5
 * ```
 */
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../errors.js';

/** One option of a command. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** Placeholder shown in help, e.g. `FILE`. */
  readonly value?: string;
  readonly description: string;
}

/** A command: its name, help text and options (`--help` is added to every command). */
export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Most positional arguments accepted (default 0). */
  readonly maxPositionals?: number;
  /** Lines shown under "Examples:" in help. */
  readonly examples?: readonly string[];
}

/** Parsed option values: strings or booleans, absent when not given. */
export type OptionValues = Readonly<Record<string, string | boolean | undefined>>;

/** The result of {@link parseCommand}. */
export interface ParsedCommand {
  readonly values: OptionValues;
  readonly positionals: readonly string[];
  readonly isHelp: boolean;
}

const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', description: 'show this help' };

/**
 * Parses `argv` (the arguments after the command name) against `spec`. Throws
 * InvalidArgumentError naming the command and what was wrong.
 *
 * @example
 * ```ts
 * parseCommand(spec, ['--nope']); // throws: inspect: unknown option --nope (see candle-server inspect --help)
 * ```
 */
export function parseCommand(spec: CommandSpec, argv: readonly string[]): ParsedCommand {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, option] of Object.entries({ ...spec.options, help: HELP_OPTION })) {
    options[name] = option.short === undefined ? { type: option.type } : { type: option.type, short: option.short };
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw usageError(spec, describeParseError(error));
  }
  const isHelp = parsed.values.help === true;
  const max = spec.maxPositionals ?? 0;
  if (!isHelp && parsed.positionals.length > max) {
    const extra = parsed.positionals
      .slice(max)
      .map((p) => JSON.stringify(p))
      .join(' ');
    throw usageError(spec, `unexpected argument ${extra}; expected ${max === 0 ? 'options only' : `at most ${max}`}`);
  }
  return { values: parsed.values, positionals: parsed.positionals, isHelp };
}

/**
 * The usage error of a command: one line ending with where to find help.
 *
 * @example
 * ```ts
 * throw usageError(spec, 'FILE is missing');
 * ```
 */
export function usageError(spec: Pick<CommandSpec, 'name'>, detail: string): InvalidArgumentError {
  const where = spec.name === '' ? 'candle-server --help' : `candle-server ${spec.name} --help`;
  return new InvalidArgumentError(`${spec.name === '' ? '' : `${spec.name}: `}${detail} (see ${where})`);
}

/**
 * The help text of a command.
 *
 * @example
 * ```ts
 * process.stdout.write(formatHelp(spec));
 * ```
 */
export function formatHelp(spec: CommandSpec): string {
  const rows = Object.entries({ ...spec.options, help: HELP_OPTION }).map(([name, option]) => {
    const flag = `${option.short === undefined ? '    ' : `-${option.short}, `}--${name}${option.value === undefined ? '' : ` ${option.value}`}`;
    return [flag, option.description] as const;
  });
  const width = Math.max(...rows.map(([flag]) => flag.length));
  const lines = [`Usage: candle-server ${spec.usage}`, '', spec.summary, '', 'Options:'];
  for (const [flag, description] of rows) lines.push(`  ${flag.padEnd(width)}  ${description}`);
  if (spec.examples !== undefined && spec.examples.length > 0) {
    lines.push('', 'Examples:', ...spec.examples.map((example) => `  ${example}`));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A string option, or undefined when not given.
 *
 * @example
 * ```ts
 * const file = stringOption(parsed.values, 'config');
 * ```
 */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * An integer option within bounds, or undefined when not given.
 *
 * @example
 * ```ts
 * integerOption(parsed.values, 'rows', { min: 1 }); // '--rows 0' throws: --rows: expected an integer >= 1, got "0"
 * ```
 */
export function integerOption(values: OptionValues, name: string, bounds: { min?: number; max?: number } = {}): number | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  const value = Number(text);
  const min = bounds.min ?? Number.MIN_SAFE_INTEGER;
  const max = bounds.max ?? Number.MAX_SAFE_INTEGER;
  if (!/^[+-]?\d+$/.test(text.trim()) || value < min || value > max) {
    const range = bounds.max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
    throw new InvalidArgumentError(`--${name}: expected an integer ${range}, got ${JSON.stringify(text)}`);
  }
  return value;
}

/**
 * A comma-separated list option (blank items dropped), or undefined when not given.
 *
 * @example
 * ```ts
 * listOption({ symbols: 'BTCUSDT, ETHUSDT' }, 'symbols'); // ['BTCUSDT', 'ETHUSDT']
 * ```
 */
export function listOption(values: OptionValues, name: string): string[] | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  const items = text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  if (items.length === 0) throw new InvalidArgumentError(`--${name}: expected a comma-separated list, got ${JSON.stringify(text)}`);
  return items;
}

function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // parseArgs explains at length ("To specify a positional argument starting with a '-'..."); keep the first sentence.
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (unknown !== null) return `unknown option ${unknown[1]}`;
  const missing = /Option '([^']+)' argument missing/.exec(message);
  if (missing !== null) return `option ${missing[1]} needs a value`;
  return message.split('\n')[0]?.replace(/\. To specify.*$/, '') ?? message;
}

/**
 * What a command gets from the process, handed over by `main.ts` (the only code that touches
 * `process`): output streams, the environment, stop requests and the PM2 ready message.
 *
 * @example
 * ```ts
 * const code = await runInspect(['snap.bin', '--format', 'csv'], context);
 * ```
 */
export interface CliContext {
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Aborted by the first SIGTERM or SIGINT: finish gracefully. */
  readonly stop: AbortSignal;
  /** Aborted by a second signal: stop at once (the process exits right after). */
  readonly force: AbortSignal;
  /** Tells a supervisor (PM2) that the service is ready; undefined when none listens. */
  readonly notifyReady: (() => void) | undefined;
}

/** A command's entry point: parses its arguments and resolves with the exit code. */
export type CommandRunner = (argv: readonly string[], context: CliContext) => Promise<number>;

/**
 * Resolves when `signal` aborts (at once when it already has).
 *
 * @example
 * ```ts
 * await untilAborted(context.stop);
 * ```
 */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/**
 * Parses a command's arguments; on `--help` writes the help to stdout and returns undefined, so
 * the command returns exit code 0.
 *
 * @example
 * ```ts
 * const parsed = parseOrHelp(spec, argv, context);
 * if (parsed === undefined) return 0;
 * ```
 */
export function parseOrHelp(spec: CommandSpec, argv: readonly string[], context: Pick<CliContext, 'stdout'>): ParsedCommand | undefined {
  const parsed = parseCommand(spec, argv);
  if (!parsed.isHelp) return parsed;
  context.stdout.write(formatHelp(spec));
  return undefined;
}
