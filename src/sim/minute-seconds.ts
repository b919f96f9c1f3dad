/**
 * The 60 one-second steps of a simulated minute, derived from the minute alone (its prices and
 * totals in integer units) and a hash, so that the seconds add up to the minute exactly.
 *
 * Prices walk open -> first extreme -> second extreme -> close in three legs of 20 seconds (to
 * the low first on a rising minute, to the high first on a falling one), rounded to the tick and
 * jittered inside [low, high]; the legs end on the extremes, so the minute's high and low are the
 * path's max and min exactly. Second s opens at the price where second s - 1 ended.
 *
 * ```
 *  price                 high, second 39
 *    |                     /\
 *    |  open              /  \_/\_ close, second 59       a rising minute: open -> low ->
 *    |    \_/\_          /                               high -> close, 20 seconds a leg
 *    |         \_/\_  _/
 *    |              \/ low, second 19
 *    +------------------------------------------ second
 * ```
 *
 * Totals are split by cumulative floors: with prefix weights w(0) = 0 <= ... <= w(60), the
 * seconds before s get floor(total * w(s) / w(60)), so the seconds of any stretch sum exactly to
 * the difference of two prefixes and all 60 to the total. Trades are spread first (some seconds
 * get none); lots follow the trades (one lot per trade at least, so a second has volume exactly
 * when it has trades); taker lots follow the lots; the minute's quote amounts follow lots x
 * price (so one second's quote over its volume lies near its prices, not always inside them).
 *
 * A second that has begun but not ended has done the steps of it begun (halves): its price has
 * moved that share of the way from its open to its close, and each of its amounts is that share
 * of the second's, rounded up (so a second with trades shows some from its first step on).
 *
 * @example
 * ```ts
 * const split = new MinuteSeconds();
 * split.fill(key, minute, row, 0, false);
 * split.foldInto(fold, 0, 30); // the first half-minute
 * split.foldPartSecond(fold, 30, 1); // and the first half of the next second
 * ```
 */
import { hash32 as importedHash32 } from './hash.js';
import {
  type KlineFold,
  ROW,
  ROW_FIELDS,
  mulDivFloor as importedMulDivFloor,
  roundHalfUp,
  writeRow as importedWriteRow,
} from './kline-fold.js';

// Imports used in the hot loops, read once: loaders that compile modules to CommonJS (tsx,
// vitest) turn every use of an imported name into a getter call.
const hash32 = importedHash32;
const mulDivFloor = importedMulDivFloor;
const writeRow = importedWriteRow;
const round = roundHalfUp;

/** Seconds in a minute. */
export const SECONDS = 60;

/**
 * Steps of a second: a forming candle grows half a second at a time. Finer steps would make
 * every forming candle change, and be formatted again, at every push of a 250 ms stream.
 */
export const STEPS_PER_SECOND = 2;

const LEG = SECONDS / 3;
// Share of the minute's range by which the path wanders off its legs.
const JITTER = 0.3;

/** One minute split into seconds: the price path and prefix totals. Refilled in place. */
export class MinuteSeconds {
  /** Minute index (epoch ms / 60 000) the split holds; NaN when empty. */
  minute = Number.NaN;
  #open = 0;
  /** Price (ticks) at the end of each second. */
  readonly #price = new Float64Array(SECONDS);
  // Highest and lowest price of the seconds before s (the open for s = 0): the forming minute
  // folds its seconds from the first on, at every push of every stream.
  readonly #high = new Float64Array(SECONDS + 1);
  readonly #low = new Float64Array(SECONDS + 1);
  // Totals of the seconds before s, for s = 0..60.
  readonly #volume = new Float64Array(SECONDS + 1);
  readonly #taker = new Float64Array(SECONDS + 1);
  readonly #quote = new Float64Array(SECONDS + 1);
  readonly #takerQuote = new Float64Array(SECONDS + 1);
  readonly #trades = new Float64Array(SECONDS + 1);
  // The run of seconds being handed to a fold.
  readonly #run = new Float64Array(ROW_FIELDS);

