/**
 * The symbol universe: which symbols candle-server follows, re-read from exchangeInfo so that new
 * listings join and delisted or settled contracts leave (the original read it once and kept it
 * forever).
 *
 * `selectUniverse` is the pure selection; `SymbolUniverse` owns the refresh timer and reports
 * changes. With SHARD 'k/N' the universe is split across N servers after every filter: each keeps
 * only the symbols `shardOf` puts on its shard, for SYMBOLS 'all' and an explicit list alike, at
 * start and at every refresh (a new listing joins exactly one shard). Fetching exchangeInfo is the caller's function, so this module knows nothing of the
 * REST client.
 *
 * @example
 * ```ts
 * const universe = new SymbolUniverse({
 *   market: 'UM',
 *   rule,
 *   fetchExchangeInfo: (signal) => client.exchangeInfo({ signal }),
 * });
 * universe.on('joined', (symbols) => backfill(symbols));
 * universe.on('left', (symbols) => drop(symbols));
 * await universe.start(signal);
 * universe.current(); // ['BTCUSDT', 'ETHUSDT', ...]
 * await universe.close();
 * ```
 */
import type { CandleRule } from '../rule.js';
import { AbortedError, CandleServerError, ClosedError, ConfigError, MalformedResponseError, type ConfigIssue } from '../errors.js';
import { MARKETS, type MarketType } from '../binance/markets.js';
import { silentLogger, type Logger } from '../log.js';
import { isSymbol } from '../binance/symbols.js';
import { shardSpecOf } from '../rule.js';
import { shardOf } from './shard.js';

/**
 * The fields of an exchangeInfo `symbols[]` entry that the selection reads. SPOT and UM report
 * `status`; CM reports `contractStatus`; UM and CM add `contractType`.
 *
 * @example
 * ```ts
 * const entry: ExchangeInfoSymbol = { symbol: 'BTCUSD_PERP', contractStatus: 'TRADING', contractType: 'PERPETUAL' };
 * ```
 */
export interface ExchangeInfoSymbol {
  readonly symbol: string;
  readonly status?: string | undefined;
  readonly contractStatus?: string | undefined;
  readonly contractType?: string | undefined;
}

/** The rule fields the universe depends on. */
export type UniverseRule = Pick<
  CandleRule,
  'SYMBOLS' | 'SYMBOLS_FILTER' | 'SYMBOL_CONTAINS' | 'SYMBOL_ENDSWITH' | 'UM_CONTRACT_TYPES' | 'SYMBOLS_REFRESH_SECONDS' | 'SHARD'
>;

/**
 * The outcome of a selection. `unknown` and `notTrading` are only filled for an explicit SYMBOLS
 * list: names exchangeInfo does not list at all, and names it lists but not as trading.
 * `otherShards`: symbols kept by every filter but left to the other shards (SHARD), so the
 * universe before sharding is `symbols` and `otherShards` together.
 */
export interface UniverseSelection {
  readonly symbols: readonly string[];
  readonly unknown: readonly string[];
  readonly notTrading: readonly string[];
  readonly otherShards: readonly string[];
}

/** What one refresh changed. */
export interface UniverseChange {
  readonly joined: readonly string[];
  readonly left: readonly string[];
}

/**
 * True when exchangeInfo says `entry` is trading: SPOT and UM `status`, CM `contractStatus`.
 *
 * @example
 * ```ts
 * isTrading('CM', { symbol: 'BTCUSD_PERP', contractStatus: 'TRADING' }); // true
 * isTrading('CM', { symbol: 'BTCUSD_PERP', status: 'TRADING' });         // false: CM has no status
 * ```
 */
export function isTrading(market: MarketType, entry: ExchangeInfoSymbol): boolean {
  return (market === 'CM' ? entry.contractStatus : entry.status) === 'TRADING';
}

/**
 * Picks the symbols to follow. SYMBOLS 'all' keeps every trading symbol (on UM, also of a contract
 * type in UM_CONTRACT_TYPES), sorted; a list keeps its order and drops, reporting them, the names
 * exchangeInfo does not list or lists as not trading. Either way SYMBOLS_FILTER (exclusion),
 * SYMBOL_CONTAINS and SYMBOL_ENDSWITH apply afterwards, then SHARD. Entries whose name is not a valid symbol
 * are ignored, so a strange reply never reaches a file path.
 *
 * @example
 * ```ts
 * selectUniverse('SPOT', [{ symbol: 'BTCUSDT', status: 'TRADING' }, { symbol: 'ETHBTC', status: 'TRADING' }],
 *   { ...rule, SYMBOLS: 'all', SYMBOL_ENDSWITH: 'USDT' });
 * // { symbols: ['BTCUSDT'], unknown: [], notTrading: [], otherShards: [] }
 * selectUniverse('SPOT', [{ symbol: 'BTCUSDT', status: 'TRADING' }, { symbol: 'SOLUSDT', status: 'TRADING' }],
 *   { ...rule, SYMBOLS: 'all', SHARD: '1/2' });
 * // { symbols: ['SOLUSDT'], unknown: [], notTrading: [], otherShards: ['BTCUSDT'] }
 * ```
 */
