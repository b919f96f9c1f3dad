/**
 * Reads a publisher's rings from NATS (wire format v1, src/publish/wire.ts, docs/nats-format.md)
 * into local CandleRings and serves them with the in-process reading API: getCandleSecurity,
 * status, symbols, on('candleClosed' | 'stale'), close. A bot switches between an in-process
 * CandleServer and a remote reader by changing the line that creates it.
 *
 * ```
 *   JetStream PREFIX_MARKET_INTERVAL ──ordered consumer, deliver all──► ring rows (final; last per open time wins)
 *   core PREFIX.live.MARKET.INTERVAL.*  ─────────────────────────────► newest row (forming, or final)
 *   core PREFIX.status.MARKET.INTERVAL  ─────────────────────────────► per symbol: c, state; the exchange clock
 * ```
 *
 * The ordered consumer reads every subject from the first message kept (at most LENGTH per
 * symbol), then goes on with what is stored later: closes, and repairs that rewrite older
 * candles. It re-creates itself at the sequence after the last one delivered when it misses one
 * (a NATS restart, a reconnect), so nothing stored is skipped; a stream created again (a NATS
 * server that lost its store) is read again from its start. Several publishers (shards) on one
 * NATS make one stream and one status subject: the reader keeps what each says per symbol.
 *
 * Freshness is the in-process rule on the publisher's exchange clock (estimated from the
 * heartbeats): a dead publisher or a dead NATS stops the confirmations, and getCandleSecurity is
 * empty once they are older than securitySeconds, without a timer.
 *
 * @example
 * ```ts
 * import { connectRemote } from 'candle-server/remote';
 * const candles = await connectRemote({ servers: 'nats://10.0.0.5:4222', market: 'UM', bar: '1m' });
 * const view = candles.getCandleSecurity('BTCUSDT', 180); // zero-copy; read it synchronously
 * await candles.close();
 * ```
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Interval, MarketType } from '../binance/markets.js';
import type { SymbolStatus } from '../candle-server.js';
import { ClosedError, ConfigError, InvalidArgumentError, redactCredentials } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { decodeCandle, decodeStatus, liveSubject, statusSubject, streamName, type CandleMessage } from '../publish/wire.js';
import { CandleRing } from '../store/candle-ring.js';
import { EMPTY_CANDLE_VIEW, type CandleView } from '../store/candle-view.js';
import type { CandleEvents } from '../sync/candle-sync.js';
import { backoffDelay, sleep } from '../util/abort.js';
import { SafeEmitter } from '../util/emitter.js';
import { loadNatsClient, natsServers, splitNatsCredentials } from '../util/nats-url.js';
import { ExchangeClockEstimate } from './exchange-clock.js';
import { RemoteSymbol } from './remote-symbol.js';

/** Options of {@link RemoteCandleReader}. */
export interface RemoteCandleReaderOptions {
  /** NATS servers: comma-separated nats:// or tls:// URLs, credentials allowed (as the publisher's NATS_URL). */
  readonly servers: string;
  /** The publisher's NATS_SUBJECT_PREFIX (default 'candles'). */
  readonly prefix?: string;
  /** The market: 'SPOT', 'UM' or 'CM'. */
  readonly market: MarketType;
  /** The publisher's BAR: the interval getCandleSecurity reads by default. */
  readonly bar: Interval;
  /** More of the publisher's intervals (its INTERVALS) to follow. */
  readonly intervals?: readonly Interval[];
  /** The symbols to follow (default: every symbol that appears on the streams). */
  readonly symbols?: readonly string[];
  /** Rows per ring (default: the stream's max_msgs_per_subject, the publisher's LENGTH). */
  readonly length?: number;
  /** A `stale` event is emitted once the exchange has not confirmed a symbol for this long (default 10 s). */
  readonly staleAfterSeconds?: number;
  /** A pino logger; silent by default. */
  readonly logger?: Logger;
}

/** The events of a remote reader: those of CandleServer that a reader of the rings sees. */
export type RemoteCandleEvents = Pick<CandleEvents, 'candleClosed' | 'stale'>;

/** What the reader knows of one stream (market and interval). */
interface Feed {
  readonly interval: Interval;
  readonly stream: string;
  readonly length: number;
  readonly symbols: Map<string, RemoteSymbol>;
  // The stream's creation time: another one means the stream was created again (read it from its start).
  created: string;
  // Stream sequence of the last message when the initial read began: reached means caught up.
  readonly initialLastSeq: number;
  isCaughtUp: boolean;
  readonly caughtUp: Deferred;
  messages: ConsumerMessages | undefined;
}

