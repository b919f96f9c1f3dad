/**
 * The simulated exchange's klines agree across intervals, as Binance's do: at any `now`, the
 * native kline of interval I equals the aggregate of the native klines of J inside it, for every
 * J that aggregates into I, forming candles included. Amounts are compared as exact decimals
 * (BigInt sums), prices as the strings themselves.
 */
import { describe, expect, it } from 'vitest';
import { canAggregate } from '../../src/analysis/aggregate.js';
import { nextOpenTime, openTimeOf, previousOpenTime } from '../../src/binance/intervals.js';
import type { RawKline } from '../../src/binance/kline.js';
import { MARKETS, MARKET_TYPES, type Interval, type MarketType } from '../../src/binance/markets.js';
import { MarketWorld } from '../../src/sim/world.js';
import { aggregateKlines, decimalUnits, loadRealRows } from '../helpers/sim.js';

const at = (iso: string) => Date.parse(iso);

const NOWS = [
  at('2025-03-10T12:34:56.789Z'), // mid-candle for every interval
  at('2025-03-10T00:00:00.000Z'), // the first millisecond of a UTC day and of a week (a Monday)
  at('2025-03-01T00:00:00.999Z'), // the first second of a month
  at('2025-03-10T13:00:01.000Z'), // just after an hour boundary: the forming hour has two seconds
  at('2025-03-03T00:00:30.250Z'), // a Monday, inside the replay
];

// A replay of ten recorded days from 2025-02-25 13:17, so across a month end, several midnights
// and a Monday; before it, nothing, after it, flat.
const REPLAY_START = at('2025-02-25T13:17:00Z');
const rows = loadRealRows();

/** Symbols of one market: synthetic ones (one listed late, suspended and delisted) and a replay. */
function marketSymbols(market: MarketType): { symbols: string[]; gap: string; replayed: string } {
  const suffix = market === 'CM' ? 'USD_PERP' : 'USDT';
  return { symbols: [market === 'CM' ? 'BTCUSD_PERP' : 'BTCUSDT', `XCHEAP${suffix}`], gap: `GAP${suffix}`, replayed: `REAL${suffix}` };
}

function buildWorld(): MarketWorld {
  const world = new MarketWorld({
    seed: 11,
    clock: () => NOWS[0] as number,
    symbols: Object.fromEntries(MARKET_TYPES.map((m) => [m, marketSymbols(m).symbols])),
  });
  for (const market of MARKET_TYPES) {
    const { gap, replayed } = marketSymbols(market);
    world.list(market, { symbol: gap, basePrice: 0.0123, listedAt: at('2025-02-20T06:30:15.000Z') });
    // Across a midnight that starts a week, and across an hour, off whole seconds.
    world.suspend(market, gap, at('2025-03-09T23:59:30.400Z'), at('2025-03-10T00:02:10.700Z'));
    world.suspend(market, gap, at('2025-03-10T11:59:58.500Z'), at('2025-03-10T12:00:02.500Z'));
    world.delist(market, gap, at('2025-03-10T12:20:05.300Z'));
    world.replay({ market, symbol: replayed, rows, startTime: REPLAY_START });
  }
  return world;
}

// Pairs whose I holds at most this many J candles are checked for every symbol and time; the
// longer folds (1m into 1w or 1M) are checked once below.
const MAX_PARTS = 1500;

function pairsOf(market: MarketType): Array<[Interval, Interval]> {
  const intervals = MARKETS[market].intervals;
  const pairs: Array<[Interval, Interval]> = [];
  for (const j of intervals) {
    for (const i of intervals) {
      if (j === i || !canAggregate(j, i)) continue;
      const start = at('2025-03-01T00:00:00Z');
      if ((nextOpenTime(i, start) - start) / (nextOpenTime(j, start) - start) <= MAX_PARTS) pairs.push([j, i]);
    }
  }
  return pairs;
}

/**
 * Checks the native I kline opening at `openTime` against its J klines at `now`; returns how
 * many J klines it had (0: neither exists).
 */
function check(world: MarketWorld, market: MarketType, symbol: string, j: Interval, i: Interval, openTime: number, now: number): number {
  const what = `${market} ${symbol} ${j}->${i} at ${new Date(openTime).toISOString()}, now ${new Date(now).toISOString()}`;
  const native = world.kline(market, symbol, i, openTime, now);
  const parts = world.klines(market, symbol, j, { from: openTime, to: nextOpenTime(i, openTime) - 1, limit: 1_000_000, now });
  if (parts.length === 0) {
    expect(native, what).toBeUndefined();
    return 0;
  }
  expect(native, what).toEqual(aggregateKlines(parts, i, openTime));
  return parts.length;
}

