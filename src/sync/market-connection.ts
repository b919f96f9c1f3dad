/**
 * Everything that talks to one market for a CandleRule: the REST client, the archive client, the
 * exchange clock and the process-wide weight budget it spends from. Several connections in one
 * process (a SPOT and a UM server, or a download beside a running server) share one budget per
 * group, so together they never spend more than SERVER_WEIGHT of the IP's limit.
 *
 * @example
 * ```ts
 * const connection = new MarketConnection({ rule });
 * const info = await connection.start(signal); // clock synced, REQUEST_WEIGHT read from exchangeInfo
 * const rows = await connection.rest.klines({ symbol: 'BTCUSDT', interval: '1m' });
 * await connection.close();
 * ```
 */
import { join } from 'node:path';
import { ArchiveClient } from '../exchange/archive-client.js';
import { BanStore } from '../exchange/ban-store.js';
import { MARKETS } from '../binance/markets.js';
import { BinanceRestClient, type ExchangeInfo } from '../exchange/rest-client.js';
import { ServerClock } from '../exchange/server-clock.js';
import { sharedGovernor, WeightGovernor } from '../exchange/weight-governor.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { resolveEndpoints, type CandleRule } from '../rule.js';
import { proxyFor, redactProxyUrl, type ProxyMap } from '../exchange/proxy.js';
import { processWide } from '../util/process-wide.js';

/** Name of the file in CACHE_DIR that remembers IP bans across restarts. */
export const BAN_FILE_NAME = 'bans.json';

/** Options of {@link MarketConnection}. */
export interface MarketConnectionOptions {
  readonly rule: CandleRule;
  readonly logger?: Logger;
  /**
   * Keeps this connection's weight budget apart from other connections' in the same process.
   * Only for tests that run several simulated exchanges at once: on a real IP every connection of
   * a budget group must share one budget, which is the default.
   */
  readonly budgetScope?: string;
  /** Weight window in ms (60 000 on Binance); tests against a simulator with shorter windows set it. */
  readonly weightWindowMs?: number;
  /** Time-out of one REST request, in ms. */
  readonly requestTimeoutMs?: number;
  /**
   * Proxies per target scheme (the original's `proxies`); the rule's PROXY, when set, is used for
   * every connection instead.
   */
  readonly proxies?: ProxyMap | undefined;
  /** A forwarding server in front of every market's REST and stream paths (the original's `proxy_host`). */
  readonly proxyHost?: string | undefined;
}

// How many open connections use each shared governor: the last one to close closes it.
const governorUsers = processWide('governor-users', () => new Map<WeightGovernor, number>());

/** REST, archives, clock and weight budget of one market. */
export class MarketConnection {
  readonly rule: CandleRule;
  readonly rest: BinanceRestClient;
  /** Undefined when USE_ARCHIVES is off or the bar has no daily archives. */
  readonly archives: ArchiveClient | undefined;
  readonly clock: ServerClock;
  readonly governor: WeightGovernor;
  /** REST exchanges so far, keyed `endpoint status` (status 0: no usable reply), for metrics. */
  readonly requests = new Map<string, number>();
  /** Where the market's REST, streams and archives are reached (a forwarding server's when one is set). */
  readonly endpoints: { readonly rest: string; readonly ws: string; readonly archive: string };
  /** The proxy of each kind of connection; undefined = direct. */
  readonly proxies: { readonly rest: URL | undefined; readonly ws: URL | undefined; readonly archive: URL | undefined };
  readonly #logger: Logger;
  #closed: Promise<void> | undefined;

  constructor(options: MarketConnectionOptions) {
    const { rule } = options;
    this.rule = rule;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'connection', market: rule.MARKET });
    const endpoints = resolveEndpoints(rule, options.proxyHost);
    this.endpoints = endpoints;
    const proxyMap: ProxyMap | undefined = rule.PROXY === null ? options.proxies : { all: rule.PROXY };
    this.proxies = {
      rest: proxyFor(endpoints.rest, proxyMap),
      ws: proxyFor(endpoints.ws, proxyMap),
      archive: proxyFor(endpoints.archive, proxyMap),
    };
    const group = MARKETS[rule.MARKET].budgetGroup;
    this.clock = new ServerClock({ fetchServerTime: (signal) => this.rest.time(signal ? { signal } : {}) });
    const clock = this.clock;
    this.governor = sharedGovernor(
      { group, ...(options.budgetScope === undefined ? {} : { scope: options.budgetScope }) },
      () =>
        new WeightGovernor({
          name: group,
          serverWeight: rule.SERVER_WEIGHT,
          now: () => clock.now(),
          banStore: new BanStore(join(rule.CACHE_DIR, BAN_FILE_NAME), { logger: this.#logger }),
          logger: options.logger ?? silentLogger(),
          ...(options.weightWindowMs === undefined ? {} : { windowMs: options.weightWindowMs }),
        }),
    );
    governorUsers.set(this.governor, (governorUsers.get(this.governor) ?? 0) + 1);
    this.rest = new BinanceRestClient({
      market: rule.MARKET,
      baseUrl: endpoints.rest,
      governor: this.governor,
      clock: this.clock,
      logger: options.logger ?? silentLogger(),
      onResponse: (endpoint, status) => {
        const key = `${endpoint} ${status}`;
        this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
      },
      ...(options.requestTimeoutMs === undefined ? {} : { timeoutMs: options.requestTimeoutMs }),
      proxy: this.proxies.rest,
    });
    this.archives = rule.USE_ARCHIVES
      ? new ArchiveClient({
          market: rule.MARKET,
          baseUrl: endpoints.archive,
          logger: options.logger ?? silentLogger(),
          proxy: this.proxies.archive,
        })
      : undefined;
    const shown = (url: URL | undefined): string => (url === undefined ? 'direct' : redactProxyUrl(url));
    if (this.proxies.rest !== undefined || this.proxies.ws !== undefined || this.proxies.archive !== undefined) {
      this.#logger.info(
        { rest: shown(this.proxies.rest), streams: shown(this.proxies.ws), archives: shown(this.proxies.archive) },
        'reaching the exchange through a proxy',
      );
    }
  }

  /**
   * Measures the exchange clock and reads exchangeInfo, whose REQUEST_WEIGHT limit becomes the
   * budget's. Resolves with the exchangeInfo read.
   */
  async start(signal?: AbortSignal): Promise<ExchangeInfo> {
    const sample = await this.clock.sync(signal ? { signal } : {});
    const info = await this.rest.exchangeInfo(signal ? { signal } : {});
    this.#logger.info(
      { offsetMs: this.clock.offsetMs, rttMs: sample.rttMs, budget: this.governor.budget, limit: this.governor.limit },
      'connected: exchange clock measured, weight budget set',
    );
    return info;
  }

  /** Closes the clients; the shared budget closes with its last user. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await Promise.all([this.rest.close(), this.archives?.close()]);
      const users = (governorUsers.get(this.governor) ?? 1) - 1;
      if (users <= 0) {
        governorUsers.delete(this.governor);
        this.governor.close();
      } else {
        governorUsers.set(this.governor, users);
      }
    })();
    return this.#closed;
  }
}
