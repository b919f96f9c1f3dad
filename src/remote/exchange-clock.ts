/**
 * The publisher's exchange clock as a remote reader estimates it: each heartbeat (and live
 * candle) carries the publisher's exchange time `t`; `t - local receive time` is the offset minus
 * the transport delay, so the largest offset seen recently is the best estimate (the fastest
 * delivery). Samples are kept as the maximum per 10 s bucket over the last minute; when none is
 * recent (a dead publisher, a dead NATS) the last estimate stays, so confirmations age on it.
 *
 * ```
 *   bucket (local 10 s):  | -50 s | -40 s | ... |  now  |
 *   max offset:           |  812  |  815  | ... |  814  |   estimate = max of the row = 815
 * ```
 *
 * @example
 * ```ts
 * const clock = new ExchangeClockEstimate();
 * clock.observe(heartbeat.t);  // on receipt
 * clock.now();                 // the publisher's exchange time now, estimated
 * ```
 */

const BUCKET_MS = 10_000;
const BUCKETS = 6;

/** An estimate of a publisher's exchange clock from the times it sends; see the module comment. */
export class ExchangeClockEstimate {
  // Max offset per bucket: bucket index (local time / BUCKET_MS) → offset. At most BUCKETS entries.
  readonly #buckets = new Map<number, number>();
  // The estimate: max over the buckets; kept when they all expire.
  #offset: number | undefined;
  readonly #localNow: () => number;

  /** `localNow` is the local clock (Date.now by default; tests inject one). */
  constructor(localNow: () => number = Date.now) {
    this.#localNow = localNow;
  }

  /** True once a time was observed. */
  get hasEstimate(): boolean {
    return this.#offset !== undefined;
  }

  /** Records the exchange time `exchangeTime` carried by a message received now. */
  observe(exchangeTime: number): void {
    const local = this.#localNow();
    const offset = exchangeTime - local;
    const bucket = Math.floor(local / BUCKET_MS);
    const previous = this.#buckets.get(bucket);
    if (previous !== undefined && previous >= offset) return;
    this.#buckets.set(bucket, offset);
    let best = -Infinity;
    for (const [key, value] of this.#buckets) {
      if (key <= bucket - BUCKETS) this.#buckets.delete(key);
      else if (value > best) best = value;
    }
    this.#offset = best;
  }

  /** The publisher's exchange time now, estimated (the local clock before any observation). */
  now(): number {
    return this.#localNow() + (this.#offset ?? 0);
  }
}
