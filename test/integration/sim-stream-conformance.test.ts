import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';
import type { RawKline } from '../../src/binance/kline.js';
import { MARKETS, type Interval, type MarketType } from '../../src/binance/markets.js';
import { SimulatedBinance, type KlineStreamServer, type MarketWorld, type SimStreamOptions } from '../../src/sim/index.js';
import { aggregateKlines, getJson, loadRealRows } from '../helpers/sim.js';

const HOUR = 3_600_000;

interface Harness {
  readonly base: string;
  readonly world: MarketWorld;
  readonly streams: KlineStreamServer;
  close(): Promise<void>;
}

const harnesses: Harness[] = [];
const clients: WebSocket[] = [];

afterEach(async () => {
  for (const ws of clients.splice(0)) ws.terminate();
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

/**
 * A simulated exchange serving one market, with a few symbols; SPOT HALTUSDT is suspended around
 * now, so it has no candles.
 */
async function startStreams(market: MarketType, streams: SimStreamOptions = {}): Promise<Harness> {
  const sim = await SimulatedBinance.start({
    seed: 7,
    markets: [market],
    symbols: { SPOT: ['BTCUSDT', 'ETHUSDT', 'HALTUSDT'], UM: ['BTCUSDT'], CM: ['BTCUSD_PERP'] },
    streams,
  });
  if (market === 'SPOT') sim.world.suspend('SPOT', 'HALTUSDT', sim.world.now() - HOUR, sim.world.now() + HOUR);
  const harness: Harness = { base: sim.urls(market).ws, world: sim.world, streams: sim.streams(market), close: () => sim.close() };
  harnesses.push(harness);
  return harness;
}

/** A test client that records every text frame (parsed when it is JSON) and ping. */
class Client {
  readonly ws: WebSocket;
  readonly frames: unknown[] = [];
  readonly texts: string[] = [];
  pings = 0;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #listeners = new Set<() => void>();

  constructor(url: string, options: ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    clients.push(this.ws);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data) => {
      const text = data.toString();
      this.texts.push(text);
      try {
        this.frames.push(JSON.parse(text));
      } catch {
        this.frames.push(text);
      }
      this.#notify();
    });
    this.ws.on('ping', () => {
      this.pings += 1;
      this.#notify();
    });
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Resolves once `predicate` holds (checked at each frame or ping), or rejects after `timeoutMs`. */
  until(predicate: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.#listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#listeners.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#listeners.add(check);
      check();
    });
  }

  /** Waits for the reply carrying `id` and returns it. */
  async reply(id: unknown, timeoutMs = 2000): Promise<Record<string, unknown>> {
    const find = (): Record<string, unknown> | undefined =>
      this.frames.find((f): f is Record<string, unknown> => isRecord(f) && 'id' in f && f['id'] === id && !('e' in f));
    await this.until(() => find() !== undefined, timeoutMs, `the reply with id ${JSON.stringify(id)}`);
    return find() ?? {};
  }

  klines(): KlineEvent[] {
    return this.frames.flatMap((f) => {
      const event = isRecord(f) && isRecord(f['data']) ? f['data'] : f;
      return isRecord(event) && event['e'] === 'kline' ? [event as unknown as KlineEvent] : [];
    });
  }
}

interface KlineEvent {
  e: 'kline';
  E: number;
  s: string;
  k: {
    t: number;
    T: number;
    s: string;
    i: string;
    f: number;
    L: number;
    o: string;
    c: string;
    h: string;
    l: string;
    v: string;
    n: number;
    x: boolean;
    q: string;
    V: string;
    Q: string;
    B: string;
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function connect(url: string, options?: ClientOptions): Promise<Client> {
  const client = new Client(url, options);
  await client.opened;
  return client;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The HTTP status with which an upgrade was refused. */
function refusedStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    clients.push(ws);
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => reject(new Error(`${url} was accepted; expected a refusal`)));
    ws.on('error', () => {});
  });
}

