/**
 * CandleRule: what candle-server keeps and how. The names and defaults are those of the Python
 * original's `CandleRule` (SERVER_WEIGHT, SYMBOLS, BAR, ...), so a rule moves over unchanged; the
 * fields after LOCAL_CANDLE_DAYS are candle-server's own.
 *
 * A rule is assembled from up to three layers, each overriding the one before:
 *
 * ```
 *   defaults  <-  JSON file (config/*.json)  <-  environment (CANDLE_SERVER_*)  <-  object in code
 * ```
 *
 * and validated as a whole: every problem is listed at once in one ConfigError, each with its
 * path, the value received and what was expected.
 *
 * Environment variables are `CANDLE_SERVER_` + the field name, e.g. `CANDLE_SERVER_BAR=5m`,
 * `CANDLE_SERVER_LENGTH=1440`, `CANDLE_SERVER_SYMBOLS=BTCUSDT,ETHUSDT` (or `all`),
 * `CANDLE_SERVER_SYMBOLS_FILTER=` (empty list), `CANDLE_SERVER_DOWNLOAD_TIME=none`,
 * `CANDLE_SERVER_USE_ARCHIVES=false`. Numbers are parsed; `null` or `none` turn the nullable
 * fields (DOWNLOAD_TIME, CACHE_DELAY_SECONDS) off; lists are comma-separated. An unknown
 * `CANDLE_SERVER_*` name is an error (typo protection), except `CANDLE_SERVER_CONFIG`, which
 * names the JSON file when no `file` option is given.
 *
 * Symbols are never upper-cased silently: `btcusdt` is refused with a hint (`did you mean
 * "BTCUSDT"?`), so one symbol can never end up under two names on disk.
 *
 * @example
 * ```ts
 * const rule = await loadCandleRule({ file: 'config/um.json', env: process.env, rule: { LENGTH: 1440 } });
 * rule.BAR;                    // '1m'
 * resolveEndpoints(rule).rest; // 'https://fapi.binance.com'
 * ```
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError, redactCredentials, type ConfigIssue } from './errors.js';
import { canAggregate } from './binance/intervals.js';
import {
  DEFAULT_ARCHIVE_BASE_URL,
  INTERVALS,
  MARKETS,
  MARKET_TYPES,
  isMarketType,
  type Interval,
  type MarketType,
} from './binance/markets.js';
import { SYMBOL_EXPECTED, isSymbol, upperCaseHint } from './binance/symbols.js';
import { isHostUrl, natsServers } from './util/nats-url.js';

/** The largest LENGTH accepted: 100 000 candles are 9.6 MB of float64 per symbol. */
export const MAX_LENGTH = 100_000;

/** The largest LOCAL_CANDLE_DAYS accepted (ten years of daily files). */
export const MAX_LOCAL_CANDLE_DAYS = 3650;

/** The largest N of SHARD 'k/N'. */
export const MAX_SHARDS = 1024;

/** UM contract types that SYMBOLS 'all' keeps by default. */
export const DEFAULT_UM_CONTRACT_TYPES = ['PERPETUAL', 'CURRENT_QUARTER', 'NEXT_QUARTER', 'TRADIFI_PERPETUAL'] as const;

/** pino levels LOG_LEVEL accepts. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** How the newest candles are followed: kline streams, or REST polling every UPDATE_INTERVAL_SECONDS. */
export const UPDATE_MODES = ['websocket', 'rest'] as const;

/** Prefix of the environment variables that override a rule. */
export const RULE_ENV_PREFIX = 'CANDLE_SERVER_';

/** The environment variable naming the JSON rule file (used when no `file` option is given). */
export const RULE_FILE_ENV = 'CANDLE_SERVER_CONFIG';

const DOWNLOAD_TIME_PATTERN = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/;
const SHARD_PATTERN = /^(\d+)\/(\d+)$/;
const SYMBOL_FRAGMENT_PATTERN = /^[A-Z0-9_]*$/;
const CONTRACT_TYPE_PATTERN = /^[A-Z][A-Z_]*$/;
// A host name (an IP address is checked with isIP): no scheme, port, path or spaces.
const HOST_NAME_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
// Path-shaped check first: TIMEZONE becomes a folder name, so no `..` segment or separator tricks.
const TIME_ZONE_SHAPE = /^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/;

const symbolList = z.array(z.string());
// NATS subject tokens: letters, digits, '-' and '_', dots between tokens (no wildcards, no spaces).
const NATS_PREFIX_PATTERN = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

