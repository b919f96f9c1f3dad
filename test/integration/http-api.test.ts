import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CandleServer } from '../../src/candle-server.js';
import { KLINE_COLUMNS } from '../../src/binance/kline.js';
import { startHttpApi, type HttpApi, type HttpRoute } from '../../src/service/http-api.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { getJson, simRule, startSim, type SimReply } from '../helpers/sim.js';

/** Polls `check` every 50 ms until it returns a value or `ms` passes. */
async function waitFor<T>(check: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
async function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The port can be bound again (nothing holds it). */
async function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

const SAMPLE_LINE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*\})? ([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/;

/**
 * Checks every line of `text` against the exposition format 0.0.4 (HELP/TYPE comments, samples
 * that belong to the family declared before them) and returns the samples by series.
 */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  let family: { name: string; type: string } | undefined;
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      family = { name: type[1] as string, type: type[2] as string };
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* /.test(line)) continue;
    const sample = SAMPLE_LINE.exec(line);
    expect(sample, `line ${JSON.stringify(line)} is not a sample`).not.toBeNull();
    const name = sample?.[1] as string;
    const owners = family?.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => `${family?.name}${s}`) : [family?.name];
    expect(owners, `sample ${name} outside its family`).toContain(name);
    if (family?.type === 'counter') expect(name.endsWith('_total')).toBe(true);
    expect(name.startsWith('candle_server_')).toBe(true);
    expect(sample?.[2] ?? '').toContain('market="SPOT"');
    const value = sample?.[3] as string;
    samples.set(`${name}${sample?.[2] ?? ''}`, value === '+Inf' ? Infinity : Number(value));
  }
  return samples;
}

