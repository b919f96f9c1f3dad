/**
 * Live klines over Binance's combined WebSocket streams, for many symbols of one market and
 * interval. Streams cost no request weight; the REST repair of what a disconnect missed is the
 * caller's job, and this client says exactly which symbols were interrupted and since when.
 *
 * ```
 *  symbols ──> slots (at most maxStreamsPerConnection streams each), one socket per slot
 *              slot 1: primary socket ──┐ kline frames, decoded synchronously ──> onKline
 *                      replacement ─────┘ (only while rotating: both open until it has data)
 *  one tick timer: watchdogs (socket and per stream), rotation before the 24 h limit
 * ```
 *
 * - A slot connects with its streams in the URL; later joins and leaves go as SUBSCRIBE and
 *   UNSUBSCRIBE, paced within the incoming-message limit (pongs count too; `ws` answers pings).
 * - A socket without kline data for `staleAfterMs` is dead even if open: 'interrupted', then a
 *   reconnect with jittered exponential back-off, then 'resumed' once data flows again.
 * - One silent stream among live ones (a halted symbol, say) is reported 'interrupted' on its own
 *   and 'resumed' when it speaks again; its connection is left alone.
 * - Rotation (age or `serverShutdown`) opens the replacement first and closes the old socket
 *   only once the new one delivers; a gap that still happened (the server closed the old socket
 *   first and a candle's final update was missed) is reported per symbol.
 *
 * @example
 * ```ts
 * const streams = new KlineStreams({
 *   market: 'UM',
 *   interval: '1m',
 *   onKline: (symbol, values, isClosed) => ring(symbol).upsert(values), // values is reused
 *   onEvent: (event) => { if (event.type === 'interrupted') repairFrom(event.symbols, event.since); },
 * });
 * streams.setSymbols(['BTCUSDT', 'ETHUSDT']);
 * streams.start();
 * // ... later
 * await streams.close();
 * ```
 */
import type { Agent as HttpAgent } from 'node:http';
import { WebSocket } from 'ws';
import { ClosedError, InvalidArgumentError, redactCredentials } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { backoffDelay } from '../util/abort.js';
import { nextOpenTime } from '../binance/intervals.js';
import { KlineFrameDecoder, klineStreamName } from './kline-stream-decode.js';
import { MessagePacer } from './kline-stream-pacer.js';
import { MARKETS, SYMBOL_PATTERN, type Interval, type MarketType } from '../binance/markets.js';
import { positiveOption } from '../util/options.js';
import { proxyWebSocketAgent, redactProxyUrl } from './proxy.js';

/**
 * Called for every kline update, synchronously from the socket's message event. `values` holds
 * the 12 columns in REST order (open time, open, high, low, close, volume, close time, quote
 * volume, trades, taker-buy base, taker-buy quote, ignore) and is **reused** by the next update:
 * copy what must outlive the call.
 *
 * @example
 * ```ts
 * const onKline: KlineHandler = (symbol, values, isClosed, eventTime) => {
 *   if (isClosed) console.log(symbol, 'closed at', values[4], 'event', eventTime);
 * };
 * ```
 */
export type KlineHandler = (symbol: string, values: Float64Array, isClosed: boolean, eventTime: number) => void;

/**
 * What happened to the streams. `since` is the local time (epoch ms, `Date.now()`) of the last
 * data before the interruption: candles from its open time on must be fetched over REST.
 *
 * @example
 * ```ts
 * const onEvent = (event: StreamEvent): void => {
 *   if (event.type === 'interrupted') markHoles(event.symbols, event.since);
 *   if (event.type === 'resumed') repair(event.symbols);
 * };
 * ```
 */
export type StreamEvent =
  | { readonly type: 'interrupted'; readonly symbols: string[]; readonly since: number; readonly reason: string }
  | { readonly type: 'resumed'; readonly symbols: string[] }
  | {
      readonly type: 'reconnect';
      readonly connection: number;
      readonly attempt: number;
      readonly delayMs: number;
      readonly symbols: number;
    }
  | { readonly type: 'rotated'; readonly connection: number; readonly reason: string }
  | { readonly type: 'serverShutdown'; readonly connection: number }
  | { readonly type: 'malformed'; readonly detail: string };