function ruleSchema(market: MarketType) {
  return ruleFields(market)
    .superRefine((rule, ctx) => checkDerivedIntervals(rule.INTERVALS, rule.BAR, market, ctx))
    .transform((rule) => ({ ...rule, INTERVALS: sortIntervals(rule.INTERVALS) }));
}

function ruleFields(market: MarketType) {
  const intervals: readonly string[] = MARKETS[market].intervals;
  return z.strictObject({
    MARKET: z.enum(MARKET_TYPES).default('SPOT'),
    SERVER_WEIGHT: z.number().gt(0).lte(1).default(0.75),
    SYMBOLS: z
      .union([z.literal('all'), symbolList])
      .superRefine((value, ctx) => {
        if (value === 'all') return;
        if (value.length === 0) ctx.addIssue({ code: 'custom', input: value, message: expectedFor('SYMBOLS', market) ?? '' });
        checkSymbolList(value, ctx, true);
      })
      .default('all'),
    SYMBOLS_FILTER: symbolList.superRefine((value, ctx) => checkSymbolList(value, ctx, false)).default([]),
    SYMBOL_CONTAINS: symbolFragment().default(''),
    SYMBOL_ENDSWITH: symbolFragment().default(''),
    BAR: z
      .enum(INTERVALS)
      .refine((bar) => intervals.includes(bar), {
        error: (issue) => `${String(issue.input)} is offered on SPOT only; expected one of ${intervals.join(', ')} on ${market}`,
      })
      .default('1m'),
    TIMEZONE: z
      .string()
      .refine(isTimeZone, { error: expectedFor('TIMEZONE', market) ?? '' })
      .transform(canonicalTimeZoneCase)
      .default('America/New_York'),
    CANDLE_DIR: z.string().min(1).default('./candles'),
    DOWNLOAD_TIME: z.string().regex(DOWNLOAD_TIME_PATTERN).nullable().default('00:10:00'),
    LENGTH: z.number().int().min(1).max(MAX_LENGTH).default(2880),
    UPDATE_INTERVAL_SECONDS: z.number().gt(0).max(86_400).default(3),
    CACHE_DELAY_SECONDS: z.number().gt(0).max(Number.MAX_SAFE_INTEGER).nullable().default(3600),
    CACHE_DIR: z.string().min(1).default('./BINANCE_CACHE'),
    LOCAL_CANDLE_DAYS: z.number().int().min(0).max(MAX_LOCAL_CANDLE_DAYS).default(2),
    REST_BASE_URL: urlSchema(['http:', 'https:'], 'REST_BASE_URL').optional(),
    WS_BASE_URL: urlSchema(['ws:', 'wss:'], 'WS_BASE_URL').optional(),
    ARCHIVE_BASE_URL: urlSchema(['http:', 'https:'], 'ARCHIVE_BASE_URL').optional(),
    USE_ARCHIVES: z.boolean().default(true),
    UPDATE_MODE: z.enum(UPDATE_MODES).default('websocket'),
    LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
    SYMBOLS_REFRESH_SECONDS: z.number().gt(0).max(86_400).default(900),
    UM_CONTRACT_TYPES: z
      .array(z.string().regex(CONTRACT_TYPE_PATTERN))
      .min(1)
      .default([...DEFAULT_UM_CONTRACT_TYPES]),
    HTTP_HOST: z
      .string()
      .refine((host) => isIP(host) !== 0 || HOST_NAME_PATTERN.test(host))
      .default('127.0.0.1'),
    HTTP_PORT: z.number().int().min(0).max(65_535).nullable().default(null),
    PROXY: z.string().refine(isProxyUrl).nullable().default(null),
    SHARD: shardText().nullable().default(null),
    INTERVALS: z.array(z.enum(INTERVALS)).default([]),
    FORWARD_KLINES: z.boolean().default(true),
    NATS_URL: z
      .string()
      .refine((value) => natsServers(value) !== undefined, { error: expectedFor('NATS_URL', 'SPOT') ?? '' })
      .nullable()
      .default(null),
    NATS_SUBJECT_PREFIX: z.string().regex(NATS_PREFIX_PATTERN).default('candles'),
  });
}

