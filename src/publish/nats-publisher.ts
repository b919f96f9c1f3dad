/**
 * Publishes a CandleServer's rings to NATS (wire format v1, see ./wire.ts and docs/nats-format.md):
 * final candles to one JetStream stream per interval, the newest candle to core NATS at each update,
 * a heartbeat per interval every second. Loaded with `import()` by CandleServer only when the rule
 * sets NATS_URL; it loads the NATS client the same way, so nobody else loads it.
 *
 * Ingestion is never slowed: the `rows` listener only records what to publish and returns.
 *
 * ```
 *   rows event ──► #pending: (interval|symbol) → oldest `from` not yet stored   (one mark each)
 *              └─► #live:    (interval|symbol) set, flushed on setImmediate
 *   #storeLoop: takes a mark, reads the ring's final rows from `from`, js.publish with at most
 *               MAX_IN_FLIGHT acks in flight; a failed publish puts the mark back (min of from)
 * ```
 *
 * While NATS is unreachable the marks stay (bounded by symbols × intervals, not a queue); the ring
 * holds the rows, so after the reconnect the rows are read again from it. De-duplication by
 * Nats-Msg-Id makes re-publishing cheap (the start publishes the whole rings).
 *
 * @example
 * ```ts
 * const publisher = new NatsPublisher({ source: server, logger });
 * await publisher.start(signal); // connects, creates or checks the streams, publishes the rings
 * await publisher.close();
 * ```
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient, JetStreamManager, StreamConfig } from '@nats-io/jetstream';
import type { CandleServer } from '../candle-server.js';
import { ConfigError, redactCredentials, type ConfigIssue } from '../errors.js';
import { intervalMs } from '../binance/intervals.js';
import type { Interval } from '../binance/markets.js';
import type { Logger } from '../log.js';
import type { RowsKind } from '../sync/candle-sync.js';
import { backoffDelay, sleep } from '../util/abort.js';
import { forEachConcurrently } from '../util/concurrency.js';
import { lowerBound } from '../util/lower-bound.js';
import { loadNatsClient, splitNatsCredentials } from '../util/nats-url.js';
import {
  candleMsgId,
  candleSubject,
  decodeCandle,
  encodeCandle,
  encodeStatus,
  liveSubject,
  statusSubject,
  streamSettings,
  type StreamSettings,
  type SymbolHeartbeat,
} from './wire.js';

/** What the publisher reads of a CandleServer. */
export type PublishSource = Pick<CandleServer, 'market' | 'rule' | 'intervals' | 'on' | 'readRing' | 'status' | 'exchangeTime' | 'symbols'>;

/** Options of {@link NatsPublisher}. */
export interface NatsPublisherOptions {
  readonly source: PublishSource;
  readonly logger: Logger;
  /** Heartbeat period (default 1000 ms). */
  readonly heartbeatMs?: number;
}

/** Counters and gauges of the publisher, in CandleServer.stats().nats and /metrics. */
export interface NatsPublishStats {
  /** Candles stored by JetStream (acknowledged, duplicates included). */
  readonly stored: number;
  /** Of those, the ones JetStream had already (de-duplicated). */
  readonly duplicates: number;
  readonly live: number;
  readonly status: number;
  readonly errors: number;
  readonly isConnected: boolean;
  /** Symbol-intervals with rows not yet stored. */
  readonly backlog: number;
  /** Local time (epoch ms) of the last acknowledged publish; undefined before the first. */
  readonly lastPublishAt: number | undefined;
}

// Look-ups of the newest stored candle per subject in flight at start.
const RESUME_LOOKUPS = 32;
// JetStream acks awaited at once: enough to fill a loopback or LAN round trip, few enough that an
// outage fails a bounded number of publishes.
const MAX_IN_FLIGHT = 256;
// A JetStream publish not acknowledged within this fails and its rows are published again.
const ACK_TIMEOUT_MS = 5000;
// States are given for this window; readers apply their own with `c` and `t`.
const STATUS_SECURITY_SECONDS = 180;

