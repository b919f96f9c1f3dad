/**
 * The candles of one symbol: the newest `length` klines, 12 float64 columns each, kept in one
 * Float64Array and updated in place.
 *
 * Layout: a sliding window with slack. The buffer holds `length + slack` rows; the live rows are
 * always contiguous, oldest first, so a zero-copy view never wraps around.
 *
 * ```
 *   row:   0        start                    start+count        length+slack
 *          |  free  | oldest ... newest(forming) |      free       |
 *                   '------- live rows ----------'
 *
 *   appending when start+count reaches the end: copyWithin the live rows to row 0
 *          | oldest ... newest | newest+1 |            free                 |
 * ```
 *
 * The copy happens once per `slack` appends, so an append costs O(length / slack) value moves
 * amortised: with slack = length/16 that is 16 rows, a few hundred nanoseconds, while the memory
 * overhead stays near 6% of the raw `length * 96` bytes.
 *
 * Rows are identified by open time (column 0), as Binance identifies klines:
 * - same open time as an existing row: overwrite in place (the forming candle's updates, and its
 *   final values when it closes);
 * - newer than the newest: append, dropping the oldest when full;
 * - older, inside the window: insert in order (a repair splice), dropping the oldest when full;
 * - older than the oldest while full: ignored (it would fall out of the window at once).
 *
 * @example
 * ```ts
 * const ring = new CandleRing(2880);
 * ring.upsert([1704067200000, '42000.1', '42010', '41990', '42005', '12.5', 1704067259999, '525000', 310, '6', '252000', '0']);
 * const view = ring.view(); // zero-copy, read it synchronously
 * view.close(view.length - 1); // 42005
 * ```
 */
import { InvalidArgumentError } from '../errors.js';
import { candlesBetween, nextOpenTime, previousOpenTime, type CandleGap } from '../binance/intervals.js';
import { KLINE_WIDTH, writeKlineNumbers, type RawKline } from '../binance/kline.js';
import type { Interval } from '../binance/markets.js';
import { CandleView, type CandleViewSource } from './candle-view.js';

const W = KLINE_WIDTH;

/** What `upsert` did with a row. */
export type UpsertResult = 'updated' | 'appended' | 'inserted' | 'ignored';

/** A row accepted by `upsert`: a REST kline, or 12 numbers in Binance's column order. */
export type CandleRowInput = RawKline | ArrayLike<number>;

/** Options of a `CandleRing`. */
export interface CandleRingOptions {
  /**
   * Spare rows beyond `length` that absorb appends between compactions. Default
   * `max(8, ceil(length / 16))`.
   */
  readonly slack?: number;
}

/**
 * A fixed-length, in-place candle store for one symbol. See the module comment for the layout.
 *
 * @example
 * ```ts
 * const ring = new CandleRing(3);
 * ring.upsertNumbers(60_000, 1, 2, 0.5, 1.5, 10, 119_999, 15, 4, 5, 7.5);
 * ring.count; // 1
 * ```
 */
export class CandleRing {
  /** Maximum number of candles kept (LENGTH). */
  readonly length: number;
  // Total rows in the buffer: length + slack.
  readonly #capacityRows: number;
  // Buffer and live range, shared with #view so the view follows the ring without allocating.
  readonly #state: CandleViewSource;
  readonly #view: CandleView;
  // Outcome of the last #place call, returned by the upsert methods without allocating.
  #placed: UpsertResult = 'ignored';
  // Changes when a row before the newest is rewritten: readers keep what they derive from rows
  // (printed replies) by open time and check this one number to know it still holds.
  #revision = nextRevision();

  constructor(length: number, options: CandleRingOptions = {}) {
    if (!Number.isSafeInteger(length) || length < 1) {
      throw new InvalidArgumentError(`ring length ${String(length)} is invalid: expected a positive integer`);
    }
    const slack = options.slack ?? Math.max(8, Math.ceil(length / 16));
    if (!Number.isSafeInteger(slack) || slack < 1) {
      throw new InvalidArgumentError(`ring slack ${String(slack)} is invalid: expected a positive integer`);
    }
    this.length = length;
    this.#capacityRows = length + slack;
    this.#state = { data: new Float64Array(this.#capacityRows * W), start: 0, count: 0 };
    this.#view = new CandleView(this.#state);
  }

