/**
 * Longer intervals kept from the BAR stream alone (the rule's INTERVALS): a 1h ring beside a 1m
 * ring, with no stream and no steady weight of its own.
 *
 * A derived bar is the fold of the BAR candles inside it, as Binance builds its own klines:
 *
 * ```
 * open   the first candle's open        volume, quote volume,   exact decimal sums, printed
 * high   the highest high                taker-buy base/quote    with the symbol's decimals
 * low    the lowest low                  trades                  summed
 * close  the last candle's close         close time              the bucket's end - 1 ms
 * ```
 *
 * Only final BAR candles are folded, in order, as the base ring's final chain grows (a close on the
 * stream, a REST repair); each is folded exactly once. The forming derived bar is the fold plus the
 * base candles after the chain's end (normally just the forming one), recomputed on every base
 * update in O(1). When the fold takes in the last candle of a bucket, the derived bar is final: it
 * is written as such and `closed` is reported with its interval.
 *
 * ```
 *  base ring   ... [final][final][final][final][forming]
 *                         '------ bucket B -------------'
 *  fold of B   = fold(final rows of B)             derived row B = fold of B ⊕ forming
 * ```
 *
 * Volumes are summed exactly: each value is taken as the whole number of units of 10^-d it is
 * printed with (d = the symbol's decimals for that column), so a day of 1m volumes sums to the day's
 * volume as Binance prints it, without float drift, even where the total passes 2^53 units.
 *
 * History (closed derived bars older than the forming one) comes from Binance's native klines of
 * the interval, or a snapshot; the fold of the forming bucket is seeded at start from the base ring
 * when it reaches back to the bucket's start, else from native klines of coarser intervals (see
 * `seedPlan` in fetch-plan.ts).
 *
 * @example
 * ```ts
 * const series = new DerivedSeries({ symbol: 'BTCUSDT', bar: '1m', interval: '1h', ring, clock, events });
 * series.seed(tiles, base, format, eventTime); // after the warm-up's REST
 * series.follow(base, eventTime);              // after every base update
 * series.isServable(base, 180_000);
 * ```
 */
import { closeTimeOf, nextOpenTime, openTimeOf, previousOpenTime } from '../binance/intervals.js';
import { COL, KLINE_WIDTH, type RawKline } from '../binance/kline.js';
import { EIGHT_DECIMALS, type KlineFormat } from '../binance/kline-format.js';
import type { Interval } from '../binance/markets.js';
import type { CandleRing } from '../store/candle-ring.js';
import type { CandleView } from '../store/candle-view.js';
import { TrackedSymbol, type RuleClock, type RuleEvents } from './serve-rule.js';

const W = KLINE_WIDTH;

/**
 * An exact running sum of non-negative decimal values printed with `decimals` decimals, kept as a
 * whole part and a count of units of 10^-decimals, so that it stays exact past 2^53 units (while the
 * whole part stays below 2^53, some 9e15: no kline volume comes near).
 *
 * @example
 * ```ts
 * const sum = new DecimalSum();
 * sum.reset(8);
 * sum.add(0.1); sum.add(0.2);
 * sum.value(); // 0.3, not 0.30000000000000004
 * ```
 */
export class DecimalSum {
  #whole = 0;
  #units = 0;
  #scale = 1e8;
  #decimals = 8;

  /** Empties the sum and sets the decimals of the values to come. */
  reset(decimals: number): void {
    this.#whole = 0;
    this.#units = 0;
    this.#decimals = decimals;
    this.#scale = 10 ** decimals;
  }

  /** Copies another sum. */
  copy(from: DecimalSum): void {
    this.#whole = from.#whole;
    this.#units = from.#units;
    this.#decimals = from.#decimals;
    this.#scale = from.#scale;
  }

  /** Adds a value (a float parsed from a string with at most `decimals` decimals). */
  add(value: number): void {
    const whole = Math.trunc(value);
    this.#whole += whole;
    this.#units += Math.round((value - whole) * this.#scale);
    this.#carry();
  }

