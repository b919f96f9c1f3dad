/**
 * The REST client of one Binance market: klines, exchangeInfo and server time. Every request is
 * charged to the market's weight governor before it is sent, has a time-out and follows the
 * caller's AbortSignal. Failures become typed errors carrying the HTTP status, Binance's code and
 * message, and the endpoint.
 *
 * Retries: 5xx, network failures and time-outs are retried with jittered exponential back-off, a
 * 429 after the pause it asked for (Retry-After beats any formula); other 4xx never. A 418 pauses
 * the whole budget, every client sharing the governor, and is not retried.
 *
 * @example
 * ```ts
 * const governor = sharedGovernor({ group: 'futures' }, () => new WeightGovernor({ name: 'futures', serverWeight: 0.75 }));
 * const client = new BinanceRestClient({ market: 'UM', governor });
 * const rows = await client.klines({ symbol: 'BTCUSDT', interval: '1m', limit: 499 });
 * await client.close();
 * ```
 */
import { Pool, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import {
  AbortedError,
  CandleServerError,
  ClosedError,
  ExchangeError,
  InvalidArgumentError,
  MalformedResponseError,
  NetworkError,
  RateLimitError,
  TimeoutError,
  type EndpointRef,
} from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { backoffDelay, sleep } from '../util/abort.js';
import { forEachConcurrently } from '../util/concurrency.js';
import { proxyDispatcher, redactProxyUrl } from './proxy.js';
import { openTimeOf } from '../binance/intervals.js';
import { describeKlineProblem, type RawKline } from '../binance/kline.js';
import { planKlinePages, type KlinePage } from './kline-pages.js';
import { MARKETS, SYMBOL_PATTERN, type Interval, type MarketSpec, type MarketType } from '../binance/markets.js';
import { ServerClock } from './server-clock.js';
import type { SettleWeight, WeightGovernor, WeightPriority } from './weight-governor.js';

/** Options of {@link BinanceRestClient}. */
export interface BinanceRestClientOptions {
  readonly market: MarketType;
  /** Origin (and optional path prefix) of the REST API; defaults to the market's public one. */
  readonly baseUrl?: string;
  /** The budget this market spends from; share it between clients of the same budget group. */
  readonly governor: WeightGovernor;
  /** The exchange clock; a new one synced through this client's `time()` when omitted. */
  readonly clock?: ServerClock;
  /** Time-out of one HTTP exchange (connect, headers, body), in ms. */
  readonly timeoutMs?: number;
  /** Retries after the first try, for retriable failures only. */
  readonly retries?: number;
  /** First back-off delay for 5xx, network errors and time-outs (and a 429 without Retry-After). */
  readonly backoffBaseMs?: number;
  /** Ceiling of the back-off delay. */
  readonly backoffMaxMs?: number;
  /** Apply the REQUEST_WEIGHT limit of exchangeInfo to the governor (default true). */
  readonly applyRateLimits?: boolean;
  readonly logger?: Logger;
  /** Called after every HTTP exchange (each retry too), for metrics: endpoint and status (0: no reply). */
  readonly onResponse?: (endpoint: string, status: number) => void;
  /** An undici dispatcher to send through; the client then does not close it. */
  readonly dispatcher?: Dispatcher;
  /** A proxy every request goes through (see exchange/proxy.ts); ignored when `dispatcher` is given. */
  readonly proxy?: URL | undefined;
}

/** Per-call options of every request. */
export interface RequestOptions {
  readonly signal?: AbortSignal;
  /** Queue position at the governor: live updates go before back-fill. */
  readonly priority?: WeightPriority;
  /** Wait out a ban instead of failing with BannedError at once. */
  readonly waitForBan?: boolean;
}

/**
 * Connections the client keeps to the exchange: requests beyond them wait for one. A cold start
 * keeps this many in flight (the weight governor, not the connections, paces them), so that the
 * exchange's latency is hidden rather than paid once per request.
 */
export const REST_CONNECTIONS = 64;

// Pages of one klinesRange in flight at once.
const RANGE_PAGES_IN_FLIGHT = 4;

/** The exchange's reply to a forwarded request, as it came (see {@link BinanceRestClient.forward}). */
export interface ForwardedReply {
  readonly status: number;
  /** The body text, unchanged. */
  readonly body: string;
  readonly contentType: string | undefined;
  /** The Retry-After header, when the exchange sent one (429, 418). */
  readonly retryAfter: string | undefined;
}

/** The exchangeInfo document last read, whole: every field the exchange sent, not only those parsed. */
export interface ExchangeInfoDocument {
  /** The JSON body as parsed, before any schema stripped fields. Do not modify it. */
  readonly body: Readonly<Record<string, unknown>>;
  /** The query it was read with (spot shrinks the document: see MARKETS.SPOT.exchangeInfoQuery). */
  readonly query: string;
  /** Exchange time at which it arrived. */
  readonly receivedAt: number;
}

/** Parameters of one klines request. */
export interface KlinesParams {
  readonly symbol: string;
  readonly interval: Interval;
  readonly startTime?: number;
  readonly endTime?: number;
  readonly limit?: number;
}

const rateLimitSchema = z.object({
  rateLimitType: z.string(),
  interval: z.string(),
  intervalNum: z.number(),
  limit: z.number(),
});

const exchangeSymbolSchema = z.object({
  symbol: z.string(),
  status: z.string().optional(),
  contractStatus: z.string().optional(),
  contractType: z.string().optional(),
  baseAsset: z.string().optional(),
  quoteAsset: z.string().optional(),
  /** Futures: decimals of the symbol's prices and quantities. */
  pricePrecision: z.number().int().min(0).max(20).optional(),
  quantityPrecision: z.number().int().min(0).max(20).optional(),
});

const exchangeInfoSchema = z.object({
  serverTime: z.number().optional(),
  rateLimits: z.array(rateLimitSchema),
  symbols: z.array(exchangeSymbolSchema),
});

const timeSchema = z.object({ serverTime: z.number() });

/** One entry of exchangeInfo `rateLimits`. */
export type ExchangeRateLimit = z.infer<typeof rateLimitSchema>;
/** The part of an exchangeInfo symbol candle-server reads (CM has `contractStatus`, not `status`). */
export type ExchangeSymbol = z.infer<typeof exchangeSymbolSchema>;
/** The typed subset of exchangeInfo: rate limits and symbols. */
export type ExchangeInfo = z.infer<typeof exchangeInfoSchema>;

/**
 * The REQUEST_WEIGHT limit from exchangeInfo `rateLimits` (the one-minute entry when there are
 * several), or undefined when absent.
 *
 * @example
 * ```ts
 * requestWeightLimit(await client.exchangeInfo()) ?? MARKETS.UM.fallbackWeightLimit;
 * ```
 */
export function requestWeightLimit(info: Pick<ExchangeInfo, 'rateLimits'>): number | undefined {
  const weights = info.rateLimits.filter((r) => r.rateLimitType === 'REQUEST_WEIGHT');
  const perMinute = weights.find((r) => r.interval === 'MINUTE' && r.intervalNum === 1);
  return (perMinute ?? weights[0])?.limit;
}

/** What one HTTP exchange produced, before retry decisions. */
type Attempt<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: CandleServerError; readonly retriable: boolean; readonly retryAfterMs?: number };

