import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AbortedError,
  BannedError,
  ClosedError,
  ExchangeError,
  MalformedResponseError,
  RateLimitError,
  TimeoutError,
  WeightUnavailableError,
} from '../../src/errors.js';
import { BanStore } from '../../src/exchange/ban-store.js';
import { openTimeOf } from '../../src/binance/intervals.js';
import { planKlinePages } from '../../src/exchange/kline-pages.js';
import type { MarketType } from '../../src/binance/markets.js';
import { BinanceRestClient, parseRetryAfter, requestWeightLimit } from '../../src/exchange/rest-client.js';
import { ServerClock } from '../../src/exchange/server-clock.js';
import { FORWARD_RESERVE, WeightGovernor } from '../../src/exchange/weight-governor.js';
import { SimulatedBinance } from '../../src/sim/index.js';
import { sleep } from '../../src/util/abort.js';

const MINUTE = 60_000;
// The simulated exchange runs this far ahead of the local clock.
const SIM_OFFSET_MS = 7_000;

let sim: SimulatedBinance;
let dir: string;
// One exchange clock for every governor and client, as the server wires them.
let clock: ServerClock;
const open: Array<{ close(): unknown }> = [];

beforeAll(async () => {
  sim = await SimulatedBinance.start({ clock: () => Date.now() + SIM_OFFSET_MS });
  dir = await mkdtemp(join(tmpdir(), 'rest-client-'));
  const bootstrap = new BinanceRestClient({ market: 'SPOT', governor: newGovernor('spot'), baseUrl: sim.urls('SPOT').rest });
  clock = bootstrap.clock;
  await clock.sync();
  await bootstrap.close();
});

afterAll(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  sim.resetWeights();
  sim.stats.reset();
  Object.assign(sim.faults, { restDelayMs: 0, restFailNext: 0, restMalformedNext: 0, force429Next: 0, force418Next: 0 });
});

afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close();
});

function newGovernor(name: 'spot' | 'futures', banFile?: string): WeightGovernor {
  const governor = new WeightGovernor({
    name,
    serverWeight: 0.75,
    now: () => (clock === undefined ? Date.now() : clock.now()),
    ...(banFile === undefined ? {} : { banStore: new BanStore(banFile) }),
  });
  open.push(governor);
  return governor;
}

function newClient(
  market: MarketType,
  governor: WeightGovernor,
  options: { timeoutMs?: number; retries?: number } = {},
): BinanceRestClient {
  const client = new BinanceRestClient({
    market,
    governor,
    baseUrl: sim.urls(market).rest,
    clock,
    backoffBaseMs: 20,
    backoffMaxMs: 100,
    ...options,
  });
  open.push(client);
  return client;
}