  /**
   * Adds a value as Binance prints it ("1236135790.14972190"): exact whatever its size, where a
   * float of more than 2^53 units no longer holds every decimal.
   */
  addText(text: string): void {
    const dot = text.indexOf('.');
    if (dot < 0 || /e/i.test(text)) {
      this.add(Number(text));
      return;
    }
    this.#whole += Number(text.slice(0, dot));
    const fraction = text.slice(dot + 1, dot + 1 + this.#decimals).padEnd(this.#decimals, '0');
    this.#units += Number(fraction) + (text.length > dot + 1 + this.#decimals && Number(text[dot + 1 + this.#decimals]) >= 5 ? 1 : 0);
    this.#carry();
  }

  /** The sum as the float nearest to its exact decimal value (what parsing Binance's string gives). */
  value(): number {
    return this.#toNumber(this.#whole, this.#units);
  }

  /** The value the sum would have with `value` added, leaving the sum as it is. */
  plus(value: number): number {
    const scale = this.#scale;
    const whole = Math.trunc(value);
    let sumWhole = this.#whole + whole;
    let units = this.#units + Math.round((value - whole) * scale);
    if (units >= scale || units < 0) {
      const carry = Math.floor(units / scale);
      sumWhole += carry;
      units -= carry * scale;
    }
    return this.#toNumber(sumWhole, units);
  }

  #toNumber(whole: number, units: number): number {
    const scale = this.#scale;
    // Below 2^53 units the integer is exact and one division rounds it correctly.
    if (Math.abs(whole) < Number.MAX_SAFE_INTEGER / scale - 1) return (whole * scale + units) / scale;
    return Number(`${whole}.${String(units).padStart(this.#decimals, '0')}`);
  }

  #carry(): void {
    const scale = this.#scale;
    if (this.#units >= scale) {
      const carry = Math.floor(this.#units / scale);
      this.#whole += carry;
      this.#units -= carry * scale;
    } else if (this.#units < 0) {
      const borrow = Math.ceil(-this.#units / scale);
      this.#whole -= borrow;
      this.#units += borrow * scale;
    }
  }
}

/** The fold of the candles of one bucket: open of the first, high, low, close of the last, sums. */
export class BarFold {
  /** Open time of the bucket; NaN before the first `start`. */
  bucket = Number.NaN;
  /** Candles folded. */
  count = 0;
  open = 0;
  high = 0;
  low = 0;
  close = 0;
  trades = 0;
  readonly volume = new DecimalSum();
  readonly quoteVolume = new DecimalSum();
  readonly takerBuyBase = new DecimalSum();
  readonly takerBuyQuote = new DecimalSum();

  /** Starts an empty fold of `bucket`, with the decimals the symbol's volumes are printed with. */
  start(bucket: number, format: KlineFormat): void {
    this.bucket = bucket;
    this.count = 0;
    this.trades = 0;
    this.volume.reset(format.quantity);
    this.takerBuyBase.reset(format.quantity);
    this.quoteVolume.reset(format.quote);
    this.takerBuyQuote.reset(format.quote);
  }

  /** Copies another fold. */
  copy(from: BarFold): void {
    this.bucket = from.bucket;
    this.count = from.count;
    this.open = from.open;
    this.high = from.high;
    this.low = from.low;
    this.close = from.close;
    this.trades = from.trades;
    this.volume.copy(from.volume);
    this.quoteVolume.copy(from.quoteVolume);
    this.takerBuyBase.copy(from.takerBuyBase);
    this.takerBuyQuote.copy(from.takerBuyQuote);
  }

  /** Folds row `r` of `view` (a later candle than every one folded so far). */
  addRow(view: CandleView, r: number): void {
    this.add(
      view.get(r, COL.open),
      view.get(r, COL.high),
      view.get(r, COL.low),
      view.get(r, COL.close),
      view.get(r, COL.volume),
      view.get(r, COL.quoteVolume),
      view.get(r, COL.trades),
      view.get(r, COL.takerBuyBase),
      view.get(r, COL.takerBuyQuote),
    );
  }