const DEFAULT_PREFIX = 'candles';

/** A promise with its resolve and reject (Promise.withResolvers, which Node 20 lacks). */
interface Deferred {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

function deferred(): Deferred {
  let resolve: () => void = () => undefined;
  let reject: (error: unknown) => void = () => undefined;
  const promise = new Promise<void>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

/** Reads a publisher's rings from NATS and serves them like an in-process CandleServer; see the module comment. */
export class RemoteCandleReader {
  readonly market: MarketType;
  readonly bar: Interval;
  /** BAR and the intervals followed. */
  readonly intervals: readonly Interval[];
  readonly #options: RemoteCandleReaderOptions;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #symbolFilter: ReadonlySet<string> | undefined;
  readonly #staleAfterMs: number;
  readonly #clock = new ExchangeClockEstimate();
  readonly #events: SafeEmitter<RemoteCandleEvents>;
  readonly #feeds = new Map<Interval, Feed>();
  readonly #stopping = new AbortController();
  // Settles once every stream was read up to where it was at start; rejects when the start fails.
  readonly #ready = deferred();
  #running: Promise<void> | undefined;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  readonly #subscriptions: Subscription[] = [];
  readonly #loops: Array<Promise<void>> = [];
  // Emits `stale`: the one timer of the reader (freshness itself needs none).
  #staleTimer: ReturnType<typeof setInterval> | undefined;

  constructor(options: RemoteCandleReaderOptions) {
    const issues = [];
    if (natsServers(options.servers) === undefined) {
      issues.push({
        path: 'servers',
        received: redactCredentials(options.servers),
        message: 'expected comma-separated nats:// or tls:// URLs',
      });
    }
    if (options.length !== undefined && !(Number.isSafeInteger(options.length) && options.length > 0)) {
      issues.push({ path: 'length', received: options.length, message: 'expected a positive integer' });
    }
    if (options.staleAfterSeconds !== undefined && !(options.staleAfterSeconds > 0)) {
      issues.push({ path: 'staleAfterSeconds', received: options.staleAfterSeconds, message: 'expected a positive number' });
    }
    if (issues.length > 0) throw new ConfigError('RemoteCandleReader options', issues);
    this.#options = options;
    this.market = options.market;
    this.bar = options.bar;
    this.intervals = [...new Set([options.bar, ...(options.intervals ?? [])])];
    this.#prefix = options.prefix ?? DEFAULT_PREFIX;
    this.#symbolFilter = options.symbols === undefined ? undefined : new Set(options.symbols);
    this.#staleAfterMs = (options.staleAfterSeconds ?? 10) * 1000;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'remote-reader', market: options.market });
    this.#events = new SafeEmitter((error, event) => this.#logger.error({ err: error, event }, 'a listener threw'));
    // Nobody need await `ready`; a failed start is reported there and by start().
    this.#ready.promise.catch(() => undefined);
  }

  /** Resolves once every stream was read up to where it was at start (call `start` first); rejects when the start fails. */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }

  /**
   * Connects (trying again with back-off until NATS answers and the streams exist, or `close`),
   * reads every stream and follows it; resolves like `ready`. Idempotent.
   */
  start(): Promise<void> {
    this.#running ??= this.#run().then(
      () => this.#ready.resolve(),
      (error: unknown) => {
        const failure = this.#stopping.signal.aborted ? new ClosedError('RemoteCandleReader') : error;
        this.#ready.reject(failure);
      },
    );
    return this.#ready.promise;
  }

