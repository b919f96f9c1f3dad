/**
 * The candle server of one market: its lifecycle, and the wiring of the parts (connection,
 * universe, daily files, candle map, sync engine, streams, snapshots). It knows nothing of
 * parsing or transport; each part does.
 *
 * Lifecycle: the constructor only validates. `runCandleMap()` (idempotent) back-fills the daily
 * files, fills every ring (snapshot, then daily files, then REST) and resolves when every symbol
 * is ready; live updates then flow from the streams (or the REST sweep in REST-only mode).
 * `close()` stops work, writes a final snapshot and closes sockets; `destroy()` stops at once.
 *
 * @example
 * ```ts
 * import { CandleServer, getCandleSecurity } from 'candle-server';
 *
 * const server = new CandleServer({ instType: 'SPOT', rule: { SYMBOLS: ['BTCUSDT', 'ETHUSDT'], LENGTH: 1440 } });
 * await server.runCandleMap();
 * const candles = server.getCandleSecurity('BTCUSDT', 180); // zero-copy; read it synchronously
 * if (!candles.isEmpty) console.log(candles.close(candles.length - 1));
 * getCandleSecurity('BTCUSDT', 180);                       // the same, from anywhere in the process
 * await server.close();
 * ```
 */
import {
  BannedError,
  ClosedError,
  ConfigError,
  type ConfigIssue,
  ExchangeError,
  InvalidArgumentError,
  MalformedResponseError,
  NetworkError,
  TimeoutError,
} from './errors.js';
import { KlineStreams, type StreamEvent } from './exchange/kline-streams.js';
import { KlineFormats, type KlineFormat } from './binance/kline-format.js';
import { MARKETS, isMarketType, type Interval, type MarketType } from './binance/markets.js';
import type { ExchangeInfoDocument, ForwardedReply } from './exchange/rest-client.js';
import { writeSnapshot } from './files/snapshot.js';
import { parseProxyUrl, redactProxyUrl, type ProxyMap } from './exchange/proxy.js';
import type { Logger } from './log.js';
import { silentLogger } from './log.js';
import { parseCandleRule, type CandleRule, type CandleRuleInput } from './rule.js';
import { CandleMap } from './store/candle-map.js';
import { EMPTY_CANDLE_VIEW, type CandleView } from './store/candle-view.js';
import { CandleSync, emptySyncStats, type CandleEvents, type SymbolState, type SyncStats } from './sync/candle-sync.js';
import { DailyScheduler } from './sync/daily-scheduler.js';
import { MarketConnection } from './sync/market-connection.js';
import { SymbolUniverse } from './sync/universe.js';
import { backoffDelay, sleep } from './util/abort.js';
import { SafeEmitter } from './util/emitter.js';
import { Histogram } from './util/histogram.js';
import { processWide } from './util/process-wide.js';
import type { NatsPublisher, NatsPublishStats } from './publish/nats-publisher.js';

/** Options of {@link CandleServer}. */
export interface CandleServerOptions {
  /** The market: 'SPOT', 'UM' (USD-M futures) or 'CM' (COIN-M futures). */
  readonly instType: MarketType;
  /** The CandleRule: a plain object merged over the defaults, or a rule already parsed. */
  readonly rule?: CandleRuleInput | CandleRule;
  /** A pino logger; the library is silent by default. */
  readonly logger?: Logger;
  /**
   * Serve the module-level `getCandleSecurity` for this market (default true). Only one server
   * per market can; a second one (another bar, say) sets this to false.
   */
  readonly register?: boolean;
  /**
   * Proxies per target scheme, as the original's `proxies` (the requests library's rules): `http`
   * for http:// and ws:// connections, `https` for https:// and wss://, `all` for both, `no_proxy`
   * for hosts reached directly. Each an http://, https:// or socks5:// URL with optional
   * credentials. The rule's PROXY, when set, wins. The library never reads the environment: the
   * CLI fills this from HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY.
   */
  readonly proxies?: ProxyMap;
  /**
   * A forwarding server every request goes to instead of Binance's hosts (the original's
   * `proxy_host`): REST at `{proxyHost}/api`, `/fapi`, `/dapi`; streams at `{proxyHost}/ws-spot`,
   * `/ws-um`, `/ws-cm` (ws:// or wss:// after the proxyHost's scheme). REST_BASE_URL and
   * WS_BASE_URL still win.
   */
  readonly proxyHost?: string;
  /** Keeps this server's weight budget apart from others in the process: for tests only. */
  readonly budgetScope?: string;
  /** Weight window in ms (60 000 on Binance): for simulators with short windows. */
  readonly weightWindowMs?: number;
  /** Stream settings for simulators and tests: watchdog, rotation and limits. */
  readonly streams?: {
    readonly staleAfterMs?: number;
    readonly rotateAfterMs?: number;
    readonly maxStreamsPerConnection?: number;
    readonly maxIncomingPerSecond?: number;
  };
}

