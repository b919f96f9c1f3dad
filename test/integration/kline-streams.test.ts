import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClosedError, InvalidArgumentError } from '../../src/errors.js';
import { KlineStreams, type KlineStreamsOptions, type StreamEvent } from '../../src/exchange/kline-streams.js';
import type { Interval, MarketType } from '../../src/binance/markets.js';
import { SimulatedBinance, generateSymbols, type SimStreamOptions } from '../../src/sim/index.js';

/** Short server settings: fast pushes, pings and lifetimes, so every behaviour shows in seconds. */
const FAST: SimStreamOptions = { cadenceMs: 100, pingIntervalMs: 500, pongTimeoutMs: 1500, maxLifetimeMs: 60_000 };

interface Update {
  readonly symbol: string;
  readonly values: number[];
  readonly isClosed: boolean;
  readonly eventTime: number;
}

interface Run {
  readonly sim: SimulatedBinance;
  readonly market: MarketType;
  readonly streams: KlineStreams;
  readonly updates: Update[];
  readonly events: StreamEvent[];
  of<T extends StreamEvent['type']>(type: T): Array<Extract<StreamEvent, { type: T }>>;
  symbolsWithData(): Set<string>;
}

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startRun(options: {
  market: MarketType;
  symbols: string[];
  interval?: Interval;
  sim?: SimStreamOptions;
  streams?: Partial<KlineStreamsOptions>;
  listed?: string[];
}): Promise<Run> {
  const sim = await SimulatedBinance.start({
    seed: 11,
    markets: [options.market],
    symbols: { [options.market]: options.listed ?? options.symbols },
    streams: { ...FAST, ...options.sim },
  });
  cleanups.push(() => sim.close());
  const updates: Update[] = [];
  const events: StreamEvent[] = [];
  const streams = new KlineStreams({
    market: options.market,
    interval: options.interval ?? '1m',
    baseUrl: sim.urls(options.market).ws,
    staleAfterMs: 600,
    backoff: { baseMs: 50, maxMs: 200 },
    onKline: (symbol, values, isClosed, eventTime) => updates.push({ symbol, values: [...values], isClosed, eventTime }),
    onEvent: (event) => events.push(event),
    ...options.streams,
  });
  cleanups.push(async () => {
    streams.destroy();
    await streams.close();
  });
  streams.setSymbols(options.symbols);
  streams.start();
  return {
    sim,
    market: options.market,
    streams,
    updates,
    events,
    of: <T extends StreamEvent['type']>(type: T) => events.filter((e): e is Extract<StreamEvent, { type: T }> => e.type === type),
    symbolsWithData: () => new Set(updates.map((u) => u.symbol)),
  };
}