  /**
   * The last LENGTH candles of `symbol` when they are fresh on the publisher's exchange clock (see
   * CandleServer.getCandleSecurity), else an empty view. Zero-copy unless `{ copy: true }`.
   */
  getCandleSecurity(
    symbol: string,
    securitySeconds = 180,
    options?: { readonly interval?: Interval; readonly copy?: boolean },
  ): CandleView {
    if (!(securitySeconds > 0)) throw new InvalidArgumentError(`securitySeconds must be a positive number, got ${String(securitySeconds)}`);
    const feed = this.#feed(options?.interval);
    const remote = feed?.symbols.get(symbol);
    if (remote === undefined || feed?.isCaughtUp !== true || this.#stopping.signal.aborted) return EMPTY_CANDLE_VIEW;
    if (!remote.isServable(securitySeconds * 1000, this.#clock.now())) return EMPTY_CANDLE_VIEW;
    return options?.copy === true ? remote.ring.copy() : remote.ring.view();
  }

  /** The local ring of `symbol` as it is, fresh or not (empty for a symbol not seen): for inspection. Zero-copy. */
  readRing(symbol: string, options?: { readonly interval?: Interval }): CandleView {
    return this.#feed(options?.interval)?.symbols.get(symbol)?.ring.view() ?? EMPTY_CANDLE_VIEW;
  }

  /** Why `symbol` is or is not served for `securitySeconds`, with the ages on the publisher's exchange clock. */
  status(symbol: string, securitySeconds = 180, options?: { readonly interval?: Interval }): SymbolStatus {
    const interval = this.#intervalOf(options?.interval);
    const feed = this.#feeds.get(interval);
    const remote = feed?.symbols.get(symbol);
    const now = this.#clock.now();
    const newest = remote?.ring.newestOpenTime;
    return {
      symbol,
      interval,
      state: remote === undefined || feed === undefined ? 'unknown' : remote.state(securitySeconds * 1000, now, feed.isCaughtUp),
      rows: remote?.ring.count ?? 0,
      newestOpenTime: newest,
      newestAgeMs: newest === undefined ? undefined : now - newest,
      confirmedAgeMs: remote === undefined || remote.confirmedAt === 0 ? undefined : now - remote.confirmedAt,
      repairingFrom: remote?.holeFrom(),
      bannedUntil: undefined,
    };
  }

  /** The symbols seen on the streams (of BAR), sorted. */
  symbols(): string[] {
    return [...(this.#feeds.get(this.bar)?.symbols.keys() ?? [])].sort();
  }

  /** The publisher's exchange time now, as estimated from its heartbeats (the local clock before the first). */
  exchangeTime(): number {
    return this.#clock.now();
  }

  /** Listens to `candleClosed` or `stale`; returns a function that stops listening. */
  on<E extends keyof RemoteCandleEvents>(event: E, listener: RemoteCandleEvents[E]): () => void {
    return this.#events.on(event, listener);
  }

  /** Stops reading and closes the connection; no handle is left open. Idempotent. */
  async close(): Promise<void> {
    this.#stopping.abort();
    if (this.#staleTimer !== undefined) clearInterval(this.#staleTimer);
    this.#staleTimer = undefined;
    for (const subscription of this.#subscriptions.splice(0)) subscription.unsubscribe();
    for (const feed of this.#feeds.values()) {
      feed.caughtUp.resolve();
      await feed.messages?.close().catch(() => undefined);
      feed.messages = undefined;
    }
    const nc = this.#nc;
    this.#nc = undefined;
    if (nc !== undefined && !nc.isClosed()) await nc.close().catch(() => undefined);
    await this.#running;
    await Promise.allSettled(this.#loops);
    this.#events.clear();
  }

  async #run(): Promise<void> {
    const client = await loadNatsClient('RemoteCandleReader', 'servers');
    const signal = this.#stopping.signal;
    const { servers, user, pass } = splitNatsCredentials(this.#options.servers);
    for (let attempt = 0; this.#nc === undefined; attempt += 1) {
      try {
        const nc = await client.connect({
          servers,
          ...(user === undefined ? {} : { user }),
          ...(pass === undefined ? {} : { pass }),
          name: `candle-server remote reader ${this.market}`,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1000,
          reconnectJitter: 500,
        });
        if (signal.aborted) await nc.close();
        else this.#nc = nc;
      } catch (error) {
        if (signal.aborted) throw error;
        const delayMs = backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 });
        this.#logger.warn({ err: error, servers: servers.map(redactCredentials), delayMs }, 'NATS unreachable; trying again');
        await sleep(delayMs, signal, 'NATS connect');
      }
      if (signal.aborted) throw new ClosedError('RemoteCandleReader');
    }
    const nc = this.#nc;
    this.#jsm = await client.jetstreamManager(nc);
    this.#js = client.jetstream(nc);
    this.#loops.push(this.#statusLoop(nc));
    await Promise.all(this.intervals.map((interval) => this.#follow(nc, interval)));
    if (signal.aborted) throw new ClosedError('RemoteCandleReader');
    this.#staleTimer = setInterval(() => this.#reportStale(), 1000);
    this.#logger.info({ intervals: this.intervals, symbols: this.symbols().length }, 'remote rings read; following');
  }

  /** Reads the stream of `interval` (waiting until it exists), subscribes to its live and status subjects, and follows it. */
  async #follow(nc: NatsConnection, interval: Interval): Promise<void> {
    const jsm = this.#jsm;
    if (jsm === undefined) return;
    const stream = streamName(this.#prefix, this.market, interval);
    const signal = this.#stopping.signal;
    let info: Awaited<ReturnType<JetStreamManager['streams']['info']>> | undefined;
    for (let attempt = 0; info === undefined; attempt += 1) {
      try {
        info = await jsm.streams.info(stream);
      } catch (error) {
        if (signal.aborted) throw new ClosedError('RemoteCandleReader');
        const delayMs = backoffDelay(attempt, { baseMs: 500, maxMs: 10_000 });
        this.#logger.warn({ err: error, stream, delayMs }, 'NATS stream not readable yet; trying again');
        await sleep(delayMs, signal, 'NATS stream');
      }
    }
    const length = this.#options.length ?? info.config.max_msgs_per_subject;
    if (!(Number.isSafeInteger(length) && length > 0)) {
      throw new ConfigError(`NATS stream ${stream}`, [
        { path: 'max_msgs_per_subject', received: length, message: 'expected a positive LENGTH (or pass the length option)' },
      ]);
    }
    const feed: Feed = {
      interval,
      stream,
      length,
      symbols: new Map(),
      created: info.created,
      initialLastSeq: info.state.last_seq,
      isCaughtUp: info.state.messages === 0,
      caughtUp: deferred(),
      messages: undefined,
    };
    this.#feeds.set(interval, feed);
    if (feed.isCaughtUp) feed.caughtUp.resolve();
    // Live and status first: nothing said while the stream is read is lost.
    const prefix = this.#prefix;
    this.#subscriptions.push(
      nc.subscribe(liveSubject(prefix, this.market, interval, '*'), {
        callback: (error, msg) => {
          if (error === null) this.#onLive(feed, msg.string());
        },
      }),
      nc.subscribe(statusSubject(prefix, this.market, interval), {
        callback: (error, msg) => {
          if (error === null) this.#onStatus(feed, msg.string());
        },
      }),
    );
    await this.#consume(feed);
    await feed.caughtUp.promise;
  }

  /** An ordered consumer over the whole stream (deliver all), each message written into its ring as it arrives. */
  async #consume(feed: Feed): Promise<void> {
    const js = this.#js;
    if (js === undefined || this.#stopping.signal.aborted) return;
    // The whole stream (its subjects are the symbols'); no filter, which servers before 2.10 refuse.
    const consumer = await js.consumers.get(feed.stream, { deliver_policy: 'all' });
    feed.messages = await consumer.consume({ callback: (msg) => this.#onStored(feed, msg) });
    const messages = feed.messages;
    this.#loops.push(
      (async () => {
        for await (const status of messages.status()) {
          if (status.type === 'ordered_consumer_recreated' || status.type === 'reset') {
            this.#logger.info(
              { stream: feed.stream, status: status.type },
              'stream consumer re-created; reading on from the last candle read',
            );
          }
        }
      })().catch(() => undefined),
    );
  }

  #onStored(feed: Feed, msg: JsMsg): void {
    const candle = this.#decode(msg.string(), feed.interval);
    if (candle !== undefined) this.#applyCandle(feed, candle, true);
    if (!feed.isCaughtUp && (msg.seq >= feed.initialLastSeq || msg.info.pending === 0)) {
      feed.isCaughtUp = true;
      feed.caughtUp.resolve();
    }
  }

  #onLive(feed: Feed, text: string): void {
    const candle = this.#decode(text, feed.interval);
    if (candle === undefined) return;
    this.#clock.observe(candle.t);
    this.#applyCandle(feed, candle, candle.x);
  }

  #onStatus(feed: Feed, text: string): void {
    let status;
    try {
      status = decodeStatus(text);
    } catch {
      status = undefined;
    }
    if (status?.m !== this.market || status.i !== feed.interval) return;
    this.#clock.observe(status.t);
    // Shards share the subject: each heartbeat speaks for its own symbols only, so merge per symbol.
    for (const [symbol, entry] of Object.entries(status.s)) {
      const remote = this.#remote(feed, symbol);
      if (remote === undefined) continue;
      remote.confirm(entry.c);
      remote.publisherState = entry.st;
    }
  }

  #applyCandle(feed: Feed, candle: CandleMessage, isFinal: boolean): void {
    const remote = this.#remote(feed, candle.s);
    if (remote === undefined) return;
    if (remote.applyCandle(candle.k, isFinal, candle.c) === 'closed' && feed.isCaughtUp) {
      this.#events.emit('candleClosed', {
        symbol: candle.s,
        interval: feed.interval,
        openTime: candle.k[0] as number,
        close: candle.k[4] as number,
      });
    }
  }

  /** The symbol's bookkeeping, created on first sight; undefined for a symbol not followed. */
  #remote(feed: Feed, symbol: string): RemoteSymbol | undefined {
    let remote = feed.symbols.get(symbol);
    if (remote === undefined) {
      if (this.#symbolFilter !== undefined && !this.#symbolFilter.has(symbol)) return undefined;
      remote = new RemoteSymbol(symbol, feed.interval, new CandleRing(feed.length));
      feed.symbols.set(symbol, remote);
    }
    return remote;
  }

  #decode(text: string, interval: Interval): CandleMessage | undefined {
    try {
      const candle = decodeCandle(text);
      return candle?.m === this.market && candle.i === interval ? candle : undefined;
    } catch {
      return undefined;
    }
  }

