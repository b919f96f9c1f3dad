import { createHash } from 'node:crypto';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeTimeOf, intervalMs, openTimeOf } from '../../src/binance/intervals.js';
import { describeKlineProblem, type RawKline } from '../../src/binance/kline.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import { getBytes, getJson, startSim } from '../helpers/sim.js';

// The exchange clock is scripted: windows, bans and publication never depend on wall time.
const START = Date.parse('2025-03-10T12:34:56.789Z');
const MINUTE = 60_000;
let now = START;
const clock = () => now;

type Rows = RawKline[];

describe('simulated REST conformance (default limits)', () => {
  let sim: SimulatedBinance;
  const spot = (path: string) => `${sim.urls('SPOT').rest}/api/v3/${path}`;
  const um = (path: string) => `${sim.urls('UM').rest}/fapi/v1/${path}`;
  const cm = (path: string) => `${sim.urls('CM').rest}/dapi/v1/${path}`;

  beforeAll(async () => {
    sim = await startSim({ clock, archiveDelayMs: 2 * 3_600_000 });
  });
  afterAll(async () => {
    await sim.close();
  });
  beforeEach(() => {
    // Each test starts in a fresh weight window.
    now += 10 * MINUTE;
    sim.resetWeights();
  });

  it('counts klines weight by market and limit, read back from X-MBX-USED-WEIGHT-1M', async () => {
    const futuresWeights: Array<[number, number]> = [
      [1, 1],
      [99, 1],
      [100, 2],
      [499, 2],
      [500, 5],
      [1000, 5],
      [1001, 10],
      [1500, 10],
    ];
    let used = 0;
    for (const [limit, weight] of futuresWeights) {
      const reply = await getJson(um(`klines?symbol=BTCUSDT&interval=1m&limit=${limit}`));
      used += weight;
      expect(reply.status).toBe(200);
      expect(reply.weight, `limit ${limit}`).toBe(used);
      expect(reply.body).toHaveLength(limit);
    }
    const defaultPage = await getJson(um('klines?symbol=BTCUSDT&interval=1m'));
    expect(defaultPage.body).toHaveLength(500);
    expect(defaultPage.weight).toBe(used + 5);

    let spotUsed = 0;
    for (const limit of [1, 500, 1000]) {
      const reply = await getJson(spot(`klines?symbol=BTCUSDT&interval=1m&limit=${limit}`));
      spotUsed += 2;
      expect(reply.weight).toBe(spotUsed);
      expect(reply.body).toHaveLength(limit);
    }
    expect((await getJson(spot('klines?symbol=BTCUSDT&interval=1m'))).body).toHaveLength(500);
    expect((await getJson(spot('exchangeInfo'))).weight).toBe(spotUsed + 2 + 20);
    expect((await getJson(spot('time'))).weight).toBe(spotUsed + 2 + 20 + 1);
    const umInfo = await getJson(um('exchangeInfo'));
    const umTime = await getJson(um('time'));
    expect(umTime.weight - umInfo.weight).toBe(1);
    expect(umTime.body).toEqual({ serverTime: now });
    expect(sim.stats.requestsTo('/fapi/v1/klines', 200)).toBeGreaterThanOrEqual(futuresWeights.length + 1);
  });

  it('counts UM and CM into one futures budget, apart from spot', async () => {
    const first = await getJson(um('klines?symbol=BTCUSDT&interval=1m&limit=500'));
    const second = await getJson(cm('klines?symbol=BTCUSD_PERP&interval=1m&limit=500'));
    const third = await getJson(spot('time'));
    expect([first.weight, second.weight, third.weight]).toEqual([5, 10, 1]);
  });

  it('returns 12-value rows with numbers and strings where Binance has them, closeTime = open + interval - 1', async () => {
    for (const [url, interval] of [
      [spot('klines?symbol=ETHUSDT&interval=1s&limit=5'), '1s'],
      [um('klines?symbol=ETHUSDT&interval=4h&limit=5'), '4h'],
      [cm('klines?symbol=ETHUSD_PERP&interval=1M&limit=5'), '1M'],
    ] as const) {
      const rows = (await getJson(url)).body as Rows;
      expect(rows).toHaveLength(5);
      for (const row of rows) {
        expect(describeKlineProblem(row)).toBeUndefined();
        expect(row[6]).toBe(closeTimeOf(interval, row[0]));
        expect(typeof row[8]).toBe('number');
        expect(row[11]).toBe('0');
      }
      // The last row of a range reaching now is the forming candle.
      expect(rows.at(-1)?.[0]).toBe(openTimeOf(interval, now));
      expect(rows.at(-1)?.[6]).toBeGreaterThanOrEqual(now);
    }
    const fixed = (await getJson(um('klines?symbol=BTCUSDT&interval=1m&limit=2'))).body as Rows;
    expect((fixed[0]?.[6] ?? 0) - (fixed[0]?.[0] ?? 0)).toBe(intervalMs('1m') - 1);
  });

  it('pages SPOT and UM forward from startTime, endTime inclusive on open time', async () => {
    for (const base of [spot(''), um('')]) {
      const symbol = 'BTCUSDT';
      const from = openTimeOf('1m', now) - 100 * MINUTE;
      const page1 = (await getJson(`${base}klines?symbol=${symbol}&interval=1m&startTime=${from}&limit=30`)).body as Rows;
      const page2 = (await getJson(`${base}klines?symbol=${symbol}&interval=1m&startTime=${(page1.at(-1)?.[0] ?? 0) + 1}&limit=30`))
        .body as Rows;
      const opens = [...page1, ...page2].map((r) => r[0]);
      expect(opens).toEqual(Array.from({ length: 60 }, (_, i) => from + i * MINUTE));
      const bounded = (await getJson(`${base}klines?symbol=${symbol}&interval=1m&startTime=${from}&endTime=${from + 5 * MINUTE}`))
        .body as Rows;
      expect(bounded.map((r) => r[0])).toEqual(Array.from({ length: 6 }, (_, i) => from + i * MINUTE));
      // Without startTime: the newest candles ending at endTime.
      const newest = (await getJson(`${base}klines?symbol=${symbol}&interval=1m&endTime=${from}&limit=3`)).body as Rows;
      expect(newest.map((r) => r[0])).toEqual([from - 2 * MINUTE, from - MINUTE, from]);
    }
  });

  it('returns the newest candles before endTime on CM, so CM pages backwards', async () => {
    const end = openTimeOf('1m', now) - 10 * MINUTE;
    const page1 = (await getJson(cm(`klines?symbol=BTCUSD_PERP&interval=1m&endTime=${end}&limit=20`))).body as Rows;
    const page2 = (await getJson(cm(`klines?symbol=BTCUSD_PERP&interval=1m&endTime=${(page1[0]?.[0] ?? 0) - 1}&limit=20`))).body as Rows;
    const opens = [...page2, ...page1].map((r) => r[0]);
    expect(opens).toEqual(Array.from({ length: 40 }, (_, i) => end - (39 - i) * MINUTE));
    // startTime alone does not page forward on CM: the newest candles up to now come back.
    const fromStart = (await getJson(cm(`klines?symbol=BTCUSD_PERP&interval=1m&startTime=${end - 500 * MINUTE}&limit=5`))).body as Rows;
    expect(fromStart.at(-1)?.[0]).toBe(openTimeOf('1m', now));
    // Both bounds around at most `limit` candles give exactly that range.
    const both = (await getJson(cm(`klines?symbol=BTCUSD_PERP&interval=1m&startTime=${end - 4 * MINUTE}&endTime=${end}&limit=5`)))
      .body as Rows;
    expect(both.map((r) => r[0])).toEqual(Array.from({ length: 5 }, (_, i) => end - (4 - i) * MINUTE));
    const tooWide = await getJson(cm(`klines?symbol=BTCUSD_PERP&interval=1d&startTime=${end - 201 * 86_400_000}&endTime=${end}`));
    expect(tooWide.status).toBe(400);
  });

  it('answers bad parameters with Binance codes and messages', async () => {
    const cases: Array<[string, number, number, string?]> = [
      [spot('klines?symbol=NOPEUSDT&interval=1m'), 400, -1121, 'Invalid symbol.'],
      [um('klines?symbol=BTCUSDT&interval=7m'), 400, -1120, 'Invalid interval.'],
      [um('klines?symbol=BTCUSDT&interval=1s'), 400, -1120, 'Invalid interval.'],
      [spot('klines?symbol=BTCUSDT&interval=1m&limit=1001'), 400, -1130],
      [um('klines?symbol=BTCUSDT&interval=1m&limit=1501'), 400, -1130],
      [cm('klines?symbol=BTCUSD_PERP&interval=1m&limit=0'), 400, -1130],
      [spot('klines?interval=1m'), 400, -1102],
      [spot('klines?symbol=BTCUSDT'), 400, -1102],
      [spot('klines?symbol=btc%2Fusdt&interval=1m'), 400, -1100],
      [um('klines?symbol=BTCUSDT&interval=1m&limit=abc'), 400, -1100],
      [
        um(`klines?symbol=BTCUSDT&interval=1m&startTime=${now}&endTime=${now - MINUTE}`),
        400,
        -1023,
        'Start time is greater than end time.',
      ],
    ];
    for (const [url, status, code, msg] of cases) {
      const reply = await getJson(url);
      expect(reply.status, url).toBe(status);
      expect((reply.body as { code: number }).code, url).toBe(code);
      if (msg !== undefined) expect((reply.body as { msg: string }).msg).toBe(msg);
      expect(Number.isFinite(reply.weight)).toBe(true);
    }
    const unknown = await getJson(`${sim.urls('SPOT').rest}/api/v3/nothing`);
    expect(unknown.status).toBe(404);
    expect((await getJson(spot('klines?symbol=BTCUSDT&interval=1m&timeZone=%2B08:00&limit=2'))).status).toBe(200);
  });

  it('describes each market in exchangeInfo with its own fields and the configured weight limit', async () => {
    type Info = {
      timezone: string;
      serverTime: number;
      rateLimits: Array<Record<string, unknown>>;
      symbols: Array<Record<string, unknown>>;
    };
    const spotInfo = (await getJson(spot('exchangeInfo'))).body as Info;
    expect(spotInfo.timezone).toBe('UTC');
    expect(spotInfo.serverTime).toBe(now);
    expect(spotInfo.rateLimits).toContainEqual({ rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: 6000 });
    expect(spotInfo.rateLimits.map((r) => r.rateLimitType)).toEqual(expect.arrayContaining(['RAW_REQUESTS', 'ORDERS']));
    expect(spotInfo.symbols.map((s) => s.symbol)).toEqual(['BTCUSDT', 'ETHUSDT', 'BNBUSDT']);
    expect(spotInfo.symbols[0]).toMatchObject({ status: 'TRADING', baseAsset: 'BTC', quoteAsset: 'USDT', permissionSets: [['SPOT']] });

    const one = (await getJson(spot('exchangeInfo?symbol=ETHUSDT'))).body as Info;
    expect(one.symbols.map((s) => s.symbol)).toEqual(['ETHUSDT']);
    const two = (await getJson(spot(`exchangeInfo?symbols=${encodeURIComponent('["BTCUSDT","BNBUSDT"]')}`))).body as Info;
    expect(two.symbols.map((s) => s.symbol)).toEqual(['BTCUSDT', 'BNBUSDT']);
    expect(((await getJson(spot('exchangeInfo?symbol=NOPE'))).body as { code: number }).code).toBe(-1121);
    sim.setStatus('SPOT', 'BNBUSDT', 'HALT');
    const shrunk = (await getJson(spot('exchangeInfo?permissions=SPOT&symbolStatus=TRADING&showPermissionSets=false'))).body as Info;
    expect(shrunk.symbols.map((s) => s.symbol)).toEqual(['BTCUSDT', 'ETHUSDT']);
    expect(shrunk.symbols[0]?.permissionSets).toEqual([]);
    sim.setStatus('SPOT', 'BNBUSDT', 'TRADING');

    const umInfo = (await getJson(um('exchangeInfo'))).body as Info;
    expect(umInfo.rateLimits).toContainEqual({ rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: 2400 });
    expect(umInfo.symbols[0]).toMatchObject({
      symbol: 'BTCUSDT',
      pair: 'BTCUSDT',
      status: 'TRADING',
      contractType: 'PERPETUAL',
      baseAsset: 'BTC',
      quoteAsset: 'USDT',
    });

    const cmInfo = (await getJson(cm('exchangeInfo'))).body as Info;
    expect(cmInfo.symbols[0]).toMatchObject({
      symbol: 'BTCUSD_PERP',
      pair: 'BTCUSD',
      contractStatus: 'TRADING',
      contractType: 'PERPETUAL',
      baseAsset: 'BTC',
      quoteAsset: 'USD',
    });
    expect(cmInfo.symbols[0]).not.toHaveProperty('status');

    // Listing and delisting show up in exchangeInfo and klines.
    sim.list('UM', { symbol: 'NEWUSDT', listedAt: openTimeOf('1m', now) - 3 * MINUTE });
    sim.delist('UM', 'ETHUSDT', now - MINUTE);
    const after = (await getJson(um('exchangeInfo'))).body as Info;
    expect(after.symbols.find((s) => s.symbol === 'NEWUSDT')?.status).toBe('TRADING');
    expect(after.symbols.find((s) => s.symbol === 'ETHUSDT')?.status).not.toBe('TRADING');
    expect((await getJson(um('klines?symbol=NEWUSDT&interval=1m'))).body).toHaveLength(4);
  });

  it('serves daily archives with checksums: spot in microseconds from 2025, futures with a header', async () => {
    const day = '2025-03-08';
    const dayStart = Date.parse(`${day}T00:00:00Z`);
    const spotUrl = `${sim.urls('SPOT').archive}/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-${day}.zip`;
    const zip = await getBytes(spotUrl);
    const checksum = await getJson(`${spotUrl}.CHECKSUM`);
    expect(zip.status).toBe(200);
    expect(checksum.text).toBe(`${createHash('sha256').update(zip.bytes).digest('hex')}  BTCUSDT-1m-${day}.zip`);
    const files = unzipSync(zip.bytes);
    expect(Object.keys(files)).toEqual([`BTCUSDT-1m-${day}.csv`]);
    const lines = new TextDecoder().decode(files[`BTCUSDT-1m-${day}.csv`]).trim().split('\n');
    expect(lines).toHaveLength(1440);
    const first = lines[0]?.split(',') ?? [];
    expect(first[0]).toBe(`${dayStart}000`);
    expect(first[6]).toBe(`${dayStart + MINUTE - 1}999`);
    // Same candle as REST, in archive form.
    const rest = (await getJson(`${sim.urls('SPOT').rest}/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=${dayStart}&limit=1`))
      .body as Rows;
    expect(first.slice(1, 6)).toEqual(rest[0]?.slice(1, 6));

    const oldSpot = await getBytes(`${sim.urls('SPOT').archive}/data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-12-31.zip`);
    const oldFirst = new TextDecoder()
      .decode(Object.values(unzipSync(oldSpot.bytes))[0])
      .split('\n')[0]
      ?.split(',')[0];
    expect(oldFirst).toBe(String(Date.parse('2024-12-31T00:00:00Z')));

    const umZip = await getBytes(`${sim.urls('UM').archive}/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-${day}.zip`);
    const umLines = new TextDecoder()
      .decode(Object.values(unzipSync(umZip.bytes))[0])
      .trim()
      .split('\n');
    expect(umLines[0]).toBe(
      'open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore',
    );
    expect(umLines[1]?.split(',')[0]).toBe(String(dayStart));
    expect(umLines).toHaveLength(1441);

    const monthly = await getBytes(`${sim.urls('UM').archive}/data/futures/um/monthly/klines/ETHUSDT/1d/ETHUSDT-1d-2025-02.zip`);
    expect(new TextDecoder().decode(unzipSync(monthly.bytes)['ETHUSDT-1d-2025-02.csv']).trim().split('\n')).toHaveLength(1 + 28);

    // Not yet published: the day ended less than archiveDelayMs ago; no such symbol; weight free.
    const today = new Date(now).toISOString().slice(0, 10);
    const yesterday = new Date(now - 86_400_000).toISOString().slice(0, 10);
    now = Date.parse(`${today}T01:00:00Z`);
    expect((await getBytes(spotUrl.replaceAll(day, yesterday))).status).toBe(404);
    now = Date.parse(`${today}T02:00:01Z`);
    expect((await getBytes(spotUrl.replaceAll(day, yesterday))).status).toBe(200);
    expect((await getBytes(spotUrl.replaceAll('BTCUSDT', 'NOPEUSDT'))).status).toBe(404);
    expect((await getJson(`${sim.urls('SPOT').rest}/api/v3/time`)).weight).toBe(1);
  });

  it('switches archive faults on and off', async () => {
    const url = `${sim.urls('CM').archive}/data/futures/cm/daily/klines/BTCUSD_PERP/5m/BTCUSD_PERP-5m-2025-03-01.zip`;
    const good = await getBytes(url);
    const sum = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    const expected = (await getJson(`${url}.CHECKSUM`)).text.split('  ')[0];
    expect(sum(good.bytes)).toBe(expected);

    sim.faults.archiveCorrupt = true;
    expect(sum((await getBytes(url)).bytes)).not.toBe(expected);
    sim.faults.archiveCorrupt = false;
    sim.faults.archiveTruncated = true;
    const truncated = await getBytes(url);
    expect(truncated.bytes.length).toBeLessThan(good.bytes.length);
    expect(() => unzipSync(truncated.bytes)).toThrow();
    sim.faults.archiveTruncated = false;
    sim.faults.archiveChecksumMissing = true;
    expect((await getBytes(`${url}.CHECKSUM`)).status).toBe(404);
    sim.faults.archiveChecksumMissing = false;
    sim.faults.archiveMissingRows = 10;
    const short = await getBytes(url);
    expect(sum(short.bytes)).toBe((await getJson(`${url}.CHECKSUM`)).text.split('  ')[0]);
    expect(
      new TextDecoder()
        .decode(Object.values(unzipSync(short.bytes))[0])
        .trim()
        .split('\n'),
    ).toHaveLength(1 + 288 - 10);
    sim.faults.archiveMissingRows = 0;
    expect(sum((await getBytes(url)).bytes)).toBe(expected);
  });

  it('switches REST faults on and off: 5xx, malformed body, forced 429 and 418, delay', async () => {
    const url = um('time');
    sim.faults.restFailNext = 2;
    sim.faults.restFailStatus = 503;
    expect((await getJson(url)).status).toBe(503);
    expect((await getJson(url)).status).toBe(503);
    expect((await getJson(url)).status).toBe(200);

    sim.faults.restMalformedNext = 1;
    const malformed = await getJson(url);
    expect(malformed.status).toBe(200);
    expect(() => JSON.parse(malformed.text) as unknown).toThrow();
    expect((await getJson(url)).body).toEqual({ serverTime: now });

    sim.faults.forcedRetryAfterSeconds = 7;
    sim.faults.force429Next = 1;
    const limited = await getJson(url);
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('7');
    expect((await getJson(url)).status).toBe(200);

    sim.faults.force418Next = 1;
    const banned = await getJson(spot('time'));
    expect(banned.status).toBe(418);
    expect(banned.headers['retry-after']).toBe('7');
    now += 7_000;
    expect((await getJson(spot('time'))).status).toBe(200);

    sim.faults.restDelayMs = 50;
    expect((await getJson(url)).status).toBe(200);
    sim.faults.restDelayMs = 0;
  });
});

