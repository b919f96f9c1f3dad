/**
 * Publishing to NATS JetStream against a real nats-server (test/helpers/nats.ts) and the simulated
 * exchange: each symbol's subject holds its ring's final rows, through closes, a stream drop
 * repaired over REST and a NATS outage; live updates and heartbeats arrive; an existing stream
 * with other settings and a bad NATS_URL are refused with clear errors.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CandleServer } from '../../src/candle-server.js';
import { decodeCandle, decodeStatus, streamName, type CandleMessage, type StatusMessage } from '../../src/publish/wire.js';
import { parseCandleRule } from '../../src/rule.js';
import { collectMetrics, formatMetrics } from '../../src/service/metrics.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { startNats, type TestNats } from '../helpers/nats.js';
import { simRule, startSim } from '../helpers/sim.js';
import { pause, waitFor } from '../helpers/wait.js';

/** The candles stored on a symbol's subject, by open time (the last message per open time wins). */
async function storedCandles(nc: NatsConnection, stream: string, subject: string): Promise<Map<number, number[]>> {
  const consumer = await jetstream(nc).consumers.get(stream, { filter_subjects: subject });
  const out = new Map<number, number[]>();
  const pending = (await consumer.info()).num_pending;
  if (pending === 0) return out;
  const messages = await consumer.fetch({ max_messages: pending, expires: 5000 });
  for await (const message of messages) {
    const candle = decodeCandle(message.string());
    if (candle !== undefined) out.set(candle.k[0] as number, [...candle.k]);
    if (message.info.pending === 0) break;
  }
  return out;
}

/**
 * Rows of the ring that are not the newest, each equal to the stored candle of its open time;
 * the newest final row may lag by one close (publishing is asynchronous). Returns the mismatches.
 */
async function differences(server: CandleServer, nc: NatsConnection, prefix: string): Promise<string[]> {
  const problems: string[] = [];
  for (const interval of server.intervals) {
    const stream = streamName(prefix, server.market, interval);
    for (const symbol of server.symbols()) {
      const stored = await storedCandles(nc, stream, `${prefix}.${server.market}.${interval}.${symbol}`);
      const rows = server.readRing(symbol, { interval }).toArray().slice(0, -1);
      if (rows.length === 0) problems.push(`${symbol} ${interval}: empty ring`);
      rows.forEach((row, index) => {
        const got = stored.get(row[0] as number);
        if (got === undefined && index >= rows.length - 1) return;
        if (JSON.stringify(got) !== JSON.stringify(row)) {
          problems.push(`${symbol} ${interval} ${String(row[0])}: stored ${JSON.stringify(got)}, ring ${JSON.stringify(row)}`);
        }
      });
    }
  }
  return problems;
}

/** Polls `differences` until none are left or `ms` passes; returns the last ones. */
async function untilEqual(server: CandleServer, nc: NatsConnection, prefix: string, ms = 15_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    // Right after a NATS restart the test's own connection may still be reconnecting: read again.
    const problems = await differences(server, nc, prefix).catch((error: unknown) => [`reading the stream failed: ${String(error)}`]);
    if (problems.length === 0 || Date.now() > deadline) return problems;
    await pause(300);
  }
}