/** Each derived interval offered on the market, longer than BAR, made of whole BAR candles, once. */
function checkDerivedIntervals<T>(intervals: readonly Interval[], bar: Interval, market: MarketType, ctx: z.core.$RefinementCtx<T>): void {
  const offered: readonly Interval[] = MARKETS[market].intervals;
  const seen = new Set<Interval>();
  intervals.forEach((interval, index) => {
    let message: string | undefined;
    if (!offered.includes(interval)) message = `${interval} is not offered on ${market}; expected one of ${offered.join(', ')}`;
    else if (seen.has(interval)) message = `${interval} is listed twice; expected each interval once`;
    else if (interval === bar || !canAggregate(bar, interval)) {
      message = `expected an interval longer than BAR (${bar}) made of whole ${bar} candles, e.g. ${derivableExamples(bar, market)}`;
    }
    seen.add(interval);
    if (message !== undefined) ctx.addIssue({ code: 'custom', path: ['INTERVALS', index], input: interval, message });
  });
}

function derivableExamples(bar: Interval, market: MarketType): string {
  const examples = MARKETS[market].intervals.filter((interval) => interval !== bar && canAggregate(bar, interval));
  return examples.length === 0 ? 'none (no longer interval is made of whole ' + bar + ' candles)' : examples.join(', ');
}

/** Shortest first, as Binance lists them. */
function sortIntervals(intervals: readonly Interval[]): Interval[] {
  return [...intervals].sort((a, b) => INTERVALS.indexOf(a) - INTERVALS.indexOf(b));
}

type RuleSchema = ReturnType<typeof ruleSchema>;
type RuleOutput = z.output<RuleSchema>;
type Frozen<T> = T extends readonly (infer E)[] ? readonly E[] : T;

/**
 * A validated, frozen rule. Field meanings (the first fourteen are the original's):
 *
 * - SERVER_WEIGHT: share (0 < x <= 1) of the exchange's per-minute request-weight limit to use.
 * - SYMBOLS: 'all' (every symbol trading in MARKET) or a list; SYMBOLS_FILTER leaves symbols out;
 *   SYMBOL_CONTAINS / SYMBOL_ENDSWITH keep only symbols containing / ending with the text.
 * - BAR: candle interval; TIMEZONE: IANA zone whose calendar days the daily files follow.
 * - CANDLE_DIR: root of the daily files; DOWNLOAD_TIME: local 'HH:MM[:SS]' at which yesterday is
 *   saved, null = never; LENGTH: candles kept per symbol; UPDATE_INTERVAL_SECONDS: update cycle.
 * - CACHE_DELAY_SECONDS: seconds between snapshots, null = none; CACHE_DIR: where they go.
 * - LOCAL_CANDLE_DAYS: full past days of daily files to have on disk at start.
 * - MARKET: 'SPOT' | 'UM' | 'CM'. REST_BASE_URL / WS_BASE_URL / ARCHIVE_BASE_URL: overrides of
 *   Binance's endpoints (tests, testnets, mirrors); see resolveEndpoints. WS_BASE_URL excludes the
 *   market's route prefix ('/market' on UM).
 * - USE_ARCHIVES: fetch history from the bulk archives before REST. UPDATE_MODE: 'websocket' or
 *   'rest'. LOG_LEVEL: pino level. SYMBOLS_REFRESH_SECONDS: how often the symbol universe is
 *   re-read from exchangeInfo. UM_CONTRACT_TYPES: UM contract types that SYMBOLS 'all' keeps.
 * - HTTP_HOST: address the HTTP API binds (loopback by default: another process on the same host
 *   reads candles through it). HTTP_PORT: its port, 0 = any free port, null = no HTTP API.
 * - PROXY: a proxy (http://, https:// or socks5://, with optional user:password@) that every
 *   connection to the exchange goes through: REST, streams, archives. null = direct, or the
 *   CandleServer's `proxies` option (which the CLI fills from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY /
 *   NO_PROXY).
 * - SHARD: 'k/N' = follow only the symbols of shard k of N (see shardOf), one server per egress IP,
 *   each with its own weight budget; null = every symbol of the universe.
 * - INTERVALS: longer intervals kept beside BAR from the BAR stream alone ('5m', '1h', '1d', ...;
 *   each made of whole BAR candles), with LENGTH candles each; served by getCandleSecurity's
 *   `interval` option and Binance's klines paths of the HTTP API.
 * - FORWARD_KLINES: the HTTP API's Binance paths forward what the server does not hold (klines of
 *   older ranges, other symbols and intervals; exchangeInfo queries beyond the document it holds)
 *   to Binance within the weight budget; false = nothing is sent for another process: such a
 *   request gets a 4xx saying what the server holds.
 * - NATS_URL: a NATS server with JetStream to publish the rings to (nats:// or tls://, optional
 *   user:password@, or a comma-separated list of servers); null = no publishing, and the NATS
 *   client is never loaded. NATS_SUBJECT_PREFIX: first tokens of every subject ('candles'); the
 *   streams are named after it upper-cased. See docs/nats-format.md.
 *
 * @example
 * ```ts
 * const rule: CandleRule = parseCandleRule({ MARKET: 'UM', SYMBOLS: ['BTCUSDT'] });
 * ```
 */