/**
 * Options of {@link KlineStreams}. Limits default to the market's (see `MARKETS`).
 *
 * @example
 * ```ts
 * const options: KlineStreamsOptions = { market: 'SPOT', interval: '1s', onKline: () => {}, staleAfterMs: 5000 };
 * ```
 */
export interface KlineStreamsOptions {
  readonly market: MarketType;
  readonly interval: Interval;
  /** WebSocket base without UM's `/market` route (default: the market's Binance URL). */
  readonly baseUrl?: string;
  readonly maxStreamsPerConnection?: number;
  /** Messages per second the server accepts from a client (pongs included). */
  readonly maxIncomingPerSecond?: number;
  /** A socket or a stream without kline data this long is stalled (default max(10 s, 5 × cadence)). */
  readonly staleAfterMs?: number;
  /** Age at which a socket is replaced, before the server's 24 h limit (default 23 h). */
  readonly rotateAfterMs?: number;
  /** Reconnect back-off; the attempt count resets after a socket stayed up `resetAfterMs` (default 60 s). */
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number; readonly resetAfterMs?: number };
  /** Time allowed for the WebSocket handshake (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /** A proxy every stream connection is tunnelled through (HTTP CONNECT or SOCKS5; see exchange/proxy.ts). */
  readonly proxy?: URL | undefined;
  readonly logger?: Logger;
  readonly onKline: KlineHandler;
  readonly onEvent?: (event: StreamEvent) => void;
}

/**
 * The state of one symbol's stream.
 *
 * @example
 * ```ts
 * const status: StreamStatus | undefined = streams.status('BTCUSDT'); // { state: 'live', lastDataAt: 1770000000000 }
 * ```
 */
export interface StreamStatus {
  readonly state: 'connecting' | 'live' | 'stalled' | 'reconnecting';
  /** Local time (epoch ms) of the symbol's last kline update. */
  readonly lastDataAt?: number;
}

/**
 * Counters of a {@link KlineStreams} since it was created.
 *
 * @example
 * ```ts
 * const { connections, reconnects, malformed } = streams.stats;
 * ```
 */
export interface KlineStreamsStats {
  /** Sockets open now (briefly two per slot while rotating). */
  connections: number;
  reconnects: number;
  rotations: number;
  /** Kline updates delivered to `onKline`. */
  messages: number;
  malformed: number;
  /** Exceptions thrown by `onKline` or `onEvent`, caught and logged. */
  listenerErrors: number;
  /** SUBSCRIBE and UNSUBSCRIBE messages sent. */
  controlMessages: number;
}

const HOUR_MS = 3_600_000;
const DEFAULT_ROTATE_AFTER_MS = 23 * HOUR_MS;
const MIN_STALE_AFTER_MS = 10_000;
// Binance documents no limit on the URL; a long stream list goes as SUBSCRIBE batches instead.
const MAX_URL_STREAM_CHARS = 4000;
// Streams per SUBSCRIBE or UNSUBSCRIBE message: Binance documents no limit, so stay modest.
const MAX_STREAMS_PER_CONTROL = 200;
// After a reconnect every symbol's first update arrives within a tick: one 'resumed' for them all.
const RESUME_BATCH_MS = 50;
// At most one warning per this period for malformed frames and listener errors; the rest are counted.
const LOG_EVERY_MS = 10_000;
const CLOSE_GRACE_MS = 1000;

/** One symbol's stream and what was last seen on it. */
interface SymbolState {
  readonly symbol: string;
  readonly stream: string;
  readonly slot: Slot;
  /** When the symbol was added: the "since" of an interruption before its first update. */
  readonly addedAt: number;
  lastDataAt: number | undefined;
  lastOpenTime: number | undefined;
  lastIsClosed: boolean;
  /** The socket of the last update: a change of socket is where a gap can hide. */
  lastSocket: Socket | undefined;
  /** Reported interrupted and not yet resumed. */
  isInterrupted: boolean;
}

/** One WebSocket of a slot. */
interface Socket {
  readonly ws: WebSocket;
  readonly slot: Slot;
  readonly pacer: MessagePacer;
  /** Streams the server has for this socket (from the URL, then by our controls). */
  readonly subscribed: Set<string>;
  isOpen: boolean;
  /** Local time it opened (or was created, until then). */
  openedAt: number;
  /** Local time of its last kline update, or of its opening. */
  lastDataAt: number;
  hasData: boolean;
  /** Closed on purpose (rotated out, or its slot was removed): its close is not a drop. */
  isRetired: boolean;
  nextId: number;
}

