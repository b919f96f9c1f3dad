/**
 * Abortable waiting and retry pacing. Every sleep takes an AbortSignal and owns its timer, so an
 * abort or a close never leaves a timer behind.
 *
 * @example
 * ```ts
 * const controller = new AbortController();
 * for (let attempt = 0; attempt < 3; attempt += 1) {
 *   await sleep(backoffDelay(attempt), controller.signal);
 * }
 * ```
 */
import { AbortedError } from '../errors.js';

/**
 * Resolves after `ms` milliseconds, or rejects with AbortedError as soon as `signal` aborts.
 *
 * @example
 * ```ts
 * await sleep(250, AbortSignal.timeout(1000));
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal, what = 'sleep'): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortedError(what, { cause: signal.reason }));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError(what, { cause: signal?.reason }));
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
      Math.max(0, ms),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Throws AbortedError when `signal` has already aborted.
 *
 * @example
 * ```ts
 * throwIfAborted(options.signal, 'klines request');
 * ```
 */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new AbortedError(what, { cause: signal.reason });
}

/** Options of {@link backoffDelay}. */
export interface BackoffOptions {
  /** Delay of the first retry before jitter, in ms. */
  readonly baseMs?: number;
  /** Ceiling of the delay before jitter, in ms. */
  readonly maxMs?: number;
  /** Source of randomness in [0, 1); tests pass a constant. */
  readonly random?: () => number;
}

/**
 * Jittered exponential back-off: `min(maxMs, baseMs * 2^attempt)`, scaled by a random factor in
 * [0.5, 1). The floor of one half keeps callers from retrying almost at once, which would hammer a
 * struggling server; the jitter keeps competing callers from retrying in lock-step.
 *
 * @example
 * ```ts
 * backoffDelay(0, { baseMs: 1000, random: () => 0 }); // 500
 * backoffDelay(3, { baseMs: 1000, random: () => 0 }); // 4000
 * ```
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { baseMs = 500, maxMs = 30_000, random = Math.random } = options;
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(ceiling * (0.5 + random() / 2));
}
