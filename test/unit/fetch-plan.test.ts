/**
 * The fetch planner's pure functions. Expected values are written out from BINANCE.md (weights per
 * request) and from candle arithmetic, not computed with the planner's own helpers.
 */
import { describe, expect, it } from 'vitest';
import type { RawKline } from '../../src/binance/kline.js';
import { MARKETS } from '../../src/binance/markets.js';
import { CandleRing } from '../../src/store/candle-ring.js';
import {
  candlesIn,
  mergeRanges,
  missingRanges,
  planSweep,
  rangeWeight,
  sweepKind,
  warmConcurrency,
  windowStart,
  type FetchRange,
  type SweepCandidate,
  type SweepKind,
} from '../../src/sync/fetch-plan.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 5, 0, 0);
const open = (i: number): number => T0 + i * MINUTE;

function row(i: number): RawKline {
  return [open(i), '1', '2', '0.5', '1.5', '10', open(i) + MINUTE - 1, '15', 3, '4', '6', '0'];
}

/** A ring of ten 1m candles holding candles `indexes`. */
function ringWith(indexes: readonly number[]): CandleRing {
  const ring = new CandleRing(10);
  ring.upsertMany(indexes.map(row));
  return ring;
}

const range = (from: number, to: number): FetchRange => ({ from: open(from), to: open(to) });

describe('windowStart', () => {
  it('is LENGTH - 1 intervals before the current candle for fixed intervals', () => {
    expect(windowStart('1m', 10, open(20))).toBe(open(11));
    expect(windowStart('1h', 24, Date.UTC(2026, 0, 5, 23))).toBe(Date.UTC(2026, 0, 5, 0));
  });

  it('is the current candle itself for a window of one', () => {
    expect(windowStart('1m', 1, open(20))).toBe(open(20));
    expect(windowStart('1M', 1, Date.UTC(2026, 2, 1))).toBe(Date.UTC(2026, 2, 1));
  });

  it('counts calendar months for 1M, across a year and a short February', () => {
    expect(windowStart('1M', 3, Date.UTC(2026, 2, 1))).toBe(Date.UTC(2026, 0, 1));
    expect(windowStart('1M', 13, Date.UTC(2026, 2, 1))).toBe(Date.UTC(2025, 2, 1));
    expect(windowStart('1M', 2, Date.UTC(2024, 2, 1))).toBe(Date.UTC(2024, 1, 1));
  });
});

describe('missingRanges', () => {
  it('is the whole window for an empty ring', () => {
    expect(missingRanges(new CandleRing(10), '1m', open(0), open(9), 1000)).toEqual([range(0, 9)]);
  });

  it('is the whole window when the ring ends before it', () => {
    expect(missingRanges(ringWith([0, 1, 2]), '1m', open(10), open(19), 1)).toEqual([range(10, 19)]);
  });

  it('has a head range before the oldest row, and the tail from the newest row (it may have been forming)', () => {
    expect(missingRanges(ringWith([5, 6, 7, 8, 9]), '1m', open(0), open(9), 1)).toEqual([range(0, 4), range(9, 9)]);
  });

  it('has the inner gaps of the ring', () => {
    expect(missingRanges(ringWith([0, 1, 2, 5, 6, 7, 8, 9]), '1m', open(0), open(12), 1)).toEqual([range(3, 4), range(9, 12)]);
  });

  it('clips a gap that starts before the window, and drops one wholly before it', () => {
    expect(missingRanges(ringWith([0, 2, 3, 6, 7, 8, 9]), '1m', open(5), open(12), 1)).toEqual([range(5, 5), range(9, 12)]);
  });

  it('has the tail from the newest row to the current candle', () => {
    expect(missingRanges(ringWith([0, 1, 2, 3, 4, 5]), '1m', open(0), open(9), 1)).toEqual([range(5, 9)]);
  });

  it('joins ranges closer than one page into one request', () => {
    const ring = ringWith([0, 1, 2, 5, 6, 7, 8, 9]);
    expect(missingRanges(ring, '1m', open(0), open(12), 1000)).toEqual([range(3, 12)]);
    // Page of 5 candles: the gap 3..4 and the tail from 9 are 5 minutes apart, joined.
    expect(missingRanges(ring, '1m', open(0), open(12), 5)).toEqual([range(3, 12)]);
    // Page of 4 candles: 5 minutes apart is farther than a page, kept apart.
    expect(missingRanges(ring, '1m', open(0), open(12), 4)).toEqual([range(3, 4), range(9, 12)]);
  });
});

