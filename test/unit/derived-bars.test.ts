/**
 * Derived rings, from the exact decimal sums up: BAR candles with random decimal strings are fed to
 * a base TrackedSymbol as REST history and stream updates, and every derived bar must equal the
 * fold of those strings computed here with BigInt decimals, closed and forming, with the closes
 * reported once each with their interval.
 */
import { describe, expect, it } from 'vitest';
import { closeTimeOf, openTimeOf } from '../../src/binance/intervals.js';
import { COL, type RawKline } from '../../src/binance/kline.js';
import type { Interval } from '../../src/binance/markets.js';
import { CandleRing } from '../../src/store/candle-ring.js';
import { DecimalSum, DerivedSeries } from '../../src/sync/derived-bars.js';
import { seedLevels } from '../../src/sync/fetch-plan.js';
import { TrackedSymbol, type RuleClock } from '../../src/sync/serve-rule.js';

const MINUTE = 60_000;
// A Sunday 22:00 UTC: two hours before a week's and a day's start.
const T0 = Date.UTC(2026, 0, 4, 22, 0);
const FORMAT = { price: 2, quantity: 3, quote: 8 } as const;

/** Exact decimal text → BigInt units of 10^-decimals. */
function units(text: string, decimals: number): bigint {
  const [whole = '0', fraction = ''] = text.split('.');
  return BigInt(whole + fraction.padEnd(decimals, '0').slice(0, decimals));
}

/** BigInt units → the float nearest to the decimal (what parsing Binance's string gives). */
function unitsToNumber(value: bigint, decimals: number): number {
  const text = value.toString().padStart(decimals + 1, '0');
  return Number(`${text.slice(0, text.length - decimals)}.${text.slice(text.length - decimals)}`);
}

/** A deterministic PRNG (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 1m candle `i` as Binance prints it, in version `v` (0 = final). */
function candle(i: number, rand: () => number): RawKline {
  const openTime = T0 + i * MINUTE;
  const o = 40_000 + Math.floor(rand() * 100_000) / 100;
  const c = 40_000 + Math.floor(rand() * 100_000) / 100;
  const h = Math.max(o, c) + Math.floor(rand() * 1000) / 100;
  const l = Math.min(o, c) - Math.floor(rand() * 1000) / 100;
  const volume = Math.floor(rand() * 5_000_000) / 1000;
  const taker = Math.floor(volume * rand() * 1000) / 1000;
  const quote = (Math.floor(rand() * 1e15) / 1e8).toFixed(8);
  const takerQuote = (Math.floor(rand() * 1e14) / 1e8).toFixed(8);
  return [
    openTime,
    o.toFixed(2),
    h.toFixed(2),
    l.toFixed(2),
    c.toFixed(2),
    volume.toFixed(3),
    closeTimeOf('1m', openTime),
    quote,
    Math.floor(rand() * 500),
    taker.toFixed(3),
    takerQuote,
    '0',
  ];
}

/** The fold of `rows` as Binance would print the derived bar, parsed back to numbers. */
function expectedBar(interval: Interval, rows: readonly RawKline[]): number[] {
  const first = rows[0] as RawKline;
  const sum = (column: number, decimals: number) =>
    unitsToNumber(
      rows.reduce((total, row) => total + units(row[column] as string, decimals), 0n),
      decimals,
    );
  const bucket = openTimeOf(interval, first[COL.openTime]);
  return [
    bucket,
    Number(first[COL.open]),
    Math.max(...rows.map((row) => Number(row[COL.high]))),
    Math.min(...rows.map((row) => Number(row[COL.low]))),
    Number((rows.at(-1) as RawKline)[COL.close]),
    sum(COL.volume, FORMAT.quantity),
    closeTimeOf(interval, bucket),
    sum(COL.quoteVolume, FORMAT.quote),
    rows.reduce((total, row) => total + row[COL.trades], 0),
    sum(COL.takerBuyBase, FORMAT.quantity),
    sum(COL.takerBuyQuote, FORMAT.quote),
    0,
  ];
}

function fakeClock(t: number): RuleClock & { t: number } {
  return {
    t,
    now() {
      return this.t;
    },
    marginMs: () => 100,
  };
}

