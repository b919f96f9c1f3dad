/**
 * Bounded concurrency for I/O over many symbols: at most `limit` pieces of work in flight.
 *
 * @example
 * ```ts
 * await forEachConcurrently(symbols, 8, async (symbol) => warm(symbol), signal);
 * ```
 */
import { AbortedError } from '../errors.js';

/**
 * Runs `work` over `items` with at most `limit` in flight; stops taking new items once `signal`
 * aborts (rejecting with AbortedError). A rejection of `work` rejects the whole run.
 */
export async function forEachConcurrently<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      if (signal?.aborted) throw new AbortedError('batch of work', { cause: signal.reason });
      const item = items[next] as T;
      next += 1;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