describe('HTTP API of a running CandleServer', () => {
  let sim: SimulatedBinance;
  let dir: string;
  let server: CandleServer;
  let api: HttpApi;
  let log: CapturedLog;
  const extraSeen: string[] = [];

  beforeAll(async () => {
    sim = await startSim({ markets: ['SPOT'], streams: { cadenceMs: 100, pingIntervalMs: 1000, pongTimeoutMs: 5000 } });
    dir = await mkdtemp(join(tmpdir(), 'candle-http-'));
    server = new CandleServer({
      instType: 'SPOT',
      budgetScope: 'http-api-test',
      streams: { staleAfterMs: 1500 },
      rule: {
        ...simRule(sim, 'SPOT', dir),
        CACHE_DELAY_SECONDS: null,
        INTERVALS: ['1m'],
      },
    });
    await server.runCandleMap();
    log = captureLog('debug');
    const extra: HttpRoute = (req, res, url) => {
      extraSeen.push(url.pathname);
      if (url.pathname === '/extra') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`extra ${req.method}`);
        return true;
      }
      if (url.pathname === '/broken') throw new Error('route failed');
      return false;
    };
    api = await startHttpApi({ server, logger: log.logger, extraRoutes: [extra] });
  }, 30_000);

  afterAll(async () => {
    await api?.close();
    await server?.close();
    await sim?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const get = (path: string): Promise<SimReply> => getJson(`${api.url}${path}`);
  /** GETs `path` until it answers 200: a symbol is briefly not served while a hole is repaired. */
  const getServed = async (path: string): Promise<SimReply> => {
    const reply = await waitFor(async () => {
      const r = await get(path);
      return r.status === 200 ? r : undefined;
    });
    return reply ?? get(path);
  };

  it('binds 127.0.0.1 on a free port by default', () => {
    expect(api.url).toBe(`http://127.0.0.1:${api.port}`);
    expect(api.port).toBeGreaterThan(0);
    expect((api.httpServer.address() as { address: string }).address).toBe('127.0.0.1');
  });

  it('GET /health answers 200 ok once every symbol is fresh', async () => {
    const reply = await waitFor(async () => {
      const r = await get('/health?securitySeconds=5');
      return r.status === 200 ? r : undefined;
    });
    expect(reply?.body).toEqual({ status: 'ok', symbols: 2, securitySeconds: 5 });
    expect(reply?.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('GET /symbols lists every symbol with its state, rows and newest candle', async () => {
    await getServed('/health?securitySeconds=5');
    const reply = await get('/symbols?securitySeconds=5');
    expect(reply.status).toBe(200);
    const body = reply.body as { market: string; bar: string; symbols: Array<Record<string, unknown>> };
    expect(body).toMatchObject({ market: 'SPOT', bar: '1s' });
    expect(body.symbols.map((s) => s.symbol).sort()).toEqual(['BTCUSDT', 'ETHUSDT']);
    for (const entry of body.symbols) {
      expect(entry).toMatchObject({ state: 'fresh', rows: 60 });
      expect(entry.newestOpenTime).toBe(server.status(entry.symbol as string).newestOpenTime ?? -1);
      expect(typeof entry.newestAgeMs).toBe('number');
    }
  });

  it('GET /candles/:symbol returns the newest limit rows, oldest first, equal to getCandleSecurity', async () => {
    const reply = await getServed('/candles/BTCUSDT?limit=10&securitySeconds=5');
    const now = sim.world.now();
    const local =
      (await waitFor(() => {
        const view = server.getCandleSecurity('BTCUSDT', 5, { copy: true });
        return view.isEmpty ? undefined : view.toArray();
      })) ?? [];
    expect(reply.status).toBe(200);
    const body = reply.body as { symbol: string; market: string; bar: string; columns: string[]; rows: number[][] };
    expect(body).toMatchObject({ symbol: 'BTCUSDT', market: 'SPOT', bar: '1s', columns: [...KLINE_COLUMNS] });
    expect(body.rows).toHaveLength(10);
    for (let i = 1; i < body.rows.length; i += 1) expect((body.rows[i]?.[0] ?? 0) - (body.rows[i - 1]?.[0] ?? 0)).toBe(1000);
    // Candles closed well before both reads hold their final values in both.
    const settled = body.rows.filter((row) => (row[6] as number) < now - 2500);
    expect(settled.length).toBeGreaterThanOrEqual(5);
    for (const row of settled) expect(row).toEqual(local.find((l) => l[0] === row[0]));
    expect(body.rows.at(-1)?.[0]).toBeGreaterThanOrEqual((local.at(-1)?.[0] ?? 0) - 2000);

    const all = await getServed('/candles/ETHUSDT');
    expect((all.body as { rows: unknown[] }).rows).toHaveLength(60);
  });

  it('GET /candles/:symbol?interval= and /symbols?interval= read a derived ring (INTERVALS)', async () => {
    const reply = await getServed('/candles/BTCUSDT?interval=1m&limit=3&securitySeconds=5');
    const local = server.getCandleSecurity('BTCUSDT', 5, { interval: '1m', copy: true }).toArray();
    const body = reply.body as { interval: string; bar: string; rows: number[][] };
    expect(body).toMatchObject({ interval: '1m', bar: '1s' });
    expect(body.rows).toHaveLength(3);
    for (let i = 1; i < 3; i += 1) expect((body.rows[i]?.[0] ?? 0) - (body.rows[i - 1]?.[0] ?? 0)).toBe(60_000);
    // The closed minutes are the same in both reads; the forming one may have moved on.
    expect(body.rows.slice(0, 2)).toEqual(local.slice(-3, -1));
    const symbols = (await get('/symbols?interval=1m&securitySeconds=5')).body as {
      interval: string;
      intervals: string[];
      symbols: unknown[];
    };
    expect(symbols).toMatchObject({ interval: '1m', intervals: ['1s', '1m'] });
    expect(symbols.symbols).toHaveLength(2);
    const refused = await get('/candles/BTCUSDT?interval=5m');
    expect(refused.status).toBe(400);
    expect((refused.body as { error: string }).error).toBe(
      'interval "5m" is not kept by this server; expected one of 1s, 1m (BAR and INTERVALS)',
    );
  });

  it('GET /candles/:symbol?format=csv gives the same rows as CSV', async () => {
    const reply = await getServed('/candles/ETHUSDT?limit=3&format=csv');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/csv; charset=utf-8');
    const lines = reply.text.trimEnd().split('\n');
    expect(lines[0]).toBe(KLINE_COLUMNS.join(','));
    expect(lines).toHaveLength(4);
    for (const line of lines.slice(1)) expect(line.split(',').map(Number).every(Number.isFinite)).toBe(true);
  });

  it('GET /metrics is valid Prometheus text with weight, requests and latency series', async () => {
    await waitFor(() => (server.stats().latency.count > 5 ? true : undefined));
    const reply = await get('/metrics');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const samples = parseExposition(reply.text);
    const m = '{market="SPOT"}';
    const budget = samples.get(`candle_server_weight_budget${m}`) ?? 0;
    const limit = samples.get(`candle_server_weight_limit${m}`) ?? 0;
    expect(limit).toBeGreaterThan(0);
    expect(budget).toBeCloseTo(limit * 0.75, 0);
    expect(samples.get(`candle_server_weight_used${m}`)).toBeGreaterThanOrEqual(0);
    expect(samples.get('candle_server_requests_total{market="SPOT",endpoint="/api/v3/klines",status="200"}')).toBeGreaterThan(0);
    expect(samples.get('candle_server_rate_limit_responses_total{market="SPOT",status="429"}')).toBe(0);
    expect(samples.get(`candle_server_stream_connections${m}`)).toBeGreaterThanOrEqual(1);
    expect(samples.get(`candle_server_stream_messages_total${m}`)).toBeGreaterThan(0);
    expect(samples.get(`candle_server_symbols${m}`)).toBe(2);
    expect(samples.get(`candle_server_symbols_ready${m}`)).toBe(2);
    expect(samples.get(`candle_server_memory_bytes${m}`)).toBeGreaterThanOrEqual(2 * 60 * 96);
    expect(samples.get(`candle_server_event_loop_delay_max_seconds${m}`)).toBeGreaterThanOrEqual(0);

    const buckets = [...samples].filter(([series]) => series.startsWith('candle_server_event_to_ring_latency_seconds_bucket'));
    expect(buckets.length).toBeGreaterThan(2);
    const counts = buckets.map(([, value]) => value);
    for (let i = 1; i < counts.length; i += 1) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1] as number);
    expect(buckets.at(-1)?.[0]).toContain('le="+Inf"');
    const count = samples.get(`candle_server_event_to_ring_latency_seconds_count${m}`) ?? 0;
    expect(count).toBeGreaterThan(5);
    expect(counts.at(-1)).toBe(count);
    expect(samples.get(`candle_server_event_to_ring_latency_seconds_sum${m}`)).toBeGreaterThanOrEqual(0);
  });

  it.each([
    ['/candles/btcusdt', 'symbol "btcusdt" is not a Binance symbol (A-Z, 0-9, _); did you mean "BTCUSDT"?'],
    ['/candles/BTC%2FUSDT', 'symbol "BTC/USDT" is not a Binance symbol'],
    ['/candles/%E0%A4%A', 'is not valid percent-encoding'],
    ['/candles', 'names no symbol; expected /candles/<SYMBOL>'],
    ['/candles/BTCUSDT?limit=0', 'limit "0" is invalid; expected an integer from 1 to 60 (LENGTH)'],
    ['/candles/BTCUSDT?limit=61', 'limit "61" is invalid'],
    ['/candles/BTCUSDT?limit=2.5', 'limit "2.5" is invalid'],
    ['/candles/BTCUSDT?securitySeconds=0', 'securitySeconds "0" is invalid; expected a positive number of seconds'],
    ['/candles/BTCUSDT?securitySeconds=abc', 'securitySeconds "abc" is invalid'],
    ['/candles/BTCUSDT?format=xml', 'format "xml" is invalid; expected json or csv'],
    ['/candles/BTCUSDT?limt=5', 'query parameter "limt" is not known on /candles/BTCUSDT; expected limit, securitySeconds, format'],
    ['/candles/BTCUSDT?limit=1&limit=2', 'query parameter limit is given twice'],
    ['/health?securitySeconds=-1', 'securitySeconds "-1" is invalid'],
    ['/symbols?x=1', 'query parameter "x" is not known on /symbols'],
  ])('GET %s is refused with 400 and says why', async (path, message) => {
    const reply = await get(path);
    expect(reply.status).toBe(400);
    expect((reply.body as { error: string }).error).toContain(message);
  });

  it('answers 404 for a symbol not followed and for an unknown route', async () => {
    const unknown = await get('/candles/DOGEUSDT');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ error: expect.stringContaining('DOGEUSDT is not followed by this SPOT server'), symbol: 'DOGEUSDT' });
    const route = await get('/nothing-here');
    expect(route.status).toBe(404);
    expect((route.body as { error: string }).error).toBe(
      'no route for GET /nothing-here; expected one of GET /health, /metrics, /symbols, /candles/:symbol',
    );
    expect((await get('/candles/BTCUSDT/more')).status).toBe(404);
  });

  it('answers 405 with Allow for another method on a known route', async () => {
    const reply = await request(`${api.url}/health`, { method: 'POST', body: '{}' });
    const body = (await reply.body.json()) as { error: string };
    expect(reply.statusCode).toBe(405);
    expect(reply.headers.allow).toBe('GET, HEAD');
    expect(body.error).toBe('method POST is not allowed on /health; expected GET or HEAD');
  });

  it('passes other requests to the extra routes in order, and turns a throwing route into a 500', async () => {
    const extra = await get('/extra');
    expect(extra.status).toBe(200);
    expect(extra.text).toBe('extra GET');
    expect(extraSeen).not.toContain('/health');
    const broken = await get('/broken');
    expect(broken.status).toBe(500);
    expect((broken.body as { error: string }).error).toBe('internal error: route failed');
  });

  it('logs each request at debug level with component http', async () => {
    await get('/symbols');
    const line = log.lines().find((l) => l.msg === 'request' && l.url === '/symbols');
    expect(line).toMatchObject({ component: 'http', method: 'GET', status: 200, level: 20 });
  });

  it('answers 503 with reasons when the streams stall, then 200 again', async () => {
    sim.stallStreams(true);
    try {
      const health = await waitFor(async () => {
        const r = await get('/health?securitySeconds=1');
        return r.status === 503 ? r : undefined;
      });
      expect(health?.body).toMatchObject({ status: 'degraded', symbols: 2, securitySeconds: 1 });
      const reasons = (health?.body as { reasons: Array<Record<string, unknown>> }).reasons;
      expect(reasons.length).toBeGreaterThan(0);
      expect(['stale', 'repairing', 'banned']).toContain(reasons[0]?.state);
      expect(Object.keys(reasons[0] ?? {}).sort()).toEqual(['confirmedAgeMs', 'newestAgeMs', 'state', 'symbol']);

      const candles = await waitFor(async () => {
        const r = await get('/candles/BTCUSDT?securitySeconds=1');
        return r.status === 503 ? r : undefined;
      });
      const body = candles?.body as { error: string; message: string; status: { symbol: string; state: string } };
      expect(body.error).toBe('stale');
      expect(body.status).toMatchObject({ symbol: 'BTCUSDT' });
      expect(body.message).toMatch(
        /^BTCUSDT (is stale: newest candle opened \d+ ms ago, data confirmed \d+ ms ago; expected both under 1000 ms|has a hole)/,
      );
    } finally {
      sim.stallStreams(false);
    }
    const recovered = await waitFor(async () => {
      const r = await get('/health?securitySeconds=2');
      return r.status === 200 ? r : undefined;
    }, 15_000);
    expect(recovered?.body).toMatchObject({ status: 'ok' });
  }, 30_000);
});