// A 418 without Retry-After or "banned until" is treated as the shortest ban Binance gives.
const DEFAULT_BAN_MS = 120_000;
// Added to every pause: more than the error of a synced clock offset, less than a second.
const PAUSE_SLACK_MS = 250;
const BANNED_UNTIL = /banned until (\d{12,})/i;
const UNDICI_TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * A typed, budgeted REST client of one Binance market.
 *
 * @example
 * ```ts
 * const client = new BinanceRestClient({ market: 'SPOT', governor, baseUrl: sim.urls('SPOT').rest });
 * await client.clock.sync();
 * const info = await client.exchangeInfo();
 * ```
 */
export class BinanceRestClient {
  readonly market: MarketType;
  readonly governor: WeightGovernor;
  readonly clock: ServerClock;
  readonly #spec: MarketSpec;
  readonly #baseUrl: URL;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #backoff: { baseMs: number; maxMs: number };
  readonly #applyRateLimits: boolean;
  readonly #logger: Logger;
  readonly #onResponse: ((endpoint: string, status: number) => void) | undefined;
  readonly #dispatcher: Dispatcher;
  // The pool (or proxy agent) this client created, closed by close(); a dispatcher passed in belongs to the caller.
  readonly #pool: Dispatcher | undefined;
  // The proxy requests go through, credentials hidden, for error messages and logs.
  readonly #via: string | undefined;
  // Aborted by close(): cancels every request, back-off and governor wait in progress.
  readonly #closing = new AbortController();
  // The one close in progress or done: a second close() waits for the same one.
  #closed: Promise<void> | undefined;
  // The whole exchangeInfo body last read: the HTTP API serves it to other processes at no weight.
  #lastExchangeInfo: ExchangeInfoDocument | undefined;

