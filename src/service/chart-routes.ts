/**
 * The live chart page of a CandleServer, as extra routes of the HTTP API:
 *
 * ```
 * GET /chart                                 the page (web/chart/index.html)
 * GET /chart/app.js, /chart/app.css          the page's bundle (Lightweight Charts inside: no CDN)
 * GET /api/chart/candles?symbol=&period=&limit=
 *                                            {bars, indicators, status, ...}: the ring aggregated to
 *                                            the period, older history from the daily files
 * GET /api/chart/live?symbol=&period=        Server-Sent Events: `update` {bars, status} every second
 *                                            and on each candle close; `: ping` heartbeats
 * ```
 *
 * A period the rule keeps as a derived ring (INTERVALS) is read from that ring: LENGTH bars of the
 * period, kept current from the BAR stream, nothing aggregated per request. For the other periods:
 * longer periods (1h, 4h, 1d) need more time than the ring's LENGTH candles of BAR cover. Bars
 * older than the ring's oldest candle then come from the daily files of CANDLE_DIR: consecutive
 * local days going back from the one holding the candle just before the ring's oldest, as far as
 * `limit` bars (plus indicator warm-up) need, at most `maxHistoryDays` (default 30) days, and
 * stopping at the first day with no file. So history joins the ring without a hole, or not at
 * all: it needs a ring reaching back into a day whose file exists (the default LENGTH of 2880 1m
 * candles with LOCAL_CANDLE_DAYS 2 gives about four days). Days wholly before the ring are cached
 * per period (checked against the file's size and mtime).
 *
 * The page bundle is found in `dist/web/chart/` whether this module runs from `src/` (tests,
 * tsx) or from `dist/`; build it with `npm run build:web`.
 *
 * @example
 * ```ts
 * const api = await startHttpApi({ server, port: 8080, extraRoutes: chartRoutes(server) });
 * // open http://127.0.0.1:8080/chart
 * ```
 */
import { readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { aggregate, canAggregate, concatBars, type Bar } from '../analysis/aggregate.js';
import { bollinger, rsi, sma } from '../analysis/indicators.js';
import type { CandleServer } from '../candle-server.js';
import { InvalidArgumentError } from '../errors.js';
import { intervalMs, openTimeOf } from '../binance/intervals.js';
import { COL, type KlineValues, type RawKline } from '../binance/kline.js';
import type { Interval } from '../binance/markets.js';
import { readDailyFile } from '../files/daily-file.js';
import { addDays, dailyFilePath, localDayBounds, localDayOf } from '../files/daily-layout.js';
import { silentLogger, type Logger } from '../log.js';
import type { CandleView } from '../store/candle-view.js';
import { assertSymbol } from '../binance/symbols.js';
import type { SymbolState } from '../sync/candle-sync.js';
import { readQuery, sendError, sendJson, type HttpRoute } from './http-api.js';

/** The periods the page offers (those the BAR aggregates into). */
export const CHART_PERIODS = ['1m', '5m', '15m', '1h', '4h', '1d'] as const satisfies readonly Interval[];
export type ChartPeriod = (typeof CHART_PERIODS)[number];

/** One bar as the page draws it (the wire format of the chart): open time in epoch ms. */
export interface ChartBar extends Pick<KlineValues, 'open' | 'high' | 'low' | 'close' | 'volume'> {
  readonly time: number;
}

/** What the status bar shows. */
export interface ChartStatus {
  readonly symbol: string;
  readonly state: SymbolState;
  readonly newestOpenTime: number | null;
  /** Age of the newest candle's open time on the exchange clock, ms. */
  readonly newestAgeMs: number | null;
  /** True unless the symbol is fresh within `securitySeconds`. */
  readonly isStale: boolean;
  readonly securitySeconds: number;
  readonly weight: { readonly used: number; readonly budget: number; readonly limit: number; readonly bannedUntil: number | null };
  /** 'websocket' with its connections, or 'rest' (polling only). */
  readonly stream: { readonly mode: string; readonly connections: number; readonly reconnects: number; readonly messages: number };
}

/** Indicator series aligned with `bars` (null where not enough data). */
export interface ChartIndicators {
  readonly ma5: readonly (number | null)[];
  readonly ma10: readonly (number | null)[];
  readonly ma20: readonly (number | null)[];
  readonly bbUpper: readonly (number | null)[];
  readonly bbMiddle: readonly (number | null)[];
  readonly bbLower: readonly (number | null)[];
  readonly rsi14: readonly (number | null)[];
}

/** Reply of GET /api/chart/candles. */
export interface ChartCandlesReply {
  readonly symbol: string;
  readonly market: string;
  readonly bar: Interval;
  readonly period: ChartPeriod;
  readonly periods: readonly ChartPeriod[];
  /**
   * Warm-up bars first, then the `limit` bars to show: indicators computed over `bars` from
   * `shownFrom` on match what a bot computing over the same candles gets.
   */
  readonly bars: readonly ChartBar[];
  readonly shownFrom: number;
  readonly indicators: ChartIndicators;
  /** Bars (warm-up included) that came from the daily files. */
  readonly historyBars: number;
  readonly status: ChartStatus;
}

/** Data of one `update` event of GET /api/chart/live: the previous and the forming bar. */
export interface ChartLiveUpdate {
  readonly symbol: string;
  readonly period: ChartPeriod;
  readonly bars: readonly ChartBar[];
  readonly status: ChartStatus;
}

/** Options of {@link chartRoutes}. */
export interface ChartRoutesOptions {
  readonly logger?: Logger;
  /** Folder holding `chart/index.html`, `chart/app.js`, `chart/app.css` (default: found in dist/web). */
  readonly webRoot?: string;
  /** Freshness window of the stale badge (default: BAR + 180 s). */
  readonly securitySeconds?: number;
  /** Local days of daily files read at most for history (default 30). */
  readonly maxHistoryDays?: number;
  /** Between two live updates (default 1000 ms). */
  readonly liveIntervalMs?: number;
  /** Between two heartbeats of the event stream (default 15 000 ms). */
  readonly heartbeatMs?: number;
}

const DEFAULT_LIMIT = 300;
const MAX_LIMIT = 1000;
// Extra bars before the shown ones so MA20, Bollinger 20 and Wilder's RSI have settled.
const WARMUP_BARS = 50;
// The chart wants the ring whatever its age: staleness is shown, not hidden.
const ANY_AGE_SECONDS = 1e9;
// A client this far behind on the event stream is cut rather than buffered for.
const MAX_BUFFERED_BYTES = 1 << 20;
const HISTORY_CACHE_ENTRIES = 2000;
const STATIC_FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/chart': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/chart/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/chart/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/chart/app.js.map': { file: 'app.js.map', type: 'application/json; charset=utf-8' },
  '/chart/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};
const INTEGER_TEXT = /^\d+$/;

/**
 * Where the page bundle lives: `dist/web` beside this module when it runs from `dist/`, or the
 * project's `dist/web` when it runs from `src/`. The first folder holding `chart/app.js` wins.
 *
 * @example
 * ```ts
 * findWebRoot(); // '/opt/candle-server/dist/web', or undefined before `npm run build:web`
 * ```
 */
export function findWebRoot(): string | undefined {
  const candidates = [new URL('../web/', import.meta.url), new URL('../../dist/web/', import.meta.url)].map((url) => fileURLToPath(url));
  return candidates.find((dir) => existsSync(join(dir, 'chart', 'app.js')));
}

/**
 * The chart page's routes, for `startHttpApi({ extraRoutes })`. Live event streams end when their
 * client goes or when the HTTP API closes (it cuts open connections).
 *
 * @example
 * ```ts
 * await startHttpApi({ server, extraRoutes: chartRoutes(server, { logger }) });
 * ```
 */
export function chartRoutes(server: CandleServer, options: ChartRoutesOptions = {}): HttpRoute[] {
  const chart = new ChartService(server, options);
  return [(req, res, url) => chart.handle(req, res, url)];
}

/** Cached bars of one completed day file, for one period. */
interface CachedDay {
  readonly size: number;
  readonly mtimeMs: number;
  readonly bars: Bar[];
}

class ChartService {
  readonly #server: CandleServer;
  readonly #logger: Logger;
  readonly #options: ChartRoutesOptions;
  readonly #securitySeconds: number;
  readonly #periods: readonly ChartPeriod[];
  // Completed daily files aggregated per period; Map order makes it an LRU.
  readonly #history = new Map<string, CachedDay>();
  // Found on first use, so a bundle built after start is still served.
  #webRoot: string | undefined;

  constructor(server: CandleServer, options: ChartRoutesOptions) {
    this.#server = server;
    this.#options = options;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'chart' });
    const bar = server.rule.BAR;
    this.#securitySeconds = options.securitySeconds ?? intervalMs(bar) / 1000 + 180;
    this.#periods = CHART_PERIODS.filter((period) => canAggregate(bar, period));
    this.#webRoot = options.webRoot;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    const isStatic = Object.hasOwn(STATIC_FILES, path);
    if (!isStatic && path !== '/api/chart/candles' && path !== '/api/chart/live') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, 405, `method ${String(req.method)} is not allowed on ${path}; expected GET or HEAD`, {}, { allow: 'GET, HEAD' });
      return true;
    }
    try {
      if (isStatic) await this.#static(req, res, path);
      else if (path === '/api/chart/candles') await this.#candles(res, url);
      else this.#live(req, res, url);
    } catch (error) {
      if (!(error instanceof InvalidArgumentError)) throw error;
      sendError(res, 400, error.message);
    }
    return true;
  }

  async #static(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const entry = STATIC_FILES[path] as { file: string; type: string };
    this.#webRoot ??= findWebRoot();
    if (this.#webRoot === undefined) {
      sendError(res, 503, `the chart page is not built: no chart/app.js under dist/web; expected it from \`npm run build:web\``);
      return;
    }
    let content: Buffer;
    try {
      content = await readFile(join(this.#webRoot, 'chart', entry.file));
    } catch {
      sendError(res, 404, `${path} is not in the chart bundle at ${this.#webRoot}; expected it from \`npm run build:web\``);
      return;
    }
    res.writeHead(200, { 'content-type': entry.type, 'content-length': content.length, 'cache-control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : content);
  }

  async #candles(res: ServerResponse, url: URL): Promise<void> {
    const query = readQuery(url, ['symbol', 'period', 'limit']);
    const symbol = this.#symbol(query);
    const period = this.#period(query);
    const limit = parseLimit(query.get('limit'));
    if (!this.#isFollowed(res, symbol)) return;
    const bar = this.#server.rule.BAR;
    const periodMs = intervalMs(period);
    // The view is read synchronously here, before any await lets the ring change.
    const view = this.#view(symbol);
    const newest = view.newestOpenTime;
    if (newest === undefined) {
      const status = this.#status(symbol);
      sendError(res, 503, `${symbol} has no candles to chart yet (state ${status.state}); expected a ready ring`, { status });
      return;
    }
    const oldest = view.oldestOpenTime as number;
    const wanted = limit + WARMUP_BARS;
    const wantFrom = openTimeOf(period, newest) - (wanted - 1) * periodMs;
    let all: Bar[];
    let historyBars = 0;
    const derived = this.#derivedView(symbol, period);
    if (derived !== undefined) {
      // A derived ring (INTERVALS) holds LENGTH bars of the period already: nothing to aggregate.
      all = barsOf(derived, Math.max(0, derived.length - wanted));
    } else {
      const recent = aggregate(view, bar, period, { from: wantFrom });
      const history = oldest > wantFrom ? await this.#historyBars(symbol, period, oldest, wantFrom) : [];
      all = concatBars(history, recent).slice(-wanted);
      historyBars = all.filter((b) => b.openTime + periodMs <= openTimeOf(period, oldest)).length;
    }
    const closes = all.map((b) => b.close);
    const bands = bollinger(closes, 20, 2);
    const reply: ChartCandlesReply = {
      symbol,
      market: this.#server.market,
      bar,
      period,
      periods: this.#periods,
      bars: all.map(toChartBar),
      shownFrom: Math.max(0, all.length - limit),
      indicators: {
        ma5: nullable(sma(closes, 5)),
        ma10: nullable(sma(closes, 10)),
        ma20: nullable(sma(closes, 20)),
        bbUpper: nullable(bands.upper),
        bbMiddle: nullable(bands.middle),
        bbLower: nullable(bands.lower),
        rsi14: nullable(rsi(closes, 14)),
      },
      historyBars,
      status: this.#status(symbol),
    };
    sendJson(res, 200, reply);
  }

  #live(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const query = readQuery(url, ['symbol', 'period']);
    const symbol = this.#symbol(query);
    const period = this.#period(query);
    if (!this.#isFollowed(res, symbol)) return;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.flushHeaders();
    // The client's EventSource waits this long before it retries on its own.
    res.write('retry: 2000\n\n');
    const send = (): void => {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        this.#logger.warn({ symbol }, 'live chart client too slow; closing its stream');
        res.destroy();
        return;
      }
      const update: ChartLiveUpdate = { symbol, period, bars: this.#liveBars(symbol, period), status: this.#status(symbol) };
      res.write(`event: update\ndata: ${JSON.stringify(update)}\n\n`);
    };
    const ticker = setInterval(send, this.#options.liveIntervalMs ?? 1000);
    const heartbeat = setInterval(() => res.write(': ping\n\n'), this.#options.heartbeatMs ?? 15_000);
    const stopListening = this.#server.on('candleClosed', (event) => {
      if (event.symbol === symbol) send();
    });
    // The one owner of this stream's timers and listener: whichever side goes first ends them.
    const stop = (): void => {
      clearInterval(ticker);
      clearInterval(heartbeat);
      stopListening();
    };
    req.once('close', stop);
    res.once('close', stop);
    send();
  }

  /** The previous and the forming bar of `period`, from the derived ring or the ring's tail. */
  #liveBars(symbol: string, period: ChartPeriod): ChartBar[] {
    const derived = this.#derivedView(symbol, period);
    if (derived !== undefined) return barsOf(derived, Math.max(0, derived.length - 2)).map(toChartBar);
    const view = this.#view(symbol);
    const newest = view.newestOpenTime;
    if (newest === undefined) return [];
    const from = openTimeOf(period, newest) - intervalMs(period);
    return aggregate(view, this.#server.rule.BAR, period, { from }).map(toChartBar);
  }

  #view(symbol: string): CandleView {
    return this.#server.getCandleSecurity(symbol, ANY_AGE_SECONDS);
  }

  /** The derived ring of `period` when the rule keeps one (INTERVALS) and it has bars; else undefined. */
  #derivedView(symbol: string, period: ChartPeriod): CandleView | undefined {
    if (!this.#server.rule.INTERVALS.includes(period)) return undefined;
    const view = this.#server.getCandleSecurity(symbol, ANY_AGE_SECONDS, { interval: period });
    return view.isEmpty ? undefined : view;
  }

  #status(symbol: string): ChartStatus {
    const server = this.#server;
    const status = server.status(symbol, this.#securitySeconds);
    const stats = server.stats();
    return {
      symbol,
      state: status.state,
      newestOpenTime: status.newestOpenTime ?? null,
      newestAgeMs: status.newestAgeMs ?? null,
      isStale: status.state !== 'fresh',
      securitySeconds: this.#securitySeconds,
      weight: {
        used: stats.weight.used,
        budget: stats.weight.budget,
        limit: stats.weight.limit,
        bannedUntil: stats.weight.bannedUntil ?? null,
      },
      stream: {
        mode: server.rule.UPDATE_MODE,
        connections: stats.streams?.connections ?? 0,
        reconnects: stats.streams?.reconnects ?? 0,
        messages: stats.streams?.messages ?? 0,
      },
    };
  }

  /**
   * Bars of `period` from the daily files, for candles from `wantFrom` up to (not including)
   * `before`: local days going back from the one holding `before - 1`, oldest first.
   */
  async #historyBars(symbol: string, period: ChartPeriod, before: number, wantFrom: number): Promise<Bar[]> {
    const rule = this.#server.rule;
    const maxDays = this.#options.maxHistoryDays ?? 30;
    const newestDay = localDayOf(before - 1, rule.TIMEZONE);
    const perDay: Bar[][] = [];
    for (let back = 0; back < maxDays; back += 1) {
      const day = addDays(newestDay, -back);
      const bounds = localDayBounds(day, rule.TIMEZONE);
      if (bounds.end <= wantFrom) break;
      const bars = await this.#dayBars(symbol, day, period, before, bounds.end <= before);
      if (bars === undefined) break;
      perDay.unshift(bars);
    }
    return perDay.reduce<Bar[]>((all, bars) => concatBars(all, bars), []);
  }

  /** One day's bars (undefined when it has no usable file); only days wholly before the ring are cached. */
  async #dayBars(symbol: string, day: string, period: ChartPeriod, before: number, isCacheable: boolean): Promise<Bar[] | undefined> {
    const rule = this.#server.rule;
    const path = dailyFilePath(rule.CANDLE_DIR, this.#server.market, rule.TIMEZONE, rule.BAR, day, symbol);
    let info: { size: number; mtimeMs: number };
    try {
      info = await stat(path);
    } catch {
      return undefined;
    }
    const key = `${path}|${period}`;
    const cached = this.#history.get(key);
    if (isCacheable && cached !== undefined && cached.size === info.size && cached.mtimeMs === info.mtimeMs) {
      this.#history.delete(key);
      this.#history.set(key, cached);
      return cached.bars;
    }
    let rows: RawKline[] | undefined;
    try {
      rows = await readDailyFile(path, { timezone: rule.TIMEZONE, bar: rule.BAR, day });
    } catch (error) {
      this.#logger.warn({ err: error, path }, 'daily file unreadable; chart history stops there');
      return undefined;
    }
    if (rows === undefined) return undefined;
    const bars = aggregate(
      rows.filter((row) => row[0] < before),
      rule.BAR,
      period,
    );
    if (isCacheable) {
      this.#history.set(key, { size: info.size, mtimeMs: info.mtimeMs, bars });
      if (this.#history.size > HISTORY_CACHE_ENTRIES) this.#history.delete(this.#history.keys().next().value as string);
    }
    return bars;
  }

  #symbol(query: Map<string, string>): string {
    const symbol = query.get('symbol');
    if (symbol === undefined) throw new InvalidArgumentError('query parameter symbol is missing; expected e.g. ?symbol=BTCUSDT');
    return assertSymbol(symbol, 'symbol');
  }

  #period(query: Map<string, string>): ChartPeriod {
    const text = query.get('period');
    const period = text ?? this.#periods[0];
    const match = this.#periods.find((p) => p === period);
    if (match === undefined) {
      throw new InvalidArgumentError(
        `period ${JSON.stringify(text)} is not offered for ${this.#server.rule.BAR} candles; expected one of ${this.#periods.join(', ') || '(none)'}`,
      );
    }
    return match;
  }

  /** Answers 404 and returns false for a symbol this server does not follow. */
  #isFollowed(res: ServerResponse, symbol: string): boolean {
    if (this.#server.status(symbol).state !== 'unknown') return true;
    sendError(res, 404, `symbol ${symbol} is not followed by this ${this.#server.market} server; expected one of GET /symbols`, { symbol });
    return false;
  }
}