describe('simulated REST rate limits (small budget)', () => {
  let sim: SimulatedBinance;
  const spotTime = () => getJson(`${sim.urls('SPOT').rest}/api/v3/time`);
  const umKlines = () => getJson(`${sim.urls('UM').rest}/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=100`);

  beforeAll(async () => {
    now = START;
    sim = await startSim({
      clock,
      weightLimits: { spot: 5, futures: 6 },
      weightWindowMs: 10_000,
      ban: { requestsAfter429: 2, baseMs: 20_000, maxMs: 60_000 },
    });
  });
  afterAll(async () => {
    await sim.close();
  });

  it('answers 429 with Retry-After to the window end, then bans with 418 and a ban that grows (spot)', async () => {
    now = Math.floor(START / 10_000) * 10_000 + 3_000;
    for (let i = 0; i < 5; i += 1) expect((await spotTime()).status).toBe(200);
    const limited = await spotTime();
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('7');
    expect((limited.body as { code: number }).code).toBe(-1003);
    expect((await spotTime()).status).toBe(429);
    const banned = await spotTime();
    expect(banned.status).toBe(418);
    expect(banned.headers['retry-after']).toBe('20');
    expect((banned.body as { msg: string }).msg).toContain(`banned until ${now + 20_000}`);
    expect((await spotTime()).status).toBe(418);
    expect(sim.stats.requestsWhileBanned).toBe(1);

    // After the ban, a repeat offence bans for twice as long.
    now += 20_000;
    now = Math.ceil(now / 10_000) * 10_000;
    for (let i = 0; i < 5; i += 1) expect((await spotTime()).status).toBe(200);
    expect((await spotTime()).status).toBe(429);
    expect((await spotTime()).status).toBe(429);
    const second = await spotTime();
    expect(second.status).toBe(418);
    expect(second.headers['retry-after']).toBe('40');
    expect(sim.stats.count418).toBeGreaterThanOrEqual(3);
    expect(sim.stats.count429).toBeGreaterThanOrEqual(4);
  });

  it('bans futures with the end in the message and no Retry-After, across UM and CM', async () => {
    now = Math.ceil((now + 100_000) / 10_000) * 10_000;
    expect((await umKlines()).status).toBe(200);
    expect((await umKlines()).status).toBe(200);
    expect((await umKlines()).status).toBe(200);
    const limited = await getJson(`${sim.urls('CM').rest}/dapi/v1/time`);
    expect(limited.status).toBe(429);
    expect((await umKlines()).status).toBe(429);
    const banned = await umKlines();
    expect(banned.status).toBe(418);
    expect(banned.headers['retry-after']).toBeUndefined();
    const until = Number(/banned until (\d+)/.exec((banned.body as { msg: string }).msg)?.[1]);
    expect(until).toBe(now + 20_000);
    expect(sim.stats.maxWindowWeight('futures')).toBe(7);
    expect([...sim.stats.weightByWindow('futures').values()].every((w) => w <= 7)).toBe(true);
  });
});

describe('simulated exchange lifecycle', () => {
  it('close() is idempotent and leaves no server, socket or timer behind', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length;
    const sim = await startSim({ clock });
    const url = `${sim.urls('SPOT').rest}/api/v3/time`;
    expect((await getJson(url)).status).toBe(200);
    sim.faults.restDelayMs = 60_000;
    const pending = getJson(url).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await Promise.all([sim.close(), sim.close()]);
    expect(await pending).toBeInstanceOf(Error);
    await expect(getJson(url)).rejects.toThrow();
    expect(() => sim.urls('SPOT')).toThrow(/closed/);
    const after = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'Timeout').length;
    expect(after).toBeLessThanOrEqual(before);
  });
});