describe('kline stream routes', () => {
  it('pushes the exact kline event on a raw SPOT stream, field types included', async () => {
    const h = await startStreams('SPOT', { cadenceMs: 50 });
    const client = await connect(`${h.base}/ws/btcusdt@kline_1m`);
    await client.until(() => client.klines().length >= 2, 3000, 'two kline events');
    const event = client.klines()[1]!;
    expect(Object.keys(event)).toEqual(['e', 'E', 's', 'k']);
    expect(Object.keys(event.k)).toEqual(['t', 'T', 's', 'i', 'f', 'L', 'o', 'c', 'h', 'l', 'v', 'n', 'x', 'q', 'V', 'Q', 'B']);
    expect(event).toMatchObject({ e: 'kline', s: 'BTCUSDT', k: { s: 'BTCUSDT', i: '1m', x: false } });
    for (const key of ['t', 'T', 'f', 'L', 'n'] as const) expect(typeof event.k[key]).toBe('number');
    for (const key of ['o', 'c', 'h', 'l', 'v', 'q', 'V', 'Q', 'B'] as const) expect(typeof event.k[key]).toBe('string');
    // The forming candle as the world has it at the event time.
    const row = h.world.kline('SPOT', 'BTCUSDT', '1m', event.k.t, event.E)!;
    expect(event.k).toMatchObject({
      t: row[0],
      o: row[1],
      h: row[2],
      l: row[3],
      c: row[4],
      v: row[5],
      T: row[6],
      q: row[7],
      n: row[8],
      V: row[9],
      Q: row[10],
      B: row[11],
    });
    expect(event.k.T).toBe(event.k.t + 60_000 - 1);
    if (event.k.n === 0) expect([event.k.f, event.k.L]).toEqual([-1, -1]);
    else expect(event.k.L - event.k.f + 1).toBe(event.k.n);
  });

  it('wraps every event as {stream, data} on a combined connection carrying several streams', async () => {
    const h = await startStreams('SPOT', { cadenceMs: 50 });
    const client = await connect(`${h.base}/stream?streams=btcusdt@kline_1m/ethusdt@kline_5m`);
    const streamsSeen = (): Set<unknown> => new Set(client.frames.map((f) => (isRecord(f) ? f['stream'] : undefined)));
    await client.until(() => streamsSeen().has('btcusdt@kline_1m') && streamsSeen().has('ethusdt@kline_5m'), 3000, 'both streams');
    for (const frame of client.frames) {
      expect(Object.keys(frame as object)).toEqual(['stream', 'data']);
      const { stream, data } = frame as { stream: string; data: KlineEvent };
      expect(stream).toBe(`${data.s.toLowerCase()}@kline_${data.k.i}`);
    }
  });

  it('serves UM klines under /market only: an unrouted UM URL connects but never sends klines', async () => {
    const h = await startStreams('UM', { cadenceMs: 40 });
    const routed = await connect(`${h.base}/market/ws/btcusdt@kline_1m`);
    const unrouted = await connect(`${h.base}/ws/btcusdt@kline_1m`);
    const combined = await connect(`${h.base}/market/stream?streams=btcusdt@kline_1m`);
    await routed.until(() => routed.klines().length >= 5, 3000, 'routed klines');
    await combined.until(() => combined.klines().length >= 2, 3000, 'combined routed klines');
    // The unrouted connection is alive (it answers) yet has received nothing.
    unrouted.send({ method: 'LIST_SUBSCRIPTIONS', id: 1 });
    expect(await unrouted.reply(1)).toEqual({ result: ['btcusdt@kline_1m'], id: 1 });
    expect(unrouted.klines()).toEqual([]);
    expect(await refusedStatus(`${h.base}/market/nowhere`)).toBe(404);
  });

  it('serves CM klines at the root and refuses unknown paths and invalid stream names', async () => {
    const h = await startStreams('CM', { cadenceMs: 40 });
    const client = await connect(`${h.base}/ws/btcusd_perp@kline_1M`);
    await client.until(() => client.klines().length >= 1, 3000, 'a CM kline');
    expect(client.klines()[0]).toMatchObject({ s: 'BTCUSD_PERP', k: { i: '1M' } });
    expect(await refusedStatus(`${h.base}/market/ws/btcusd_perp@kline_1m`)).toBe(404);
    expect(await refusedStatus(`${h.base}/api/v3/klines`)).toBe(404);
    expect(await refusedStatus(`${h.base}/ws/btcusd_perp@kline_1s`)).toBe(400);
    expect(await refusedStatus(`${h.base}/stream?streams=BTCUSD_PERP@kline_1m`)).toBe(400);
  });

  it('pushes at the market cadence: UM every 250 ms by default', async () => {
    const h = await startStreams('UM');
    const client = await connect(`${h.base}/market/ws/btcusdt@kline_1h`);
    await sleep(1300);
    const count = client.klines().length;
    // About five pushes in 1.3 s; loose bounds, this is not a timing test.
    expect(count).toBeGreaterThanOrEqual(3);
    expect(count).toBeLessThanOrEqual(7);
  });
});

