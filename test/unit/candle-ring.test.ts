import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { COL, KLINE_WIDTH, type RawKline } from '../../src/binance/kline.js';
import { CandleRing } from '../../src/store/candle-ring.js';
import { CandleView, EMPTY_CANDLE_VIEW } from '../../src/store/candle-view.js';

const MIN = 60_000;
const T0 = Date.parse('2024-01-01T00:00:00Z');

/** A REST kline opening at minute `m` with close price `close`. */
function kline(m: number, close: number): RawKline {
  const t = T0 + m * MIN;
  return [t, '1', '2', '0.5', String(close), '10', t + MIN - 1, '15', 4, '5', '7.5', '0'];
}

function row(m: number, close: number): number[] {
  const t = T0 + m * MIN;
  return [t, 1, 2, 0.5, close, 10, t + MIN - 1, 15, 4, 5, 7.5, 0];
}

const minutes = (ring: CandleRing) =>
  ring
    .view()
    .toArray()
    .map((r) => ((r[0] as number) - T0) / MIN);
const closes = (ring: CandleRing) => Array.from(ring.view().column(COL.close));

describe('CandleRing upsert', () => {
  it('overwrites the forming candle in place and replaces it with the final values on close', () => {
    const ring = new CandleRing(5);
    expect(ring.upsert(kline(0, 100))).toBe('appended');
    expect(ring.upsert(kline(0, 101))).toBe('updated');
    expect(ring.upsertNumbers(T0, 1, 2, 0.5, 102.5, 11, T0 + MIN - 1, 16, 5, 6, 8)).toBe('updated');
    expect(ring.count).toBe(1);
    expect(ring.view().at(-1)).toEqual(new Float64Array([T0, 1, 2, 0.5, 102.5, 11, T0 + MIN - 1, 16, 5, 6, 8, 0]));
  });

  it('appends newer candles and drops the oldest when full', () => {
    const ring = new CandleRing(3);
    for (let m = 0; m < 5; m++) ring.upsert(kline(m, 100 + m));
    expect(ring.isFull).toBe(true);
    expect(minutes(ring)).toEqual([2, 3, 4]);
    expect(closes(ring)).toEqual([102, 103, 104]);
    expect(ring.oldestOpenTime).toBe(T0 + 2 * MIN);
    expect(ring.newestOpenTime).toBe(T0 + 4 * MIN);
  });

  it('splices a repaired candle into the middle, keeping order and dropping the oldest when full', () => {
    const ring = new CandleRing(4);
    for (const m of [0, 1, 3, 4]) ring.upsert(kline(m, m));
    expect(ring.upsert(kline(2, 2))).toBe('inserted');
    expect(minutes(ring)).toEqual([1, 2, 3, 4]);
    expect(closes(ring)).toEqual([1, 2, 3, 4]);
    expect(ring.upsert(kline(3, 33))).toBe('updated');
    expect(closes(ring)).toEqual([1, 2, 33, 4]);
  });

  it('ignores a candle older than the oldest when full, but keeps it when there is room', () => {
    const full = new CandleRing(2);
    full.upsert(kline(5, 5));
    full.upsert(kline(6, 6));
    expect(full.upsert(kline(4, 4))).toBe('ignored');
    expect(minutes(full)).toEqual([5, 6]);

    const roomy = new CandleRing(3);
    roomy.upsert(kline(5, 5));
    expect(roomy.upsert(kline(4, 4))).toBe('inserted');
    expect(minutes(roomy)).toEqual([4, 5]);
  });

  it('rejects an open time that is not a non-negative integer, leaving the ring unchanged', () => {
    const ring = new CandleRing(3);
    ring.upsert(kline(0, 1));
    expect(() => ring.upsertNumbers(Number.NaN, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)).toThrow(InvalidArgumentError);
    expect(() => ring.upsert([1.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])).toThrow(/open time 1.5/);
    expect(() => ring.upsert([T0])).toThrow(/1 values, expected 12/);
    expect(minutes(ring)).toEqual([0]);
  });

  it('merges an unordered REST page with duplicates, the last duplicate winning', () => {
    const ring = new CandleRing(5);
    for (const m of [0, 4, 5]) ring.upsert(kline(m, m));
    const kept = ring.upsertMany([kline(3, 3), kline(1, 1), kline(2, 2), kline(3, 30), kline(4, 40)]);
    expect(minutes(ring)).toEqual([1, 2, 3, 4, 5]);
    expect(closes(ring)).toEqual([1, 2, 30, 40, 5]);
    expect(kept).toBe(4);
  });

  it('appends an in-order page that continues the ring', () => {
    const ring = new CandleRing(4);
    ring.upsert(kline(0, 0));
    expect(ring.upsertMany([kline(0, 10), kline(1, 1), kline(2, 2)])).toBe(3);
    expect(closes(ring)).toEqual([10, 1, 2]);
  });

  it('reports holes between candles for repair', () => {
    const ring = new CandleRing(10);
    for (const m of [0, 1, 4, 5, 7]) ring.upsert(kline(m, m));
    expect(ring.gaps('1m')).toEqual([
      { from: T0 + 2 * MIN, to: T0 + 3 * MIN, candles: 2 },
      { from: T0 + 6 * MIN, to: T0 + 6 * MIN, candles: 1 },
    ]);
    expect(ring.indexOf(T0 + 4 * MIN)).toBe(2);
    expect(ring.indexOf(T0 + 2 * MIN)).toBe(-1);
  });

  it('keeps the live window contiguous across many compactions', () => {
    const ring = new CandleRing(7, { slack: 2 });
    for (let m = 0; m < 1000; m++) {
      ring.upsert(kline(m, m));
      ring.upsert(kline(m, m + 0.5));
    }
    expect(minutes(ring)).toEqual([993, 994, 995, 996, 997, 998, 999]);
    expect(closes(ring)).toEqual([993.5, 994.5, 995.5, 996.5, 997.5, 998.5, 999.5]);
  });

  it('assigns restored rows, keeping the newest that fit, and refuses unordered ones', () => {
    const ring = new CandleRing(2);
    ring.assign(new Float64Array([...row(0, 0), ...row(1, 1), ...row(2, 2)]));
    expect(minutes(ring)).toEqual([1, 2]);
    expect(() => ring.assign(new Float64Array([...row(2, 2), ...row(1, 1)]))).toThrow(/row 1 has open time/);
  });

  it('drops the candles before an open time, and goes on taking new ones after', () => {
    const ring = new CandleRing(5);
    ring.upsertMany([0, 1, 2, 3, 4].map((m) => kline(m, m)));
    expect(ring.dropBefore(T0 + 2 * MIN)).toBe(2);
    expect(minutes(ring)).toEqual([2, 3, 4]);
    expect(ring.dropBefore(T0)).toBe(0);
    ring.upsertMany([5, 6, 7].map((m) => kline(m, m)));
    expect(minutes(ring)).toEqual([3, 4, 5, 6, 7]);
    expect(ring.dropBefore(T0 + 100 * MIN)).toBe(5);
    expect(ring.isEmpty).toBe(true);
    ring.upsert(kline(8, 8));
    expect(minutes(ring)).toEqual([8]);
  });
});

