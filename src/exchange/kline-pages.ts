/**
 * Plans the kline requests that fetch a range of candles for the least weight.
 *
 * Spot klines cost 2 whatever the limit, so pages of 1000 are best. Futures klines cost 1 below
 * 100 candles, 2 up to 499, 5 up to 1000 and 10 above: pages of 499 give about 250 candles per
 * unit of weight, and a remainder below 100 costs 1. Every page sends both `startTime` and
 * `endTime` around at most `limit` open times, so each market returns exactly that span whichever
 * end it counts from. CM returns the newest candles first and refuses windows over 200 days, so
 * CM pages run backwards from the newest and never span more than 200 days.
 *
 * ```
 *   from                                                          to
 *   |---- 499 ----|---- 499 ----|---- 499 ----|-- rest (<100: w1) --|   SPOT/UM: oldest page first
 *   |-- rest --|---- 499 ----|---- 499 ----|---- 499 ----|               CM: newest page first
 * ```
 *
 * @example
 * ```ts
 * planKlinePages({ market: 'UM', interval: '1m', from: 0, to: 999 * 60_000 });
 * // three pages: 499 + 499 candles (weight 2 each) and 2 candles (weight 1)
 * ```
 */
import { InvalidArgumentError } from '../errors.js';
import { intervalMs, nextOpenTime, openTimeOf, previousOpenTime } from '../binance/intervals.js';
import { MARKETS, type Interval, type MarketType } from '../binance/markets.js';

/** One klines request: both bounds are open times, inclusive. */
export interface KlinePage {
  readonly startTime: number;
  readonly endTime: number;
  /** Number of open times in [startTime, endTime]: the `limit` to send. */
  readonly limit: number;
  /** Request weight of this page. */
  readonly weight: number;
}

/** Input of {@link planKlinePages}. */
export interface KlinePagesRequest {
  readonly market: MarketType;
  readonly interval: Interval;
  /** Open time of the first candle wanted (aligned down to the interval). */
  readonly from: number;
  /** Open time of the last candle wanted, inclusive (aligned down to the interval). */
  readonly to: number;
  /** Longest span one request may cover, in ms; defaults to 200 days on CM, none elsewhere. */
  readonly maxWindowMs?: number;
}

/** CM refuses klines windows longer than 200 days. */
export const CM_MAX_WINDOW_MS = 200 * 86_400_000;

/**
 * The requests covering [from, to] for the least total weight, oldest first on SPOT and UM and
 * newest first on CM.
 *
 * @example
 * ```ts
 * planKlinePages({ market: 'SPOT', interval: '1h', from: 0, to: 3_600_000 * 1499 }).length; // 2
 * ```
 */
export function planKlinePages(request: KlinePagesRequest): KlinePage[] {
  const { market, interval } = request;
  const spec = MARKETS[market];
  if (!spec.intervals.includes(interval)) {
    throw new InvalidArgumentError(`interval "${interval}" is not offered on ${market} (expected one of ${spec.intervals.join(', ')})`);
  }
  if (!Number.isFinite(request.from) || !Number.isFinite(request.to)) {
    throw new InvalidArgumentError(`from and to must be epoch ms, got ${request.from} and ${request.to}`);
  }
  const from = openTimeOf(interval, request.from);
  const to = openTimeOf(interval, request.to);
  if (to < from) return [];
  const maxWindowMs = request.maxWindowMs ?? (market === 'CM' ? CM_MAX_WINDOW_MS : Number.POSITIVE_INFINITY);

  // Open times per page allowed by the window cap; a month counts as its longest, 31 days.
  const longest = interval === '1M' ? 31 * 86_400_000 : intervalMs(interval);
  const capCount = Math.max(1, Math.floor(maxWindowMs / longest));
  const sizes = pageSizes(Math.min(spec.klinesBestLimit, capCount), countOpenTimes(interval, from, to));
  const pages: KlinePage[] = [];
  if (spec.pagesBackwards) {
    let end = to;
    for (const limit of sizes) {
      const startTime = stepOpenTimes(interval, end, -(limit - 1));
      pages.push({ startTime, endTime: end, limit, weight: spec.klinesWeight(limit) });
      end = previousOpenTime(interval, startTime);
    }
  } else {
    let start = from;
    for (const limit of sizes) {
      const endTime = stepOpenTimes(interval, start, limit - 1);
      pages.push({ startTime: start, endTime, limit, weight: spec.klinesWeight(limit) });
      start = nextOpenTime(interval, endTime);
    }
  }
  return pages;
}

/**
 * Total weight of a plan.
 *
 * @example
 * ```ts
 * planWeight(planKlinePages({ market: 'UM', interval: '1m', from: 0, to: 998 * 60_000 })); // 5
 * ```
 */
export function planWeight(pages: readonly KlinePage[]): number {
  return pages.reduce((sum, page) => sum + page.weight, 0);
}

/**
 * Page sizes adding up to `total` with the least weight: full pages of the best size, then the
 * remainder. Spot costs the same for any size; on futures the best size (499) is the top of its
 * tier and a remainder keeps the cheapest tier that holds it, so this greedy split is optimal.
 */
function pageSizes(best: number, total: number): number[] {
  const sizes: number[] = [];
  let remaining = total;
  while (remaining > best) {
    sizes.push(best);
    remaining -= best;
  }
  if (remaining > 0) sizes.push(remaining);
  return sizes;
}

function countOpenTimes(interval: Interval, from: number, to: number): number {
  if (interval !== '1M') return Math.round((to - from) / intervalMs(interval)) + 1;
  let count = 0;
  for (let t = from; t <= to; t = nextOpenTime(interval, t)) count += 1;
  return count;
}

/** The open time `steps` candles after (or before, when negative) `openTime`. */
function stepOpenTimes(interval: Interval, openTime: number, steps: number): number {
  if (interval !== '1M') return openTime + steps * intervalMs(interval);
  let time = openTime;
  for (let i = 0; i < Math.abs(steps); i += 1) {
    time = steps > 0 ? nextOpenTime(interval, time) : previousOpenTime(interval, time);
  }
  return time;
}