describe('BinanceRestClient against the simulated exchange', () => {
  it('measures the server-time offset and pages klines by it', async () => {
    const client = newClient('UM', newGovernor('futures'));
    const own = new ServerClock({ fetchServerTime: (signal) => client.time(signal ? { signal } : {}) });
    await own.sync({ samples: 3 });
    expect(Math.abs(own.offsetMs - SIM_OFFSET_MS)).toBeLessThan(500);
    expect(sim.stats.requestsTo('/fapi/v1/time', 200)).toBe(3);

    const to = openTimeOf('1m', clock.now());
    const rows = await client.klines({ symbol: 'BTCUSDT', interval: '1m', limit: 3 });
    // The newest row is the candle forming on the exchange clock, not on the local one.
    expect(rows.at(-1)?.[0]).toBe(to);
  });

  it('fetches a range with the planned pages, oldest first on UM and newest first on CM', async () => {
    for (const [market, symbol, path] of [
      ['UM', 'BTCUSDT', '/fapi/v1/klines'],
      ['CM', 'BTCUSD_PERP', '/dapi/v1/klines'],
    ] as const) {
      const client = newClient(market, newGovernor('futures'));
      const to = openTimeOf('1m', client.clock.now()) - 10 * MINUTE;
      const from = to - 1099 * MINUTE;
      const rows = await client.klinesRange(symbol, '1m', from, to);
      expect(rows).toHaveLength(1100);
      expect(rows.every((row, i) => row[0] === from + i * MINUTE)).toBe(true);
      const pages = planKlinePages({ market, interval: '1m', from, to });
      expect(sim.stats.requestsTo(path, 200)).toBe(pages.length);
      expect(pages.map((p) => p.limit)).toEqual([499, 499, 102]);

      const firstPage = await client.klinePages(symbol, '1m', from, to)[Symbol.asyncIterator]().next();
      const firstRows = firstPage.done === true ? [] : firstPage.value;
      // CM starts from the newest end of the range.
      expect(firstRows.at(-1)?.[0]).toBe(market === 'CM' ? to : from + 498 * MINUTE);
    }
  });

  it('reads exchangeInfo with CM contractStatus and applies its REQUEST_WEIGHT to the governor', async () => {
    const governor = newGovernor('futures');
    governor.setLimit(50);
    const client = newClient('CM', governor);
    const info = await client.exchangeInfo();
    expect(info.symbols.map((s) => [s.symbol, s.contractStatus])).toContainEqual(['BTCUSD_PERP', 'TRADING']);
    expect(governor.limit).toBe(2400);
  });

  it('keeps the whole exchangeInfo body it read, fields the schema does not know included', async () => {
    const client = newClient('SPOT', newGovernor('spot'));
    expect(client.lastExchangeInfo).toBeUndefined();
    await client.exchangeInfo();
    const kept = client.lastExchangeInfo;
    expect(kept?.query).toBe('permissions=SPOT&symbolStatus=TRADING&showPermissionSets=false');
    const direct = await fetch(`${sim.urls('SPOT').rest}/api/v3/exchangeInfo?${kept?.query ?? ''}`);
    const body = (await direct.json()) as Record<string, unknown>;
    expect({ ...kept?.body, serverTime: 0 }).toEqual({ ...body, serverTime: 0 });
    expect(JSON.stringify(kept?.body)).toContain('"filters":[{"filterType":"PRICE_FILTER"');
  });

  it('forwards a request as it is: the reply verbatim, counted once, charged at the forward priority', async () => {
    const governor = newGovernor('futures');
    const statuses: Array<[string, number]> = [];
    const client = new BinanceRestClient({
      market: 'UM',
      governor,
      baseUrl: sim.urls('UM').rest,
      clock,
      onResponse: (endpoint, status) => statuses.push([endpoint, status]),
    });
    open.push(client);
    const query = 'symbol=BTCUSDT&interval=1h&limit=3';
    const reply = await client.forward('/fapi/v1/klines', query, 1);
    const direct = await fetch(`${sim.urls('UM').rest}/fapi/v1/klines?${query}`);
    expect(reply.status).toBe(200);
    expect(reply.contentType).toBe('application/json;charset=UTF-8');
    expect(reply.body).toBe(await direct.text());
    const bad = await client.forward('/fapi/v1/klines', 'symbol=NOSUCH&interval=1h', 5);
    expect([bad.status, bad.body]).toEqual([400, '{"code":-1121,"msg":"Invalid symbol."}']);
    expect(statuses).toEqual([
      ['/fapi/v1/klines', 200],
      ['/fapi/v1/klines', 400],
    ]);
    expect(sim.stats.requestsTo('/fapi/v1/klines')).toBe(3);

    // A limit whose forward share (the budget less FORWARD_RESERVE) has room for one more: the
    // second is refused at once, and not sent.
    const forwardRoom = (limit: number): number => {
      const budget = Math.floor(limit * 0.75);
      return budget - Math.floor(budget * FORWARD_RESERVE);
    };
    let limit = 1;
    while (forwardRoom(limit) < governor.usedWeight + 5) limit += 1;
    governor.setLimit(limit);
    await client.forward('/fapi/v1/klines', query, 5);
    const refused = await client.forward('/fapi/v1/klines', query, 5).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WeightUnavailableError);
    expect(sim.stats.requestsTo('/fapi/v1/klines')).toBe(4);

    // The exchange's 418 comes back as it is, and bans the whole budget: the next one is not sent.
    sim.resetWeights();
    governor.setLimit(2400);
    sim.faults.forcedRetryAfterSeconds = 60;
    sim.faults.force418Next = 1;
    const banned = await client.forward('/fapi/v1/klines', query, 1);
    expect(banned.status).toBe(418);
    expect(banned.body).toMatch(/"code":-1003,"msg":"Way too many requests; IP\(127.0.0.1\) banned until \d+/);
    expect(governor.bannedUntil).toBeGreaterThan(clock.now() + 50_000);
    await expect(client.forward('/fapi/v1/klines', query, 1)).rejects.toBeInstanceOf(BannedError);
    expect(sim.stats.requestsTo('/fapi/v1/klines')).toBe(5);
  });

  it('errors carry the HTTP status, the Binance code and message, and the endpoint; 4xx are not retried', async () => {
    const client = newClient('SPOT', newGovernor('spot'));
    const error = await client.klines({ symbol: 'NOSUCHPAIR', interval: '1m' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExchangeError);
    expect(error).toMatchObject({
      status: 400,
      binanceCode: -1121,
      binanceMessage: 'Invalid symbol.',
      market: 'SPOT',
      endpoint: '/api/v3/klines',
    });
    expect((error as Error).message).toBe('SPOT /api/v3/klines answered HTTP 400 code -1121 "Invalid symbol."');
    expect(sim.stats.requestsTo('/api/v3/klines')).toBe(1);
  });

  it('a malformed body fails with MalformedResponseError naming the endpoint', async () => {
    sim.faults.restMalformedNext = 1;
    const client = newClient('SPOT', newGovernor('spot'));
    const error = await client.klines({ symbol: 'BTCUSDT', interval: '1m' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedResponseError);
    expect(error).toMatchObject({ market: 'SPOT', endpoint: '/api/v3/klines' });
    expect((error as Error).message).toMatch(/expected JSON, got "\[\[1700000000000/);
  });

  it('retries 5xx a bounded number of times, then reports the last one', async () => {
    sim.faults.restFailStatus = 503;
    sim.faults.restFailNext = 2;
    const client = newClient('UM', newGovernor('futures'), { retries: 2 });
    await expect(client.time()).resolves.toBeGreaterThan(0);
    expect(sim.stats.requestsTo('/fapi/v1/time', 503)).toBe(2);

    sim.faults.restFailNext = 5;
    const error = await client.time().catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 503, binanceCode: -1008, endpoint: '/fapi/v1/time' });
    expect(sim.stats.requestsTo('/fapi/v1/time', 503)).toBe(2 + 3);
  });

  it('a request slower than its time-out fails with TimeoutError', async () => {
    sim.faults.restDelayMs = 2_000;
    const client = newClient('SPOT', newGovernor('spot'), { timeoutMs: 150, retries: 1 });
    const error = await client.time().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ timeoutMs: 150, endpoint: '/api/v3/time', market: 'SPOT' });
  });

  it('the caller signal aborts a request in flight with AbortedError; close() with ClosedError', async () => {
    sim.faults.restDelayMs = 2_000;
    const client = newClient('SPOT', newGovernor('spot'));
    const controller = new AbortController();
    const aborted = client.time({ signal: controller.signal });
    const closed = client.time().catch((e: unknown) => e);
    await sleep(50);
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortedError);
    await client.close();
    expect(await closed).toBeInstanceOf(ClosedError);
    await expect(client.time()).rejects.toBeInstanceOf(ClosedError);
  });

  it('honours Retry-After: nothing is sent on the budget until the pause ends, then the request goes', async () => {
    sim.faults.force429Next = 1;
    sim.faults.forcedRetryAfterSeconds = 1;
    const governor = newGovernor('spot');
    const client = newClient('SPOT', governor);
    const other = newClient('SPOT', governor);
    const retried = client.time();
    // The simulator counts the 429 when it sends it; the client pauses once the reply arrives.
    for (let i = 0; i < 100 && (sim.stats.count429 === 0 || governor.pausedUntil === undefined); i += 1) await sleep(10);
    expect(sim.stats.count429).toBe(1);
    expect(governor.pausedUntil).toBeDefined();

    // Another caller on the same budget, given up halfway through the pause, never reached the exchange.
    await expect(other.time({ signal: AbortSignal.timeout(500) })).rejects.toBeInstanceOf(AbortedError);
    expect(sim.stats.requestsTo('/api/v3/time')).toBe(1);

    await expect(retried).resolves.toBeGreaterThan(0);
    expect(sim.stats.requestsTo('/api/v3/time', 200)).toBe(1);
    expect(sim.stats.count418).toBe(0);
  });

  it('a 418 stops every client of the budget, and the ban survives a restart', async () => {
    sim.faults.force418Next = 1;
    sim.faults.forcedRetryAfterSeconds = 1;
    const banFile = join(dir, 'bans.json');
    const governor = newGovernor('futures', banFile);
    const um = newClient('UM', governor);
    const cm = newClient('CM', governor);

    const error = await um.klines({ symbol: 'BTCUSDT', interval: '1m', limit: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error).toMatchObject({ status: 418, isBan: true, binanceCode: -1003, endpoint: '/fapi/v1/klines' });
    const until = (error as RateLimitError).until;
    // Futures state the end only in the message: "... banned until <epoch ms>"; the pause ends then.
    const stated = Number(/banned until (\d+)/.exec((error as RateLimitError).binanceMessage ?? '')?.[1]);
    expect(until).toBeGreaterThanOrEqual(stated);
    expect(until).toBeLessThan(stated + 1_000);

    await expect(cm.klines({ symbol: 'BTCUSD_PERP', interval: '1m', limit: 10 })).rejects.toBeInstanceOf(BannedError);
    governor.close();

    // A new process: a new governor reading the same ban file sends nothing either.
    const store = new BanStore(banFile);
    for (let i = 0; i < 100 && (await store.load()).futures === undefined; i += 1) await sleep(10);
    const restarted = newGovernor('futures', banFile);
    const again = newClient('UM', restarted);
    await expect(again.time()).rejects.toMatchObject({ code: 'BAN_IN_FORCE', until });
    expect(sim.stats.requestsTo('/dapi/v1/klines')).toBe(0);
    expect(sim.stats.requestsTo('/fapi/v1/time')).toBe(0);
    expect(sim.stats.requestsWhileBanned).toBe(0);

    // Waiting for the ban sends the request only once it has ended.
    await expect(again.time({ waitForBan: true })).resolves.toBeGreaterThanOrEqual(until);
    expect(sim.stats.requestsWhileBanned).toBe(0);
    expect(sim.stats.requestsTo('/fapi/v1/time', 200)).toBe(1);
  });
});

describe('reply headers and limits', () => {
  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('30', now)).toBe(30_000);
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:02:00 GMT', now)).toBe(120_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('takes the one-minute REQUEST_WEIGHT entry of rateLimits', () => {
    const rateLimits = [
      { rateLimitType: 'ORDERS', interval: 'MINUTE', intervalNum: 1, limit: 1200 },
      { rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: 2400 },
    ];
    expect(requestWeightLimit({ rateLimits })).toBe(2400);
    expect(requestWeightLimit({ rateLimits: rateLimits.slice(0, 1) })).toBeUndefined();
  });
});