describe('CandleView', () => {
  it('cannot write into the ring: no buffer is exposed and every bulk read is a copy', () => {
    const ring = new CandleRing(3);
    ring.upsert(kline(0, 100));
    const view = ring.view();
    const keys = new Set<string>();
    for (let o: object | null = view; o; o = Object.getPrototypeOf(o) as object | null) {
      for (const k of Object.getOwnPropertyNames(o)) keys.add(k);
    }
    for (const k of keys) {
      if (k === 'constructor' || k === '__proto__') continue;
      const value: unknown = (view as unknown as Record<string, unknown>)[k];
      expect(ArrayBuffer.isView(value), `view.${k} exposes a typed array`).toBe(false);
    }
    view.toFloat64Array().fill(0);
    view.column(COL.close).fill(0);
    view.at(0).fill(0);
    view.toArray()[0]![COL.close] = 0;
    ring.copy().toFloat64Array().fill(0);
    expect(view.close(0)).toBe(100);
  });

  it('is one reused object per ring that follows later updates, while copy() stays fixed', () => {
    const ring = new CandleRing(3);
    ring.upsert(kline(0, 1));
    const copy = ring.copy();
    expect(ring.view()).toBe(ring.view());
    ring.upsert(kline(1, 2));
    expect(ring.view().length).toBe(2);
    expect(copy.length).toBe(1);
    expect(copy).toBeInstanceOf(CandleView);
  });

  it('rejects out-of-range indexes instead of reading neighbouring memory', () => {
    const ring = new CandleRing(3, { slack: 4 });
    ring.upsert(kline(0, 1));
    const view = ring.view();
    expect(() => view.get(1, 0)).toThrow(/out of range/);
    expect(() => view.get(0, KLINE_WIDTH)).toThrow(/out of range/);
    expect(() => view.get(-1, 0)).toThrow(InvalidArgumentError);
    expect(() => view.column(12)).toThrow(/column 12/);
  });

  it('has an empty constant for no data', () => {
    expect(EMPTY_CANDLE_VIEW.length).toBe(0);
    expect(EMPTY_CANDLE_VIEW.toFloat64Array().length).toBe(0);
    expect(EMPTY_CANDLE_VIEW.newestOpenTime).toBeUndefined();
  });
});

