/**
 * A kline (candle) exactly as Binance sends it over REST: 12 values, times and trade counts as
 * JSON numbers and prices and volumes as strings. Keeping the strings lets daily files be written
 * without any float re-formatting.
 *
 * ```
 * index  0         1     2     3    4      5       6          7            8       9             10             11
 *        openTime  open  high  low  close  volume  closeTime  quoteVolume  trades  takerBuyBase  takerBuyQuote  ignore
 * ```
 */

/** One REST kline row. */
export type RawKline = [
  openTime: number,
  open: string,
  high: string,
  low: string,
  close: string,
  volume: string,
  closeTime: number,
  quoteVolume: string,
  trades: number,
  takerBuyBase: string,
  takerBuyQuote: string,
  ignore: string,
];

/** Column names in Binance's order; also the header row of the daily candle files. */
export const KLINE_COLUMNS = [
  'open_time',
  'open',
  'high',
  'low',
  'close',
  'volume',
  'close_time',
  'quote_volume',
  'count',
  'taker_buy_volume',
  'taker_buy_quote_volume',
  'ignore',
] as const;

/** Number of columns of a kline row and of a candle ring row. */
export const KLINE_WIDTH = 12;

/** Indexes of the columns, by name. */
export const COL = {
  openTime: 0,
  open: 1,
  high: 2,
  low: 3,
  close: 4,
  volume: 5,
  closeTime: 6,
  quoteVolume: 7,
  trades: 8,
  takerBuyBase: 9,
  takerBuyQuote: 10,
  ignore: 11,
} as const;

const NUMERIC_TEXT = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

/**
 * Checks that `row` has the shape of a REST kline. Returns a description of the first problem, or
 * undefined when the row is well formed.
 */
export function describeKlineProblem(row: unknown): string | undefined {
  if (!Array.isArray(row)) return `expected an array of 12 values, got ${typeof row}`;
  if (row.length !== KLINE_WIDTH) return `expected 12 values, got ${row.length}`;
  for (const index of [0, 6, 8] as const) {
    const value: unknown = row[index];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      return `${KLINE_COLUMNS[index]} must be a non-negative integer, got ${JSON.stringify(value)}`;
    }
  }
  for (const index of [1, 2, 3, 4, 5, 7, 9, 10, 11] as const) {
    const value: unknown = row[index];
    if (typeof value !== 'string' || !NUMERIC_TEXT.test(value)) {
      return `${KLINE_COLUMNS[index]} must be a decimal string, got ${JSON.stringify(value)}`;
    }
  }
  return undefined;
}

/** Writes a REST kline into `target` at `offset` as 12 float64 values. */
export function writeKlineNumbers(row: RawKline, target: Float64Array, offset: number): void {
  target[offset] = row[0];
  target[offset + 1] = Number(row[1]);
  target[offset + 2] = Number(row[2]);
  target[offset + 3] = Number(row[3]);
  target[offset + 4] = Number(row[4]);
  target[offset + 5] = Number(row[5]);
  target[offset + 6] = row[6];
  target[offset + 7] = Number(row[7]);
  target[offset + 8] = row[8];
  target[offset + 9] = Number(row[9]);
  target[offset + 10] = Number(row[10]);
  target[offset + 11] = Number(row[11]);
}

/**
 * A candle's values as numbers, named as Binance means them (the columns between the times, and
 * the trade count). Used where candles are computed rather than stored: aggregation, simulation.
 */
export interface KlineValues {
  readonly open: number;
  readonly high: number;
  readonly low: number;
  readonly close: number;
  /** Base-asset volume (contracts on CM). */
  readonly volume: number;
  /** Quote-asset volume (base-asset amount on CM). */
  readonly quoteVolume: number;
  readonly trades: number;
  readonly takerBuyBase: number;
  readonly takerBuyQuote: number;
}

/** A whole candle in numbers: {@link KlineValues} with its open and close time (epoch ms). */
export interface Kline extends KlineValues {
  readonly openTime: number;
  /** `openTime + interval - 1` ms, as Binance reports it, even for a forming candle. */
  readonly closeTime: number;
}
