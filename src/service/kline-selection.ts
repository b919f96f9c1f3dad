/**
 * Which candles a Binance klines request selects, taken from what the server holds: the ring of
 * the interval (when it may be served) and, for BAR, the complete daily files of CANDLE_DIR. The
 * answer is all or nothing: every candle the exchange would return comes from memory or disk, or
 * the request is not held and goes to the exchange. Nothing is ever filled in.
 *
 * ```
 *   exchange time  ───────────────────────────────────────────────────────────────────────> now
 *   daily files    | day (complete) | day (complete) | day (complete) |   today (never on disk)
 *   ring                                                    |oldest ........ newest (forming)|
 *   a request      [from ...................................................... to]
 *                   oldest first (SPOT/UM with startTime): walk forward from `from` until `limit`
 *                   newest first (no startTime, or COIN-M): walk back from `to` until `limit`
 * ```
 *
 * Inside the ring's span the ring answers: it holds every candle the exchange has there (the serve
 * rule refuses a ring with a hole). Before it, each local day walked through must have a complete
 * daily file (verified rows, recorded exchange gaps). A day needed but not yet read makes the
 * selection ask for it (`load`); the caller reads it and selects again, so the ring is read in
 * one synchronous pass once every day is at hand.
 *
 * @example
 * ```ts
 * for (;;) {
 *   const selection = selectKlines({ range, interval, now, ring: view, days, maxDays: 62 });
 *   if (selection.kind !== 'load') return selection;
 *   await days.load(symbol, selection.day);
 * }
 * ```
 */
import { nextOpenTime, openTimeOf } from '../binance/intervals.js';
import type { RawKline } from '../binance/kline.js';
import type { KlinesRange } from '../binance/klines-query.js';
import type { Interval } from '../binance/markets.js';
import { localDayBounds, localDayOf } from '../files/daily-layout.js';
import type { CandleView } from '../store/candle-view.js';
import { lowerBound } from '../util/lower-bound.js';

/** A complete local day's rows (open time ascending); null when the day is not complete on disk. */
export type DayRows = readonly RawKline[] | null;

/** The daily files of one symbol as the selection reads them: synchronously, from what was loaded. */
export interface DaySource {
  /** The TIMEZONE whose local days the files follow. */
  readonly timezone: string;
  /** The day's rows, null when not complete on disk, undefined when not read yet. */
  get(day: string): DayRows | undefined;
}

/** What {@link selectKlines} reads. */
export interface SelectionInput {
  readonly range: KlinesRange;
  readonly interval: Interval;
  /** Exchange time now (ms): candles after it do not exist, today is not on disk. */
  readonly now: number;
  /** The ring, when it may be served (fresh); undefined otherwise. */
  readonly ring: CandleView | undefined;
  /** The daily files (BAR only); undefined when there are none for this interval. */
  readonly days: DaySource | undefined;
  /** Days of files one request may walk through; beyond, it is not held. */
  readonly maxDays: number;
}

/** One run of the reply's rows, oldest first: ring rows [start, end), or rows of a daily file. */
export type SelectionPart =
  { readonly kind: 'ring'; readonly start: number; readonly end: number } | { readonly kind: 'rows'; readonly rows: readonly RawKline[] };

/** The outcome: the rows (in parts, oldest first), a day to read first, or why it is not held. */
export type Selection =
  | { readonly kind: 'held'; readonly parts: readonly SelectionPart[]; readonly count: number; readonly usesRing: boolean }
  | { readonly kind: 'load'; readonly day: string }
  | { readonly kind: 'not-held'; readonly reason: string };

/**
 * The candles `input.range` selects, from the ring and the daily files, or what is missing.
 * Synchronous: it reads the zero-copy ring view once and never waits.
 */
export function selectKlines(input: SelectionInput): Selection {
  const { range, interval } = input;
  const to = Math.min(range.to, input.now);
  const from = firstOpenAtOrAfter(interval, range.from);
  if (to < from || range.isEmpty) return { kind: 'held', parts: [], count: 0, usesRing: false };
  return range.newest ? selectNewest(input, from, to) : selectOldest(input, from, to);
}

