/**
 * The remote reader against a real nats-server (test/helpers/nats.ts), the simulated exchange and
 * real publishing CandleServers: its rings equal the publisher's after start, a stream drop
 * repaired over REST, a NATS restart, its own restart and the publisher's restart from its
 * snapshot; a dead publisher makes it serve nothing within securitySeconds and it serves again,
 * without a hole, once the publisher is back; a dead NATS does the same until NATS is back; two
 * shards make one union.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CandleServer } from '../../src/candle-server.js';
import { connectRemote, type RemoteCandleReader } from '../../src/remote/index.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { shardOf } from '../../src/sync/shard.js';
import { startNats, type TestNats } from '../helpers/nats.js';
import { simRule, startSim } from '../helpers/sim.js';
import { pause, waitFor } from '../helpers/wait.js';

const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'DOGEUSDT'];

/**
 * Where the reader's rings differ from the publisher's: every closed row (all 12 columns) of the
 * publisher's ring, the reader holding the same rows (at most the newest may lag by one close),
 * and the forming row's open time (its values may lag by one update).
 */
function differences(server: CandleServer, reader: RemoteCandleReader, symbols = server.symbols()): string[] {
  const problems: string[] = [];
  for (const interval of server.intervals) {
    for (const symbol of symbols) {
      const theirs = server.readRing(symbol, { interval }).toArray();
      const ours = reader.readRing(symbol, { interval }).toArray();
      const label = `${symbol} ${interval}`;
      if (theirs.length === 0) problems.push(`${label}: publisher ring empty`);
      const ourByOpen = new Map(ours.map((row) => [row[0] as number, row]));
      const closed = theirs.slice(0, -1);
      closed.forEach((row, index) => {
        const got = ourByOpen.get(row[0] as number);
        if (got === undefined && index === closed.length - 1) return;
        if (JSON.stringify(got) !== JSON.stringify(row))
          problems.push(`${label} ${String(row[0])}: reader ${JSON.stringify(got)}, publisher ${JSON.stringify(row)}`);
      });
      const extra = ours.filter((row) => !theirs.some((their) => their[0] === row[0]));
      // The reader may hold one row the publisher dropped (the oldest, before its forming row arrives).
      if (extra.some((row) => (row[0] as number) > (theirs[0]?.[0] ?? 0)))
        problems.push(`${label}: reader rows the publisher lacks ${JSON.stringify(extra.map((r) => r[0]))}`);
      const theirNewest = theirs.at(-1)?.[0];
      const ourNewest = ours.at(-1)?.[0];
      if (theirNewest !== ourNewest && ourByOpen.get(theirNewest ?? -1) === undefined && closed.length > 0) {
        problems.push(`${label}: newest ${String(theirNewest)}, reader ${String(ourNewest)}`);
      }
    }
  }
  return problems;
}

/** Polls `differences` until none are left or `ms` passes; returns the last ones. */
async function untilEqual(server: CandleServer, reader: RemoteCandleReader, ms = 15_000, symbols?: string[]): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const problems = differences(server, reader, symbols);
    if (problems.length === 0 || Date.now() > deadline) return problems;
    await pause(200);
  }
}

