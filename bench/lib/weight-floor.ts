/**
 * The least time a given weight can take under a per-window budget, two ways:
 *
 * - `weightFloorMs`: the steady rate, weight ÷ budget per minute (what the issues call the floor);
 * - `windowFloorMs`: what window alignment allows from a given start: the budget of the current
 *   window is spendable at once, and each later window adds one more budget, so the work can end
 *   as soon as the window holding its last unit opens (a run under one budget costs no wait).
 *
 * ```
 *   start            window 2         window 3
 *   |--budget B------|--budget B------|--B--
 *   ^ spend B at once ^ next B         ^ weight 2B..3B done here
 * ```
 *
 * @example
 * ```ts
 * weightFloorMs(6000, 4500);                  // 80 000: 6000 weight at 4500 per minute
 * windowFloorMs(6000, 4500, Date.parse('2024-01-01T00:00:30Z')); // 30 000: to the next minute
 * ```
 */

const WINDOW_MS = 60_000;

/** Weight ÷ budget per window, as ms at the steady rate. */
export function weightFloorMs(weight: number, budgetPerWindow: number, windowMs = WINDOW_MS): number {
  return (weight / budgetPerWindow) * windowMs;
}

/** ms from `startedAt` (exchange epoch ms) until the window that completes `weight` opens. */
export function windowFloorMs(weight: number, budgetPerWindow: number, startedAt: number, windowMs = WINDOW_MS): number {
  const windowsAfterFirst = Math.max(0, Math.ceil(weight / budgetPerWindow) - 1);
  if (windowsAfterFirst === 0) return 0;
  const firstWindowEnd = Math.floor(startedAt / windowMs) * windowMs + windowMs;
  return firstWindowEnd + (windowsAfterFirst - 1) * windowMs - startedAt;
}