  /** Folds one kline as Binance printed it (a REST row): its volumes are taken from the text, exactly. */
  addKline(row: RawKline): void {
    this.#addPrices(Number(row[COL.open]), Number(row[COL.high]), Number(row[COL.low]), Number(row[COL.close]), row[COL.trades]);
    this.volume.addText(row[COL.volume]);
    this.quoteVolume.addText(row[COL.quoteVolume]);
    this.takerBuyBase.addText(row[COL.takerBuyBase]);
    this.takerBuyQuote.addText(row[COL.takerBuyQuote]);
    this.count += 1;
  }

  add(
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
    this.#addPrices(open, high, low, close, trades);
    this.volume.add(volume);
    this.quoteVolume.add(quoteVolume);
    this.takerBuyBase.add(takerBuyBase);
    this.takerBuyQuote.add(takerBuyQuote);
    this.count += 1;
  }

  #addPrices(open: number, high: number, low: number, close: number, trades: number): void {
    if (this.count === 0) {
      this.open = open;
      this.high = high;
      this.low = low;
    } else {
      if (high > this.high) this.high = high;
      if (low < this.low) this.low = low;
    }
    this.close = close;
    this.trades += trades;
  }

  /**
   * Writes the bar this fold would be with row `r` of `view` added (the forming candle) into
   * `target`, leaving the fold as it is: the hot path of every stream update.
   */
  writePlusRow(closeTime: number, view: CandleView, r: number, target: Float64Array): void {
    const high = view.get(r, COL.high);
    const low = view.get(r, COL.low);
    target[COL.openTime] = this.bucket;
    target[COL.open] = this.open;
    target[COL.high] = high > this.high ? high : this.high;
    target[COL.low] = low < this.low ? low : this.low;
    target[COL.close] = view.get(r, COL.close);
    target[COL.volume] = this.volume.plus(view.get(r, COL.volume));
    target[COL.closeTime] = closeTime;
    target[COL.quoteVolume] = this.quoteVolume.plus(view.get(r, COL.quoteVolume));
    target[COL.trades] = this.trades + view.get(r, COL.trades);
    target[COL.takerBuyBase] = this.takerBuyBase.plus(view.get(r, COL.takerBuyBase));
    target[COL.takerBuyQuote] = this.takerBuyQuote.plus(view.get(r, COL.takerBuyQuote));
    target[COL.ignore] = 0;
  }

  /** Writes the bar (12 values) for `interval` into `target`. */
  write(interval: Interval, target: Float64Array): void {
    target[COL.openTime] = this.bucket;
    target[COL.open] = this.open;
    target[COL.high] = this.high;
    target[COL.low] = this.low;
    target[COL.close] = this.close;
    target[COL.volume] = this.volume.value();
    target[COL.closeTime] = closeTimeOf(interval, this.bucket);
    target[COL.quoteVolume] = this.quoteVolume.value();
    target[COL.trades] = this.trades;
    target[COL.takerBuyBase] = this.takerBuyBase.value();
    target[COL.takerBuyQuote] = this.takerBuyQuote.value();
    target[COL.ignore] = 0;
  }
}

/** Options of {@link DerivedSeries}. */
export interface DerivedSeriesOptions {
  readonly symbol: string;
  /** The base interval (BAR). */
  readonly bar: Interval;
  /** The derived interval: made of whole BAR candles. */
  readonly interval: Interval;
  /** The ring of the derived interval (LENGTH rows). */
  readonly ring: CandleRing;
  readonly clock: RuleClock;
  /** `closed` is reported for every derived bar that becomes final; `hole` is not used. */
  readonly events: RuleEvents;
  /** How the exchange prints the symbol's volumes: the decimals of the exact sums. */
  readonly format?: () => KlineFormat;
}