/** A group of at most maxStreamsPerConnection streams sharing one connection across reconnects. */
interface Slot {
  readonly id: number;
  readonly symbols: Map<string, SymbolState>;
  primary: Socket | undefined;
  /** The socket that will take over while rotating. */
  replacement: Socket | undefined;
  attempt: number;
  /** Pending reconnect. */
  retryTimer: NodeJS.Timeout | undefined;
  /** Pending paced SUBSCRIBE/UNSUBSCRIBE flush. */
  flushTimer: NodeJS.Timeout | undefined;
  /** Earliest local time of the next rotation attempt after a failed one. */
  rotateNotBefore: number;
  rotationAttempt: number;
}

/**
 * Binance kline streams of many symbols of one market and interval, with watchdogs, reconnects
 * and rotation. Constructing does no I/O; `start()` connects.
 *
 * @example
 * ```ts
 * const streams = new KlineStreams({ market: 'SPOT', interval: '1m', onKline: (s, v) => console.log(s, v[4]) });
 * streams.setSymbols(['BTCUSDT']);
 * streams.start();
 * streams.status('BTCUSDT'); // { state: 'connecting' }, then 'live'
 * await streams.close();
 * ```
 */
export class KlineStreams {
  readonly #market: MarketType;
  readonly #interval: Interval;
  readonly #url: string;
  readonly #maxStreams: number;
  readonly #maxIncoming: number;
  readonly #staleAfterMs: number;
  readonly #rotateAfterMs: number;
  readonly #backoff: { baseMs: number; maxMs: number; resetAfterMs: number };
  readonly #handshakeTimeoutMs: number;
  // Tunnels every socket through the configured proxy; undefined for direct connections.
  readonly #agent: HttpAgent | undefined;
  // The proxy, credentials hidden, for log lines.
  readonly #via: string | undefined;
  readonly #log: Logger;
  readonly #onKline: KlineHandler;
  readonly #onEvent: ((event: StreamEvent) => void) | undefined;
  readonly #decoder: KlineFrameDecoder;
  readonly #symbols = new Map<string, SymbolState>();
  readonly #slots = new Map<number, Slot>();
  readonly #sockets = new Set<Socket>();
  readonly #stats: KlineStreamsStats = {
    connections: 0,
    reconnects: 0,
    rotations: 0,
    messages: 0,
    malformed: 0,
    listenerErrors: 0,
    controlMessages: 0,
  };
  #nextSlotId = 1;
  #isStarted = false;
  #isClosed = false;
  #closing: Promise<void> | undefined;
  /** The watchdog and rotation timer; runs between start() and close(). */
  #tick: NodeJS.Timeout | undefined;
  /** Symbols whose data came back, announced together in one 'resumed'. */
  readonly #resumed = new Set<string>();
  #resumeTimer: NodeJS.Timeout | undefined;
  /** Rate limit of warnings: when the last one was logged, and how many were held back since. */
  readonly #warned = new Map<string, { at: number; held: number }>();

  constructor(options: KlineStreamsOptions) {
    const spec = MARKETS[options.market];
    if (spec === undefined) {
      throw new InvalidArgumentError(`KlineStreams market must be SPOT, UM or CM, got ${JSON.stringify(options.market)}`);
    }
    if (!spec.intervals.includes(options.interval)) {
      throw new InvalidArgumentError(
        `KlineStreams interval ${JSON.stringify(options.interval)} is not offered on ${options.market}; expected one of ${spec.intervals.join(', ')}`,
      );
    }
    this.#market = options.market;
    this.#interval = options.interval;
    const base = (options.baseUrl ?? spec.wsBaseUrl).replace(/\/+$/, '');
    if (!/^wss?:\/\//.test(base))
      throw new InvalidArgumentError(`KlineStreams baseUrl must start with ws:// or wss://, got ${JSON.stringify(options.baseUrl)}`);
    this.#url = `${base}${spec.wsRoutePrefix}/stream`;
    this.#maxStreams = Math.floor(
      positiveOption('KlineStreams', 'maxStreamsPerConnection', options.maxStreamsPerConnection, spec.wsMaxStreamsPerConnection),
    );
    this.#maxIncoming = Math.floor(
      positiveOption('KlineStreams', 'maxIncomingPerSecond', options.maxIncomingPerSecond, spec.wsMaxIncomingPerSecond),
    );
    this.#staleAfterMs = positiveOption(
      'KlineStreams',
      'staleAfterMs',
      options.staleAfterMs,
      Math.max(MIN_STALE_AFTER_MS, 5 * spec.wsCadenceMs(options.interval)),
    );
    this.#rotateAfterMs = positiveOption('KlineStreams', 'rotateAfterMs', options.rotateAfterMs, DEFAULT_ROTATE_AFTER_MS);
    this.#backoff = {
      baseMs: positiveOption('KlineStreams', 'backoff.baseMs', options.backoff?.baseMs, 500),
      maxMs: positiveOption('KlineStreams', 'backoff.maxMs', options.backoff?.maxMs, 30_000),
      resetAfterMs: positiveOption('KlineStreams', 'backoff.resetAfterMs', options.backoff?.resetAfterMs, 60_000),
    };
    this.#handshakeTimeoutMs = positiveOption('KlineStreams', 'handshakeTimeoutMs', options.handshakeTimeoutMs, 10_000);
    this.#agent = options.proxy === undefined ? undefined : proxyWebSocketAgent(options.proxy, { timeoutMs: this.#handshakeTimeoutMs });
    this.#via = options.proxy === undefined ? undefined : redactProxyUrl(options.proxy);
    this.#log = (options.logger ?? silentLogger()).child({ component: 'kline-streams', market: options.market });
    this.#onKline = options.onKline;
    this.#onEvent = options.onEvent;
    this.#decoder = new KlineFrameDecoder(options.interval);
  }

  /** Counters since creation (a snapshot). */
  get stats(): KlineStreamsStats {
    return { ...this.#stats };
  }

  /**
   * Sets the symbols to stream. Joins and leaves apply at run time: SUBSCRIBE and UNSUBSCRIBE on
   * live connections (paced), connections opened or closed as needed. Throws InvalidArgumentError
   * on a name that is not a Binance symbol, ClosedError after close().
   */
  setSymbols(symbols: readonly string[]): void {
    if (this.#isClosed) throw new ClosedError('KlineStreams');
    symbols.forEach((symbol, index) => {
      if (typeof symbol !== 'string' || !SYMBOL_PATTERN.test(symbol)) {
        throw new InvalidArgumentError(`symbols[${index}] ${JSON.stringify(symbol)} is not a Binance symbol (A-Z, 0-9, _)`);
      }
    });
    const wanted = new Set(symbols);
    const touched = new Set<Slot>();
    for (const [symbol, state] of this.#symbols) {
      if (wanted.has(symbol)) continue;
      this.#symbols.delete(symbol);
      this.#resumed.delete(symbol);
      state.slot.symbols.delete(state.stream);
      touched.add(state.slot);
    }
    const now = Date.now();
    for (const symbol of wanted) {
      if (this.#symbols.has(symbol)) continue;
      const slot = this.#slotWithRoom() ?? this.#newSlot();
      const state: SymbolState = {
        symbol,
        stream: klineStreamName(symbol, this.#interval),
        slot,
        addedAt: now,
        lastDataAt: undefined,
        lastOpenTime: undefined,
        lastIsClosed: false,
        lastSocket: undefined,
        isInterrupted: false,
      };
      slot.symbols.set(state.stream, state);
      this.#symbols.set(symbol, state);
      touched.add(slot);
    }
    for (const slot of touched) {
      if (slot.symbols.size === 0) this.#removeSlot(slot);
      else if (this.#isStarted) this.#refresh(slot);
    }
  }

  /** Connects every slot and starts the watchdog. Idempotent; ClosedError after close(). */
  start(): void {
    if (this.#isClosed) throw new ClosedError('KlineStreams');
    if (this.#isStarted) return;
    this.#isStarted = true;
    for (const slot of this.#slots.values()) this.#refresh(slot);
    const every = Math.min(1000, Math.max(20, Math.floor(this.#staleAfterMs / 4)));
    this.#tick = setInterval(() => this.#onTick(), every);
  }

  /** The state of a symbol's stream, or undefined when the symbol is not streamed. */
  status(symbol: string): StreamStatus | undefined {
    const state = this.#symbols.get(symbol);
    if (state === undefined) return undefined;
    const { slot } = state;
    let value: StreamStatus['state'];
    if (state.isInterrupted) value = slot.primary?.isOpen === true ? 'stalled' : 'reconnecting';
    else value = state.lastDataAt === undefined ? 'connecting' : 'live';
    return state.lastDataAt === undefined ? { state: value } : { state: value, lastDataAt: state.lastDataAt };
  }

  /** Local time (epoch ms) of the symbol's last kline update, if any. */
  lastMessageAt(symbol: string): number | undefined {
    return this.#symbols.get(symbol)?.lastDataAt;
  }

  /** Closes every socket with a close handshake (cut after a grace period) and clears every timer. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  /** Cuts every socket at once and clears every timer. Idempotent. */
  destroy(): void {
    this.#stopTimers();
    for (const socket of this.#sockets) {
      socket.isRetired = true;
      socket.ws.terminate();
    }
    this.#agent?.destroy();
  }

  async #shutDown(): Promise<void> {
    this.#stopTimers();
    const closed = [...this.#sockets].map((socket) => {
      socket.isRetired = true;
      return new Promise<void>((resolve) => {
        if (socket.ws.readyState === WebSocket.CLOSED) resolve();
        else socket.ws.once('close', () => resolve());
        if (socket.ws.readyState === WebSocket.OPEN) socket.ws.close(1000, 'client closing');
        else socket.ws.terminate();
      });
    });
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(closed), new Promise<void>((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS)))]);
    clearTimeout(grace);
    for (const socket of this.#sockets) socket.ws.terminate();
    await Promise.all(closed);
    this.#agent?.destroy();
  }

  #stopTimers(): void {
    this.#isClosed = true;
    clearInterval(this.#tick);
    this.#tick = undefined;
    clearTimeout(this.#resumeTimer);
    this.#resumeTimer = undefined;
    for (const slot of this.#slots.values()) {
      clearTimeout(slot.retryTimer);
      clearTimeout(slot.flushTimer);
      slot.retryTimer = undefined;
      slot.flushTimer = undefined;
    }
  }

  #slotWithRoom(): Slot | undefined {
    for (const slot of this.#slots.values()) if (slot.symbols.size < this.#maxStreams) return slot;
    return undefined;
  }

  #newSlot(): Slot {
    const slot: Slot = {
      id: this.#nextSlotId++,
      symbols: new Map(),
      primary: undefined,
      replacement: undefined,
      attempt: 0,
      retryTimer: undefined,
      flushTimer: undefined,
      rotateNotBefore: 0,
      rotationAttempt: 0,
    };
    this.#slots.set(slot.id, slot);
    return slot;
  }

  #removeSlot(slot: Slot): void {
    this.#slots.delete(slot.id);
    clearTimeout(slot.retryTimer);
    clearTimeout(slot.flushTimer);
    for (const socket of [slot.primary, slot.replacement]) if (socket !== undefined) this.#retire(socket, 'no streams left');
  }

  /** Connects a slot that has no socket, or schedules the subscription changes of one that has. */
  #refresh(slot: Slot): void {
    if (slot.primary === undefined && slot.replacement === undefined) {
      if (slot.retryTimer === undefined) slot.primary = this.#connect(slot);
      return;
    }
    // Deferred: consecutive setSymbols calls coalesce into one SUBSCRIBE.
    slot.flushTimer ??= setTimeout(() => this.#flush(slot), 0);
  }

  #connect(slot: Slot): Socket {
    const names: string[] = [];
    let length = 0;
    for (const stream of slot.symbols.keys()) {
      length += stream.length + 1;
      if (length > MAX_URL_STREAM_CHARS) break;
      names.push(stream);
    }
    const ws = new WebSocket(`${this.#url}?streams=${names.join('/')}`, {
      perMessageDeflate: false,
      handshakeTimeout: this.#handshakeTimeoutMs,
      ...(this.#agent === undefined ? {} : { agent: this.#agent }),
    });
    const now = Date.now();
    const socket: Socket = {
      ws,
      slot,
      pacer: new MessagePacer(this.#maxIncoming),
      subscribed: new Set(names),
      isOpen: false,
      openedAt: now,
      lastDataAt: now,
      hasData: false,
      isRetired: false,
      nextId: 1,
    };
    this.#sockets.add(socket);
    ws.on('open', () => {
      socket.isOpen = true;
      socket.openedAt = socket.lastDataAt = Date.now();
      this.#stats.connections += 1;
      this.#flush(slot);
    });
    ws.on('message', (data, isBinary) => this.#onMessage(socket, isBinary ? '' : data.toString()));
    // `ws` answers each ping with a pong: that pong counts against the incoming-message limit.
    ws.on('ping', () => socket.pacer.record(performance.now()));
    ws.on('error', (error) => {
      if (this.#via === undefined) this.#log.debug({ err: error, connection: slot.id }, 'stream socket error');
      // Through a proxy, a failure is most often the proxy's: say which, without its credentials.
      else
        this.#log.warn(
          { error: redactCredentials(error.message), proxy: this.#via, connection: slot.id },
          `stream connection through the proxy ${this.#via} failed`,
        );
    });
    ws.on('close', (code, reason) => this.#onClose(socket, code, reason.toString()));
    return socket;
  }

  /** Sends the UNSUBSCRIBE and SUBSCRIBE that bring each open socket of a slot to its streams, paced. */
  #flush(slot: Slot): void {
    clearTimeout(slot.flushTimer);
    slot.flushTimer = undefined;
    if (this.#isClosed) return;
    let waitMs = 0;
    for (const socket of [slot.primary, slot.replacement]) {
      if (socket === undefined || !socket.isOpen) continue;
      const leaving = [...socket.subscribed].filter((stream) => !slot.symbols.has(stream));
      const joining = [...slot.symbols.keys()].filter((stream) => !socket.subscribed.has(stream));
      // Leaves first: the server counts streams per connection.
      waitMs = Math.max(waitMs, this.#sendControls(socket, 'UNSUBSCRIBE', leaving));
      if (waitMs === 0) waitMs = this.#sendControls(socket, 'SUBSCRIBE', joining);
    }
    if (waitMs > 0) slot.flushTimer = setTimeout(() => this.#flush(slot), waitMs);
  }

  /** Sends `streams` in batches while the pacer allows; returns how long to wait for the rest (0: all sent). */
  #sendControls(socket: Socket, method: 'SUBSCRIBE' | 'UNSUBSCRIBE', streams: readonly string[]): number {
    for (let start = 0; start < streams.length; start += MAX_STREAMS_PER_CONTROL) {
      const now = performance.now();
      const waitMs = socket.pacer.delayMs(now);
      if (waitMs > 0) return waitMs;
      const batch = streams.slice(start, start + MAX_STREAMS_PER_CONTROL);
      socket.ws.send(JSON.stringify({ method, params: batch, id: socket.nextId++ }));
      socket.pacer.record(now);
      this.#stats.controlMessages += 1;
      for (const stream of batch) {
        if (method === 'SUBSCRIBE') socket.subscribed.add(stream);
        else socket.subscribed.delete(stream);
      }
    }
    return 0;
  }

  /** The hot path: one frame, decoded and delivered synchronously. */
  #onMessage(socket: Socket, text: string): void {
    const frame = this.#decoder.decode(text);
    switch (frame.kind) {
      case 'kline':
        break;
      case 'malformed':
        this.#malformed(socket, frame.detail);
        return;
      case 'serverShutdown':
        this.#log.info({ connection: socket.slot.id }, 'serverShutdown: rotating the connection');
        this.#emit({ type: 'serverShutdown', connection: socket.slot.id });
        if (socket === socket.slot.primary) this.#rotate(socket.slot, 'serverShutdown');
        return;
      case 'reply':
        if (frame.detail !== '')
          this.#warn('reply', { connection: socket.slot.id, id: frame.id, error: frame.detail }, 'the stream server refused a request');
        return;
    }
    const state = this.#symbols.get(frame.symbol);
    // Updates for a symbol just left still arrive until the UNSUBSCRIBE lands: not an error.
    if (state === undefined) return;
    if (frame.stream !== '' && frame.stream !== state.stream) {
      this.#malformed(socket, `stream ${JSON.stringify(frame.stream)} carries ${frame.symbol}, expected ${JSON.stringify(state.stream)}`);
      return;
    }
    const now = Date.now();
    const values = frame.values;
    const openTime = values[0] as number;
    if (state.lastSocket !== socket) {
      if (!state.isInterrupted && state.lastSocket !== undefined && this.#isGap(state, openTime)) {
        this.#interrupt([state], `updates missed while connection ${socket.slot.id} changed sockets`);
      }
      state.lastSocket = socket;
    }
    state.lastDataAt = now;
    state.lastOpenTime = openTime;
    state.lastIsClosed = frame.isClosed;
    socket.lastDataAt = now;
    if (!socket.hasData) this.#onFirstData(socket);
    if (state.isInterrupted) this.#markResumed(state);
    this.#stats.messages += 1;
    try {
      this.#onKline(state.symbol, values, frame.isClosed, frame.eventTime);
    } catch (error) {
      this.#listenerFailed(error, 'onKline');
    }
  }

  /** True when an update opening at `openTime` does not follow on from the last one seen. */
  #isGap(state: SymbolState, openTime: number): boolean {
    const last = state.lastOpenTime;
    if (last === undefined || openTime <= last) return false;
    // The next candle follows on only if the last one's final update was seen.
    return !(state.lastIsClosed && openTime === nextOpenTime(this.#interval, last));
  }

  #onFirstData(socket: Socket): void {
    socket.hasData = true;
    const { slot } = socket;
    if (socket !== slot.replacement) return;
    // The replacement delivers: it takes over, and the old socket can go without a gap.
    const old = slot.primary;
    slot.primary = socket;
    slot.replacement = undefined;
    slot.rotationAttempt = 0;
    if (old !== undefined) this.#retire(old, 'rotated');
    this.#stats.rotations += 1;
    this.#emit({ type: 'rotated', connection: slot.id, reason: old === undefined ? 'replaced a closed socket' : 'replaced' });
  }

  #malformed(socket: Socket, detail: string): void {
    this.#stats.malformed += 1;
    this.#warn('malformed', { connection: socket.slot.id, detail }, 'malformed stream frame ignored');
    this.#emit({ type: 'malformed', detail });
  }

  #onClose(socket: Socket, code: number, reason: string): void {
    this.#sockets.delete(socket);
    if (socket.isOpen) this.#stats.connections -= 1;
    socket.isOpen = false;
    const { slot } = socket;
    if (this.#isClosed || socket.isRetired) return;
    this.#log.debug({ connection: slot.id, code, reason }, 'stream socket closed');
    const lifetime = Date.now() - socket.openedAt;
    if (socket === slot.replacement) {
      slot.replacement = undefined;
      if (slot.primary !== undefined) {
        // The old socket still works: try the rotation again later.
        slot.rotateNotBefore = Date.now() + backoffDelay(slot.rotationAttempt++, this.#backoff);
        return;
      }
    } else if (socket === slot.primary) {
      slot.primary = undefined;
      // Rotating: the replacement takes over (and reports any gap when its data arrives).
      if (slot.replacement !== undefined) return;
    } else {
      return;
    }
    if (socket.hasData && lifetime >= this.#backoff.resetAfterMs) slot.attempt = 0;
    const why = code === 1006 ? 'connection lost' : `closed with code ${code}${reason === '' ? '' : ` "${reason}"`}`;
    this.#interrupt([...slot.symbols.values()], `connection ${slot.id} ${why}`);
    this.#scheduleReconnect(slot);
  }

  #scheduleReconnect(slot: Slot): void {
    if (this.#isClosed || !this.#slots.has(slot.id)) return;
    const attempt = slot.attempt++;
    const delayMs = backoffDelay(attempt, this.#backoff);
    this.#stats.reconnects += 1;
    this.#emit({ type: 'reconnect', connection: slot.id, attempt: attempt + 1, delayMs, symbols: slot.symbols.size });
    slot.retryTimer = setTimeout(() => {
      slot.retryTimer = undefined;
      if (!this.#isClosed && this.#slots.has(slot.id) && slot.primary === undefined) slot.primary = this.#connect(slot);
    }, delayMs);
  }

  /** Opens the replacement of a slot's socket; the old one goes once the new one delivers. */
  #rotate(slot: Slot, reason: string): void {
    if (slot.replacement !== undefined || this.#isClosed) return;
    this.#log.info({ connection: slot.id, reason }, 'rotating the stream connection');
    slot.replacement = this.#connect(slot);
  }

  /** Closes a socket on purpose: its close is not a drop. */
  #retire(socket: Socket, reason: string): void {
    socket.isRetired = true;
    if (socket.ws.readyState === WebSocket.OPEN) socket.ws.close(1000, reason);
    else socket.ws.terminate();
  }

  /** Watchdogs and rotation, for every slot. */
  #onTick(): void {
    const now = Date.now();
    for (const slot of this.#slots.values()) {
      const { primary, replacement } = slot;
      if (replacement !== undefined && !replacement.hasData && now - replacement.openedAt >= this.#staleAfterMs) {
        this.#log.warn({ connection: slot.id }, 'replacement socket delivered nothing: dropping it');
        replacement.ws.terminate();
      }
      if (primary === undefined || !primary.isOpen) continue;
      if (now - primary.lastDataAt >= this.#staleAfterMs) {
        if (replacement !== undefined) continue;
        // Open but silent: dead. Its close reports the interruption and reconnects.
        this.#log.warn({ connection: slot.id, silentMs: now - primary.lastDataAt }, 'no kline data on the connection: reconnecting');
        this.#interrupt([...slot.symbols.values()], `no data on connection ${slot.id} for ${now - primary.lastDataAt} ms`);
        primary.ws.terminate();
        continue;
      }
      const stalled = [...slot.symbols.values()].filter(
        (state) => !state.isInterrupted && state.lastDataAt !== undefined && now - state.lastDataAt >= this.#staleAfterMs,
      );
      if (stalled.length > 0) this.#interrupt(stalled, `no data on the stream for ${this.#staleAfterMs} ms or more`);
      if (replacement === undefined && now - primary.openedAt >= this.#rotateAfterMs && now >= slot.rotateNotBefore) {
        this.#rotate(slot, 'age');
      }
    }
  }

  /** Reports symbols interrupted (those not already), since the earliest of their last updates. */
  #interrupt(states: readonly SymbolState[], reason: string): void {
    const fresh = states.filter((state) => !state.isInterrupted);
    if (fresh.length === 0) return;
    let since = Infinity;
    for (const state of fresh) {
      state.isInterrupted = true;
      this.#resumed.delete(state.symbol);
      since = Math.min(since, state.lastDataAt ?? state.addedAt);
    }
    this.#log.warn({ symbols: fresh.length, since, reason }, 'streams interrupted');
    this.#emit({ type: 'interrupted', symbols: fresh.map((state) => state.symbol), since, reason });
  }

  #markResumed(state: SymbolState): void {
    state.isInterrupted = false;
    this.#resumed.add(state.symbol);
    this.#resumeTimer ??= setTimeout(() => {
      this.#resumeTimer = undefined;
      const symbols = [...this.#resumed].filter((symbol) => this.#symbols.has(symbol));
      this.#resumed.clear();
      if (symbols.length > 0 && !this.#isClosed) this.#emit({ type: 'resumed', symbols });
    }, RESUME_BATCH_MS);
  }

  #emit(event: StreamEvent): void {
    if (this.#onEvent === undefined) return;
    try {
      this.#onEvent(event);
    } catch (error) {
      this.#listenerFailed(error, 'onEvent');
    }
  }

  #listenerFailed(error: unknown, listener: string): void {
    this.#stats.listenerErrors += 1;
    this.#warn(`listener:${listener}`, { err: error, listener }, 'a stream listener threw; ingestion goes on');
  }

  /** Logs a warning of one kind at most once per LOG_EVERY_MS, with the count held back since. */
  #warn(kind: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const last = this.#warned.get(kind);
    if (last !== undefined && now - last.at < LOG_EVERY_MS) {
      last.held += 1;
      return;
    }
    this.#log.warn({ ...fields, heldBack: last?.held ?? 0, market: this.#market }, message);
    this.#warned.set(kind, { at: now, held: 0 });
  }
}