/** Options of `getCandleSecurity`. */
export interface CandleSecurityOptions {
  /**
   * The interval of the candles: BAR (the default) or one of the rule's INTERVALS, kept from the
   * BAR stream. Throws InvalidArgumentError for an interval the server does not keep.
   */
  readonly interval?: Interval;
  /**
   * Return a copy that stays valid after the current synchronous block; the default is a
   * zero-copy view that later updates change.
   */
  readonly copy?: boolean;
}

/** Why a symbol is or is not served, with the ages that decided it. */
export interface SymbolStatus {
  readonly symbol: string;
  /** The interval the status is of: BAR, or one of the rule's INTERVALS. */
  readonly interval: Interval;
  readonly state: SymbolState;
  /** Rows in the ring (LENGTH once warmed, unless the symbol is younger). */
  readonly rows: number;
  /** Open time of the newest (forming) candle, epoch ms. */
  readonly newestOpenTime: number | undefined;
  /** Age of the newest candle's open time on the exchange clock, ms. */
  readonly newestAgeMs: number | undefined;
  /** Time since the exchange last confirmed this symbol's data, ms. */
  readonly confirmedAgeMs: number | undefined;
  /** Open time from which a hole is being repaired. */
  readonly repairingFrom: number | undefined;
  /** End of an IP ban in force on this market's weight budget. */
  readonly bannedUntil: number | undefined;
}

/** Numbers for metrics and benchmarks. */
export interface CandleServerStats {
  readonly market: MarketType;
  readonly symbols: number;
  readonly ready: number;
  readonly weight: {
    readonly used: number;
    readonly budget: number;
    readonly limit: number;
    readonly queued: number;
    readonly bannedUntil: number | undefined;
  };
  /** REST exchanges so far, keyed `endpoint status` (status 0: no usable reply). */
  readonly requests: ReadonlyMap<string, number>;
  readonly sync: Readonly<SyncStats>;
  readonly streams:
    { readonly connections: number; readonly reconnects: number; readonly messages: number; readonly malformed: number } | undefined;
  /** Exchange event to ring, ms. */
  readonly latency: Histogram;
  readonly snapshots: { readonly written: number; readonly lastDurationMs: number | undefined; readonly lastFile: string | undefined };
  readonly memoryBytes: number;
  /** NATS publishing (undefined when NATS_URL is null, or before it starts). */
  readonly nats?: NatsPublishStats;
}

// The running servers of the process, whichever copy of the package started them.
const running = processWide('running-servers', () => new Map<MarketType, CandleServer>());

/**
 * The candles of `symbol` from the running CandleServer of a market (see
 * {@link CandleServer.getCandleSecurity}). With one server running, `market` may be left out.
 * Throws InvalidArgumentError when no server runs for the market, or when several run and no
 * market is named; never for stale or unknown symbols (they get an empty view).
 *
 * @example
 * ```ts
 * const candles = getCandleSecurity('BTCUSDT', 180, { market: 'UM' });
 * ```
 */
export function getCandleSecurity(
  symbol: string,
  securitySeconds = 180,
  options: CandleSecurityOptions & { market?: MarketType } = {},
): CandleView {
  return runningServer(options.market).getCandleSecurity(symbol, securitySeconds, options);
}

/** The running server of a market (or the only one running). */
export function runningServer(market?: MarketType): CandleServer {
  if (market !== undefined) {
    const server = running.get(market);
    if (server === undefined) {
      const others = [...running.keys()];
      throw new InvalidArgumentError(`no CandleServer is running for ${market}${others.length ? ` (running: ${others.join(', ')})` : ''}`);
    }
    return server;
  }
  if (running.size === 1) return running.values().next().value as CandleServer;
  if (running.size === 0) throw new InvalidArgumentError('no CandleServer is running: start one with runCandleMap()');
  throw new InvalidArgumentError(`several CandleServers are running (${[...running.keys()].join(', ')}): pass { market }`);
}

