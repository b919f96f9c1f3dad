/**
 * Candle open-time arithmetic for every Binance interval. Fixed intervals align to multiples of
 * their length since the epoch (UTC); `1w` opens on Monday 00:00 UTC and `1M` on the first of each
 * calendar month (UTC).
 *
 * @example
 * ```ts
 * openTimeOf('1h', Date.parse('2024-01-01T10:30:00Z')); // Date.parse('2024-01-01T10:00:00Z')
 * nextOpenTime('1M', Date.parse('2024-01-01T00:00:00Z')); // Date.parse('2024-02-01T00:00:00Z')
 * ```
 */
import type { Interval } from './markets.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const FIXED_MS: Readonly<Record<Exclude<Interval, '1M'>, number>> = {
  '1s': SECOND,
  '1m': MINUTE,
  '3m': 3 * MINUTE,
  '5m': 5 * MINUTE,
  '15m': 15 * MINUTE,
  '30m': 30 * MINUTE,
  '1h': HOUR,
  '2h': 2 * HOUR,
  '4h': 4 * HOUR,
  '6h': 6 * HOUR,
  '8h': 8 * HOUR,
  '12h': 12 * HOUR,
  '1d': DAY,
  '3d': 3 * DAY,
  '1w': 7 * DAY,
};

// 1970-01-05 was a Monday: weeks are counted from there.
const FIRST_MONDAY = 4 * DAY;

/**
 * Nominal length of an interval in milliseconds (`1M` counts 30 days: use `nextOpenTime` for exact
 * month boundaries).
 */
export function intervalMs(interval: Interval): number {
  return interval === '1M' ? 30 * DAY : FIXED_MS[interval];
}

/** Open time of the candle that contains `time` (epoch ms). */
export function openTimeOf(interval: Interval, time: number): number {
  if (interval === '1M') {
    const d = new Date(time);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  }
  if (interval === '1w') {
    return Math.floor((time - FIRST_MONDAY) / FIXED_MS['1w']) * FIXED_MS['1w'] + FIRST_MONDAY;
  }
  const ms = FIXED_MS[interval];
  return Math.floor(time / ms) * ms;
}

/** Open time of the candle after the one that opens at `openTime`. */
export function nextOpenTime(interval: Interval, openTime: number): number {
  if (interval === '1M') {
    const d = new Date(openTime);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  }
  return openTime + FIXED_MS[interval];
}

/** Open time of the candle before the one that opens at `openTime`. */
export function previousOpenTime(interval: Interval, openTime: number): number {
  if (interval === '1M') {
    const d = new Date(openTime);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 1);
  }
  return openTime - FIXED_MS[interval];
}

/** Close time Binance reports for the candle opening at `openTime`: next open minus 1 ms. */
export function closeTimeOf(interval: Interval, openTime: number): number {
  return nextOpenTime(interval, openTime) - 1;
}

/**
 * Number of candle open times in the half-open range [from, to), both aligned to the interval.
 */
export function candlesBetween(interval: Interval, from: number, to: number): number {
  if (to <= from) return 0;
  if (interval !== '1M') return Math.round((to - from) / FIXED_MS[interval]);
  let count = 0;
  for (let t = from; t < to; t = nextOpenTime(interval, t)) count += 1;
  return count;
}

/**
 * A run of consecutive candle open times, `from` to `to` both inclusive: candles a ring lacks, or
 * candles the exchange does not have (trading suspended), depending on who reports it.
 */
export interface CandleGap {
  readonly from: number;
  readonly to: number;
  readonly candles: number;
}

/**
 * Groups open times (ascending) into runs of consecutive candles.
 *
 * @example
 * ```ts
 * gapsOf([t, t + 60_000, t + 300_000], '1m');
 * // [{ from: t, to: t + 60_000, candles: 2 }, { from: t + 300_000, to: t + 300_000, candles: 1 }]
 * ```
 */
export function gapsOf(openTimes: readonly number[], bar: Interval): CandleGap[] {
  const gaps: CandleGap[] = [];
  let current: { from: number; to: number; candles: number } | undefined;
  for (const time of openTimes) {
    if (current && nextOpenTime(bar, current.to) === time) {
      current.to = time;
      current.candles += 1;
    } else {
      current = { from: time, to: time, candles: 1 };
      gaps.push(current);
    }
  }
  return gaps;
}

/**
 * True when candles of `fromBar` aggregate into `toPeriod`: every bucket of `toPeriod` starts on
 * a `fromBar` boundary and holds whole candles.
 *
 * @example
 * ```ts
 * canAggregate('1m', '4h'); // true
 * canAggregate('1w', '1M'); // false: months do not start on Mondays
 * ```
 */
export function canAggregate(fromBar: Interval, toPeriod: Interval): boolean {
  if (fromBar === toPeriod) return true;
  if (toPeriod === '1M') return intervalMs('1d') % intervalMs(fromBar) === 0;
  if (fromBar === '1M') return false;
  const to = intervalMs(toPeriod);
  const bar = intervalMs(fromBar);
  if (to <= bar || to % bar !== 0) return false;
  // Weeks start on Monday, 4 days after the epoch: a bar must divide that offset too (3d does not).
  return toPeriod !== '1w' || (4 * intervalMs('1d')) % bar === 0;
}
