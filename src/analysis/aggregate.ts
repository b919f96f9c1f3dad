/**
 * Aggregation of candles into a longer period (1m into 5m, 1h, 1d, ...), the way Binance builds
 * its own: buckets open on the period's UTC boundaries (1d at 00:00 UTC, 1w on Monday, 1M on the
 * first of the month), and each bar takes
 *
 * ```
 * open   the first candle's open        volume, quote volume,   summed
 * high   the highest high                taker-buy base/quote,
 * low    the lowest low                  trades
 * close  the last candle's close         close time = bucket end − 1 ms
 * ```
 *
 * The last bar is the forming one when the source's last candle is (as in a ring), or when the
 * source stops before the bucket's end. A bucket the source has a hole in is built from the
 * candles it has; `candles` tells how many went into each bar.
 *
 * @example
 * ```ts
 * import { aggregate } from 'candle-server';
 * const fiveMinute = aggregate(server.getCandleSecurity('BTCUSDT'), '1m', '5m');
 * fiveMinute.at(-1)?.close; // the last price
 * ```
 */
import { InvalidArgumentError } from '../errors.js';
import { canAggregate, closeTimeOf, openTimeOf } from '../binance/intervals.js';
import { COL, type Kline, type RawKline } from '../binance/kline.js';
import type { Interval } from '../binance/markets.js';
import type { CandleView } from '../store/candle-view.js';

export { canAggregate } from '../binance/intervals.js';

/** One aggregated bar. Prices and volumes are numbers; times are epoch ms. */
export interface Bar extends Kline {
  /** Source candles in the bar. */
  readonly candles: number;
}

/**
 * Candles to aggregate: a CandleView (read in place, no copy), or rows in Binance's 12-column
 * order, as REST and the daily files give them (strings) or as plain numbers. Oldest first.
 */
export type AggregateSource = CandleView | readonly (RawKline | readonly number[])[];

/** Options of {@link aggregate}. */
export interface AggregateOptions {
  /** Leave out source candles that open before this time (epoch ms). */
  readonly from?: number;
}

/**
 * Aggregates `source` candles of interval `fromBar` into bars of `toPeriod`. `toPeriod` must be a
 * whole multiple of `fromBar` on the same boundaries (1m into 5m, 1h, 1d, 1w, 1M; not 1w into 1M).
 * Throws InvalidArgumentError otherwise, and when open times do not strictly increase.
 *
 * @example
 * ```ts
 * aggregate(rows, '1m', '1h');          // REST or daily-file rows
 * aggregate(view, '1m', '5m', { from }); // the ring's tail only
 * ```
 */
export function aggregate(source: AggregateSource, fromBar: Interval, toPeriod: Interval, options: AggregateOptions = {}): Bar[] {
  assertAggregatable(fromBar, toPeriod);
  const builder = new BarBuilder(toPeriod);
  const from = options.from ?? Number.NEGATIVE_INFINITY;
  if (isRowList(source)) {
    for (const row of source) {
      const openTime = Number(row[COL.openTime]);
      if (openTime < from) continue;
      builder.add(
        openTime,
        Number(row[COL.open]),
        Number(row[COL.high]),
        Number(row[COL.low]),
        Number(row[COL.close]),
        Number(row[COL.volume]),
        Number(row[COL.quoteVolume]),
        Number(row[COL.trades]),
        Number(row[COL.takerBuyBase]),
        Number(row[COL.takerBuyQuote]),
      );
    }
  } else {
    for (let r = firstRowFrom(source, from); r < source.length; r += 1) {
      builder.add(
        source.get(r, COL.openTime),
        source.get(r, COL.open),
        source.get(r, COL.high),
        source.get(r, COL.low),
        source.get(r, COL.close),
        source.get(r, COL.volume),
        source.get(r, COL.quoteVolume),
        source.get(r, COL.trades),
        source.get(r, COL.takerBuyBase),
        source.get(r, COL.takerBuyQuote),
      );
    }
  }
  return builder.finish();
}

/**
 * Joins two bar series of one period, `older` then `newer`, built from candles that do not
 * overlap (older history from files, newer from the ring, say). A bucket split between them is
 * merged into one bar; bars of `older` after the first bar of `newer` are dropped.
 *
 * @example
 * ```ts
 * const bars = concatBars(aggregate(fileRows, '1m', '1d'), aggregate(view, '1m', '1d'));
 * ```
 */