describe('mergeRanges', () => {
  it('sorts by start and joins overlapping ranges', () => {
    expect(mergeRanges([range(5, 8), range(0, 2), range(1, 6)], 0)).toEqual([range(0, 8)]);
  });

  it('joins ranges exactly spanMs apart, not one ms more', () => {
    expect(mergeRanges([range(0, 2), range(4, 5)], 2 * MINUTE)).toEqual([range(0, 5)]);
    expect(mergeRanges([range(0, 2), { from: open(4) + 1, to: open(5) }], 2 * MINUTE)).toEqual([
      range(0, 2),
      { from: open(4) + 1, to: open(5) },
    ]);
  });

  it('keeps the later end when a range lies inside another, and leaves its input alone', () => {
    const input = [range(0, 9), range(2, 3)];
    expect(mergeRanges(input, 0)).toEqual([range(0, 9)]);
    expect(input).toEqual([range(0, 9), range(2, 3)]);
  });

  it('is empty for no ranges', () => {
    expect(mergeRanges([], MINUTE)).toEqual([]);
  });
});

describe('candlesIn', () => {
  it('counts both ends of every range', () => {
    expect(candlesIn([range(0, 4), range(9, 9)], '1m')).toBe(6);
    expect(candlesIn([], '1m')).toBe(0);
  });

  it('counts calendar months for 1M', () => {
    expect(candlesIn([{ from: Date.UTC(2025, 11, 1), to: Date.UTC(2026, 2, 1) }], '1M')).toBe(4);
  });
});

describe('klines weights (BINANCE.md)', () => {
  it('SPOT costs 2 per request whatever the limit', () => {
    for (const limit of [1, 99, 100, 499, 500, 1000]) expect(MARKETS.SPOT.klinesWeight(limit)).toBe(2);
  });

  it('UM and CM cost by limit tiers: <100: 1, 100-499: 2, 500-1000: 5, >1000: 10', () => {
    for (const market of ['UM', 'CM'] as const) {
      const spec = MARKETS[market];
      expect([1, 99, 100, 499, 500, 1000, 1001, 1500].map((limit) => spec.klinesWeight(limit))).toEqual([1, 1, 2, 2, 5, 5, 10, 10]);
    }
  });

  it('pages SPOT by 1000 at 2 each', () => {
    expect(rangeWeight('SPOT', 1)).toBe(2);
    expect(rangeWeight('SPOT', 1000)).toBe(2);
    expect(rangeWeight('SPOT', 1001)).toBe(4);
    expect(rangeWeight('SPOT', 5000)).toBe(10);
  });

  it('pages futures by 499 at 2 each, the last page at its own tier', () => {
    for (const market of ['UM', 'CM'] as const) {
      expect(rangeWeight(market, 1)).toBe(1);
      expect(rangeWeight(market, 99)).toBe(1);
      expect(rangeWeight(market, 100)).toBe(2);
      expect(rangeWeight(market, 499)).toBe(2);
      // 499 (2) + 1 (1)
      expect(rangeWeight(market, 500)).toBe(3);
      // 499 (2) + 100 (2)
      expect(rangeWeight(market, 599)).toBe(4);
      // 499 * 2 (4)
      expect(rangeWeight(market, 998)).toBe(4);
    }
  });

  it('costs one request for an empty range', () => {
    expect(rangeWeight('SPOT', 0)).toBe(2);
    expect(rangeWeight('UM', 0)).toBe(1);
  });
});

