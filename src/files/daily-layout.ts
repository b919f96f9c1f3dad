/**
 * Where daily candle files live and which candles a local day holds.
 *
 * ```
 * {root}/{SPOT|UM|CM}-{TIMEZONE without '/'}-{BAR}/{YYYY-MM}/{YYYY-MM-DD}/{SYMBOL}.csv
 * e.g.   UM-AmericaNew_York-1m/2024-01/2024-01-24/BTCUSDT.csv
 * ```
 *
 * A day is a calendar day in TIMEZONE: local midnight to the next local midnight, so 23, 24 or
 * 25 hours when daylight saving starts or ends (a 1m day has 1380, 1440 or 1500 candles).
 *
 * **Which candles belong to a day**: a candle belongs to the local day in which it OPENS. Binance
 * aligns candles to UTC, so bars that are long compared with the zone's offset straddle local
 * midnight: in America/New_York the 1d candle opening 2024-01-16 00:00 UTC (19:00 on the 15th,
 * local) belongs to 2024-01-15, and a 4h day holds 6 candles (5 on the spring-forward day, 7 on
 * the fall-back day). Every candle thus belongs to exactly one local day.
 *
 * @example
 * ```ts
 * dailyFilePath('/data', 'UM', 'America/New_York', '1m', '2024-01-24', 'BTCUSDT');
 * // '/data/UM-AmericaNew_York-1m/2024-01/2024-01-24/BTCUSDT.csv'
 * expectedCount('2024-03-10', 'America/New_York', '1m'); // 1380
 * ```
 */
import { isAbsolute, join, relative, resolve } from 'node:path';
import { formatInTimeZone, fromZonedTime } from 'date-fns-tz';
import { InvalidArgumentError } from '../errors.js';
import { candlesBetween, nextOpenTime, openTimeOf } from '../binance/intervals.js';
import { isInterval, isMarketType, type Interval, type MarketType } from '../binance/markets.js';
import { assertSymbol } from '../binance/symbols.js';

/** A calendar day written `YYYY-MM-DD`. */
export const DAY_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;

// IANA names are letters, digits, '_', '-', '+' and '/'; anything else (or '..') is refused before
// it can reach a folder name.
const TIMEZONE_TEXT = /^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/;

const MINUTE = 60_000;

/** Epoch-ms bounds of a local day: `start` inclusive (local midnight), `end` exclusive. */
export interface DayBounds {
  readonly start: number;
  readonly end: number;
}

/**
 * Throws InvalidArgumentError unless `day` is a real calendar date written `YYYY-MM-DD`.
 *
 * @example
 * ```ts
 * assertDay('2024-02-30'); // throws: not a calendar date
 * ```
 */
export function assertDay(day: string): void {
  const match = DAY_PATTERN.exec(day);
  if (match) {
    const [y, m, d] = [Number(match[1]), Number(match[2]), Number(match[3])];
    const date = new Date(Date.UTC(y, m - 1, d));
    if (date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d) return;
  }
  throw new InvalidArgumentError(`day ${JSON.stringify(day)} is not a calendar date written YYYY-MM-DD`);
}

/**
 * Throws InvalidArgumentError unless `timezone` is an IANA time zone name the runtime knows.
 *
 * @example
 * ```ts
 * assertTimezone('America/New_York'); // ok
 * assertTimezone('../etc');           // throws
 * ```
 */
export function assertTimezone(timezone: string): void {
  if (TIMEZONE_TEXT.test(timezone)) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
      return;
    } catch {
      // fall through to the error below
    }
  }
  throw new InvalidArgumentError(`timezone ${JSON.stringify(timezone)} is not an IANA time zone name (e.g. "America/New_York")`);
}

function assertMarketAndBar(market: MarketType, bar: Interval): void {
  if (!isMarketType(market)) throw new InvalidArgumentError(`market ${JSON.stringify(market)} is not SPOT, UM or CM`);
  if (!isInterval(bar)) throw new InvalidArgumentError(`bar ${JSON.stringify(bar)} is not a Binance kline interval`);
}

/**
 * Name of the top folder of one market, time zone and bar: the zone with its '/' removed.
 *
 * @example
 * ```ts
 * dailyFolderName('UM', 'America/New_York', '1m'); // 'UM-AmericaNew_York-1m'
 * ```
 */
export function dailyFolderName(market: MarketType, timezone: string, bar: Interval): string {
  assertMarketAndBar(market, bar);
  assertTimezone(timezone);
  return `${market}-${timezone.replaceAll('/', '')}-${bar}`;
}

/**
 * Folder of one local day (it holds the day's CSV files and its manifest.json). Throws
 * InvalidArgumentError on a bad day, zone, market or bar, or a path that would leave `root`.
 *
 * @example
 * ```ts
 * dailyDayFolder('/data', 'UM', 'America/New_York', '1m', '2024-01-24');
 * // '/data/UM-AmericaNew_York-1m/2024-01/2024-01-24'
 * ```
 */
export function dailyDayFolder(root: string, market: MarketType, timezone: string, bar: Interval, day: string): string {
  assertDay(day);
  const folder = join(root, dailyFolderName(market, timezone, bar), day.slice(0, 7), day);
  assertInside(root, folder);
  return folder;
}

/**
 * Path of one symbol's file for one local day. The symbol and day are validated before any path
 * is built, and the result is checked to stay under `root`.
 *
 * @example
 * ```ts
 * dailyFilePath('/data', 'UM', 'America/New_York', '1m', '2024-01-24', 'BTCUSDT');
 * // '/data/UM-AmericaNew_York-1m/2024-01/2024-01-24/BTCUSDT.csv'
 * ```
 */
