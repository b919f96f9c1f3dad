/**
 * The `rows` event is enough to mirror every ring: a listener that copies the rows each event
 * names (from `from` to the newest, read with readRing) ends with rings equal to the server's, BAR
 * and derived, through the warm-up, the streams, closes and a stream drop repaired over REST.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CandleServer } from '../../src/candle-server.js';
import type { Interval } from '../../src/binance/markets.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { simRule, startSim } from '../helpers/sim.js';
import { pause, waitFor } from '../helpers/wait.js';

describe('the rows event', () => {
  let sim: SimulatedBinance;
  let dir: string;

  beforeAll(async () => {
    // The exchange clock starts 8 s before a minute's end, so that a 1m bar closes during the test.
    const offset = Math.ceil(Date.now() / 60_000) * 60_000 + 120_000 - 8000 - Date.now();
    sim = await startSim({
      markets: ['SPOT'],
      clock: () => Date.now() + offset,
      streams: { cadenceMs: 100, pingIntervalMs: 1000, pongTimeoutMs: 5000 },
    });
    dir = await mkdtemp(join(tmpdir(), 'rows-event-'));
  });
  afterAll(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('names every row written, so that a mirror of the rings equals them, BAR and derived', async () => {
    const server = new CandleServer({
      instType: 'SPOT',
      budgetScope: 'rows-event-test',
      streams: { staleAfterMs: 1500 },
      rule: { ...simRule(sim, 'SPOT', dir), CACHE_DELAY_SECONDS: null, INTERVALS: ['1m'] },
    });
    // The mirror: symbol|interval → open time → the 12 values, rewritten from `from` at each event.
    const mirror = new Map<string, Map<number, number[]>>();
    const kinds = new Set<string>();
    server.on('rows', ({ symbol, interval, from, kind }) => {
      kinds.add(`${interval} ${kind}`);
      const view = server.readRing(symbol, { interval });
      const key = `${symbol}|${interval}`;
      const rows = mirror.get(key) ?? new Map<number, number[]>();
      mirror.set(key, rows);
      for (let r = 0; r < view.length; r += 1) {
        if (view.openTime(r) >= from) rows.set(view.openTime(r), Array.from(view.at(r)));
      }
    });
    try {
      await server.runCandleMap();
      await pause(2500);
      const repaired = server.stats().sync.gapsRepaired;
      sim.dropStreams('SPOT');
      expect(await waitFor(() => server.stats().sync.gapsRepaired > repaired, 15_000)).toBe(true);
      // The minute's end has passed by now (the clock started 8 s before it).
      expect(await waitFor(() => sim.world.now() % 60_000 > 1500 && sim.world.now() % 60_000 < 50_000, 15_000)).toBe(true);
      await pause(1500);
      for (const symbol of server.symbols()) {
        for (const interval of server.intervals) {
          const ring = server.readRing(symbol, { interval }).toArray();
          const mirrored = mirror.get(`${symbol}|${interval}`) ?? new Map<number, number[]>();
          const copy = ring.map((row) => mirrored.get(row[0] as number));
          expect(ring.length, `${symbol} ${interval}`).toBeGreaterThan(1);
          expect(copy, `${symbol} ${interval}`).toEqual(ring);
        }
      }
      for (const kind of ['1s rest', '1s forming', '1s closed', '1m rest', '1m forming', '1m closed'] satisfies `${Interval} ${string}`[]) {
        expect(kinds, kind).toContain(kind);
      }
      expect(server.readRing('NOPEUSDT').isEmpty).toBe(true);
      expect(() => server.readRing('BTCUSDT', { interval: '5m' })).toThrow(/interval "5m" is not kept/);
    } finally {
      await server.close();
    }
  }, 40_000);
});