export function selectUniverse(
  market: MarketType,
  exchangeInfoSymbols: readonly ExchangeInfoSymbol[],
  rule: Omit<UniverseRule, 'SYMBOLS_REFRESH_SECONDS'>,
): UniverseSelection {
  const listed = new Map<string, ExchangeInfoSymbol>();
  for (const entry of exchangeInfoSymbols) if (isSymbol(entry.symbol)) listed.set(entry.symbol, entry);

  const filtered = new Set(rule.SYMBOLS_FILTER);
  const isKept = (symbol: string): boolean =>
    !filtered.has(symbol) && symbol.includes(rule.SYMBOL_CONTAINS) && symbol.endsWith(rule.SYMBOL_ENDSWITH);

  if (rule.SYMBOLS === 'all') {
    const contractTypes = new Set(rule.UM_CONTRACT_TYPES);
    const symbols = [...listed.values()]
      .filter((entry) => isTrading(market, entry) && (market !== 'UM' || contractTypes.has(entry.contractType ?? '')))
      .map((entry) => entry.symbol)
      .filter(isKept)
      .sort();
    return { ...splitShards(symbols, rule), unknown: [], notTrading: [] };
  }

  const kept: string[] = [];
  const unknown: string[] = [];
  const notTrading: string[] = [];
  for (const symbol of rule.SYMBOLS) {
    const entry = listed.get(symbol);
    if (entry === undefined) unknown.push(symbol);
    else if (!isTrading(market, entry)) notTrading.push(symbol);
    else if (isKept(symbol)) kept.push(symbol);
  }
  return { ...splitShards(kept, rule), unknown, notTrading };
}

/** The symbols of this server's shard and those of the others, each in the order given. */
function splitShards(symbols: string[], rule: Pick<UniverseRule, 'SHARD'>): { symbols: string[]; otherShards: string[] } {
  const shard = shardSpecOf(rule);
  if (shard === undefined) return { symbols, otherShards: [] };
  const mine: string[] = [];
  const others: string[] = [];
  for (const symbol of symbols) (shardOf(symbol, shard.count) === shard.index ? mine : others).push(symbol);
  return { symbols: mine, otherShards: others };
}

/**
 * Listeners of a SymbolUniverse. A throwing listener is logged and does not stop the others.
 *
 * @example
 * ```ts
 * const events: Partial<SymbolUniverseEvents> = { joined: (symbols) => console.log('new', symbols) };
 * ```
 */
export interface SymbolUniverseEvents {
  /** Symbols that entered the universe at a refresh (new listings). */
  joined: (symbols: readonly string[]) => void;
  /** Symbols that left it (delisted, settled, no longer trading). */
  left: (symbols: readonly string[]) => void;
  /** A periodic refresh failed; the last good list stays in force. */
  refreshFailed: (error: unknown) => void;
}

/** Construction options of SymbolUniverse. */
export interface SymbolUniverseOptions {
  readonly market: MarketType;
  readonly rule: UniverseRule;
  /** Reads exchangeInfo; must honour `signal`. */
  readonly fetchExchangeInfo: (signal: AbortSignal) => Promise<{ readonly symbols: readonly ExchangeInfoSymbol[] }>;
  /** Milliseconds between refreshes; defaults to SYMBOLS_REFRESH_SECONDS. */
  readonly refreshMs?: number;
  readonly logger?: Logger;
}

type Listeners = { [K in keyof SymbolUniverseEvents]: Set<SymbolUniverseEvents[K]> };

/**
 * The set of symbols being followed, kept current from exchangeInfo on one owned timer. The first
 * load must succeed (`start` throws otherwise); afterwards a failed refresh keeps the last good
 * list and logs a warning.
 *
 * @example
 * ```ts
 * const universe = new SymbolUniverse({ market: 'SPOT', rule, fetchExchangeInfo, refreshMs: 60_000 });
 * const symbols = await universe.start(controller.signal);
 * universe.on('left', (gone) => gone.forEach((s) => store.delete(s)));
 * ```
 */