export function dailyFilePath(root: string, market: MarketType, timezone: string, bar: Interval, day: string, symbol: string): string {
  assertSymbol(symbol, 'symbol');
  const file = join(dailyDayFolder(root, market, timezone, bar, day), `${symbol}.csv`);
  assertInside(root, file);
  return file;
}

function assertInside(root: string, path: string): void {
  const rel = relative(resolve(root), resolve(path));
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new InvalidArgumentError(`path ${JSON.stringify(path)} is not inside the candle folder ${JSON.stringify(root)}`);
  }
}

/**
 * The local calendar day (`YYYY-MM-DD`) that contains the instant `time` in `timezone`.
 *
 * @example
 * ```ts
 * localDayOf(Date.parse('2024-01-16T03:00:00Z'), 'America/New_York'); // '2024-01-15'
 * ```
 */
export function localDayOf(time: number, timezone: string): string {
  assertTimezone(timezone);
  return formatInTimeZone(time, timezone, 'yyyy-MM-dd');
}

/**
 * The UTC calendar day of the instant `time`.
 *
 * @example
 * ```ts
 * utcDayOf(Date.parse('2024-01-16T03:00:00Z')); // '2024-01-16'
 * ```
 */
export function utcDayOf(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/**
 * The calendar day `count` days after `day` (before it when negative).
 *
 * @example
 * ```ts
 * addDays('2024-02-28', 2); // '2024-03-01'
 * ```
 */
export function addDays(day: string, count: number): string {
  assertDay(day);
  return utcDayOf(Date.parse(`${day}T00:00:00Z`) + count * 86_400_000);
}

/**
 * Epoch-ms bounds of a local day: from local midnight to the next local midnight (23, 24 or 25 h
 * around daylight-saving changes). Where a zone skips midnight itself (clocks jump from 00:00 to
 * 01:00), the day starts at the first instant that exists.
 *
 * @example
 * ```ts
 * const { start, end } = localDayBounds('2024-03-10', 'America/New_York');
 * (end - start) / 3_600_000; // 23
 * ```
 */
export function localDayBounds(day: string, timezone: string): DayBounds {
  assertDay(day);
  assertTimezone(timezone);
  return { start: localDayStart(day, timezone), end: localDayStart(addDays(day, 1), timezone) };
}

function localDayStart(day: string, timezone: string): number {
  const guess = fromZonedTime(`${day}T00:00:00`, timezone).getTime();
  if (formatInTimeZone(guess, timezone, 'yyyy-MM-dd') === day) return guess;
  // Midnight did not exist and the guess fell on the evening before: the day starts at the first
  // minute whose local date is `day` (zone changes happen on whole minutes), at most a few hours on.
  let low = guess;
  let high = guess + 4 * 60 * MINUTE;
  while (high - low > MINUTE) {
    const mid = low + Math.max(MINUTE, Math.floor((high - low) / 2 / MINUTE) * MINUTE);
    if (formatInTimeZone(mid, timezone, 'yyyy-MM-dd') < day) low = mid;
    else high = mid;
  }
  return high;
}

/**
 * Open times of the candles that belong to a local day (those that open inside it), oldest first.
 *
 * @example
 * ```ts
 * expectedOpenTimes('2024-01-15', 'America/New_York', '1d'); // [Date.parse('2024-01-16T00:00:00Z')]
 * ```
 */
export function expectedOpenTimes(day: string, timezone: string, bar: Interval): number[] {
  const { start, end } = localDayBounds(day, timezone);
  const times: number[] = [];
  for (let t = firstOpenAtOrAfter(bar, start); t < end; t = nextOpenTime(bar, t)) times.push(t);
  return times;
}

/**
 * Number of candles that belong to a local day (1m in America/New_York: 1380, 1440 or 1500).
 *
 * @example
 * ```ts
 * expectedCount('2024-11-03', 'America/New_York', '1m'); // 1500
 * ```
 */
export function expectedCount(day: string, timezone: string, bar: Interval): number {
  const { start, end } = localDayBounds(day, timezone);
  const first = firstOpenAtOrAfter(bar, start);
  return candlesBetween(bar, first, firstOpenAtOrAfter(bar, end));
}

function firstOpenAtOrAfter(bar: Interval, time: number): number {
  const open = openTimeOf(bar, time);
  return open < time ? nextOpenTime(bar, open) : open;
}

/**
 * The last `count` local days that have fully ended at `now`, oldest first (today is excluded).
 *
 * @example
 * ```ts
 * lastFullLocalDays(Date.parse('2024-01-25T12:00:00Z'), 'America/New_York', 2);
 * // ['2024-01-23', '2024-01-24']
 * ```
 */
export function lastFullLocalDays(now: number, timezone: string, count: number): string[] {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new InvalidArgumentError(`count must be a non-negative integer, got ${JSON.stringify(count)}`);
  }
  const today = localDayOf(now, timezone);
  const days: string[] = [];
  for (let back = count; back >= 1; back -= 1) days.push(addDays(today, -back));
  return days;
}

/**
 * The UTC days whose daily archive files together hold every candle of a local day: the UTC dates
 * of its first and last instants, and any between.
 *
 * @example
 * ```ts
 * utcDaysCovering('2024-01-24', 'America/New_York'); // ['2024-01-24', '2024-01-25']
 * ```
 */
export function utcDaysCovering(day: string, timezone: string): string[] {
  const { start, end } = localDayBounds(day, timezone);
  const last = utcDayOf(end - 1);
  const days = [utcDayOf(start)];
  while (days[days.length - 1]! < last) days.push(addDays(days[days.length - 1]!, 1));
  return days;
}