/** The rows of `view` from row `from` on, as bars (one candle each). */
function barsOf(view: CandleView, from: number): Bar[] {
  const bars: Bar[] = [];
  for (let r = from; r < view.length; r += 1) {
    bars.push({
      openTime: view.get(r, COL.openTime),
      open: view.get(r, COL.open),
      high: view.get(r, COL.high),
      low: view.get(r, COL.low),
      close: view.get(r, COL.close),
      volume: view.get(r, COL.volume),
      closeTime: view.get(r, COL.closeTime),
      quoteVolume: view.get(r, COL.quoteVolume),
      trades: view.get(r, COL.trades),
      takerBuyBase: view.get(r, COL.takerBuyBase),
      takerBuyQuote: view.get(r, COL.takerBuyQuote),
      candles: 1,
    });
  }
  return bars;
}

function toChartBar(bar: Bar): ChartBar {
  return { time: bar.openTime, open: bar.open, high: bar.high, low: bar.low, close: bar.close, volume: bar.volume };
}

function nullable(values: Float64Array): (number | null)[] {
  return Array.from(values, (v) => (Number.isNaN(v) ? null : v));
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LIMIT;
  const limit = INTEGER_TEXT.test(text) ? Number(text) : Number.NaN;
  if (!(limit >= 1 && limit <= MAX_LIMIT))
    throw new InvalidArgumentError(`limit ${JSON.stringify(text)} is invalid; expected an integer from 1 to ${MAX_LIMIT}`);
  return limit;
}