export type CandleRule = { readonly [K in keyof RuleOutput]: Frozen<RuleOutput[K]> };

/**
 * What a caller may write: every field optional, defaults filled in by parsing.
 *
 * @example
 * ```ts
 * const input: CandleRuleInput = { BAR: '5m', LENGTH: 288 };
 * ```
 */
export type CandleRuleInput = z.input<RuleSchema>;

type RuleKey = keyof RuleOutput;

const SCHEMAS = new Map<MarketType, RuleSchema>(MARKET_TYPES.map((m) => [m, ruleSchema(m)]));

/** Every field name, in declaration order. */
export const RULE_KEYS = Object.keys(ruleFields('SPOT').shape) as readonly RuleKey[];

function expectedFor(key: string, market: MarketType): string | undefined {
  switch (key as RuleKey) {
    case 'MARKET':
      return `expected one of ${MARKET_TYPES.join(', ')}`;
    case 'SERVER_WEIGHT':
      return 'expected a number greater than 0 and at most 1';
    case 'SYMBOLS':
      return `expected 'all' or a non-empty list of symbols (A-Z, 0-9, _)`;
    case 'SYMBOLS_FILTER':
      return 'expected a list of symbols (A-Z, 0-9, _)';
    case 'SYMBOL_CONTAINS':
    case 'SYMBOL_ENDSWITH':
      return "expected '' or upper-case symbol characters (A-Z, 0-9, _)";
    case 'BAR':
      return `expected one of ${MARKETS[market].intervals.join(', ')}`;
    case 'TIMEZONE':
      return "expected an IANA time zone such as 'America/New_York' or 'UTC'";
    case 'CANDLE_DIR':
    case 'CACHE_DIR':
      return 'expected a non-empty folder path';
    case 'DOWNLOAD_TIME':
      return "expected 'HH:MM' or 'HH:MM:SS' between 00:00 and 23:59:59, or null (off)";
    case 'LENGTH':
      return `expected an integer from 1 to ${MAX_LENGTH}`;
    case 'UPDATE_INTERVAL_SECONDS':
      return 'expected a number of seconds greater than 0 and at most 86400';
    case 'CACHE_DELAY_SECONDS':
      return 'expected a number of seconds greater than 0, or null (no snapshots)';
    case 'LOCAL_CANDLE_DAYS':
      return `expected an integer from 0 to ${MAX_LOCAL_CANDLE_DAYS}`;
    case 'REST_BASE_URL':
    case 'ARCHIVE_BASE_URL':
      return 'expected an http:// or https:// URL without query or fragment';
    case 'WS_BASE_URL':
      return 'expected a ws:// or wss:// URL without query or fragment';
    case 'PROXY':
      return 'expected null or a proxy URL: http://, https:// or socks5://[user:password@]host:port';
    case 'SHARD':
      return `expected null (no sharding) or 'k/N' with integers 1 <= k <= N <= ${MAX_SHARDS}, e.g. '2/4' (the second of four)`;
    case 'USE_ARCHIVES':
      return 'expected true or false';
    case 'UPDATE_MODE':
      return `expected one of ${UPDATE_MODES.join(', ')}`;
    case 'LOG_LEVEL':
      return `expected one of ${LOG_LEVELS.join(', ')}`;
    case 'SYMBOLS_REFRESH_SECONDS':
      return 'expected a number of seconds greater than 0 and at most 86400';
    case 'UM_CONTRACT_TYPES':
      return 'expected a non-empty list of contract types such as PERPETUAL (A-Z, _)';
    case 'HTTP_HOST':
      return "expected a host name or an IP address such as '127.0.0.1' or '::1' (no scheme or port)";
    case 'HTTP_PORT':
      return 'expected an integer port from 0 (any free port) to 65535, or null (no HTTP API)';
    case 'INTERVALS':
      return `expected a list of intervals longer than BAR, each one of ${MARKETS[market].intervals.join(', ')}`;
    case 'FORWARD_KLINES':
      return 'expected true or false';
    case 'NATS_URL':
      return 'expected null (no publishing) or a NATS server URL, nats:// or tls://[user:password@]host[:port], or a comma-separated list of them';
    case 'NATS_SUBJECT_PREFIX':
      return "expected NATS subject tokens (letters, digits, '-', '_') joined by dots, such as 'candles' or 'prod.candles'";
    default:
      return undefined;
  }
}

