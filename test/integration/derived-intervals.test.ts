/**
 * Derived rings against the simulated exchange, for SPOT, UM and CM: after start, across a UTC
 * midnight that is also a Monday and a month's first day (2026-06-01), after a stream drop and its
 * repair, and after a warm restart from snapshots, every closed derived bar equals the
 * simulator's native kline of that interval, field for field, and each boundary's close is
 * reported once per interval.
 *
 * The simulator's clock runs a few seconds before the boundary (the server learns the offset from
 * its time endpoint, as it would from Binance's), so that the boundary passes during the test.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CandleServer } from '../../src/candle-server.js';
import { openTimeOf } from '../../src/binance/intervals.js';
import type { Interval, MarketType } from '../../src/binance/markets.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { simRule, startSim } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

// Monday 1 June 2026, 00:00 UTC: a day, a week and a month begin at once.
const BOUNDARY = Date.UTC(2026, 5, 1);
// How far before the boundary the simulator's clock starts: time for the warm-up to finish.
const LEAD_MS = 14_000;

const CASES: ReadonlyArray<{
  market: MarketType;
  bar: Interval;
  intervals: Interval[];
  symbols: string[];
}> = [
  {
    market: 'SPOT',
    bar: '1s',
    intervals: ['1m', '5m', '1h', '1d', '1w', '1M'],
    symbols: ['BTCUSDT', 'ETHUSDT'],
  },
  {
    market: 'UM',
    bar: '1m',
    intervals: ['5m', '15m', '1h', '4h', '1d', '1w', '1M'],
    symbols: ['BTCUSDT', 'ETHUSDT'],
  },
  {
    market: 'CM',
    bar: '1m',
    intervals: ['5m', '1h', '1d', '1w', '1M'],
    symbols: ['BTCUSD_PERP', 'ETHUSD_PERP'],
  },
];

let scope = 0;

describe('derived intervals against the simulated exchange', () => {
  for (const { market, bar, intervals, symbols } of CASES) {
    it.concurrent(
      `${market}: ${bar} into ${intervals.join(', ')} equal the native klines after start, across the boundary, after a drop and after a restart`,
      async () => {
        const offset = BOUNDARY - LEAD_MS - Date.now();
        const sim = await startSim({
          markets: [market],
          clock: () => Date.now() + offset,
          archiveDelayMs: 0,
          streams: {
            cadenceMs: 100,
            pingIntervalMs: 1000,
            pongTimeoutMs: 5000,
          },
        });
        const dir = await mkdtemp(join(tmpdir(), 'derived-intervals-'));
        const started: CandleServer[] = [];
        const start = (): CandleServer => {
          scope += 1;
          const server = new CandleServer({
            instType: market,
            budgetScope: `derived-intervals-${scope}`,
            streams: { staleAfterMs: 1500 },
            rule: {
              ...simRule(sim, market, dir),
              BAR: bar,
              LENGTH: 40,
              SYMBOLS: symbols,
              INTERVALS: intervals,
            },
          });
          started.push(server);
          return server;
        };
        try {
          const server = start();
          const closes: Array<{
            symbol: string;
            interval: Interval;
            openTime: number;
          }> = [];
          server.on('candleClosed', ({ symbol, interval, openTime }) => closes.push({ symbol, interval, openTime }));
          await server.runCandleMap();
          expect(sim.world.now(), 'the warm-up must end before the boundary').toBeLessThan(BOUNDARY);
          await expectNativeEverywhere(sim, server, market, symbols, 'after start');

          // The boundary: the last BAR candle of the month closes, and with it every derived bar.
          expect(await waitFor(() => sim.world.now() > BOUNDARY + 1500, LEAD_MS + 10_000), 'the boundary passes').toBe(true);
          await expectNativeEverywhere(sim, server, market, symbols, 'across the boundary');
          for (const interval of intervals) {
            const bucket = openTimeOf(interval, BOUNDARY - 1);
            for (const symbol of symbols) {
              const reported = closes.filter((c) => c.interval === interval && c.symbol === symbol && c.openTime === bucket);
              expect(reported, `${symbol} ${interval} close of ${new Date(bucket).toISOString()}`).toHaveLength(1);
            }
          }

          // A stream drop: the server repairs over REST, and the derived rings follow.
          const repairedBefore = server.stats().sync.gapsRepaired;
          sim.dropStreams(market);
          expect(await waitFor(() => server.stats().sync.gapsRepaired > repairedBefore, 15_000), 'the drop is repaired').toBe(true);
          await expectNativeEverywhere(sim, server, market, symbols, 'after a stream drop');

          // A warm restart: the derived rings come back from their snapshots.
          await server.close();
          const files = await readdir(join(dir, 'cache'));
          for (const interval of intervals)
            expect(
              files.some((file) => file.startsWith(`snapshot-${market}-${interval}-`)),
              interval,
            ).toBe(true);
          const restarted = start();
          await restarted.runCandleMap();
          await expectNativeEverywhere(sim, restarted, market, symbols, 'after a warm restart');
          expect(restarted.stats().sync.derivedSeeds).toBe(symbols.length * intervals.length);
        } finally {
          for (const server of started) await server.close();
          await sim.close();
          await rm(dir, { recursive: true, force: true });
        }
      },
      90_000,
    );
  }
});

/**
 * Waits until every symbol is served in every interval, then checks that each derived ring's rows
 * before the forming one equal the simulator's native klines, and that the forming one is the
 * base's forming bucket.
 */
async function expectNativeEverywhere(
  sim: SimulatedBinance,
  server: CandleServer,
  market: MarketType,
  symbols: readonly string[],
  when: string,
): Promise<void> {
  for (const symbol of symbols) {
    for (const interval of server.rule.INTERVALS) {
      const served = await waitFor(() => !server.getCandleSecurity(symbol, 60, { interval }).isEmpty, 20_000);
      expect(served, `${symbol} ${interval} served ${when} (state ${server.status(symbol, 60, { interval }).state})`).toBe(true);
      const now = sim.world.now();
      const view = server.getCandleSecurity(symbol, 60, { interval });
      const base = server.getCandleSecurity(symbol, 60);
      expect(view.newestOpenTime, `${symbol} ${interval} forming bucket ${when}`).toBe(openTimeOf(interval, base.newestOpenTime ?? 0));
      const closed = view.toArray().slice(0, -1);
      const native = closed.map((row) => sim.world.kline(market, symbol, interval, row[0] as number, now)?.map(Number));
      expect(closed.length, `${symbol} ${interval} closed bars ${when}`).toBeGreaterThan(0);
      expect(closed, `${symbol} ${interval} ${when}`).toEqual(native);
    }
  }
}