  /** Number of candles held (at most `length`). */
  get count(): number {
    return this.#state.count;
  }

  /** True when the ring holds `length` candles. */
  get isFull(): boolean {
    return this.#state.count === this.length;
  }

  /** True when the ring holds no candle. */
  get isEmpty(): boolean {
    return this.#state.count === 0;
  }

  /** Open time of the newest candle (usually the forming one), or undefined when empty. */
  get newestOpenTime(): number | undefined {
    return this.#view.newestOpenTime;
  }

  /** Open time of the oldest candle, or undefined when empty. */
  get oldestOpenTime(): number | undefined {
    return this.#view.oldestOpenTime;
  }

  /**
   * A number that changes whenever a row before the newest is written again or a row is put among
   * the others (a repair, a merge, a restore, a clear). Appending, dropping the oldest rows and
   * updating the newest row in place (the forming candle, its close) leave it. So while it holds,
   * every row but the newest still has the values it had, under the same open time: what a reader
   * derived from them by open time stays valid. Unique across rings: a ring that replaces another
   * never shows a number the other had.
   */
  get revision(): number {
    return this.#revision;
  }

  /** Bytes of candle memory held (the buffer, slack included). */
  get byteLength(): number {
    return this.#state.data.byteLength;
  }

  /**
   * The live rows, zero-copy. The same view object is returned every time and reflects later
   * updates: read it synchronously. It cannot write into the ring.
   */
  view(): CandleView {
    return this.#view;
  }

