import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CandleServer, getCandleSecurity, type CandleServerOptions } from '../../src/candle-server.js';
import { ClosedError, ConfigError, InvalidArgumentError } from '../../src/errors.js';
import { openTimeOf } from '../../src/binance/intervals.js';
import type { Interval, MarketType } from '../../src/binance/markets.js';
import type { CandleRuleInput } from '../../src/rule.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import type { CandleView } from '../../src/store/candle-view.js';
import { captureLog } from '../helpers/log.js';
import { simRule, startSim } from '../helpers/sim.js';
import { pause, waitFor } from '../helpers/wait.js';

let scope = 0;

describe('CandleServer against the simulated exchange', () => {
  let sim: SimulatedBinance;
  let dir: string;
  const servers: CandleServer[] = [];

  beforeAll(async () => {
    sim = await startSim({
      markets: ['SPOT', 'UM', 'CM'],
      archiveDelayMs: 0,
      streams: { cadenceMs: 100, pingIntervalMs: 1000, pongTimeoutMs: 5000 },
    });
  });
  afterAll(async () => {
    await sim.close();
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'candle-server-'));
    sim.faults.streamsStalled = false;
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  function server(market: MarketType, rule: CandleRuleInput, extra: Partial<CandleServerOptions> = {}): CandleServer {
    scope += 1;
    const created = new CandleServer({
      instType: market,
      budgetScope: `candle-server-test-${scope}`,
      streams: { staleAfterMs: 1500 },
      rule: {
        ...simRule(sim, market, dir),
        ...rule,
      },
      ...extra,
    });
    servers.push(created);
    return created;
  }

  /** The exchange's candles for the open times of `view`, as numbers, at exchange time `now`. */
  function exchangeRows(market: MarketType, symbol: string, bar: Interval, view: CandleView, now: number): number[][] {
    const rows: number[][] = [];
    for (let i = 0; i < view.length; i += 1) {
      const row = sim.world.kline(market, symbol, bar, view.openTime(i), now);
      rows.push(row === undefined ? [] : row.map(Number));
    }
    return rows;
  }

  /**
   * Every row before the newest must equal the exchange's final candle exactly. The newest row is
   * the forming candle as far as the server knows: it may have closed a moment ago, its close event
   * still on the way.
   */
  function expectClosedRowsEqualExchange(market: MarketType, symbol: string, bar: Interval, view: CandleView): void {
    const now = sim.world.now();
    const rows = view.toArray().slice(0, -1);
    const closed = rows.filter((row) => (row[6] as number) < now);
    expect(closed.length).toBeGreaterThan(0);
    const expected = exchangeRows(market, symbol, bar, view, now).slice(0, closed.length);
    expect(closed).toEqual(expected);
  }

  /** The view holds every candle of its window, without a hole. */
  function expectContiguous(view: CandleView, stepMs: number): void {
    for (let i = 1; i < view.length; i += 1) expect(view.openTime(i) - view.openTime(i - 1)).toBe(stepMs);
  }

  it('fills every ring to LENGTH with the exchange candles and serves them fresh', async () => {
    const log = captureLog('info');
    const spot = server('SPOT', {}, { logger: log.logger });
    await spot.runCandleMap();
    await spot.runCandleMap();
    expect(spot.isReady).toBe(true);
    const view = spot.getCandleSecurity('BTCUSDT', 5);
    expect(view.length).toBe(60);
    expect(view.width).toBe(12);
    expectContiguous(view, 1000);
    // The forming candle: the current second's, or the one before if its first update is still on the way.
    expect(openTimeOf('1s', sim.world.now()) - (view.newestOpenTime as number)).toBeLessThanOrEqual(1000);
    expectClosedRowsEqualExchange('SPOT', 'BTCUSDT', '1s', spot.getCandleSecurity('BTCUSDT', 5, { copy: true }));
    expect(log.messages()).toContain('COMPLETE PREPARE candle_map');
    expect(spot.status('BTCUSDT', 5)).toMatchObject({ state: 'fresh', rows: 60 });
    expect(spot.status('NOPEUSDT')).toMatchObject({ state: 'unknown' });
    expect(spot.getCandleSecurity('NOPEUSDT').isEmpty).toBe(true);
  });

  it('keeps updating the forming candle and replaces it with the final values at close', async () => {
    const spot = server('SPOT', { SYMBOLS: ['ETHUSDT'] });
    const closed: number[] = [];
    spot.on('candleClosed', (event) => closed.push(event.openTime));
    await spot.runCandleMap();
    // Sample the forming candle every 10 ms over three candles: each takes several values as it forms.
    const formingOpen = spot.getCandleSecurity('ETHUSDT', 5).newestOpenTime as number;
    const volumes = new Map<number, Set<number>>();
    const sampler = setInterval(() => {
      const view = spot.getCandleSecurity('ETHUSDT', 5);
      const open = view.newestOpenTime;
      if (open === undefined) return;
      const seen = volumes.get(open) ?? new Set<number>();
      seen.add(view.volume(view.length - 1));
      volumes.set(open, seen);
    }, 10);
    try {
      await waitFor(() => (spot.getCandleSecurity('ETHUSDT', 5).newestOpenTime ?? 0) >= formingOpen + 3000);
    } finally {
      clearInterval(sampler);
    }
    expect(Math.max(...[...volumes.values()].map((seen) => seen.size))).toBeGreaterThan(1);
    expect(closed).toContain(formingOpen);
    const view = spot.getCandleSecurity('ETHUSDT', 5, { copy: true });
    const index = view.length - 1 - ((view.newestOpenTime as number) - formingOpen) / 1000;
    const final = sim.world.kline('SPOT', 'ETHUSDT', '1s', formingOpen, sim.world.now());
    expect(view.at(index)).toEqual(Float64Array.from(final?.map(Number) ?? []));
  });

  it('returns nothing while the stream is stalled and serves again, hole-free, once it recovers', async () => {
    const spot = server('SPOT', { SYMBOLS: ['BTCUSDT'] });
    await spot.runCandleMap();
    expect(await waitFor(() => spot.stats().sync.streamUpdates > 4 && !spot.getCandleSecurity('BTCUSDT', 2).isEmpty)).toBe(true);
    sim.stallStreams(true);
    try {
      expect(await waitFor(() => spot.getCandleSecurity('BTCUSDT', 2).isEmpty, 8000)).toBe(true);
      expect(['stale', 'repairing']).toContain(spot.status('BTCUSDT', 2).state);
    } finally {
      sim.stallStreams(false);
    }
    expect(await waitFor(() => !spot.getCandleSecurity('BTCUSDT', 2).isEmpty, 10_000)).toBe(true);
    const view = spot.getCandleSecurity('BTCUSDT', 2, { copy: true });
    expectContiguous(view, 1000);
    expectClosedRowsEqualExchange('SPOT', 'BTCUSDT', '1s', view);
  });

  it('repairs the candles missed while the streams were down, and reports the gap', async () => {
    const spot = server('SPOT', {});
    const gaps: Array<{ repaired: boolean }> = [];
    spot.on('gap', (gap) => gaps.push(gap));
    await spot.runCandleMap();
    expect(await waitFor(() => spot.stats().sync.streamUpdates > 4)).toBe(true);
    sim.dropStreams('SPOT');
    await pause(2500);
    expect(await waitFor(() => gaps.some((g) => g.repaired) && !spot.getCandleSecurity('ETHUSDT', 2).isEmpty, 10_000)).toBe(true);
    for (const symbol of ['BTCUSDT', 'ETHUSDT']) {
      const view = spot.getCandleSecurity(symbol, 2, { copy: true });
      expect(view.length).toBe(60);
      expectContiguous(view, 1000);
      expectClosedRowsEqualExchange('SPOT', symbol, '1s', view);
    }
    expect(spot.stats().sync.gapsRepaired).toBeGreaterThan(0);
  });

  it('restarts warm from its snapshot with a few requests and the exchange candles', async () => {
    sim.stats.reset();
    const first = server('UM', { BAR: '1m', LENGTH: 600, CACHE_DELAY_SECONDS: 3600 });
    await first.runCandleMap();
    // Cold: 600 candles are two pages (499 + 101) per symbol, whatever the stream delivered first.
    expect(sim.stats.requestsTo('/fapi/v1/klines')).toBe(4);
    await first.close();
    const files = await readdir(join(dir, 'cache'));
    expect(files.some((f) => f.startsWith('snapshot-UM-1m-'))).toBe(true);
    sim.stats.reset();
    const second = server('UM', { BAR: '1m', LENGTH: 600, CACHE_DELAY_SECONDS: 3600 });
    await second.runCandleMap();
    // A cold start of 600 candles costs two pages per symbol; warm, at most one small request each.
    expect(sim.stats.requestsTo('/fapi/v1/klines')).toBeLessThanOrEqual(2);
    expect(await waitFor(() => !second.getCandleSecurity('BTCUSDT', 120).isEmpty, 5000)).toBe(true);
    const view = second.getCandleSecurity('BTCUSDT', 120, { copy: true });
    expect(view.length).toBe(600);
    expectContiguous(view, 60_000);
    expectClosedRowsEqualExchange('UM', 'BTCUSDT', '1m', view);
  });

  it('back-fills the daily files first and fills the rings from them, fetching only today over REST', async () => {
    const log = captureLog('info');
    sim.stats.reset();
    const um = server('UM', { BAR: '1m', LENGTH: 1440, TIMEZONE: 'UTC', LOCAL_CANDLE_DAYS: 2 }, { logger: log.logger });
    await um.runCandleMap();
    const messages = log.messages();
    expect(messages.filter((m) => m.startsWith('COMPLETE DOWNLOAD'))).toHaveLength(2);
    expect(messages.indexOf('COMPLETE PREPARE candle_map')).toBeGreaterThan(
      messages.findLastIndex((m) => m.startsWith('COMPLETE DOWNLOAD')),
    );
    // The two past days came from the archives (no weight); REST only covers today's candles.
    const now = sim.world.now();
    const minutesToday = Math.floor(
      (now - Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate())) / 60_000,
    );
    expect(sim.stats.requestsTo('/fapi/v1/klines')).toBeLessThanOrEqual(2 * Math.ceil((minutesToday + 2) / 499));
    const view = um.getCandleSecurity('ETHUSDT', 120, { copy: true });
    expect(view.length).toBe(1440);
    expectContiguous(view, 60_000);
    expectClosedRowsEqualExchange('UM', 'ETHUSDT', '1m', view);
  });

  it('in REST-only mode sends nothing during a 418 ban and catches up exactly afterwards', async () => {
    const spot = server('SPOT', { UPDATE_MODE: 'rest', SYMBOLS: ['BTCUSDT'] });
    await spot.runCandleMap();
    sim.faults.forcedRetryAfterSeconds = 2;
    sim.faults.force418Next = 1;
    expect(await waitFor(() => spot.status('BTCUSDT').bannedUntil !== undefined, 5000)).toBe(true);
    const bannedUntil = spot.status('BTCUSDT').bannedUntil as number;
    expect(await waitFor(() => spot.status('BTCUSDT', 1).state === 'banned', 5000)).toBe(true);
    expect(spot.getCandleSecurity('BTCUSDT', 1).isEmpty).toBe(true);
    // Served again only once REST has confirmed the symbol after the ban ended.
    expect(
      await waitFor(() => {
        const status = spot.status('BTCUSDT', 2);
        return status.state === 'fresh' && sim.world.now() - (status.confirmedAgeMs ?? Infinity) > bannedUntil;
      }, 10_000),
    ).toBe(true);
    expect(sim.stats.requestsWhileBanned).toBe(0);
    const view = spot.getCandleSecurity('BTCUSDT', 2, { copy: true });
    expectContiguous(view, 1000);
    expectClosedRowsEqualExchange('SPOT', 'BTCUSDT', '1s', view);
  });

  it('follows listings and delistings of the universe at run time', async () => {
    const spot = server('SPOT', { SYMBOLS: 'all', SYMBOL_ENDSWITH: 'USDT', SYMBOLS_FILTER: ['ETHUSDT'], SYMBOLS_REFRESH_SECONDS: 0.3 });
    await spot.runCandleMap();
    expect(spot.symbols().sort()).toEqual(['BNBUSDT', 'BTCUSDT']);
    sim.list('SPOT', { symbol: 'SOLUSDT', listedAt: sim.world.now() - 600_000 });
    sim.delist('SPOT', 'BNBUSDT');
    expect(await waitFor(() => !spot.getCandleSecurity('SOLUSDT', 2).isEmpty && !spot.symbols().includes('BNBUSDT'), 10_000)).toBe(true);
    expect(spot.symbols().sort()).toEqual(['BTCUSDT', 'SOLUSDT']);
    const view = spot.getCandleSecurity('SOLUSDT', 2, { copy: true });
    expect(view.length).toBe(60);
    expectContiguous(view, 1000);
    expectClosedRowsEqualExchange('SPOT', 'SOLUSDT', '1s', view);
    expect(spot.status('BNBUSDT').state).toBe('unknown');
  });

  it('keeps trying to reach the exchange at start instead of giving up', async () => {
    const log = captureLog('warn');
    sim.faults.restFailStatus = 503;
    sim.faults.restFailNext = 6;
    const spot = server('SPOT', { SYMBOLS: ['BTCUSDT'] }, { logger: log.logger });
    await spot.runCandleMap();
    expect(sim.faults.restFailNext).toBe(0);
    expect(log.messages()).toContain('connecting to the exchange failed; trying again');
    expect(spot.getCandleSecurity('BTCUSDT', 5).length).toBe(60);
  });

  it('a throwing listener does not stop ingestion', async () => {
    const spot = server('SPOT', { SYMBOLS: ['BTCUSDT'] });
    spot.on('candleClosed', () => {
      throw new Error('bot bug');
    });
    await spot.runCandleMap();
    const before = spot.stats().sync.streamUpdates;
    expect(await waitFor(() => spot.stats().sync.streamUpdates > before + 20, 5000)).toBe(true);
    expect(spot.getCandleSecurity('BTCUSDT', 2).isEmpty).toBe(false);
  });

  it('serves the module-level getCandleSecurity by market, and says clearly when none runs', async () => {
    expect(() => getCandleSecurity('BTCUSDT')).toThrow(/no CandleServer is running/);
    const spot = server('SPOT', { SYMBOLS: ['BTCUSDT'] });
    await spot.runCandleMap();
    expect(getCandleSecurity('BTCUSDT', 5).length).toBe(60);
    expect(() => getCandleSecurity('BTCUSDT', 5, { market: 'UM' })).toThrow(/no CandleServer is running for UM/);
    const um = server('UM', { SYMBOLS: ['ETHUSDT'], BAR: '1m' });
    await um.runCandleMap();
    expect(() => getCandleSecurity('BTCUSDT', 5)).toThrow(/several CandleServers are running/);
    expect(getCandleSecurity('ETHUSDT', 120, { market: 'UM' }).isEmpty).toBe(false);
    await expect(server('SPOT', {}).runCandleMap()).rejects.toThrow(/already running/);
  });

  it('gives a UM and a CM server in one process one futures weight budget', async () => {
    const budgetScope = `shared-futures-${scope}`;
    // Different spending (two symbols against one), so separate budgets would show different counts.
    const um = new CandleServer({
      instType: 'UM',
      budgetScope,
      rule: simRule(sim, 'UM', dir, { BAR: '1m', SYMBOLS: ['BTCUSDT', 'ETHUSDT'] }),
    });
    const cm = new CandleServer({ instType: 'CM', budgetScope, rule: simRule(sim, 'CM', dir, { BAR: '1m', SYMBOLS: ['BTCUSD_PERP'] }) });
    servers.push(um, cm);
    await Promise.all([um.runCandleMap(), cm.runCandleMap()]);
    // Both spend from one budget (0.75 × 2400): each sees the other's spending in its count.
    expect(um.stats().weight).toEqual(cm.stats().weight);
    expect(um.stats().weight.budget).toBe(1800);
    expect(um.stats().weight.used).toBeGreaterThan(0);
  });

  it('validates in the constructor, does no I/O there, and leaves no handle after close()', async () => {
    expect(() => new CandleServer({ instType: 'XX' as MarketType })).toThrow(ConfigError);
    expect(() => new CandleServer({ instType: 'SPOT', rule: { BAR: '2m' } as unknown as CandleRuleInput })).toThrow(ConfigError);
    const before = sim.stats.totalRequests;
    const spot = server('SPOT', { SYMBOLS: ['BTCUSDT'] });
    expect(() => spot.getCandleSecurity('BTCUSDT', 0)).toThrow(InvalidArgumentError);
    expect(sim.stats.totalRequests).toBe(before);
    const resources = () =>
      process
        .getActiveResourcesInfo()
        .filter((r) => r !== 'TTYWrap')
        .sort();
    const baseline = resources();
    await spot.runCandleMap();
    await spot.close();
    await spot.close();
    await pause(100);
    const leftover = [...resources()];
    for (const r of baseline) leftover.splice(leftover.indexOf(r), 1);
    expect(leftover.filter((r) => r === 'TCPSocketWrap' || r === 'Timeout')).toEqual([]);
    await expect(spot.runCandleMap()).rejects.toThrow(ClosedError);
    // A closed server serves nothing: its data no longer follows the exchange.
    expect(spot.getCandleSecurity('BTCUSDT', 5).isEmpty).toBe(true);
  });

  it('closes during start-up without hanging, rejecting runCandleMap with ClosedError', async () => {
    const um = server('UM', { BAR: '1m', LENGTH: 5000 });
    const run = um.runCandleMap();
    await pause(20);
    await um.close();
    await expect(run).rejects.toThrow(ClosedError);
  });
});
