/**
 * `candle-server inspect`: shows a snapshot or a daily candle file as a readable table, CSV or
 * JSON, with per-symbol coverage and gaps.
 *
 * @example
 * ```sh
 * candle-server inspect cache/spot/snapshot-SPOT-1m-20240125T101500Z.bin --rows 5
 * candle-server inspect candles/UM-AmericaNew_York-1m/2024-01/2024-01-24/BTCUSDT.csv --format json
 * ```
 */
import { inspectFile } from '../inspect-report.js';
import { integerOption, parseOrHelp, stringOption, usageError, type CliContext, type CommandSpec } from '../args.js';

/** Output formats of `inspect`. */
export const INSPECT_FORMATS = ['table', 'csv', 'json'] as const;

/** The `inspect` command's options and help. */
export const inspectSpec: CommandSpec = {
  name: 'inspect',
  summary: 'Shows a snapshot or a daily candle file as a table, CSV or JSON, with per-symbol coverage and gaps.',
  usage: 'inspect FILE [--format table|csv|json] [--symbol SYMBOL] [--rows N]',
  maxPositionals: 1,
  options: {
    format: { type: 'string', short: 'f', value: 'FORMAT', description: `${INSPECT_FORMATS.join(', ')} (default table)` },
    symbol: { type: 'string', short: 's', value: 'SYMBOL', description: 'only this symbol (snapshots hold many)' },
    rows: { type: 'string', short: 'n', value: 'N', description: 'newest candle rows shown per symbol' },
  },
  examples: ['candle-server inspect cache/snapshot-SPOT-1m-20240125T101500Z.bin --symbol BTCUSDT --rows 5'],
};

/**
 * Runs `inspect`; resolves with the exit code.
 *
 * @example
 * ```ts
 * const code = await runInspect(['cache/snapshot.bin', '--format', 'json'], context);
 * ```
 */
export async function runInspect(argv: readonly string[], context: CliContext): Promise<number> {
  const parsed = parseOrHelp(inspectSpec, argv, context);
  if (parsed === undefined) return 0;
  const file = parsed.positionals[0];
  if (file === undefined) throw usageError(inspectSpec, 'FILE is missing: expected the path of a snapshot or a daily candle file');
  const format = stringOption(parsed.values, 'format') ?? 'table';
  if (!isInspectFormat(format))
    throw usageError(inspectSpec, `--format ${JSON.stringify(format)}: expected one of ${INSPECT_FORMATS.join(', ')}`);
  const symbol = stringOption(parsed.values, 'symbol');
  const rows = integerOption(parsed.values, 'rows', { min: 0 });
  const text = await inspectFile(file, { format, ...(symbol === undefined ? {} : { symbol }), ...(rows === undefined ? {} : { rows }) });
  context.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  return 0;
}

function isInspectFormat(value: string): value is (typeof INSPECT_FORMATS)[number] {
  return (INSPECT_FORMATS as readonly string[]).includes(value);
}
