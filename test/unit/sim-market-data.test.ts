import { describe, expect, it } from 'vitest';
import { closeTimeOf, nextOpenTime, openTimeOf } from '../../src/binance/intervals.js';
import { describeKlineProblem, type RawKline } from '../../src/binance/kline.js';
import { MARKETS, type Interval } from '../../src/binance/markets.js';
import { MarketWorld, generateSymbols } from '../../src/sim/world.js';
import { loadRealRows } from '../helpers/sim.js';

const NOW = Date.parse('2025-03-10T12:34:56.789Z');
const MINUTE = 60_000;
const fixedClock = () => NOW;

function world(seed = 1): MarketWorld {
  return new MarketWorld({ seed, clock: fixedClock });
}

function ohlc(row: RawKline): { open: number; high: number; low: number; close: number } {
  return { open: Number(row[1]), high: Number(row[2]), low: Number(row[3]), close: Number(row[4]) };
}

describe('synthetic market data', () => {
  it('is the same for two worlds with the same seed, whatever order candles are asked in', () => {
    const a = world(7);
    const b = world(7);
    const t = openTimeOf('1h', NOW) - 50 * 3_600_000;
    const forward = a.klines('UM', 'BTCUSDT', '1h', { from: t, to: NOW, limit: 60, now: NOW });
    // b computes the newest candle first: random access must not depend on history walked.
    const single = b.kline('UM', 'BTCUSDT', '1h', t + 40 * 3_600_000, NOW);
    const backward = b.klines('UM', 'BTCUSDT', '1h', { from: t, to: NOW, limit: 60, newest: true, now: NOW });
    expect(single).toEqual(forward[40]);
    expect(backward).toEqual(forward);
  });

  it('differs between seeds', () => {
    const t = openTimeOf('1m', NOW) - 10 * MINUTE;
    expect(world(1).kline('SPOT', 'BTCUSDT', '1m', t, NOW)).not.toEqual(world(2).kline('SPOT', 'BTCUSDT', '1m', t, NOW));
  });

  it('serves every interval of every market with well-formed rows and exact close times', () => {
    const w = world();
    for (const [market, symbol] of [
      ['SPOT', 'BTCUSDT'],
      ['UM', 'ETHUSDT'],
      ['CM', 'BTCUSD_PERP'],
    ] as const) {
      for (const interval of MARKETS[market].intervals) {
        const rows = w.klines(market, symbol, interval, { from: 0, to: NOW, limit: 5, newest: true, now: NOW });
        expect(rows, `${market} ${interval}`).toHaveLength(5);
        for (const row of rows) {
          expect(describeKlineProblem(row)).toBeUndefined();
          expect(row[6]).toBe(closeTimeOf(interval, row[0]));
        }
        expect(rows.at(-1)?.[0]).toBe(openTimeOf(interval, NOW));
      }
    }
    expect(w.kline('UM', 'BTCUSDT', '1s', openTimeOf('1s', NOW), NOW)).toBeUndefined();
  });

  it('opens each candle at the previous close and keeps low <= open, close <= high', () => {
    const w = world(3);
    for (const interval of ['1s', '1m', '1h', '1d', '1M'] as const satisfies readonly Interval[]) {
      const rows = w.klines('SPOT', 'ETHUSDT', interval, { from: 0, to: NOW, limit: 200, newest: true, now: NOW });
      for (let i = 0; i < rows.length; i += 1) {
        const row = rows[i] as RawKline;
        const { open, high, low, close } = ohlc(row);
        expect(low).toBeLessThanOrEqual(Math.min(open, close));
        expect(high).toBeGreaterThanOrEqual(Math.max(open, close));
        expect(Number(row[9])).toBeLessThanOrEqual(Number(row[5]));
        if (i > 0) expect(row[1]).toBe((rows[i - 1] as RawKline)[4]);
      }
    }
  });

  it('grows the forming candle from a fixed open to exactly the final candle', () => {
    const w = world(5);
    const open = openTimeOf('1m', NOW);
    const final = w.kline('UM', 'BTCUSDT', '1m', open, open + MINUTE) as RawKline;
    let previous: RawKline | undefined;
    for (const offset of [0, 5_000, 17_500, 30_000, 45_000, 59_000, 59_999]) {
      const forming = w.kline('UM', 'BTCUSDT', '1m', open, open + offset) as RawKline;
      expect(forming[1]).toBe(final[1]);
      expect(Number(forming[2])).toBeLessThanOrEqual(Number(final[2]));
      expect(Number(forming[3])).toBeGreaterThanOrEqual(Number(final[3]));
      expect(Number(forming[5])).toBeLessThanOrEqual(Number(final[5]));
      expect(forming[8]).toBeLessThanOrEqual(final[8]);
      if (previous !== undefined) {
        expect(Number(forming[5])).toBeGreaterThanOrEqual(Number(previous[5]));
        expect(Number(forming[2])).toBeGreaterThanOrEqual(Number(previous[2]));
      }
      previous = forming;
    }
    // Asked long after, in a fresh world (no cache), the closed candle is the same.
    expect(world(5).kline('UM', 'BTCUSDT', '1m', open, open + 10 * MINUTE)).toEqual(final);
    expect(w.kline('UM', 'BTCUSDT', '1m', open, open + 59_999)).toEqual(final);
  });

  it('has no candles before listing, after delisting or inside a suspension', () => {
    const w = world();
    const listedAt = openTimeOf('1m', NOW) - 30 * MINUTE;
    w.list('SPOT', { symbol: 'NEWUSDT', listedAt });
    w.delist('SPOT', 'NEWUSDT', listedAt + 20 * MINUTE);
    w.suspend('SPOT', 'NEWUSDT', listedAt + 5 * MINUTE, listedAt + 8 * MINUTE);
    const rows = w.klines('SPOT', 'NEWUSDT', '1m', { from: 0, to: NOW, limit: 1000, now: NOW });
    const times = rows.map((r) => (r[0] - listedAt) / MINUTE);
    expect(times).toEqual([0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    expect(w.kline('SPOT', 'NEWUSDT', '1m', listedAt - MINUTE, NOW)).toBeUndefined();
    expect(w.symbol('SPOT', 'NEWUSDT')?.status).toBe('BREAK');
  });

  it('generates many distinct, valid symbols per market', () => {
    const names = generateSymbols('CM', 20_000);
    expect(new Set(names).size).toBe(20_000);
    expect(names.every((n) => /^[A-Z0-9_]+USD_PERP$/.test(n))).toBe(true);
    const w = new MarketWorld({ clock: fixedClock, symbols: { SPOT: generateSymbols('SPOT', 50) }, markets: ['SPOT'] });
    expect(w.symbols('SPOT')).toHaveLength(50);
  });
});

describe('replayed market data', () => {
  const rows = loadRealRows();
  const start = Date.parse('2025-03-10T00:00:00Z');
  const sourceStart = rows[0]?.[0] ?? 0;
  const replayWorld = () =>
    new MarketWorld({
      clock: fixedClock,
      markets: ['SPOT'],
      symbols: { SPOT: [] },
      replay: [{ market: 'SPOT', symbol: 'REALBTC', rows, startTime: start }],
    });

  it('plays each recorded minute as the 1m candle, re-based in time', () => {
    const w = replayWorld();
    for (const i of [0, 1, 2, 100]) {
      const source = rows[i];
      if (source === undefined) throw new Error('missing row');
      const t = start + (source[0] - sourceStart);
      const row = w.kline('SPOT', 'REALBTC', '1m', t, NOW) as RawKline;
      expect(ohlc(row)).toEqual({ open: source[1], high: source[2], low: source[3], close: source[4] });
      expect(Number(row[5])).toBeCloseTo(source[5], 8);
    }
    expect(w.kline('SPOT', 'REALBTC', '1m', start - MINUTE, NOW)).toBeUndefined();
  });

  it('fills minutes missing from the source with zero-volume candles at the previous close', () => {
    const w = replayWorld();
    // Find the first gap in the source.
    const gapIndex = rows.findIndex((row, i) => i > 0 && row[0] - (rows[i - 1]?.[0] ?? 0) > MINUTE);
    const before = rows[gapIndex - 1];
    if (before === undefined) throw new Error('the recorded data has no gap');
    const t = start + (before[0] - sourceStart) + MINUTE;
    const filled = w.kline('SPOT', 'REALBTC', '1m', t, NOW) as RawKline;
    const previous = w.kline('SPOT', 'REALBTC', '1m', t - MINUTE, NOW) as RawKline;
    expect(Number(filled[5])).toBe(0);
    expect(filled[8]).toBe(0);
    expect([filled[1], filled[2], filled[3], filled[4]]).toEqual([previous[4], previous[4], previous[4], previous[4]]);
  });

  it('converges the forming replayed minute to the recorded row at its close', () => {
    const w = replayWorld();
    const index = rows.findIndex((r) => r[2] > r[3] && r[5] > 0);
    const source = rows[index];
    if (source === undefined) throw new Error('no moving minute');
    const t = start + (source[0] - sourceStart);
    const early = w.kline('SPOT', 'REALBTC', '1m', t, t + 10_000) as RawKline;
    const late = w.kline('SPOT', 'REALBTC', '1m', t, t + MINUTE - 1) as RawKline;
    expect(Number(early[1])).toBe(source[1]);
    expect(Number(early[5])).toBeLessThan(source[5]);
    expect(ohlc(late)).toEqual({ open: source[1], high: source[2], low: source[3], close: source[4] });
    expect(Number(late[5])).toBeCloseTo(source[5], 8);
  });

  it('aggregates replayed minutes into longer intervals', () => {
    const w = replayWorld();
    const hour = w.kline('SPOT', 'REALBTC', '1h', start, NOW) as RawKline;
    const minutes = w.klines('SPOT', 'REALBTC', '1m', { from: start, to: nextOpenTime('1h', start) - 1, limit: 60, now: NOW });
    expect(hour[1]).toBe(minutes[0]?.[1]);
    expect(hour[4]).toBe(minutes.at(-1)?.[4]);
    expect(Number(hour[2])).toBe(Math.max(...minutes.map((m) => Number(m[2]))));
    expect(Number(hour[3])).toBe(Math.min(...minutes.map((m) => Number(m[3]))));
  });
});