/** A base 1m ring with derived series, candles 0..n-1 final from REST, candle n forming. */
function setup(options: { length: number; intervals: readonly Interval[]; history: number; seed?: number }) {
  const rand = random(options.seed ?? 1);
  const all: RawKline[] = [];
  const make = (i: number): RawKline => {
    all[i] ??= candle(i, rand);
    return all[i];
  };
  const clock = fakeClock(T0 + options.history * MINUTE + 30_000);
  const closes: Array<[Interval, number, number]> = [];
  const base = new TrackedSymbol({ symbol: 'BTCUSDT', ring: new CandleRing(options.length), bar: '1m', clock, cadenceMs: 2000 });
  const series = options.intervals.map(
    (interval) =>
      new DerivedSeries({
        symbol: 'BTCUSDT',
        bar: '1m',
        interval,
        ring: new CandleRing(options.length),
        clock,
        events: { closed: (_symbol, openTime, close) => closes.push([interval, openTime, close]), hole: () => undefined },
        format: () => FORMAT,
      }),
  );
  const history: RawKline[] = [];
  for (let i = 0; i <= options.history; i += 1) history.push(make(i));
  // The forming candle's REST row is a snapshot of it: different values from its final ones.
  const formingRow = [...(candle(options.history, random(99)) as unknown[])] as RawKline;
  formingRow[COL.openTime] = T0 + options.history * MINUTE;
  formingRow[COL.closeTime] = closeTimeOf('1m', formingRow[COL.openTime]);
  base.applyRest([...history.slice(0, -1), formingRow], clock.t, T0);
  base.markReady();
  /** Candle `i` from the stream: a forming update, then its close. */
  const stream = (i: number, isClosed: boolean, values: readonly (string | number)[] = make(i)): void => {
    clock.t = Math.max(clock.t, T0 + i * MINUTE + (isClosed ? 59_999 : 1000));
    base.applyStream(values.map(Number), isClosed, clock.t);
    for (const s of series) s.follow(base, clock.t);
  };
  return { base, series, clock, closes, make, all, stream };
}

describe('DecimalSum', () => {
  it('adds decimals without float drift', () => {
    const sum = new DecimalSum();
    sum.reset(8);
    sum.add(0.1);
    sum.add(0.2);
    expect(sum.value()).toBe(0.3);
    expect(0.1 + 0.2).not.toBe(0.3);
  });

  it('takes values from their text exactly where a float no longer holds every decimal', () => {
    // Three daily quote volumes of some 1e8 with 8 decimals: their floats are off by up to a unit.
    const texts = ['310391796.18558009', '827461739.70664576', '781028504.15202955'];
    const fromText = new DecimalSum();
    const fromFloat = new DecimalSum();
    fromText.reset(8);
    fromFloat.reset(8);
    for (const text of texts) {
      fromText.addText(text);
      fromFloat.add(Number(text));
    }
    expect(fromText.value()).toBe(Number('1918882040.04425540'));
    expect(fromFloat.value()).not.toBe(fromText.value());
  });

  it('equals the exact decimal sum, parsed, for a day of values and past 2^53 units', () => {
    const rand = random(7);
    for (const [decimals, scale] of [
      [8, 1e6],
      [3, 1e9],
      [2, 1e11],
      [0, 1e10],
    ] as const) {
      const sum = new DecimalSum();
      sum.reset(decimals);
      let exact = 0n;
      for (let i = 0; i < 1440 * 31; i += 1) {
        const text = (Math.floor(rand() * scale * 10 ** decimals) / 10 ** decimals).toFixed(decimals);
        sum.add(Number(text));
        exact += units(text, decimals);
      }
      // Past 2^53 units wherever there are decimals (the whole part stays below 2^53).
      expect(exact > BigInt(Number.MAX_SAFE_INTEGER)).toBe(decimals > 0);
      expect(sum.value(), `${decimals} decimals`).toBe(unitsToNumber(exact, decimals));
    }
  });
});

describe('seedLevels', () => {
  it('tiles a bucket with at most one request per level', () => {
    expect(seedLevels('1m', '1M')).toEqual(['1d', '1h']);
    expect(seedLevels('1m', '1w')).toEqual(['1d', '1h']);
    expect(seedLevels('1m', '1d')).toEqual(['1h']);
    expect(seedLevels('1m', '1h')).toEqual([]);
    expect(seedLevels('1s', '1d')).toEqual(['1h', '1m']);
    expect(seedLevels('3m', '1h')).toEqual([]);
    expect(seedLevels('5m', '1d')).toEqual(['1h']);
  });
});