describe.each(MARKET_TYPES)('%s klines aggregate across intervals', (market) => {
  const world = buildWorld();
  const { symbols, gap, replayed } = marketSymbols(market);

  it.each([...symbols, gap, replayed])('%s: every native kline is the fold of the shorter ones, forming or closed', (symbol) => {
    let checked = 0;
    let forming = 0;
    for (const now of NOWS) {
      for (const [j, i] of pairsOf(market)) {
        const current = openTimeOf(i, now);
        // The forming candle and the one before it (closed).
        for (const openTime of [current, previousOpenTime(i, current)]) {
          const parts = check(world, market, symbol, j, i, openTime, now);
          if (parts > 0) checked += 1;
          if (parts > 0 && openTime === current) forming += 1;
        }
      }
    }
    // Most checks find candles (the delisted symbol has none near the last times).
    expect(checked).toBeGreaterThan(pairsOf(market).length * 4);
    expect(forming).toBeGreaterThan(pairsOf(market).length);
  });

  it('folds a whole month of minutes into the month, and a week of minutes into the week', () => {
    const now = NOWS[0] as number;
    expect(check(world, market, symbols[0] as string, '1m', '1M', at('2025-02-01T00:00:00Z'), now)).toBe(28 * 1440);
    expect(check(world, market, replayed, '1m', '1M', at('2025-02-01T00:00:00Z'), now)).toBe(
      (at('2025-03-01T00:00:00Z') - REPLAY_START) / 60_000,
    );
    for (const symbol of [symbols[0] as string, replayed]) {
      expect(check(world, market, symbol, '1m', '1w', at('2025-03-03T00:00:00Z'), now)).toBe(7 * 1440);
    }
    // The forming month: minutes up to the forming one, which holds the seconds begun.
    expect(check(world, market, symbols[0] as string, '1m', '1M', at('2025-03-01T00:00:00Z'), now)).toBe(9 * 1440 + 12 * 60 + 35);
  });

  it('grows a forming second by halves, the last half being the closed second', () => {
    const symbol = symbols[0] as string;
    const minute = at('2025-03-10T12:34:00Z');
    // SPOT serves the seconds themselves; every market folds them into its minutes the same way.
    const interval: Interval = market === 'SPOT' ? '1s' : '1m';
    let grew = 0;
    for (let second = minute; second < minute + 60_000; second += 1000) {
      const open = openTimeOf(interval, second);
      const halves = [0, 499, 500, 999].map((ms) => world.kline(market, symbol, interval, open, second + ms) as RawKline);
      const closed = world.kline(market, symbol, interval, open, second + 1000);
      if (interval === '1s') expect(halves[3]).toEqual(closed);
      for (let k = 1; k < halves.length; k += 1) {
        expect(decimalUnits((halves[k] as RawKline)[5])).toBeGreaterThanOrEqual(decimalUnits((halves[k - 1] as RawKline)[5]));
      }
      if ((halves[0] as RawKline)[5] !== (halves[3] as RawKline)[5]) grew += 1;
    }
    expect(grew).toBeGreaterThan(30);
  });

  it('folds around gaps: a listing, suspensions off whole seconds and a delisting inside candles', () => {
    const day = at('2025-03-10T00:00:00Z');
    const now = NOWS[0] as number;
    // The suspension takes 00:00:00 to 00:02:10 of the day, so the first candles open later.
    expect(world.kline(market, gap, '1m', day, now)).toBeUndefined();
    expect(world.kline(market, gap, '1m', day + 120_000, now)?.[1]).toBe(world.kline(market, gap, '1d', day, now)?.[1]);
    expect(check(world, market, gap, '1m', '1d', day, now)).toBe(12 * 60 + 20 + 1 - 2);
    expect(check(world, market, gap, '1m', '1h', at('2025-02-20T06:00:00Z'), now)).toBe(30);
    expect(check(world, market, gap, '1h', '1M', at('2025-02-01T00:00:00Z'), now)).toBe(8 * 24 + 18);
    // The replay starts at 13:17, so its first hour has 43 minutes.
    expect(check(world, market, replayed, '1m', '1h', at('2025-02-25T13:00:00Z'), now)).toBe(43);
    // The suspension from 11:59:58.5 to 12:00:02.5 takes the seconds 11:59:59 to 12:00:01.
    expect(check(world, market, gap, '1m', '1h', at('2025-03-10T12:00:00Z'), now)).toBe(21);
    if (market === 'SPOT') {
      expect(check(world, market, gap, '1s', '1m', at('2025-03-10T11:59:00Z'), now)).toBe(59);
      expect(check(world, market, gap, '1s', '1m', at('2025-03-10T12:00:00Z'), now)).toBe(58);
    }
  });
});
