/**
 * Binance's own market-data paths on the HTTP API, for the server's market, so that a client made
 * for Binance (ccxt, freqtrade, a `requests` script) pointed at candle-server works unchanged and
 * costs the exchange nothing when the data is in memory. Binance bans per IP: every bot on a host
 * reading through one candle-server shares its one weight budget instead of spending its own.
 *
 * ```
 * GET|HEAD /api/v3/klines (SPOT), /fapi/v1/klines (UM), /dapi/v1/klines (CM)
 *     symbol, interval, startTime, endTime, limit (spot also timeZone): Binance's parameters,
 *     defaults, maximum, errors and selection (COIN-M: the newest `limit` ending at endTime)
 *       held       -> 200 from memory: the ring of BAR or of one of INTERVALS (when fresh), and for
 *                     BAR older ranges the complete daily files of CANDLE_DIR    X-MBX-USED-WEIGHT-1M: 0
 *       stale      -> 503 {code:-1008} saying why (warming, repairing, stale, banned, overdue)
 *       not held   -> forwarded to Binance at priority 'forward' (below live and back-fill work,
 *                     never waiting, never past SERVER_WEIGHT); the reply as it came, with the
 *                     weight this IP used in the window as the budget counts it
 *                     429 {code:-1003} + Retry-After when the budget has no room now
 *                     418 {code:-1003, "banned until <ms>"} + Retry-After during a ban: nothing sent
 *                     400 {code:-1020} saying what the server holds when FORWARD_KLINES is false
 * GET|HEAD .../time          {serverTime} on the exchange clock
 * GET|HEAD .../ping          {}
 * GET|HEAD .../exchangeInfo  the exchangeInfo document the server last read (every
 *                            SYMBOLS_REFRESH_SECONDS), whole, serverTime current; spot's symbol,
 *                            symbols, symbolStatus, permissions and showPermissionSets filter it;
 *                            a query it cannot answer (a symbol or status it does not list) is
 *                            forwarded
 * GET|HEAD .../depth, trades, ticker/24hr, ticker/price, ticker/bookTicker, ... (the public
 *          market-data paths of src/binance/market-data-weights.ts): not kept, always forwarded as
 *          above, so that a bot pointing its whole public API here keeps working
 * other methods  405 {code:-1020}; other paths under the prefix 404 {code:-1020}
 * ```
 *
 * A request is answered from memory only when the server holds every candle it selects: never
 * partly from memory and partly made up. A range entirely in complete daily files is served even
 * while the symbol's ring is not fresh (those candles are final); a range that needs the ring is
 * not. SPOT's held exchangeInfo is the shrunk document the universe reads (TRADING symbols with
 * the SPOT permission, `permissionSets` empty): a query without filters gets it as it is.
 *
 * Cheap under many identical requests: the rows before the ring's newest are printed once per
 * ring revision (KlineReplyCache) and sent as one cached buffer; only the newest row is printed
 * per request.
 *
 * @example
 * ```ts
 * const binance = binanceRoutes(server, { logger });
 * const api = await startHttpApi({ server, port: 8080, extraRoutes: [binance.route] });
 * // ccxt: new ccxt.binance({ urls: { api: { public: 'http://127.0.0.1:8080/api/v3' } } })
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { intervalMs } from '../binance/intervals.js';
import { marketDataWeight, weighedPaths } from '../binance/market-data-weights.js';
import {
  SYMBOL_RANGE,
  binanceFailure,
  illegalCharacters,
  invalidValue,
  klinesWeightOf,
  readKlinesRequest,
  resolveKlinesRange,
  type BinanceFailure,
  type KlinesRange,
} from '../binance/klines-query.js';
import { MARKETS, MARKET_TYPES, SYMBOL_PATTERN, type Interval, type MarketType } from '../binance/markets.js';
import type { CandleServer } from '../candle-server.js';
import {
  AbortedError,
  BannedError,
  ClosedError,
  InvalidArgumentError,
  NetworkError,
  TimeoutError,
  WeightUnavailableError,
} from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { CandleView } from '../store/candle-view.js';
import { DailyDays } from './daily-days.js';
import { DEFAULT_SECURITY_SECONDS, describeNotFresh, type HttpRoute } from './http-api.js';
import { KlineReplyCache, klineJson } from './kline-reply-cache.js';
import { selectKlines, type Selection } from './kline-selection.js';

/** Options of {@link binanceRoutes}. */
export interface BinanceRoutesOptions {
  /** A pino logger; forwarded requests are logged at debug level with component 'binance-api'. */
  readonly logger?: Logger;
  /**
   * Freshness limit of klines served from a ring, seconds (as getCandleSecurity's): default
   * one BAR plus 180, so that the newest candle of any BAR passes while it is the current one.
   */
  readonly securitySeconds?: number;
  /** Daily files one request may read through (default 62); a longer range is forwarded. */
  readonly maxFileDays?: number;
  /** Bytes of printed klines kept for reuse (default 64 MiB). */
  readonly cacheBytes?: number;
}