/** Forward from `from`: the oldest `limit` candles up to `to`. */
function selectOldest(input: SelectionInput, from: number, to: number): Selection {
  const { ring, interval, range } = input;
  const ringOldest = ring === undefined || ring.isEmpty ? undefined : ring.openTime(0);
  const parts: SelectionPart[] = [];
  let count = 0;
  let days = 0;
  for (let cursor = from; count < range.limit && cursor <= to;) {
    if (ring !== undefined && ringOldest !== undefined && cursor >= ringOldest) {
      const start = lowerBoundView(ring, cursor);
      const end = Math.min(upperBound(ring, to), start + range.limit - count);
      if (end > start) parts.push({ kind: 'ring', start, end });
      return { kind: 'held', parts, count: count + Math.max(0, end - start), usesRing: true };
    }
    const day = dayToRead(input, cursor, (days += 1));
    if (typeof day !== 'string') return day;
    const rows = input.days?.get(day);
    if (rows === undefined) return { kind: 'load', day };
    if (rows === null) return notOnDisk(day, input);
    const dayEnd = localDayBounds(day, input.days?.timezone ?? 'UTC').end;
    const upper = ringOldest === undefined ? to : Math.min(to, ringOldest - 1);
    const first = lowerBoundRows(rows, cursor);
    const last = Math.min(upperBoundRows(rows, upper), first + range.limit - count);
    if (last > first) {
      parts.push({ kind: 'rows', rows: rows.slice(first, last) });
      count += last - first;
    }
    cursor = firstOpenAtOrAfter(interval, ringOldest === undefined ? dayEnd : Math.min(dayEnd, ringOldest));
  }
  return { kind: 'held', parts, count, usesRing: false };
}

/** Back from `to`: the newest `limit` candles down to `from`. */
function selectNewest(input: SelectionInput, from: number, to: number): Selection {
  const { ring, range } = input;
  const parts: SelectionPart[] = [];
  let count = 0;
  let cursor = to;
  let usesRing = false;
  if (ring !== undefined && !ring.isEmpty) {
    const ringOldest = ring.openTime(0);
    if (cursor >= ringOldest) {
      const end = upperBound(ring, cursor);
      const start = Math.max(lowerBoundView(ring, from), end - range.limit);
      if (end > start) parts.push({ kind: 'ring', start, end });
      count = Math.max(0, end - start);
      usesRing = true;
      cursor = ringOldest - 1;
    }
  }
  let days = 0;
  while (count < range.limit && cursor >= from) {
    const day = dayToRead(input, cursor, (days += 1));
    if (typeof day !== 'string') return day;
    const rows = input.days?.get(day);
    if (rows === undefined) return { kind: 'load', day };
    if (rows === null) return notOnDisk(day, input);
    const last = upperBoundRows(rows, cursor);
    const first = Math.max(lowerBoundRows(rows, from), last - (range.limit - count));
    if (last > first) {
      parts.unshift({ kind: 'rows', rows: rows.slice(first, last) });
      count += last - first;
    }
    cursor = localDayBounds(day, input.days?.timezone ?? 'UTC').start - 1;
  }
  return { kind: 'held', parts, count, usesRing };
}

/** The local day holding `time` when its file may be read, else why the request is not held. */
function dayToRead(input: SelectionInput, time: number, days: number): string | Selection {
  const at = new Date(time).toISOString();
  if (input.days === undefined) {
    return {
      kind: 'not-held',
      reason: `${input.interval} candles from ${at} are older than those in memory, and only BAR has daily files`,
    };
  }
  const day = localDayOf(time, input.days.timezone);
  if (day >= localDayOf(input.now, input.days.timezone)) {
    return { kind: 'not-held', reason: `candles from ${at} are not in memory, and the day ${day} is not over (never on disk)` };
  }
  if (days > input.maxDays) {
    return { kind: 'not-held', reason: `the request reaches back more than ${input.maxDays} daily files (to ${day})` };
  }
  return day;
}

function notOnDisk(day: string, input: SelectionInput): Selection {
  return {
    kind: 'not-held',
    reason: `no complete daily file of ${day} (${input.days?.timezone ?? ''}) for the candles the request selects`,
  };
}

/** The first open time at or after `time`. */
function firstOpenAtOrAfter(interval: Interval, time: number): number {
  const open = openTimeOf(interval, time);
  return open < time ? nextOpenTime(interval, open) : open;
}

/** First row of the view whose open time is >= t (length when none). */
function lowerBoundView(view: CandleView, t: number): number {
  return lowerBound(view.length, (i) => view.openTime(i), t);
}

/** First row of the view whose open time is > t (length when none). */
function upperBound(view: CandleView, t: number): number {
  return lowerBoundView(view, t + 1);
}

function lowerBoundRows(rows: readonly RawKline[], t: number): number {
  return lowerBound(rows.length, (i) => (rows[i] as RawKline)[0], t);
}

function upperBoundRows(rows: readonly RawKline[], t: number): number {
  return lowerBoundRows(rows, t + 1);
}