/**
 * Validates `input` (defaults filled in) and returns a frozen rule, or throws ConfigError listing
 * every problem. `source` names the input in the error message.
 *
 * @example
 * ```ts
 * const rule = parseCandleRule({ MARKET: 'UM', BAR: '5m', SYMBOLS: ['BTCUSDT', 'ETHUSDT'] });
 * parseCandleRule({ BAR: '2m' }); // throws ConfigError: BAR: expected one of 1s, 1m, ... (received "2m")
 * ```
 */
export function parseCandleRule(input: unknown, source = 'CandleRule'): CandleRule {
  return validate(input, source, new Map());
}

/** Where each layer of a rule comes from; see loadCandleRule. */
export interface LoadCandleRuleOptions {
  /** JSON file with rule fields (e.g. `config/um.json`). Defaults to env CANDLE_SERVER_CONFIG. */
  file?: string;
  /** Environment to read `CANDLE_SERVER_*` overrides from; the library never reads process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Fields set in code; they override the file and the environment. */
  rule?: Partial<CandleRuleInput>;
}

/**
 * Builds a rule from defaults, a JSON file, environment variables and an object in code (each
 * overriding the one before), then validates it. Throws ConfigError listing every problem,
 * including a file that cannot be read or parsed (with line and column).
 *
 * @example
 * ```ts
 * const rule = await loadCandleRule({
 *   file: 'config/spot.json',
 *   env: { CANDLE_SERVER_BAR: '5m', CANDLE_SERVER_SYMBOLS: 'BTCUSDT,ETHUSDT' },
 *   rule: { LENGTH: 288 },
 * });
 * ```
 */
export async function loadCandleRule(options: LoadCandleRuleOptions = {}): Promise<CandleRule> {
  const env = options.env ?? {};
  const file = options.file ?? env[RULE_FILE_ENV];
  const origins = new Map<string, string>();
  const merged: Record<string, unknown> = {};
  const sources: string[] = [];

  if (file !== undefined) {
    sources.push(file);
    for (const [key, value] of Object.entries(await readRuleFile(file))) {
      merged[key] = value;
      origins.set(key, `from ${file}`);
    }
  }

  const fromEnv = ruleFromEnv(env);
  if (Object.keys(fromEnv.values).length > 0 || fromEnv.issues.length > 0) sources.push('environment');
  for (const [key, value] of Object.entries(fromEnv.values)) {
    merged[key] = value;
    origins.set(key, `from ${RULE_ENV_PREFIX}${key}`);
  }

  if (options.rule !== undefined) {
    sources.push('code');
    for (const [key, value] of Object.entries(options.rule)) {
      if (value === undefined) continue;
      merged[key] = value;
      origins.delete(key);
    }
  }

  const source = sources.length === 0 ? 'CandleRule' : `CandleRule (${sources.join(' + ')})`;
  return validate(merged, source, origins, fromEnv.issues);
}

/**
 * The REST, WebSocket and archive base URLs a rule points at: its overrides, else a forwarding
 * server's (`proxyHost`, the original's `proxy_host`), else Binance's for its market. No trailing
 * slash. A forwarding server takes the REST paths as they are (`/api`, `/fapi`, `/dapi` keep the
 * markets apart) and the streams under `/ws-spot`, `/ws-um`, `/ws-cm`.
 *
 * @example
 * ```ts
 * resolveEndpoints(parseCandleRule({ MARKET: 'CM' }));
 * // { rest: 'https://dapi.binance.com', ws: 'wss://dstream.binance.com', archive: 'https://data.binance.vision' }
 * ```
 */
