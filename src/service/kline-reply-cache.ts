/**
 * Klines printed as Binance prints them, cached: a reply of 500 rows from a ring prints only its
 * newest row per request, and when a candle closes, only that candle.
 *
 * Per ring (key `symbol|interval`) one entry holds the JSON text of a run of its closed rows, the
 * byte offset of each row in it and their open times. While the ring's revision is the same (no
 * row before the newest rewritten or inserted: see CandleRing.revision) and the symbol prints
 * with the same format, those rows still read the same, so
 *
 * ```
 *   entry     [ row k ][ row k+1 ] ... [ row m ]                 one Buffer, offsets per row
 *   request           [ row k+1 ... row m ][ m+1 ][ newest ]
 *                      subarray, no copy     printed   printed per request (not cached)
 *   after     the entry grows by the rows printed, and drops those the ring no longer holds
 * ```
 *
 * A changed revision or format prints the request's rows again. The entries together stay under
 * `maxBytes` (least recently used dropped first).
 *
 * @example
 * ```ts
 * const cache = new KlineReplyCache();
 * const closed = cache.rows('BTCUSDT|1m', server.candleRevision('BTCUSDT') ?? -1, format, view, view.length - 500, view.length - 1);
 * const newest = klineJson(view, view.length - 1, format);
 * ```
 */
import { formatKline, type KlineFormat } from '../binance/kline-format.js';
import { KLINE_WIDTH } from '../binance/kline.js';
import type { CandleView } from '../store/candle-view.js';
import { lowerBound } from '../util/lower-bound.js';

// The printed run of one ring's rows.
interface Entry {
  readonly revision: number;
  readonly format: KlineFormat;
  /** Rows' JSON texts joined by commas. */
  readonly text: Buffer;
  /** offsets[i]: where row i starts in `text`; offsets[count]: text.length + 1 (after a virtual comma). */
  readonly offsets: Int32Array;
  readonly openTimes: Float64Array;
}

const EMPTY = Buffer.alloc(0);
// Scratch row for printing, so that printing allocates only the strings it returns.
const scratch = new Float64Array(KLINE_WIDTH);

/**
 * One ring row as Binance's REST row, JSON: `[openTime,"open",...,"ignore"]`.
 *
 * @example
 * ```ts
 * klineJson(view, view.length - 1, { price: 2, quantity: 3, quote: 8 }); // '[1700000000000,"43000.10",...]'
 * ```
 */
export function klineJson(view: CandleView, row: number, format: KlineFormat): string {
  return JSON.stringify(formatKline(view.at(row, scratch), format));
}

/** Printed kline rows, reused while the ring's revision holds. */
export class KlineReplyCache {
  readonly #maxBytes: number;
  // Keyed by ring; Map order makes it an LRU.
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #printed = 0;

  /** `maxBytes`: printed text (and its offsets) kept at most (default 64 MiB). */
  constructor(maxBytes = 64 * 1024 * 1024) {
    this.#maxBytes = maxBytes;
  }