describe('HTTP API lifecycle', () => {
  it('answers 503 starting before the server is ready, and 404 for its candles', async () => {
    const idle = new CandleServer({ instType: 'UM', register: false, rule: { SYMBOLS: ['BTCUSDT'], LOCAL_CANDLE_DAYS: 0 } });
    const api = await startHttpApi({ server: idle });
    try {
      const health = await getJson(`${api.url}/health`);
      expect(health.status).toBe(503);
      expect(health.body).toMatchObject({ status: 'starting', symbols: 0 });
      expect((await getJson(`${api.url}/candles/BTCUSDT`)).status).toBe(404);
      expect((await getJson(`${api.url}/metrics`)).text).toContain('candle_server_ready{market="UM"} 0');
    } finally {
      await api.close();
      await idle.close();
    }
  });

  it('close() ends keep-alive connections, frees the port and is idempotent', async () => {
    const idle = new CandleServer({ instType: 'UM', register: false, rule: { SYMBOLS: ['BTCUSDT'], LOCAL_CANDLE_DAYS: 0 } });
    // A grace longer than the test timeout: close() can only finish by ending idle connections.
    const api = await startHttpApi({ server: idle, closeGraceMs: 60_000 });
    // undici keeps this connection open after the reply.
    expect((await getJson(`${api.url}/metrics`)).status).toBe(200);
    expect(await isListening(api.port)).toBe(true);
    await Promise.all([api.close(), api.close()]);
    await api.close();
    expect(await isListening(api.port)).toBe(false);
    expect(await canBind(api.port)).toBe(true);
    await idle.close();
  });

  it('rejects with a clear error when the port is taken', async () => {
    const idle = new CandleServer({ instType: 'UM', register: false, rule: { SYMBOLS: ['BTCUSDT'], LOCAL_CANDLE_DAYS: 0 } });
    const first = await startHttpApi({ server: idle });
    try {
      await expect(startHttpApi({ server: idle, port: first.port })).rejects.toMatchObject({
        code: 'HTTP_LISTEN_FAILED',
        message: expect.stringContaining(`cannot listen on 127.0.0.1:${first.port}: listen EADDRINUSE`),
      });
    } finally {
      await first.close();
      await idle.close();
    }
  });
});