export class SymbolUniverse {
  readonly #market: MarketType;
  readonly #rule: UniverseRule;
  readonly #fetchExchangeInfo: SymbolUniverseOptions['fetchExchangeInfo'];
  readonly #refreshMs: number;
  readonly #logger: Logger;
  readonly #listeners: Listeners = { joined: new Set(), left: new Set(), refreshFailed: new Set() };
  #current: readonly string[] = Object.freeze([]);
  #selection: UniverseSelection | undefined;
  // Aborts every exchangeInfo request of this run, on close() or when start's signal fires.
  #controller = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #starting: Promise<readonly string[]> | undefined;
  // Refreshes run one after another, so an older reply can never overwrite a newer one.
  #chain: Promise<unknown> = Promise.resolve();
  // Removes the listener placed on start's signal; set while running.
  #detachSignal: (() => void) | undefined;
  #isClosed = false;

  constructor(options: SymbolUniverseOptions) {
    const refreshMs = options.refreshMs ?? options.rule.SYMBOLS_REFRESH_SECONDS * 1000;
    if (!(refreshMs > 0) || !Number.isFinite(refreshMs)) {
      throw new ConfigError('SymbolUniverse options', [
        { path: 'refreshMs', received: refreshMs, message: 'expected a positive number of milliseconds' },
      ]);
    }
    this.#market = options.market;
    this.#rule = options.rule;
    this.#fetchExchangeInfo = options.fetchExchangeInfo;
    this.#refreshMs = refreshMs;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'universe', market: options.market });
  }