export function concatBars(older: readonly Bar[], newer: readonly Bar[]): Bar[] {
  const first = newer[0];
  if (first === undefined) return [...older];
  const kept = older.filter((bar) => bar.openTime <= first.openTime);
  const last = kept.at(-1);
  if (last === undefined || last.openTime !== first.openTime) return [...kept, ...newer];
  const merged: Bar = {
    openTime: first.openTime,
    open: last.open,
    high: Math.max(last.high, first.high),
    low: Math.min(last.low, first.low),
    close: first.close,
    volume: last.volume + first.volume,
    closeTime: first.closeTime,
    quoteVolume: last.quoteVolume + first.quoteVolume,
    trades: last.trades + first.trades,
    takerBuyBase: last.takerBuyBase + first.takerBuyBase,
    takerBuyQuote: last.takerBuyQuote + first.takerBuyQuote,
    candles: last.candles + first.candles,
  };
  return [...kept.slice(0, -1), merged, ...newer.slice(1)];
}

function assertAggregatable(fromBar: Interval, toPeriod: Interval): void {
  if (!canAggregate(fromBar, toPeriod)) {
    throw new InvalidArgumentError(
      `cannot aggregate ${fromBar} candles into ${toPeriod}: expected a period that is a whole multiple of ${fromBar} on the same boundaries`,
    );
  }
}

function isRowList(source: AggregateSource): source is readonly (RawKline | readonly number[])[] {
  return Array.isArray(source);
}

/** First row opening at or after `from`: a binary search, since a ring's rows are ordered. */
function firstRowFrom(view: CandleView, from: number): number {
  let low = 0;
  let high = view.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (view.get(mid, COL.openTime) < from) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Folds ordered candles into bars of one period. */
class BarBuilder {
  readonly #period: Interval;
  readonly #bars: Bar[] = [];
  // The bucket being filled; NaN open time means none yet.
  #openTime = Number.NaN;
  #open = 0;
  #high = 0;
  #low = 0;
  #close = 0;
  #volume = 0;
  #quoteVolume = 0;
  #trades = 0;
  #takerBuyBase = 0;
  #takerBuyQuote = 0;
  #candles = 0;
  // Open time of the last candle added, to refuse unordered input.
  #lastCandle = Number.NEGATIVE_INFINITY;

  constructor(period: Interval) {
    this.#period = period;
  }

  add(
    openTime: number,
    open: number,
    high: number,
    low: number,
    close: number,
    volume: number,
    quoteVolume: number,
    trades: number,
    takerBuyBase: number,
    takerBuyQuote: number,
  ): void {
    if (!(openTime > this.#lastCandle)) {
      throw new InvalidArgumentError(`candle open times must strictly increase: got ${openTime} after ${this.#lastCandle}`);
    }
    this.#lastCandle = openTime;
    const bucket = openTimeOf(this.#period, openTime);
    if (bucket !== this.#openTime) {
      this.#flush();
      this.#openTime = bucket;
      this.#open = open;
      this.#high = high;
      this.#low = low;
      this.#volume = 0;
      this.#quoteVolume = 0;
      this.#trades = 0;
      this.#takerBuyBase = 0;
      this.#takerBuyQuote = 0;
      this.#candles = 0;
    } else {
      if (high > this.#high) this.#high = high;
      if (low < this.#low) this.#low = low;
    }
    this.#close = close;
    this.#volume += volume;
    this.#quoteVolume += quoteVolume;
    this.#trades += trades;
    this.#takerBuyBase += takerBuyBase;
    this.#takerBuyQuote += takerBuyQuote;
    this.#candles += 1;
  }

  finish(): Bar[] {
    this.#flush();
    this.#openTime = Number.NaN;
    return this.#bars;
  }

  #flush(): void {
    if (Number.isNaN(this.#openTime)) return;
    this.#bars.push({
      openTime: this.#openTime,
      open: this.#open,
      high: this.#high,
      low: this.#low,
      close: this.#close,
      volume: this.#volume,
      closeTime: closeTimeOf(this.#period, this.#openTime),
      quoteVolume: this.#quoteVolume,
      trades: this.#trades,
      takerBuyBase: this.#takerBuyBase,
      takerBuyQuote: this.#takerBuyQuote,
      candles: this.#candles,
    });
  }
}
