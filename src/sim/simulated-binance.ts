/**
 * The simulated Binance: one loopback HTTP + WebSocket server per market, serving REST market data
 * (with request weight, 429 and 418 bans), data.binance.vision-style archives and kline streams,
 * all from one deterministic world.
 *
 * @example
 * ```ts
 * const sim = await SimulatedBinance.start({ markets: ['UM'], weightLimits: { futures: 100 } });
 * const res = await fetch(`${sim.urls('UM').rest}/fapi/v1/klines?symbol=BTCUSDT&interval=1m`);
 * sim.faults.force429Next = 1; // the next REST request gets 429
 * await sim.close();
 * ```
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { MARKET_TYPES, type MarketType } from '../binance/markets.js';
import { ClosedError, InvalidArgumentError } from '../errors.js';
import { ArchiveRoutes } from './archive.js';
import type { OhlcvRow } from './market-data.js';
import { RestRoutes } from './rest.js';
import { KlineStreamServer, type KlineStreamServerOptions } from './streams.js';
import type { SimFaults, SimSymbol, SimSymbolStatus } from './types.js';
import { SimStats, WeightLedger } from './weights.js';
import { MarketWorld, type SimSymbolInit } from './world.js';

/** Stream server settings passed through to every market's `KlineStreamServer`. */
export type SimStreamOptions = Partial<
  Pick<
    KlineStreamServerOptions,
    'cadenceMs' | 'maxStreamsPerConnection' | 'maxIncomingPerSecond' | 'pingIntervalMs' | 'pongTimeoutMs' | 'maxLifetimeMs' | 'logger'
  >
>;

/** Options of `SimulatedBinance.start`. */
export interface SimulatedBinanceOptions {
  /** Seed of every synthetic price path (default 1). */
  seed?: number;
  /** Markets to serve, one server each (default all three). */
  markets?: MarketType[];
  /** Symbols per market (defaults: SPOT BTCUSDT ETHUSDT BNBUSDT, UM BTCUSDT ETHUSDT, CM BTCUSD_PERP ETHUSD_PERP). */
  symbols?: Partial<Record<MarketType, Array<string | SimSymbolInit>>>;
  /** The exchange clock (default Date.now); offset it to test server-time handling. */
  clock?: () => number;
  /** REQUEST_WEIGHT per window (default spot 6000, futures 2400 shared by UM and CM). */
  weightLimits?: { spot?: number; futures?: number };
  /** Weight window length (default 60 000 ms). */
  weightWindowMs?: number;
  /** Bans: after `requestsAfter429` requests that ignore a 429 (default 5), for `baseMs` (2 min) doubling up to `maxMs` (3 days). */
  ban?: { requestsAfter429?: number; baseMs?: number; maxMs?: number };
  /** How long after a UTC day (or month) ends its archive appears (default one hour). */
  archiveDelayMs?: number;
  /** Recorded 1m OHLCV rows played as a symbol's candles. */
  replay?: Array<{ market: MarketType; symbol: string; rows: OhlcvRow[]; startTime?: number }>;
  /** Kline stream settings (cadence, limits, pings, lifetime). */
  streams?: SimStreamOptions;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
}

/** Base URLs of one simulated market. */
export interface SimUrls {
  readonly rest: string;
  /** WebSocket base; UM streams live under `/market` on it, as on Binance. */
  readonly ws: string;
  /** Base of the data.binance.vision-style archives (`/data/...`). */
  readonly archive: string;
}

// Accepted connections remembered per market (the newest).
const MAX_ACCEPTED_KEPT = 10_000;

/** A TCP connection a market's server accepted: the peer's address and port as seen on accept. */
export interface SimAcceptedConnection {
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Wall-clock time of the accept, epoch ms. */
  readonly at: number;
}

// Everything one market's server owns.
interface MarketServer {
  readonly server: Server;
  // Every TCP connection accepted (REST, archives and streams alike), oldest first.
  readonly accepted: SimAcceptedConnection[];
  readonly rest: RestRoutes;
  readonly archive: ArchiveRoutes;
  readonly streams: KlineStreamServer;
  readonly urls: SimUrls;
}

/** A running simulated Binance. Start it with `SimulatedBinance.start()`. */
export class SimulatedBinance {
  readonly world: MarketWorld;
  readonly stats: SimStats;
  readonly #ledger: WeightLedger;
  readonly #servers: Map<MarketType, MarketServer>;
  // The close in progress, so that close() is idempotent and concurrent calls share it.
  #closing: Promise<void> | undefined;

  private constructor(world: MarketWorld, ledger: WeightLedger, servers: Map<MarketType, MarketServer>) {
    this.world = world;
    this.#ledger = ledger;
    this.stats = ledger.stats;
    this.#servers = servers;
  }