describe('remote reader', () => {
  let sim: SimulatedBinance;
  let nats: TestNats;
  let dir: string;
  const closing: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    sim = await startSim({
      markets: ['SPOT'],
      symbols: { SPOT: SYMBOLS },
      streams: { cadenceMs: 100, pingIntervalMs: 1000, pongTimeoutMs: 5000 },
    });
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), 'remote-reader-'));
  });
  afterEach(async () => {
    for (const item of closing.splice(0).reverse()) await item.close();
  });
  afterAll(async () => {
    await nats?.stop();
    await sim?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const publisher = (prefix: string, overrides: Record<string, unknown> = {}, name = prefix): CandleServer => {
    const server = new CandleServer({
      instType: 'SPOT',
      budgetScope: `remote-${name}`,
      register: false,
      streams: { staleAfterMs: 1500 },
      rule: {
        ...simRule(sim, 'SPOT', join(dir, name)),
        SYMBOLS: ['BTCUSDT', 'ETHUSDT'],
        CACHE_DELAY_SECONDS: null,
        INTERVALS: ['1m'],
        NATS_URL: nats.url,
        NATS_SUBJECT_PREFIX: prefix,
        ...overrides,
      },
    });
    closing.push(server);
    return server;
  };
  const reader = async (prefix: string, options: { intervals?: ['1m']; staleAfterSeconds?: number } = {}): Promise<RemoteCandleReader> => {
    const remote = await connectRemote({ servers: nats.url, prefix, market: 'SPOT', bar: '1s', intervals: ['1m'], ...options });
    closing.push(remote);
    return remote;
  };

  it('holds the publisher rings after start, after a stream drop repaired over REST, after a NATS restart and after its own restart', async () => {
    const prefix = 'follow';
    const server = publisher(prefix);
    await server.runCandleMap();
    await pause(1500);
    const remote = await reader(prefix);
    expect(remote.symbols()).toEqual(['BTCUSDT', 'ETHUSDT']);
    expect(remote.readRing('BTCUSDT').length).toBeGreaterThanOrEqual(59);
    expect(await untilEqual(server, remote)).toEqual([]);
    expect(await waitFor(() => !remote.getCandleSecurity('BTCUSDT', 3).isEmpty, 5000)).toBe(true);
    expect(remote.status('BTCUSDT', 3).state).toBe('fresh');
    expect(remote.getCandleSecurity('ETHUSDT', 180, { interval: '1m' }).isEmpty).toBe(false);
    const closes: number[] = [];
    remote.on('candleClosed', ({ openTime, interval }) => interval === '1s' && closes.push(openTime));
    expect(await waitFor(() => closes.length >= 2, 5000)).toBe(true);

    // A stream drop on the publisher, repaired over REST: the repaired rows reach the reader.
    const repaired = server.stats().sync.gapsRepaired;
    sim.dropStreams('SPOT');
    expect(await waitFor(() => server.stats().sync.gapsRepaired > repaired, 15_000)).toBe(true);
    expect(await untilEqual(server, remote)).toEqual([]);

    // A NATS restart: the reader re-reads what was stored meanwhile and serves again.
    await nats.restart();
    await pause(3000);
    expect(await untilEqual(server, remote, 30_000)).toEqual([]);
    expect(await waitFor(() => !remote.getCandleSecurity('BTCUSDT', 3).isEmpty, 15_000)).toBe(true);

    // The reader restarts: a new one reads the same rings from the stream.
    await remote.close();
    expect(remote.getCandleSecurity('BTCUSDT', 3).isEmpty).toBe(true);
    const again = await reader(prefix);
    expect(await untilEqual(server, again)).toEqual([]);
    expect(await waitFor(() => !again.getCandleSecurity('BTCUSDT', 3).isEmpty, 5000)).toBe(true);
  }, 120_000);
  it('serves nothing within securitySeconds once the publisher dies, and again without a hole once it is back from its snapshot', async () => {
    const prefix = 'dead';
    const first = publisher(prefix);
    await first.runCandleMap();
    const remote = await reader(prefix, { staleAfterSeconds: 2 });
    expect(await untilEqual(first, remote)).toEqual([]);
    expect(await waitFor(() => !remote.getCandleSecurity('BTCUSDT', 3).isEmpty, 5000)).toBe(true);
    const stale: string[] = [];
    remote.on('stale', ({ symbol }) => stale.push(symbol));

    await first.close(); // writes its snapshot; heartbeats stop
    const diedAt = Date.now();
    expect(
      await waitFor(() => remote.getCandleSecurity('BTCUSDT', 3).isEmpty && remote.getCandleSecurity('ETHUSDT', 3).isEmpty, 6000),
    ).toBe(true);
    expect(Date.now() - diedAt).toBeLessThan(4500);
    expect(remote.status('BTCUSDT', 3).state).toBe('stale');
    expect(remote.getCandleSecurity('BTCUSDT', 3, { interval: '1m' }).isEmpty).toBe(true);
    await pause(4000);

    // The publisher restarts from its snapshot (same folders): the candles missed meanwhile reach the reader.
    const second = publisher(prefix);
    await second.runCandleMap();
    expect(await untilEqual(second, remote, 20_000)).toEqual([]);
    expect(await waitFor(() => !remote.getCandleSecurity('BTCUSDT', 3).isEmpty, 10_000)).toBe(true);
    const view = remote.getCandleSecurity('BTCUSDT', 3);
    for (let r = 1; r < view.length; r++) expect(view.openTime(r) - view.openTime(r - 1)).toBe(1000);
    expect(remote.status('BTCUSDT', 3).repairingFrom).toBeUndefined();
    expect(stale.sort()).toEqual(['BTCUSDT', 'ETHUSDT']);
  }, 90_000);

  it('serves nothing within securitySeconds once NATS dies, and again without a hole once NATS is back', async () => {
    const prefix = 'natsdown';
    const server = publisher(prefix);
    await server.runCandleMap();
    const remote = await reader(prefix);
    expect(await untilEqual(server, remote)).toEqual([]);
    expect(await waitFor(() => !remote.getCandleSecurity('BTCUSDT', 3).isEmpty, 5000)).toBe(true);

    // NATS dies (same port and store kept): no candle nor heartbeat reaches the reader.
    await nats.kill();
    const diedAt = Date.now();
    expect(
      await waitFor(() => remote.getCandleSecurity('BTCUSDT', 3).isEmpty && remote.getCandleSecurity('ETHUSDT', 3).isEmpty, 6000),
    ).toBe(true);
    expect(Date.now() - diedAt).toBeLessThan(4500);
    expect(remote.status('BTCUSDT', 3).state).toBe('stale');
    expect(remote.getCandleSecurity('BTCUSDT', 3, { interval: '1m' }).isEmpty).toBe(true);
    await pause(4000); // the publisher goes on meanwhile: these candles must reach the reader later

    // NATS is back: the publisher stores what the stream lacks, the reader reads it and serves again.
    await nats.start();
    expect(await untilEqual(server, remote, 30_000)).toEqual([]);
    expect(await waitFor(() => !remote.getCandleSecurity('BTCUSDT', 3).isEmpty, 15_000)).toBe(true);
    for (const symbol of ['BTCUSDT', 'ETHUSDT']) {
      const view = remote.getCandleSecurity(symbol, 3);
      expect(view.isEmpty, symbol).toBe(false);
      for (let r = 1; r < view.length; r++) expect(view.openTime(r) - view.openTime(r - 1), symbol).toBe(1000);
      expect(remote.status(symbol, 3).repairingFrom, symbol).toBeUndefined();
    }
  }, 90_000);

  it("reads the union of two shards ('1/2' and '2/2') publishing to one NATS, each symbol equal to its shard's ring", async () => {
    const prefix = 'sharded';
    const shards = ['1/2', '2/2'].map((shard, k) => publisher(prefix, { SYMBOLS: SYMBOLS, SHARD: shard }, `${prefix}-${k + 1}`));
    await Promise.all(shards.map((server) => server.runCandleMap()));
    const own = (k: number) => SYMBOLS.filter((symbol) => shardOf(symbol, 2) === k);
    expect(own(1).length).toBeGreaterThan(0);
    expect(own(2).length).toBeGreaterThan(0);
    const remote = await reader(prefix);
    expect(await waitFor(() => remote.symbols().length === SYMBOLS.length, 5000)).toBe(true);
    expect(remote.symbols()).toEqual([...SYMBOLS].sort());
    for (const [k, server] of shards.entries()) {
      expect([...server.symbols()].sort()).toEqual(own(k + 1).sort());
      expect(await untilEqual(server, remote)).toEqual([]);
    }
    // Heartbeats of one shard never erase the other's symbols: all served, several heartbeats later.
    await pause(2500);
    for (const symbol of SYMBOLS) expect(remote.getCandleSecurity(symbol, 3).isEmpty, symbol).toBe(false);
  }, 60_000);
});
