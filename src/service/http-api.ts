/**
 * The HTTP API of a running CandleServer, for other processes on the same host (a second bot, a
 * notebook) and for monitoring. node:http only; it binds 127.0.0.1 unless told otherwise.
 *
 * ```
 * GET /health?securitySeconds=180      200 {status:'ok', symbols}  |  503 {status:'starting'|'degraded', reasons}
 * GET /metrics                         Prometheus text (see metrics.ts)
 * GET /symbols?securitySeconds=180&interval=
 *                                      {market, bar, interval, intervals, symbols:[{symbol, state, rows, newestOpenTime, newestAgeMs}]}
 * GET /candles/:symbol?limit=&securitySeconds=&interval=&format=json|csv
 *                                      {symbol, market, bar, interval, columns, rows:[[12 numbers], ...]} oldest first
 *                                      (interval: BAR, the default, or one of the rule's INTERVALS)
 * ```
 *
 * Every error is JSON `{ error }` saying what was received and what was expected: 400 for bad
 * input, 404 for an unknown route or symbol, 405 (with `Allow`) for another method, 503 when the
 * candles are not fresh. HEAD is answered like GET, without the body.
 *
 * Other pages (a chart, a live-update endpoint) plug in through `extraRoutes`: each route is
 * offered every request the built-in routes do not own, in order, and returns true once it has
 * answered. `sendJson` and `sendError` are exported for them, so every reply looks alike.
 *
 * @example
 * ```ts
 * const api = await startHttpApi({ server, port: 8080 });
 * // curl http://127.0.0.1:8080/candles/BTCUSDT?limit=3
 * await api.close();
 * ```
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CandleServer, SymbolStatus } from '../candle-server.js';
import { CandleServerError, InvalidArgumentError } from '../errors.js';
import { KLINE_COLUMNS } from '../binance/kline.js';
import type { Interval } from '../binance/markets.js';
import { silentLogger, type Logger } from '../log.js';
import type { CandleView } from '../store/candle-view.js';
import { assertSymbol } from '../binance/symbols.js';
import type { SymbolState } from '../sync/candle-sync.js';
import { collectMetrics, EventLoopDelayMonitor, formatMetrics, METRICS_CONTENT_TYPE } from './metrics.js';

/**
 * An extra route: answers the request and returns true, or returns false to let the next route
 * (and finally the 404) have it. A throw becomes a 500.
 *
 * @example
 * ```ts
 * const chart: HttpRoute = (req, res, url) => {
 *   if (url.pathname !== '/chart') return false;
 *   res.writeHead(200, { 'content-type': 'text/html' }).end(page);
 *   return true;
 * };
 * await startHttpApi({ server, extraRoutes: [chart] });
 * ```
 */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

/** Options of {@link startHttpApi}. */
export interface HttpApiOptions {
  readonly server: CandleServer;
  /** Interface to bind (default '127.0.0.1': only this host can connect). */
  readonly host?: string;
  /** Port (default 0: any free port; `HttpApi.port` says which). */
  readonly port?: number;
  /** A pino logger; each request is logged at debug level with component 'http'. */
  readonly logger?: Logger;
  /** Routes tried, in order, for requests the built-in routes do not own. */
  readonly extraRoutes?: readonly HttpRoute[];
  /** Symbols listed in a 503 /health reply at most (default 20); counts cover them all. */
  readonly maxHealthReasons?: number;
  /** How long close() lets requests in flight finish before cutting them (default 1000 ms). */
  readonly closeGraceMs?: number;
}

/** A listening HTTP API. */
export interface HttpApi {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  /** The node:http server, for routes that need the `upgrade` event (WebSockets). */
  readonly httpServer: Server;
  /** Stops listening, ends keep-alive connections and the event-loop monitor. Idempotent. */
  close(): Promise<void>;
}

/** Default freshness window of /health, /symbols and /candles, as getCandleSecurity's. */
export const DEFAULT_SECURITY_SECONDS = 180;

const JSON_TYPE = 'application/json; charset=utf-8';
const ALLOWED = 'GET, HEAD';
const ROUTES = 'GET /health, /metrics, /symbols, /candles/:symbol';
const INTEGER_TEXT = /^\d+$/;
const NUMBER_TEXT = /^(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

/**
 * Writes `body` as JSON with `status` (no caching: candles change every second).
 *
 * @example
 * ```ts
 * sendJson(res, 200, { ok: true });
 * ```
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * Writes an error reply `{ error, ...extra }`; `error` should say what was received and what was expected.
 *
 * @example
 * ```ts
 * sendError(res, 400, 'interval "2m" is not a Binance interval; expected one of 1m, 5m, ...');
 * ```
 */
export function sendError(
  res: ServerResponse,
  status: number,
  error: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { error, ...extra }, headers);
}

