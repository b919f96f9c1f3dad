import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CandleServer, type CandleServerOptions } from '../../src/candle-server.js';
import { ClosedError } from '../../src/errors.js';
import type { MarketType } from '../../src/binance/markets.js';
import type { CandleRuleInput } from '../../src/rule.js';
import type { SimulatedBinance } from '../../src/sim/index.js';
import type { CandleView } from '../../src/store/candle-view.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { startForwardingServer, startHttpProxy, startSocks5Proxy, type LoopbackProxy } from '../helpers/proxies.js';
import { simRule, startSim } from '../helpers/sim.js';
import { pause, waitFor } from '../helpers/wait.js';

/** Every captured log line as its JSON text: messages, fields and serialized errors alike. */
const logText = (log: CapturedLog): string[] => log.lines().map((line) => JSON.stringify(line));

/** The view holds every candle of its window, without a hole. */
function expectContiguous(view: CandleView, stepMs: number): void {
  expect(view.length).toBeGreaterThan(1);
  for (let i = 1; i < view.length; i += 1) expect(view.openTime(i) - view.openTime(i - 1)).toBe(stepMs);
}

let scope = 0;

describe('reaching the simulated exchange through a proxy', () => {
  let sim: SimulatedBinance | undefined;
  let dir: string;
  const servers: CandleServer[] = [];
  const proxies: LoopbackProxy[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'candle-proxy-'));
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
    for (const proxy of proxies.splice(0)) await proxy.close();
    await sim?.close();
    sim = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  // One simulator per test, so its list of accepted connections holds this test's only.
  async function simulate(market: MarketType): Promise<SimulatedBinance> {
    sim = await startSim({
      markets: [market],
      archiveDelayMs: 0,
      streams: { cadenceMs: 100, pingIntervalMs: 1000, pongTimeoutMs: 5000 },
    });
    return sim;
  }

  async function proxied(start: Promise<LoopbackProxy>): Promise<LoopbackProxy> {
    const proxy = await start;
    proxies.push(proxy);
    return proxy;
  }

  function server(
    exchange: SimulatedBinance,
    market: MarketType,
    rule: CandleRuleInput,
    extra: Partial<CandleServerOptions> = {},
  ): CandleServer {
    scope += 1;
    const created = new CandleServer({
      instType: market,
      budgetScope: `proxy-test-${scope}`,
      streams: { staleAfterMs: 1500 },
      rule: simRule(exchange, market, dir, rule),
      ...extra,
    });
    servers.push(created);
    return created;
  }

  /**
   * Every TCP connection the simulator accepted came out of the proxy, and every connection the
   * proxy carried reached the simulator. Both run in this process on loopback, so the peer port
   * the simulator sees on accept is the local port of the connecting socket: a proxy's outbound
   * socket, or, for a connection that leaked around the proxy, one of the CandleServer's own.
   * A local port belongs to one open socket at a time, so the two lists of ports are equal as
   * multisets exactly when nothing leaked (a leaked connection that reused the port of a closed
   * proxied one still adds a second entry on the simulator's side only). A bare count would not
   * do: one leak and one proxied connection that failed to reach the simulator would cancel out.
   * Call it once the CandleServer is closed, so no connection is still being made.
   */
  async function expectOnlyProxiedConnections(exchange: SimulatedBinance, market: MarketType, proxy: LoopbackProxy): Promise<void> {
    const simPorts = () =>
      exchange
        .acceptedConnections(market)
        .map((c) => c.remotePort)
        .sort((a, b) => a - b);
    const proxyPorts = () => [...proxy.outboundLocalPorts].sort((a, b) => a - b);
    // Accept on one side and connect on the other are separate events: let both land.
    await waitFor(() => JSON.stringify(simPorts()) === JSON.stringify(proxyPorts()), 2000);
    expect(simPorts().length).toBeGreaterThan(0);
    expect(simPorts()).toEqual(proxyPorts());
    const { host } = new URL(exchange.urls(market).rest);
    expect(new Set(proxy.targets)).toEqual(new Set([host]));
  }

  /** Archive files the simulator served (200) for `market`. */
  function archivesServed(exchange: SimulatedBinance): number {
    let served = 0;
    for (const [path, byStatus] of exchange.stats.requests()) {
      if (path.startsWith('/data/') && !path.endsWith('.CHECKSUM')) served += byStatus.get(200) ?? 0;
    }
    return served;
  }

  it.each([
    ['an HTTP CONNECT proxy', () => startHttpProxy()],
    ['a SOCKS5 proxy', () => startSocks5Proxy()],
  ])('a cold start, the archive back-fill and the live streams all go through %s', async (_name, start) => {
    const exchange = await simulate('UM');
    const proxy = await proxied(start());
    const log = captureLog('info');
    const um = server(
      exchange,
      'UM',
      { PROXY: proxy.url, BAR: '1m', LENGTH: 120, TIMEZONE: 'UTC', LOCAL_CANDLE_DAYS: 1, USE_ARCHIVES: true },
      { logger: log.logger },
    );
    await um.runCandleMap();
    // Yesterday's daily files came from the archives, through the proxy.
    expect(log.messages().filter((m) => m.startsWith('COMPLETE DOWNLOAD'))).toEqual([expect.stringMatching(/ERROR:0\)$/)]);
    expect(archivesServed(exchange)).toBeGreaterThan(0);
    // Live: the forming candles keep changing over the kline streams.
    const updates = um.stats().sync.streamUpdates;
    expect(await waitFor(() => um.stats().sync.streamUpdates >= updates + 10, 10_000)).toBe(true);
    expect(exchange.streams('UM').stats.connectionsTotal).toBeGreaterThan(0);
    for (const symbol of ['BTCUSDT', 'ETHUSDT']) {
      const view = um.getCandleSecurity(symbol, 120, { copy: true });
      expect(view.length).toBe(120);
      expectContiguous(view, 60_000);
    }
    await um.close();
    expect(proxy.connections).toBeGreaterThan(0);
    await expectOnlyProxiedConnections(exchange, 'UM', proxy);
  });

  it('with wrong proxy credentials keeps retrying and says which proxy refused, without the password', async () => {
    const exchange = await simulate('SPOT');
    const proxy = await proxied(startHttpProxy({ auth: { username: 'candle', password: 'right-pass-8c1f' } }));
    const wrongUrl = `http://candle:wrong-pass-5e2d@127.0.0.1:${proxy.port}`;
    const redacted = `http://***@127.0.0.1:${proxy.port}`;
    const log = captureLog('debug');
    const spot = server(exchange, 'SPOT', { PROXY: wrongUrl, SYMBOLS: ['BTCUSDT'] }, { logger: log.logger });
    let settled = false;
    const run = spot.runCandleMap().finally(() => {
      settled = true;
    });
    run.catch(() => undefined);
    // The proxy answers 407 to each attempt; the server names it, redacted, and tries again.
    expect(await waitFor(() => proxy.accepted >= 2 && logText(log).some((line) => line.includes(redacted)), 10_000)).toBe(true);
    // A warning or error that says the proxy refused (407) and which proxy it was.
    const failures = log
      .lines()
      .filter((line) => (line.level as number) >= 40)
      .map((line) => JSON.stringify(line));
    expect(failures.some((line) => line.includes(redacted) && line.includes('407'))).toBe(true);
    expect(logText(log).filter((line) => line.includes('wrong-pass-5e2d') || line.includes('right-pass-8c1f'))).toEqual([]);
    expect(settled).toBe(false);
    // Refused by the proxy means nothing reached the exchange, and nothing went around the proxy.
    expect(proxy.connections).toBe(0);
    expect(exchange.acceptedConnections('SPOT')).toEqual([]);
    await spot.close();
    await expect(run).rejects.toThrow(ClosedError);

    const rightLog = captureLog('debug');
    const served = server(exchange, 'SPOT', { PROXY: proxy.url, SYMBOLS: ['BTCUSDT'] }, { logger: rightLog.logger });
    await served.runCandleMap();
    expect(await waitFor(() => served.getCandleSecurity('BTCUSDT', 5).length === 60, 5000)).toBe(true);
    expect(logText(rightLog).filter((line) => line.includes('right-pass-8c1f'))).toEqual([]);
    await served.close();
    expect(proxy.connections).toBeGreaterThan(0);
    await expectOnlyProxiedConnections(exchange, 'SPOT', proxy);
  });

  it('when the proxy goes away mid-run, streams and REST come back through it without a hole', async () => {
    const exchange = await simulate('SPOT');
    const proxy = await proxied(startHttpProxy());
    const log = captureLog('info');
    const spot = server(exchange, 'SPOT', { PROXY: proxy.url, SYMBOLS: ['BTCUSDT'] }, { logger: log.logger });
    await spot.runCandleMap();
    expect(await waitFor(() => spot.stats().sync.streamUpdates > 4 && !spot.getCandleSecurity('BTCUSDT', 2).isEmpty)).toBe(true);
    const carriedBefore = proxy.connections;
    const streamsBefore = exchange.streams('SPOT').stats.connectionsTotal;
    const stoppedAt = exchange.world.now();
    await proxy.stop();
    await pause(3000);
    // The failures name the proxy (no credentials here, so its plain address).
    expect(logText(log).some((line) => line.includes(proxy.url))).toBe(true);
    await proxy.restart();
    const restartedAt = exchange.world.now();
    // REST may repair the ring before the stream's back-off lets it reconnect: wait for both.
    expect(
      await waitFor(() => {
        const status = spot.status('BTCUSDT', 2);
        const fresh = status.state === 'fresh' && (status.newestOpenTime ?? 0) >= restartedAt - 1000;
        return (
          fresh && exchange.streams('SPOT').stats.connectionsOpen > 0 && exchange.streams('SPOT').stats.connectionsTotal > streamsBefore
        );
      }, 15_000),
    ).toBe(true);
    // Streams reconnected, through the proxy: it carried new connections (checked one by one below).
    expect(proxy.connections).toBeGreaterThan(carriedBefore);
    const updates = spot.stats().sync.streamUpdates;
    expect(await waitFor(() => spot.stats().sync.streamUpdates > updates + 4, 5000)).toBe(true);
    // No hole: the ring spans the outage and every second of it is there, as the exchange has it.
    // (Read while served: a 1s candle may be between its close and its confirmation at any instant.)
    expect(await waitFor(() => !spot.getCandleSecurity('BTCUSDT', 30).isEmpty, 5000)).toBe(true);
    const view = spot.getCandleSecurity('BTCUSDT', 30, { copy: true });
    expect(view.length).toBe(60);
    expect(view.openTime(0)).toBeLessThan(stoppedAt - 1000);
    expectContiguous(view, 1000);
    const now = exchange.world.now();
    for (let i = 0; i < view.length - 1; i += 1) {
      if ((view.at(i)[6] as number) >= now) break;
      expect(Array.from(view.at(i))).toEqual(exchange.world.kline('SPOT', 'BTCUSDT', '1s', view.openTime(i), now)?.map(Number));
    }
    await spot.close();
    await expectOnlyProxiedConnections(exchange, 'SPOT', proxy);
  });

  it('reaches the exchange through a forwarding server named by proxyHost, REST and streams alike', async () => {
    const exchange = await simulate('UM');
    const forwarder = await startForwardingServer(exchange.urls('UM').rest);
    try {
      // No REST_BASE_URL / WS_BASE_URL: proxyHost decides where the market is reached.
      const rule: Record<string, unknown> = { ...simRule(exchange, 'UM', dir, { SYMBOLS: ['BTCUSDT'], BAR: '1m', LENGTH: 120 }) };
      delete rule.REST_BASE_URL;
      delete rule.WS_BASE_URL;
      scope += 1;
      const um = new CandleServer({ instType: 'UM', budgetScope: `proxy-test-${scope}`, rule, proxyHost: forwarder.url });
      servers.push(um);
      await um.runCandleMap();
      expect(await waitFor(() => um.stats().sync.streamUpdates > 4 && !um.getCandleSecurity('BTCUSDT', 120).isEmpty)).toBe(true);
      // REST went with Binance's own paths, the streams under /ws-um (UM's /market route after it).
      expect(forwarder.requests).toContain('/fapi/v1/exchangeInfo');
      expect(forwarder.requests).toContain('/fapi/v1/klines');
      expect(forwarder.upgrades.length).toBeGreaterThan(0);
      expect(forwarder.upgrades.every((path) => path.startsWith('/ws-um/market/stream'))).toBe(true);
      await um.close();
    } finally {
      await forwarder.close();
    }
  });
});