export function resolveEndpoints(
  rule: Pick<CandleRule, 'MARKET' | 'REST_BASE_URL' | 'WS_BASE_URL' | 'ARCHIVE_BASE_URL'>,
  proxyHost?: string,
): {
  rest: string;
  ws: string;
  archive: string;
} {
  const spec = MARKETS[rule.MARKET];
  const host = proxyHost?.replace(/\/+$/, '');
  const wsHost = host?.replace(/^http/, 'ws');
  return {
    rest: rule.REST_BASE_URL ?? host ?? spec.restBaseUrl,
    ws: rule.WS_BASE_URL ?? (wsHost === undefined ? undefined : `${wsHost}/ws-${rule.MARKET.toLowerCase()}`) ?? spec.wsBaseUrl,
    archive: rule.ARCHIVE_BASE_URL ?? DEFAULT_ARCHIVE_BASE_URL,
  };
}

/**
 * DOWNLOAD_TIME split into numbers, or undefined when daily downloads are off.
 *
 * @example
 * ```ts
 * downloadTimeOf({ DOWNLOAD_TIME: '00:10' }); // { hours: 0, minutes: 10, seconds: 0 }
 * ```
 */
export function downloadTimeOf(rule: Pick<CandleRule, 'DOWNLOAD_TIME'>): { hours: number; minutes: number; seconds: number } | undefined {
  if (rule.DOWNLOAD_TIME === null) return undefined;
  const match = DOWNLOAD_TIME_PATTERN.exec(rule.DOWNLOAD_TIME);
  if (match === null) return undefined;
  return { hours: Number(match[1]), minutes: Number(match[2]), seconds: Number(match[3] ?? 0) };
}

/**
 * SHARD as numbers: `index` k (1-based) of `count` N, or undefined when the rule is not sharded.
 *
 * @example
 * ```ts
 * shardSpecOf({ SHARD: '2/4' }); // { index: 2, count: 4 }
 * shardSpecOf({ SHARD: null });  // undefined
 * ```
 */
export function shardSpecOf(rule: Pick<CandleRule, 'SHARD'>): { index: number; count: number } | undefined {
  const match = rule.SHARD === null ? null : SHARD_PATTERN.exec(rule.SHARD);
  if (match === null) return undefined;
  return { index: Number(match[1]), count: Number(match[2]) };
}

/**
 * The rule with every default and nothing else: the original's table plus candle-server's fields.
 *
 * @example
 * ```ts
 * DEFAULT_RULE.LENGTH; // 2880
 * ```
 */
export const DEFAULT_RULE: CandleRule = parseCandleRule({}, 'default CandleRule');

function validate(input: unknown, source: string, origins: ReadonlyMap<string, string>, earlier: readonly ConfigIssue[] = []): CandleRule {
  const raw = typeof input === 'object' && input !== null && !Array.isArray(input) ? (input as Record<string, unknown>) : undefined;
  const market: MarketType = isMarketType(raw?.MARKET) ? raw.MARKET : 'SPOT';
  const schema = SCHEMAS.get(market) ?? ruleSchema(market);
  const result = schema.safeParse(input, { reportInput: true });
  const issues = [...earlier];
  if (!result.success) {
    for (const issue of result.error.issues) issues.push(...toConfigIssues(issue, market, raw, origins));
  }
  if (issues.length > 0 || !result.success) throw new ConfigError(source, issues);
  const rule = result.data;
  return Object.freeze({
    ...rule,
    SYMBOLS: rule.SYMBOLS === 'all' ? 'all' : Object.freeze([...rule.SYMBOLS]),
    SYMBOLS_FILTER: Object.freeze([...rule.SYMBOLS_FILTER]),
    UM_CONTRACT_TYPES: Object.freeze([...rule.UM_CONTRACT_TYPES]),
    INTERVALS: Object.freeze([...rule.INTERVALS]),
  });
}

function toConfigIssues(
  issue: z.core.$ZodIssue,
  market: MarketType,
  raw: Record<string, unknown> | undefined,
  origins: ReadonlyMap<string, string>,
): ConfigIssue[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      path: formatPath([...issue.path, key]),
      received: raw?.[key],
      message: `unknown setting${suggestKey(key)}${origin(origins, key)}`,
    }));
  }
  if (issue.path.length === 0) {
    return [{ path: '', received: issue.input, message: 'expected an object of CandleRule fields' }];
  }
  const key = String(issue.path[0]);
  const isElement = issue.path.length > 1;
  let message: string;
  if (issue.code === 'custom') message = issue.message;
  else if (isElement && (key === 'SYMBOLS' || key === 'SYMBOLS_FILTER')) message = `expected ${SYMBOL_EXPECTED}`;
  else message = expectedFor(key, market) ?? issue.message;
  // A proxy or NATS URL may carry a password: it is never echoed back.
  const received =
    (key === 'PROXY' || key === 'NATS_URL') && typeof issue.input === 'string' ? redactCredentials(issue.input) : issue.input;
  return [{ path: formatPath(issue.path), received, message: message + origin(origins, key) }];
}

