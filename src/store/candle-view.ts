/**
 * A read-only window onto the live rows of a candle ring: `length` rows of Binance's 12 kline
 * columns, oldest first, the forming candle last.
 *
 * A view never exposes the Float64Array behind it, so a caller cannot write into the ring through
 * it; every method that hands out numbers in bulk copies them. A view from `ring.view()` is
 * zero-copy: it reads the ring's memory directly, is reused for every read, and reflects later
 * updates. Use it synchronously (read what you need before the next `await`), or take
 * `ring.copy()` / `toFloat64Array()` for data that must stay fixed.
 *
 * @example
 * ```ts
 * const view = ring.view();
 * const lastClose = view.close(view.length - 1);
 * const closes = view.column(COL.close); // a Float64Array copy
 * ```
 */
import { InvalidArgumentError } from '../errors.js';
import { COL, KLINE_WIDTH } from '../binance/kline.js';

/**
 * Where a view's rows live: row r, column c is `data[(start + r) * 12 + c]`. The ring owns and
 * mutates this object; a view only reads it.
 */
export interface CandleViewSource {
  data: Float64Array;
  start: number;
  count: number;
}

/**
 * Read-only access to candle rows. Obtain one from `CandleRing.view()` (zero-copy, valid for
 * synchronous use) or `CandleRing.copy()` (a private copy); `EMPTY_CANDLE_VIEW` stands for no data.
 *
 * @example
 * ```ts
 * const view = ring.view();
 * for (let r = 0; r < view.length; r++) sum += view.close(r);
 * ```
 */
export class CandleView {
  // Shared with the owning ring, so the view follows it without any per-read allocation.
  readonly #source: CandleViewSource;

  /** Wraps a source; library code builds views through `CandleRing`, not directly. */
  constructor(source: CandleViewSource) {
    this.#source = source;
  }

  /** Number of rows (candles). */
  get length(): number {
    return this.#source.count;
  }

  /** Number of columns per row: always 12, Binance's kline order. */
  get width(): number {
    return KLINE_WIDTH;
  }

  /** Total number of values, `length * 12`. */
  get size(): number {
    return this.#source.count * KLINE_WIDTH;
  }

  /** True when the view has no rows. */
  get isEmpty(): boolean {
    return this.#source.count === 0;
  }

  /** Value at `row` (0 = oldest) and `col` (see `COL`). Throws on an index out of range. */
  get(row: number, col: number): number {
    const s = this.#source;
    if (!(row >= 0 && row < s.count && Number.isInteger(row)) || !(col >= 0 && col < KLINE_WIDTH && Number.isInteger(col))) {
      throw new InvalidArgumentError(
        `candle index (${row}, ${col}) is out of range: expected row 0..${s.count - 1} and column 0..${KLINE_WIDTH - 1}`,
      );
    }
    return s.data[(s.start + row) * KLINE_WIDTH + col] as number;
  }

  /** Open time (epoch ms) of `row`. */
  openTime(row: number): number {
    return this.get(row, COL.openTime);
  }

  /** Open price of `row`. */
  open(row: number): number {
    return this.get(row, COL.open);
  }

  /** High price of `row`. */
  high(row: number): number {
    return this.get(row, COL.high);
  }

  /** Low price of `row`. */
  low(row: number): number {
    return this.get(row, COL.low);
  }

  /** Close price of `row` (the last price, for the forming candle). */
  close(row: number): number {
    return this.get(row, COL.close);
  }

  /** Base-asset volume of `row`. */
  volume(row: number): number {
    return this.get(row, COL.volume);
  }

  /** Open time of the newest row, or undefined when empty. */
  get newestOpenTime(): number | undefined {
    const s = this.#source;
    return s.count === 0 ? undefined : s.data[(s.start + s.count - 1) * KLINE_WIDTH];
  }

  /** Open time of the oldest row, or undefined when empty. */
  get oldestOpenTime(): number | undefined {
    const s = this.#source;
    return s.count === 0 ? undefined : s.data[s.start * KLINE_WIDTH];
  }

  /**
   * Copy of one row (12 values) into `target` (or a new array). Negative `row` counts from the
   * end: `at(-1)` is the newest candle.
   */
  at(row: number, target: Float64Array = new Float64Array(KLINE_WIDTH)): Float64Array {
    const s = this.#source;
    const r = row < 0 ? s.count + row : row;
    this.get(r, 0); // bounds check with the usual message
    const from = (s.start + r) * KLINE_WIDTH;
    target.set(s.data.subarray(from, from + KLINE_WIDTH));
    return target;
  }

  /** Copy of one column over all rows, oldest first, into `target` (or a new array). */
  column(col: number, target: Float64Array = new Float64Array(this.#source.count)): Float64Array {
    const s = this.#source;
    if (!(col >= 0 && col < KLINE_WIDTH && Number.isInteger(col))) {
      throw new InvalidArgumentError(`column ${col} is out of range: expected 0..${KLINE_WIDTH - 1}`);
    }
    if (target.length < s.count) {
      throw new InvalidArgumentError(`column target holds ${target.length} values, expected at least ${s.count}`);
    }
    for (let r = 0, i = s.start * KLINE_WIDTH + col; r < s.count; r++, i += KLINE_WIDTH) target[r] = s.data[i] as number;
    return target;
  }

  /** Copy of every row, row-major (`length * 12` values, oldest first), into `target` or a new array. */
  toFloat64Array(target: Float64Array = new Float64Array(this.size)): Float64Array {
    const s = this.#source;
    if (target.length < s.count * KLINE_WIDTH) {
      throw new InvalidArgumentError(`target holds ${target.length} values, expected at least ${s.count * KLINE_WIDTH}`);
    }
    target.set(s.data.subarray(s.start * KLINE_WIDTH, (s.start + s.count) * KLINE_WIDTH));
    return target;
  }

  /** Copy of every row as plain arrays (`number[][]`), oldest first: convenient, not fast. */
  toArray(): number[][] {
    const s = this.#source;
    const rows: number[][] = new Array<number[]>(s.count);
    for (let r = 0; r < s.count; r++) {
      const from = (s.start + r) * KLINE_WIDTH;
      rows[r] = Array.from(s.data.subarray(from, from + KLINE_WIDTH));
    }
    return rows;
  }
}

/**
 * A view with no rows: what a reader gets for an unknown or stale symbol.
 *
 * @example
 * ```ts
 * const candles = fresh ? ring.view() : EMPTY_CANDLE_VIEW;
 * candles.length; // 0 when stale
 * ```
 */
export const EMPTY_CANDLE_VIEW: CandleView = new CandleView({ data: new Float64Array(0), start: 0, count: 0 });