  /**
   * Lookups answered whole from the cache, lookups that printed rows, rows printed, bytes held.
   */
  get stats(): { readonly hits: number; readonly misses: number; readonly printedRows: number; readonly bytes: number } {
    return { hits: this.#hits, misses: this.#misses, printedRows: this.#printed, bytes: this.#bytes };
  }

  /**
   * The rows [start, end) of `view` as JSON texts joined by commas (no brackets). Every row in
   * the range must be one `revision` covers: not the view's newest. The Buffer may be part of
   * the cache's own: do not modify it.
   */
  rows(key: string, revision: number, format: KlineFormat, view: CandleView, start: number, end: number): Buffer {
    if (end <= start) return EMPTY;
    const entry = this.#entries.get(key);
    const usable = entry !== undefined && entry.revision === revision && sameFormat(entry.format, format) ? entry : undefined;
    const held = usable === undefined ? undefined : placeIn(usable, view);
    let next: Entry;
    let from: number;
    if (held !== undefined && held.viewStart <= end && held.viewEnd >= start) {
      // The held run overlaps or touches the request: print only what lies outside it.
      const u0 = Math.min(start, held.viewStart);
      const u1 = Math.max(end, held.viewEnd);
      if (u0 === held.viewStart && u1 === held.viewEnd) {
        // Inside the held run: a slice of its bytes.
        const e = usable as Entry;
        this.#hits += 1;
        this.#touch(key, e);
        const offsetOf = (viewRow: number): number => e.offsets[held.first + viewRow - held.viewStart] as number;
        return e.text.subarray(offsetOf(start), offsetOf(end) - 1);
      }
      next = this.#extend(usable as Entry, held, view, u0, u1, revision, format);
      from = u0;
    } else {
      next = this.#print(view, start, end, revision, format);
      from = start;
    }
    this.#misses += 1;
    this.#store(key, entry, next);
    return next.text.subarray(next.offsets[start - from], (next.offsets[end - from] as number) - 1);
  }

  /** An entry of view rows [u0, u1): the held run's bytes in the middle, the rest printed. */
  #extend(entry: Entry, held: Held, view: CandleView, u0: number, u1: number, revision: number, format: KlineFormat): Entry {
    const before = this.#texts(view, u0, held.viewStart, format);
    const after = this.#texts(view, held.viewEnd, u1, format);
    const middleStart = entry.offsets[held.first] as number;
    const middleEnd = (entry.offsets[held.first + held.viewEnd - held.viewStart] as number) - 1;
    const middle = entry.text.subarray(middleStart, middleEnd);
    const parts: Array<string | Buffer> = [];
    const offsets = new Int32Array(u1 - u0 + 1);
    let at = 0;
    let row = 0;
    const add = (text: string | Buffer, length: number): void => {
      if (parts.length > 0) parts.push(',');
      parts.push(text);
      at += length + 1;
    };
    for (const text of before) {
      offsets[row++] = at;
      add(text, text.length);
    }
    for (let i = held.first; i < held.first + held.viewEnd - held.viewStart; i += 1) {
      offsets[row++] = at + (entry.offsets[i] as number) - middleStart;
    }
    add(middle, middle.length);
    for (const text of after) {
      offsets[row++] = at;
      add(text, text.length);
    }
    offsets[row] = at;
    const text = Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'latin1') : part)));
    return { revision, format, text, offsets, openTimes: openTimesOf(view, u0, u1) };
  }

  /** An entry of view rows [start, end), all printed. */
  #print(view: CandleView, start: number, end: number, revision: number, format: KlineFormat): Entry {
    const texts = this.#texts(view, start, end, format);
    const offsets = new Int32Array(texts.length + 1);
    let at = 0;
    for (let i = 0; i < texts.length; i += 1) {
      offsets[i] = at;
      at += (texts[i] as string).length + 1;
    }
    offsets[texts.length] = at;
    return { revision, format, text: Buffer.from(texts.join(','), 'latin1'), offsets, openTimes: openTimesOf(view, start, end) };
  }

  #texts(view: CandleView, start: number, end: number, format: KlineFormat): string[] {
    const texts = new Array<string>(Math.max(0, end - start));
    for (let r = start; r < end; r += 1) texts[r - start] = klineJson(view, r, format);
    this.#printed += texts.length;
    return texts;
  }

  #store(key: string, old: Entry | undefined, next: Entry): void {
    if (old !== undefined) this.#bytes -= sizeOf(old);
    this.#entries.delete(key);
    this.#entries.set(key, next);
    this.#bytes += sizeOf(next);
    for (const [oldKey, oldEntry] of this.#entries) {
      if (this.#bytes <= this.#maxBytes || oldKey === key) break;
      this.#entries.delete(oldKey);
      this.#bytes -= sizeOf(oldEntry);
    }
  }

  #touch(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#entries.set(key, entry);
  }
}

/** Where an entry's rows sit in the view now: entry rows [first, ...) are view rows [viewStart, viewEnd). */
interface Held {
  readonly first: number;
  readonly viewStart: number;
  readonly viewEnd: number;
}

/**
 * The entry's rows the view still holds, as a run of view rows, or undefined when they are not
 * one run of the same open times (then the entry cannot be reused).
 */
function placeIn(entry: Entry, view: CandleView): Held | undefined {
  const times = entry.openTimes;
  const count = times.length;
  if (count === 0 || view.length === 0) return undefined;
  // Rows the ring dropped from its oldest end are left out.
  const first = lowerBound(count, (i) => times[i] as number, view.openTime(0));
  if (first >= count) return undefined;
  const viewStart = lowerBound(view.length, (i) => view.openTime(i), times[first] as number);
  const viewEnd = viewStart + count - first;
  if (viewEnd > view.length || view.openTime(viewStart) !== times[first] || view.openTime(viewEnd - 1) !== times[count - 1])
    return undefined;
  return { first, viewStart, viewEnd };
}

function openTimesOf(view: CandleView, start: number, end: number): Float64Array {
  const times = new Float64Array(end - start);
  for (let r = start; r < end; r += 1) times[r - start] = view.openTime(r);
  return times;
}

function sizeOf(entry: Entry): number {
  return entry.text.length + entry.offsets.byteLength + entry.openTimes.byteLength;
}

function sameFormat(a: KlineFormat, b: KlineFormat): boolean {
  return a.price === b.price && a.quantity === b.quantity && a.quote === b.quote;
}
