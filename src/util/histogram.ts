/**
 * A fixed-bucket histogram cheap enough for the WebSocket hot path: recording is one loop over a
 * dozen bounds and one increment, with no allocation. It reports Prometheus-style cumulative
 * buckets and approximate quantiles.
 *
 * @example
 * ```ts
 * const latency = new Histogram([0.5, 1, 2, 5, 10, 50]);
 * latency.record(0.8);
 * latency.quantile(0.99); // 1 (the upper bound of the bucket holding the 99th percentile)
 * ```
 */
export class Histogram {
  /** Upper bounds of the buckets, ascending; a last bucket catches everything above. */
  readonly bounds: readonly number[];
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i += 1) {
      if (!((bounds[i] as number) > (bounds[i - 1] as number)))
        throw new RangeError(`histogram bounds must ascend, got ${bounds.join(', ')}`);
    }
    this.bounds = [...bounds];
    this.#counts = new Float64Array(bounds.length + 1);
  }

  /** Adds one observation. */
  record(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i += 1;
    this.#counts[i] = (this.#counts[i] as number) + 1;
    this.#sum += value;
    this.#count += 1;
  }

  get count(): number {
    return this.#count;
  }

  get sum(): number {
    return this.#sum;
  }

  /** Cumulative counts per upper bound, the last one `+Inf`, as Prometheus exposes them. */
  cumulative(): Array<{ le: number; count: number }> {
    let running = 0;
    const rows: Array<{ le: number; count: number }> = [];
    for (let i = 0; i <= this.bounds.length; i += 1) {
      running += this.#counts[i] as number;
      rows.push({ le: i < this.bounds.length ? (this.bounds[i] as number) : Number.POSITIVE_INFINITY, count: running });
    }
    return rows;
  }

  /** Upper bound of the bucket that holds quantile `q` (0..1); undefined when empty. */
  quantile(q: number): number | undefined {
    if (this.#count === 0) return undefined;
    const target = Math.max(1, Math.ceil(q * this.#count));
    let running = 0;
    for (let i = 0; i <= this.bounds.length; i += 1) {
      running += this.#counts[i] as number;
      if (running >= target) return i < this.bounds.length ? this.bounds[i] : Number.POSITIVE_INFINITY;
    }
    return Number.POSITIVE_INFINITY;
  }

  /** Forgets every observation. */
  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }
}
