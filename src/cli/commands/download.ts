/**
 * `candle-server download`: back-fills the daily candle files of a range of local days (in the
 * rule's TIMEZONE), taking them from the daily archives where they exist and from REST for the
 * rest, within the rule's weight budget. A progress bar goes to stderr (plain lines when stderr is
 * not a terminal); the `COMPLETE DOWNLOAD` summaries go to stdout. Exit 1 when a day had an ERROR.
 *
 * @example
 * ```sh
 * candle-server download --config config/um.json --symbols BTCUSDT,ETHUSDT --days 7
 * candle-server download --config config/spot.json --from 2024-01-01 --to 2024-01-31 --rest-only
 * ```
 */
import { InvalidArgumentError } from '../../errors.js';
import { addDays, assertDay, lastFullLocalDays, localDayOf } from '../../files/daily-layout.js';
import { loadCandleRule, type CandleRuleInput } from '../../rule.js';
import { DailyBackfill, type DaySummary } from '../../sync/daily-backfill.js';
import { proxiesFromEnv } from '../../exchange/proxy.js';
import { MarketConnection } from '../../sync/market-connection.js';
import { selectUniverse } from '../../sync/universe.js';
import { integerOption, listOption, parseOrHelp, stringOption, usageError, type CliContext, type CommandSpec } from '../args.js';
import { createCliLogger } from '../logger.js';
import { Progress } from '../progress.js';

/** The most days one `download` may cover (ten years). */
export const MAX_DOWNLOAD_DAYS = 3650;

/** The `download` command's options and help. */
export const downloadSpec: CommandSpec = {
  name: 'download',
  summary:
    'Writes the daily candle files of past local days (TIMEZONE of the rule) for the given symbols, skipping complete files. ' +
    'Exit code 1 when any symbol-day failed.',
  usage: 'download [--config FILE] [--symbols A,B|all] [--from YYYY-MM-DD --to YYYY-MM-DD | --days N] [--rest-only]',
  options: {
    config: { type: 'string', short: 'c', value: 'FILE', description: 'JSON rule file (default: $CANDLE_SERVER_CONFIG)' },
    symbols: { type: 'string', value: 'A,B|all', description: "symbols to download (default: the rule's SYMBOLS)" },
    from: { type: 'string', value: 'DAY', description: 'first local day, YYYY-MM-DD' },
    to: { type: 'string', value: 'DAY', description: 'last local day, YYYY-MM-DD (default: yesterday)' },
    days: { type: 'string', value: 'N', description: "the last N full local days (default: the rule's LOCAL_CANDLE_DAYS)" },
    'rest-only': { type: 'boolean', description: 'do not use the daily archives; everything from REST' },
    'log-level': { type: 'string', value: 'LEVEL', description: 'level of the log lines on stderr (default warn)' },
  },
  examples: ['candle-server download --config config/um.json --symbols BTCUSDT --days 7'],
};

/**
 * Runs `download`; resolves with the exit code.
 *
 * @example
 * ```ts
 * const code = await runDownload(['--config', 'config/um.json', '--days', '2'], context);
 * ```
 */
export async function runDownload(argv: readonly string[], context: CliContext): Promise<number> {
  const parsed = parseOrHelp(downloadSpec, argv, context);
  if (parsed === undefined) return 0;
  const { values } = parsed;
  const file = stringOption(values, 'config');
  const symbolList = listOption(values, 'symbols');
  const overrides: Partial<CandleRuleInput> = {
    ...(values['rest-only'] === true ? { USE_ARCHIVES: false } : {}),
    ...(symbolList === undefined ? {} : { SYMBOLS: symbolList.length === 1 && symbolList[0] === 'all' ? 'all' : symbolList }),
  };
  const rule = await loadCandleRule({ env: context.env, rule: overrides, ...(file === undefined ? {} : { file }) });
  const dayCount = integerOption(values, 'days', { min: 1, max: MAX_DOWNLOAD_DAYS });
  const from = stringOption(values, 'from');
  const to = stringOption(values, 'to');
  if (dayCount !== undefined && (from !== undefined || to !== undefined))
    throw usageError(downloadSpec, '--days and --from/--to exclude each other');
  if (to !== undefined && from === undefined) throw usageError(downloadSpec, '--to needs --from');

  // Log lines go to stderr so that stdout holds only the summaries.
  const logger = createCliLogger({ level: stringOption(values, 'log-level') ?? 'warn', stream: context.stderr });
  // HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY apply when the rule names no PROXY.
  const proxies = proxiesFromEnv(context.env);
  const connection = new MarketConnection({ rule, logger, ...(proxies === undefined ? {} : { proxies }) });
  try {
    const info = await connection.start(context.stop);
    const now = connection.clock.now();
    const days =
      from === undefined
        ? lastFullLocalDays(now, rule.TIMEZONE, dayCount ?? Math.max(rule.LOCAL_CANDLE_DAYS, 1))
        : dayRange(from, to ?? addDays(localDayOf(now, rule.TIMEZONE), -1), localDayOf(now, rule.TIMEZONE));
    const selection = selectUniverse(rule.MARKET, info.symbols, rule);
    const missing = [...selection.unknown, ...selection.notTrading];
    if (missing.length > 0) {
      throw new InvalidArgumentError(
        `${rule.MARKET} does not trade ${missing.join(', ')}${selection.unknown.length > 0 ? ` (unknown: ${selection.unknown.join(', ')})` : ''}`,
      );
    }
    if (selection.symbols.length === 0) throw new InvalidArgumentError(`no ${rule.MARKET} symbol matches the rule's SYMBOLS and filters`);

    const progress = new Progress({ label: 'download', total: days.length * selection.symbols.length, stream: context.stderr });
    const backfill = new DailyBackfill({
      market: rule.MARKET,
      bar: rule.BAR,
      timezone: rule.TIMEZONE,
      candleDir: rule.CANDLE_DIR,
      rest: connection.rest,
      archives: connection.archives,
      now: () => connection.clock.now(),
      logger,
      onProgress: (p) => progress.tick(`${p.symbol} ${p.day} ${p.outcome}`, p.outcome === 'error'),
    });
    let summaries: DaySummary[];
    try {
      summaries = await backfill.run(days, selection.symbols, context.stop);
    } finally {
      progress.done();
    }
    for (const s of summaries) {
      context.stdout.write(`COMPLETE DOWNLOAD ${s.day} (ALL:${s.all} SKIP:${s.skip} SUC:${s.success} WARN:${s.warn} ERROR:${s.error})\n`);
    }
    return summaries.some((s) => s.error > 0) ? 1 : 0;
  } finally {
    await connection.close();
  }
}

/** Every day from `from` to `to`, both included; only days that have ended before `today`. */
function dayRange(from: string, to: string, today: string): string[] {
  for (const [name, day] of [
    ['--from', from],
    ['--to', to],
  ] as const) {
    try {
      assertDay(day);
    } catch {
      throw usageError(downloadSpec, `${name}: expected a day YYYY-MM-DD, got ${JSON.stringify(day)}`);
    }
  }
  if (to < from) throw usageError(downloadSpec, `--to ${to} is before --from ${from}`);
  if (to >= today)
    throw usageError(downloadSpec, `--to ${to} has not ended yet in this TIMEZONE (today is ${today}); expected a day before it`);
  const days: string[] = [];
  for (let day = from; day <= to; day = addDays(day, 1)) {
    days.push(day);
    if (days.length > MAX_DOWNLOAD_DAYS)
      throw usageError(downloadSpec, `--from ${from} --to ${to} covers more than ${MAX_DOWNLOAD_DAYS} days`);
  }
  return days;
}