  /** A view over a private copy of the live rows: stays fixed whatever the ring does later. */
  copy(): CandleView {
    const s = this.#state;
    return new CandleView({ data: this.#view.toFloat64Array(), start: 0, count: s.count });
  }

  /** Row index (0 = oldest) of the candle opening at `openTime`, or -1. */
  indexOf(openTime: number): number {
    const s = this.#state;
    if (s.count === 0) return -1;
    const i = this.#lowerBound(openTime);
    return i < s.count && s.data[(s.start + i) * W] === openTime ? i : -1;
  }

  /** Writes one row by open time (see the module comment). */
  upsert(row: CandleRowInput): UpsertResult {
    const offset = this.#place(openTimeOfRow(row, 'candle row'));
    if (offset >= 0) writeRow(row, this.#state.data, offset);
    return this.#placed;
  }

  /**
   * Writes one row from numbers already parsed: the WebSocket hot path, no allocation. Arguments
   * follow Binance's column order.
   */
  upsertNumbers(
    openTime: number,
    open: number,
    high: number,
    low: number,
    close: number,
    volume: number,
    closeTime: number,
    quoteVolume: number,
    trades: number,
    takerBuyBase: number,
    takerBuyQuote: number,
    ignore = 0,
  ): UpsertResult {
    const o = this.#place(openTime);
    if (o >= 0) {
      const d = this.#state.data;
      d[o] = openTime;
      d[o + 1] = open;
      d[o + 2] = high;
      d[o + 3] = low;
      d[o + 4] = close;
      d[o + 5] = volume;
      d[o + 6] = closeTime;
      d[o + 7] = quoteVolume;
      d[o + 8] = trades;
      d[o + 9] = takerBuyBase;
      d[o + 10] = takerBuyQuote;
      d[o + 11] = ignore;
    }
    return this.#placed;
  }

  /**
   * Writes a batch of rows (a REST page), in any order; within the batch the last row for an open
   * time wins. Returns how many distinct open times of the batch the ring holds afterwards.
   */
  upsertMany(rows: readonly CandleRowInput[]): number {
    const newest = this.newestOpenTime;
    let inOrder = true;
    for (let i = 0, previous = newest ?? -Infinity; i < rows.length; i++) {
      const t = rows[i]?.[0];
      if (typeof t !== 'number' || !(t >= previous)) {
        inOrder = false;
        break;
      }
      previous = t;
    }
    if (inOrder) {
      // The usual case (a page that continues the ring): every row is an O(1) update or append.
      let kept = 0;
      let previous = -1;
      for (const row of rows) {
        if (this.upsert(row) !== 'ignored' && row[0] !== previous) kept++;
        previous = row[0];
      }
      return Math.min(kept, this.length);
    }
    return this.#merge(rows);
  }

  /**
   * Replaces the content with `rows` (row-major, 12 values a row, open times strictly increasing),
   * keeping the newest `length` of them. Used to restore a snapshot.
   */
  assign(rows: Float64Array): void {
    if (rows.length % W !== 0) {
      throw new InvalidArgumentError(`candle data holds ${rows.length} values, expected a multiple of ${W}`);
    }
    const total = rows.length / W;
    for (let r = 0; r < total; r++) {
      const t = rows[r * W] as number;
      if (!Number.isSafeInteger(t) || t < 0 || (r > 0 && !(t > (rows[(r - 1) * W] as number)))) {
        throw new InvalidArgumentError(`candle row ${r} has open time ${t}: expected a non-negative integer above the previous row's`);
      }
    }
    const keep = Math.min(total, this.length);
    const s = this.#state;
    s.data.set(rows.subarray((total - keep) * W, total * W), 0);
    s.start = 0;
    s.count = keep;
    this.#revision = nextRevision();
  }

  /** Removes every candle. */
  clear(): void {
    this.#state.start = 0;
    this.#state.count = 0;
    this.#revision = nextRevision();
  }

  /** Removes the candles that open before `openTime`; returns how many. */
  dropBefore(openTime: number): number {
    const dropped = this.#lowerBound(openTime);
    const s = this.#state;
    s.start = s.count === dropped ? 0 : s.start + dropped;
    s.count -= dropped;
    return dropped;
  }

  /**
   * Holes between the oldest and the newest candle: open times the interval says should exist but
   * the ring lacks. Some are real exchange gaps (halts); the repair decides which by asking REST.
   */
  gaps(interval: Interval): CandleGap[] {
    const s = this.#state;
    const found: CandleGap[] = [];
    for (let r = 1; r < s.count; r++) {
      const previous = s.data[(s.start + r - 1) * W] as number;
      const current = s.data[(s.start + r) * W] as number;
      const expected = nextOpenTime(interval, previous);
      if (current > expected) {
        found.push({ from: expected, to: previousOpenTime(interval, current), candles: candlesBetween(interval, expected, current) });
      }
    }
    return found;
  }

  // First row index whose open time is >= t (count when none).
  #lowerBound(t: number): number {
    const s = this.#state;
    let lo = 0;
    let hi = s.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((s.data[(s.start + mid) * W] as number) < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // Makes room for the row opening at t; returns its offset in data, or -1 when ignored.
  #place(t: number): number {
    if (!Number.isSafeInteger(t) || t < 0) {
      throw new InvalidArgumentError(`candle open time ${t} is invalid: expected a non-negative integer (epoch ms)`);
    }
    const s = this.#state;
    const data = s.data;
    if (s.count === 0) {
      s.start = 0;
      s.count = 1;
      this.#placed = 'appended';
      return 0;
    }
    const newestRow = s.start + s.count - 1;
    const newest = data[newestRow * W] as number;
    if (t === newest) {
      this.#placed = 'updated';
      return newestRow * W;
    }
    if (t > newest) {
      if (s.count === this.length) {
        s.start++;
        s.count--;
      }
      if (s.start + s.count === this.#capacityRows) {
        data.copyWithin(0, s.start * W, (s.start + s.count) * W);
        s.start = 0;
      }
      s.count++;
      this.#placed = 'appended';
      return (s.start + s.count - 1) * W;
    }
    let i = this.#lowerBound(t);
    // Every outcome from here on but 'ignored' changes a row before the newest.
    if (data[(s.start + i) * W] === t) {
      this.#placed = 'updated';
      this.#revision = nextRevision();
      return (s.start + i) * W;
    }
    if (s.count === this.length) {
      if (i === 0) {
        this.#placed = 'ignored';
        return -1;
      }
      s.start++;
      s.count--;
      i--;
    }
    // Insert before row i, moving whichever side is shorter when both have room.
    const roomAtEnd = s.start + s.count < this.#capacityRows;
    if (s.start > 0 && (i < s.count - i || !roomAtEnd)) {
      data.copyWithin((s.start - 1) * W, s.start * W, (s.start + i) * W);
      s.start--;
    } else {
      data.copyWithin((s.start + i + 1) * W, (s.start + i) * W, (s.start + s.count) * W);
    }
    s.count++;
    this.#placed = 'inserted';
    this.#revision = nextRevision();
    return (s.start + i) * W;
  }

  // Merges an unordered batch with the live rows in O(n + m) instead of one shift per row.
  #merge(rows: readonly CandleRowInput[]): number {
    const m = rows.length;
    const incoming = new Float64Array(m * W);
    for (let j = 0; j < m; j++) {
      const row = rows[j] as CandleRowInput;
      openTimeOfRow(row, `candle row ${j}`);
      writeRow(row, incoming, j * W);
    }
    const order = Array.from({ length: m }, (_, j) => j).sort((a, b) => (incoming[a * W] as number) - (incoming[b * W] as number) || a - b);
    const s = this.#state;
    const merged = new Float64Array((s.count + m) * W);
    // 1 where the merged row came from the batch, to count what the batch contributed.
    const fromBatch = new Uint8Array(s.count + m);
    let k = 0;
    let i = 0;
    let j = 0;
    const live = (r: number) => s.data[(s.start + r) * W] as number;
    const batchTime = (n: number) => incoming[(order[n] as number) * W] as number;
    while (i < s.count || j < m) {
      // Equal open times inside the batch: only the last one counts.
      if (j + 1 < m && batchTime(j + 1) === batchTime(j)) {
        j++;
        continue;
      }
      const takeBatch = j < m && (i >= s.count || batchTime(j) <= live(i));
      if (takeBatch) {
        if (i < s.count && batchTime(j) === live(i)) i++;
        const from = (order[j] as number) * W;
        merged.set(incoming.subarray(from, from + W), k * W);
        fromBatch[k] = 1;
        j++;
      } else {
        merged.set(s.data.subarray((s.start + i) * W, (s.start + i + 1) * W), k * W);
        i++;
      }
      k++;
    }
    const keep = Math.min(k, this.length);
    s.data.set(merged.subarray((k - keep) * W, k * W), 0);
    s.start = 0;
    s.count = keep;
    this.#revision = nextRevision();
    let kept = 0;
    for (let r = k - keep; r < k; r++) kept += fromBatch[r] as number;
    return kept;
  }
}

// The last revision handed out, by any ring: revisions are unique within the process.
let revisions = 0;
function nextRevision(): number {
  revisions += 1;
  return revisions;
}

// Open time of a row after checking its shape, so nothing is placed for a row that cannot be written.
function openTimeOfRow(row: CandleRowInput, label: string): number {
  const t = row[0];
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) {
    throw new InvalidArgumentError(`${label} has open time ${JSON.stringify(t)}: expected a non-negative integer (epoch ms)`);
  }
  if (typeof row[1] !== 'string' && row.length < W) {
    throw new InvalidArgumentError(`${label} has ${row.length} values, expected ${W}`);
  }
  return t;
}

// Writes a REST kline or 12 numbers as float64 values at `offset`.
function writeRow(row: CandleRowInput, target: Float64Array, offset: number): void {
  if (typeof row[1] === 'string') {
    writeKlineNumbers(row as RawKline, target, offset);
    return;
  }
  for (let c = 0; c < W; c++) target[offset + c] = (row as ArrayLike<number>)[c] as number;
}
