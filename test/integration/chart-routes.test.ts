import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aggregate } from '../../src/analysis/aggregate.js';
import { bollinger, rsi } from '../../src/analysis/indicators.js';
import { CandleServer } from '../../src/candle-server.js';
import { openTimeOf } from '../../src/binance/intervals.js';
import type { RawKline } from '../../src/binance/kline.js';
import { writeDailyFile } from '../../src/files/daily-file.js';
import { addDays, expectedOpenTimes, localDayOf } from '../../src/files/daily-layout.js';
import { chartRoutes, type ChartCandlesReply, type ChartLiveUpdate } from '../../src/service/chart-routes.js';
import { startHttpApi, type HttpApi } from '../../src/service/http-api.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { getJson, simRule, startSim } from '../helpers/sim.js';

const TIMEZONE = 'America/New_York';
const LENGTH = 120;
const DAY = 86_400_000;

describe('chart routes against a CandleServer on the simulated exchange', () => {
  let sim: SimulatedBinance;
  let server: CandleServer;
  let api: HttpApi;
  let dir: string;
  let today: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chart-routes-'));
    // The exchange clock is set 40 minutes past a New York midnight (05:00 UTC in winter, 04:00 in
    // summer), so the 120-minute ring reaches back into the previous local day, whose file joins it.
    const utcMidnight = Math.floor(Date.now() / DAY) * DAY - DAY;
    const nyMidnight = [4, 5]
      .map((h) => utcMidnight + h * 3_600_000)
      .find((t) => localDayOf(t, TIMEZONE) !== localDayOf(t - 1, TIMEZONE)) as number;
    const offset = nyMidnight + 40 * 60_000 - Date.now();
    sim = await startSim({
      markets: ['SPOT'],
      clock: () => Date.now() + offset,
      streams: { cadenceMs: 100, pingIntervalMs: 1000, pongTimeoutMs: 5000 },
    });
    today = localDayOf(sim.world.now(), TIMEZONE);
    const candleDir = join(dir, 'candles');
    for (const day of [addDays(today, -2), addDays(today, -1)]) {
      const rows = expectedOpenTimes(day, TIMEZONE, '1m').map(
        (t) => sim.world.kline('SPOT', 'BTCUSDT', '1m', t, sim.world.now()) as RawKline,
      );
      await writeDailyFile({
        root: candleDir,
        market: 'SPOT',
        timezone: TIMEZONE,
        bar: '1m',
        day,
        symbol: 'BTCUSDT',
        rows,
        gaps: [],
        source: 'rest',
        now: sim.world.now(),
      });
    }
    server = new CandleServer({
      instType: 'SPOT',
      budgetScope: 'chart-routes-test',
      rule: {
        ...simRule(sim, 'SPOT', dir),
        LENGTH,
        BAR: '1m',
        TIMEZONE,
        UPDATE_INTERVAL_SECONDS: 1,
        CACHE_DELAY_SECONDS: null,
        CANDLE_DIR: candleDir,
        INTERVALS: ['15m'],
      },
    });
    await server.runCandleMap();
    const webRoot = join(dir, 'web');
    await mkdir(join(webRoot, 'chart'), { recursive: true });
    await writeFile(join(webRoot, 'chart', 'index.html'), '<!doctype html><script type="module" src="/chart/app.js"></script>');
    await writeFile(join(webRoot, 'chart', 'app.js'), 'export {};');
    api = await startHttpApi({ server, port: 0, extraRoutes: chartRoutes(server, { webRoot, liveIntervalMs: 200, heartbeatMs: 300 }) });
  });

  afterAll(async () => {
    await api?.close();
    await server?.close();
    await sim?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /** The exchange's 1m candles of BTCUSDT from `from` up to now. */
  function exchangeMinutes(from: number): RawKline[] {
    const now = sim.world.now();
    const rows: RawKline[] = [];
    for (let t = from; t <= now; t += 60_000) rows.push(sim.world.kline('SPOT', 'BTCUSDT', '1m', t, now) as RawKline);
    return rows;
  }

  it('serves the page and its bundle from the web root', async () => {
    const page = await request(`${api.url}/chart`);
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(await page.body.text()).toContain('/chart/app.js');
    const bundle = await request(`${api.url}/chart/app.js`);
    expect(bundle.headers['content-type']).toMatch(/^text\/javascript/);
    expect(await bundle.body.text()).toBe('export {};');
    const missing = await getJson(`${api.url}/chart/app.css`);
    expect(missing.status).toBe(404);
  });

  it('aggregates the ring into the period, with the library indicators', async () => {
    const reply = await getJson(`${api.url}/api/chart/candles?symbol=BTCUSDT&period=5m&limit=10`);
    expect(reply.status).toBe(200);
    const body = reply.body as ChartCandlesReply;
    expect(body.periods).toEqual(['1m', '5m', '15m', '1h', '4h', '1d']);
    expect(body.bars.length - body.shownFrom).toBe(10);
    const newest = body.bars.at(-1)!;
    expect(newest.time).toBe(openTimeOf('5m', sim.world.now()));
    // Closed bars equal the exchange's 1m candles aggregated; the forming one may have moved on.
    const expected = aggregate(exchangeMinutes(body.bars[0]!.time), '1m', '5m');
    expect(body.bars.slice(0, -1).map((b) => [b.time, b.open, b.high, b.low, b.close])).toEqual(
      expected.slice(0, body.bars.length - 1).map((b) => [b.openTime, b.open, b.high, b.low, b.close]),
    );
    const closes = body.bars.map((b) => b.close);
    expect(body.indicators.rsi14).toEqual(Array.from(rsi(closes, 14), (v) => (Number.isNaN(v) ? null : v)));
    expect(body.indicators.bbUpper.at(-1)).toBe(bollinger(closes).upper.at(-1));
    expect(body.status).toMatchObject({ symbol: 'BTCUSDT', state: 'fresh', isStale: false, stream: { mode: 'websocket' } });
    expect(body.status.weight.budget).toBeGreaterThan(0);
  });

  it('prepends bars from the daily files, joined seamlessly to the ring, for longer periods', async () => {
    const reply = await getJson(`${api.url}/api/chart/candles?symbol=BTCUSDT&period=1h&limit=100`);
    expect(reply.status).toBe(200);
    const body = reply.body as ChartCandlesReply;
    // Two local days of files, then the ring: 48 hours and the 40 minutes of today.
    const firstFileHour = expectedOpenTimes(addDays(today, -2), TIMEZONE, '1h')[0]!;
    expect(body.bars[0]!.time).toBe(firstFileHour);
    expect(body.bars).toHaveLength(49);
    expect(body.historyBars).toBeGreaterThanOrEqual(46);
    const expected = aggregate(exchangeMinutes(firstFileHour), '1m', '1h');
    const closed = body.bars.slice(0, -1);
    expect(closed.map((b) => [b.time, b.open, b.high, b.low, b.close])).toEqual(
      expected.slice(0, -1).map((b) => [b.openTime, b.open, b.high, b.low, b.close]),
    );
    closed.forEach((b, i) => expect(b.volume).toBeCloseTo(expected[i]!.volume, 6));

    // 4h buckets straddle New York days: each is merged from both days' files (the first one is
    // partial: the files start within it).
    const fourHour = (await getJson(`${api.url}/api/chart/candles?symbol=BTCUSDT&period=4h`)).body as ChartCandlesReply;
    const expected4h = aggregate(exchangeMinutes(firstFileHour), '1m', '4h');
    expect(fourHour.bars.length).toBe(expected4h.length);
    expect(fourHour.bars.slice(0, -1).map((b) => [b.time, b.open, b.high, b.low, b.close])).toEqual(
      expected4h.slice(0, fourHour.bars.length - 1).map((b) => [b.openTime, b.open, b.high, b.low, b.close]),
    );
  });

  it('reads a period the rule keeps as a derived ring from that ring, aggregating nothing', async () => {
    const reply = await getJson(`${api.url}/api/chart/candles?symbol=BTCUSDT&period=15m&limit=100`);
    expect(reply.status).toBe(200);
    const body = reply.body as ChartCandlesReply;
    const ring = server.getCandleSecurity('BTCUSDT', 1e9, { interval: '15m' }).toArray();
    // The derived ring reaches 30 hours back, far beyond the 2-hour 1m ring: no daily file was read.
    expect(body.historyBars).toBe(0);
    expect(ring).toHaveLength(LENGTH);
    const shown = body.bars.slice(0, -1).map((b) => [b.time, b.open, b.high, b.low, b.close, b.volume]);
    expect(shown).toEqual(ring.slice(-body.bars.length, -1).map((row) => [row[0], row[1], row[2], row[3], row[4], row[5]]));
    expect(body.bars[0]!.time).toBeLessThan(sim.world.now() - 24 * 3_600_000);
  });

  it('streams the forming bar and the status as Server-Sent Events, with heartbeats', async () => {
    const controller = new AbortController();
    const res = await request(`${api.url}/api/chart/live?symbol=ETHUSDT&period=15m`, { signal: controller.signal });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    let text = '';
    const deadline = Date.now() + 5000;
    for await (const chunk of res.body) {
      text += String(chunk);
      if ((text.match(/event: update/g) ?? []).length >= 2 && text.includes(': ping')) break;
      if (Date.now() > deadline) break;
    }
    controller.abort();
    await res.body.dump().catch(() => undefined);
    expect(text.startsWith('retry: 2000\n\n')).toBe(true);
    expect(text).toContain(': ping\n\n');
    const first = /event: update\ndata: (.*)\n\n/.exec(text);
    const update = JSON.parse(first![1]!) as ChartLiveUpdate;
    expect(update).toMatchObject({ symbol: 'ETHUSDT', period: '15m', status: { symbol: 'ETHUSDT' } });
    expect(update.bars.length).toBeGreaterThanOrEqual(1);
    expect(update.bars.at(-1)!.time).toBe(openTimeOf('15m', update.status.newestOpenTime!));
  });

  it('answers bad requests with what was received and what was expected', async () => {
    const badPeriod = await getJson(`${api.url}/api/chart/candles?symbol=BTCUSDT&period=2m`);
    expect(badPeriod.status).toBe(400);
    expect((badPeriod.body as { error: string }).error).toBe(
      'period "2m" is not offered for 1m candles; expected one of 1m, 5m, 15m, 1h, 4h, 1d',
    );
    expect((await getJson(`${api.url}/api/chart/candles?period=1m`)).status).toBe(400);
    expect((await getJson(`${api.url}/api/chart/candles?symbol=btc/usdt`)).status).toBe(400);
    expect((await getJson(`${api.url}/api/chart/candles?symbol=BTCUSDT&limit=0`)).status).toBe(400);
    expect((await getJson(`${api.url}/api/chart/candles?symbol=BTCUSDT&extra=1`)).status).toBe(400);
    const unknown = await getJson(`${api.url}/api/chart/live?symbol=NOPEUSDT`);
    expect(unknown.status).toBe(404);
    expect((unknown.body as { error: string }).error).toMatch(/NOPEUSDT is not followed/);
    const post = await request(`${api.url}/api/chart/candles?symbol=BTCUSDT`, { method: 'POST' });
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    await post.body.dump();
  });
});