describe('candle closes', () => {
  it('pushes the final candle once with x:true, equal to the world after close, then the next candle', async () => {
    const h = await startStreams('SPOT', { cadenceMs: 100 });
    const client = await connect(`${h.base}/ws/btcusdt@kline_1s`);
    await client.until(() => client.klines().filter((e) => e.k.x).length >= 2, 5000, 'two closed candles');
    const events = client.klines();
    const closed = events.filter((e) => e.k.x);
    for (const event of closed) {
      // Final values: what the world says now, long after the close, is what was pushed.
      const row = h.world.kline('SPOT', 'BTCUSDT', '1s', event.k.t, h.world.now())!;
      expect(event.k).toMatchObject({ o: row[1], h: row[2], l: row[3], c: row[4], v: row[5], n: row[8], q: row[7], V: row[9], Q: row[10] });
      expect(event.E).toBeGreaterThan(event.k.T);
      expect(closed.filter((e) => e.k.t === event.k.t)).toHaveLength(1);
      const next = events[events.indexOf(event) + 1];
      if (next !== undefined) expect(next.k).toMatchObject({ t: event.k.t + 1000, x: false });
    }
  });

  it('sends nothing for symbols suspended or not listed', async () => {
    const h = await startStreams('SPOT', { cadenceMs: 40 });
    const client = await connect(`${h.base}/stream?streams=haltusdt@kline_1m/nosuchusdt@kline_1m/btcusdt@kline_1m`);
    await client.until(() => client.klines().length >= 5, 3000, 'klines of the trading symbol');
    expect(new Set(client.klines().map((e) => e.s))).toEqual(new Set(['BTCUSDT']));
  });
});

describe('candles across intervals', () => {
  it('pushes what REST serves at the same time, each interval the exact aggregate of the shorter ones, forming and closed', async () => {
    // A frozen clock the test moves: every push and every REST reply is at `now`.
    let now = Date.parse('2025-03-31T23:59:59.650Z');
    const sim = await SimulatedBinance.start({
      seed: 7,
      markets: ['UM'],
      symbols: { UM: ['BTCUSDT'] },
      replay: [{ market: 'UM', symbol: 'REALUSDT', rows: loadRealRows(), startTime: Date.parse('2025-03-25T00:00:00Z') }],
      clock: () => now,
      streams: { cadenceMs: 40 },
    });
    harnesses.push({ base: sim.urls('UM').ws, world: sim.world, streams: sim.streams('UM'), close: () => sim.close() });
    const intervals = ['1m', '1h', '1d', '1M'] as const satisfies readonly Interval[];
    const shorter: Partial<Record<Interval, Interval>> = { '1h': '1m', '1d': '1h', '1M': '1d' };
    const symbols = ['BTCUSDT', 'REALUSDT'];
    const names = symbols.flatMap((symbol) => intervals.map((interval) => `${symbol.toLowerCase()}@kline_${interval}`));
    const client = await connect(`${sim.urls('UM').ws}/market/stream?streams=${names.join('/')}`);
    const rest = async (symbol: string, interval: string, from: number, to: number): Promise<RawKline[]> => {
      const url = `${sim.urls('UM').rest}${MARKETS.UM.paths.klines}?symbol=${symbol}&interval=${interval}&startTime=${from}&endTime=${to}&limit=1500`;
      return (await getJson(url)).body as RawKline[];
    };
    /** The latest event of every stream pushed at `now`, closed (`x`) or forming. */
    const pushedAt = (closed: boolean): KlineEvent[] =>
      symbols.flatMap((symbol) =>
        intervals.flatMap((interval) =>
          client
            .klines()
            .filter((e) => e.s === symbol && e.k.i === interval && e.E === now && e.k.x === closed)
            .slice(-1),
        ),
      );
    const expectAsRest = async (event: KlineEvent): Promise<void> => {
      const { k } = event;
      const row: RawKline = [k.t, k.o, k.h, k.l, k.c, k.v, k.T, k.q, k.n, k.V, k.Q, k.B];
      const what = `${event.s} ${k.i} ${new Date(k.t).toISOString()} at ${new Date(now).toISOString()}`;
      expect(await rest(event.s, k.i, k.t, k.t), what).toEqual([row]);
      const parts = shorter[k.i as Interval];
      if (parts !== undefined) expect(aggregateKlines(await rest(event.s, parts, k.t, k.T), k.i as Interval, k.t), what).toEqual(row);
    };

    await client.until(() => pushedAt(false).length === names.length, 3000, 'a forming candle on every stream');
    for (const event of pushedAt(false)) await expectAsRest(event);
    // Across the end of a minute, an hour, a day and a month at once: every stream closes its candle.
    now = Date.parse('2025-04-01T00:00:00.250Z');
    await client.until(
      () => pushedAt(true).length === names.length && pushedAt(false).length === names.length,
      3000,
      'closes and new candles',
    );
    for (const event of [...pushedAt(true), ...pushedAt(false)]) await expectAsRest(event);
    expect(pushedAt(true).map((e) => e.k.T + 1)).toEqual(Array.from({ length: names.length }, () => Date.parse('2025-04-01T00:00:00Z')));
  });
});

