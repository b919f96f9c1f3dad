/**
 * The simulated exchange's WebSocket kline streams: raw and combined connections, live
 * subscriptions, Binance's limits (incoming messages per second, streams per connection), server
 * pings with a pong deadline, the 24 h connection lifetime, and the stream faults of `SimFaults`.
 *
 * One timer drives everything. Each wake-up does the work that is due and re-arms the timer for
 * the earliest next deadline; with no connection open, no timer runs.
 *
 * ```
 *  cadence group (ms) ──> feeds (one per stream name) ──> subscribed connections
 *     250               btcusdt@kline_1m  ── event text built once per tick, shared by all
 *                       ethusdt@kline_1m
 * ```
 *
 * @example
 * ```ts
 * const streams = new KlineStreamServer({ market: 'SPOT', world });
 * httpServer.on('upgrade', (req, socket, head) => streams.handleUpgrade(req, socket, head));
 * // ... later
 * await streams.close();
 * ```
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { InvalidArgumentError } from '../errors.js';
import { openTimeOf } from '../binance/intervals.js';
import { MARKETS, type Interval, type MarketType } from '../binance/markets.js';
import { silentLogger, type Logger } from '../log.js';
import {
  combinedFrame,
  errorReply,
  klineEventJson,
  parseControlMessage,
  parseStreamName,
  resultReply,
  routeUpgradeUrl,
  serverShutdownJson,
} from './stream-protocol.js';
import type { SimWorld } from './types.js';
import { positiveOption } from '../util/options.js';

/**
 * Options of a `KlineStreamServer`; every limit defaults to the market's (see `MARKETS`).
 *
 * @example
 * ```ts
 * const options: KlineStreamServerOptions = { market: 'SPOT', world, pingIntervalMs: 200, pongTimeoutMs: 600 };
 * ```
 */
export interface KlineStreamServerOptions {
  market: MarketType;
  world: SimWorld;
  /** Milliseconds between pushes of every stream (default: the market's cadence per interval). */
  cadenceMs?: number;
  maxStreamsPerConnection?: number;
  /** Client messages (text, ping and pong frames) allowed per second before the server disconnects. */
  maxIncomingPerSecond?: number;
  pingIntervalMs?: number;
  /** A ping left unanswered this long closes the connection. */
  pongTimeoutMs?: number;
  /** The server closes every connection this long after it opened. */
  maxLifetimeMs?: number;
  logger?: Logger;
}

/**
 * Counters of a `KlineStreamServer`.
 *
 * @example
 * ```ts
 * const { connectionsOpen, framesSent } = streams.stats;
 * ```
 */
export interface KlineStreamStats {
  connectionsOpen: number;
  connectionsTotal: number;
  /** Text frames sent: events, replies, malformed frames and shutdown notices. */
  framesSent: number;
  /** Client messages received: text, ping and pong frames. */
  messagesReceived: number;
}

// Close codes: 1008 is what Binance sends to a client over the message limit.
const CLOSE_NORMAL = 1000;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY = 1008;
// A client that lets this much pile up in its socket is too slow to keep; Binance drops those too.
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
// How long close() waits for clients to answer the close handshake before cutting them off.
const CLOSE_GRACE_MS = 1000;
const MAX_TIMER_DELAY_MS = 2_147_483_647;

/** One client connection and what it listens to. */
class Connection {
  readonly ws: WebSocket;
  /** The socket under `ws`: corked around a tick so its frames leave in one write. */
  readonly socket: Duplex;
  readonly openedAt: number;
  readonly isRouted: boolean;
  isCombined: boolean;
  /** Subscribed stream names, in subscription order (LIST_SUBSCRIPTIONS answers with them). */
  readonly streams = new Set<string>();
  /** Times of the last `limit` incoming messages: a ring, to detect a burst over the limit. */
  readonly #recent: Float64Array;
  #recentIndex = 0;
  /** Sequence of the last ping sent; pongs echo it as their payload. */
  pingSeq = 0;
  /** When the oldest unanswered ping was sent, or undefined when every ping has its pong. */
  unansweredSince: number | undefined;
  /** Set once the server has begun closing it: its deadlines no longer count. */
  isEnding = false;

