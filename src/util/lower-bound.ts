/**
 * Binary search over values ascending by index: the first index whose value is at least `target`
 * (`length` when none). For sorted open times held in any shape (a ring view, an array of rows, a
 * Float64Array) without copying them out.
 *
 * @example
 * ```ts
 * lowerBound(rows.length, (i) => rows[i][0], startTime); // first row opening at or after startTime
 * ```
 */
export function lowerBound(length: number, valueAt: (index: number) => number, target: number): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (valueAt(mid) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