  /** Starts one server per market on `host`, each on a free port. */
  static async start(options: SimulatedBinanceOptions = {}): Promise<SimulatedBinance> {
    const markets = options.markets ?? [...MARKET_TYPES];
    if (markets.length === 0) throw new InvalidArgumentError('markets: expected at least one of SPOT, UM, CM, got none');
    const host = options.host ?? '127.0.0.1';
    const world = new MarketWorld({
      seed: options.seed ?? 1,
      markets,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.symbols === undefined ? {} : { symbols: options.symbols }),
      ...(options.replay === undefined ? {} : { replay: options.replay }),
    });
    const stats = new SimStats();
    const ledger = new WeightLedger({
      stats,
      ...(options.weightLimits === undefined ? {} : { limits: options.weightLimits }),
      ...(options.weightWindowMs === undefined ? {} : { windowMs: options.weightWindowMs }),
      ...(options.ban?.requestsAfter429 === undefined ? {} : { requestsAfter429: options.ban.requestsAfter429 }),
      ...(options.ban?.baseMs === undefined ? {} : { banBaseMs: options.ban.baseMs }),
      ...(options.ban?.maxMs === undefined ? {} : { banMaxMs: options.ban.maxMs }),
    });
    const servers = new Map<MarketType, MarketServer>();
    const sim = new SimulatedBinance(world, ledger, servers);
    try {
      for (const market of markets) {
        servers.set(market, await listen(market, host, world, ledger, options));
      }
    } catch (error) {
      await sim.close();
      throw error;
    }
    return sim;
  }

  /** The fault switches; flip them at run time. */
  get faults(): SimFaults {
    return this.world.faults;
  }

  /** Base URLs of a market. */
  urls(market: MarketType): SimUrls {
    return this.#server(market).urls;
  }

  /** The kline stream server of a market (for its stats). */
  streams(market: MarketType): KlineStreamServer {
    return this.#server(market).streams;
  }

  /**
   * The TCP connections the market's server has accepted (REST, archives and streams share one
   * listener; the newest 10 000), oldest first: tests compare the peers with a proxy's outbound
   * sockets.
   */
  acceptedConnections(market: MarketType): readonly SimAcceptedConnection[] {
    return [...this.#server(market).accepted];
  }

  /** Lists a new symbol (from now unless `listedAt` says otherwise). */
  list(market: MarketType, init: string | SimSymbolInit): SimSymbol {
    return this.world.list(market, init);
  }

  /** Delists a symbol at `at` (default now): no candles from then on. */
  delist(market: MarketType, symbol: string, at?: number): void {
    this.world.delist(market, symbol, at);
  }

  /** Suspends trading over [from, to): no candles open inside. */
  suspend(market: MarketType, symbol: string, from: number, to: number): void {
    this.world.suspend(market, symbol, from, to);
  }

  /** Sets the status exchangeInfo reports for a symbol. */
  setStatus(market: MarketType, symbol: string, status: SimSymbolStatus): void {
    this.world.setStatus(market, symbol, status);
  }

  /** Cuts every stream connection of a market (or of all markets) abruptly. */
  dropStreams(market?: MarketType): void {
    for (const [type, entry] of this.#servers) if (market === undefined || type === market) entry.streams.dropAll();
  }

  /** Stalls (or resumes) every kline stream: sockets stay open, no data flows. */
  stallStreams(on: boolean): void {
    this.world.faults.streamsStalled = on;
  }

  /** Sends `serverShutdown` on every stream connection of a market (or all), then closes them. */
  shutdownStreams(market?: MarketType): void {
    for (const [type, entry] of this.#servers) if (market === undefined || type === market) entry.streams.sendServerShutdown();
  }

  /** Lifts every ban and forgets the weight counted so far (stats are kept: see `stats.reset()`). */
  resetWeights(): void {
    this.#ledger.reset();
  }

  /** Closes every server and socket and clears every timer. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  async #closeAll(): Promise<void> {
    await Promise.all(
      [...this.#servers.values()].map(async (entry) => {
        entry.rest.close();
        await entry.streams.close();
        await new Promise<void>((resolve) => {
          entry.server.close(() => resolve());
          entry.server.closeAllConnections();
        });
      }),
    );
  }

  #server(market: MarketType): MarketServer {
    if (this.#closing !== undefined) throw new ClosedError('SimulatedBinance');
    const entry = this.#servers.get(market);
    if (entry === undefined) {
      throw new InvalidArgumentError(`market ${market} is not simulated here (simulating ${[...this.#servers.keys()].join(', ')})`);
    }
    return entry;
  }
}

async function listen(
  market: MarketType,
  host: string,
  world: MarketWorld,
  ledger: WeightLedger,
  options: SimulatedBinanceOptions,
): Promise<MarketServer> {
  const rest = new RestRoutes({ market, world, ledger });
  const archive = new ArchiveRoutes({
    market,
    world,
    stats: ledger.stats,
    ...(options.archiveDelayMs === undefined ? {} : { publishDelayMs: options.archiveDelayMs }),
  });
  const streams = new KlineStreamServer({ ...options.streams, market, world });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (archive.owns(path)) archive.handle(req, res);
    else rest.handle(req, res);
  });
  const accepted: SimAcceptedConnection[] = [];
  server.on('connection', (socket: Socket) => {
    // The newest ones only: a simulator left running for days must not grow without end.
    if (accepted.length >= MAX_ACCEPTED_KEPT) accepted.splice(0, accepted.length - MAX_ACCEPTED_KEPT + 1);
    accepted.push({ remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0, at: Date.now() });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => streams.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const http = `http://${hostPart}:${port}`;
  return { server, accepted, rest, archive, streams, urls: { rest: http, ws: `ws://${hostPart}:${port}`, archive: http } };
}