  constructor(ws: WebSocket, socket: Duplex, isCombined: boolean, isRouted: boolean, openedAt: number, maxIncomingPerSecond: number) {
    this.ws = ws;
    this.socket = socket;
    this.isCombined = isCombined;
    this.isRouted = isRouted;
    this.openedAt = openedAt;
    this.#recent = new Float64Array(maxIncomingPerSecond).fill(-Infinity);
  }

  /** Records an incoming message; false when it is one too many within a second. */
  admitMessage(now: number): boolean {
    if (now - (this.#recent[this.#recentIndex] ?? -Infinity) < 1000) return false;
    this.#recent[this.#recentIndex] = now;
    this.#recentIndex = (this.#recentIndex + 1) % this.#recent.length;
    return true;
  }
}

/** Every subscriber of one stream name, and the candle last pushed on it. */
interface Feed {
  readonly name: string;
  readonly symbol: string;
  readonly interval: Interval;
  readonly subscribers: Set<Connection>;
  /** Open time of the candle last pushed: when the clock moves past it, its close is pushed. */
  lastOpenTime: number | undefined;
}

/** Feeds pushed at the same cadence, and when they are next due. */
interface CadenceGroup {
  readonly cadenceMs: number;
  readonly feeds: Map<string, Feed>;
  nextAt: number;
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const reason = status === 404 ? 'Not Found' : status === 400 ? 'Bad Request' : 'Service Unavailable';
  const body = `${message}\n`;
  socket.on('error', () => socket.destroy());
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * Binance-compatible kline streams of one market, mounted on an HTTP server's `upgrade` event.
 *
 * @example
 * ```ts
 * const streams = new KlineStreamServer({ market: 'UM', world, pingIntervalMs: 500 });
 * server.on('upgrade', (req, socket, head) => streams.handleUpgrade(req, socket, head));
 * // ws://127.0.0.1:<port>/market/ws/btcusdt@kline_1m now pushes BTCUSDT 1m klines every 250 ms
 * ```
 */
export class KlineStreamServer {
  readonly #market: MarketType;
  readonly #world: SimWorld;
  readonly #log: Logger;
  readonly #cadenceOf: (interval: Interval) => number;
  readonly #maxStreams: number;
  readonly #maxIncoming: number;
  readonly #pingIntervalMs: number;
  readonly #pongTimeoutMs: number;
  readonly #maxLifetimeMs: number;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<Connection>();
  readonly #groups = new Map<number, CadenceGroup>();
  readonly #stats: KlineStreamStats = { connectionsOpen: 0, connectionsTotal: 0, framesSent: 0, messagesReceived: 0 };
  /** The one timer of the server; armed only while connections are open. */
  #timer: NodeJS.Timeout | undefined;
  #nextPingAt = Infinity;
  #closing: Promise<void> | undefined;

  constructor(options: KlineStreamServerOptions) {
    const spec = MARKETS[options.market];
    if (spec === undefined) {
      throw new InvalidArgumentError(`KlineStreamServer market must be SPOT, UM or CM, got ${JSON.stringify(options.market)}`);
    }
    this.#market = options.market;
    this.#world = options.world;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'sim-streams', market: options.market });
    const cadenceMs = options.cadenceMs === undefined ? undefined : positiveOption('KlineStreamServer', 'cadenceMs', options.cadenceMs, 0);
    this.#cadenceOf = cadenceMs === undefined ? (interval) => spec.wsCadenceMs(interval) : () => cadenceMs;
    this.#maxStreams = Math.floor(
      positiveOption('KlineStreamServer', 'maxStreamsPerConnection', options.maxStreamsPerConnection, spec.wsMaxStreamsPerConnection),
    );
    this.#maxIncoming = Math.max(
      1,
      Math.floor(positiveOption('KlineStreamServer', 'maxIncomingPerSecond', options.maxIncomingPerSecond, spec.wsMaxIncomingPerSecond)),
    );
    this.#pingIntervalMs = positiveOption('KlineStreamServer', 'pingIntervalMs', options.pingIntervalMs, spec.wsPingIntervalMs);
    this.#pongTimeoutMs = positiveOption('KlineStreamServer', 'pongTimeoutMs', options.pongTimeoutMs, spec.wsPongTimeoutMs);
    this.#maxLifetimeMs = positiveOption('KlineStreamServer', 'maxLifetimeMs', options.maxLifetimeMs, spec.wsMaxLifetimeMs);
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      autoPong: true,
      maxPayload: 1024 * 1024,
    });
  }

  /** Counters since the server was created (a snapshot). */
  get stats(): KlineStreamStats {
    return { ...this.#stats };
  }

  /**
   * Handles one upgrade request of this market's HTTP server: routes the path, refuses unknown
   * paths (404) and invalid stream lists (400) as plain HTTP, otherwise opens the connection.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closing !== undefined) {
      rejectUpgrade(socket, 503, 'the stream server is closed');
      return;
    }
    const route = routeUpgradeUrl(req.url ?? '/', this.#market, this.#maxStreams);
    if (!route.ok) {
      rejectUpgrade(socket, route.status, route.message);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.#closing !== undefined) {
        ws.terminate();
        return;
      }
      const connection = new Connection(ws, socket, route.isCombined, route.isRouted, performance.now(), this.#maxIncoming);
      this.#accept(connection);
      for (const name of route.streams) this.#subscribe(connection, name);
      this.#arm();
    });
  }

  /** Cuts every connection at once, without a close handshake (the "connection dropped" fault). */
  dropAll(): void {
    for (const connection of this.#connections) this.#end(connection);
  }

  /** Sends the `serverShutdown` event on every connection, then closes each one. */
  sendServerShutdown(): void {
    const now = this.#world.now();
    for (const connection of this.#connections) {
      this.#send(connection, serverShutdownJson(connection.isCombined, now));
      this.#end(connection, CLOSE_GOING_AWAY, 'server shutdown');
    }
  }

  /** Closes every connection and clears every timer; later upgrades are refused. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #shutDown(): Promise<void> {
    this.#disarm();
    const closed = [...this.#connections].map(
      (connection) =>
        new Promise<void>((resolve) => {
          connection.ws.once('close', () => resolve());
          this.#end(connection, CLOSE_GOING_AWAY, 'server closing');
        }),
    );
    let graceTimer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      graceTimer = setTimeout(resolve, CLOSE_GRACE_MS);
    });
    await Promise.race([Promise.all(closed), grace]);
    clearTimeout(graceTimer);
    for (const connection of this.#connections) this.#end(connection);
    await Promise.all(closed);
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    this.#disarm();
  }

  #accept(connection: Connection): void {
    const { ws } = connection;
    this.#connections.add(connection);
    this.#stats.connectionsOpen += 1;
    this.#stats.connectionsTotal += 1;
    if (this.#nextPingAt === Infinity) this.#nextPingAt = connection.openedAt + this.#pingIntervalMs;
    ws.on('message', (data, isBinary) => {
      if (!this.#admit(connection)) return;
      this.#onControl(connection, isBinary ? '' : data.toString());
    });
    ws.on('ping', () => this.#admit(connection));
    ws.on('pong', (payload) => {
      if (!this.#admit(connection)) return;
      // Only an answer to our ping counts: Binance says unsolicited pongs do not keep a connection.
      const seq = Number(payload.toString());
      if (Number.isInteger(seq) && seq > 0 && seq <= connection.pingSeq) connection.unansweredSince = undefined;
    });
    ws.on('error', (error) => this.#log.debug({ err: error }, 'stream connection error'));
    ws.on('close', () => this.#forget(connection));
  }

  /** Counts an incoming message; a connection over the limit is closed. */
  #admit(connection: Connection): boolean {
    this.#stats.messagesReceived += 1;
    if (connection.admitMessage(performance.now())) return true;
    this.#log.debug('connection over the incoming message limit: closing it');
    this.#end(connection, CLOSE_POLICY, 'Too many requests');
    // A flooding client may never answer the close frame: do not wait for it.
    this.#end(connection);
    return false;
  }

  /** Ends a connection: with a close frame when `code` is given, else by cutting the socket. */
  #end(connection: Connection, code?: number, reason?: string): void {
    connection.isEnding = true;
    if (code === undefined) connection.ws.terminate();
    else connection.ws.close(code, reason);
  }

  #forget(connection: Connection): void {
    if (!this.#connections.delete(connection)) return;
    this.#stats.connectionsOpen -= 1;
    for (const name of connection.streams) this.#unsubscribe(connection, name);
    if (this.#connections.size === 0) this.#disarm();
    else this.#arm();
  }

  #onControl(connection: Connection, text: string): void {
    const message = parseControlMessage(text, this.#market);
    switch (message.kind) {
      case 'error':
        this.#send(connection, errorReply(message.code, message.msg, message.id));
        return;
      case 'LIST_SUBSCRIPTIONS':
        this.#send(connection, resultReply([...connection.streams], message.id));
        return;
      case 'GET_PROPERTY':
        this.#send(connection, resultReply(connection.isCombined, message.id));
        return;
      case 'SET_PROPERTY':
        connection.isCombined = message.value;
        this.#send(connection, resultReply(null, message.id));
        return;
      case 'UNSUBSCRIBE':
        for (const name of message.streams) this.#unsubscribe(connection, name);
        this.#send(connection, resultReply(null, message.id));
        return;
      case 'SUBSCRIBE': {
        const added = message.streams.filter((name) => !connection.streams.has(name)).length;
        if (connection.streams.size + added > this.#maxStreams) {
          const msg = `Invalid request: too many streams: ${connection.streams.size} subscribed + ${added} requested > ${this.#maxStreams} per connection`;
          this.#send(connection, errorReply(2, msg, message.id));
          return;
        }
        for (const name of message.streams) this.#subscribe(connection, name);
        this.#send(connection, resultReply(null, message.id));
        this.#arm();
        return;
      }
    }
  }

  #subscribe(connection: Connection, name: string): void {
    if (connection.streams.has(name)) return;
    connection.streams.add(name);
    // Unrouted UM connections keep their subscription list but are never fed.
    if (!connection.isRouted) return;
    const ref = parseStreamName(name, this.#market);
    if (ref === undefined) return;
    const cadenceMs = this.#cadenceOf(ref.interval);
    let group = this.#groups.get(cadenceMs);
    if (group === undefined) {
      group = { cadenceMs, feeds: new Map(), nextAt: performance.now() + cadenceMs };
      this.#groups.set(cadenceMs, group);
    }
    let feed = group.feeds.get(name);
    if (feed === undefined) {
      feed = { name, symbol: ref.symbol, interval: ref.interval, subscribers: new Set(), lastOpenTime: undefined };
      group.feeds.set(name, feed);
    }
    feed.subscribers.add(connection);
  }

  #unsubscribe(connection: Connection, name: string): void {
    connection.streams.delete(name);
    const ref = parseStreamName(name, this.#market);
    if (ref === undefined) return;
    const group = this.#groups.get(this.#cadenceOf(ref.interval));
    const feed = group?.feeds.get(name);
    if (group === undefined || feed === undefined) return;
    feed.subscribers.delete(connection);
    if (feed.subscribers.size > 0) return;
    group.feeds.delete(name);
    if (group.feeds.size === 0) this.#groups.delete(group.cadenceMs);
  }

  #send(connection: Connection, text: string | Buffer): void {
    const { ws } = connection;
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.#log.debug('connection too slow to keep up: dropping it');
      this.#end(connection);
      return;
    }
    ws.send(text, { binary: false });
    this.#stats.framesSent += 1;
  }

  /** Sends an event, or a malformed frame in its place while the fault asks for some. */
  #sendEvent(connection: Connection, frame: Buffer): void {
    const faults = this.#world.faults;
    if (faults.streamMalformedNext > 0 && connection.ws.readyState === connection.ws.OPEN) {
      faults.streamMalformedNext -= 1;
      // Half an event: looks like the real thing but is not valid JSON.
      this.#send(connection, `${frame.subarray(0, Math.max(1, frame.length >> 1)).toString()}\u0000`);
      return;
    }
    this.#send(connection, frame);
  }

  /** Pushes every feed of a cadence group once: one event text per feed, shared by subscribers. */
  #push(group: CadenceGroup): void {
    if (this.#world.faults.streamsStalled) return;
    const now = this.#world.now();
    for (const feed of group.feeds.values()) {
      const openTime = openTimeOf(feed.interval, now);
      const previous = feed.lastOpenTime;
      if (previous !== undefined && previous < openTime) {
        const final = this.#world.kline(this.#market, feed.symbol, feed.interval, previous, now);
        if (final !== undefined) this.#deliver(feed, klineEventJson(feed.symbol, feed.interval, final, true, now));
        feed.lastOpenTime = undefined;
      }
      const forming = this.#world.kline(this.#market, feed.symbol, feed.interval, openTime, now);
      // No candle: the symbol is unknown, not trading or suspended. Nothing is pushed.
      if (forming === undefined) continue;
      feed.lastOpenTime = openTime;
      this.#deliver(feed, klineEventJson(feed.symbol, feed.interval, forming, false, now));
    }
  }

  #deliver(feed: Feed, eventJson: string): void {
    let raw: Buffer | undefined;
    let combined: Buffer | undefined;
    for (const connection of feed.subscribers) {
      if (connection.isCombined) {
        combined ??= Buffer.from(combinedFrame(feed.name, eventJson));
        this.#sendEvent(connection, combined);
      } else {
        raw ??= Buffer.from(eventJson);
        this.#sendEvent(connection, raw);
      }
    }
  }

  #pingAll(now: number): void {
    for (const connection of this.#connections) {
      if (connection.ws.readyState !== connection.ws.OPEN) continue;
      connection.pingSeq += 1;
      connection.unansweredSince ??= now;
      connection.ws.ping(String(connection.pingSeq));
    }
  }

  /** Closes connections past their pong deadline or lifetime. */
  #expire(now: number): void {
    for (const connection of this.#connections) {
      if (connection.isEnding) continue;
      if (connection.unansweredSince !== undefined && now - connection.unansweredSince >= this.#pongTimeoutMs) {
        this.#log.debug('no pong in time: dropping the connection');
        this.#end(connection);
      } else if (now - connection.openedAt >= this.#maxLifetimeMs) {
        this.#end(connection, CLOSE_NORMAL, 'connection lifetime reached');
      }
    }
  }

  #onTimer(): void {
    this.#timer = undefined;
    const now = performance.now();
    const due = [...this.#groups.values()].filter((group) => group.nextAt <= now);
    if (due.length > 0) {
      // One write per connection per tick instead of one per frame: the syscalls dominate otherwise.
      for (const connection of this.#connections) connection.socket.cork();
      try {
        for (const group of due) this.#push(group);
      } finally {
        for (const connection of this.#connections) connection.socket.uncork();
      }
      for (const group of due) {
        group.nextAt += group.cadenceMs;
        // After a stall of the event loop, skip the missed pushes rather than bursting them.
        if (group.nextAt <= now) group.nextAt = now + group.cadenceMs;
      }
    }
    if (this.#nextPingAt <= now) {
      this.#pingAll(now);
      this.#nextPingAt = now + this.#pingIntervalMs;
    }
    this.#expire(now);
    this.#arm();
  }

  /** Re-arms the single timer for the earliest deadline. */
  #arm(): void {
    if (this.#closing !== undefined || this.#connections.size === 0) {
      this.#disarm();
      return;
    }
    let next = this.#nextPingAt;
    for (const group of this.#groups.values()) next = Math.min(next, group.nextAt);
    for (const connection of this.#connections) {
      if (connection.isEnding) continue;
      next = Math.min(next, connection.openedAt + this.#maxLifetimeMs);
      if (connection.unansweredSince !== undefined) next = Math.min(next, connection.unansweredSince + this.#pongTimeoutMs);
    }
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const delay = Math.min(MAX_TIMER_DELAY_MS, Math.max(0, next - performance.now()));
    this.#timer = setTimeout(() => this.#onTimer(), delay);
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#connections.size === 0) this.#nextPingAt = Infinity;
  }
}