/** Publishes one CandleServer's rings to NATS; see the module comment. */
export class NatsPublisher {
  readonly #source: PublishSource;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #heartbeatMs: number;
  readonly #stopping = new AbortController();
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  // Oldest open time not yet stored, per `interval|symbol`: one mark each, never a queue.
  readonly #pending = new Map<string, number>();
  // The newest row of `interval|symbol` is final (a 'closed' event named it): its open time.
  readonly #finalNewest = new Map<string, number>();
  // Open time of the newest row seen per key: when a new candle opens, the one before is final.
  readonly #newestSeen = new Map<string, number>();
  // Keys whose newest row goes to the live subject at the next flush.
  readonly #live = new Set<string>();
  #isLiveScheduled = false;
  readonly #inFlight = new Set<Promise<void>>();
  // Wakes the store loop: new marks, a reconnect, close.
  #wake: (() => void) | undefined;
  #isConnected = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #offRows: (() => void) | undefined;
  readonly #loops: Array<Promise<void>> = [];
  #stats = { stored: 0, duplicates: 0, live: 0, status: 0, errors: 0, lastPublishAt: undefined as number | undefined };

  constructor(options: NatsPublisherOptions) {
    this.#source = options.source;
    this.#logger = options.logger.child({ component: 'nats-publisher' });
    this.#prefix = options.source.rule.NATS_SUBJECT_PREFIX;
    this.#heartbeatMs = options.heartbeatMs ?? 1000;
  }

