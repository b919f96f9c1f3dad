#!/usr/bin/env node
/**
 * The `candle-server` bin: the only code that touches `process` (arguments, environment,
 * signals, exit codes). Everything else is handed to the commands through a CliContext.
 *
 * Exit codes: 0 done; 1 failed (start failed, a download day had ERROR, an unexpected error);
 * 2 bad input (unknown command or option, invalid rule); 130 / 143 a second SIGINT / SIGTERM
 * stopped the process at once.
 *
 * @example
 * ```sh
 * candle-server --help
 * candle-server start --config config/spot.json
 * ```
 */
import { readFileSync } from 'node:fs';
import { CandleServerError } from '../errors.js';
import { usageError, type CliContext, type CommandRunner } from './args.js';
import { createCliLogger } from './logger.js';

// Each command's module is loaded only when it runs: `--help` and `inspect` stay quick to start.
const COMMANDS: ReadonlyMap<string, { summary: string; load: () => Promise<CommandRunner> }> = new Map([
  [
    'start',
    { summary: 'run the candle server (HTTP API when HTTP_PORT is set)', load: async () => (await import('./commands/start.js')).runStart },
  ],
  [
    'sim',
    {
      summary: 'run the simulated Binance exchange, for offline use and demos',
      load: async () => (await import('./commands/sim.js')).runSim,
    },
  ],
  [
    'download',
    { summary: 'write the daily candle files of past days', load: async () => (await import('./commands/download.js')).runDownload },
  ],
  [
    'inspect',
    {
      summary: 'show a snapshot or a daily file as a table, CSV or JSON',
      load: async () => (await import('./commands/inspect.js')).runInspect,
    },
  ],
]);

// Errors that mean "the input was wrong": exit 2 with one line, no stack.
const USAGE_CODES = new Set(['INVALID_CONFIG', 'INVALID_ARGUMENT']);

const EXIT_ON_SECOND_SIGNAL: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };

function globalHelp(): string {
  const width = Math.max(...[...COMMANDS.keys()].map((name) => name.length));
  const lines = [
    'Usage: candle-server <command> [options]',
    '',
    'Keeps the last N Binance candles of many symbols in memory, always current, within the request-weight budget.',
    '',
    'Commands:',
    ...[...COMMANDS].map(([name, { summary }]) => `  ${name.padEnd(width)}  ${summary}`),
    '',
    'Options:',
    '  -h, --help     show this help (also: candle-server <command> --help)',
    '  -v, --version  print the version',
  ];
  return `${lines.join('\n')}\n`;
}

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return manifest.version ?? 'unknown';
}

/** One line for the terminal: a multi-line ConfigError becomes `invalid ...: A: ...; B: ...`. */
function oneLine(message: string): string {
  const [head = '', ...items] = message.split('\n').map((line) => line.trim());
  if (items.length === 0) return head;
  return `${head} ${items.map((item) => item.replace(/^- /, '')).join('; ')}`;
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(globalHelp());
    return 2;
  }
  if (name === '--help' || name === '-h') {
    process.stdout.write(globalHelp());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS.get(name);
  if (command === undefined) {
    const what = name.startsWith('-') ? `unknown option ${name}` : `unknown command ${JSON.stringify(name)}`;
    throw usageError({ name: '' }, `${what}; expected one of ${[...COMMANDS.keys()].join(', ')}`);
  }

  const stop = new AbortController();
  const force = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      stop.abort(new Error(`${signal} received`));
      return;
    }
    force.abort(new Error(`second ${signal} received`));
    process.exit(EXIT_ON_SECOND_SIGNAL[signal] ?? 1);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const context: CliContext = {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    stop: stop.signal,
    force: force.signal,
    notifyReady: typeof process.send === 'function' ? () => process.send?.('ready') : undefined,
  };
  const run = await command.load();
  return run(rest, context);
}

function exit(code: number): void {
  // Let the last log lines reach a pipe before exiting.
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

const fatal = (error: unknown): void => {
  createCliLogger({ level: 'fatal', stream: process.stderr, pretty: false }).fatal({ err: error }, 'uncaught error; exiting');
  process.exit(1);
};
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

main(process.argv.slice(2)).then(exit, (error: unknown) => {
  if (error instanceof CandleServerError && USAGE_CODES.has(error.code)) {
    process.stderr.write(`candle-server: ${oneLine(error.message)}\n`);
    exit(2);
    return;
  }
  process.stderr.write(`candle-server: ${error instanceof Error ? oneLine(error.message) : String(error)}\n`);
  exit(1);
});
