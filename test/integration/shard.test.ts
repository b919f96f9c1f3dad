import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CandleServer } from '../../src/candle-server.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { shardOf } from '../../src/sync/shard.js';
import { captureLog } from '../helpers/log.js';
import { startForwardingServer, type ForwardingServer } from '../helpers/proxies.js';
import { simRule, startSim } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

// Shards of 2 (pinned in test/unit/shard.test.ts): 1 holds USDCUSDT, SOLUSDT, LTCUSDT, ADAUSDT;
// 2 holds BTCUSDT, ETHUSDT, DOGEUSDT, BNBUSDT.
const LISTED = ['BTCUSDT', 'ETHUSDT', 'USDCUSDT', 'SOLUSDT', 'LTCUSDT', 'DOGEUSDT'];
const NEW_LISTINGS = ['ADAUSDT', 'BNBUSDT'];

/** The symbols a forwarder's REST requests named (`symbol=` and `symbols=[...]`), and the klines requests among them. */
function symbolsRequested(forwarder: ForwardingServer): { named: Set<string>; klines: Set<string> } {
  const named = new Set<string>();
  const klines = new Set<string>();
  for (const target of forwarder.targets) {
    const url = new URL(target, 'http://forwarder');
    const one = url.searchParams.get('symbol');
    const many = url.searchParams.get('symbols');
    const symbols = [...(one === null ? [] : [one]), ...(many === null ? [] : (JSON.parse(many) as string[]))];
    for (const symbol of symbols) named.add(symbol);
    if (url.pathname === '/api/v3/klines' && one !== null) klines.add(one);
  }
  return { named, klines };
}

describe('SHARD against the simulated exchange', () => {
  let sim: SimulatedBinance;
  let dir: string;
  const closing: Array<{ close(): Promise<void> }> = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'candle-shard-'));
    sim = await startSim({ markets: ['SPOT'], symbols: { SPOT: LISTED }, archiveDelayMs: 0 });
  });
  afterEach(async () => {
    for (const item of closing.splice(0).reverse()) await item.close();
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A server of shard `shard` reaching REST through its own recording forwarder (its own "IP"). */
  async function shardServer(shard: string, scope: number) {
    const forwarder = await startForwardingServer(sim.urls('SPOT').rest);
    closing.push(forwarder);
    const rule: Record<string, unknown> = {
      ...simRule(sim, 'SPOT', join(dir, `shard-${scope}`), { SYMBOLS: 'all', SHARD: shard, SYMBOLS_REFRESH_SECONDS: 0.3 }),
    };
    // No REST_BASE_URL: proxyHost (the forwarder) decides where REST goes, so it sees every request.
    delete rule.REST_BASE_URL;
    const log = captureLog('info');
    const server = new CandleServer({
      instType: 'SPOT',
      budgetScope: `shard-test-${scope}`,
      rule,
      proxyHost: forwarder.url,
      logger: log.logger,
      // Two servers of one market in one process (in production each runs on its own host or IP).
      register: false,
    });
    closing.push(server);
    return { server, forwarder, log };
  }

  it("two servers with SHARD '1/2' and '2/2' follow disjoint sets making up the universe, and request only their own symbols, new listings included", async () => {
    const [first, second] = [await shardServer('1/2', 1), await shardServer('2/2', 2)];
    await Promise.all([first.server.runCandleMap(), second.server.runCandleMap()]);

    const own = (k: number, symbols: readonly string[]) => symbols.filter((symbol) => shardOf(symbol, 2) === k).sort();
    expect([...first.server.symbols()].sort()).toEqual(own(1, LISTED));
    expect([...second.server.symbols()].sort()).toEqual(own(2, LISTED));
    expect(first.log.lines().some((line) => line.msg === "shard 1/2: following 3 of the universe's 6 SPOT symbols")).toBe(true);
    expect(second.log.lines().some((line) => line.msg === "shard 2/2: following 3 of the universe's 6 SPOT symbols")).toBe(true);

    // Listed while both run: each new symbol joins exactly one of them and is filled there.
    for (const symbol of NEW_LISTINGS) sim.list('SPOT', symbol);
    const all = [...LISTED, ...NEW_LISTINGS];
    const holds = (server: CandleServer, symbols: readonly string[]) =>
      symbols.every((symbol) => server.symbols().includes(symbol) && !server.getCandleSecurity(symbol, 60).isEmpty);
    expect(await waitFor(() => holds(first.server, own(1, all)) && holds(second.server, own(2, all)), 15_000)).toBe(true);

    const followed = [first.server.symbols(), second.server.symbols()];
    expect(followed[0]?.filter((symbol) => followed[1]?.includes(symbol))).toEqual([]);
    expect([...(followed[0] ?? []), ...(followed[1] ?? [])].sort()).toEqual([...all].sort());
    expect([...(followed[0] ?? [])].sort()).toEqual(own(1, all));

    // Every REST request naming a symbol named one of the server's own; each of its symbols was fetched.
    for (const [k, { forwarder }] of [first, second].entries()) {
      const { named, klines } = symbolsRequested(forwarder);
      expect([...named].sort()).toEqual(own(k + 1, all));
      expect([...klines].sort()).toEqual(own(k + 1, all));
    }
  });
});
