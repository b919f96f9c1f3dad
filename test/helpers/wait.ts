/**
 * Bounded waiting for integration tests: poll a condition, or pause.
 *
 * @example
 * ```ts
 * expect(await waitFor(() => !server.getCandleSecurity('BTCUSDT', 5).isEmpty)).toBe(true);
 * ```
 */

/** Polls `check` every 50 ms until it returns true or `ms` passes; returns the last result. */
export async function waitFor(check: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** Resolves after `ms`. */
export const pause = (ms: number): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, ms));
