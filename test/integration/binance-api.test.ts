/**
 * Binance's own market-data paths on a CandleServer's HTTP API, for SPOT, UM and CM, against the
 * simulator's own replies: rows, strings and order equal; errors with the same status, code and
 * message; "0 weight from memory" proven by the simulator's request counters; forwarded requests
 * counted in the server's weight accounting; 418, 429 and 503 answered without asking Binance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKETS, type MarketType } from '../../src/binance/markets.js';
import { DAY, FIRST_SYMBOL, MINUTE, SECOND_SYMBOL, startFacade, todayStart, type Facade } from '../helpers/facade.js';
import { getJson, type SimReply } from '../helpers/sim.js';
import { pause, waitFor } from '../helpers/wait.js';

/** What one request did: our reply, the simulator's, and how many klines requests the simulator received for ours. */
interface Compared {
  readonly ours: SimReply;
  readonly theirs: SimReply;
  readonly sentUpstream: number;
}

describe.each(['SPOT', 'UM', 'CM'] as const)('Binance paths of a %s server', (market: MarketType) => {
  const symbol = FIRST_SYMBOL[market];
  const unfollowed = SECOND_SYMBOL[market];
  const paths = MARKETS[market].paths;
  const maxLimit = MARKETS[market].klinesMaxLimit;
  let facade: Facade;

  beforeAll(async () => {
    // Limits low enough for the budget test to fill a window; the comparisons stay far below.
    facade = await startFacade(market, { sim: { weightLimits: { spot: 1200, futures: 800 } } });
  }, 60_000);

  afterAll(async () => {
    await facade?.close();
  });

  /** GETs `query` from the server and then from the simulator. */
  const compare = async (endpoint: string, query: string): Promise<Compared> => {
    const before = facade.sim.stats.requestsTo(paths.klines);
    const ours = await getJson(`${facade.base}/${endpoint}?${query}`);
    const sentUpstream = facade.sim.stats.requestsTo(paths.klines) - before;
    const theirs = await getJson(`${facade.simBase}/${endpoint}?${query}`);
    return { ours, theirs, sentUpstream };
  };

  /** Klines equal to the simulator's, byte for byte, served from memory (nothing sent upstream, weight 0). */
  const expectFromMemory = async (query: string): Promise<Compared> => {
    const compared = await compare('klines', query);
    expect(compared.ours.status, query).toBe(200);
    expect(compared.ours.text, query).toBe(compared.theirs.text);
    expect(compared.sentUpstream, `${query} sent upstream`).toBe(0);
    expect(compared.ours.weight, query).toBe(0);
    return compared;
  };

  /** The range forms of a query inside the ring: [startTime, endTime] around minutes ago. */
  const inRing = (fromMinutesAgo: number, toMinutesAgo: number): string => {
    const now = Math.floor(Date.now() / MINUTE) * MINUTE;
    return `startTime=${now - fromMinutesAgo * MINUTE}&endTime=${now - toMinutesAgo * MINUTE}`;
  };

  it('answers klines held in the ring as the exchange does, at no weight: default limit, limit, ranges, endTime only', async () => {
    await facade.heldStill(async () => {
      const all = await expectFromMemory(`symbol=${symbol}&interval=1m`);
      expect(JSON.parse(all.ours.text)).toHaveLength(500);
      await expectFromMemory(`symbol=${symbol}&interval=1m&limit=7`);
      await expectFromMemory(`symbol=${symbol}&interval=1m&limit=${maxLimit}`);
      await expectFromMemory(`symbol=${symbol}&interval=1m&${inRing(90, 30)}`);
      await expectFromMemory(`symbol=${symbol}&interval=1m&${inRing(90, 30)}&limit=10`);
      await expectFromMemory(`symbol=${symbol}&interval=1m&startTime=${Date.now() - 20 * MINUTE + 123}`);
      await expectFromMemory(`symbol=${symbol}&interval=1m&endTime=${Date.now() - 45 * MINUTE}&limit=12`);
      // Unknown parameters are ignored, as Binance ignores them.
      await expectFromMemory(`symbol=${symbol}&interval=1m&limit=3&foo=bar`);
      if (market === 'SPOT') await expectFromMemory(`symbol=${symbol}&interval=1m&limit=3&timeZone=0`);
    });
    // The same request twice: the closed rows are printed once.
    const { hits } = facade.binance.stats().cache;
    await facade.heldStill(async () => {
      await expectFromMemory(`symbol=${symbol}&interval=1m&limit=50`);
      await expectFromMemory(`symbol=${symbol}&interval=1m&limit=50`);
    });
    expect(facade.binance.stats().cache.hits).toBeGreaterThan(hits);
  });

  it('answers an older range from the daily files, and one that joins a file to the ring, at no weight', async () => {
    const yesterday = todayStart() - DAY;
    const filesBefore = facade.binance.stats().fromFiles;
    await facade.heldStill(async () => {
      const noon = yesterday + 12 * 60 * MINUTE;
      const files = await expectFromMemory(`symbol=${symbol}&interval=1m&startTime=${noon}&endTime=${noon + 99 * MINUTE}`);
      expect(JSON.parse(files.ours.text)).toHaveLength(100);
      await expectFromMemory(`symbol=${symbol}&interval=1m&startTime=${noon}&endTime=${noon + 999 * MINUTE}&limit=1000`);
      // Half from yesterday's file, half from the ring.
      const ringOldest = facade.server.getCandleSecurity(symbol, 240).oldestOpenTime ?? 0;
      expect(ringOldest).toBeGreaterThan(yesterday);
      const seam = await expectFromMemory(
        `symbol=${symbol}&interval=1m&startTime=${ringOldest - 30 * MINUTE}&endTime=${ringOldest + 29 * MINUTE}`,
      );
      expect(JSON.parse(seam.ours.text)).toHaveLength(60);
      if (market !== 'CM') await expectFromMemory(`symbol=${symbol}&interval=1m&startTime=${noon}&limit=25`);
      await expectFromMemory(`symbol=${symbol}&interval=1m&endTime=${noon}&limit=25`);
    });
    expect(facade.binance.stats().fromFiles).toBe(filesBefore + (market === 'CM' ? 4 : 5));
  });

  it('forwards what it does not hold (an older range, another symbol, another interval): the reply verbatim, in the weight accounting', async () => {
    const old = todayStart() - 3 * DAY + 7 * 60 * MINUTE;
    const queries = [
      `symbol=${symbol}&interval=1m&startTime=${old}&endTime=${old + 9 * MINUTE}`,
      `symbol=${unfollowed}&interval=1m&limit=5`,
      `symbol=${symbol}&interval=1h&limit=3`,
    ];
    for (const query of queries) {
      const counted = facade.server.stats().requests.get(`${paths.klines} 200`) ?? 0;
      const forwarded = facade.binance.stats().forwarded;
      const compared = await facade.heldStill(() => compare('klines', query));
      expect(compared.ours.status, query).toBe(200);
      expect(compared.ours.text, query).toBe(compared.theirs.text);
      expect(compared.sentUpstream, query).toBe(1);
      expect(facade.server.stats().requests.get(`${paths.klines} 200`), query).toBe(counted + 1);
      expect(facade.binance.stats().forwarded).toBe(forwarded + 1);
      // The weight this IP has used in the window, as the server's budget counts it.
      expect(compared.ours.weight, query).toBeGreaterThan(0);
      expect(compared.ours.weight).toBeLessThanOrEqual(facade.server.stats().weight.used);
    }
  });

  it('refuses bad requests with the exchange own status, code and message', async () => {
    const now = Date.now();
    const queries = [
      '',
      `symbol=${symbol}`,
      'interval=1m',
      `symbol=${symbol.toLowerCase()}&interval=1m`,
      `symbol=${symbol}&interval=2m`,
      `symbol=${symbol}&interval=1m&limit=0`,
      `symbol=${symbol}&interval=1m&limit=${maxLimit + 1}`,
      `symbol=${symbol}&interval=1m&limit=abc`,
      `symbol=${symbol}&interval=1m&startTime=-5`,
      `symbol=${symbol}&interval=1m&startTime=${now}&endTime=${now - MINUTE}`,
      `symbol=${symbol}&interval=1m&startTime=${now - 300 * DAY}&endTime=${now}`,
      `symbol=NOSUCHPAIR&interval=1m`,
      `symbol=${symbol}&interval=1m&timeZone=abc`,
      `symbol=${symbol}&interval=1s`,
    ];
    // Held still: those the exchange accepts (forwarded) compare row for row too.
    await facade.heldStill(async () => {
      for (const query of queries) {
        const { ours, theirs } = await compare('klines', query);
        expect([ours.status, ours.text], query).toEqual([theirs.status, theirs.text]);
      }
    });
    // Those the server can judge itself cost nothing.
    const local = await compare('klines', `symbol=${symbol}&interval=1m&limit=0`);
    expect([local.ours.body, local.ours.weight, local.sentUpstream]).toEqual([
      { code: -1130, msg: "Data sent for parameter 'limit' is not valid." },
      0,
      0,
    ]);
  });

  it('answers time, ping and exchangeInfo from memory, exchangeInfo whole with serverTime current', async () => {
    const before = facade.sim.stats.totalRequests;
    const time = await getJson(`${facade.base}/time`);
    expect(time.status).toBe(200);
    expect(Math.abs((time.body as { serverTime: number }).serverTime - Date.now())).toBeLessThan(2000);
    expect(await getJson(`${facade.base}/ping`)).toMatchObject({ status: 200, body: {}, weight: 0 });
    const spotHeld = 'permissions=SPOT&symbolStatus=TRADING&showPermissionSets=false';
    const both = encodeURIComponent(JSON.stringify([symbol, unfollowed]));
    const queries = market === 'SPOT' ? ['', spotHeld, `symbol=${symbol}`, `symbols=${both}`] : ['', `symbol=${symbol}`];
    const ours: SimReply[] = [];
    for (const query of queries) ours.push(await getJson(`${facade.base}/exchangeInfo?${query}`));
    expect(facade.sim.stats.totalRequests).toBe(before);
    for (const [i, query] of queries.entries()) {
      const theirs = await getJson(`${facade.simBase}/exchangeInfo?${query}`);
      const reply = ours[i] as SimReply;
      expect(reply.status).toBe(200);
      expect(reply.weight).toBe(0);
      const body = reply.body as { serverTime: number; symbols: Array<Record<string, unknown>> };
      expect(Math.abs(body.serverTime - Date.now())).toBeLessThan(2000);
      const expected = theirs.body as { serverTime: number; symbols: Array<Record<string, unknown>> };
      // SPOT holds the shrunk document the universe reads: no permission sets.
      const withoutSets = (doc: typeof body) => ({
        ...doc,
        serverTime: 0,
        symbols: doc.symbols.map((s) => ({ ...s, permissionSets: [] })),
      });
      expect(withoutSets(body), query).toEqual(withoutSets(expected));
      if (market !== 'SPOT' || query === spotHeld) expect({ ...body, serverTime: 0 }).toEqual({ ...expected, serverTime: 0 });
    }
    // What it does not hold goes to the exchange; bad queries get the exchange's errors.
    if (market === 'SPOT') {
      const forwarded = facade.sim.stats.requestsTo(paths.exchangeInfo);
      const breaks = await getJson(`${facade.base}/exchangeInfo?symbolStatus=BREAK`);
      expect([breaks.status, (breaks.body as { symbols: unknown[] }).symbols]).toEqual([200, []]);
      expect(facade.sim.stats.requestsTo(paths.exchangeInfo)).toBe(forwarded + 1);
      for (const query of ['symbolStatus=NOPE', 'symbol=btcusdt', `symbol=${symbol}&symbolStatus=TRADING`, 'symbols=BTCUSDT']) {
        const [mine, theirs] = [
          await getJson(`${facade.base}/exchangeInfo?${query}`),
          await getJson(`${facade.simBase}/exchangeInfo?${query}`),
        ];
        expect([mine.status, mine.text], query).toEqual([theirs.status, theirs.text]);
      }
    }
  });

  it('answers HEAD like GET without a body, other methods with 405, unknown paths with 404 in Binance shape, and passes other market-data paths on', async () => {
    const url = `${facade.base}/klines?symbol=${symbol}&interval=1m&limit=5`;
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(500);
    expect(head.headers.get('x-mbx-used-weight-1m')).toBe('0');
    const post = await fetch(url, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect(await post.json()).toEqual({ code: -1020, msg: expect.stringMatching(/Method POST .*expected GET or HEAD/) });
    const unknown = await getJson(`${facade.base}/nosuchpath?symbol=${symbol}`);
    expect([unknown.status, (unknown.body as { code: number }).code]).toEqual([404, -1020]);
    expect((unknown.body as { msg: string }).msg).toContain(`passes on ${facade.binance.prefix}/depth`);
    // Other public market-data paths are passed on (the simulator has none: its 404 page comes back as it is).
    const forwarded = facade.binance.stats().forwarded;
    const depth = await getJson(`${facade.base}/depth?symbol=${symbol}&limit=5`);
    const direct = await getJson(`${facade.simBase}/depth?symbol=${symbol}&limit=5`);
    expect([depth.status, depth.text, depth.headers['content-type']]).toEqual([direct.status, direct.text, direct.headers['content-type']]);
    expect(facade.binance.stats().forwarded).toBe(forwarded + 1);
    expect(facade.server.stats().requests.get(`${facade.binance.prefix}/depth 404`)).toBe(1);
    const otherMarket = market === 'SPOT' ? '/fapi/v1/klines' : '/api/v3/klines';
    const wrong = await getJson(`${facade.api.url}${otherMarket}?symbol=${symbol}&interval=1m`);
    expect(wrong.status).toBe(404);
    expect((wrong.body as { msg: string }).msg).toContain(`this candle-server follows ${market}`);
  });

  it('answers 503 -1008 while the symbol is not fresh, saying why, and serves closed days from the files meanwhile', async () => {
    const noon = todayStart() - DAY + 12 * 60 * MINUTE;
    const forwarded = facade.binance.stats().forwarded;
    // A dead stream, and an exchange slow to answer the repair: the hole stays open for seconds.
    facade.sim.faults.restDelayMs = 4000;
    facade.sim.stallStreams(true);
    try {
      // The watchdog finds the dead stream within staleAfterMs; the repair waits for the slow REST.
      let stale: SimReply | undefined;
      const deadline = Date.now() + 15_000;
      while (stale === undefined && Date.now() < deadline) {
        const reply = await getJson(`${facade.base}/klines?symbol=${symbol}&interval=1m&limit=5`);
        if (reply.status === 503) stale = reply;
        else await pause(50);
      }
      expect(stale?.body).toEqual({ code: -1008, msg: expect.stringContaining(`${symbol} 1m is not served while not fresh`) });
      expect(stale?.weight).toBe(0);
      const files = await getJson(`${facade.base}/klines?symbol=${symbol}&interval=1m&startTime=${noon}&endTime=${noon + 9 * MINUTE}`);
      expect([files.status, (files.body as unknown[]).length]).toEqual([200, 10]);
      expect(facade.binance.stats().forwarded).toBe(forwarded);
    } finally {
      facade.sim.stallStreams(false);
      facade.sim.faults.restDelayMs = 0;
    }
    expect(await waitFor(() => facade.server.status(symbol, 240).state === 'fresh', 20_000)).toBe(true);
  });

  it('during an IP ban answers 418 with its end and sends nothing upstream; klines in memory are still served', async () => {
    const query = `symbol=${unfollowed}&interval=1m&limit=5`;
    facade.sim.faults.forcedRetryAfterSeconds = 3;
    facade.sim.faults.force418Next = 1;
    // The exchange bans the IP on a forwarded request: its 418 is passed on, and the budget stops.
    const first = await getJson(`${facade.base}/klines?${query}`);
    expect([first.status, (first.body as { code: number }).code]).toEqual([418, -1003]);
    const bannedUntil = facade.server.stats().weight.bannedUntil ?? 0;
    expect(bannedUntil).toBeGreaterThan(Date.now());
    const sent = facade.sim.stats.totalRequests;
    const again = await getJson(`${facade.base}/klines?${query}`);
    expect(again.status).toBe(418);
    expect(again.body).toEqual({ code: -1003, msg: expect.stringContaining(`banned until ${bannedUntil}`) });
    const retryAfter = Number(again.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(4);
    if (market === 'SPOT') expect((await getJson(`${facade.base}/exchangeInfo?symbolStatus=BREAK`)).status).toBe(418);
    const held = await getJson(`${facade.base}/klines?symbol=${symbol}&interval=1m&limit=5`);
    expect([held.status, held.weight]).toEqual([200, 0]);
    expect(facade.sim.stats.totalRequests).toBe(sent);
    expect(facade.sim.stats.requestsWhileBanned).toBe(0);
    expect(facade.binance.stats().refused418).toBeGreaterThanOrEqual(1);
    // Bounded: the ban lasts 3 s plus the client's slack.
    expect(await waitFor(() => facade.server.stats().weight.bannedUntil === undefined, 10_000)).toBe(true);
    await pause(200);
  });

  it('with no room left in the budget answers 429 with Retry-After, never exceeding the exchange limit', async () => {
    const query = `symbol=${unfollowed}&interval=1m&limit=${maxLimit}`;
    let refused: SimReply | undefined;
    // The forwarded weight is bounded by the budget: a window holds at most limit / 2 of these.
    for (let i = 0; i < 700 && refused === undefined; i += 1) {
      const reply = await getJson(`${facade.base}/klines?${query}`);
      if (reply.status === 429) refused = reply;
      else expect(reply.status).toBe(200);
    }
    expect(refused?.body).toEqual({
      code: -1003,
      msg: expect.stringMatching(/^Too much request weight used; candle-server forwards within/),
    });
    const retryAfter = Number(refused?.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const sent = facade.sim.stats.requestsTo(paths.klines);
    expect((await getJson(`${facade.base}/klines?${query}`)).status).toBe(429);
    expect(facade.sim.stats.requestsTo(paths.klines)).toBe(sent);
    expect(facade.sim.stats.count429).toBe(0);
    const weight = facade.server.stats().weight;
    expect(weight.used).toBeLessThanOrEqual(weight.budget);
    // Klines in memory cost nothing and are still served.
    const held = await getJson(`${facade.base}/klines?symbol=${symbol}&interval=1m&limit=5`);
    expect([held.status, held.weight]).toEqual([200, 0]);
  });
});

describe('Binance paths with FORWARD_KLINES false', () => {
  let facade: Facade;

  beforeAll(async () => {
    facade = await startFacade('UM', { rule: { FORWARD_KLINES: false } });
  }, 60_000);

  afterAll(async () => {
    await facade?.close();
  });

  it('answers what it does not hold with a 400 in Binance shape saying what it holds, and sends nothing', async () => {
    const sent = facade.sim.stats.requestsTo('/fapi/v1/klines');
    const other = await getJson(`${facade.base}/klines?symbol=ETHUSDT&interval=1m`);
    expect(other.status).toBe(400);
    expect(other.body).toEqual({ code: -1020, msg: expect.stringContaining('FORWARD_KLINES is false') });
    const msg = (other.body as { msg: string }).msg;
    expect(msg).toContain('ETHUSDT is not followed by this server');
    expect(msg).toContain('It holds 1 UM symbols (GET /symbols lists them) in 1m');
    expect(msg).toContain('no daily files of ETHUSDT on disk');
    const old = todayStart() - 3 * DAY;
    const older = await getJson(`${facade.base}/klines?symbol=BTCUSDT&interval=1m&startTime=${old}&limit=5`);
    expect(older.status).toBe(400);
    const olderMsg = (older.body as { msg: string }).msg;
    expect(olderMsg).toMatch(/no complete daily file of \d{4}-\d{2}-\d{2}/);
    expect(olderMsg).toMatch(/BTCUSDT 1m in memory: \d+ candles from about/);
    expect(olderMsg).toMatch(/daily files of BTCUSDT 1m on disk for 1 local days \(UTC\)/);
    expect(facade.sim.stats.requestsTo('/fapi/v1/klines')).toBe(sent);
    // What it holds is still served.
    expect((await getJson(`${facade.base}/klines?symbol=BTCUSDT&interval=1m&limit=3`)).status).toBe(200);
  });
});
