/**
 * Where a warm start finds candles before it asks the exchange: the newest valid snapshot of the
 * candle map, then the daily files of the local days the window covers. (The third source, REST,
 * is the exchange's.) Both are best-effort: a missing or damaged file only costs the requests that
 * replace it, and is logged.
 *
 * @example
 * ```ts
 * const restored = await restoreSnapshot(rule, symbols, map, logger); // rings put into `map`
 * const rows = await readDailyRows(rule, 'BTCUSDT', windowStart, current, logger);
 * ```
 */
import { COL, type RawKline } from '../binance/kline.js';
import { readDailyFile } from '../files/daily-file.js';
import { addDays, dailyFilePath, localDayBounds, localDayOf } from '../files/daily-layout.js';
import { loadNewestValidSnapshot } from '../files/snapshot.js';
import type { Interval } from '../binance/markets.js';
import type { Logger } from '../log.js';
import type { CandleRule } from '../rule.js';
import type { CandleMap } from '../store/candle-map.js';

/**
 * Puts the rings of `symbols` found in the newest valid snapshot of the rule's market and `bar`
 * (BAR, or one of INTERVALS) into `map`. Returns how many were restored, and from which file.
 */
export async function restoreSnapshot(
  rule: CandleRule,
  symbols: readonly string[],
  map: CandleMap,
  logger: Logger,
  bar: Interval = rule.BAR,
): Promise<{ file: string | undefined; restored: number }> {
  const loaded = await loadNewestValidSnapshot(rule.CACHE_DIR, { market: rule.MARKET, bar, length: rule.LENGTH }, logger);
  if (loaded === undefined) return { file: undefined, restored: 0 };
  let restored = 0;
  for (const symbol of symbols) {
    const ring = loaded.map.get(symbol);
    if (ring === undefined) continue;
    map.set(symbol, ring);
    restored += 1;
  }
  logger.info({ file: loaded.file, symbols: restored, bar }, 'snapshot loaded');
  return { file: loaded.file, restored };
}

/**
 * Final rows of `symbol` from the daily files of the local days that overlap [windowStart,
 * current), oldest first; today's day is never on disk. An unreadable file is skipped with a
 * warning.
 */
export async function readDailyRows(
  rule: CandleRule,
  symbol: string,
  windowStart: number,
  current: number,
  logger: Logger,
): Promise<RawKline[]> {
  const { CANDLE_DIR, MARKET, TIMEZONE, BAR } = rule;
  const today = localDayOf(current, TIMEZONE);
  const found: RawKline[] = [];
  for (let day = localDayOf(windowStart, TIMEZONE); day < today; day = addDays(day, 1)) {
    if (localDayBounds(day, TIMEZONE).end <= windowStart) continue;
    try {
      const rows = await readDailyFile(dailyFilePath(CANDLE_DIR, MARKET, TIMEZONE, BAR, day, symbol), {
        timezone: TIMEZONE,
        bar: BAR,
        day,
      });
      if (rows === undefined) continue;
      for (const row of rows) if (row[COL.openTime] >= windowStart) found.push(row);
    } catch (error) {
      logger.warn({ err: error, symbol, day }, 'daily file unreadable; using REST instead');
    }
  }
  return found;
}
