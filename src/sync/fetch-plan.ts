/**
 * What to fetch, as pure functions: the window a ring must cover, the ranges it lacks, the weight
 * of fetching them, which symbols a REST sweep takes within its share of the budget, and how many
 * requests the warm-up keeps in flight.
 *
 * @example
 * ```ts
 * const from = windowStart('1m', 2880, current);
 * const ranges = missingRanges(ring, '1m', from, current, MARKETS.SPOT.klinesBestLimit);
 * const weight = rangeWeight('SPOT', candlesIn(ranges, '1m'));
 * ```
 */
import {
  canAggregate,
  candlesBetween,
  closeTimeOf,
  intervalMs,
  nextOpenTime,
  previousOpenTime,
  type CandleGap,
} from '../binance/intervals.js';
import { MARKETS, type Interval, type MarketType } from '../binance/markets.js';

/** A range of open times to fetch, both ends inclusive. */
export interface FetchRange {
  from: number;
  to: number;
}

/** What a ring looks like to the planner. */
export interface RingExtent {
  readonly oldestOpenTime: number | undefined;
  readonly newestOpenTime: number | undefined;
  gaps(interval: Interval): CandleGap[];
}

/** Open time of the oldest candle of the `length`-candle window ending with the candle opening at `current`. */
export function windowStart(bar: Interval, length: number, current: number): number {
  if (bar !== '1M') return current - (length - 1) * intervalMs(bar);
  let time = current;
  for (let i = 1; i < length; i += 1) time = previousOpenTime(bar, time);
  return time;
}

/**
 * Ranges of open times in [start, current] the ring lacks: the head, inner holes and the tail
 * (from the newest row on: it may have been forming when it was stored). Ranges closer than one
 * page (`pageCandles`) are joined: fetching a few candles the ring already has costs less weight
 * than another request.
 */
export function missingRanges(ring: RingExtent, bar: Interval, start: number, current: number, pageCandles: number): FetchRange[] {
  const oldest = ring.oldestOpenTime;
  const newest = ring.newestOpenTime;
  if (oldest === undefined || newest === undefined || newest < start) return [{ from: start, to: current }];
  const ranges: FetchRange[] = [];
  if (oldest > start) ranges.push({ from: start, to: previousOpenTime(bar, oldest) });
  for (const gap of ring.gaps(bar)) {
    if (gap.to >= start) ranges.push({ from: Math.max(gap.from, start), to: gap.to });
  }
  ranges.push({ from: newest, to: current });
  return mergeRanges(ranges, pageCandles * intervalMs(bar));
}

/** Joins ranges whose distance is at most `spanMs`, sorted by start. */
export function mergeRanges(ranges: readonly FetchRange[], spanMs: number): FetchRange[] {
  const merged: FetchRange[] = [];
  for (const range of [...ranges].sort((a, b) => a.from - b.from)) {
    const last = merged.at(-1);
    if (last !== undefined && range.from - last.to <= spanMs) last.to = Math.max(last.to, range.to);
    else merged.push({ ...range });
  }
  return merged;
}

/** Candles in the ranges. */
export function candlesIn(ranges: readonly FetchRange[], bar: Interval): number {
  let total = 0;
  for (const range of ranges) total += candlesBetween(bar, range.from, nextOpenTime(bar, range.to));
  return total;
}

/** Weight of fetching `candles` candles of one range in best-size pages. */
export function rangeWeight(market: MarketType, candles: number): number {
  const spec = MARKETS[market];
  const pages = Math.max(1, Math.ceil(candles / spec.klinesBestLimit));
  const last = candles - (pages - 1) * spec.klinesBestLimit;
  return (pages - 1) * spec.klinesWeight(spec.klinesBestLimit) + spec.klinesWeight(Math.max(1, last));
}

/** Why a sweep takes a symbol, in order of need. */
export type SweepKind = 'repair' | 'warm' | 'overdue' | 'stale' | 'final' | 'derive';