/** One symbol's ring of one derived interval, kept current from the base ring. */
export class DerivedSeries {
  readonly symbol: string;
  readonly interval: Interval;
  /** The derived ring's bookkeeping: history from REST and snapshots, its final chain. */
  readonly tracked: TrackedSymbol;
  readonly #bar: Interval;
  readonly #events: RuleEvents;
  readonly #format: () => KlineFormat;
  // The fold of the final base candles of the bucket after the derived chain's end.
  readonly #fold = new BarFold();
  // A scratch fold for the forming bar, and the row written from it: no allocation per update.
  readonly #forming = new BarFold();
  readonly #row = new Float64Array(W);
  // Open time of the last base candle folded.
  #foldedThrough = 0;
  // The bucket of the base's newest candle, and its close time, computed once per candle.
  #newestSeen = Number.NaN;
  #newestBucket = 0;
  #newestCloseTime = 0;
  #isSeeded = false;

  constructor(options: DerivedSeriesOptions) {
    this.symbol = options.symbol;
    this.interval = options.interval;
    this.#bar = options.bar;
    this.#events = options.events;
    this.#format = options.format ?? (() => EIGHT_DECIMALS);
    this.tracked = new TrackedSymbol({ symbol: options.symbol, ring: options.ring, bar: options.interval, clock: options.clock });
  }

  /** The derived ring. */
  get ring(): CandleRing {
    return this.tracked.ring;
  }

  /** True once the fold of the forming bucket is seeded and follows the base ring. */
  get isSeeded(): boolean {
    return this.#isSeeded;
  }

  /** Open time of the last base candle folded; 0 before seeding. */
  get foldedThrough(): number {
    return this.#foldedThrough;
  }

  /** The fold must be seeded again (the base ring lost candles it had not folded, or a restart). */
  unseed(): void {
    this.#isSeeded = false;
  }