/** Replies of the Binance paths so far, by where they came from. */
export interface BinanceRouteStats {
  /** Klines answered from memory (rings, and daily files read into memory). */
  readonly fromMemory: number;
  /** Of those, the ones that read daily files. */
  readonly fromFiles: number;
  /** time, ping and exchangeInfo answered from memory. */
  readonly info: number;
  /** Requests passed on to Binance (whatever it answered). */
  readonly forwarded: number;
  /** Refused without asking Binance: 429 (no room in the budget), 418 (ban), 503 (not fresh). */
  readonly refused429: number;
  readonly refused418: number;
  readonly stale503: number;
  /** Not held and not forwarded (FORWARD_KLINES false). */
  readonly notHeld: number;
  /** Refused for their parameters, as Binance would (400). */
  readonly invalid: number;
  /** Printed-row cache: lookups answered whole, lookups that printed rows, rows printed, bytes held. */
  readonly cache: { readonly hits: number; readonly misses: number; readonly printedRows: number; readonly bytes: number };
}

/** The Binance paths of one server: `route` goes into startHttpApi's extraRoutes. */
export interface BinanceRoutes {
  readonly route: HttpRoute;
  /** The path prefix of the server's market: '/api/v3', '/fapi/v1' or '/dapi/v1'. */
  readonly prefix: string;
  stats(): BinanceRouteStats;
}

/**
 * The Binance market-data paths of `server`'s market, as an extra route of the HTTP API. Throws
 * InvalidArgumentError for a securitySeconds that is not positive or a maxFileDays that is not a
 * whole number; does no I/O.
 *
 * @example
 * ```ts
 * const binance = binanceRoutes(server);
 * await startHttpApi({ server, extraRoutes: [binance.route, ...chartRoutes(server)] });
 * // curl 'http://127.0.0.1:8080/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=3'
 * ```
 */
export function binanceRoutes(server: CandleServer, options: BinanceRoutesOptions = {}): BinanceRoutes {
  const api = new BinanceApi(server, options);
  return { route: (req, res, url) => api.handle(req, res, url), prefix: api.prefix, stats: () => api.stats() };
}

const JSON_TYPE = 'application/json;charset=UTF-8';
const ENDPOINTS = ['klines', 'time', 'ping', 'exchangeInfo'] as const;
type Endpoint = (typeof ENDPOINTS)[number];
// Spot symbol statuses exchangeInfo's symbolStatus accepts.
const SPOT_STATUSES = new Set(['PRE_TRADING', 'TRADING', 'POST_TRADING', 'END_OF_DAY', 'HALT', 'AUCTION_MATCH', 'BREAK']);
const SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$';
// A spot timeZone that leaves candles on UTC boundaries: 0, +0, -00:00 and the like.
const ZERO_OFFSET = /^[+-]?0{1,2}(:00)?$/;

/** Where a market's paths live: '/api/v3' for '/api/v3/klines'. */
function prefixOf(market: MarketType): string {
  const klines = MARKETS[market].paths.klines;
  return klines.slice(0, klines.lastIndexOf('/'));
}

/** A reply on its way out: status, body (text or chunks), weight header and extra headers. */
interface Outgoing {
  readonly status: number;
  readonly body: string | readonly (string | Buffer)[];
  /** X-MBX-USED-WEIGHT-1M: 0 from memory, the budget's count after a forward. */
  readonly usedWeight: number;
  readonly headers?: Record<string, string>;
}

type Counter = Exclude<keyof BinanceRouteStats, 'cache'>;

