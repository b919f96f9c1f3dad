/**
 * Back-fill of the daily candle files: for each local day and symbol, a complete file on disk is
 * skipped; otherwise the day is taken from the daily archives (no weight) wherever they cover it,
 * the rest from REST (within the weight budget, at back-fill priority), and written atomically
 * with any candles the exchange does not have recorded as gaps.
 *
 * It logs the original's lines, so operators moving from it find what they know:
 * `DOWNLOAD BTCUSDT 1m 24/01/2024` and `COMPLETE DOWNLOAD 24/01/2024 (ALL:2 SKIP:0 SUC:2 WARN:0 ERROR:0)`.
 * WARN counts days written with gaps (trading was suspended); ERROR counts days that could not be
 * written and will be tried again at the next run.
 *
 * @example
 * ```ts
 * const backfill = new DailyBackfill({ market: 'UM', bar: '1m', timezone: 'America/New_York',
 *   candleDir: './candles', rest, archives, now: () => rest.clock.now(), logger });
 * await backfill.run(lastFullLocalDays(rest.clock.now(), 'America/New_York', 2), ['BTCUSDT']);
 * ```
 */
import { AbortedError, ClosedError, InvalidArgumentError } from '../errors.js';
import type { ArchiveClient } from '../exchange/archive-client.js';
import { closeTimeOf, gapsOf } from '../binance/intervals.js';
import type { RawKline } from '../binance/kline.js';
import type { Interval, MarketType } from '../binance/markets.js';
import type { BinanceRestClient } from '../exchange/rest-client.js';
import { ARCHIVE_DAILY_INTERVALS } from '../binance/archives.js';
import { assembleLocalDay, verifyDailyFile, writeDailyFile, type DailySource } from '../files/daily-file.js';
import { dailyFilePath, expectedOpenTimes, localDayBounds, utcDaysCovering } from '../files/daily-layout.js';
import type { Logger } from '../log.js';
import { forEachConcurrently } from '../util/concurrency.js';
import { silentLogger } from '../log.js';

/** What happened to one symbol's day. */
export type DayOutcome = 'skip' | 'success' | 'warn' | 'error';

/** Counts of one day's outcomes, as in the `COMPLETE DOWNLOAD` line. */
export interface DaySummary {
  readonly day: string;
  readonly all: number;
  readonly skip: number;
  readonly success: number;
  readonly warn: number;
  readonly error: number;
}

/** One symbol-day finished; for progress displays. */
export interface BackfillProgress {
  readonly symbol: string;
  readonly day: string;
  readonly outcome: DayOutcome;
  /** Candles taken from archives and from REST. */
  readonly fromArchive: number;
  readonly fromRest: number;
}

/** Options of {@link DailyBackfill}. */
export interface DailyBackfillOptions {
  readonly market: MarketType;
  readonly bar: Interval;
  readonly timezone: string;
  /** Root of the daily files (CANDLE_DIR). */
  readonly candleDir: string;
  readonly rest: BinanceRestClient;
  /** Source of daily archives; without it every candle comes from REST. */
  readonly archives?: ArchiveClient | undefined;
  /** The exchange's clock: a day is fetched only once all of its candles have closed. */
  readonly now: () => number;
  /** Symbol-days fetched at once (default 4); the weight governor paces REST whatever this is. */
  readonly concurrency?: number;
  readonly onProgress?: (progress: BackfillProgress) => void;
  readonly logger?: Logger;
}

/** Fetches and writes daily candle files. */
export class DailyBackfill {
  readonly #options: DailyBackfillOptions;
  readonly #logger: Logger;
  readonly #concurrency: number;