  /**
   * Loads the universe and starts the periodic refresh. Resolves with the symbols; rejects when
   * exchangeInfo cannot be read (code UNIVERSE_UNAVAILABLE) or nothing is selected (ConfigError
   * listing the unknown symbols). When `signal` aborts, refreshing stops as with close().
   * Idempotent: a second call returns the first call's promise; after a failed start the universe
   * stays stopped (make a new one to try again).
   */
  start(signal?: AbortSignal): Promise<readonly string[]> {
    if (this.#isClosed) return Promise.reject(new ClosedError('SymbolUniverse'));
    this.#starting ??= this.#start(signal);
    return this.#starting;
  }

  /** The symbols currently followed (frozen). Empty before start. */
  current(): readonly string[] {
    return this.#current;
  }

  /** The last selection, with the listed symbols found unknown or not trading. */
  selection(): UniverseSelection | undefined {
    return this.#selection;
  }

  /**
   * Re-reads exchangeInfo now, applies the change and resolves with it; rejects (keeping the last
   * list) when the read fails. The periodic refresh calls the same code.
   */
  refresh(): Promise<UniverseChange> {
    if (this.#isClosed) return Promise.reject(new ClosedError('SymbolUniverse'));
    const run = this.#chain.then(() => this.#refreshOnce());
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Adds a listener; returns a function that removes it.
   *
   * @example
   * ```ts
   * const off = universe.on('joined', (symbols) => console.log(symbols));
   * off();
   * ```
   */
  on<K extends keyof SymbolUniverseEvents>(event: K, listener: SymbolUniverseEvents[K]): () => void {
    const set = this.#listeners[event] as Set<SymbolUniverseEvents[K]>;
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Stops refreshing, aborts a request in flight and waits for it to settle. Idempotent. */
  async close(): Promise<void> {
    if (!this.#isClosed) {
      this.#isClosed = true;
      this.#stop();
    }
    await Promise.allSettled([this.#chain, this.#starting]);
  }

  async #start(signal: AbortSignal | undefined): Promise<readonly string[]> {
    if (signal !== undefined) {
      if (signal.aborted) throw new AbortedError('SymbolUniverse start', { cause: signal.reason });
      const onAbort = (): void => this.#stop();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#detachSignal = () => signal.removeEventListener('abort', onAbort);
    }
    let selection: UniverseSelection;
    try {
      selection = await this.#select();
    } catch (error) {
      const wasAborted = this.#controller.signal.aborted;
      this.#stop();
      if (wasAborted) throw new AbortedError('SymbolUniverse start', { cause: error });
      const reason = error instanceof Error ? error.message : String(error);
      throw new CandleServerError('UNIVERSE_UNAVAILABLE', `could not read the ${this.#market} symbol list from exchangeInfo: ${reason}`, {
        cause: error,
      });
    }
    if (selection.symbols.length === 0) {
      this.#stop();
      throw new ConfigError(`${this.#market} symbol universe`, this.#emptyIssues(selection));
    }
    if (selection.unknown.length > 0 || selection.notTrading.length > 0) {
      this.#logger.warn(
        { unknown: selection.unknown, notTrading: selection.notTrading },
        `left out ${selection.unknown.length + selection.notTrading.length} listed symbols that ${this.#market} does not trade`,
      );
    }
    this.#apply(selection);
    const count = selection.symbols.length;
    if (this.#rule.SHARD === null) this.#logger.info({ count }, `following ${count} ${this.#market} symbols`);
    else {
      const total = count + selection.otherShards.length;
      this.#logger.info(
        { shard: this.#rule.SHARD, count, total },
        `shard ${this.#rule.SHARD}: following ${count} of the universe's ${total} ${this.#market} symbols`,
      );
    }
    this.#schedule();
    return this.#current;
  }

  async #select(): Promise<UniverseSelection> {
    const info = await this.#fetchExchangeInfo(this.#controller.signal);
    if (typeof info !== 'object' || info === null || !Array.isArray(info.symbols)) {
      throw new MalformedResponseError(
        { market: this.#market, endpoint: MARKETS[this.#market].paths.exchangeInfo },
        'expected an object with a symbols array',
      );
    }
    return selectUniverse(this.#market, info.symbols, this.#rule);
  }

  async #refreshOnce(): Promise<UniverseChange> {
    const selection = await this.#select();
    if (this.#isClosed || this.#controller.signal.aborted) return { joined: [], left: [] };
    const before = new Set(this.#current);
    const after = new Set(selection.symbols);
    const change: UniverseChange = {
      joined: selection.symbols.filter((s) => !before.has(s)),
      left: this.#current.filter((s) => !after.has(s)),
    };
    this.#apply(selection);
    if (change.joined.length > 0) {
      this.#logger.info({ symbols: change.joined }, `${change.joined.length} ${this.#market} symbols joined`);
      this.#emit('joined', change.joined);
    }
    if (change.left.length > 0) {
      this.#logger.info({ symbols: change.left }, `${change.left.length} ${this.#market} symbols left`);
      this.#emit('left', change.left);
    }
    return change;
  }

  #apply(selection: UniverseSelection): void {
    this.#selection = selection;
    this.#current = Object.freeze([...selection.symbols]);
  }

  #schedule(): void {
    if (this.#isClosed || this.#controller.signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.refresh()
        .catch((error: unknown) => {
          if (this.#isClosed || this.#controller.signal.aborted) return;
          this.#logger.warn({ err: error }, `symbol list refresh failed; keeping the last ${this.#current.length} symbols`);
          this.#emit('refreshFailed', error);
        })
        .finally(() => this.#schedule());
    }, this.#refreshMs);
  }

  #stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#controller.abort();
    this.#detachSignal?.();
    this.#detachSignal = undefined;
  }

  #emit<K extends keyof SymbolUniverseEvents>(event: K, ...args: Parameters<SymbolUniverseEvents[K]>): void {
    for (const listener of this.#listeners[event]) {
      try {
        (listener as (...a: Parameters<SymbolUniverseEvents[K]>) => void)(...args);
      } catch (error) {
        this.#logger.error({ err: error, event }, `a ${event} listener threw`);
      }
    }
  }

  #emptyIssues(selection: UniverseSelection): ConfigIssue[] {
    const rule = this.#rule;
    if (selection.otherShards.length > 0) {
      return [
        {
          path: 'SHARD',
          received: rule.SHARD,
          message: `expected a shard holding at least one symbol; the universe's ${selection.otherShards.length} ${this.#market} symbols are all on other shards (fewer shards, or more symbols)`,
        },
      ];
    }
    if (rule.SYMBOLS === 'all') {
      return [
        {
          path: 'SYMBOLS',
          received: 'all',
          message: `expected at least one trading ${this.#market} symbol after SYMBOLS_FILTER, SYMBOL_CONTAINS ${JSON.stringify(rule.SYMBOL_CONTAINS)} and SYMBOL_ENDSWITH ${JSON.stringify(rule.SYMBOL_ENDSWITH)}`,
        },
      ];
    }
    return rule.SYMBOLS.map((symbol, index): ConfigIssue => {
      const path = `SYMBOLS[${index}]`;
      if (selection.unknown.includes(symbol)) return { path, received: symbol, message: `expected a symbol listed on ${this.#market}` };
      if (selection.notTrading.includes(symbol)) return { path, received: symbol, message: `expected a symbol trading on ${this.#market}` };
      return { path, received: symbol, message: 'expected a symbol kept by SYMBOLS_FILTER, SYMBOL_CONTAINS and SYMBOL_ENDSWITH' };
    });
  }
}
