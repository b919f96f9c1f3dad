/**
 * Technical indicators over plain number series, shared by the chart page and by bots: the page
 * bundles this very file, so what a bot computes is what the chart draws.
 *
 * Every function takes any array-like of numbers (a `number[]`, a `Float64Array` from
 * `CandleView.column(COL.close)`, ...) and returns a `Float64Array` of the same length, aligned
 * index for index with the input. Positions without enough data before them hold `NaN`; so does
 * every window that contains a `NaN` input. Nothing here touches I/O or the clock.
 *
 * @example
 * ```ts
 * import { COL, bollinger, rsi, sma } from 'candle-server';
 * const closes = candles.column(COL.close);
 * const ma20 = sma(closes, 20);
 * const { upper, lower } = bollinger(closes, 20, 2);
 * const rsi14 = rsi(closes, 14);
 * ```
 */
import { InvalidArgumentError } from '../errors.js';

/** Bollinger bands, each aligned with the input series. */
export interface BollingerBands {
  /** The simple moving average of the window. */
  readonly middle: Float64Array;
  /** middle + k·σ. */
  readonly upper: Float64Array;
  /** middle − k·σ. */
  readonly lower: Float64Array;
}

/**
 * Simple moving average: the mean of the last `n` values, `NaN` for the first `n - 1` positions.
 *
 * @example
 * ```ts
 * sma([1, 2, 3, 4], 2); // Float64Array [NaN, 1.5, 2.5, 3.5]
 * ```
 */
export function sma(values: ArrayLike<number>, n: number): Float64Array {
  assertPeriod('sma', n);
  const out = new Float64Array(values.length).fill(Number.NaN);
  // A running sum of the finite values in the window, with a count of the NaNs in it, so that one
  // NaN spoils only the windows that hold it instead of every later sum.
  let sum = 0;
  let nans = 0;
  for (let i = 0; i < values.length; i += 1) {
    const entering = values[i] as number;
    if (Number.isNaN(entering)) nans += 1;
    else sum += entering;
    if (i >= n) {
      const leaving = values[i - n] as number;
      if (Number.isNaN(leaving)) nans -= 1;
      else sum -= leaving;
    }
    // The running sum drifts by rounding over long series; re-adding the window when it becomes
    // clean keeps each value exact to the window's own rounding.
    if (i >= n - 1 && nans === 0) {
      if (i % n === 0) sum = windowSum(values, i - n + 1, i + 1);
      out[i] = sum / n;
    }
  }
  return out;
}

/**
 * Bollinger bands: the `n`-value simple moving average, plus and minus `k` times the standard
 * deviation of the same window. The deviation is the population one (divide by `n`, not `n - 1`),
 * as in John Bollinger's definition and in most charting software.
 *
 * @example
 * ```ts
 * const { middle, upper, lower } = bollinger(closes, 20, 2);
 * ```
 */
export function bollinger(values: ArrayLike<number>, n = 20, k = 2): BollingerBands {
  assertPeriod('bollinger', n);
  if (!Number.isFinite(k) || k < 0) throw new InvalidArgumentError(`bollinger k must be a non-negative number, got ${String(k)}`);
  const middle = sma(values, n);
  const upper = new Float64Array(values.length).fill(Number.NaN);
  const lower = new Float64Array(values.length).fill(Number.NaN);
  for (let i = n - 1; i < values.length; i += 1) {
    const mean = middle[i] as number;
    if (Number.isNaN(mean)) continue;
    // Two-pass over the window (n is small): the one-pass E[x²] − E[x]² loses every digit when
    // prices are large and the band is narrow.
    let squares = 0;
    for (let j = i - n + 1; j <= i; j += 1) {
      const d = (values[j] as number) - mean;
      squares += d * d;
    }
    const sigma = Math.sqrt(squares / n);
    upper[i] = mean + k * sigma;
    lower[i] = mean - k * sigma;
  }
  return { middle, upper, lower };
}

/**
 * Relative Strength Index with Wilder's smoothing, as J. Welles Wilder defined it in "New Concepts
 * in Technical Trading Systems" (1978) and as StockCharts' ChartSchool spells it out:
 *
 * - change_i = value_i − value_{i−1}; gain = max(change, 0), loss = max(−change, 0);
 * - the first average gain (loss) is the plain mean of the first `n` gains (losses), so the first
 *   RSI is at index `n` (it needs `n + 1` values);
 * - after that, avg = (previous avg × (n − 1) + current) / n;
 * - RSI = 100 − 100 / (1 + avgGain / avgLoss); 100 when avgLoss is 0, and 50 when both averages
 *   are 0 (a flat series has no strength either way).
 *
 * A `NaN` value stops the smoothing; it starts afresh `n` changes after the last `NaN`.
 *
 * @example
 * ```ts
 * const r = rsi(closes, 14);
 * r[13]; // NaN: 14 values give only 13 changes
 * r[14]; // the first RSI
 * ```
 */
export function rsi(values: ArrayLike<number>, n = 14): Float64Array {
  assertPeriod('rsi', n);
  const out = new Float64Array(values.length).fill(Number.NaN);
  let avgGain = 0;
  let avgLoss = 0;
  // Changes seen since the series (re)started; the averages are plain sums until it reaches n.
  let changes = 0;
  for (let i = 1; i < values.length; i += 1) {
    const change = (values[i] as number) - (values[i - 1] as number);
    if (Number.isNaN(change)) {
      changes = 0;
      avgGain = 0;
      avgLoss = 0;
      continue;
    }
    const gain = change > 0 ? change : 0;
    const loss = change < 0 ? -change : 0;
    changes += 1;
    if (changes < n) {
      avgGain += gain;
      avgLoss += loss;
      continue;
    }
    if (changes === n) {
      avgGain = (avgGain + gain) / n;
      avgLoss = (avgLoss + loss) / n;
    } else {
      avgGain = (avgGain * (n - 1) + gain) / n;
      avgLoss = (avgLoss * (n - 1) + loss) / n;
    }
    out[i] = rsiOf(avgGain, avgLoss);
  }
  return out;
}

function rsiOf(avgGain: number, avgLoss: number): number {
  if (avgLoss === 0) return avgGain === 0 ? 50 : 100;
  return 100 - 100 / (1 + avgGain / avgLoss);
}

function windowSum(values: ArrayLike<number>, from: number, to: number): number {
  let sum = 0;
  for (let j = from; j < to; j += 1) sum += values[j] as number;
  return sum;
}

function assertPeriod(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} period must be a positive integer, got ${String(n)}`);
}