  /**
   * Splits the minute whose row starts at `row[offset]`. `inverse`: quote amounts are lots over
   * price (coin-margined contracts) rather than lots times price.
   */
  fill(key: number, minute: number, row: Float64Array, offset: number, inverse: boolean): void {
    this.minute = minute;
    const open = row[offset + ROW.open] as number;
    const high = row[offset + ROW.high] as number;
    const low = row[offset + ROW.low] as number;
    const close = row[offset + ROW.close] as number;
    const volume = row[offset + ROW.volume] as number;
    const takerVolume = row[offset + ROW.takerVolume] as number;
    const trades = row[offset + ROW.trades] as number;
    this.#open = open;
    const rising = close >= open;
    const first = rising ? low : high;
    const second = rising ? high : low;
    const jitter = (high - low) * JITTER;
    // The path, and each second's weight for trades (hashed; about one in ten gets none), summed
    // into the trades array, which then becomes the trades prefix.
    const tradesPrefix = this.#trades;
    tradesPrefix[0] = 0;
    this.#high[0] = open;
    this.#low[0] = open;
    for (let s = 0; s < SECONDS; s += 1) {
      const leg = Math.floor(s / LEG);
      const from = leg === 0 ? open : leg === 1 ? first : second;
      const to = leg === 0 ? first : leg === 1 ? second : close;
      const i = s - leg * LEG + 1;
      let price = from + round(((to - from) * i) / LEG);
      const h = hash32(key, 0x5ec0, minute, s);
      if (i < LEG && jitter > 0) price = Math.min(high, Math.max(low, price + round(((h & 0xffff) / 0x10000 - 0.5) * jitter)));
      this.#price[s] = price;
      this.#high[s + 1] = Math.max(this.#high[s] as number, price);
      this.#low[s + 1] = Math.min(this.#low[s] as number, price);
      const x = (h >>> 24) & 63;
      tradesPrefix[s + 1] = (tradesPrefix[s] as number) + (((h >>> 16) & 0xff) < 26 ? 0 : 1 + ((x * x) >>> 4));
    }
    // All sixty seconds quiet by the hash: the last one trades.
    const totalWeight = (tradesPrefix[SECONDS] as number) || 1;
    const quotePrefix = this.#quote;
    const takerQuotePrefix = this.#takerQuote;
    quotePrefix[0] = 0;
    takerQuotePrefix[0] = 0;
    this.#volume[0] = 0;
    this.#taker[0] = 0;
    const rest = volume - trades;
    for (let s = 1; s <= SECONDS; s += 1) {
      // Read before it is overwritten: prefix s of the weights becomes prefix s of the trades.
      const tradesBefore = s === SECONDS ? trades : mulDivFloor(trades, tradesPrefix[s] as number, totalWeight);
      tradesPrefix[s] = tradesBefore;
      const lots = trades === 0 ? 0 : tradesBefore + mulDivFloor(rest, tradesBefore, trades);
      const taker = volume === 0 ? 0 : mulDivFloor(takerVolume, lots, volume);
      const price = this.#price[s - 1] as number;
      const stepLots = lots - (this.#volume[s - 1] as number);
      const stepTaker = taker - (this.#taker[s - 1] as number);
      this.#volume[s] = lots;
      this.#taker[s] = taker;
      // Weights for the quote amounts, turned into their prefixes below.
      quotePrefix[s] = (quotePrefix[s - 1] as number) + (inverse ? stepLots / price : stepLots * price);
      takerQuotePrefix[s] = (takerQuotePrefix[s - 1] as number) + (inverse ? stepTaker / price : stepTaker * price);
    }
    splitByWeights(quotePrefix, row[offset + ROW.quote] as number);
    splitByWeights(takerQuotePrefix, row[offset + ROW.takerQuote] as number);
  }

  /** Folds seconds [from, to) of the minute (0 <= from < to <= 60) into `fold`. */
  foldInto(fold: KlineFold, from: number, to: number): void {
    const open = from === 0 ? this.#open : (this.#price[from - 1] as number);
    let high = from === 0 ? (this.#high[to] as number) : open;
    let low = from === 0 ? (this.#low[to] as number) : open;
    for (let s = from === 0 ? to : from; s < to; s += 1) {
      const price = this.#price[s] as number;
      if (price > high) high = price;
      if (price < low) low = price;
    }
    writeRow(
      this.#run,
      0,
      open,
      high,
      low,
      this.#price[to - 1] as number,
      (this.#volume[to] as number) - (this.#volume[from] as number),
      (this.#taker[to] as number) - (this.#taker[from] as number),
      (this.#quote[to] as number) - (this.#quote[from] as number),
      (this.#takerQuote[to] as number) - (this.#takerQuote[from] as number),
      (this.#trades[to] as number) - (this.#trades[from] as number),
    );
    fold.addRow(this.#run, 0);
  }
  /**
   * Folds the first `steps` steps (1..STEPS_PER_SECOND) of second `s` into `fold`; all of them
   * is the whole second, as `foldInto(fold, s, s + 1)` gives it.
   */
  foldPartSecond(fold: KlineFold, s: number, steps: number): void {
    const open = s === 0 ? this.#open : (this.#price[s - 1] as number);
    const price = open + round((((this.#price[s] as number) - open) * steps) / STEPS_PER_SECOND);
    const share = (prefix: Float64Array): number => {
      const whole = (prefix[s + 1] as number) - (prefix[s] as number);
      // The share rounded up: whole - floor(whole * (10 - steps) / 10).
      return whole - mulDivFloor(whole, STEPS_PER_SECOND - steps, STEPS_PER_SECOND);
    };
    writeRow(
      this.#run,
      0,
      open,
      price > open ? price : open,
      price < open ? price : open,
      price,
      share(this.#volume),
      share(this.#taker),
      share(this.#quote),
      share(this.#takerQuote),
      share(this.#trades),
    );
    fold.addRow(this.#run, 0);
  }
}

/**
 * Turns prefix weights (w(0) = 0, nondecreasing) into prefix amounts of `total` in place:
 * floor(total * w(s) / w(60)), the last exactly `total`. Monotone in doubles, so every second's
 * share is >= 0, and the shares telescope to `total` whatever the rounding.
 */
function splitByWeights(prefix: Float64Array, total: number): void {
  const weight = prefix[SECONDS] as number;
  for (let s = 1; s < SECONDS; s += 1) {
    prefix[s] = weight > 0 ? Math.min(total, Math.floor((total * (prefix[s] as number)) / weight)) : 0;
  }
  prefix[SECONDS] = total;
}