function origin(origins: ReadonlyMap<string, string>, key: string): string {
  const where = origins.get(key);
  return where === undefined ? '' : ` [${where}]`;
}

function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) text += typeof part === 'number' ? `[${part}]` : text === '' ? String(part) : `.${String(part)}`;
  return text;
}

function checkSymbolList<T>(value: readonly string[], ctx: z.core.$RefinementCtx<T>, unique: boolean): void {
  const seen = new Set<string>();
  value.forEach((symbol, index) => {
    if (!isSymbol(symbol)) {
      ctx.addIssue({ code: 'custom', input: symbol, path: [index], message: `expected ${SYMBOL_EXPECTED}${upperCaseHint(symbol)}` });
    } else if (unique && seen.has(symbol)) {
      ctx.addIssue({ code: 'custom', input: symbol, path: [index], message: `expected unique symbols; ${symbol} is listed twice` });
    }
    seen.add(symbol);
  });
}

/** 'k/N' with 1 <= k <= N <= MAX_SHARDS, written back without leading zeros ('02/4' -> '2/4'). */
function shardText() {
  return z
    .string()
    .superRefine((value, ctx) => {
      const match = SHARD_PATTERN.exec(value);
      const [k, n] = match === null ? [NaN, NaN] : [Number(match[1]), Number(match[2])];
      let problem: string | undefined;
      if (match === null) problem = 'not of the form k/N';
      else if (n < 1 || n > MAX_SHARDS) problem = `N is ${n}, outside 1..${MAX_SHARDS}`;
      else if (k < 1 || k > n) problem = `k is ${k}, outside 1..${n}`;
      if (problem !== undefined)
        ctx.addIssue({ code: 'custom', input: value, message: `${problem}; ${expectedFor('SHARD', 'SPOT') ?? ''}` });
    })
    .transform((value) => value.replace(SHARD_PATTERN, (_, k: string, n: string) => `${Number(k)}/${Number(n)}`));
}

function symbolFragment() {
  return z.string().superRefine((value, ctx) => {
    if (SYMBOL_FRAGMENT_PATTERN.test(value)) return;
    ctx.addIssue({ code: 'custom', input: value, message: `${expectedFor('SYMBOL_CONTAINS', 'SPOT') ?? ''}${upperCaseHint(value)}` });
  });
}

/** An http://, https:// or socks5(h):// URL naming a host, with nothing after the port. */
function isProxyUrl(value: string): boolean {
  return isHostUrl(value, PROXY_SCHEMES);
}

const PROXY_SCHEMES: readonly string[] = ['http:', 'https:', 'socks5:', 'socks5h:'];

function urlSchema(protocols: readonly string[], key: string) {
  return z
    .string()
    .refine(
      (value) => {
        try {
          const url = new URL(value);
          return protocols.includes(url.protocol) && url.search === '' && url.hash === '';
        } catch {
          return false;
        }
      },
      { error: expectedFor(key, 'SPOT') ?? '' },
    )
    .transform((value) => value.replace(/\/+$/, ''));
}

function isTimeZone(value: string): boolean {
  if (!TIME_ZONE_SHAPE.test(value)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value });
    return true;
  } catch {
    return false;
  }
}

/** Intl accepts any letter case; the folder name should not depend on how the zone was typed. */
function canonicalTimeZoneCase(value: string): string {
  const resolved = new Intl.DateTimeFormat('en-US', { timeZone: value }).resolvedOptions().timeZone;
  return resolved.toLowerCase() === value.toLowerCase() ? resolved : value;
}

