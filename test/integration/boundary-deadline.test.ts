/**
 * A candle boundary is a deadline. Regression test for: streams that go silent without closing
 * (a stall) 15 s before a boundary kept the old candle served as the forming one for about 10 s
 * after it closed, its values frozen at the stall, until the silence watchdog fired.
 *
 * The simulated exchange's clock is offset so that a minute boundary comes 20 s into the test:
 * real 1m candles, no waiting for a wall-clock minute.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeTimeOf, openTimeOf } from '../../src/binance/intervals.js';
import { COL } from '../../src/binance/kline.js';
import { MARKETS } from '../../src/binance/markets.js';
import { CandleServer } from '../../src/candle-server.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { getJson, simRule, startSim } from '../helpers/sim.js';

const MINUTE = 60_000;
// The server's boundary grace on UM 1m: one stream cadence plus the clock's margin (at least
// 100 ms; twice the round trip on loopback is far less).
const CADENCE_MS = MARKETS.UM.wsCadenceMs('1m');
const MARGIN_MS = 100;
// The server's estimate of the exchange clock (half a loopback round trip) and the time between
// our clock reading and the server's inside getCandleSecurity.
const TOLERANCE_MS = 25;

describe('a stall before a candle boundary', () => {
  let sim: SimulatedBinance;
  let dir: string;
  let offset: number;
  const exchangeNow = (): number => Date.now() + offset;

  beforeAll(async () => {
    // Exchange time starts 20 s before a minute boundary.
    const now = Date.now();
    offset = openTimeOf('1m', now) + MINUTE - 20_000 - now;
    if (offset < -now) offset += MINUTE;
    sim = await startSim({ markets: ['UM'], clock: exchangeNow, streams: { cadenceMs: 100 } });
    dir = await mkdtemp(join(tmpdir(), 'candle-boundary-'));
  });
  afterAll(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the old candle at most one cadence plus the clock margin after its close, then the REST close and the next candle', async () => {
    const server = new CandleServer({
      instType: 'UM',
      budgetScope: 'boundary-deadline',
      // The watchdog's default: it must not be what ends the serving.
      streams: { staleAfterMs: 10_000 },
      rule: simRule(sim, 'UM', dir, { BAR: '1m', LENGTH: 30, SYMBOLS: ['BTCUSDT'], UPDATE_INTERVAL_SECONDS: 3 }),
    });
    try {
      await server.runCandleMap();
      const boundary = openTimeOf('1m', exchangeNow()) + MINUTE;
      const oldOpen = boundary - MINUTE;
      expect(boundary - exchangeNow()).toBeGreaterThan(15_000);
      await waitUntil(() => exchangeNow() >= boundary - 15_000, 10_000);
      sim.stallStreams(true);
      // REST answers slowly from now on, so that the state between the deadline and the reply is seen.
      sim.faults.restDelayMs = 400;

      let lastServedOld = 0;
      let firstNew: { at: number; close: number; previousClose: number } | undefined;
      const states = new Set<string>();
      const deadline = Date.now() + 20_000;
      while (firstNew === undefined && Date.now() < deadline) {
        // Read the time first: a pause between the two calls can only shorten what is measured.
        const at = exchangeNow();
        const view = server.getCandleSecurity('BTCUSDT', 180);
        if (!view.isEmpty) {
          const newest = view.openTime(view.length - 1);
          if (newest === oldOpen) lastServedOld = at;
          else if (newest === boundary) {
            firstNew = { at, close: view.close(view.length - 1), previousClose: view.close(view.length - 2) };
          }
        }
        if (at > closeTimeOf('1m', oldOpen)) states.add(server.status('BTCUSDT').state);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      sim.stallStreams(false);
      sim.faults.restDelayMs = 0;

      // Served until the deadline at most, never the ~10 s the watchdog would take.
      const servedAfterClose = lastServedOld - closeTimeOf('1m', oldOpen);
      expect(lastServedOld).toBeGreaterThan(0);
      expect(servedAfterClose).toBeLessThanOrEqual(CADENCE_MS + MARGIN_MS + TOLERANCE_MS);
      // Meanwhile its status said why, and the close was fetched over REST without waiting for the watchdog.
      expect(states).toContain('overdue');
      expect(firstNew).toBeDefined();
      expect((firstNew?.at ?? Infinity) - boundary).toBeLessThan(3_000);
      expect(server.stats().sync.overdueFetches).toBeGreaterThanOrEqual(1);
      // The candle served as closed is the exchange's final candle.
      const rest = await getJson(`${sim.urls('UM').rest}/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=${oldOpen}&limit=1`);
      const [row] = rest.body as Array<Array<string | number>>;
      expect(firstNew?.previousClose).toBe(Number(row?.[COL.close]));
    } finally {
      sim.stallStreams(false);
      sim.faults.restDelayMs = 0;
      await server.close();
    }
  });
});

async function waitUntil(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
