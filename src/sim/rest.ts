/**
 * The REST market-data routes of one simulated market: `time`, `exchangeInfo` and `klines` under
 * /api/v3 (SPOT), /fapi/v1 (UM) or /dapi/v1 (CM), with Binance's parameters, error codes and
 * messages, request weight (`X-MBX-USED-WEIGHT-1M` on every reply, 429, 418 bans) and the REST
 * faults of `SimFaults`.
 *
 * @example
 * ```ts
 * const rest = new RestRoutes({ market: 'SPOT', world, ledger });
 * http.createServer((req, res) => rest.handle(req, res));
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  INVALID_SYMBOL,
  SYMBOL_RANGE,
  binanceFailure,
  illegalCharacters,
  invalidValue,
  klinesWeightOf,
  readKlinesRequest,
  resolveKlinesRange,
  type BinanceFailure,
} from '../binance/klines-query.js';
import { MARKETS, SYMBOL_PATTERN, type MarketSpec, type MarketType } from '../binance/markets.js';
import type { RawKline } from '../binance/kline.js';
import type { SimSymbol } from './types.js';
import type { WeightLedger } from './weights.js';
import type { MarketWorld } from './world.js';

/** Options of the REST routes of one market. */
export interface RestRoutesOptions {
  readonly market: MarketType;
  readonly world: MarketWorld;
  /** Shared by every market of a simulator: UM and CM charge one futures budget. */
  readonly ledger: WeightLedger;
}

const SPOT_STATUSES = ['PRE_TRADING', 'TRADING', 'POST_TRADING', 'END_OF_DAY', 'HALT', 'AUCTION_MATCH', 'BREAK'];

/** Writes a JSON reply with the given headers. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The REST routes of one market. */
export class RestRoutes {
  readonly market: MarketType;
  readonly #spec: MarketSpec;
  readonly #world: MarketWorld;
  readonly #ledger: WeightLedger;
  // Replies held back by the delay fault: cleared on close so nothing outlives the simulator.
  readonly #delayed: Set<NodeJS.Timeout> = new Set();

  constructor(options: RestRoutesOptions) {
    this.market = options.market;
    this.#spec = MARKETS[options.market];
    this.#world = options.world;
    this.#ledger = options.ledger;
  }