describe('sweepKind', () => {
  const NOW = open(100) + 30_000;
  const STALE = 20_000;
  function candidate(
    overrides: Partial<Omit<SweepCandidate, 'isOverdue' | 'pendingFinal'>> & { overdue?: boolean; pending?: number } = {},
  ): SweepCandidate {
    const overdue = overrides.overdue ?? false;
    return {
      isReady: overrides.isReady ?? true,
      holeFrom: overrides.holeFrom,
      confirmedAt: overrides.confirmedAt ?? NOW - 1000,
      pendingFinal: () => overrides.pending ?? open(100),
      isOverdue: (now) => {
        expect(now).toBe(NOW);
        return overdue;
      },
    };
  }

  it('is undefined for a ready, whole, confirmed symbol with its last close', () => {
    expect(sweepKind(candidate(), '1m', NOW, STALE)).toBeUndefined();
  });

  it('is warm before the warm start, whatever else', () => {
    expect(sweepKind(candidate({ isReady: false, holeFrom: open(90), overdue: true, confirmedAt: 0 }), '1m', NOW, STALE)).toBe('warm');
  });

  it('is repair with a hole, before overdue and stale', () => {
    expect(sweepKind(candidate({ holeFrom: open(90), overdue: true, confirmedAt: 0 }), '1m', NOW, STALE)).toBe('repair');
  });

  it('is overdue past the boundary deadline, before stale', () => {
    expect(sweepKind(candidate({ overdue: true, confirmedAt: 0 }), '1m', NOW, STALE)).toBe('overdue');
  });

  it('is stale once unconfirmed for staleAfterMs exactly', () => {
    expect(sweepKind(candidate({ confirmedAt: NOW - STALE + 1 }), '1m', NOW, STALE)).toBeUndefined();
    expect(sweepKind(candidate({ confirmedAt: NOW - STALE }), '1m', NOW, STALE)).toBe('stale');
  });

  it('is final when the candle after the last final one closed more than staleAfterMs ago', () => {
    // Candle 98 final: 99 closed at open(100) - 1, 30 s ago.
    expect(sweepKind(candidate({ pending: open(99) }), '1m', NOW, STALE)).toBe('final');
    // 99 closed 30 s ago, limit 30 s: not yet (strictly more).
    expect(sweepKind(candidate({ pending: open(99) }), '1m', NOW, 30_001)).toBeUndefined();
  });

  it('is never final for an empty ring (nothing to confirm; a stale one is caught as stale)', () => {
    const empty: SweepCandidate = { ...candidate(), pendingFinal: () => undefined };
    expect(sweepKind(empty, '1m', NOW, STALE)).toBeUndefined();
  });
});

describe('planSweep', () => {
  interface Item {
    readonly name: string;
    readonly kind: SweepKind;
    readonly confirmedAt: number;
    readonly weight: number;
  }
  const item = (name: string, kind: SweepKind, confirmedAt: number, weight: number): Item => ({ name, kind, confirmedAt, weight });

  it('orders repairs, warm-ups, overdue closes, stale symbols and missing finals, stalest first within a kind', () => {
    const due = [
      item('final', 'final', 1, 1),
      item('stale-new', 'stale', 50, 1),
      item('stale-old', 'stale', 10, 1),
      item('overdue', 'overdue', 99, 1),
      item('warm', 'warm', 0, 1),
      item('repair-new', 'repair', 70, 1),
      item('repair-old', 'repair', 20, 1),
    ];
    expect(planSweep(due, 100).map((i) => i.name)).toEqual([
      'repair-old',
      'repair-new',
      'warm',
      'overdue',
      'stale-old',
      'stale-new',
      'final',
    ]);
  });

  it('stops at the first item that does not fit: cheaper ones behind it are not taken', () => {
    const due = [item('a', 'repair', 0, 4), item('b', 'stale', 0, 10), item('c', 'final', 0, 1)];
    expect(planSweep(due, 10).map((i) => i.name)).toEqual(['a']);
  });

  it('takes items that fit the allowance exactly', () => {
    const due = [item('a', 'repair', 0, 4), item('b', 'stale', 0, 6)];
    expect(planSweep(due, 10).map((i) => i.name)).toEqual(['a', 'b']);
    expect(planSweep(due, 9).map((i) => i.name)).toEqual(['a']);
  });

  it('plans nothing when the neediest does not fit, and leaves its input alone', () => {
    const due = [item('b', 'stale', 0, 1), item('a', 'repair', 0, 5)];
    expect(planSweep(due, 4)).toEqual([]);
    expect(due.map((i) => i.name)).toEqual(['b', 'a']);
    expect(planSweep([], 100)).toEqual([]);
  });
});

describe('warmConcurrency', () => {
  const base = { budget: 6000, requestWeight: 2, minimum: 4, maximum: 64 };

  it('keeps as many requests in flight as the budget pays for at once', () => {
    // 20 weight at 2 a request: 10; 21 weight still 10 (whole requests only).
    expect(warmConcurrency({ ...base, budget: 20 })).toBe(10);
    expect(warmConcurrency({ ...base, budget: 21 })).toBe(10);
  });

  it('is at least the minimum and at most the maximum', () => {
    expect(warmConcurrency({ ...base, budget: 4 })).toBe(4);
    expect(warmConcurrency(base)).toBe(64);
  });

  it('treats a zero request weight as one', () => {
    expect(warmConcurrency({ ...base, budget: 10, requestWeight: 0 })).toBe(10);
  });
});