// How long start-up waits for the streams to confirm every symbol before calling the map ready.
const STREAM_SETTLE_MS = 15_000;
// How long start-up waits for NATS (when NATS_URL is set) before it serves without it.
const NATS_START_WAIT_MS = 10_000;
// Between two measurements of the exchange clock.
const CLOCK_RESYNC_MS = 10 * 60_000;

/** Keeps the last LENGTH candles of every symbol of one market current. */
export class CandleServer {
  readonly market: MarketType;
  readonly rule: CandleRule;
  readonly #options: CandleServerOptions;
  readonly #logger: Logger;
  readonly #events: SafeEmitter<CandleEvents>;
  readonly #latency = new Histogram([0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000]);
  readonly #map: CandleMap;
  // The rings of each of the rule's INTERVALS, kept from the BAR ring.
  readonly #derivedMaps: ReadonlyMap<Interval, CandleMap>;
  // How the exchange prints each symbol's klines, for replies in Binance's own shape.
  readonly #formats: KlineFormats;
  // Aborted by close() or destroy(): every wait, request and timer of this run stops.
  readonly #stopping = new AbortController();
  #connection: MarketConnection | undefined;
  #sync: CandleSync | undefined;
  #universe: SymbolUniverse | undefined;
  #dailyScheduler: DailyScheduler | undefined;
  #streams: KlineStreams | undefined;
  // Publishes the rings to NATS when the rule sets NATS_URL; loaded with import() only then.
  #publisher: NatsPublisher | undefined;
  // The start itself, awaited by close(); `#running` adds the clean-up of a failed start.
  #runBody: Promise<void> | undefined;
  #running: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #isReady = false;
  // The loops of a running server (sweep, snapshots, clock), awaited by close().
  readonly #loops: Array<Promise<void>> = [];
  #snapshotStats: { written: number; lastDurationMs: number | undefined; lastFile: string | undefined } = {
    written: 0,
    lastDurationMs: undefined,
    lastFile: undefined,
  };
  // A snapshot in progress: the periodic one and the final one never overlap.
  #snapshotting: Promise<void> | undefined;

  constructor(options: CandleServerOptions) {
    if (!isMarketType(options.instType)) {
      throw new ConfigError('CandleServer options', [
        { path: 'instType', received: options.instType, message: 'expected one of SPOT, UM, CM' },
      ]);
    }
    const input = (options.rule ?? {}) as Record<string, unknown>;
    if (input.MARKET !== undefined && input.MARKET !== options.instType) {
      throw new ConfigError('CandleServer options', [
        { path: 'rule.MARKET', received: input.MARKET, message: `expected ${options.instType} (instType) or nothing` },
      ]);
    }
    this.market = options.instType;
    this.rule = parseCandleRule({ ...input, MARKET: options.instType });
    checkProxyOptions(options);
    this.#options = options;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'candle-server', market: this.market });
    this.#events = new SafeEmitter<CandleEvents>((error, event) =>
      this.#logger.error({ err: error, event }, 'an event listener threw; ingestion goes on'),
    );
    this.#map = new CandleMap(this.rule.LENGTH);
    this.#derivedMaps = new Map(this.rule.INTERVALS.map((interval) => [interval, new CandleMap(this.rule.LENGTH)]));
    this.#formats = new KlineFormats(this.market);
  }

  /** The intervals served: BAR first, then the rule's INTERVALS, shortest first. */
  get intervals(): readonly Interval[] {
    return [this.rule.BAR, ...this.rule.INTERVALS];
  }

  /**
   * How the exchange prints `symbol`'s klines (decimals of prices, quantities and quote amounts):
   * learned from its REST rows and daily files, else from exchangeInfo.
   */
  klineFormat(symbol: string): KlineFormat {
    return this.#formats.of(symbol);
  }

  /** True once every symbol's ring is ready. */
  get isReady(): boolean {
    return this.#isReady;
  }

  /**
   * Starts the server and resolves when every symbol's ring is ready. Idempotent: later calls
   * return the first call's promise. Rejects with ClosedError when closed before it was ready.
   */
  runCandleMap(): Promise<void> {
    if (this.#stopping.signal.aborted) return Promise.reject(new ClosedError(`${this.market} CandleServer`));
    if (this.#running !== undefined) return this.#running;
    this.#runBody = this.#run();
    this.#running = this.#runBody.catch(async (error: unknown) => {
      // A failed start leaves nothing running: the caller need not close() to free sockets.
      const wasStopped = this.#stopping.signal.aborted;
      if (!wasStopped) this.#logger.error({ err: error }, 'start failed');
      this.#closing ??= this.#close(false);
      await this.#closing;
      throw wasStopped && !(error instanceof ClosedError) ? new ClosedError(`${this.market} CandleServer`) : error;
    });
    return this.#running;
  }

  /**
   * The last LENGTH candles of `symbol` (12 columns in Binance's order, oldest first, the forming
   * candle last) when they are fresh, else an empty view. Fresh means both: the newest candle
   * opened less than `securitySeconds` ago, and the exchange confirmed this symbol's data less
   * than `securitySeconds` ago (a dead stream fails this), both on the exchange clock.
   *
   * The result is zero-copy: a read-only view of the ring, valid for synchronous use (later
   * updates change it). Pass `{ copy: true }` for a copy to keep. Never throws for stale or
   * unknown symbols; throws InvalidArgumentError for a securitySeconds that is not positive.
   */
  getCandleSecurity(symbol: string, securitySeconds = 180, options?: CandleSecurityOptions): CandleView {
    if (!(securitySeconds > 0)) throw new InvalidArgumentError(`securitySeconds must be a positive number, got ${String(securitySeconds)}`);
    const interval = this.#intervalOf(options?.interval);
    const ring = this.#stopping.signal.aborted ? undefined : this.#sync?.servable(symbol, securitySeconds * 1000, interval);
    if (ring === undefined) return EMPTY_CANDLE_VIEW;
    return options?.copy === true ? ring.copy() : ring.view();
  }

  /**
   * The ring of `symbol` in BAR or one of the rule's INTERVALS as it is, fresh or not (empty for a
   * symbol not followed): for publishers and inspection, which pass the state on with the rows
   * (see `status`). A bot reads `getCandleSecurity`, which applies the freshness rule. Zero-copy,
   * valid for synchronous use.
   */
  readRing(symbol: string, options?: { readonly interval?: Interval }): CandleView {
    const interval = this.#intervalOf(options?.interval);
    return this.#sync?.tracked(symbol, interval)?.ring.view() ?? EMPTY_CANDLE_VIEW;
  }

  /**
   * Why `symbol` is or is not served, with the ages, for `securitySeconds` (default 180), in BAR
   * or one of the rule's INTERVALS (`options.interval`).
   */
  status(symbol: string, securitySeconds = 180, options?: { readonly interval?: Interval }): SymbolStatus {
    const interval = this.#intervalOf(options?.interval);
    const tracked = this.#sync?.tracked(symbol, interval);
    const bannedUntil = this.#connection?.governor.bannedUntil;
    if (tracked === undefined || this.#connection === undefined || this.#sync === undefined) {
      return {
        symbol,
        interval,
        state: 'unknown',
        rows: 0,
        newestOpenTime: undefined,
        newestAgeMs: undefined,
        confirmedAgeMs: undefined,
        repairingFrom: undefined,
        bannedUntil,
      };
    }
    const base = this.#sync.tracked(symbol) ?? tracked;
    const now = this.#connection.clock.now();
    const newest = tracked.ring.newestOpenTime;
    return {
      symbol,
      interval,
      state: this.#sync.state(symbol, securitySeconds * 1000, interval),
      rows: tracked.ring.count,
      newestOpenTime: newest,
      newestAgeMs: newest === undefined ? undefined : now - newest,
      confirmedAgeMs: base.confirmedAt === 0 ? undefined : now - base.confirmedAt,
      repairingFrom: base.holeFrom,
      bannedUntil,
    };
  }

  /** BAR when `interval` is undefined; throws InvalidArgumentError for an interval not kept. */
  #intervalOf(interval: Interval | undefined): Interval {
    if (interval === undefined || interval === this.rule.BAR) return this.rule.BAR;
    if (this.rule.INTERVALS.includes(interval)) return interval;
    throw new InvalidArgumentError(
      `interval ${JSON.stringify(interval)} is not kept by this ${this.market} server; expected one of ${this.intervals.join(', ')} (BAR and INTERVALS)`,
    );
  }

  /** The symbols followed now (the universe after filters). */
  symbols(): string[] {
    return this.#sync?.symbols() ?? [];
  }

  /**
   * Revision of the ring that `getCandleSecurity(symbol, s, { interval })` reads (see
   * CandleRing.revision): unchanged while only the newest candle changes in place, so a reader can
   * keep what it derived from the older rows. Undefined when the symbol is not followed.
   */
  candleRevision(symbol: string, interval?: Interval): number | undefined {
    return this.#sync?.tracked(symbol, this.#intervalOf(interval))?.ring.revision;
  }

  /** The exchange's time now (epoch ms), on the clock measured at start; the local clock before. */
  exchangeTime(): number {
    return this.#connection?.clock.now() ?? Date.now();
  }

  /**
   * The exchangeInfo document the server last read (at start, then every SYMBOLS_REFRESH_SECONDS),
   * whole, or undefined before the first. On SPOT it is the shrunk one the universe reads (see
   * MARKETS.SPOT.exchangeInfoQuery).
   */
  exchangeInfoDocument(): ExchangeInfoDocument | undefined {
    return this.#connection?.rest.lastExchangeInfo;
  }

  /**
   * Passes a GET of this market's REST API on to the exchange through the server's own client and
   * weight budget, for another process (see BinanceRestClient.forward): at priority 'forward',
   * below live and back-fill work, granted at once or refused (WeightUnavailableError, BannedError)
   * with nothing sent. Throws ClosedError before start and after close.
   */
  forward(path: string, query: string, weight: number, options: { readonly signal?: AbortSignal } = {}): Promise<ForwardedReply> {
    const connection = this.#connection;
    if (connection === undefined || this.#stopping.signal.aborted) return Promise.reject(new ClosedError(`${this.market} CandleServer`));
    return connection.rest.forward(path, query, weight, options);
  }

  /** Listens to an event (candleClosed, gap, stale, rows, reconnect); returns a function that stops listening. */
  on<E extends keyof CandleEvents>(event: E, listener: CandleEvents[E]): () => void {
    return this.#events.on(event, listener);
  }

  /** Counters and gauges for metrics. */
  stats(): CandleServerStats {
    const governor = this.#connection?.governor;
    const streams = this.#streams?.stats;
    return {
      market: this.market,
      symbols: this.#sync?.symbols().length ?? 0,
      ready: this.#sync?.symbols().filter((s) => this.#sync?.tracked(s)?.isReady).length ?? 0,
      weight: {
        used: governor?.usedWeight ?? 0,
        budget: governor?.budget ?? 0,
        limit: governor?.limit ?? 0,
        queued: governor?.queued ?? 0,
        bannedUntil: governor?.bannedUntil,
      },
      requests: new Map(this.#connection?.requests ?? []),
      sync: { ...(this.#sync?.stats ?? emptySyncStats()) },
      streams:
        streams === undefined
          ? undefined
          : { connections: streams.connections, reconnects: streams.reconnects, messages: streams.messages, malformed: streams.malformed },
      latency: this.#latency,
      snapshots: { ...this.#snapshotStats },
      memoryBytes: this.#memoryBytes(),
      ...(this.#publisher === undefined ? {} : { nats: this.#publisher.stats }),
    };
  }

  /**
   * Stops work, writes a final snapshot (unless CACHE_DELAY_SECONDS is null) and closes every
   * socket and timer. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close(true);
    return this.#closing;
  }

  /** Stops at once: no final snapshot, sockets terminated. Idempotent. */
  destroy(): void {
    this.#stopping.abort(new ClosedError(`${this.market} CandleServer`));
    this.#streams?.destroy();
    this.#closing ??= this.#close(false);
  }

  async #run(): Promise<void> {
    const signal = this.#stopping.signal;
    const rule = this.rule;
    const register = this.#options.register ?? true;
    if (register) {
      const other = running.get(this.market);
      if (other !== undefined && other !== this) {
        throw new InvalidArgumentError(`a CandleServer for ${this.market} is already running; give the second one { register: false }`);
      }
      running.set(this.market, this);
    }
    this.#logger.info({ bar: rule.BAR, length: rule.LENGTH, mode: rule.UPDATE_MODE, symbols: rule.SYMBOLS }, 'starting');
    const connection = new MarketConnection({
      rule,
      logger: this.#options.logger ?? silentLogger(),
      ...(this.#options.budgetScope === undefined ? {} : { budgetScope: this.#options.budgetScope }),
      ...(this.#options.weightWindowMs === undefined ? {} : { weightWindowMs: this.#options.weightWindowMs }),
      proxies: this.#options.proxies,
      proxyHost: this.#options.proxyHost,
    });
    this.#connection = connection;
    // Until the exchange answers, keep trying: a daemon started during an outage must not give up.
    let firstInfo: Awaited<ReturnType<MarketConnection['start']>> | undefined = await this.#retrying('connecting to the exchange', () =>
      connection.start(signal),
    );
    const universe = new SymbolUniverse({
      market: this.market,
      rule,
      logger: this.#options.logger ?? silentLogger(),
      fetchExchangeInfo: async (s) => {
        // The first load reuses the exchangeInfo the connection has just read.
        const info = firstInfo ?? (await connection.rest.exchangeInfo({ signal: s }));
        firstInfo = undefined;
        this.#formats.learnInfo(info.symbols);
        return info;
      },
    });
    this.#universe = universe;
    const symbols = await universe.start(signal);
    this.#logger.info({ count: symbols.length }, `universe: ${symbols.length} symbols`);

    const dailyScheduler = new DailyScheduler({
      connection,
      symbols: () => universe.current(),
      logger: this.#options.logger ?? silentLogger(),
    });
    this.#dailyScheduler = dailyScheduler;
    if (rule.LOCAL_CANDLE_DAYS > 0) await dailyScheduler.backfillRecent(signal);

    const useStreams = rule.UPDATE_MODE === 'websocket';
    const sync = new CandleSync({
      rule,
      exchange: connection,
      map: this.#map,
      events: this.#events,
      logger: this.#options.logger ?? silentLogger(),
      latency: this.#latency,
      streamCadenceMs: useStreams ? MARKETS[this.market].wsCadenceMs(rule.BAR) : undefined,
      derivedMaps: this.#derivedMaps,
      formats: this.#formats,
    });
    this.#sync = sync;
    await sync.restoreSnapshot(symbols);
    if (useStreams) {
      // Streams start before the warm-up so that no update between the REST reply and the first event is lost.
      this.#streams = this.#createStreams(sync, connection);
      this.#streams.setSymbols(symbols);
      this.#streams.start();
    }
    await sync.warm(symbols, { useStreams, signal });
    universe.on('joined', (joined) => void this.#join(joined));
    universe.on('left', (left) => {
      sync.remove(left);
      this.#streams?.setSymbols(universe.current());
    });
    this.#loops.push(this.#sweepLoop(), this.#snapshotLoop(), this.#clockLoop(), sync.watchBoundaries(signal));
    // Symbols that could not be warmed are retried by the sweep: ready means every ring is filled.
    while (symbols.some((s) => sync.tracked(s)?.isReady === false)) await sleep(100, signal, 'warm-up');
    // Then the derived rings (INTERVALS), with the live rings already repaired and swept meanwhile.
    await sync.seedDerived(symbols, signal);
    while (symbols.some((s) => sync.unseeded(s) > 0)) await sleep(100, signal, 'derived rings');
    if (useStreams) await this.#awaitStreams(sync, symbols);
    dailyScheduler.startSchedule();
    if (rule.NATS_URL !== null) {
      // Loaded here only: nobody who leaves NATS_URL unset loads the publisher or the NATS client.
      const { NatsPublisher } = await import('./publish/nats-publisher.js');
      this.#publisher = new NatsPublisher({ source: this, logger: this.#options.logger ?? silentLogger() });
      await this.#startPublisher(this.#publisher, signal);
    }
    this.#isReady = true;
    this.#logger.info({ symbols: symbols.length, memoryBytes: this.#memoryBytes() }, 'COMPLETE PREPARE candle_map');
  }

  /**
   * Starts publishing, waiting at most NATS_START_WAIT_MS: a NATS that answers and has streams of
   * other settings fails the start (a configuration error); a NATS that does not answer yet does
   * not hold the service back: the publisher goes on connecting in the background and publishes
   * the rings once it is there.
   */
  async #startPublisher(publisher: NatsPublisher, signal: AbortSignal): Promise<void> {
    const started = publisher.start(signal).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), NATS_START_WAIT_MS)));
    const isStarted = await Promise.race([started, waited]).finally(() => clearTimeout(timer));
    if (isStarted) return;
    this.#logger.warn({ waitedMs: NATS_START_WAIT_MS }, 'NATS does not answer yet; serving meanwhile, publishing once it does');
    started.catch((error: unknown) => {
      if (!signal.aborted) this.#logger.error({ err: error }, 'NATS publishing could not start');
    });
  }

  /**
   * Waits (a bounded time) for the streams to take over from the warm-up: each symbol's first
   * update, and the repair of any candle that closed between the REST reply and the subscription.
   * Then a ready server serves at once. Symbols that get no update in time (a halted market) are
   * logged and left to the sweep.
   */
  async #awaitStreams(sync: CandleSync, symbols: readonly string[]): Promise<void> {
    const deadline = Date.now() + STREAM_SETTLE_MS;
    while (Date.now() < deadline && symbols.some((s) => !sync.isStreamSettled(s))) await sleep(50, this.#stopping.signal, 'stream start');
    const waiting = symbols.filter((s) => !sync.isStreamSettled(s));
    if (waiting.length > 0) {
      this.#logger.warn(
        { count: waiting.length, symbols: waiting.slice(0, 20) },
        `no stream update yet for ${waiting.length} symbols; the sweep keeps them current`,
      );
    }
  }

  /**
   * Runs `work` until it succeeds, waiting with jittered back-off (or until a ban ends) after each
   * failure the exchange or the network may get over; other errors are thrown at once.
   */
  async #retrying<T>(what: string, work: () => Promise<T>): Promise<T> {
    const signal = this.#stopping.signal;
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await work();
      } catch (error) {
        if (signal.aborted || !isTransient(error)) throw error;
        const banMs = error instanceof BannedError ? error.until - Date.now() : 0;
        const delayMs = Math.max(banMs, backoffDelay(attempt, { baseMs: 1000, maxMs: 60_000 }));
        this.#logger.warn({ err: error, attempt, delayMs }, `${what} failed; trying again`);
        await sleep(delayMs, signal, what);
      }
    }
  }

  #createStreams(sync: CandleSync, connection: MarketConnection): KlineStreams {
    const rule = this.rule;
    const streamOptions = this.#options.streams ?? {};
    return new KlineStreams({
      market: this.market,
      interval: rule.BAR,
      baseUrl: connection.endpoints.ws,
      proxy: connection.proxies.ws,
      logger: this.#options.logger ?? silentLogger(),
      ...streamOptions,
      onKline: (symbol, values, isClosed, eventTime) => sync.onKline(symbol, values, isClosed, eventTime),
      onEvent: (event) => this.#onStreamEvent(event),
    });
  }

  #onStreamEvent(event: StreamEvent): void {
    const sync = this.#sync;
    if (sync === undefined) return;
    switch (event.type) {
      case 'interrupted':
        sync.onInterrupted(event.symbols, event.since + (this.#connection?.clock.offsetMs ?? 0));
        break;
      case 'resumed':
        sync.repair(event.symbols, this.#stopping.signal).catch((error: unknown) => {
          if (!this.#stopping.signal.aborted) this.#logger.warn({ err: error }, 'repair after resume failed; the sweep will retry');
        });
        break;
      case 'reconnect':
        this.#events.emit('reconnect', {
          connection: event.connection,
          attempt: event.attempt,
          delayMs: event.delayMs,
          symbols: event.symbols,
        });
        break;
      default:
        break;
    }
  }

  async #join(symbols: readonly string[]): Promise<void> {
    const sync = this.#sync;
    if (sync === undefined || this.#stopping.signal.aborted) return;
    this.#streams?.setSymbols(this.#universe?.current() ?? []);
    try {
      await sync.warm(symbols, { useStreams: this.#streams !== undefined, signal: this.#stopping.signal });
      await sync.seedDerived(symbols, this.#stopping.signal);
    } catch (error) {
      if (!this.#stopping.signal.aborted) this.#logger.warn({ err: error, symbols }, 'warm-up of new symbols failed; the sweep will retry');
    }
  }

  /** The REST sweep every UPDATE_INTERVAL_SECONDS: the update loop in REST-only mode, the safety net otherwise. */
  async #sweepLoop(): Promise<void> {
    const rule = this.rule;
    const intervalMs = rule.UPDATE_INTERVAL_SECONDS * 1000;
    const cadence = MARKETS[this.market].wsCadenceMs(rule.BAR);
    const staleAfterMs =
      rule.UPDATE_MODE === 'rest' ? intervalMs * 0.9 : Math.max(intervalMs, 5 * cadence, this.#options.streams?.staleAfterMs ?? 10_000);
    await this.#every(intervalMs, async () => {
      await this.#sync?.sweep({ staleAfterMs, signal: this.#stopping.signal });
    });
  }

  async #snapshotLoop(): Promise<void> {
    const delay = this.rule.CACHE_DELAY_SECONDS;
    if (delay === null) return;
    await this.#every(delay * 1000, () => this.#snapshot());
  }

  async #clockLoop(): Promise<void> {
    await this.#every(CLOCK_RESYNC_MS, async () => {
      await this.#connection?.clock.sync({ signal: this.#stopping.signal });
    });
  }

  /** Runs `work` every `ms` until stopped; a failure is logged and the loop goes on. */
  async #every(ms: number, work: () => Promise<void>): Promise<void> {
    const signal = this.#stopping.signal;
    while (!signal.aborted) {
      try {
        await sleep(ms, signal, 'timer');
        await work();
      } catch (error) {
        if (signal.aborted) return;
        this.#logger.warn({ err: error }, 'periodic work failed; retrying at the next turn');
      }
    }
  }

  /** Bytes of candle memory: the BAR rings and the derived rings. */
  #memoryBytes(): number {
    let bytes = this.#map.byteLength;
    for (const map of this.#derivedMaps.values()) bytes += map.byteLength;
    return bytes;
  }

  #snapshot(): Promise<void> {
    this.#snapshotting ??= (async () => {
      const startedAt = performance.now();
      try {
        // One file per interval, BAR's first: each is a snapshot of its own (market, bar).
        const maps: Array<[Interval, CandleMap]> = [[this.rule.BAR, this.#map], ...this.#derivedMaps];
        let symbols = 0;
        let bytes = 0;
        let file = '';
        for (const [bar, map] of maps) {
          const written = await writeSnapshot(this.rule.CACHE_DIR, map, { market: this.market, bar });
          if (bar === this.rule.BAR) file = written.file;
          symbols += written.symbols;
          bytes += written.bytes;
        }
        const durationMs = performance.now() - startedAt;
        this.#snapshotStats = { written: this.#snapshotStats.written + 1, lastDurationMs: durationMs, lastFile: file };
        this.#logger.info({ file, intervals: maps.length, symbols, bytes, durationMs: Math.round(durationMs) }, 'snapshot written');
      } finally {
        this.#snapshotting = undefined;
      }
    })();
    return this.#snapshotting;
  }

  async #close(graceful: boolean): Promise<void> {
    this.#stopping.abort(new ClosedError(`${this.market} CandleServer`));
    if (running.get(this.market) === this) running.delete(this.market);
    await this.#runBody?.catch(() => undefined);
    await Promise.allSettled(this.#loops);
    await this.#publisher?.close();
    await this.#universe?.close();
    if (graceful) await this.#streams?.close();
    await this.#dailyScheduler?.close();
    await this.#sync?.close();
    if (graceful && this.rule.CACHE_DELAY_SECONDS !== null && this.#sync !== undefined) {
      await this.#snapshotting?.catch(() => undefined);
      try {
        await this.#snapshot();
      } catch (error) {
        this.#logger.error({ err: error }, 'final snapshot failed');
      }
    }
    await this.#connection?.close();
    this.#events.clear();
    this.#logger.info(graceful ? 'closed' : 'destroyed');
  }
}