  constructor(options: DailyBackfillOptions) {
    const concurrency = options.concurrency ?? 4;
    if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
      throw new InvalidArgumentError(`concurrency must be a positive integer, got ${concurrency}`);
    }
    this.#options = options;
    this.#concurrency = concurrency;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'backfill' });
  }

  /**
   * Makes sure every symbol has a complete file for every day, oldest day first. Resolves with one
   * summary per day; rejects only when `signal` aborts (per-symbol failures are counted as ERROR).
   */
  async run(days: readonly string[], symbols: readonly string[], signal?: AbortSignal): Promise<DaySummary[]> {
    const summaries: DaySummary[] = [];
    for (const day of days) {
      const counts = { skip: 0, success: 0, warn: 0, error: 0 };
      await forEachConcurrently(
        symbols,
        this.#concurrency,
        async (symbol) => {
          counts[await this.day(symbol, day, signal)] += 1;
        },
        signal,
      );
      const summary: DaySummary = { day, all: symbols.length, ...counts };
      summaries.push(summary);
      this.#logger.info(
        { day, ...counts, all: symbols.length },
        `COMPLETE DOWNLOAD ${displayDay(day)} (ALL:${symbols.length} SKIP:${counts.skip} SUC:${counts.success} WARN:${counts.warn} ERROR:${counts.error})`,
      );
    }
    return summaries;
  }

  /**
   * Brings one symbol's day up to complete. Never throws for exchange or file failures: they are
   * logged and reported as 'error'. Aborts propagate.
   */
  async day(symbol: string, day: string, signal?: AbortSignal): Promise<DayOutcome> {
    const { market, bar, timezone, candleDir } = this.#options;
    const key = { market, timezone, bar, day, symbol };
    const log = this.#logger.child({ symbol });
    let fromArchive = 0;
    let fromRest = 0;
    let outcome: DayOutcome;
    try {
      const path = dailyFilePath(candleDir, market, timezone, bar, day, symbol);
      const report = await verifyDailyFile(path, key);
      if (report.status === 'complete') {
        outcome = 'skip';
      } else {
        if (report.status !== 'missing')
          log.warn({ day, status: report.status, problem: report.problem }, 'daily file not complete; fetching it again');
        log.info({ day, bar }, `DOWNLOAD ${symbol} ${bar} ${displayDay(day)}`);
        const fetched = await this.#fetchDay(symbol, day, signal);
        fromArchive = fetched.fromArchive;
        fromRest = fetched.fromRest;
        const gaps = gapsOf(fetched.missing, bar);
        const source: DailySource = fromRest > 0 || fromArchive === 0 ? 'rest' : 'archive';
        await writeDailyFile({
          root: candleDir,
          ...key,
          rows: fetched.rows,
          gaps,
          source,
          now: this.#options.now(),
          ...(signal ? { signal } : {}),
        });
        if (gaps.length > 0) {
          log.warn(
            { day, gaps, rows: fetched.rows.length },
            `the exchange has no candles for ${fetched.missing.length} of ${symbol}'s ${bar} open times on ${day}; gaps recorded`,
          );
          outcome = 'warn';
        } else {
          outcome = 'success';
        }
      }
    } catch (error) {
      if (error instanceof AbortedError || error instanceof ClosedError || signal?.aborted) throw error;
      log.error({ err: error, day }, `download of ${symbol} ${bar} ${day} failed`);
      outcome = 'error';
    }
    this.#options.onProgress?.({ symbol, day, outcome, fromArchive, fromRest });
    return outcome;
  }

  async #fetchDay(
    symbol: string,
    day: string,
    signal: AbortSignal | undefined,
  ): Promise<{ rows: RawKline[]; missing: number[]; fromArchive: number; fromRest: number }> {
    const { bar, timezone, rest, archives } = this.#options;
    const bounds = localDayBounds(day, timezone);
    const expected = expectedOpenTimes(day, timezone, bar);
    const last = expected.at(-1);
    if (last !== undefined && closeTimeOf(bar, last) >= this.#options.now()) {
      throw new InvalidArgumentError(`${day} (${timezone}) has not ended on the exchange yet; only full days are written`);
    }
    const byOpenTime = new Map<number, RawKline>();
    let missing = expected;
    if (archives !== undefined && ARCHIVE_DAILY_INTERVALS.includes(bar)) {
      const utcRows = new Map<string, RawKline[]>();
      for (const utcDate of utcDaysCovering(day, timezone)) {
        try {
          const rows = await archives.dailyKlines(symbol, bar, utcDate, signal ? { signal } : {});
          if (rows !== undefined) utcRows.set(utcDate, rows);
        } catch (error) {
          if (error instanceof AbortedError || error instanceof ClosedError) throw error;
          this.#logger.warn({ err: error, symbol, utcDate }, 'archive unusable; REST fills that day');
        }
      }
      const assembled = assembleLocalDay(day, timezone, bar, utcRows);
      for (const row of assembled.rows) byOpenTime.set(row[0], row);
      missing = assembled.missing;
    }
    const fromArchive = byOpenTime.size;
    // One REST range per run of missing candles: a whole day, or the UTC part no archive covered.
    for (const run of gapsOf(missing, bar)) {
      const rows = await rest.klinesRange(symbol, bar, run.from, run.to, { priority: 'backfill', ...(signal ? { signal } : {}) });
      for (const row of rows) {
        if (row[0] >= bounds.start && row[0] < bounds.end && !byOpenTime.has(row[0])) byOpenTime.set(row[0], row);
      }
    }
    const rows = [...byOpenTime.values()].sort((a, b) => a[0] - b[0]);
    return {
      rows,
      missing: expected.filter((time) => !byOpenTime.has(time)),
      fromArchive,
      fromRest: rows.length - fromArchive,
    };
  }
}

/** The original's date format in log lines: DD/MM/YYYY. */
function displayDay(day: string): string {
  const [year, month, date] = day.split('-');
  return `${date}/${month}/${year}`;
}