describe('NATS publishing', () => {
  let sim: SimulatedBinance;
  let nats: TestNats;
  let dir: string;
  let nc: NatsConnection;

  beforeAll(async () => {
    sim = await startSim({ markets: ['SPOT'], streams: { cadenceMs: 100, pingIntervalMs: 1000, pongTimeoutMs: 5000 } });
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), 'nats-publish-'));
    nc = await connect({ servers: nats.url, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    await sim?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const newServer = (prefix: string, overrides: Record<string, unknown> = {}): CandleServer =>
    new CandleServer({
      instType: 'SPOT',
      budgetScope: `nats-${prefix}`,
      streams: { staleAfterMs: 1500 },
      rule: {
        ...simRule(sim, 'SPOT', join(dir, prefix)),
        CACHE_DELAY_SECONDS: null,
        INTERVALS: ['1m'],
        NATS_URL: nats.url,
        NATS_SUBJECT_PREFIX: prefix,
        ...overrides,
      },
    });

  it('stores every ring on its subjects, sends live updates and heartbeats, and keeps the stream equal to the ring after a stream drop', async () => {
    const prefix = 'first';
    const server = newServer(prefix);
    const live: CandleMessage[] = [];
    const heartbeats: StatusMessage[] = [];
    const liveSub = nc.subscribe(`${prefix}.live.SPOT.>`, {
      callback: (_error, message) => {
        const candle = decodeCandle(message.string());
        if (candle !== undefined) live.push(candle);
      },
    });
    const statusSub = nc.subscribe(`${prefix}.status.SPOT.*`, {
      callback: (_error, message) => {
        const status = decodeStatus(message.string());
        if (status !== undefined) heartbeats.push(status);
      },
    });
    try {
      await server.runCandleMap();
      await pause(3000);
      expect(await untilEqual(server, nc, prefix)).toEqual([]);
      const stats = server.stats().nats;
      expect(stats?.isConnected).toBe(true);
      expect(stats?.stored).toBeGreaterThan(0);
      expect(stats?.lastPublishAt).toBeGreaterThan(0);
      const metrics = formatMetrics(collectMetrics(server));
      expect(metrics).toContain('candle_server_nats_connected{market="SPOT"} 1');
      expect(metrics).toMatch(/candle_server_nats_published_total\{market="SPOT",kind="stored"\} [1-9]/);
      expect(metrics).toMatch(/candle_server_nats_backlog\{market="SPOT"\} \d+/);

      // Live: the forming candle of each symbol, BAR and derived.
      for (const symbol of server.symbols()) {
        for (const interval of server.intervals) {
          const forming = live.filter((m) => m.s === symbol && m.i === interval && !m.x);
          expect(forming.length, `${symbol} ${interval}`).toBeGreaterThan(0);
        }
      }
      // Heartbeats: per interval, each symbol's state and confirmation time on the publisher's exchange clock.
      for (const interval of server.intervals) {
        const last = heartbeats.filter((h) => h.i === interval).at(-1);
        expect(last, interval).toBeDefined();
        for (const symbol of server.symbols()) {
          const entry = last?.s[symbol];
          expect(entry?.st, `${symbol} ${interval}`).toBe('fresh');
          expect(entry?.c).toBeGreaterThan(0);
          expect((last?.t ?? 0) - (entry?.c ?? 0)).toBeLessThan(5000);
        }
      }

      // A stream drop, repaired over REST: the stream still equals the ring.
      const repaired = server.stats().sync.gapsRepaired;
      sim.dropStreams('SPOT');
      expect(await waitFor(() => server.stats().sync.gapsRepaired > repaired, 15_000)).toBe(true);
      await pause(1500);
      expect(await untilEqual(server, nc, prefix)).toEqual([]);
    } finally {
      liveSub.unsubscribe();
      statusSub.unsubscribe();
      await server.close();
    }
  }, 60_000);

  it('goes on ingesting while NATS is down and publishes what closed meanwhile once it is back', async () => {
    const prefix = 'outage';
    const server = newServer(prefix, { INTERVALS: [] });
    try {
      await server.runCandleMap();
      expect(await untilEqual(server, nc, prefix)).toEqual([]);
      await nats.kill();
      expect(await waitFor(() => server.stats().nats?.isConnected === false, 10_000)).toBe(true);
      const newestBefore = server.readRing('BTCUSDT').newestOpenTime ?? 0;
      await pause(3000);
      // Ingestion went on: fresh rings, newer candles.
      expect(server.getCandleSecurity('BTCUSDT', 3).isEmpty).toBe(false);
      expect(server.readRing('BTCUSDT').newestOpenTime).toBeGreaterThan(newestBefore + 1000);
      // The backlog is one mark per symbol and interval, not a queue of candles.
      expect(server.stats().nats?.backlog).toBeLessThanOrEqual(server.symbols().length * server.intervals.length);
      expect(collectMetrics(server).find((f) => f.name === 'candle_server_nats_connected')).toMatchObject({ samples: [{ value: 0 }] });
      await nats.start();
      expect(await waitFor(() => server.stats().nats?.isConnected === true, 20_000)).toBe(true);
      expect(await untilEqual(server, nc, prefix, 30_000)).toEqual([]);
      const stored = await storedCandles(nc, streamName(prefix, 'SPOT', '1s'), `${prefix}.SPOT.1s.BTCUSDT`);
      expect(stored.has(newestBefore + 1000)).toBe(true);
    } finally {
      await server.close();
    }
  }, 90_000);

  it('after a restart publishes only what the stream lacks, not the whole rings again', async () => {
    const prefix = 'restart';
    const first = newServer(prefix, { INTERVALS: [], CACHE_DELAY_SECONDS: 3600 });
    try {
      await first.runCandleMap();
      expect(await untilEqual(first, nc, prefix)).toEqual([]);
      // The whole rings: 2 symbols × 59 final rows of LENGTH 60.
      expect(first.stats().nats?.stored).toBeGreaterThanOrEqual(2 * 55);
    } finally {
      await first.close();
    }
    const second = newServer(prefix, { INTERVALS: [], CACHE_DELAY_SECONDS: 3600 });
    try {
      await second.runCandleMap();
      expect(await untilEqual(second, nc, prefix)).toEqual([]);
      // The candles that closed since the first stopped (a few seconds of 1s bars), not 118 again.
      expect(second.stats().nats?.stored ?? 0).toBeLessThan(2 * 30);
    } finally {
      await second.close();
    }
  }, 40_000);

  it('serves without waiting for a NATS that does not answer at start, and publishes the rings once it does', async () => {
    const prefix = 'late';
    await nats.kill();
    const server = newServer(prefix, { INTERVALS: [] });
    try {
      await server.runCandleMap();
      expect(server.isReady).toBe(true);
      expect(server.getCandleSecurity('BTCUSDT', 5).isEmpty).toBe(false);
      expect(server.stats().nats?.isConnected).toBe(false);
      await nats.start();
      expect(await waitFor(() => server.stats().nats?.isConnected === true, 15_000)).toBe(true);
      expect(await untilEqual(server, nc, prefix)).toEqual([]);
    } finally {
      await server.close();
    }
  }, 60_000);

  it('refuses to start on a stream that exists with other settings, naming the setting and both values', async () => {
    const prefix = 'taken';
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: streamName(prefix, 'SPOT', '1s'), subjects: [`${prefix}.SPOT.1s.*`], max_msgs_per_subject: 10 });
    const server = newServer(prefix, { INTERVALS: [] });
    try {
      const start = server.runCandleMap();
      await expect(start).rejects.toThrow(/TAKEN_SPOT_1s/);
      await expect(start).rejects.toThrow(/max_msgs_per_subject: expected 60 \(LENGTH\) \(received 10\)/);
    } finally {
      await server.close();
    }
    const info = await jsm.streams.info(streamName(prefix, 'SPOT', '1s'));
    expect(info.config.max_msgs_per_subject).toBe(10);
  }, 30_000);

  it('refuses a bad NATS_URL or subject prefix in the rule, without echoing a password', () => {
    expect(() => parseCandleRule({ NATS_URL: 'http://user:secret@127.0.0.1:4222' })).toThrow(
      /NATS_URL: expected null .* nats:\/\/ or tls:\/\//,
    );
    expect(() => parseCandleRule({ NATS_URL: 'http://user:secret@127.0.0.1:4222' })).not.toThrow(/secret/);
    expect(() => parseCandleRule({ NATS_URL: 'nats://a:4222,' })).toThrow(/NATS_URL/);
    expect(() => parseCandleRule({ NATS_SUBJECT_PREFIX: 'a..b' })).toThrow(/NATS_SUBJECT_PREFIX: expected NATS subject tokens/);
    expect(() => parseCandleRule({ NATS_SUBJECT_PREFIX: 'a.*' })).toThrow(/NATS_SUBJECT_PREFIX/);
    expect(parseCandleRule({ NATS_URL: 'nats://a:4222, tls://u:p@b:4222' }).NATS_URL).toBe('nats://a:4222, tls://u:p@b:4222');
    expect(parseCandleRule({}).NATS_SUBJECT_PREFIX).toBe('candles');
  });
});
