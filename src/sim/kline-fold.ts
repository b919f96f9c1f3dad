/**
 * Exact folding of simulated candles: prices are whole ticks, quantities whole lots and quote
 * amounts whole 1e-8 units, so a candle of any length is the exact sum of the candles inside it,
 * and prints with the same digits whichever way it was summed.
 *
 * Sums can outgrow 2^53 (a month of BTCUSDT quote volume is about 1e18 units of 1e-8), so each
 * column is kept as `whole * base + rest`: `rest` takes the additions and spills its whole units
 * into `whole` before it could lose precision. `base` is the column's unit per whole (10^decimals):
 *
 * ```
 * 12345.67891234 quote  =  whole 12345, rest 67891234   (base 1e8)
 * add 99999999          ->  whole 12345, rest 167891233 (< 2^52: kept)
 * print                 ->  12346.67891233
 * ```
 *
 * @example
 * ```ts
 * const fold = new KlineFold(units.qtyDecimals);
 * writeRow(row, 0, open, high, low, close, volume, takerVolume, quote, takerQuote, trades); // units
 * fold.addRow(row, 0);
 * formatKline(fold, units, openTime, closeTime); // Binance's 12-value row
 * ```
 */
import type { RawKline } from '../binance/kline.js';

/** How a symbol's integer units print: decimals of a tick and a lot, and the decimals shown. */
export interface KlineUnits {
  /** A price unit (tick) is 10^-priceDecimals. */
  readonly priceDecimals: number;
  readonly priceDisplayDecimals: number;
  /** A quantity unit (lot) is 10^-qtyDecimals; quote amounts are always in units of 1e-8. */
  readonly qtyDecimals: number;
  readonly qtyDisplayDecimals: number;
}

/** Quote amounts are counted in units of 1e-8. */
export const QUOTE_DECIMALS = 8;

/**
 * Offsets of a candle's values in a row of ROW_FIELDS numbers, all integer units: how a series
 * keeps its minutes, and how any run of seconds is handed to a fold.
 */
export const ROW = {
  open: 0,
  high: 1,
  low: 2,
  close: 3,
  volume: 4,
  takerVolume: 5,
  quote: 6,
  takerQuote: 7,
  trades: 8,
} as const;

/** Numbers per row. */
export const ROW_FIELDS = 9;

/** Writes a candle's values (integer units) into `rows` from offset `i`. */
export function writeRow(
  rows: Float64Array,
  i: number,
  open: number,
  high: number,
  low: number,
  close: number,
  volume: number,
  takerVolume: number,
  quote: number,
  takerQuote: number,
  trades: number,
): void {
  rows[i + ROW.open] = open;
  rows[i + ROW.high] = high;
  rows[i + ROW.low] = low;
  rows[i + ROW.close] = close;
  rows[i + ROW.volume] = volume;
  rows[i + ROW.takerVolume] = takerVolume;
  rows[i + ROW.quote] = quote;
  rows[i + ROW.takerQuote] = takerQuote;
  rows[i + ROW.trades] = trades;
}

// Above this the rest of a sum spills into its whole part, so that adding another value below
// it stays exact (2^52 + 2^52 = 2^53 is still an exact double).
const SPILL_AT = 2 ** 52;

/**
 * A candle being folded from shorter ones, oldest first. Prices are ticks, the four amounts are
 * kept exactly (see the file header), trades are counted. `add` takes values below 2^52 units.
 */
export class KlineFold {
  /** Whether anything was folded in: no candle without at least one second. */
  isEmpty = true;
  open = 0;
  high = 0;
  low = 0;
  close = 0;
  trades = 0;
  // Each amount as whole units of 10^decimals plus a rest in units (see the file header).
  volumeWhole = 0;
  volumeRest = 0;
  takerWhole = 0;
  takerRest = 0;
  quoteWhole = 0;
  quoteRest = 0;
  takerQuoteWhole = 0;
  takerQuoteRest = 0;
  // Lots per whole unit of quantity (10^qtyDecimals); quote's is 1e8.
  readonly #qtyBase: number;

  constructor(qtyDecimals: number) {
    this.#qtyBase = 10 ** qtyDecimals;
  }

