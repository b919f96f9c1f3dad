import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { KlineFormat } from '../../src/binance/kline-format.js';
import { KlineReplyCache, klineJson } from '../../src/service/kline-reply-cache.js';
import { CandleRing } from '../../src/store/candle-ring.js';
import type { CandleView } from '../../src/store/candle-view.js';

const MIN = 60_000;
const T0 = Date.parse('2024-01-01T00:00:00Z');
const FORMAT: KlineFormat = { price: 2, quantity: 3, quote: 8 };

/** Writes the candle of minute `m` with close `close` (other values derived from it). */
function put(ring: CandleRing, m: number, close: number): void {
  const t = T0 + m * MIN;
  ring.upsertNumbers(t, close - 1, close + 2, close - 3, close, close / 10, t + MIN - 1, close * 7, m, close / 20, close * 3);
}

/** What the cache must return: the rows printed one by one. */
function printed(view: CandleView, start: number, end: number, format = FORMAT): string {
  const texts: string[] = [];
  for (let r = start; r < end; r += 1) texts.push(klineJson(view, r, format));
  return texts.join(',');
}

describe('KlineReplyCache', () => {
  it('prints a range once, slices it for the same or a smaller range, and prints only the candle that closed', () => {
    const ring = new CandleRing(100);
    for (let m = 0; m < 60; m += 1) put(ring, m, 100 + m);
    const cache = new KlineReplyCache();
    const view = ring.view();
    const closedOf = (limit: number): [number, number] => [view.length - limit, view.length - 1];
    const get = (limit: number): string => cache.rows('X|1m', ring.revision, FORMAT, view, ...closedOf(limit)).toString('latin1');

    expect(get(50)).toBe(printed(view, ...closedOf(50)));
    expect(cache.stats).toMatchObject({ hits: 0, misses: 1, printedRows: 49 });
    expect(get(50)).toBe(printed(view, ...closedOf(50)));
    expect(get(10)).toBe(printed(view, ...closedOf(10)));
    expect(cache.stats).toMatchObject({ hits: 2, misses: 1, printedRows: 49 });

    // The newest candle closes and the next one opens: one row to print.
    put(ring, 59, 999);
    put(ring, 60, 1000);
    expect(get(50)).toBe(printed(view, ...closedOf(50)));
    expect(cache.stats).toMatchObject({ misses: 2, printedRows: 50 });
    // A larger range: only the older rows not held yet are printed (the held run starts one row
    // before the last request's, at the row that was oldest before the append).
    expect(get(55)).toBe(printed(view, ...closedOf(55)));
    expect(cache.stats.printedRows).toBe(54);

    // A repair rewrites an older row: everything is printed again.
    put(ring, 30, 5);
    expect(get(55)).toBe(printed(view, ...closedOf(55)));
    expect(cache.stats.printedRows).toBe(54 + 54);
    // So does another format.
    const other: KlineFormat = { price: 4, quantity: 1, quote: 2 };
    expect(cache.rows('X|1m', ring.revision, other, view, ...closedOf(5)).toString('latin1')).toBe(printed(view, ...closedOf(5), other));
  });

  it('stays under its byte budget, dropping the least recently used ring', () => {
    const rings = [new CandleRing(50), new CandleRing(50), new CandleRing(50)];
    for (const ring of rings) for (let m = 0; m < 50; m += 1) put(ring, m, 100 + m);
    const one = printed(rings[0]!.view(), 0, 49).length;
    const cache = new KlineReplyCache(2.5 * one + 2000);
    rings.forEach((ring, i) => cache.rows(`R${i}`, ring.revision, FORMAT, ring.view(), 0, 49));
    expect(cache.stats.bytes).toBeLessThanOrEqual(2.5 * one + 2000);
    cache.rows('R1', rings[1]!.revision, FORMAT, rings[1]!.view(), 0, 49);
    cache.rows('R2', rings[2]!.revision, FORMAT, rings[2]!.view(), 0, 49);
    expect(cache.stats.hits).toBe(2);
    cache.rows('R0', rings[0]!.revision, FORMAT, rings[0]!.view(), 0, 49);
    expect(cache.stats.hits).toBe(2);
  });

  it('always returns what printing the rows would, whatever the ring does between requests', () => {
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), close: fc.integer({ min: 1, max: 1e6 }) }),
      fc.record({ kind: fc.constant('forming' as const), close: fc.integer({ min: 1, max: 1e6 }) }),
      fc.record({ kind: fc.constant('repair' as const), back: fc.integer({ min: 1, max: 40 }), close: fc.integer({ min: 1, max: 1e6 }) }),
      fc.record({ kind: fc.constant('read' as const), limit: fc.integer({ min: 1, max: 40 }), skip: fc.integer({ min: 0, max: 5 }) }),
    );
    fc.assert(
      fc.property(fc.array(operation, { minLength: 1, maxLength: 80 }), (operations) => {
        const ring = new CandleRing(30);
        for (let m = 0; m < 20; m += 1) put(ring, m, 100 + m);
        let newest = 19;
        const cache = new KlineReplyCache();
        const view = ring.view();
        for (const op of operations) {
          if (op.kind === 'append') put(ring, (newest += 1), op.close);
          else if (op.kind === 'forming') put(ring, newest, op.close);
          else if (op.kind === 'repair') put(ring, Math.max(newest - op.back, newest - 29), op.close);
          else {
            const end = Math.max(0, view.length - 1 - op.skip);
            const start = Math.max(0, end - op.limit);
            expect(cache.rows('R', ring.revision, FORMAT, view, start, end).toString('latin1')).toBe(printed(view, start, end));
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