  /**
   * Seeds the fold of `bucket` with `tiles` (final candles of coarser intervals, or of BAR, that
   * tile the bucket from its start, in order, up to but not including `through`'s successor) and
   * then the base ring's final rows after them, and starts following the base. Returns false when
   * the base ring does not hold the final candles between the tiles' end and its chain's end (the
   * caller fetches and tries again).
   */
  seed(bucket: number, tiles: readonly RawKline[], tilesEnd: number, base: TrackedSymbol, eventTime: number): boolean {
    const fold = this.#fold;
    fold.start(bucket, this.#format());
    for (const tile of tiles) fold.addKline(tile);
    // tilesEnd: open time of the first base candle the tiles do not cover.
    this.#foldedThrough = previousOpenTime(this.#bar, tilesEnd);
    this.#isSeeded = true;
    if (!this.#foldFinalRows(base, eventTime)) {
      this.#isSeeded = false;
      return false;
    }
    this.tracked.markReady();
    this.#writeForming(base, eventTime);
    return true;
  }

  /**
   * Follows the base ring after any update: folds the base candles that became final, closes the
   * derived bars they complete, and rewrites the forming derived bar. O(1) per call in the steady
   * state; allocates nothing.
   */
  follow(base: TrackedSymbol, eventTime: number): void {
    if (!this.#isSeeded) return;
    if (base.finalOpenTime > this.#foldedThrough && !this.#foldFinalRows(base, eventTime)) {
      this.#isSeeded = false;
      return;
    }
    this.#writeForming(base, eventTime);
  }

  /**
   * Whether the derived view may be served: the base is (fresh, no hole, every closed candle
   * final), the fold follows it, and the derived ring's rows before its newest are final and its
   * newest is the base's forming bucket.
   */
  isServable(base: TrackedSymbol, securityMs: number): boolean {
    if (!this.#isSeeded || !this.tracked.isReady || !base.isServable(securityMs)) return false;
    const newest = base.ring.newestOpenTime;
    return newest !== undefined && this.ring.newestOpenTime === openTimeOf(this.interval, newest) && this.tracked.hasFinalRows();
  }

  /** Folds the base ring's final rows after `foldedThrough`; false when the ring no longer holds them. */
  #foldFinalRows(base: TrackedSymbol, eventTime: number): boolean {
    const view = base.ring.view();
    const finalEnd = base.finalOpenTime;
    let r = firstRowAfter(view, this.#foldedThrough);
    // Rows the fold still needs were dropped from the ring (more than LENGTH candles at once).
    if (r === 0 && view.length > 0 && view.openTime(0) > nextOpenTime(this.#bar, this.#foldedThrough)) return false;
    const fold = this.#fold;
    for (; r < view.length; r += 1) {
      const openTime = view.openTime(r);
      if (openTime > finalEnd) break;
      const bucket = openTimeOf(this.interval, openTime);
      if (bucket !== fold.bucket) {
        if (fold.count > 0) this.#close(eventTime);
        fold.start(bucket, this.#format());
      }
      fold.addRow(view, r);
      this.#foldedThrough = openTime;
      // The bucket's last candle: the derived bar is final now, not at the next bucket's first.
      if (nextOpenTime(this.#bar, openTime) >= nextOpenTime(this.interval, bucket)) {
        this.#close(eventTime);
        fold.start(nextOpenTime(this.interval, bucket), this.#format());
      }
    }
    return true;
  }

  /** Writes the fold as the final bar of its bucket and reports the close. */
  #close(eventTime: number): void {
    const fold = this.#fold;
    const tracked = this.tracked;
    fold.write(this.interval, this.#row);
    this.#upsert(this.#row);
    if (eventTime > tracked.confirmedAt) tracked.confirmedAt = eventTime;
    if (fold.bucket > tracked.finalOpenTime) {
      tracked.finalOpenTime = fold.bucket;
      this.#events.closed(this.symbol, fold.bucket, fold.close);
    }
  }

  /** Rewrites the forming derived bar: the fold plus the base rows after the chain's end in its bucket. */
  #writeForming(base: TrackedSymbol, eventTime: number): void {
    const view = base.ring.view();
    const count = view.length;
    if (count === 0) return;
    const newest = view.openTime(count - 1);
    if (newest !== this.#newestSeen) {
      this.#newestSeen = newest;
      this.#newestBucket = openTimeOf(this.interval, newest);
      this.#newestCloseTime = closeTimeOf(this.interval, this.#newestBucket);
    }
    const bucket = this.#newestBucket;
    const after = Math.max(this.#foldedThrough, bucket - 1);
    let r = count;
    while (r > 0 && view.openTime(r - 1) > after) r -= 1;
    const fold = this.#fold;
    const isFolding = fold.bucket === bucket && fold.count > 0;
    if (isFolding && r === count - 1) {
      // The usual case: the fold and the one forming candle.
      fold.writePlusRow(this.#newestCloseTime, view, r, this.#row);
    } else {
      const forming = this.#forming;
      if (isFolding) forming.copy(fold);
      else forming.start(bucket, this.#format());
      for (; r < count; r += 1) forming.addRow(view, r);
      if (forming.count === 0) return;
      forming.write(this.interval, this.#row);
    }
    this.#upsert(this.#row);
    if (eventTime > this.tracked.confirmedAt) this.tracked.confirmedAt = eventTime;
  }

  #upsert(row: Float64Array): void {
    this.tracked.ring.upsertNumbers(
      row[0] as number,
      row[1] as number,
      row[2] as number,
      row[3] as number,
      row[4] as number,
      row[5] as number,
      row[6] as number,
      row[7] as number,
      row[8] as number,
      row[9] as number,
      row[10] as number,
      row[11],
    );
  }
}

/** Index of the first row opening after `time` (the view's length when none). */
function firstRowAfter(view: CandleView, time: number): number {
  let low = 0;
  let high = view.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (view.openTime(mid) <= time) low = mid + 1;
    else high = mid;
  }
  return low;
}
