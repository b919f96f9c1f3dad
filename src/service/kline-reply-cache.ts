/**
 * Klines printed as Binance prints them, cached: a reply of 500 rows from a ring re-prints only
 * its newest row per request. Every row before the ring's newest can change only with the ring's
 * revision (see CandleRing.revision), so their JSON text is kept per (symbol, interval, row range)
 * and reused while the revision and the symbol's print format are the same.
 *
 * ```
 *   reply   [  cached rows [start, newest)  ,  newest row (printed per request)  ]
 *              Buffer, reused across requests  string, ~150 bytes
 * ```
 *
 * The cache is bounded in bytes (least recently used dropped first); an entry whose revision is
 * stale is printed again in place.
 *
 * @example
 * ```ts
 * const cache = new KlineReplyCache();
 * const closed = cache.rows(`BTCUSDT|1m`, server.candleRevision('BTCUSDT'), format, view, view.length - 500, view.length - 1);
 * const newest = klineJson(view, view.length - 1, format);
 * ```
 */
import { formatKline, type KlineFormat } from '../binance/kline-format.js';
import { KLINE_WIDTH } from '../binance/kline.js';
import type { CandleView } from '../store/candle-view.js';

// One printed row range of one ring.
interface Entry {
  revision: number;
  format: KlineFormat;
  text: Buffer;
}

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

/** Printed kline rows, cached per ring revision. */
export class KlineReplyCache {
  readonly #maxBytes: number;
  // Keyed `key|start|end`; Map order makes it an LRU.
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;

  /** `maxBytes`: printed text kept at most (default 64 MiB). */
  constructor(maxBytes = 64 * 1024 * 1024) {
    this.#maxBytes = maxBytes;
  }

  /** Lookups answered from the cache, and those that printed rows. */
  get stats(): { readonly hits: number; readonly misses: number; readonly bytes: number; readonly entries: number } {
    return { hits: this.#hits, misses: this.#misses, bytes: this.#bytes, entries: this.#entries.size };
  }

  /**
   * The rows [start, end) of `view` as JSON texts joined by commas (no brackets), from the cache
   * when `revision` and `format` are those they were printed with. Every row in the range must be
   * one the revision covers: not the view's newest.
   */
  rows(key: string, revision: number, format: KlineFormat, view: CandleView, start: number, end: number): Buffer {
    const id = `${key}|${start}|${end}`;
    const entry = this.#entries.get(id);
    if (entry !== undefined) {
      this.#entries.delete(id);
      this.#entries.set(id, entry);
      if (entry.revision === revision && sameFormat(entry.format, format)) {
        this.#hits += 1;
        return entry.text;
      }
      this.#bytes -= entry.text.length;
    }
    this.#misses += 1;
    const parts = new Array<string>(end - start);
    for (let r = start; r < end; r += 1) parts[r - start] = klineJson(view, r, format);
    const text = Buffer.from(parts.join(','), 'latin1');
    this.#entries.set(id, { revision, format, text });
    this.#bytes += text.length;
    for (const [oldId, old] of this.#entries) {
      if (this.#bytes <= this.#maxBytes || oldId === id) break;
      this.#entries.delete(oldId);
      this.#bytes -= old.text.length;
    }
    return text;
  }
}

function sameFormat(a: KlineFormat, b: KlineFormat): boolean {
  return a.price === b.price && a.quantity === b.quantity && a.quote === b.quote;
}
