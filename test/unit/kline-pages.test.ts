import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { intervalMs, nextOpenTime } from '../../src/binance/intervals.js';
import { CM_MAX_WINDOW_MS, planKlinePages, planWeight, type KlinePage } from '../../src/exchange/kline-pages.js';
import { MARKETS, type Interval, type MarketType } from '../../src/binance/markets.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2024, 0, 1);

/** Least weight to fetch 0..n candles with any page sizes, by dynamic programming over page sizes. */
function optimalWeights(market: MarketType, n: number): number[] {
  const spec = MARKETS[market];
  const best = new Array<number>(n + 1).fill(Number.POSITIVE_INFINITY);
  best[0] = 0;
  for (let i = 1; i <= n; i += 1) {
    for (let size = 1; size <= Math.min(i, spec.klinesMaxLimit); size += 1) {
      const candidate = (best[i - size] ?? Number.POSITIVE_INFINITY) + spec.klinesWeight(size);
      if (candidate < (best[i] ?? Number.POSITIVE_INFINITY)) best[i] = candidate;
    }
  }
  return best;
}

/** Every open time the pages cover, in the order requested. */
function covered(interval: Interval, pages: readonly KlinePage[]): number[] {
  const times: number[] = [];
  for (const page of pages) {
    let count = 0;
    for (let t = page.startTime; t <= page.endTime; t = nextOpenTime(interval, t)) {
      times.push(t);
      count += 1;
    }
    expect(count).toBe(page.limit);
  }
  return times;
}

describe('planKlinePages', () => {
  it('UM uses pages of 499 and a cheap remainder: 999 candles cost 2 + 2 + 1', () => {
    const pages = planKlinePages({ market: 'UM', interval: '1m', from: T0, to: T0 + 998 * MINUTE });
    expect(pages.map((p) => [p.limit, p.weight])).toEqual([
      [499, 2],
      [499, 2],
      [1, 1],
    ]);
    expect(pages[0]?.startTime).toBe(T0);
    expect(pages[2]?.endTime).toBe(T0 + 998 * MINUTE);
  });

  it('SPOT uses pages of 1000 at weight 2 each', () => {
    const pages = planKlinePages({ market: 'SPOT', interval: '1m', from: T0, to: T0 + 2879 * MINUTE });
    expect(pages.map((p) => [p.limit, p.weight])).toEqual([
      [1000, 2],
      [1000, 2],
      [880, 2],
    ]);
  });

  it.each(['SPOT', 'UM', 'CM'] as const)('%s plans reach the least possible weight for every size up to 2000', (market) => {
    const optimum = optimalWeights(market, 2000);
    for (let n = 1; n <= 2000; n += 1) {
      const pages = planKlinePages({ market, interval: '1m', from: T0, to: T0 + (n - 1) * MINUTE });
      expect(pages.reduce((s, p) => s + p.limit, 0)).toBe(n);
      if (planWeight(pages) !== optimum[n]) {
        throw new Error(`${market} n=${n}: plan weight ${planWeight(pages)}, optimum ${optimum[n]}`);
      }
    }
  });

  it('covers every open time exactly once, oldest first on SPOT/UM and newest first on CM', () => {
    const from = T0;
    const to = T0 + 1234 * MINUTE;
    const expected = Array.from({ length: 1235 }, (_, i) => T0 + i * MINUTE);
    const forward = covered('1m', planKlinePages({ market: 'UM', interval: '1m', from, to }));
    expect(forward).toEqual(expected);
    const cmPages = planKlinePages({ market: 'CM', interval: '1m', from, to });
    expect(cmPages[0]?.endTime).toBe(to);
    expect(cmPages.at(-1)?.startTime).toBe(from);
    expect(covered('1m', cmPages).sort((a, b) => a - b)).toEqual(expected);
  });

  it('aligns unaligned bounds down to open times', () => {
    const pages = planKlinePages({ market: 'SPOT', interval: '1h', from: T0 + 1, to: T0 + 3 * 3_600_000 - 1 });
    expect(pages).toEqual([{ startTime: T0, endTime: T0 + 2 * 3_600_000, limit: 3, weight: 2 }]);
  });

  it('keeps every CM page within the 200-day window', () => {
    const to = T0 + 999 * intervalMs('1d');
    const pages = planKlinePages({ market: 'CM', interval: '1d', from: T0, to });
    for (const page of pages) {
      expect(nextOpenTime('1d', page.endTime) - page.startTime).toBeLessThanOrEqual(CM_MAX_WINDOW_MS);
    }
    expect(pages.reduce((s, p) => s + p.limit, 0)).toBe(1000);
    const months = planKlinePages({ market: 'CM', interval: '1M', from: Date.UTC(2020, 0, 1), to: Date.UTC(2023, 11, 1) });
    expect(months.reduce((s, p) => s + p.limit, 0)).toBe(48);
    for (const page of months) expect(nextOpenTime('1M', page.endTime) - page.startTime).toBeLessThanOrEqual(CM_MAX_WINDOW_MS);
  });

  it('returns no pages for an empty range and refuses intervals the market lacks', () => {
    expect(planKlinePages({ market: 'UM', interval: '1m', from: T0 + MINUTE, to: T0 })).toEqual([]);
    expect(() => planKlinePages({ market: 'UM', interval: '1s', from: T0, to: T0 })).toThrow(InvalidArgumentError);
  });
});