describe('CandleRing against a reference model', () => {
  it('equals a sorted, de-duplicated, truncated list after 10 × LENGTH random operations', () => {
    const LENGTH = 50;
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const ring = new CandleRing(LENGTH, { slack: 5 });
    // Reference: open minute -> close value, trimmed to the newest LENGTH.
    const model = new Map<number, number>();
    let head = 0;
    const trim = () => {
      const keys = [...model.keys()].sort((a, b) => a - b);
      for (const k of keys.slice(0, Math.max(0, keys.length - LENGTH))) model.delete(k);
    };
    for (let op = 0; op < 10 * LENGTH; op++) {
      const kind = random();
      const value = Math.round(random() * 1e6) / 100;
      if (kind < 0.4) {
        model.set(head, value);
        ring.upsert(kline(head, value));
      } else if (kind < 0.7) {
        head += 1 + Math.floor(random() * 3);
        model.set(head, value);
        ring.upsertNumbers(T0 + head * MIN, 1, 2, 0.5, value, 10, T0 + head * MIN + MIN - 1, 15, 4, 5, 7.5);
      } else if (kind < 0.9) {
        const m = head - Math.floor(random() * LENGTH * 1.5);
        if (m < 0) continue;
        const keys = [...model.keys()];
        const oldest = Math.min(...keys);
        const accepted = model.has(m) || keys.length < LENGTH || m > oldest;
        const result = ring.upsert(kline(m, value));
        expect(result === 'ignored').toBe(!accepted);
        if (accepted) model.set(m, value);
      } else {
        const page = Array.from({ length: 1 + Math.floor(random() * 8) }, () => {
          const m = Math.max(0, head - Math.floor(random() * LENGTH));
          return kline(m, Math.round(random() * 1e6) / 100);
        });
        ring.upsertMany(page);
        for (const k of page) model.set((k[0] - T0) / MIN, Number(k[4]));
      }
      trim();
      const expected = [...model.entries()].sort((a, b) => a[0] - b[0]);
      expect(minutes(ring)).toEqual(expected.map((e) => e[0]));
      expect(closes(ring)).toEqual(expected.map((e) => e[1]));
    }
  });
});

describe('CandleRing memory', () => {
  it('stays within 15% of the raw symbols × LENGTH × 12 × 8 bytes', () => {
    const LENGTH = 2880;
    const SYMBOLS = 100;
    const raw = SYMBOLS * LENGTH * KLINE_WIDTH * 8;
    const before = process.memoryUsage().arrayBuffers;
    const rings = Array.from({ length: SYMBOLS }, () => new CandleRing(LENGTH));
    for (const ring of rings) for (let m = 0; m < LENGTH + 500; m++) ring.upsertNumbers(T0 + m * MIN, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    const held = process.memoryUsage().arrayBuffers - before;
    const accounted = rings.reduce((sum, r) => sum + r.byteLength, 0);
    expect(accounted).toBeLessThanOrEqual(raw * 1.15);
    expect(held).toBeLessThanOrEqual(raw * 1.15);
    expect(held).toBeGreaterThanOrEqual(raw);
  });
});

describe('CandleRing revision', () => {
  it('stays while rows are appended, the oldest dropped or the newest updated in place, and changes with every other write', () => {
    const ring = new CandleRing(3);
    const seen = [ring.revision];
    /** Runs `write` and says whether the revision changed. */
    const changes = (write: () => unknown): boolean => {
      write();
      const changed = ring.revision !== seen[seen.length - 1];
      seen.push(ring.revision);
      return changed;
    };
    expect(changes(() => ring.upsert(kline(0, 100)))).toBe(false); // first row
    expect(changes(() => ring.upsert(kline(0, 101)))).toBe(false); // forming candle updated
    expect(changes(() => ring.upsertNumbers(T0, 1, 2, 0.5, 102, 11, T0 + MIN - 1, 16, 5, 6, 8))).toBe(false); // its close
    expect(changes(() => ring.upsert(kline(2, 103)))).toBe(false); // appended
    expect(changes(() => ring.upsert(kline(1, 104)))).toBe(true); // inserted before the newest
    expect(changes(() => ring.upsert(kline(1, 105)))).toBe(true); // an older row corrected
    expect(changes(() => ring.upsert(kline(3, 106)))).toBe(false); // appended, the oldest dropped
    expect(changes(() => ring.upsert(kline(0, 107)))).toBe(false); // older than the full ring: ignored
    expect(changes(() => ring.upsertMany([kline(4, 1), kline(2, 2)]))).toBe(true); // merged out of order
    expect(changes(() => ring.upsertMany([kline(5, 1), kline(6, 2)]))).toBe(false); // appended in order
    expect(changes(() => ring.dropBefore(T0 + 5 * MIN))).toBe(false); // the oldest dropped
    expect(changes(() => ring.assign(new Float64Array(row(9, 1))))).toBe(true);
    expect(changes(() => ring.clear())).toBe(true);
    // It only grows, so a number once seen never comes back to mean other rows.
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    // Unique across rings: a ring that replaces another does not take over its number.
    expect(new CandleRing(3).revision).toBeGreaterThan(ring.revision);
  });
});