/**
 * Starts the HTTP API of `server` and resolves once it listens. Rejects with a CandleServerError
 * (code 'HTTP_LISTEN_FAILED') when the address cannot be bound.
 *
 * @example
 * ```ts
 * const api = await startHttpApi({ server, host: '127.0.0.1', port: 0, logger });
 * console.log(`candles at ${api.url}/candles/BTCUSDT`);
 * ```
 */
export async function startHttpApi(options: HttpApiOptions): Promise<HttpApi> {
  const host = options.host ?? '127.0.0.1';
  const logger = (options.logger ?? silentLogger()).child({ component: 'http' });
  const handler = new ApiHandler(options);
  const httpServer = createServer((req, res) => void handler.handle(req, res, logger));
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      reject(
        new CandleServerError('HTTP_LISTEN_FAILED', `the HTTP API cannot listen on ${host}:${options.port ?? 0}: ${error.message}`, {
          cause: error,
        }),
      );
    };
    httpServer.once('error', onError);
    httpServer.listen(options.port ?? 0, host, () => {
      httpServer.off('error', onError);
      resolve();
    });
  });
  httpServer.on('error', (error) => logger.error({ err: error }, 'HTTP server error'));
  handler.eventLoop.start();
  const port = (httpServer.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info({ url }, `HTTP API listening on ${url}`);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      handler.eventLoop.stop();
      // Requests in flight get a short grace; a long-lived one (an event stream) is then cut.
      const cut = setTimeout(() => httpServer.closeAllConnections(), options.closeGraceMs ?? 1000);
      httpServer.close(() => {
        clearTimeout(cut);
        logger.info({ url }, 'HTTP API closed');
        resolve();
      });
      httpServer.closeIdleConnections();
    });
    return closing;
  };
  return { url, port, httpServer, close };
}

/** What a built-in route answers. */
interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
  /** Sent as is with this content type instead of JSON. */
  readonly text?: { readonly contentType: string; readonly content: string };
}

class ApiHandler {
  readonly eventLoop = new EventLoopDelayMonitor();
  readonly #server: CandleServer;
  readonly #extraRoutes: readonly HttpRoute[];
  readonly #maxReasons: number;

  constructor(options: HttpApiOptions) {
    this.#server = options.server;
    this.#extraRoutes = options.extraRoutes ?? [];
    this.#maxReasons = options.maxHealthReasons ?? 20;
  }

