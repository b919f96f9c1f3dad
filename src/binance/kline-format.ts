/**
 * How Binance prints a symbol's klines: how many decimals its prices, quantities and quote amounts
 * carry. A candle ring holds float64 values; to answer a client in Binance's own shape (strings
 * such as "42000.10000000" on spot, "42000.10" on a futures symbol with a 0.10 tick), each value
 * is printed back with the decimals the exchange uses for that column of that symbol.
 *
 * The decimals are learned from what the exchange itself sent (REST rows, daily files); until a
 * symbol has been seen, exchangeInfo gives them (spot prints 8 everywhere; futures print
 * `pricePrecision` and `quantityPrecision`, and 8 for quote amounts).
 *
 * @example
 * ```ts
 * const formats = new KlineFormats('SPOT');
 * formats.learn('BTCUSDT', restRow);
 * formatKline(view.at(-1), formats.of('BTCUSDT')); // [openTime, "42000.10000000", ...]
 * ```
 */
import { COL, KLINE_WIDTH, type RawKline } from './kline.js';
import type { MarketType } from './markets.js';

/** Decimals Binance prints for a symbol's kline columns. */
export interface KlineFormat {
  /** open, high, low, close. */
  readonly price: number;
  /** volume and taker-buy base volume (contracts on CM). */
  readonly quantity: number;
  /** quote volume and taker-buy quote volume (base-asset amounts on CM). */
  readonly quote: number;
}

/** What spot prints, and the fallback of every market: 8 decimals in every column. */
export const EIGHT_DECIMALS: KlineFormat = Object.freeze({ price: 8, quantity: 8, quote: 8 });

/** Decimals of a decimal string as Binance prints it ("42000.10" → 2, "206" → 0). */
export function decimalsOf(text: string): number {
  const dot = text.indexOf('.');
  if (dot < 0) return 0;
  let end = text.length;
  const exponent = text.search(/e/i);
  if (exponent > dot) end = exponent;
  return end - dot - 1;
}

/** The format a REST or daily-file row was printed with. */
export function formatOf(row: RawKline): KlineFormat {
  return {
    price: Math.max(decimalsOf(row[COL.open]), decimalsOf(row[COL.high]), decimalsOf(row[COL.low]), decimalsOf(row[COL.close])),
    quantity: Math.max(decimalsOf(row[COL.volume]), decimalsOf(row[COL.takerBuyBase])),
    quote: Math.max(decimalsOf(row[COL.quoteVolume]), decimalsOf(row[COL.takerBuyQuote])),
  };
}

/**
 * A candle (12 numbers in Binance's order, as a ring row) printed as Binance's REST row: times and
 * trades as numbers, the rest as strings with the format's decimals.
 *
 * @example
 * ```ts
 * formatKline([60_000, 1.5, 2, 1, 1.75, 10, 119_999, 17.5, 4, 5, 8.75, 0], { price: 2, quantity: 3, quote: 8 });
 * // [60000, "1.50", "2.00", "1.00", "1.75", "10.000", 119999, "17.50000000", 4, "5.000", "8.75000000", "0"]
 * ```
 */
export function formatKline(values: ArrayLike<number>, format: KlineFormat): RawKline {
  if (values.length < KLINE_WIDTH) throw new RangeError(`a kline has ${KLINE_WIDTH} values, got ${values.length}`);
  const price = (c: number) => fixed(values[c] as number, format.price);
  return [
    values[COL.openTime] as number,
    price(COL.open),
    price(COL.high),
    price(COL.low),
    price(COL.close),
    fixed(values[COL.volume] as number, format.quantity),
    values[COL.closeTime] as number,
    fixed(values[COL.quoteVolume] as number, format.quote),
    values[COL.trades] as number,
    fixed(values[COL.takerBuyBase] as number, format.quantity),
    fixed(values[COL.takerBuyQuote] as number, format.quote),
    String(values[COL.ignore] ?? 0),
  ];
}

// toFixed prints the double's exact value rounded to `decimals`: for a value parsed from a string
// with those decimals, that is the string again.
function fixed(value: number, decimals: number): string {
  return value.toFixed(decimals);
}

/**
 * The formats of one market's symbols: learned from the exchange's rows, else from exchangeInfo,
 * else {@link EIGHT_DECIMALS}.
 */
export class KlineFormats {
  readonly market: MarketType;
  readonly #learned = new Map<string, KlineFormat>();
  readonly #listed = new Map<string, KlineFormat>();

  constructor(market: MarketType) {
    this.market = market;
  }

  /** Takes the format of a row the exchange printed for `symbol` (the newest row wins). */
  learn(symbol: string, row: RawKline | undefined): void {
    if (row === undefined) return;
    const format = formatOf(row);
    const known = this.#learned.get(symbol);
    if (known === undefined || known.price !== format.price || known.quantity !== format.quantity || known.quote !== format.quote) {
      this.#learned.set(symbol, format);
    }
  }

  /** Takes the precisions of exchangeInfo's symbols (futures list pricePrecision and quantityPrecision). */
  learnInfo(symbols: readonly { symbol: string; pricePrecision?: number | undefined; quantityPrecision?: number | undefined }[]): void {
    if (this.market === 'SPOT') return;
    for (const s of symbols) {
      if (s.pricePrecision === undefined || s.quantityPrecision === undefined) continue;
      this.#listed.set(s.symbol, { price: s.pricePrecision, quantity: s.quantityPrecision, quote: 8 });
    }
  }

  /** The format to print `symbol`'s klines with. */
  of(symbol: string): KlineFormat {
    return this.#learned.get(symbol) ?? this.#listed.get(symbol) ?? EIGHT_DECIMALS;
  }
}