function suggestKey(key: string): string {
  const wanted = key.toUpperCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of RULE_KEYS) {
    const distance = editDistance(wanted, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === undefined ? '' : `; did you mean ${best}?`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

type EnvKind = 'string' | 'number' | 'nullableNumber' | 'nullableString' | 'boolean' | 'list' | 'symbols';

const ENV_KINDS: Record<RuleKey, EnvKind> = {
  MARKET: 'string',
  SERVER_WEIGHT: 'number',
  SYMBOLS: 'symbols',
  SYMBOLS_FILTER: 'list',
  SYMBOL_CONTAINS: 'string',
  SYMBOL_ENDSWITH: 'string',
  BAR: 'string',
  TIMEZONE: 'string',
  CANDLE_DIR: 'string',
  DOWNLOAD_TIME: 'nullableString',
  LENGTH: 'number',
  UPDATE_INTERVAL_SECONDS: 'number',
  CACHE_DELAY_SECONDS: 'nullableNumber',
  CACHE_DIR: 'string',
  LOCAL_CANDLE_DAYS: 'number',
  REST_BASE_URL: 'string',
  WS_BASE_URL: 'string',
  ARCHIVE_BASE_URL: 'string',
  USE_ARCHIVES: 'boolean',
  UPDATE_MODE: 'string',
  LOG_LEVEL: 'string',
  SYMBOLS_REFRESH_SECONDS: 'number',
  UM_CONTRACT_TYPES: 'list',
  HTTP_HOST: 'string',
  HTTP_PORT: 'nullableNumber',
  PROXY: 'nullableString',
  SHARD: 'nullableString',
  INTERVALS: 'list',
  FORWARD_KLINES: 'boolean',
  NATS_URL: 'nullableString',
  NATS_SUBJECT_PREFIX: 'string',
};

const NUMBER_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;
const BOOLEAN_TEXT: Readonly<Record<string, boolean>> = { true: true, false: false, '1': true, '0': false, yes: true, no: false };

/**
 * The rule fields set by `CANDLE_SERVER_*` variables, converted from text. Text that does not
 * convert is passed on unchanged so that validation reports it as received.
 */
function ruleFromEnv(env: Readonly<Record<string, string | undefined>>): {
  values: Record<string, unknown>;
  issues: ConfigIssue[];
} {
  const values: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith(RULE_ENV_PREFIX) || name === RULE_FILE_ENV || text === undefined) continue;
    const key = name.slice(RULE_ENV_PREFIX.length);
    const kind = (ENV_KINDS as Record<string, EnvKind | undefined>)[key];
    if (kind === undefined) {
      issues.push({ path: name, received: text, message: `unknown environment variable${suggestKey(key)}` });
      continue;
    }
    values[key] = fromEnvText(kind, text.trim());
  }
  return { values, issues };
}

function fromEnvText(kind: EnvKind, text: string): unknown {
  const isNull = text.toLowerCase() === 'null' || text.toLowerCase() === 'none';
  switch (kind) {
    case 'string':
      return text;
    case 'nullableString':
      return isNull ? null : text;
    case 'nullableNumber':
      if (isNull) return null;
      return NUMBER_TEXT.test(text) ? Number(text) : text;
    case 'number':
      return NUMBER_TEXT.test(text) ? Number(text) : text;
    case 'boolean':
      return BOOLEAN_TEXT[text.toLowerCase()] ?? text;
    case 'list':
      return splitList(text);
    case 'symbols':
      return text === 'all' ? 'all' : splitList(text);
  }
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

async function readRuleFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`CandleRule file ${file}`, [{ path: '', received: file, message: `expected a readable JSON file: ${reason}` }], {
      cause: error,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `CandleRule file ${file}`,
      [{ path: '', received: excerptAt(text, reason), message: `expected valid JSON; ${reason}${lineAndColumn(text, reason)}` }],
      { cause: error },
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`CandleRule file ${file}`, [
      { path: '', received: parsed, message: 'expected a JSON object of CandleRule fields' },
    ]);
  }
  return parsed as Record<string, unknown>;
}

function errorPosition(reason: string): number | undefined {
  const match = /position (\d+)/.exec(reason);
  return match === null ? undefined : Number(match[1]);
}

function lineAndColumn(text: string, reason: string): string {
  if (/\(line \d+ column \d+\)/.test(reason)) return '';
  const position = errorPosition(reason);
  if (position === undefined) return '';
  const before = text.slice(0, position).split('\n');
  return ` (line ${before.length} column ${(before.at(-1)?.length ?? 0) + 1})`;
}

function excerptAt(text: string, reason: string): string {
  const position = errorPosition(reason) ?? text.length;
  return text.slice(Math.max(0, position - 20), position + 20);
}