/** Failures that waiting can cure: the network, time-outs, garbled replies, 5xx, 429/418 and bans. */
function isTransient(error: unknown): boolean {
  if (
    error instanceof NetworkError ||
    error instanceof TimeoutError ||
    error instanceof MalformedResponseError ||
    error instanceof BannedError
  )
    return true;
  return error instanceof ExchangeError && (error.status >= 500 || error.status === 429 || error.status === 418);
}

/** Throws ConfigError when a proxy option is not a proxy URL, naming it without its credentials. */
function checkProxyOptions(options: CandleServerOptions): void {
  const issues: ConfigIssue[] = [];
  for (const key of ['http', 'https', 'all'] as const) {
    const value = options.proxies?.[key];
    if (value === undefined || value === '') continue;
    try {
      parseProxyUrl(value, `proxies.${key}`);
    } catch (error) {
      issues.push({
        path: `proxies.${key}`,
        received: redactProxyUrl(value),
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
  const host = options.proxyHost;
  if (host !== undefined && !/^https?:\/\/[^/?#\s]+(\/[^?#\s]*)?$/.test(host)) {
    issues.push({
      path: 'proxyHost',
      received: redactProxyUrl(host),
      message: 'expected an http:// or https:// URL of a forwarding server',
    });
  }
  if (issues.length > 0) throw new ConfigError('CandleServer options', issues);
}