describe('live control messages', () => {
  it('subscribes, lists and unsubscribes with Binance replies', async () => {
    const h = await startStreams('SPOT', { cadenceMs: 40 });
    const client = await connect(`${h.base}/ws`);
    client.send({ method: 'SUBSCRIBE', params: ['btcusdt@kline_1m', 'ethusdt@kline_1m'], id: 1 });
    expect(await client.reply(1)).toEqual({ result: null, id: 1 });
    await client.until(() => new Set(client.klines().map((e) => e.s)).size === 2, 3000, 'klines of both symbols');
    client.send({ method: 'LIST_SUBSCRIPTIONS', id: 3 });
    expect(await client.reply(3)).toEqual({ result: ['btcusdt@kline_1m', 'ethusdt@kline_1m'], id: 3 });
    client.send({ method: 'UNSUBSCRIBE', params: ['ethusdt@kline_1m'], id: 'a7' });
    expect(await client.reply('a7')).toEqual({ result: null, id: 'a7' });
    const seen = client.klines().length;
    await client.until(() => client.klines().length >= seen + 5, 3000, 'more klines');
    expect(
      client
        .klines()
        .slice(seen + 1)
        .every((e) => e.s === 'BTCUSDT'),
    ).toBe(true);
    client.send({ method: 'GET_PROPERTY', params: ['combined'], id: 4 });
    expect(await client.reply(4)).toEqual({ result: false, id: 4 });
    client.send({ method: 'SET_PROPERTY', params: ['combined', true], id: 5 });
    expect(await client.reply(5)).toEqual({ result: null, id: 5 });
    const before = client.frames.length;
    await client.until(
      () => client.frames.slice(before).some((f) => isRecord(f) && f['stream'] === 'btcusdt@kline_1m'),
      3000,
      'a combined frame',
    );
  });

  it('answers malformed requests with Binance error replies', async () => {
    const h = await startStreams('SPOT', { maxIncomingPerSecond: 50 });
    const client = await connect(`${h.base}/ws`);
    const cases: Array<[unknown, number, RegExp, unknown]> = [
      ['{"method": "SUBSCRIBE", ', 3, /^Invalid JSON/, null],
      [{ params: [], id: 1 }, 2, /^Invalid request: missing field `method`/, null],
      [{ method: 'SUBSCRIBED', params: [], id: 2 }, 2, /^Invalid request: unknown variant "SUBSCRIBED", expected one of `SUBSCRIBE`/, null],
      [{ method: 'SUBSCRIBE', params: ['btcusdt@kline_7m'], id: 3 }, 2, /^Invalid request: invalid stream$/, 3],
      [{ method: 'SUBSCRIBE', params: ['BTCUSDT@kline_1m'], id: 4 }, 2, /^Invalid request: invalid stream$/, 4],
      [{ method: 'SUBSCRIBE', params: 'btcusdt@kline_1m', id: 5 }, 2, /^Invalid request: params must be an array/, 5],
      [{ method: 'SUBSCRIBE', params: [], id: 1.5 }, 2, /^Invalid request: request ID must be/, null],
      [{ method: 'GET_PROPERTY', params: ['colour'], id: 6 }, 0, /^Unknown property$/, 6],
      [{ method: 'SET_PROPERTY', params: ['combined', 'yes'], id: 7 }, 1, /^Invalid value type: expected Boolean$/, 7],
    ];
    for (const [request, code, msg, id] of cases) {
      const before = client.frames.length;
      client.send(request);
      await client.until(() => client.frames.length > before, 2000, `a reply to ${JSON.stringify(request)}`);
      const reply = client.frames[before] as { error: { code: number; msg: string }; id: unknown };
      expect(Object.keys(reply)).toEqual(['error', 'id']);
      expect(reply.error.code).toBe(code);
      expect(reply.error.msg).toMatch(msg);
      expect(reply.id).toBe(id);
    }
    client.send({ method: 'LIST_SUBSCRIPTIONS', id: 9 });
    expect(await client.reply(9)).toEqual({ result: [], id: 9 });
  });

  it('accepts only unsigned integer ids on futures', async () => {
    const h = await startStreams('UM');
    const client = await connect(`${h.base}/market/ws`);
    client.send({ method: 'LIST_SUBSCRIPTIONS', id: 'abc' });
    await client.until(() => client.frames.length === 1, 2000, 'the error reply');
    expect(client.frames[0]).toMatchObject({ error: { code: 2, msg: expect.stringMatching(/unsigned integer/) }, id: null });
  });
});