/** Waits until `condition` holds, checking every 20 ms; fails after `timeoutMs`. */
async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  await vi.waitFor(
    () => {
      if (!condition()) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: 20 },
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('delivery', () => {
  it('delivers each update with the values the exchange had at the event time, and closes with isClosed (SPOT 1s)', async () => {
    const run = await startRun({ market: 'SPOT', interval: '1s', symbols: ['BTCUSDT', 'ETHUSDT'] });
    await until(() => run.updates.filter((u) => u.isClosed).length >= 4, 'four closed candles', 8000);
    for (const update of run.updates.slice(0, 20)) {
      const row = run.sim.world.kline('SPOT', update.symbol, '1s', update.values[0]!, update.eventTime)!;
      expect(update.values).toEqual(row.map(Number));
    }
    for (const closed of run.updates.filter((u) => u.isClosed)) {
      // A closed candle carries its final values: what the exchange says long after the close.
      const final = run.sim.world.kline('SPOT', closed.symbol, '1s', closed.values[0]!, run.sim.world.now())!;
      expect(closed.values).toEqual(final.map(Number));
      expect(closed.eventTime).toBeGreaterThan(closed.values[6]!);
    }
    expect(run.symbolsWithData()).toEqual(new Set(['BTCUSDT', 'ETHUSDT']));
    expect(run.streams.status('BTCUSDT')).toMatchObject({ state: 'live', lastDataAt: expect.any(Number) });
    expect(run.streams.lastMessageAt('ETHUSDT')).toBeGreaterThan(0);
    expect(run.streams.status('BNBUSDT')).toBeUndefined();
    expect(run.streams.stats.messages).toBe(run.updates.length);
  });

  it('spreads 12 UM symbols over 3 combined connections on the /market route', async () => {
    const symbols = generateSymbols('UM', 12);
    const run = await startRun({ market: 'UM', symbols, sim: { maxStreamsPerConnection: 5 }, streams: { maxStreamsPerConnection: 5 } });
    // Unrouted UM connections get no klines: data from all 12 proves the route.
    await until(() => run.symbolsWithData().size === 12, 'updates of all 12 symbols');
    expect(run.streams.stats.connections).toBe(3);
    expect(run.sim.streams('UM').stats.connectionsOpen).toBe(3);
    expect(run.streams.stats.controlMessages).toBe(0);
    expect(run.of('reconnect')).toEqual([]);
  });

  it('answers the server pings: connections outlive the pong deadline', async () => {
    const run = await startRun({ market: 'SPOT', symbols: ['BTCUSDT'], sim: { pingIntervalMs: 300, pongTimeoutMs: 700 } });
    await sleep(1500);
    expect(run.sim.streams('SPOT').stats.connectionsTotal).toBe(1);
    expect(run.of('interrupted')).toEqual([]);
  });
});

describe('symbols at run time', () => {
  it('paces SUBSCRIBE within the incoming-message limit when symbols join one by one', async () => {
    const listed = generateSymbols('SPOT', 16);
    // Spot allows 5 messages per second, pongs included: pings every 500 ms take 2 of them.
    const run = await startRun({ market: 'SPOT', symbols: [listed[0]!], listed });
    await until(() => run.symbolsWithData().size === 1, 'the first symbol');
    for (let n = 2; n <= listed.length; n += 1) {
      run.streams.setSymbols(listed.slice(0, n));
      await sleep(40);
    }
    await until(() => run.symbolsWithData().size === listed.length, 'updates of every joined symbol', 10_000);
    // One connection throughout: the server closed nothing (it closes with 1008 over the limit).
    expect(run.sim.streams('SPOT').stats.connectionsTotal).toBe(1);
    expect(run.of('reconnect')).toEqual([]);
    expect(run.streams.stats.controlMessages).toBeGreaterThan(1);
    expect(run.streams.stats.controlMessages).toBeLessThan(listed.length - 1);
  });

  it('unsubscribes symbols that leave, opens a connection when one is full, and closes an empty one', async () => {
    const listed = generateSymbols('SPOT', 4);
    const [a, b, c, d] = listed as [string, string, string, string];
    const run = await startRun({ market: 'SPOT', symbols: [a, b], listed, streams: { maxStreamsPerConnection: 2 } });
    await until(() => run.symbolsWithData().size === 2, 'updates of both symbols');
    run.streams.setSymbols([a, c, d]);
    await until(() => run.symbolsWithData().has(c) && run.symbolsWithData().has(d), 'updates of the joined symbols');
    expect(run.streams.stats.connections).toBe(2);
    expect(run.streams.status(b)).toBeUndefined();
    const seen = run.updates.length;
    await until(() => run.updates.length > seen + 10, 'more updates');
    // Updates of the leaver may cross the UNSUBSCRIBE for a moment, then stop.
    const later = run.updates.length;
    await until(() => run.updates.length > later + 10, 'more updates');
    expect(run.updates.slice(later).some((u) => u.symbol === b)).toBe(false);
    // d alone on the second connection: it leaves, the connection closes.
    run.streams.setSymbols([a, c]);
    await until(() => run.sim.streams('SPOT').stats.connectionsOpen === 1, 'the empty connection to close');
    expect(run.streams.stats.connections).toBe(1);
    expect(run.of('reconnect')).toEqual([]);
    expect(run.of('interrupted')).toEqual([]);
  });

  it('refuses names that are not Binance symbols, saying which', () => {
    const streams = new KlineStreams({ market: 'SPOT', interval: '1m', onKline: () => {} });
    expect(() => streams.setSymbols(['BTCUSDT', 'btc/usdt'])).toThrow(InvalidArgumentError);
    expect(() => streams.setSymbols(['BTCUSDT', 'btc/usdt'])).toThrow(/symbols\[1\] "btc\/usdt"/);
    expect(() => new KlineStreams({ market: 'UM', interval: '1s', onKline: () => {} })).toThrow(/1s.*not offered on UM/);
  });
});

describe('faults', () => {
  it('a dropped connection: interrupted since the last update, reconnect with back-off, then resumed', async () => {
    const run = await startRun({ market: 'SPOT', symbols: ['BTCUSDT', 'ETHUSDT'] });
    await until(() => run.symbolsWithData().size === 2, 'updates of both symbols');
    const lastBefore = Math.max(run.streams.lastMessageAt('BTCUSDT')!, run.streams.lastMessageAt('ETHUSDT')!);
    const before = Date.now();
    run.sim.dropStreams();
    await until(() => run.of('resumed').length > 0, 'resumed');
    const [interrupted] = run.of('interrupted');
    expect(interrupted?.symbols.sort()).toEqual(['BTCUSDT', 'ETHUSDT']);
    expect(interrupted!.since).toBeLessThanOrEqual(lastBefore);
    expect(interrupted!.since).toBeLessThanOrEqual(before);
    expect(run.of('reconnect')[0]).toMatchObject({ connection: 1, attempt: 1, symbols: 2 });
    expect(run.of('reconnect')[0]!.delayMs).toBeLessThanOrEqual(50);
    expect(
      run
        .of('resumed')
        .flatMap((e) => e.symbols)
        .sort(),
    ).toEqual(['BTCUSDT', 'ETHUSDT']);
    // The order a caller relies on: the drop is reported before the return of data.
    expect(run.events.findIndex((e) => e.type === 'interrupted')).toBeLessThan(run.events.findIndex((e) => e.type === 'resumed'));
    expect(run.streams.stats.reconnects).toBe(1);
    expect(run.sim.streams('SPOT').stats.connectionsOpen).toBe(1);
  });

  it('a stalled connection (open, pinging, no data): the watchdog reports it and reconnects until data returns', async () => {
    const run = await startRun({ market: 'UM', symbols: ['BTCUSDT', 'ETHUSDT'] });
    await until(() => run.symbolsWithData().size === 2, 'updates of both symbols');
    run.sim.stallStreams(true);
    await until(() => run.of('interrupted').length > 0, 'the watchdog');
    const lastBefore = run.streams.lastMessageAt('BTCUSDT')!;
    expect(run.of('interrupted')[0]).toMatchObject({ symbols: ['BTCUSDT', 'ETHUSDT'], reason: expect.stringMatching(/no data/) });
    expect(run.of('interrupted')[0]!.since).toBeLessThanOrEqual(lastBefore);
    await until(() => run.of('reconnect').length > 0, 'a reconnect');
    expect(['reconnecting', 'stalled']).toContain(run.streams.status('BTCUSDT')?.state);
    run.sim.stallStreams(false);
    await until(() => run.of('resumed').flatMap((e) => e.symbols).length === 2, 'resumed for both');
    expect(run.streams.status('BTCUSDT')?.state).toBe('live');
    // Reported once, however many reconnects the stall took.
    expect(run.of('interrupted')).toHaveLength(1);
  });

  it('one silent stream among live ones: that symbol alone is interrupted, then resumed', async () => {
    const run = await startRun({ market: 'SPOT', interval: '1s', symbols: ['BTCUSDT', 'ETHUSDT'] });
    await until(() => run.symbolsWithData().size === 2, 'updates of both symbols');
    const now = run.sim.world.now();
    run.sim.world.suspend('SPOT', 'ETHUSDT', Math.floor(now / 1000) * 1000, Math.floor(now / 1000) * 1000 + 3000);
    await until(() => run.of('interrupted').length > 0, 'the stream watchdog');
    expect(run.of('interrupted')[0]).toMatchObject({ symbols: ['ETHUSDT'], reason: expect.stringMatching(/no data on the stream/) });
    expect(run.streams.status('ETHUSDT')?.state).toBe('stalled');
    expect(run.streams.status('BTCUSDT')?.state).toBe('live');
    await until(() => run.of('resumed').length > 0, 'resumed', 8000);
    expect(run.of('resumed')[0]!.symbols).toEqual(['ETHUSDT']);
    expect(run.of('reconnect')).toEqual([]);
  });

  it('serverShutdown: the connection is replaced without an interruption', async () => {
    const run = await startRun({ market: 'SPOT', symbols: ['BTCUSDT', 'ETHUSDT'] });
    await until(() => run.symbolsWithData().size === 2, 'updates of both symbols');
    run.sim.shutdownStreams();
    await until(() => run.of('rotated').length > 0, 'the rotation');
    const seen = run.updates.length;
    await until(() => run.updates.length > seen + 4, 'updates after the rotation');
    expect(run.of('serverShutdown')).toEqual([{ type: 'serverShutdown', connection: 1 }]);
    expect(run.of('interrupted')).toEqual([]);
    expect(run.of('reconnect')).toEqual([]);
    expect(run.sim.streams('SPOT').stats).toMatchObject({ connectionsOpen: 1, connectionsTotal: 2 });
  });

  it('rotates before the server lifetime, overlapping sockets, with no interruption', async () => {
    const run = await startRun({
      market: 'UM',
      symbols: ['BTCUSDT', 'ETHUSDT'],
      sim: { maxLifetimeMs: 3000 },
      streams: { rotateAfterMs: 1200 },
    });
    await until(() => run.of('rotated').length >= 2, 'two rotations', 8000);
    expect(run.streams.stats.rotations).toBeGreaterThanOrEqual(2);
    expect(run.of('interrupted')).toEqual([]);
    expect(run.of('reconnect')).toEqual([]);
    // Every socket was closed by the client, none by the lifetime limit: total = rotations + 1.
    await until(() => run.sim.streams('UM').stats.connectionsOpen === 1, 'the old socket to close');
    expect(run.sim.streams('UM').stats.connectionsTotal).toBe(run.streams.stats.rotations + 1);
  });

  it('malformed frames are counted and reported, and ingestion goes on', async () => {
    const run = await startRun({ market: 'UM', symbols: ['BTCUSDT'] });
    await until(() => run.updates.length > 0, 'an update');
    run.sim.faults.streamMalformedNext = 3;
    await until(() => run.streams.stats.malformed === 3, 'three malformed frames');
    const seen = run.updates.length;
    await until(() => run.updates.length > seen + 3, 'updates after them');
    expect(run.of('malformed')).toHaveLength(3);
    expect(run.of('malformed')[0]!.detail).toMatch(/not JSON/);
    expect(run.of('reconnect')).toEqual([]);
  });

  it('a throwing onKline or onEvent listener is counted, and ingestion goes on', async () => {
    let calls = 0;
    const run = await startRun({
      market: 'UM',
      symbols: ['BTCUSDT'],
      streams: {
        onKline: () => {
          calls += 1;
          throw new Error('bot bug');
        },
        onEvent: () => {
          throw new Error('bot bug in events');
        },
      },
    });
    await until(() => calls >= 5, 'five calls');
    run.sim.dropStreams();
    const before = calls;
    await until(() => calls > before + 5, 'calls after a reconnect');
    expect(run.streams.stats.listenerErrors).toBeGreaterThanOrEqual(calls);
    expect(run.streams.stats.reconnects).toBe(1);
  });
});

describe('close()', () => {
  it('closes every socket and timer, is idempotent, and refuses later use', async () => {
    const sim = await SimulatedBinance.start({ markets: ['SPOT'], symbols: { SPOT: ['BTCUSDT'] }, streams: FAST });
    cleanups.push(() => sim.close());
    const active = (kind: string): number => process.getActiveResourcesInfo().filter((r) => r === kind).length;
    const timersBefore = active('Timeout');
    const socketsBefore = active('TCPSocketWrap');
    let updates = 0;
    const streams = new KlineStreams({ market: 'SPOT', interval: '1m', baseUrl: sim.urls('SPOT').ws, onKline: () => (updates += 1) });
    streams.setSymbols(['BTCUSDT']);
    streams.start();
    streams.start();
    await until(() => updates > 2, 'updates');
    expect(sim.streams('SPOT').stats.connectionsTotal).toBe(1);
    const closing = streams.close();
    expect(streams.close()).toBe(closing);
    await closing;
    expect(streams.stats.connections).toBe(0);
    await until(() => sim.streams('SPOT').stats.connectionsOpen === 0, 'the server to see the close');
    const after = updates;
    await sleep(300);
    expect(updates).toBe(after);
    expect(() => streams.setSymbols(['ETHUSDT'])).toThrow(ClosedError);
    expect(() => streams.start()).toThrow(ClosedError);
    streams.destroy();
    expect(active('TCPSocketWrap')).toBeLessThanOrEqual(socketsBefore);
    expect(active('Timeout')).toBeLessThanOrEqual(timersBefore);
  });

  it('destroy() cuts the sockets at once and stops reconnecting', async () => {
    const run = await startRun({ market: 'SPOT', symbols: ['BTCUSDT'] });
    await until(() => run.updates.length > 0, 'an update');
    run.streams.destroy();
    await until(() => run.sim.streams('SPOT').stats.connectionsOpen === 0, 'the server to see the cut');
    await sleep(300);
    expect(run.sim.streams('SPOT').stats.connectionsTotal).toBe(1);
    expect(run.of('reconnect')).toEqual([]);
  });
});