describe('DerivedSeries', () => {
  it('folds final BAR candles into 5m, 1h, 1d and 1w bars equal to the exact fold, closed and forming, across midnight and a Monday', () => {
    const t = setup({ length: 300, intervals: ['5m', '1h', '1d', '1w'], history: 117 });
    // The day and the week began before the first candle made here: one tile stands for that part.
    const tiles = new Map<Interval, RawKline>();
    for (const s of t.series) {
      const bucket = openTimeOf(s.interval, t.base.pendingFinal() as number);
      if (bucket < T0) {
        const tile = candle(-1, random(5));
        tile[COL.openTime] = bucket;
        // A week of quote volume: far more units of 1e-8 than a float holds; taken from the text.
        tile[COL.quoteVolume] = '123456789012.12345678';
        tile[COL.takerBuyQuote] = '98765432109.87654321';
        tiles.set(s.interval, tile);
      }
      const tile = tiles.get(s.interval);
      expect(s.seed(bucket, tile === undefined ? [] : [tile], tile === undefined ? bucket : T0, t.base, t.clock.t), s.interval).toBe(true);
    }
    /** The candles of a bucket that are final before candle `upTo`, the tile first. */
    const bucketRows = (interval: Interval, bucket: number, upTo: number): RawKline[] => {
      const tile = tiles.get(interval);
      const rows = t.all.filter((row) => openTimeOf(interval, row[COL.openTime]) === bucket && row[COL.openTime] < T0 + upTo * MINUTE);
      return tile !== undefined && tile[COL.openTime] === bucket ? [tile, ...rows] : rows;
    };
    for (let i = 117; i < 250; i += 1) {
      const snapshot = candle(i, random(1000 + i));
      snapshot[COL.openTime] = T0 + i * MINUTE;
      snapshot[COL.closeTime] = closeTimeOf('1m', snapshot[COL.openTime]);
      t.stream(i, false, snapshot);
      // Mid-candle, the forming derived bar is the fold of the bucket's final candles and this snapshot.
      if (i % 17 === 0 || i === 119) {
        for (const s of t.series) {
          const bucket = openTimeOf(s.interval, T0 + i * MINUTE);
          const expected = expectedBar(s.interval, [...bucketRows(s.interval, bucket, i), snapshot]);
          expect(Array.from(s.ring.view().at(-1)), `forming ${s.interval} at candle ${i}`).toEqual(expected);
        }
      }
      t.stream(i, true);
    }
    for (const s of t.series) {
      const view = s.ring.view();
      expect(view.length, s.interval).toBeGreaterThan(1);
      for (let r = 0; r < view.length - 1; r += 1) {
        const bucket = view.openTime(r);
        expect(Array.from(view.at(r)), `${s.interval} ${new Date(bucket).toISOString()}`).toEqual(
          expectedBar(s.interval, bucketRows(s.interval, bucket, 250)),
        );
      }
      expect(s.isServable(t.base, 180_000), s.interval).toBe(true);
    }
    // Every close reported once, with its interval, when the bucket's last candle closed.
    const closed = (interval: Interval) => t.closes.filter(([i]) => i === interval).map(([, openTime]) => new Date(openTime).toISOString());
    expect(closed('5m')).toHaveLength(27);
    expect(new Set(closed('5m')).size).toBe(27);
    expect(closed('5m')[0]).toBe('2026-01-04T23:55:00.000Z');
    expect(closed('5m').at(-1)).toBe('2026-01-05T02:05:00.000Z');
    expect(closed('1h')).toEqual(['2026-01-04T23:00:00.000Z', '2026-01-05T00:00:00.000Z', '2026-01-05T01:00:00.000Z']);
    expect(closed('1d')).toEqual(['2026-01-04T00:00:00.000Z']);
    expect(closed('1w')).toEqual(['2025-12-29T00:00:00.000Z']);
  });

  it('seeds from coarser tiles when the base ring does not reach the bucket start, and serves only a complete fold', () => {
    const t = setup({ length: 30, intervals: ['1h'], history: 117 });
    const [hourly] = t.series as [DerivedSeries];
    const pending = t.base.pendingFinal() as number;
    const bucket = openTimeOf('1h', pending);
    // The base ring holds 30 candles (from 23:28): the hour's first 28 come as tiles.
    expect(t.base.ring.oldestOpenTime).toBeGreaterThan(bucket);
    const tiles = t.all.filter((row) => row[COL.openTime] >= bucket && row[COL.openTime] < bucket + 20 * MINUTE);
    expect(hourly.seed(bucket, tiles, bucket + 20 * MINUTE, t.base, t.clock.t)).toBe(false);
    const moreTiles = t.all.filter((row) => row[COL.openTime] >= bucket && row[COL.openTime] < (t.base.ring.oldestOpenTime as number));
    expect(hourly.seed(bucket, moreTiles, t.base.ring.oldestOpenTime as number, t.base, t.clock.t)).toBe(true);
    for (let i = 117; i < 180; i += 1) t.stream(i, true);
    const view = hourly.ring.view();
    const last = t.all.filter((row) => openTimeOf('1h', row[COL.openTime]) === bucket);
    expect(Array.from(view.at(hourly.ring.indexOf(bucket)))).toEqual(expectedBar('1h', last));
    expect(hourly.isServable(t.base, 180_000)).toBe(true);
  });

  it('stops following when the base ring dropped candles it had not folded, until seeded again', () => {
    const t = setup({ length: 10, intervals: ['5m'], history: 20 });
    const [series] = t.series as [DerivedSeries];
    const pending = t.base.pendingFinal() as number;
    const bucket = openTimeOf('5m', pending);
    expect(series.seed(bucket, [], bucket, t.base, t.clock.t)).toBe(true);
    // Fifteen closes arrive in one REST reply (a repair after an outage): more than the ring holds.
    const rows: RawKline[] = [];
    for (let i = 20; i < 36; i += 1) rows.push(t.make(i));
    t.clock.t = T0 + 36 * MINUTE + 5000;
    t.base.applyRest(rows, t.clock.t, T0 + 20 * MINUTE);
    series.follow(t.base, t.clock.t);
    expect(t.base.finalOpenTime).toBe(T0 + 35 * MINUTE);
    expect(series.isSeeded).toBe(false);
    expect(series.isServable(t.base, 180_000)).toBe(false);
  });
});