  /** Counters and gauges. */
  get stats(): NatsPublishStats {
    return { ...this.#stats, isConnected: this.#isConnected, backlog: this.#pending.size };
  }

  /**
   * Connects (trying again with back-off until NATS answers or `signal` aborts), creates or
   * checks the streams (ConfigError when one exists with other settings), then publishes the
   * whole rings and follows the rows event.
   */
  async start(signal: AbortSignal): Promise<void> {
    const url = this.#source.rule.NATS_URL;
    if (url === null) return;
    const onAbort = (): void => this.#stopping.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const { connect, jetstream, jetstreamManager } = await loadNatsClient('NATS publishing', 'NATS_URL');
    const { servers, user, pass } = splitNatsCredentials(url);
    for (let attempt = 0; this.#nc === undefined; attempt += 1) {
      try {
        this.#nc = await connect({
          servers,
          ...(user === undefined ? {} : { user }),
          ...(pass === undefined ? {} : { pass }),
          name: `candle-server ${this.#source.market}`,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1000,
          reconnectJitter: 500,
        });
      } catch (error) {
        if (this.#stopping.signal.aborted) throw error;
        const delayMs = backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 });
        this.#logger.warn({ err: error, servers: servers.map(redactCredentials), delayMs }, 'NATS unreachable; trying again');
        await sleep(delayMs, this.#stopping.signal, 'NATS connect');
      }
    }
    const nc = this.#nc;
    this.#isConnected = true;
    this.#logger.info({ server: redactCredentials(nc.getServer()) }, 'NATS connected');
    this.#jsm = await jetstreamManager(nc);
    this.#js = jetstream(nc, { timeout: ACK_TIMEOUT_MS });
    await this.#ensureStreams();
    this.#offRows = this.#source.on('rows', ({ symbol, interval, from, kind }) => this.#onRows(symbol, interval, from, kind));
    await this.#markFromStream();
    this.#loops.push(this.#statusLoop(nc), this.#storeLoop());
    this.#heartbeat = setInterval(() => this.#publishHeartbeats(), this.#heartbeatMs);
  }

  /** Stops publishing, waits for the acks in flight and closes the connection. Idempotent. */
  async close(): Promise<void> {
    this.#stopping.abort();
    this.#offRows?.();
    this.#offRows = undefined;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#wake?.();
    await Promise.allSettled([...this.#inFlight]);
    const nc = this.#nc;
    this.#nc = undefined;
    if (nc !== undefined && !nc.isClosed()) await nc.close().catch(() => undefined);
    await Promise.allSettled(this.#loops);
    this.#isConnected = false;
  }

  /** The rows listener: records, never publishes (it runs on the ingestion hot path). */
  #onRows(symbol: string, interval: Interval, from: number, kind: RowsKind): void {
    const key = `${interval}|${symbol}`;
    if (kind === 'closed' && this.#source.readRing(symbol, { interval }).newestOpenTime === from) this.#finalNewest.set(key, from);
    const previous = this.#newestSeen.get(key);
    if (kind !== 'forming') this.#mark(key, from);
    // A candle the ring held as newest (not yet stored) is final once a newer one forms.
    else if (previous !== undefined && from > previous) this.#mark(key, previous);
    if (previous === undefined || from > previous) this.#newestSeen.set(key, from);
    this.#live.add(key);
    if (!this.#isLiveScheduled) {
      this.#isLiveScheduled = true;
      setImmediate(() => this.#flushLive());
    }
  }

  #mark(key: string, from: number): void {
    const pending = this.#pending.get(key);
    if (pending === undefined || from < pending) this.#pending.set(key, from);
    this.#wake?.();
  }

  /** The newest row of each updated ring, on core NATS (dropped while disconnected: live is not stored). */
  #flushLive(): void {
    this.#isLiveScheduled = false;
    const nc = this.#nc;
    if (nc === undefined || !this.#isConnected || this.#stopping.signal.aborted) {
      this.#live.clear();
      return;
    }
    const market = this.#source.market;
    const t = this.#source.exchangeTime();
    for (const key of this.#live) {
      const [interval, symbol] = splitKey(key);
      const ring = this.#source.readRing(symbol, { interval });
      if (ring.isEmpty) continue;
      const newest = ring.at(ring.length - 1);
      const x = this.#finalNewest.get(key) === newest[0];
      const c = this.#confirmedAt(symbol, interval, t);
      try {
        nc.publish(
          liveSubject(this.#prefix, market, interval, symbol),
          encodeCandle({ m: market, i: interval, s: symbol, k: newest, x, c, t }),
        );
        this.#stats.live += 1;
      } catch (error) {
        this.#stats.errors += 1;
        this.#logger.debug({ err: error }, 'live publish failed');
      }
    }
    this.#live.clear();
  }

  #confirmedAt(symbol: string, interval: Interval, exchangeTime: number): number {
    const age = this.#source.status(symbol, STATUS_SECURITY_SECONDS, { interval }).confirmedAgeMs;
    return age === undefined ? 0 : exchangeTime - age;
  }

  #publishHeartbeats(): void {
    const nc = this.#nc;
    if (nc === undefined || !this.#isConnected) return;
    const market = this.#source.market;
    const t = this.#source.exchangeTime();
    const symbols = this.#source.symbols();
    for (const interval of this.#source.intervals) {
      const s: Record<string, SymbolHeartbeat> = {};
      for (const symbol of symbols) {
        const status = this.#source.status(symbol, STATUS_SECURITY_SECONDS, { interval });
        s[symbol] = {
          st: status.state,
          c: status.confirmedAgeMs === undefined ? 0 : t - status.confirmedAgeMs,
          n: status.newestOpenTime ?? 0,
        };
      }
      try {
        nc.publish(statusSubject(this.#prefix, market, interval), encodeStatus({ m: market, i: interval, t, s }));
        this.#stats.status += 1;
      } catch (error) {
        this.#stats.errors += 1;
        this.#logger.debug({ err: error }, 'heartbeat publish failed');
      }
    }
  }

  /** Follows the client's status: connection state, logs, and a re-publish after a reconnect. */
  async #statusLoop(nc: NatsConnection): Promise<void> {
    let disconnectedAt: number | undefined;
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
          this.#isConnected = false;
          disconnectedAt ??= this.#source.exchangeTime();
          this.#logger.warn({ server: redactCredentials(status.server) }, 'NATS disconnected; candles are kept and published on reconnect');
          break;
        case 'reconnect':
          this.#isConnected = true;
          this.#logger.info({ server: redactCredentials(status.server) }, 'NATS reconnected');
          void this.#afterReconnect(disconnectedAt);
          disconnectedAt = undefined;
          break;
        case 'close':
          this.#isConnected = false;
          break;
        default:
          break;
      }
    }
  }

  /**
   * After a reconnect: the streams again (a server that lost its store gets them back and the whole
   * rings), and every ring from a little before the outage, in case acks were lost with it.
   */
  async #afterReconnect(disconnectedAt: number | undefined): Promise<void> {
    let created: readonly Interval[] = [];
    try {
      created = await this.#ensureStreams();
    } catch (error) {
      if (!this.#stopping.signal.aborted) this.#logger.error({ err: error }, 'NATS streams could not be checked after the reconnect');
    }
    const since = disconnectedAt ?? this.#source.exchangeTime();
    for (const interval of this.#source.intervals) {
      const from = created.includes(interval) ? 0 : since - 2 * intervalMs(interval);
      for (const symbol of this.#source.symbols()) this.#mark(`${interval}|${symbol}`, from);
    }
  }

  /**
   * Marks every ring for storing from just after the newest candle its subject already holds
   * (the whole ring for a subject the stream does not have): a restart publishes what the stream
   * lacks, not LENGTH × symbols messages again. One look-up per subject, a few at a time.
   */
  async #markFromStream(): Promise<void> {
    const jsm = this.#jsm;
    const market = this.#source.market;
    const keys: Array<[Interval, string]> = [];
    for (const interval of this.#source.intervals) for (const symbol of this.#source.symbols()) keys.push([interval, symbol]);
    await forEachConcurrently(keys, RESUME_LOOKUPS, async ([interval, symbol]) => {
      let from = 0;
      try {
        const stored = await jsm?.streams.getMessage(streamSettings(this.#prefix, market, interval, this.#source.rule.LENGTH).name, {
          last_by_subj: candleSubject(this.#prefix, market, interval, symbol),
        });
        const openTime = stored === null || stored === undefined ? undefined : decodeCandle(stored.string())?.k[0];
        if (openTime !== undefined) from = openTime + 1;
      } catch (error) {
        // Not found, or the look-up failed: publish the whole ring (de-duplication keeps it cheap).
        this.#logger.debug({ err: error, symbol, interval }, 'newest stored candle unknown; publishing the whole ring');
      }
      this.#mark(`${interval}|${symbol}`, from);
    });
  }

  /** Creates the missing streams and checks the existing ones; returns the intervals whose stream was created. */
  async #ensureStreams(): Promise<Interval[]> {
    const jsm = this.#jsm;
    if (jsm === undefined) return [];
    const created: Interval[] = [];
    for (const interval of this.#source.intervals) {
      const wanted = streamSettings(this.#prefix, this.#source.market, interval, this.#source.rule.LENGTH);
      let existing: StreamConfig | undefined;
      try {
        existing = (await jsm.streams.info(wanted.name)).config;
      } catch (error) {
        if (!isStreamNotFound(error)) throw error;
      }
      if (existing === undefined) {
        await jsm.streams.add(toStreamConfig(wanted));
        created.push(interval);
        this.#logger.info({ stream: wanted.name, subjects: wanted.subjects }, 'NATS stream created');
      } else {
        checkStream(wanted, existing);
      }
    }
    return created;
  }

  /** Publishes the marked rows to JetStream, oldest first per ring, with at most MAX_IN_FLIGHT acks awaited. */
  async #storeLoop(): Promise<void> {
    const signal = this.#stopping.signal;
    let failures = 0;
    while (!signal.aborted) {
      const next = this.#pending.entries().next();
      if (next.done === true || !this.#isConnected) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      const [key, from] = next.value;
      this.#pending.delete(key);
      const errorsBefore = this.#stats.errors;
      for (const message of this.#finalRows(key, from)) {
        while (this.#inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.#inFlight);
        if (signal.aborted) return;
        this.#publishStored(key, message);
      }
      if (this.#stats.errors > errorsBefore) {
        // Failing (NATS going down, JetStream not ready after a restart): the marks are back; wait.
        await Promise.allSettled([...this.#inFlight]);
        failures += 1;
        await sleep(backoffDelay(failures, { baseMs: 200, maxMs: 5000 }), signal, 'NATS retry').catch(() => undefined);
      } else if (this.#inFlight.size === 0) {
        failures = 0;
      }
    }
  }

  #publishStored(key: string, message: StoredMessage): void {
    const js = this.#js;
    if (js === undefined) return;
    const done = js
      .publish(message.subject, message.body, { msgID: message.id, timeout: ACK_TIMEOUT_MS })
      .then(
        (ack) => {
          this.#stats.stored += 1;
          if (ack.duplicate) this.#stats.duplicates += 1;
          this.#stats.lastPublishAt = Date.now();
        },
        (error: unknown) => {
          this.#stats.errors += 1;
          this.#mark(key, message.openTime);
          if (!this.#stopping.signal.aborted)
            this.#logger.debug({ err: error, subject: message.subject }, 'JetStream publish failed; kept for later');
        },
      )
      .finally(() => this.#inFlight.delete(done));
    this.#inFlight.add(done);
  }

  /** The final rows of a ring from open time `from`, encoded (read synchronously: the ring is zero-copy). */
  #finalRows(key: string, from: number): StoredMessage[] {
    const [interval, symbol] = splitKey(key);
    const ring = this.#source.readRing(symbol, { interval });
    const market = this.#source.market;
    const t = this.#source.exchangeTime();
    const c = this.#confirmedAt(symbol, interval, t);
    const subject = candleSubject(this.#prefix, market, interval, symbol);
    const last = ring.length - 1;
    const messages: StoredMessage[] = [];
    for (let r = lowerBound(ring.length, (i) => ring.openTime(i), from); r <= last; r += 1) {
      const openTime = ring.openTime(r);
      if (r === last && this.#finalNewest.get(key) !== openTime) break;
      const k = ring.at(r);
      messages.push({
        subject,
        openTime,
        id: candleMsgId(symbol, k),
        body: encodeCandle({ m: market, i: interval, s: symbol, k, x: true, c, t }),
      });
    }
    return messages;
  }
}

interface StoredMessage {
  readonly subject: string;
  readonly openTime: number;
  readonly id: string;
  readonly body: string;
}

function splitKey(key: string): [Interval, string] {
  const bar = key.indexOf('|');
  return [key.slice(0, bar) as Interval, key.slice(bar + 1)];
}

function isStreamNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown; api_error?: { err_code?: unknown } } | null)?.api_error?.err_code;
  return code === 10059 || (error instanceof Error && error.name === 'StreamNotFoundError');
}

function toStreamConfig(settings: StreamSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: settings.name,
    subjects: [...settings.subjects],
    max_msgs_per_subject: settings.maxMsgsPerSubject,
    discard: 'old',
    storage: 'file',
    duplicate_window: settings.duplicateWindowMs * 1_000_000,
  };
}

/** Throws ConfigError naming every setting of an existing stream that differs from what candle-server needs. */
function checkStream(wanted: StreamSettings, existing: StreamConfig): void {
  const expected = toStreamConfig(wanted);
  const issues: ConfigIssue[] = [];
  const compare = (setting: keyof StreamConfig, want: unknown, have: unknown, why: string): void => {
    if (JSON.stringify(want) !== JSON.stringify(have)) {
      issues.push({ path: setting, received: have, message: `expected ${JSON.stringify(want)} (${why})` });
    }
  };
  compare(
    'subjects',
    [...(expected.subjects ?? [])].sort(),
    [...(existing.subjects ?? [])].sort(),
    'NATS_SUBJECT_PREFIX, MARKET, interval',
  );
  compare('max_msgs_per_subject', expected.max_msgs_per_subject, existing.max_msgs_per_subject, 'LENGTH');
  compare('discard', expected.discard, existing.discard, 'the oldest candle leaves');
  compare('storage', expected.storage, existing.storage, 'wire format v1');
  compare('duplicate_window', expected.duplicate_window, existing.duplicate_window, `${wanted.duplicateWindowMs} ms in nanoseconds`);
  if (issues.length > 0) {
    throw new ConfigError(
      `NATS stream ${wanted.name} (it exists with other settings; candle-server does not change a stream someone configured: change it or delete it with \`nats stream rm ${wanted.name}\`)`,
      issues,
    );
  }
}