  /** True when `path` is one of this market's REST routes (or under its API prefix). */
  owns(path: string): boolean {
    return path.startsWith(this.#spec.paths.klines.slice(0, this.#spec.paths.klines.lastIndexOf('/') + 1));
  }

  /** Answers one request (after the delay fault, if set). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const delay = this.#world.faults.restDelayMs;
    if (delay <= 0) {
      this.#answer(req, res);
      return;
    }
    const timer = setTimeout(() => {
      this.#delayed.delete(timer);
      if (!res.destroyed) this.#answer(req, res);
    }, delay);
    this.#delayed.add(timer);
  }

  /** Clears the timers of delayed replies. */
  close(): void {
    for (const timer of this.#delayed) clearTimeout(timer);
    this.#delayed.clear();
  }

  #answer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://sim');
    const path = url.pathname;
    const now = this.#world.now();
    const ip = req.socket.remoteAddress ?? 'unknown';
    const group = this.#spec.budgetGroup;
    const stats = this.#ledger.stats;
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      stats.addRequest(path, status);
      const used = String(this.#ledger.used(group, ip, now));
      const weightHeaders: Record<string, string> =
        this.market === 'SPOT' ? { 'x-mbx-used-weight': used, 'x-mbx-used-weight-1m': used } : { 'x-mbx-used-weight-1m': used };
      sendJson(res, status, body, { ...weightHeaders, ...headers });
    };
    const route = this.#routeOf(path);
    if (route === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
      stats.addRequest(path, 404);
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<html><body><h2>404 Not found</h2></body></html>');
      return;
    }
    const faults = this.#world.faults;
    if (faults.force418Next > 0) {
      faults.force418Next -= 1;
      const until = now + faults.forcedRetryAfterSeconds * 1000;
      this.#ledger.ban(group, ip, until, now);
      this.#sendBan(reply, ip, until, now);
      return;
    }
    if (faults.force429Next > 0) {
      faults.force429Next -= 1;
      reply(429, this.#limitBody(ip, this.#ledger.limits[group]), { 'retry-after': String(faults.forcedRetryAfterSeconds) });
      return;
    }
    if (faults.restFailNext > 0) {
      faults.restFailNext -= 1;
      const status = faults.restFailStatus;
      reply(
        status,
        status === 503
          ? { code: -1008, msg: 'Server is currently overloaded with other requests. Please try again in a few minutes.' }
          : { code: -1000, msg: 'An unknown error occurred while processing the request.' },
      );
      return;
    }
    const verdict = this.#ledger.charge(group, ip, this.#weightOf(route, url.searchParams), now);
    if (verdict.kind === 'banned') {
      this.#sendBan(reply, ip, verdict.until, now);
      return;
    }
    if (verdict.kind === 'limited') {
      reply(429, this.#limitBody(ip, verdict.limit), { 'retry-after': String(Math.max(1, Math.ceil(verdict.retryAfterMs / 1000))) });
      return;
    }
    if (faults.restMalformedNext > 0) {
      faults.restMalformedNext -= 1;
      stats.addRequest(path, 200);
      res.writeHead(200, { 'content-type': 'application/json;charset=UTF-8', 'x-mbx-used-weight-1m': String(verdict.used) });
      res.end('[[1700000000000,"43000.1');
      return;
    }
    const result = this.#serve(route, url.searchParams, now);
    if ('status' in result) reply(result.status, { code: result.code, msg: result.msg });
    else reply(200, result.body);
  }

  #routeOf(path: string): 'klines' | 'time' | 'exchangeInfo' | undefined {
    const paths = this.#spec.paths;
    if (path === paths.klines) return 'klines';
    if (path === paths.time) return 'time';
    if (path === paths.exchangeInfo) return 'exchangeInfo';
    return undefined;
  }

  #weightOf(route: 'klines' | 'time' | 'exchangeInfo', params: URLSearchParams): number {
    if (route === 'time') return this.#spec.timeWeight;
    if (route === 'exchangeInfo') return this.#spec.exchangeInfoWeight;
    return klinesWeightOf(this.market, params);
  }

  #sendBan(reply: (status: number, body: unknown, headers?: Record<string, string>) => void, ip: string, until: number, now: number): void {
    if (this.market === 'SPOT') {
      const msg = `Way too much request weight used; IP banned until ${until}. Please use WebSocket Streams for live updates to avoid bans.`;
      reply(418, { code: -1003, msg }, { 'retry-after': String(Math.max(1, Math.ceil((until - now) / 1000))) });
    } else {
      // Futures state the ban's end only in the message, with no Retry-After header.
      const msg = `Way too many requests; IP(${ip}) banned until ${until}. Please use the websocket for live updates to avoid bans.`;
      reply(418, { code: -1003, msg });
    }
  }