  /** Folds in the later candle of `rows` at offset `i` (each amount below 2^52). */
  addRow(rows: Float64Array, i: number): void {
    this.#prices(rows[i + ROW.open] as number, rows[i + ROW.high] as number, rows[i + ROW.low] as number, rows[i + ROW.close] as number);
    this.#amounts(
      0,
      rows[i + ROW.volume] as number,
      0,
      rows[i + ROW.takerVolume] as number,
      0,
      rows[i + ROW.quote] as number,
      0,
      rows[i + ROW.takerQuote] as number,
      rows[i + ROW.trades] as number,
    );
  }

  /** Folds in a later fold of the same units. */
  addFold(other: KlineFold): void {
    if (other.isEmpty) return;
    this.#prices(other.open, other.high, other.low, other.close);
    this.#amounts(
      other.volumeWhole,
      other.volumeRest,
      other.takerWhole,
      other.takerRest,
      other.quoteWhole,
      other.quoteRest,
      other.takerQuoteWhole,
      other.takerQuoteRest,
      other.trades,
    );
  }

  #prices(open: number, high: number, low: number, close: number): void {
    if (this.isEmpty) {
      this.isEmpty = false;
      this.open = open;
      this.high = high;
      this.low = low;
    } else {
      if (high > this.high) this.high = high;
      if (low < this.low) this.low = low;
    }
    this.close = close;
  }

  // Adds amounts given as whole units and rests; spills the rests before they could lose precision.
  #amounts(
    volumeWhole: number,
    volumeRest: number,
    takerWhole: number,
    takerRest: number,
    quoteWhole: number,
    quoteRest: number,
    takerQuoteWhole: number,
    takerQuoteRest: number,
    trades: number,
  ): void {
    this.trades += trades;
    this.volumeWhole += volumeWhole;
    this.volumeRest += volumeRest;
    this.takerWhole += takerWhole;
    this.takerRest += takerRest;
    this.quoteWhole += quoteWhole;
    this.quoteRest += quoteRest;
    this.takerQuoteWhole += takerQuoteWhole;
    this.takerQuoteRest += takerQuoteRest;
    if (this.volumeRest >= SPILL_AT || this.takerRest >= SPILL_AT) {
      [this.volumeWhole, this.volumeRest] = spill(this.volumeWhole, this.volumeRest, this.#qtyBase);
      [this.takerWhole, this.takerRest] = spill(this.takerWhole, this.takerRest, this.#qtyBase);
    }
    if (this.quoteRest >= SPILL_AT || this.takerQuoteRest >= SPILL_AT) {
      [this.quoteWhole, this.quoteRest] = spill(this.quoteWhole, this.quoteRest, QUOTE_BASE);
      [this.takerQuoteWhole, this.takerQuoteRest] = spill(this.takerQuoteWhole, this.takerQuoteRest, QUOTE_BASE);
    }
  }
}

const QUOTE_BASE = 10 ** QUOTE_DECIMALS;

// Moves the whole units of `rest` into `whole`; exact since rest < 2^53.
function spill(whole: number, rest: number, base: number): [number, number] {
  const carry = Math.floor(rest / base);
  return [whole + carry, rest - carry * base];
}

const POWERS_OF_TEN = Array.from({ length: 17 }, (_, i) => 10 ** i);
const ZEROS = Array.from({ length: 17 }, (_, i) => '0'.repeat(i));

/**
 * Prints `whole * 10^decimals + rest` units with `shown` decimals (shown >= decimals), exactly.
 *
 * @example
 * ```ts
 * formatUnits(0, 123456, 3, 8); // '123.45600000'
 * ```
 */
export function formatUnits(whole: number, rest: number, decimals: number, shown: number): string {
  const carry = Math.floor(rest / (POWERS_OF_TEN[decimals] as number));
  const integer = whole + carry;
  if (shown === 0) return String(integer);
  const fraction = decimals === 0 ? '' : String(rest - carry * (POWERS_OF_TEN[decimals] as number));
  // Built by concatenation from fixed zero runs: rows are printed by the thousand.
  return `${integer}.${ZEROS[decimals - fraction.length] as string}${fraction}${ZEROS[shown - decimals] as string}`;
}

/** The fold as Binance's 12-value kline row, in the symbol's decimals. */
export function formatKline(fold: KlineFold, units: KlineUnits, openTime: number, closeTime: number): RawKline {
  const { priceDecimals: pd, priceDisplayDecimals: pShown, qtyDecimals: qd, qtyDisplayDecimals: qShown } = units;
  const price = (ticks: number): string => formatUnits(0, ticks, pd, pShown);
  return [
    openTime,
    price(fold.open),
    price(fold.high),
    price(fold.low),
    price(fold.close),
    formatUnits(fold.volumeWhole, fold.volumeRest, qd, qShown),
    closeTime,
    formatUnits(fold.quoteWhole, fold.quoteRest, QUOTE_DECIMALS, QUOTE_DECIMALS),
    fold.trades,
    formatUnits(fold.takerWhole, fold.takerRest, qd, qShown),
    formatUnits(fold.takerQuoteWhole, fold.takerQuoteRest, QUOTE_DECIMALS, QUOTE_DECIMALS),
    '0',
  ];
}

/**
 * x rounded half up, as Math.floor(x + 0.5): Math.round is several times slower in V8 on some
 * machines, and the simulator rounds a few times per minute and per second.
 */
export function roundHalfUp(x: number): number {
  return Math.floor(x + 0.5);
}

/**
 * floor(a * b / c) for non-negative safe integers, exact: in doubles while a * b is below 2^53,
 * with BigInt beyond.
 *
 * @example
 * ```ts
 * mulDivFloor(7, 3, 2); // 10
 * ```
 */
export function mulDivFloor(a: number, b: number, c: number): number {
  const product = a * b;
  if (product <= Number.MAX_SAFE_INTEGER) return Math.floor(product / c);
  return Number((BigInt(a) * BigInt(b)) / BigInt(c));
}