  async handle(req: IncomingMessage, res: ServerResponse, logger: Logger): Promise<void> {
    const startedAt = performance.now();
    res.once('finish', () => {
      logger.debug(
        { method: req.method, url: req.url, status: res.statusCode, ms: Math.round((performance.now() - startedAt) * 10) / 10 },
        'request',
      );
    });
    try {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://localhost');
      } catch {
        sendError(res, 400, `request target ${JSON.stringify(req.url)} is not a valid URL path; expected e.g. /candles/BTCUSDT?limit=10`);
        return;
      }
      const route = this.#builtIn(url.pathname);
      if (route !== undefined) {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          sendError(
            res,
            405,
            `method ${String(req.method)} is not allowed on ${url.pathname}; expected GET or HEAD`,
            {},
            { allow: ALLOWED },
          );
          return;
        }
        this.#send(res, this.#answer(route, url));
        return;
      }
      for (const extra of this.#extraRoutes) {
        if (await extra(req, res, url)) return;
      }
      sendError(res, 404, `no route for ${String(req.method)} ${url.pathname}; expected one of ${ROUTES}`);
    } catch (error) {
      logger.error({ err: error, method: req.method, url: req.url }, 'request failed');
      if (!res.headersSent) sendError(res, 500, `internal error: ${error instanceof Error ? error.message : String(error)}`);
      else res.destroy();
    }
  }

  #builtIn(path: string): ((url: URL) => Reply) | undefined {
    switch (path) {
      case '/health':
        return (url) => this.#health(url);
      case '/metrics':
        return (url) => this.#metrics(url);
      case '/symbols':
        return (url) => this.#symbols(url);
      default:
        if (path === '/candles' || path.startsWith('/candles/')) return (url) => this.#candles(url);
        return undefined;
    }
  }

  #answer(route: (url: URL) => Reply, url: URL): Reply {
    try {
      return route(url);
    } catch (error) {
      if (error instanceof InvalidArgumentError) return { status: 400, body: { error: error.message } };
      throw error;
    }
  }

  #send(res: ServerResponse, reply: Reply): void {
    if (reply.text === undefined) {
      sendJson(res, reply.status, reply.body, reply.headers);
      return;
    }
    res.writeHead(reply.status, {
      ...reply.headers,
      'content-type': reply.text.contentType,
      'content-length': Buffer.byteLength(reply.text.content),
      'cache-control': 'no-store',
    });
    res.end(reply.text.content);
  }

  #health(url: URL): Reply {
    const query = readQuery(url, ['securitySeconds']);
    const securitySeconds = parseSecuritySeconds(query.get('securitySeconds'));
    const server = this.#server;
    const symbols = server.symbols();
    const counts: Partial<Record<SymbolState, number>> = {};
    const reasons: Array<Record<string, unknown>> = [];
    for (const symbol of symbols) {
      const status = server.status(symbol, securitySeconds);
      counts[status.state] = (counts[status.state] ?? 0) + 1;
      if (status.state !== 'fresh' && reasons.length < this.#maxReasons) {
        reasons.push({
          symbol,
          state: status.state,
          newestAgeMs: status.newestAgeMs ?? null,
          confirmedAgeMs: status.confirmedAgeMs ?? null,
        });
      }
    }
    const notFresh = symbols.length - (counts.fresh ?? 0);
    if (server.isReady && notFresh === 0) return { status: 200, body: { status: 'ok', symbols: symbols.length, securitySeconds } };
    return {
      status: 503,
      body: {
        status: server.isReady ? 'degraded' : 'starting',
        symbols: symbols.length,
        notFresh,
        securitySeconds,
        counts,
        reasons,
        ...(notFresh > reasons.length ? { reasonsOmitted: notFresh - reasons.length } : {}),
      },
    };
  }

  #metrics(url: URL): Reply {
    const query = readQuery(url, ['securitySeconds']);
    const securitySeconds = parseSecuritySeconds(query.get('securitySeconds'));
    const text = formatMetrics(collectMetrics(this.#server, { securitySeconds, eventLoop: this.eventLoop }));
    return { status: 200, body: undefined, text: { contentType: METRICS_CONTENT_TYPE, content: text } };
  }

  #symbols(url: URL): Reply {
    const query = readQuery(url, ['securitySeconds', 'interval']);
    const securitySeconds = parseSecuritySeconds(query.get('securitySeconds'));
    const server = this.#server;
    const interval = parseInterval(server, query.get('interval'));
    const symbols = server.symbols().map((symbol) => {
      const status = server.status(symbol, securitySeconds, { interval });
      return {
        symbol,
        state: status.state,
        rows: status.rows,
        newestOpenTime: status.newestOpenTime ?? null,
        newestAgeMs: status.newestAgeMs ?? null,
      };
    });
    return {
      status: 200,
      body: { market: server.market, bar: server.rule.BAR, interval, intervals: server.intervals, securitySeconds, symbols },
    };
  }

  #candles(url: URL): Reply {
    const server = this.#server;
    const length = server.rule.LENGTH;
    const raw = url.pathname.slice('/candles/'.length);
    if (url.pathname === '/candles' || raw === '') {
      throw new InvalidArgumentError(`${url.pathname} names no symbol; expected /candles/<SYMBOL>, e.g. /candles/BTCUSDT`);
    }
    if (raw.includes('/')) {
      return { status: 404, body: { error: `no route for ${url.pathname}; expected /candles/<SYMBOL> with one path segment` } };
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      throw new InvalidArgumentError(
        `symbol ${JSON.stringify(raw)} is not valid percent-encoding; expected a Binance symbol (A-Z, 0-9, _)`,
      );
    }
    const symbol = assertSymbol(decoded, 'symbol');
    const query = readQuery(url, ['limit', 'securitySeconds', 'format', 'interval']);
    const interval = parseInterval(server, query.get('interval'));
    const limitText = query.get('limit');
    let limit = length;
    if (limitText !== undefined) {
      limit = INTEGER_TEXT.test(limitText) ? Number(limitText) : Number.NaN;
      if (!(limit >= 1 && limit <= length))
        throw new InvalidArgumentError(`limit ${JSON.stringify(limitText)} is invalid; expected an integer from 1 to ${length} (LENGTH)`);
    }
    const securitySeconds = parseSecuritySeconds(query.get('securitySeconds'));
    const format = query.get('format') ?? 'json';
    if (format !== 'json' && format !== 'csv')
      throw new InvalidArgumentError(`format ${JSON.stringify(format)} is invalid; expected json or csv`);

    // The view is read synchronously below, before anything can change the ring.
    const view = server.getCandleSecurity(symbol, securitySeconds, { interval });
    if (view.isEmpty) {
      const status = server.status(symbol, securitySeconds, { interval });
      if (status.state === 'unknown') {
        return {
          status: 404,
          body: {
            error: `symbol ${symbol} is not followed by this ${server.market} server (${server.symbols().length} symbols; see GET /symbols)`,
            symbol,
          },
        };
      }
      return { status: 503, body: { error: 'stale', message: describeNotFresh(status, securitySeconds), status: jsonStatus(status) } };
    }
    const rows = tailRows(view, limit);
    if (format === 'csv') {
      const lines = [KLINE_COLUMNS.join(','), ...rows.map((row) => row.join(','))];
      return { status: 200, body: undefined, text: { contentType: 'text/csv; charset=utf-8', content: `${lines.join('\n')}\n` } };
    }
    return { status: 200, body: { symbol, market: server.market, bar: server.rule.BAR, interval, columns: KLINE_COLUMNS, rows } };
  }
}