  constructor(options: BinanceRestClientOptions) {
    this.market = options.market;
    this.#spec = MARKETS[options.market];
    this.governor = options.governor;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#retries = options.retries ?? 3;
    if (!(this.#timeoutMs > 0)) throw new InvalidArgumentError(`timeoutMs must be positive, got ${this.#timeoutMs}`);
    if (!(Number.isInteger(this.#retries) && this.#retries >= 0)) {
      throw new InvalidArgumentError(`retries must be a non-negative integer, got ${this.#retries}`);
    }
    this.#backoff = { baseMs: options.backoffBaseMs ?? 500, maxMs: options.backoffMaxMs ?? 30_000 };
    this.#applyRateLimits = options.applyRateLimits ?? true;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'rest-client', market: options.market });
    this.#onResponse = options.onResponse;
    try {
      this.#baseUrl = new URL(options.baseUrl ?? this.#spec.restBaseUrl);
    } catch (error) {
      throw new InvalidArgumentError(`baseUrl must be an absolute http(s) URL, got ${JSON.stringify(options.baseUrl)}: ${String(error)}`);
    }
    this.#via = options.dispatcher === undefined && options.proxy !== undefined ? redactProxyUrl(options.proxy) : undefined;
    if (options.dispatcher === undefined && options.proxy !== undefined) {
      this.#pool = proxyDispatcher(options.proxy, { connections: REST_CONNECTIONS, timeoutMs: this.#timeoutMs });
      this.#dispatcher = this.#pool;
    } else if (options.dispatcher === undefined) {
      this.#pool = new Pool(this.#baseUrl.origin, {
        connections: REST_CONNECTIONS,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
        connect: { timeout: this.#timeoutMs },
      });
      this.#dispatcher = this.#pool;
    } else {
      this.#pool = undefined;
      this.#dispatcher = options.dispatcher;
    }
    this.clock = options.clock ?? new ServerClock({ fetchServerTime: (signal) => this.time(signal ? { signal } : {}) });
  }

  /** The exchangeInfo document last read by {@link exchangeInfo}, whole, or undefined before the first. */
  get lastExchangeInfo(): ExchangeInfoDocument | undefined {
    return this.#lastExchangeInfo;
  }

  /** The exchange's time (epoch ms), from the time endpoint (weight 1). */
  time(options: RequestOptions = {}): Promise<number> {
    return this.#call(this.#spec.paths.time, '', this.#spec.timeWeight, options, (body, ref) => {
      return parseWith(timeSchema, body, ref).serverTime;
    });
  }

  /**
   * Rate limits and symbols of the market. The REQUEST_WEIGHT limit found there is applied to the
   * governor unless `applyRateLimits` is false.
   */
  async exchangeInfo(options: RequestOptions = {}): Promise<ExchangeInfo> {
    const path = this.#spec.paths.exchangeInfo;
    const query = this.#spec.exchangeInfoQuery;
    const info = await this.#call(path, query, this.#spec.exchangeInfoWeight, options, (body, ref) => {
      const parsed = parseWith(exchangeInfoSchema, body, ref);
      this.#lastExchangeInfo = { body: body as Record<string, unknown>, query, receivedAt: this.clock.now() };
      return parsed;
    });
    const limit = requestWeightLimit(info);
    if (this.#applyRateLimits && limit !== undefined && limit > 0) this.governor.setLimit(limit);
    return info;
  }