describe('limits', () => {
  it('disconnects a connection sending more messages per second than allowed, and only then', async () => {
    const h = await startStreams('SPOT');
    const polite = await connect(`${h.base}/ws`);
    for (let id = 1; id <= 5; id += 1) polite.send({ method: 'LIST_SUBSCRIPTIONS', id });
    expect(await polite.reply(5)).toEqual({ result: [], id: 5 });
    const flooding = await connect(`${h.base}/ws`);
    for (let id = 1; id <= 6; id += 1) flooding.send({ method: 'LIST_SUBSCRIPTIONS', id });
    const { code } = await flooding.closed;
    expect([1008, 1006]).toContain(code);
    expect(flooding.frames.length).toBeLessThanOrEqual(5);
    // Pings count too: 11 on a UM connection (limit 10) close it.
    const um = await startStreams('UM');
    const pinging = await connect(`${um.base}/market/ws`);
    for (let i = 0; i < 11; i += 1) pinging.ws.ping();
    expect([1008, 1006]).toContain((await pinging.closed).code);
    expect(polite.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('refuses streams over the per-connection limit, by URL and by SUBSCRIBE', async () => {
    const h = await startStreams('SPOT', { maxStreamsPerConnection: 3 });
    expect(await refusedStatus(`${h.base}/stream?streams=a@kline_1m/b@kline_1m/c@kline_1m/d@kline_1m`)).toBe(400);
    const client = await connect(`${h.base}/stream?streams=a@kline_1m/b@kline_1m`);
    client.send({ method: 'SUBSCRIBE', params: ['a@kline_1m', 'c@kline_1m'], id: 1 });
    expect(await client.reply(1)).toEqual({ result: null, id: 1 });
    client.send({ method: 'SUBSCRIBE', params: ['d@kline_1m'], id: 2 });
    expect(await client.reply(2)).toMatchObject({ error: { code: 2, msg: expect.stringMatching(/too many streams/) }, id: 2 });
    client.send({ method: 'LIST_SUBSCRIPTIONS', id: 3 });
    expect(await client.reply(3)).toEqual({ result: ['a@kline_1m', 'b@kline_1m', 'c@kline_1m'], id: 3 });
    const um = await startStreams('UM');
    const tooMany = Array.from({ length: 201 }, (_, i) => `s${i}@kline_1m`).join('/');
    expect(await refusedStatus(`${um.base}/market/stream?streams=${tooMany}`)).toBe(400);
  });
});

describe('keep-alive and lifetime', () => {
  it('pings every interval and drops a client that never answers', async () => {
    const h = await startStreams('SPOT', { pingIntervalMs: 250, pongTimeoutMs: 700 });
    const answering = await connect(`${h.base}/ws`);
    const silent = await connect(`${h.base}/ws`, { autoPong: false });
    await silent.until(() => silent.pings >= 1, 3000, 'a ping');
    const { code } = await silent.closed;
    expect(code).toBe(1006);
    expect(answering.pings).toBeGreaterThanOrEqual(2);
    await answering.until(() => answering.pings >= 4, 3000, 'more pings');
    expect(answering.ws.readyState).toBe(WebSocket.OPEN);
    expect(h.streams.stats.connectionsOpen).toBe(1);
  });

  it('closes a connection when its lifetime is over', async () => {
    const h = await startStreams('SPOT', { maxLifetimeMs: 300 });
    const client = await connect(`${h.base}/ws/btcusdt@kline_1m`);
    const { code, reason } = await client.closed;
    expect(code).toBe(1000);
    expect(reason).toMatch(/lifetime/);
    await vi.waitFor(() => expect(h.streams.stats).toMatchObject({ connectionsOpen: 0, connectionsTotal: 1 }), { timeout: 2000 });
  });
});

describe('faults', () => {
  it('stalls: sockets stay open and pings go on, but no kline arrives until the stall ends', async () => {
    const h = await startStreams('UM', { cadenceMs: 40, pingIntervalMs: 150 });
    const client = await connect(`${h.base}/market/ws/btcusdt@kline_1m`);
    await client.until(() => client.klines().length >= 1, 3000, 'a kline');
    h.world.faults.streamsStalled = true;
    await sleep(100);
    const stalledAt = client.klines().length;
    const pingsAt = client.pings;
    await client.until(() => client.pings >= pingsAt + 2, 3000, 'pings during the stall');
    expect(client.klines().length).toBe(stalledAt);
    h.world.faults.streamsStalled = false;
    await client.until(() => client.klines().length > stalledAt, 3000, 'klines after the stall');
  });

  it('sends the asked number of malformed frames in place of events, then valid ones', async () => {
    const h = await startStreams('UM', { cadenceMs: 40 });
    const client = await connect(`${h.base}/market/ws/btcusdt@kline_1m`);
    await client.until(() => client.klines().length >= 1, 3000, 'a kline');
    h.world.faults.streamMalformedNext = 2;
    const before = client.texts.length;
    await client.until(() => client.texts.length >= before + 4, 3000, 'four more frames');
    const after = client.frames.slice(before);
    const malformed = after.filter((f) => typeof f === 'string');
    expect(malformed).toHaveLength(2);
    expect(after.slice(0, 2)).toEqual(malformed);
    expect(isRecord(after[2]) && after[2]['e']).toBe('kline');
    expect(h.world.faults.streamMalformedNext).toBe(0);
  });

  it('dropAll cuts every connection without a close frame', async () => {
    const h = await startStreams('SPOT');
    const a = await connect(`${h.base}/ws/btcusdt@kline_1m`);
    const b = await connect(`${h.base}/stream?streams=btcusdt@kline_1m`);
    h.streams.dropAll();
    expect((await a.closed).code).toBe(1006);
    expect((await b.closed).code).toBe(1006);
  });

  it('sendServerShutdown sends the serverShutdown event (raw and combined) then closes', async () => {
    const h = await startStreams('SPOT');
    const raw = await connect(`${h.base}/ws/btcusdt@kline_1m`);
    const combined = await connect(`${h.base}/stream?streams=btcusdt@kline_1m`);
    h.streams.sendServerShutdown();
    await raw.closed;
    await combined.closed;
    expect(raw.frames.at(-1)).toEqual({ e: 'serverShutdown', E: expect.any(Number) });
    expect(combined.frames.at(-1)).toEqual({ stream: '!serverShutdown', data: { e: 'serverShutdown', E: expect.any(Number) } });
  });
});

describe('close()', () => {
  it('closes every connection, refuses new ones, is idempotent and leaves no timer', async () => {
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const h = await startStreams('UM', { cadenceMs: 20, pingIntervalMs: 50, maxIncomingPerSecond: 100 });
    const a = await connect(`${h.base}/market/ws/btcusdt@kline_1m`);
    const b = await connect(`${h.base}/market/stream?streams=btcusdt@kline_1m`);
    await a.until(() => a.klines().length >= 2, 3000, 'klines');
    const first = h.streams.close();
    expect(h.streams.close()).toBe(first);
    await first;
    expect((await a.closed).code).toBe(1001);
    expect((await b.closed).code).toBe(1001);
    expect(h.streams.stats.connectionsOpen).toBe(0);
    expect(await refusedStatus(`${h.base}/market/ws/btcusdt@kline_1m`)).toBe(503);
    const framesAfterClose = h.streams.stats.framesSent;
    await sleep(100);
    expect(h.streams.stats.framesSent).toBe(framesAfterClose);
    await h.close();
    // Only the sleep above may have created a timer since; it has fired.
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(timersBefore);
  });
});