/** The newest `limit` rows of `view` as plain arrays, oldest first. */
function tailRows(view: CandleView, limit: number): number[][] {
  const rows: number[][] = [];
  for (let r = Math.max(0, view.length - limit); r < view.length; r += 1) rows.push(Array.from(view.at(r)));
  return rows;
}

/**
 * The query parameters of a request, refusing unknown and repeated ones (InvalidArgumentError,
 * answered 400). Shared by every route so they all reject bad input alike.
 *
 * @example
 * ```ts
 * const query = readQuery(url, ['symbol', 'limit']);
 * ```
 */
export function readQuery(url: URL, allowed: readonly string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const [name, value] of url.searchParams) {
    if (!allowed.includes(name)) {
      throw new InvalidArgumentError(
        `query parameter ${JSON.stringify(name)} is not known on ${url.pathname}; expected ${allowed.join(', ')}`,
      );
    }
    if (values.has(name)) throw new InvalidArgumentError(`query parameter ${name} is given twice; expected it once`);
    values.set(name, value);
  }
  return values;
}

/** BAR when absent; else one of the intervals the server keeps (InvalidArgumentError, a 400, otherwise). */
function parseInterval(server: CandleServer, text: string | undefined): Interval {
  if (text === undefined) return server.rule.BAR;
  const interval = server.intervals.find((kept) => kept === text);
  if (interval === undefined) {
    throw new InvalidArgumentError(
      `interval ${JSON.stringify(text)} is not kept by this server; expected one of ${server.intervals.join(', ')} (BAR and INTERVALS)`,
    );
  }
  return interval;
}

function parseSecuritySeconds(text: string | undefined): number {
  if (text === undefined) return DEFAULT_SECURITY_SECONDS;
  const value = NUMBER_TEXT.test(text) ? Number(text) : Number.NaN;
  if (!(value > 0 && Number.isFinite(value))) {
    throw new InvalidArgumentError(
      `securitySeconds ${JSON.stringify(text)} is invalid; expected a positive number of seconds (default ${DEFAULT_SECURITY_SECONDS})`,
    );
  }
  return value;
}

function jsonStatus(status: SymbolStatus): Record<string, unknown> {
  return Object.fromEntries(Object.entries(status).map(([key, value]) => [key, value ?? null]));
}

/**
 * Why a followed symbol's candles are not served, with the ages that decided it: the message of
 * every not-fresh reply (/candles, the Binance paths).
 *
 * @example
 * ```ts
 * describeNotFresh(server.status('BTCUSDT', 180), 180); // 'BTCUSDT is still being filled (12 rows so far)'
 * ```
 */
export function describeNotFresh(status: SymbolStatus, securitySeconds: number): string {
  const limitMs = securitySeconds * 1000;
  const age = (ms: number | undefined): string => (ms === undefined ? 'never' : `${Math.round(ms)} ms ago`);
  switch (status.state) {
    case 'fresh':
      return `${status.symbol} was not served at the moment of the request (the server is closing, or the symbol has just recovered); retry`;
    case 'warming':
      return `${status.symbol} is still being filled (${status.rows} rows so far)`;
    case 'repairing':
      return `${status.symbol} has a hole from ${new Date(status.repairingFrom ?? 0).toISOString()} being filled over REST`;
    case 'banned':
      return `${status.symbol} is stale while the IP ban lasts (until ${new Date(status.bannedUntil ?? 0).toISOString()}): newest candle opened ${age(status.newestAgeMs)}, data confirmed ${age(status.confirmedAgeMs)}; expected both under ${limitMs} ms`;
    default:
      return `${status.symbol} is ${status.state}: newest candle opened ${age(status.newestAgeMs)}, data confirmed ${age(status.confirmedAgeMs)}; expected both under ${limitMs} ms (securitySeconds=${securitySeconds})`;
  }
}