  /**
   * One klines request. Rows are checked one by one; a bad row fails the whole reply with a
   * MalformedResponseError naming its index.
   */
  async klines(params: KlinesParams, options: RequestOptions = {}): Promise<RawKline[]> {
    const { symbol, interval, startTime, endTime, limit } = params;
    if (!SYMBOL_PATTERN.test(symbol)) {
      throw new InvalidArgumentError(`symbol ${JSON.stringify(symbol)} is not a Binance symbol (A-Z, 0-9, _)`);
    }
    if (!this.#spec.intervals.includes(interval)) {
      throw new InvalidArgumentError(
        `interval ${JSON.stringify(interval)} is not offered on ${this.market} (expected one of ${this.#spec.intervals.join(', ')})`,
      );
    }
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= this.#spec.klinesMaxLimit)) {
      throw new InvalidArgumentError(`limit must be an integer in 1..${this.#spec.klinesMaxLimit} on ${this.market}, got ${limit}`);
    }
    for (const [name, value] of [
      ['startTime', startTime],
      ['endTime', endTime],
    ] as const) {
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
        throw new InvalidArgumentError(`${name} must be epoch ms, got ${value}`);
      }
    }
    const query = new URLSearchParams({ symbol, interval });
    if (startTime !== undefined) query.set('startTime', String(startTime));
    if (endTime !== undefined) query.set('endTime', String(endTime));
    if (limit !== undefined) query.set('limit', String(limit));
    const weight = this.#spec.klinesWeight(limit ?? this.#spec.klinesDefaultLimit);
    return this.#call(this.#spec.paths.klines, query.toString(), weight, options, parseKlines);
  }

  /**
   * Passes one GET of the market's REST API on for another process (the HTTP API's Binance paths)
   * and returns the exchange's reply as it came: status, body text, content type, Retry-After.
   * One try, no retries (the client decides). The weight is charged at priority 'forward': granted
   * at once or refused with WeightUnavailableError, and BannedError during a ban; then nothing is
   * sent. A 429 or 418 reply pauses the budget as for the client's own requests.
   *
   * @example
   * ```ts
   * const reply = await client.forward('/api/v3/klines', 'symbol=BTCUSDT&interval=1h', 2);
   * res.writeHead(reply.status, { 'content-type': reply.contentType ?? 'application/json' }).end(reply.body);
   * ```
   */
  async forward(path: string, query: string, weight: number, options: { readonly signal?: AbortSignal } = {}): Promise<ForwardedReply> {
    const ref: EndpointRef = { market: this.market, endpoint: path };
    if (this.#closing.signal.aborted) throw new ClosedError(`${this.market} REST client`);
    const signal = options.signal === undefined ? this.#closing.signal : AbortSignal.any([options.signal, this.#closing.signal]);
    let settle: SettleWeight;
    try {
      settle = await this.governor.acquire(weight, { signal, priority: 'forward' });
    } catch (error) {
      throw this.#aborted(error, `${this.market} ${path} request`);
    }
    let reply: RawReply;
    try {
      reply = await this.#send(path, query, ref, options.signal);
    } catch (error) {
      this.#onResponse?.(path, 0);
      throw error;
    } finally {
      settle();
    }
    this.#onResponse?.(path, reply.status);
    // Only for its effect: the whole budget pauses (or stops for the ban), as after the client's own 429/418.
    if (reply.status === 429 || reply.status === 418) this.#failure(reply.status, reply.headers, reply.text, ref, 0);
    return {
      status: reply.status,
      body: reply.text,
      contentType: header(reply.headers, 'content-type'),
      retryAfter: header(reply.headers, 'retry-after'),
    };
  }

  /**
   * The candles with open times in [from, to], page by page, using the pages of least weight
   * (CM newest page first). Each page's rows are oldest first. `to` is clipped to the exchange's
   * current candle so no weight is spent on candles that cannot exist yet. Back-fill priority
   * unless told otherwise.
   *
   * @example
   * ```ts
   * for await (const rows of client.klinePages('BTCUSDT', '1m', from, to)) store.write(rows);
   * ```
   */
  async *klinePages(
    symbol: string,
    interval: Interval,
    from: number,
    to: number,
    options: RequestOptions = {},
  ): AsyncGenerator<RawKline[]> {
    for (const page of this.#plan(interval, from, to)) yield await this.#page(symbol, interval, page, options);
  }

  /**
   * Every candle with an open time in [from, to], oldest first, de-duplicated on open time.
   *
   * @example
   * ```ts
   * const day = await client.klinesRange('BTCUSDT', '1m', Date.parse('2024-01-24'), Date.parse('2024-01-25') - 1);
   * ```
   */
  async klinesRange(symbol: string, interval: Interval, from: number, to: number, options: RequestOptions = {}): Promise<RawKline[]> {
    const replies: RawKline[][] = [];
    // The pages of a range are independent: a few at once, so that a range costs one round trip
    // rather than one per page. The weight governor still charges each before it is sent.
    await forEachConcurrently(
      this.#plan(interval, from, to).map((page, index) => ({ page, index })),
      RANGE_PAGES_IN_FLIGHT,
      async ({ page, index }) => {
        replies[index] = await this.#page(symbol, interval, page, options);
      },
    );
    const byOpenTime = new Map<number, RawKline>();
    for (const rows of replies) {
      for (const row of rows) if (row[0] >= from && row[0] <= to) byOpenTime.set(row[0], row);
    }
    return [...byOpenTime.values()].sort((a, b) => a[0] - b[0]);
  }

  /** The pages of [from, to], `to` clipped to the exchange's current candle. */
  #plan(interval: Interval, from: number, to: number): KlinePage[] {
    return planKlinePages({ market: this.market, interval, from, to: Math.min(to, openTimeOf(interval, this.clock.now())) });
  }

  /** One planned page, at back-fill priority unless told otherwise. */
  #page(symbol: string, interval: Interval, page: KlinePage, options: RequestOptions): Promise<RawKline[]> {
    return this.klines(
      { symbol, interval, startTime: page.startTime, endTime: page.endTime, limit: page.limit },
      { priority: 'backfill', ...options },
    );
  }

  /** Cancels everything in progress (ClosedError) and releases the connections. Idempotent. */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closing.abort(new ClosedError(`${this.market} REST client`));
      this.#closed = this.#pool?.close() ?? Promise.resolve();
    }
    return this.#closed;
  }

  async #call<T>(
    path: string,
    query: string,
    weight: number,
    options: RequestOptions,
    parse: (body: unknown, ref: EndpointRef) => T,
  ): Promise<T> {
    const ref: EndpointRef = { market: this.market, endpoint: path };
    const what = `${this.market} ${path} request`;
    if (this.#closing.signal.aborted) throw new ClosedError(`${this.market} REST client`);
    const signal = options.signal === undefined ? this.#closing.signal : AbortSignal.any([options.signal, this.#closing.signal]);
    for (let attempt = 0; ; attempt += 1) {
      let settle: SettleWeight;
      try {
        settle = await this.governor.acquire(weight, {
          signal,
          priority: options.priority ?? 'live',
          ...(options.waitForBan === undefined ? {} : { waitForBan: options.waitForBan }),
        });
      } catch (error) {
        throw this.#aborted(error, what);
      }
      const result = await this.#attempt(path, query, ref, attempt, options.signal, parse).finally(settle);
      this.#onResponse?.(path, result.ok ? 200 : result.error instanceof ExchangeError ? result.error.status : 0);
      if (result.ok) return result.value;
      if (!result.retriable || attempt >= this.#retries) throw result.error;
      // A 429 has already paused the governor, so the next acquire waits; other failures back off here.
      const delay = result.error instanceof RateLimitError ? 0 : (result.retryAfterMs ?? backoffDelay(attempt, this.#backoff));
      this.#logger.warn({ err: result.error, attempt, delayMs: delay }, 'retrying');
      if (delay > 0) {
        try {
          await sleep(delay, signal, what);
        } catch (error) {
          throw this.#aborted(error, what);
        }
      }
    }
  }

  /** Turns an abort into ClosedError when the client is closing, AbortedError otherwise. */
  #aborted(error: unknown, what: string): unknown {
    if (error instanceof AbortedError && this.#closing.signal.aborted) return new ClosedError(`${this.market} REST client`);
    if (error instanceof AbortedError) return new AbortedError(what, { cause: error.cause });
    return error;
  }

  async #attempt<T>(
    path: string,
    query: string,
    ref: EndpointRef,
    attempt: number,
    callerSignal: AbortSignal | undefined,
    parse: (body: unknown, ref: EndpointRef) => T,
  ): Promise<Attempt<T>> {
    try {
      const reply = await this.#send(path, query, ref, callerSignal);
      if (reply.status >= 200 && reply.status < 300) return { ok: true, value: parse(parseJson(reply.text, ref), ref) };
      return this.#failure(reply.status, reply.headers, reply.text, ref, attempt);
    } catch (error) {
      if (!(error instanceof CandleServerError)) throw error;
      return { ok: false, error, retriable: error instanceof TimeoutError || error instanceof NetworkError };
    }
  }

  /**
   * One GET of `path?query`, read whole; the reply's weight header corrects the governor. A
   * failure before a status arrived becomes AbortedError (the caller's signal), ClosedError,
   * TimeoutError or NetworkError.
   */
  async #send(path: string, query: string, ref: EndpointRef, callerSignal: AbortSignal | undefined): Promise<RawReply> {
    const url = new URL(this.#baseUrl.pathname.replace(/\/$/, '') + path, this.#baseUrl);
    url.search = query;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.#timeoutMs);
    const signals = [timeout.signal, this.#closing.signal];
    if (callerSignal !== undefined) signals.push(callerSignal);
    try {
      const response = await request(url, {
        method: 'GET',
        dispatcher: this.#dispatcher,
        signal: AbortSignal.any(signals),
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      });
      const text = await response.body.text();
      const used = Number(header(response.headers, 'x-mbx-used-weight-1m'));
      if (Number.isFinite(used)) this.governor.observe(used);
      return { status: response.statusCode, headers: response.headers, text };
    } catch (error) {
      if (callerSignal?.aborted) throw new AbortedError(`${ref.market} ${ref.endpoint} request`, { cause: error });
      if (this.#closing.signal.aborted) throw new ClosedError(`${this.market} REST client`);
      if (timeout.signal.aborted || UNDICI_TIMEOUT_CODES.has((error as { code?: string }).code ?? '')) {
        throw new TimeoutError(ref, this.#timeoutMs, { cause: error });
      }
      throw new NetworkError(ref, { cause: error, via: this.#via });
    } finally {
      clearTimeout(timer);
    }
  }

  #failure(status: number, headers: Headers, text: string, ref: EndpointRef, attempt: number): Attempt<never> {
    const { code, msg } = errorBody(text);
    const retryAfterHeader = parseRetryAfter(header(headers, 'retry-after'), Date.now());
    if (status === 429 || status === 418) {
      const now = this.clock.now();
      const bannedUntil = msg === undefined ? undefined : BANNED_UNTIL.exec(msg)?.[1];
      let retryAfterMs: number;
      if (retryAfterHeader !== undefined) retryAfterMs = retryAfterHeader;
      else if (bannedUntil !== undefined) retryAfterMs = Math.max(0, Number(bannedUntil) - now);
      else retryAfterMs = status === 418 ? DEFAULT_BAN_MS : backoffDelay(attempt, this.#backoff);
      // The governor's clock decides when requests resume, so the error reports its end. The slack
      // covers the error of the clock offset: a request landing just before a ban ends extends it.
      const until = this.governor.pauseFor(retryAfterMs + PAUSE_SLACK_MS, status === 418 ? '418' : '429');
      const error = new RateLimitError({ ...ref, status, binanceCode: code, binanceMessage: msg, retryAfterMs, until });
      this.#logger.warn({ err: error }, status === 418 ? 'IP banned' : 'rate limited');
      return { ok: false, error, retriable: status === 429 };
    }
    const error = new ExchangeError({ ...ref, status, binanceCode: code, binanceMessage: msg });
    const retriable = status >= 500;
    return retriable && retryAfterHeader !== undefined
      ? { ok: false, error, retriable, retryAfterMs: retryAfterHeader }
      : { ok: false, error, retriable };
  }
}

type Headers = Record<string, string | string[] | undefined>;

/** One HTTP exchange, read whole. */
interface RawReply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** A header's value whatever the case of its name (undici lower-cases, other dispatchers may not). */
function header(headers: Headers, name: string): string | undefined {
  const direct = headers[name];
  const value = direct ?? Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Retry-After in ms: delta seconds or an HTTP date; undefined when absent or unreadable.
 *
 * @example
 * ```ts
 * parseRetryAfter('30', Date.now()); // 30000
 * ```
 */
export function parseRetryAfter(value: string | undefined, localNow: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - localNow);
}

function errorBody(text: string): { code: number | undefined; msg: string | undefined } {
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === 'object' && body !== null) {
      const { code, msg } = body as { code?: unknown; msg?: unknown };
      return { code: typeof code === 'number' ? code : undefined, msg: typeof msg === 'string' ? msg : undefined };
    }
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): the status alone has to do.
  }
  return { code: undefined, msg: text.trim() === '' ? undefined : text.trim().slice(0, 200) };
}

function parseJson(text: string, ref: EndpointRef): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new MalformedResponseError(ref, `expected JSON, got ${JSON.stringify(text.slice(0, 80))}`, { cause: error });
  }
}

function parseWith<S extends z.ZodType>(schema: S, body: unknown, ref: EndpointRef): z.infer<S> {
  const result = schema.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue === undefined ? '' : `${issue.path.join('.') || '(root)'}: `;
    throw new MalformedResponseError(ref, `${where}${issue?.message ?? 'unexpected shape'}`, { cause: result.error });
  }
  return result.data;
}

function parseKlines(body: unknown, ref: EndpointRef): RawKline[] {
  if (!Array.isArray(body)) {
    throw new MalformedResponseError(ref, `expected an array of klines, got ${body === null ? 'null' : typeof body}`);
  }
  for (let i = 0; i < body.length; i += 1) {
    const problem = describeKlineProblem(body[i]);
    if (problem !== undefined) throw new MalformedResponseError(ref, `row ${i}: ${problem}`);
  }
  return body as RawKline[];
}
