/**
 * The candle rings of every symbol served, all of the same LENGTH.
 *
 * @example
 * ```ts
 * const map = new CandleMap(2880);
 * map.add('BTCUSDT').upsert(kline);
 * map.get('BTCUSDT')?.view().length; // 1
 * map.byteLength; // about symbols × 2880 × 96 bytes
 * ```
 */
import { InvalidArgumentError } from '../errors.js';
import { SYMBOL_PATTERN } from '../binance/markets.js';
import { CandleRing, type CandleRingOptions } from './candle-ring.js';

/**
 * Map from symbol to its `CandleRing`. Symbols are validated against Binance's pattern.
 *
 * @example
 * ```ts
 * const map = new CandleMap(1440);
 * const ring = map.add('ETHUSDT');
 * map.symbols(); // ['ETHUSDT']
 * ```
 */
export class CandleMap {
  /** Candles kept per symbol (LENGTH). */
  readonly length: number;
  readonly #ringOptions: CandleRingOptions;
  readonly #rings = new Map<string, CandleRing>();

  constructor(length: number, ringOptions: CandleRingOptions = {}) {
    if (!Number.isSafeInteger(length) || length < 1) {
      throw new InvalidArgumentError(`candle map length ${String(length)} is invalid: expected a positive integer`);
    }
    this.length = length;
    this.#ringOptions = ringOptions;
  }

  /** Number of symbols. */
  get size(): number {
    return this.#rings.size;
  }

  /** Bytes of candle memory held by every ring. */
  get byteLength(): number {
    let total = 0;
    for (const ring of this.#rings.values()) total += ring.byteLength;
    return total;
  }

  /** The ring of `symbol`, created empty when absent. */
  add(symbol: string): CandleRing {
    const existing = this.#rings.get(symbol);
    if (existing) return existing;
    if (!SYMBOL_PATTERN.test(symbol)) {
      throw new InvalidArgumentError(`symbol ${JSON.stringify(symbol)} is not a Binance symbol (A-Z, 0-9, _)`);
    }
    const ring = new CandleRing(this.length, this.#ringOptions);
    this.#rings.set(symbol, ring);
    return ring;
  }

  /**
   * Puts `ring` under `symbol`, replacing any ring there (a restored snapshot). Its length must
   * be the map's.
   */
  set(symbol: string, ring: CandleRing): void {
    if (!SYMBOL_PATTERN.test(symbol)) {
      throw new InvalidArgumentError(`symbol ${JSON.stringify(symbol)} is not a Binance symbol (A-Z, 0-9, _)`);
    }
    if (ring.length !== this.length) {
      throw new InvalidArgumentError(`ring for ${symbol} has length ${ring.length}, expected ${this.length}`);
    }
    this.#rings.set(symbol, ring);
  }

  /** The ring of `symbol`, or undefined. */
  get(symbol: string): CandleRing | undefined {
    return this.#rings.get(symbol);
  }

  /** True when `symbol` has a ring. */
  has(symbol: string): boolean {
    return this.#rings.has(symbol);
  }

  /** Drops the ring of `symbol` (a delisted symbol). Returns whether it was there. */
  remove(symbol: string): boolean {
    return this.#rings.delete(symbol);
  }

  /** Symbols in insertion order. */
  symbols(): string[] {
    return [...this.#rings.keys()];
  }

  /** Calls `fn` for every ring, in insertion order. */
  forEach(fn: (ring: CandleRing, symbol: string) => void): void {
    this.#rings.forEach(fn);
  }

  /** Iterates `[symbol, ring]` pairs in insertion order. */
  entries(): IterableIterator<[string, CandleRing]> {
    return this.#rings.entries();
  }
}