const SWEEP_ORDER: Readonly<Record<SweepKind, number>> = { repair: 0, warm: 1, overdue: 2, stale: 3, final: 4, derive: 5 };

/** A symbol as the sweep sees it. */
export interface SweepCandidate {
  readonly isReady: boolean;
  readonly holeFrom: number | undefined;
  readonly confirmedAt: number;
  /** The oldest candle whose final values the ring lacks; undefined for an empty ring. */
  pendingFinal(): number | undefined;
  isOverdue(now: number): boolean;
}

/**
 * Why a sweep should fetch this symbol now, or undefined: not warmed, a hole, past its boundary
 * deadline, unconfirmed for `staleAfterMs`, or a closed candle whose final values nobody delivered
 * within `staleAfterMs` of its close.
 */
export function sweepKind(candidate: SweepCandidate, bar: Interval, now: number, staleAfterMs: number): SweepKind | undefined {
  if (!candidate.isReady) return 'warm';
  if (candidate.holeFrom !== undefined) return 'repair';
  if (candidate.isOverdue(now)) return 'overdue';
  if (now - candidate.confirmedAt >= staleAfterMs) return 'stale';
  const pending = candidate.pendingFinal();
  if (pending !== undefined && closeTimeOf(bar, pending) < now - staleAfterMs) return 'final';
  return undefined;
}

/**
 * Orders due items by need (repairs, warm-ups, overdue closes, stale symbols, missing finals),
 * stalest first within a kind, and keeps those whose weights fit `allowance`: the first that does
 * not fit ends the plan, so that the neediest are never overtaken by cheaper ones.
 */
export function planSweep<T extends { readonly kind: SweepKind; readonly confirmedAt: number; readonly weight: number }>(
  due: readonly T[],
  allowance: number,
): T[] {
  const ordered = [...due].sort((a, b) => SWEEP_ORDER[a.kind] - SWEEP_ORDER[b.kind] || a.confirmedAt - b.confirmedAt);
  const planned: T[] = [];
  let left = allowance;
  for (const item of ordered) {
    if (item.weight > left) break;
    left -= item.weight;
    planned.push(item);
  }
  return planned;
}

/**
 * Requests the warm-up keeps in flight: as many as the budget pays for at once (`budget` weight
 * per window at `requestWeight` each), between `minimum` and `maximum` (the REST client's
 * connections). The weight governor paces them and keeps their order of need; a lower cap would
 * make the exchange's latency, not the budget, the bound of a cold start: with N in flight, R
 * requests wait R / N round trips.
 */
export function warmConcurrency(options: { budget: number; requestWeight: number; minimum: number; maximum: number }): number {
  const { budget, requestWeight, minimum, maximum } = options;
  const affordable = Math.floor(budget / Math.max(1, requestWeight));
  return Math.min(maximum, Math.max(minimum, affordable));
}

// Coarser intervals that seed a derived bucket's fold, longest first: a month is at most 30 daily
// klines, 23 hourly and 59 one-minute ones, whatever BAR is.
const SEED_LADDER: readonly Interval[] = ['1d', '1h', '1m'];

/**
 * The intervals whose native klines tile the start of a bucket of `interval` when the base ring
 * does not reach back to it, longest first: those of 1d, 1h and 1m that are made of whole `bar`
 * candles and tile `interval`. The rest of the bucket comes from `bar` candles. Each level costs
 * at most one request of fewer than 60 candles.
 *
 * @example
 * ```ts
 * seedLevels('1m', '1M'); // ['1d', '1h']: then up to 59 1m candles
 * seedLevels('1m', '1h'); // []: at most 59 1m candles
 * ```
 */
export function seedLevels(bar: Interval, interval: Interval): Interval[] {
  return SEED_LADDER.filter((level) => level !== bar && level !== interval && canAggregate(bar, level) && canAggregate(level, interval));
}