  /** Follows the connection: after a reconnect, a stream created again is read again from its start. */
  async #statusLoop(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') this.#logger.warn({ server: redactCredentials(status.server) }, 'NATS disconnected');
      if (status.type === 'reconnect') {
        this.#logger.info({ server: redactCredentials(status.server) }, 'NATS reconnected');
        void this.#afterReconnect();
      }
    }
  }

  async #afterReconnect(): Promise<void> {
    const jsm = this.#jsm;
    if (jsm === undefined) return;
    for (const feed of this.#feeds.values()) {
      try {
        const info = await jsm.streams.info(feed.stream);
        if (info.created === feed.created || this.#stopping.signal.aborted) continue;
        this.#logger.warn({ stream: feed.stream }, 'NATS stream created again; reading it from its start');
        feed.created = info.created;
        await feed.messages?.close().catch(() => undefined);
        await this.#consume(feed);
      } catch (error) {
        if (!this.#stopping.signal.aborted)
          this.#logger.warn({ err: error, stream: feed.stream }, 'NATS stream not checked after the reconnect');
      }
    }
  }

  #reportStale(): void {
    const feed = this.#feeds.get(this.bar);
    if (feed === undefined) return;
    const now = this.#clock.now();
    for (const remote of feed.symbols.values()) {
      const age = now - remote.confirmedAt;
      if (remote.confirmedAt > 0 && !remote.isReportedStale && age >= this.#staleAfterMs) {
        remote.isReportedStale = true;
        this.#events.emit('stale', { symbol: remote.symbol, ageMs: age });
      }
    }
  }

  #feed(interval: Interval | undefined): Feed | undefined {
    return this.#feeds.get(this.#intervalOf(interval));
  }

  /** BAR when `interval` is undefined; throws InvalidArgumentError for an interval not followed. */
  #intervalOf(interval: Interval | undefined): Interval {
    if (interval === undefined) return this.bar;
    if (this.intervals.includes(interval)) return interval;
    throw new InvalidArgumentError(
      `interval ${JSON.stringify(interval)} is not followed by this ${this.market} remote reader; expected one of ${this.intervals.join(', ')}`,
    );
  }
}

/**
 * Creates a remote reader, starts it and resolves once every stream was read (see
 * RemoteCandleReader): the remote counterpart of `new CandleServer(...)` + `runCandleMap()`.
 *
 * @example
 * ```ts
 * const candles = await connectRemote({ servers: 'nats://10.0.0.5:4222', market: 'UM', bar: '1m', intervals: ['1h'] });
 * candles.getCandleSecurity('BTCUSDT', 180, { interval: '1h' });
 * ```
 */
export async function connectRemote(options: RemoteCandleReaderOptions): Promise<RemoteCandleReader> {
  const reader = new RemoteCandleReader(options);
  try {
    await reader.start();
  } catch (error) {
    await reader.close();
    throw error;
  }
  return reader;
}