  #limitBody(ip: string, limit: number): { code: number; msg: string } {
    const windowMs = this.#ledger.windowMs;
    if (this.market === 'SPOT') {
      const per = windowMs % 60_000 === 0 ? `${windowMs / 60_000} MINUTE` : `${windowMs / 1000} SECOND`;
      return {
        code: -1003,
        msg: `Too much request weight used; current limit is ${limit} request weight per ${per}. Please use WebSocket Streams for live updates to avoid polling the API.`,
      };
    }
    return {
      code: -1003,
      msg: `Too many requests; current limit of IP(${ip}) is ${limit} requests per minute. Please use the websocket for live updates to avoid polling the API.`,
    };
  }

  #serve(route: 'klines' | 'time' | 'exchangeInfo', params: URLSearchParams, now: number): BinanceFailure | { body: unknown } {
    if (route === 'time') return { body: { serverTime: now } };
    if (route === 'exchangeInfo') return this.#exchangeInfo(params, now);
    return this.#klines(params, now);
  }

  #klines(params: URLSearchParams, now: number): BinanceFailure | { body: RawKline[] } {
    const request = readKlinesRequest(this.market, params);
    if ('code' in request) return request;
    if (this.#world.symbol(this.market, request.symbol) === undefined) return INVALID_SYMBOL;
    const range = resolveKlinesRange(this.market, request, now);
    if ('code' in range) return range;
    if (range.isEmpty) return { body: [] };
    return { body: this.#world.klines(this.market, request.symbol, request.interval, { ...range, now }) };
  }

  #exchangeInfo(params: URLSearchParams, now: number): BinanceFailure | { body: unknown } {
    let symbols = this.#world.symbols(this.market);
    let showPermissionSets = true;
    if (this.market === 'SPOT') {
      const picked = this.#pickSpotSymbols(params, symbols);
      if ('status' in picked) return picked;
      symbols = picked.symbols;
      showPermissionSets = params.get('showPermissionSets') !== 'false';
    } else {
      const one = params.get('symbol');
      if (one !== null) {
        symbols = symbols.filter((s) => s.symbol === one);
      }
    }
    const base = {
      timezone: 'UTC',
      serverTime: now,
      rateLimits: this.#rateLimits(),
      exchangeFilters: [],
    };
    if (this.market === 'SPOT') {
      return { body: { ...base, symbols: symbols.map((s) => this.#spotSymbol(s, showPermissionSets)) } };
    }
    const assets = [...new Set(symbols.map((s) => (this.market === 'CM' ? s.baseAsset : s.quoteAsset) ?? 'USDT'))];
    return {
      body: {
        ...base,
        ...(this.market === 'UM'
          ? { futuresType: 'U_MARGINED', assets: assets.map((asset) => ({ asset, marginAvailable: true, autoAssetExchange: null })) }
          : {}),
        symbols: symbols.map((s) => this.#futuresSymbol(s)),
      },
    };
  }

  #pickSpotSymbols(params: URLSearchParams, all: readonly SimSymbol[]): BinanceFailure | { symbols: readonly SimSymbol[] } {
    const one = params.get('symbol');
    const many = params.get('symbols');
    const status = params.get('symbolStatus');
    const permissions = params.get('permissions');
    if (status !== null && (one !== null || many !== null)) {
      return binanceFailure(400, -1128, 'Combination of optional parameters invalid.');
    }
    let symbols = all;
    if (one !== null) {
      if (!SYMBOL_PATTERN.test(one)) return illegalCharacters('symbol', SYMBOL_RANGE);
      symbols = all.filter((s) => s.symbol === one);
      if (symbols.length === 0) return INVALID_SYMBOL;
    } else if (many !== null) {
      const names = parseJsonList(many);
      if (names === undefined) return illegalCharacters('symbols', '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$');
      const wanted = new Set(names);
      symbols = all.filter((s) => wanted.has(s.symbol));
      if (symbols.length !== wanted.size) return INVALID_SYMBOL;
    }
    if (status !== null) {
      if (!SPOT_STATUSES.includes(status)) return binanceFailure(400, -1122, 'Invalid symbolStatus.');
      symbols = symbols.filter((s) => s.status === status);
    }
    if (permissions !== null) {
      const wanted = permissions.startsWith('[') ? parseJsonList(permissions) : [permissions];
      if (wanted === undefined) return invalidValue('permissions');
      // Every simulated spot symbol carries the SPOT permission (and nothing else).
      if (!wanted.includes('SPOT')) symbols = [];
    }
    return { symbols };
  }

  #rateLimits(): unknown[] {
    const windowMs = this.#ledger.windowMs;
    const window =
      windowMs % 60_000 === 0
        ? { interval: 'MINUTE', intervalNum: windowMs / 60_000 }
        : { interval: 'SECOND', intervalNum: Math.max(1, Math.round(windowMs / 1000)) };
    const weight = { rateLimitType: 'REQUEST_WEIGHT', ...window, limit: this.#ledger.limits[this.#spec.budgetGroup] };
    if (this.market === 'SPOT') {
      return [
        weight,
        { rateLimitType: 'ORDERS', interval: 'SECOND', intervalNum: 10, limit: 100 },
        { rateLimitType: 'ORDERS', interval: 'DAY', intervalNum: 1, limit: 200_000 },
        { rateLimitType: 'RAW_REQUESTS', interval: 'MINUTE', intervalNum: 5, limit: 61_000 },
      ];
    }
    return [
      weight,
      { rateLimitType: 'ORDERS', interval: 'MINUTE', intervalNum: 1, limit: 1200 },
      { rateLimitType: 'ORDERS', interval: 'SECOND', intervalNum: 10, limit: 300 },
    ];
  }

  #spotSymbol(s: SimSymbol, showPermissionSets: boolean): Record<string, unknown> {
    const profile = this.#world.profile(this.market, s.symbol);
    const tick = decimalStep(profile?.priceDecimals ?? 8, 8);
    const step = decimalStep(profile?.qtyDecimals ?? 8, 8);
    return {
      symbol: s.symbol,
      status: s.status,
      baseAsset: s.baseAsset,
      baseAssetPrecision: 8,
      quoteAsset: s.quoteAsset,
      quotePrecision: 8,
      quoteAssetPrecision: 8,
      baseCommissionPrecision: 8,
      quoteCommissionPrecision: 8,
      orderTypes: ['LIMIT', 'LIMIT_MAKER', 'MARKET', 'STOP_LOSS_LIMIT', 'TAKE_PROFIT_LIMIT'],
      icebergAllowed: true,
      ocoAllowed: true,
      otoAllowed: true,
      quoteOrderQtyMarketAllowed: true,
      allowTrailingStop: true,
      cancelReplaceAllowed: true,
      isSpotTradingAllowed: true,
      isMarginTradingAllowed: false,
      filters: [
        { filterType: 'PRICE_FILTER', minPrice: tick, maxPrice: '1000000.00000000', tickSize: tick },
        { filterType: 'LOT_SIZE', minQty: step, maxQty: '9000.00000000', stepSize: step },
      ],
      permissions: [],
      permissionSets: showPermissionSets ? [['SPOT']] : [],
      defaultSelfTradePreventionMode: 'EXPIRE_MAKER',
      allowedSelfTradePreventionModes: ['EXPIRE_TAKER', 'EXPIRE_MAKER', 'EXPIRE_BOTH'],
    };
  }

  #futuresSymbol(s: SimSymbol): Record<string, unknown> {
    const profile = this.#world.profile(this.market, s.symbol);
    const pricePrecision = profile?.priceDecimals ?? 2;
    const quantityPrecision = profile?.qtyDecimals ?? 0;
    const common = {
      symbol: s.symbol,
      pair: s.pair,
      contractType: s.contractType ?? 'PERPETUAL',
      deliveryDate: s.delistedAt ?? 4133404800000,
      onboardDate: s.listedAt,
    };
    const rest = {
      baseAsset: s.baseAsset,
      quoteAsset: s.quoteAsset,
      pricePrecision,
      quantityPrecision,
      baseAssetPrecision: 8,
      quotePrecision: 8,
      underlyingType: 'COIN',
      underlyingSubType: [],
      triggerProtect: '0.0500',
      filters: [
        {
          filterType: 'PRICE_FILTER',
          minPrice: decimalStep(pricePrecision, pricePrecision),
          maxPrice: '1000000',
          tickSize: decimalStep(pricePrecision, pricePrecision),
        },
        {
          filterType: 'LOT_SIZE',
          minQty: decimalStep(quantityPrecision, quantityPrecision),
          maxQty: '1000000',
          stepSize: decimalStep(quantityPrecision, quantityPrecision),
        },
      ],
      orderTypes: ['LIMIT', 'MARKET', 'STOP', 'STOP_MARKET', 'TAKE_PROFIT', 'TAKE_PROFIT_MARKET', 'TRAILING_STOP_MARKET'],
      timeInForce: ['GTC', 'IOC', 'FOK', 'GTX'],
    };
    if (this.market === 'CM') {
      return {
        ...common,
        // COIN-M names the field contractStatus, not status.
        contractStatus: s.status,
        contractSize: profile?.contractSize ?? 10,
        marginAsset: s.baseAsset,
        ...rest,
        equalQtyPrecision: 4,
      };
    }
    return { ...common, status: s.status, marginAsset: s.quoteAsset, ...rest, settlePlan: 0 };
  }
}

function parseJsonList(text: string): string[] | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined;
  } catch {
    return undefined;
  }
}

// The step 10^-decimals written with `display` decimals ("0.01000000").
function decimalStep(decimals: number, display: number): string {
  return (10 ** -decimals).toFixed(Math.max(display, decimals));
}