class BinanceApi {
  readonly prefix: string;
  readonly #server: CandleServer;
  readonly #logger: Logger;
  readonly #securitySeconds: number;
  readonly #maxFileDays: number;
  readonly #cache: KlineReplyCache;
  readonly #days: DailyDays;
  readonly #counts: Record<Counter, number> = {
    fromMemory: 0,
    fromFiles: 0,
    info: 0,
    forwarded: 0,
    refused429: 0,
    refused418: 0,
    stale503: 0,
    notHeld: 0,
    invalid: 0,
  };
  // The other markets' prefixes: a client pointed at the wrong server is told which it reached.
  readonly #otherPrefixes: ReadonlyMap<string, MarketType>;
  // The printed exchangeInfo per query, around its serverTime, for the document it was printed from.
  #infoTexts = new Map<string, readonly [string, string]>();
  #infoTextsOf: object | undefined;

  constructor(server: CandleServer, options: BinanceRoutesOptions) {
    this.#server = server;
    this.prefix = prefixOf(server.market);
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'binance-api', market: server.market });
    this.#securitySeconds = options.securitySeconds ?? DEFAULT_SECURITY_SECONDS + intervalMs(server.rule.BAR) / 1000;
    if (!(this.#securitySeconds > 0 && Number.isFinite(this.#securitySeconds))) {
      throw new InvalidArgumentError(`securitySeconds must be a positive number of seconds, got ${String(options.securitySeconds)}`);
    }
    this.#maxFileDays = options.maxFileDays ?? 62;
    if (!(Number.isSafeInteger(this.#maxFileDays) && this.#maxFileDays >= 0)) {
      throw new InvalidArgumentError(`maxFileDays must be a whole number of days, 0 or more, got ${String(options.maxFileDays)}`);
    }
    this.#cache = new KlineReplyCache(options.cacheBytes);
    this.#days = new DailyDays({ rule: server.rule, logger: options.logger ?? silentLogger() });
    this.#otherPrefixes = new Map(MARKET_TYPES.filter((m) => m !== server.market).map((m) => [prefixOf(m), m]));
  }

  stats(): BinanceRouteStats {
    return { ...this.#counts, cache: { ...this.#cache.stats } };
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    if (!path.startsWith(`${this.prefix}/`)) {
      const [, api, version] = path.split('/');
      const other = this.#otherPrefixes.get(`/${api ?? ''}/${version ?? ''}`);
      if (other === undefined) return false;
      this.#send(res, {
        status: 404,
        body: errorBody(
          -1020,
          `This operation is not supported. ${path} is a path of ${other}; this candle-server follows ${this.#server.market}, under ${this.prefix}/.`,
        ),
        usedWeight: 0,
      });
      return true;
    }
    const endpoint = path.slice(this.prefix.length + 1);
    const isKept = (ENDPOINTS as readonly string[]).includes(endpoint);
    // Other public market-data paths are passed on, when their weight is known.
    const weight = isKept ? undefined : marketDataWeight(this.#server.market, endpoint, url.searchParams);
    if (!isKept && weight === undefined) {
      const forwarded = weighedPaths(this.#server.market).map((e) => `${this.prefix}/${e}`);
      this.#send(res, {
        status: 404,
        body: errorBody(
          -1020,
          `This operation is not supported. candle-server answers ${ENDPOINTS.map((e) => `${this.prefix}/${e}`).join(', ')} and passes on ${forwarded.join(', ')}; not ${path}.`,
        ),
        usedWeight: 0,
      });
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.#send(res, {
        status: 405,
        body: errorBody(-1020, `This operation is not supported. Method ${String(req.method)} on ${path}; expected GET or HEAD.`),
        usedWeight: 0,
        headers: { allow: 'GET, HEAD' },
      });
      return true;
    }
    if (weight !== undefined) {
      await this.#forward(res, url, weight, { reason: `candle-server keeps no ${endpoint}` });
      return true;
    }
    await this.#answer(endpoint as Endpoint, res, url);
    return true;
  }

  async #answer(endpoint: Endpoint, res: ServerResponse, url: URL): Promise<void> {
    switch (endpoint) {
      case 'klines':
        return this.#klines(res, url);
      case 'time':
        this.#counts.info += 1;
        return this.#send(res, { status: 200, body: `{"serverTime":${Math.round(this.#server.exchangeTime())}}`, usedWeight: 0 });
      case 'ping':
        this.#counts.info += 1;
        return this.#send(res, { status: 200, body: '{}', usedWeight: 0 });
      case 'exchangeInfo':
        return this.#exchangeInfo(res, url);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // klines

  async #klines(res: ServerResponse, url: URL): Promise<void> {
    const server = this.#server;
    const market = server.market;
    const request = readKlinesRequest(market, url.searchParams);
    if ('code' in request) return this.#fail(res, request);
    const { symbol, interval } = request;
    const weight = klinesWeightOf(market, url.searchParams);
    // Another offset moves the candles' boundaries (spot timeZone): the exchange computes those.
    const isUtc = request.timeZone === undefined || ZERO_OFFSET.test(request.timeZone);
    const isFollowed = server.intervals.includes(interval) && server.candleRevision(symbol, interval) !== undefined;
    const range = resolveKlinesRange(market, request, server.exchangeTime());
    if (!isFollowed) {
      // Not followed (now): its daily files may still be on disk; else only the exchange knows the
      // symbol, so its own errors (-1121 before -1130) come from there.
      if (interval === server.rule.BAR && isUtc && !('code' in range) && !range.isEmpty) {
        if ((await this.#serveHeld(res, symbol, interval, range, false)) === 'sent') return;
      }
      const why = server.intervals.includes(interval)
        ? `${symbol} is not followed by this server`
        : `the interval ${interval} is not kept by this server (BAR and INTERVALS: ${server.intervals.join(', ')})`;
      return this.#forward(res, url, weight, { symbol, interval, reason: why });
    }
    if ('code' in range) return this.#fail(res, range);
    if (range.isEmpty) {
      this.#counts.fromMemory += 1;
      return this.#send(res, { status: 200, body: '[]', usedWeight: 0 });
    }
    if (!isUtc) {
      return this.#forward(res, url, weight, { symbol, interval, reason: `timeZone ${request.timeZone ?? ''} moves the candles off UTC` });
    }
    const outcome = await this.#serveHeld(res, symbol, interval, range, true);
    if (outcome === 'sent') return;
    if (outcome.kind === 'stale') return this.#stale(res, symbol, interval);
    return this.#forward(res, url, weight, { symbol, interval, reason: outcome.reason });
  }

  /**
   * Sends the candles a request selects when the server holds them all: from the ring (when fresh
   * and `useRing`) and the daily files, read first as needed. The ring is read and sent in one
   * synchronous pass, so its rows cannot change in between. Otherwise says why: 'stale' when the
   * request needs the ring and the ring is not fresh, 'not-held' with the reason else.
   */
  async #serveHeld(
    res: ServerResponse,
    symbol: string,
    interval: Interval,
    range: KlinesRange,
    useRing: boolean,
  ): Promise<'sent' | { readonly kind: 'stale' } | { readonly kind: 'not-held'; readonly reason: string }> {
    const server = this.#server;
    const days = interval === server.rule.BAR ? this.#days.source(symbol) : undefined;
    // Each pass reads at most one more day; a selection walks through at most maxFileDays of them.
    for (let pass = 0; pass <= this.#maxFileDays + 1; pass += 1) {
      const view = useRing ? server.getCandleSecurity(symbol, this.#securitySeconds, { interval }) : undefined;
      const ring = view === undefined || view.isEmpty ? undefined : view;
      const now = server.exchangeTime();
      const selection = selectKlines({ range, interval, now, ring, days, maxDays: this.#maxFileDays });
      switch (selection.kind) {
        case 'held':
          this.#sendRows(res, symbol, interval, ring, selection);
          return 'sent';
        case 'load':
          await this.#days.load(symbol, selection.day);
          break;
        case 'not-held':
          if (useRing && ring === undefined && this.#needsRing(range, interval, now)) return { kind: 'stale' };
          return selection;
      }
    }
    return { kind: 'not-held', reason: `the daily files the request needs changed while they were read` };
  }

  /** True when the candles a range selects may lie within the ring's span (the last LENGTH candles). */
  #needsRing(range: KlinesRange, interval: Interval, now: number): boolean {
    const span = this.#server.rule.LENGTH * intervalMs(interval);
    // Forward from `from`, the selection ends by from + limit candles unless the exchange has gaps;
    // with gaps it reaches further, and the exchange answers it exactly.
    const reach = range.newest ? Math.min(range.to, now) : Math.min(range.to, now, range.from + range.limit * intervalMs(interval));
    return reach >= now - span;
  }

  /** Sends the selected rows: daily-file rows as the exchange wrote them, ring rows printed (cached). */
  #sendRows(
    res: ServerResponse,
    symbol: string,
    interval: Interval,
    view: CandleView | undefined,
    selection: Extract<Selection, { kind: 'held' }>,
  ): void {
    const chunks: Array<string | Buffer> = ['['];
    let hasRows = false;
    let fromFiles = false;
    const format = this.#server.klineFormat(symbol);
    for (const part of selection.parts) {
      if (hasRows) chunks.push(',');
      hasRows = true;
      if (part.kind === 'rows') {
        fromFiles = true;
        chunks.push(part.rows.map((row) => JSON.stringify(row)).join(','));
        continue;
      }
      if (view === undefined) throw new Error(`ring rows selected for ${symbol} ${interval} without a ring view`);
      const newest = view.length - 1;
      const closedEnd = Math.min(part.end, newest);
      if (closedEnd > part.start) {
        const revision = this.#server.candleRevision(symbol, interval) ?? -1;
        chunks.push(this.#cache.rows(`${symbol}|${interval}`, revision, format, view, part.start, closedEnd));
      }
      if (part.end > newest) {
        if (closedEnd > part.start) chunks.push(',');
        chunks.push(klineJson(view, newest, format));
      }
    }
    chunks.push(']');
    this.#counts.fromMemory += 1;
    if (fromFiles) this.#counts.fromFiles += 1;
    this.#send(res, { status: 200, body: chunks, usedWeight: 0 });
  }

  #stale(res: ServerResponse, symbol: string, interval: Interval): void {
    const status = this.#server.status(symbol, this.#securitySeconds, { interval });
    this.#counts.stale503 += 1;
    const why = describeNotFresh(status, this.#securitySeconds);
    this.#send(res, {
      status: 503,
      body: errorBody(
        -1008,
        `candle-server: ${symbol} ${interval} is not served while not fresh (${status.state}): ${why}. Retry shortly.`,
      ),
      usedWeight: 0,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // exchangeInfo

  async #exchangeInfo(res: ServerResponse, url: URL): Promise<void> {
    const server = this.#server;
    const weight = MARKETS[server.market].exchangeInfoWeight;
    const document = server.exchangeInfoDocument();
    if (document === undefined) return this.#forward(res, url, weight, { reason: 'the server has not read exchangeInfo yet' });
    const picked = this.#pickSymbols(document.body, document.query, url.searchParams);
    if ('code' in picked) return this.#fail(res, picked);
    if ('reason' in picked) return this.#forward(res, url, weight, { reason: picked.reason });
    if (this.#infoTextsOf !== document.body) {
      this.#infoTexts = new Map();
      this.#infoTextsOf = document.body;
    }
    const key = url.search;
    let text = this.#infoTexts.get(key);
    if (text === undefined) {
      // Printed once per document and query, around a placeholder for serverTime.
      const placeholder = '\u0000serverTime\u0000';
      const printed = JSON.stringify({ ...document.body, serverTime: placeholder, symbols: picked.symbols });
      const at = printed.indexOf(JSON.stringify(placeholder));
      text = [printed.slice(0, at), printed.slice(at + JSON.stringify(placeholder).length)] as const;
      if (this.#infoTexts.size >= 64) this.#infoTexts.clear();
      this.#infoTexts.set(key, text);
    }
    this.#counts.info += 1;
    this.#send(res, { status: 200, body: [text[0], String(Math.round(server.exchangeTime())), text[1]], usedWeight: 0 });
  }

  /**
   * The held document's symbols a query selects, as the exchange filters them; Binance's error for
   * a bad query; or why the held document cannot answer it (forwarded).
   */
  #pickSymbols(
    body: Readonly<Record<string, unknown>>,
    heldQuery: string,
    params: URLSearchParams,
  ): { readonly symbols: unknown[] } | BinanceFailure | { readonly reason: string } {
    const all = (Array.isArray(body.symbols) ? body.symbols : []) as Array<Record<string, unknown>>;
    const one = params.get('symbol');
    if (this.#server.market !== 'SPOT') return { symbols: one === null ? all : all.filter((s) => s.symbol === one) };
    const held = new URLSearchParams(heldQuery);
    const heldAs = heldQuery === '' ? 'the whole exchangeInfo' : `exchangeInfo?${heldQuery}`;
    const many = params.get('symbols');
    const status = params.get('symbolStatus');
    const permissions = params.get('permissions');
    if (status !== null && (one !== null || many !== null))
      return binanceFailure(400, -1128, 'Combination of optional parameters invalid.');
    let symbols = all;
    if (one !== null) {
      if (!SYMBOL_PATTERN.test(one)) return illegalCharacters('symbol', SYMBOL_RANGE);
      symbols = all.filter((s) => s.symbol === one);
      if (symbols.length === 0) return { reason: `${one} is not in the ${heldAs} the server holds` };
    } else if (many !== null) {
      const names = stringList(many);
      if (names === undefined) return illegalCharacters('symbols', SYMBOLS_RANGE);
      const wanted = new Set(names);
      symbols = all.filter((s) => typeof s.symbol === 'string' && wanted.has(s.symbol));
      if (symbols.length !== wanted.size) return { reason: `some of ${many} are not in the ${heldAs} the server holds` };
    }
    if (status !== null) {
      if (!SPOT_STATUSES.has(status)) return binanceFailure(400, -1122, 'Invalid symbolStatus.');
      const heldStatus = held.get('symbolStatus');
      if (heldStatus !== null && heldStatus !== status) return { reason: `the server holds ${heldAs}, not symbolStatus ${status}` };
      symbols = symbols.filter((s) => s.status === status);
    }
    if (permissions !== null) {
      const wanted = permissions.startsWith('[') ? stringList(permissions) : [permissions];
      if (wanted === undefined) return invalidValue('permissions');
      const heldPermission = held.get('permissions');
      if (heldPermission === null || !wanted.includes(heldPermission))
        return { reason: `the server holds ${heldAs}, not permissions ${permissions}` };
    }
    if (params.get('showPermissionSets') === 'false') symbols = symbols.map((s) => ({ ...s, permissionSets: [] }));
    return { symbols };
  }

  // ---------------------------------------------------------------------------------------------
  // forwarding and replies

  /**
   * Passes the request on to the exchange (or, with FORWARD_KLINES false, says what is held):
   * 429 when the budget has no room now, 418 during a ban, both with nothing sent.
   */
  async #forward(
    res: ServerResponse,
    url: URL,
    weight: number,
    held: { readonly symbol?: string; readonly interval?: Interval; readonly reason: string },
  ): Promise<void> {
    const server = this.#server;
    if (!server.rule.FORWARD_KLINES) return this.#notHeld(res, held);
    const path = url.pathname;
    // The client gone, the request is cancelled: its weight is spent, its reply would go nowhere.
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    res.once('close', onClose);
    try {
      const reply = await server.forward(path, url.search.slice(1), weight, { signal: gone.signal });
      this.#counts.forwarded += 1;
      this.#logger.debug({ path, query: url.search, status: reply.status, weight, reason: held.reason }, 'forwarded');
      this.#send(res, {
        status: reply.status,
        body: reply.body,
        usedWeight: server.stats().weight.used,
        headers: {
          'content-type': reply.contentType ?? JSON_TYPE,
          ...(reply.retryAfter === undefined ? {} : { 'retry-after': reply.retryAfter }),
        },
      });
    } catch (error) {
      this.#refuse(res, error, path);
    } finally {
      res.off('close', onClose);
    }
  }

  /** Binance's reply for a request refused before (or without) reaching the exchange. */
  #refuse(res: ServerResponse, error: unknown, path: string): void {
    const used = this.#server.stats().weight;
    if (error instanceof WeightUnavailableError) {
      this.#counts.refused429 += 1;
      const seconds = Math.max(1, Math.ceil(error.retryAfterMs / 1000));
      this.#send(res, {
        status: 429,
        body: errorBody(
          -1003,
          `Too much request weight used; candle-server forwards within its budget of ${used.budget} of the ${used.limit} request weight per minute (SERVER_WEIGHT), live work first: ${error.message}. Retry after ${seconds} s.`,
        ),
        usedWeight: used.used,
        headers: { 'retry-after': String(seconds) },
      });
      return;
    }
    if (error instanceof BannedError) {
      this.#counts.refused418 += 1;
      const seconds = Math.max(1, Math.ceil((error.until - this.#server.exchangeTime()) / 1000));
      this.#send(res, {
        status: 418,
        body: errorBody(
          -1003,
          `Way too much request weight used; IP banned until ${error.until}. candle-server sends nothing to Binance until then (klines it holds are still served). Please use WebSocket Streams for live updates to avoid bans.`,
        ),
        usedWeight: used.used,
        headers: { 'retry-after': String(seconds) },
      });
      return;
    }
    if (error instanceof AbortedError) return; // the client left
    let status = 500;
    let code = -1000;
    let what = 'An unknown error occurred while processing the request.';
    if (error instanceof TimeoutError) {
      [status, code, what] = [
        504,
        -1007,
        'Timeout waiting for response from backend server. Send status unknown; execution status unknown.',
      ];
    } else if (error instanceof NetworkError) {
      [status, code, what] = [502, -1001, 'Internal error; unable to process your request. Please try again.'];
    } else if (error instanceof ClosedError) {
      [status, code, what] = [503, -1008, 'candle-server is not connected to the exchange (starting or stopping); try again later.'];
    } else {
      this.#logger.error({ err: error, path }, 'forwarding failed');
    }
    this.#send(res, {
      status,
      body: errorBody(code, `${what} (candle-server forwarding ${path}: ${error instanceof Error ? error.message : String(error)})`),
      usedWeight: used.used,
    });
  }

  /** FORWARD_KLINES false: a 400 saying what the server holds and why this request is not in it. */
  async #notHeld(
    res: ServerResponse,
    held: { readonly symbol?: string; readonly interval?: Interval; readonly reason: string },
  ): Promise<void> {
    const server = this.#server;
    const { BAR, TIMEZONE } = server.rule;
    const holds = [`${server.symbols().length} ${server.market} symbols (GET /symbols lists them) in ${server.intervals.join(', ')}`];
    if (held.symbol !== undefined && held.interval !== undefined && server.candleRevision(held.symbol, held.interval) !== undefined) {
      const status = server.status(held.symbol, this.#securitySeconds, { interval: held.interval });
      const oldest =
        status.newestOpenTime === undefined ? undefined : status.newestOpenTime - (status.rows - 1) * intervalMs(held.interval);
      holds.push(
        oldest === undefined
          ? `${held.symbol} ${held.interval}: no candles in memory yet`
          : `${held.symbol} ${held.interval} in memory: ${status.rows} candles from about ${new Date(oldest).toISOString()}`,
      );
    }
    if (held.symbol !== undefined) {
      const disk = await this.#days.filesOnDisk(held.symbol);
      holds.push(
        disk === undefined
          ? `no daily files of ${held.symbol} on disk`
          : `daily files of ${held.symbol} ${BAR} on disk for ${disk.count} local days (${TIMEZONE}) from ${disk.first} to ${disk.last}`,
      );
    }
    this.#counts.notHeld += 1;
    this.#send(res, {
      status: 400,
      body: errorBody(
        -1020,
        `This operation is not supported. candle-server does not forward to Binance (FORWARD_KLINES is false) and does not hold this request: ${held.reason}. It holds ${holds.join('; ')}.`,
      ),
      usedWeight: 0,
    });
  }

  #fail(res: ServerResponse, failure: BinanceFailure): void {
    this.#counts.invalid += 1;
    this.#send(res, { status: failure.status, body: errorBody(failure.code, failure.msg), usedWeight: 0 });
  }

  /** Writes a reply with Binance's headers: JSON, and the used weight (both names on spot). */
  #send(res: ServerResponse, reply: Outgoing): void {
    const chunks = typeof reply.body === 'string' ? [reply.body] : reply.body;
    let length = 0;
    for (const chunk of chunks) length += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    const used = String(reply.usedWeight);
    res.writeHead(reply.status, {
      'content-type': JSON_TYPE,
      ...reply.headers,
      'content-length': String(length),
      'x-mbx-used-weight-1m': used,
      ...(this.#server.market === 'SPOT' ? { 'x-mbx-used-weight': used } : {}),
    });
    if (chunks.length === 1) {
      res.end(chunks[0]);
      return;
    }
    // Corked: the headers and every chunk leave in one write.
    res.cork();
    for (const chunk of chunks) res.write(chunk);
    res.end();
  }
}

function errorBody(code: number, msg: string): string {
  return JSON.stringify({ code, msg });
}

/** A JSON list of strings (`["BTCUSDT","ETHUSDT"]`), or undefined when the text is not one. */
function stringList(text: string): string[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  const names = value.filter((item): item is string => typeof item === 'string');
  return names.length === value.length ? names : undefined;
}
