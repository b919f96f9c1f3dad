import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { CandleServerError, ClosedError, ConfigError, MalformedResponseError } from '../../src/errors.js';
import { parseCandleRule, type CandleRuleInput } from '../../src/rule.js';
import { SymbolUniverse, selectUniverse, type ExchangeInfoSymbol } from '../../src/sync/universe.js';

const rule = (input: Partial<CandleRuleInput> = {}) => parseCandleRule(input);

const SPOT: ExchangeInfoSymbol[] = [
  { symbol: 'ETHUSDT', status: 'TRADING' },
  { symbol: 'BTCUSDT', status: 'TRADING' },
  { symbol: 'ETHBTC', status: 'TRADING' },
  { symbol: 'LUNAUSDT', status: 'BREAK' },
  { symbol: 'USDCUSDT', status: 'TRADING' },
];

const UM: ExchangeInfoSymbol[] = [
  { symbol: 'BTCUSDT', status: 'TRADING', contractType: 'PERPETUAL' },
  { symbol: 'BTCUSDT_260925', status: 'TRADING', contractType: 'CURRENT_QUARTER' },
  { symbol: 'BTCUSDT_261225', status: 'TRADING', contractType: 'NEXT_QUARTER' },
  { symbol: 'XAUUSDT', status: 'TRADING', contractType: 'TRADIFI_PERPETUAL' },
  { symbol: 'ETHUSDT_260626', status: 'SETTLING', contractType: 'CURRENT_QUARTER' },
  { symbol: 'ODDUSDT', status: 'TRADING', contractType: 'SOMETHING_NEW' },
];

const CM: ExchangeInfoSymbol[] = [
  { symbol: 'BTCUSD_PERP', contractStatus: 'TRADING', contractType: 'PERPETUAL' },
  { symbol: 'ETHUSD_PERP', contractStatus: 'TRADING', contractType: 'PERPETUAL' },
  { symbol: 'BTCUSD_260626', contractStatus: 'SETTLING', contractType: 'CURRENT_QUARTER' },
  // CM reports contractStatus; a `status` field alone must not count as trading.
  { symbol: 'ADAUSD_PERP', status: 'TRADING', contractType: 'PERPETUAL' },
];

describe('selectUniverse', () => {
  it("'all' on SPOT keeps the TRADING symbols, sorted", () => {
    expect(selectUniverse('SPOT', SPOT, rule())).toEqual({
      symbols: ['BTCUSDT', 'ETHBTC', 'ETHUSDT', 'USDCUSDT'],
      unknown: [],
      notTrading: [],
      otherShards: [],
    });
  });

  it("'all' on UM keeps trading contracts of the configured types", () => {
    expect(selectUniverse('UM', UM, rule({ MARKET: 'UM' })).symbols).toEqual(['BTCUSDT', 'BTCUSDT_260925', 'BTCUSDT_261225', 'XAUUSDT']);
    expect(selectUniverse('UM', UM, rule({ MARKET: 'UM', UM_CONTRACT_TYPES: ['PERPETUAL', 'SOMETHING_NEW'] })).symbols).toEqual([
      'BTCUSDT',
      'ODDUSDT',
    ]);
  });

  it("'all' on CM reads contractStatus, not status", () => {
    expect(selectUniverse('CM', CM, rule({ MARKET: 'CM' })).symbols).toEqual(['BTCUSD_PERP', 'ETHUSD_PERP']);
  });

  it('then applies SYMBOLS_FILTER as an exclusion list, SYMBOL_CONTAINS and SYMBOL_ENDSWITH', () => {
    expect(selectUniverse('SPOT', SPOT, rule({ SYMBOLS_FILTER: ['USDCUSDT'] })).symbols).toEqual(['BTCUSDT', 'ETHBTC', 'ETHUSDT']);
    expect(selectUniverse('SPOT', SPOT, rule({ SYMBOL_ENDSWITH: 'USDT' })).symbols).toEqual(['BTCUSDT', 'ETHUSDT', 'USDCUSDT']);
    expect(selectUniverse('SPOT', SPOT, rule({ SYMBOL_CONTAINS: 'ETH' })).symbols).toEqual(['ETHBTC', 'ETHUSDT']);
    expect(
      selectUniverse('SPOT', SPOT, rule({ SYMBOL_CONTAINS: 'ETH', SYMBOL_ENDSWITH: 'USDT', SYMBOLS_FILTER: ['BTCUSDT'] })).symbols,
    ).toEqual(['ETHUSDT']);
  });

  it('checks a list against exchangeInfo, reporting unknown and non-trading names instead of keeping them', () => {
    const selection = selectUniverse('SPOT', SPOT, rule({ SYMBOLS: ['ETHUSDT', 'NOPEUSDT', 'LUNAUSDT', 'BTCUSDT'] }));
    expect(selection).toEqual({ symbols: ['ETHUSDT', 'BTCUSDT'], unknown: ['NOPEUSDT'], notTrading: ['LUNAUSDT'], otherShards: [] });
  });

  it('applies the filters to a list too', () => {
    expect(selectUniverse('SPOT', SPOT, rule({ SYMBOLS: ['ETHUSDT', 'ETHBTC'], SYMBOL_ENDSWITH: 'USDT' })).symbols).toEqual(['ETHUSDT']);
  });

  it('with SHARD keeps, after every filter, the symbols of its shard: for all and for a list, disjoint shards making up the whole', () => {
    // Shard of 2 (pinned in shard.test.ts): BTCUSDT, ETHUSDT, ETHBTC on 2; USDCUSDT on 1.
    expect(selectUniverse('SPOT', SPOT, rule({ SHARD: '1/2' }))).toEqual({
      symbols: ['USDCUSDT'],
      unknown: [],
      notTrading: [],
      otherShards: ['BTCUSDT', 'ETHBTC', 'ETHUSDT'],
    });
    expect(selectUniverse('SPOT', SPOT, rule({ SHARD: '2/2', SYMBOLS_FILTER: ['ETHBTC'] })).symbols).toEqual(['BTCUSDT', 'ETHUSDT']);
    const list = rule({ SYMBOLS: ['USDCUSDT', 'NOPEUSDT', 'ETHUSDT', 'LUNAUSDT', 'BTCUSDT'], SHARD: '2/2' });
    expect(selectUniverse('SPOT', SPOT, list)).toEqual({
      symbols: ['ETHUSDT', 'BTCUSDT'],
      unknown: ['NOPEUSDT'],
      notTrading: ['LUNAUSDT'],
      otherShards: ['USDCUSDT'],
    });
    for (const count of [1, 2, 3]) {
      const shards = Array.from(
        { length: count },
        (_, k) => selectUniverse('UM', UM, rule({ MARKET: 'UM', SHARD: `${k + 1}/${count}` })).symbols,
      );
      expect(shards.flat().sort()).toEqual(selectUniverse('UM', UM, rule({ MARKET: 'UM' })).symbols);
    }
  });

  it('ignores exchangeInfo entries whose name is not a Binance symbol', () => {
    const odd: ExchangeInfoSymbol[] = [...SPOT, { symbol: '../x', status: 'TRADING' }, { symbol: 'a/b', status: 'TRADING' }];
    expect(selectUniverse('SPOT', odd, rule()).symbols).not.toContain('../x');
    expect(selectUniverse('SPOT', odd, rule()).symbols).toHaveLength(4);
  });
});

/** A scriptable exchangeInfo source: tests change `symbols` or make it fail. */
function exchange(initial: ExchangeInfoSymbol[]) {
  const state = {
    symbols: initial,
    failWith: undefined as Error | undefined,
    calls: 0,
    signals: [] as AbortSignal[],
    fetch: async (signal: AbortSignal) => {
      state.calls += 1;
      state.signals.push(signal);
      if (state.failWith !== undefined) throw state.failWith;
      return { symbols: [...state.symbols] };
    },
  };
  return state;
}

/** A pino logger whose lines are kept in `lines`. */
function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/** Resolves with the first payload of `event`, or rejects after `ms`. */
function nextEvent<K extends 'joined' | 'left' | 'refreshFailed'>(universe: SymbolUniverse, event: K, ms = 5000) {
  return new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const off = universe.on(event, (payload: unknown) => {
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

describe('SymbolUniverse', () => {
  it('loads the universe on start and returns it frozen', async () => {
    const ex = exchange(SPOT);
    const universe = new SymbolUniverse({ market: 'SPOT', rule: rule({ SYMBOL_ENDSWITH: 'USDT' }), fetchExchangeInfo: ex.fetch });
    expect(universe.current()).toEqual([]);
    const symbols = await universe.start();
    expect(symbols).toEqual(['BTCUSDT', 'ETHUSDT', 'USDCUSDT']);
    expect(Object.isFrozen(universe.current())).toBe(true);
    expect(universe.start()).toBe(universe.start());
    await universe.close();
    expect(ex.calls).toBe(1);
  });

  it('fails start with a clear error when exchangeInfo cannot be read', async () => {
    const ex = exchange(SPOT);
    ex.failWith = new Error('connect ECONNREFUSED 127.0.0.1:9');
    const universe = new SymbolUniverse({ market: 'UM', rule: rule({ MARKET: 'UM' }), fetchExchangeInfo: ex.fetch });
    const error = await universe.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CandleServerError);
    expect((error as CandleServerError).code).toBe('UNIVERSE_UNAVAILABLE');
    expect((error as Error).message).toBe('could not read the UM symbol list from exchangeInfo: connect ECONNREFUSED 127.0.0.1:9');
    await universe.close();
  });

  it('fails start when the reply has no symbols array', async () => {
    const universe = new SymbolUniverse({
      market: 'SPOT',
      rule: rule(),
      fetchExchangeInfo: async () => ({}) as { symbols: ExchangeInfoSymbol[] },
    });
    const error = await universe.start().catch((e: unknown) => e);
    expect((error as CandleServerError).code).toBe('UNIVERSE_UNAVAILABLE');
    expect((error as Error).cause).toBeInstanceOf(MalformedResponseError);
    await universe.close();
  });

  it('refuses to start with no symbol, naming each listed symbol that is missing', async () => {
    const ex = exchange(SPOT);
    const universe = new SymbolUniverse({ market: 'SPOT', rule: rule({ SYMBOLS: ['NOPEUSDT', 'LUNAUSDT'] }), fetchExchangeInfo: ex.fetch });
    const error = await universe.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      { path: 'SYMBOLS[0]', received: 'NOPEUSDT', message: 'expected a symbol listed on SPOT' },
      { path: 'SYMBOLS[1]', received: 'LUNAUSDT', message: 'expected a symbol trading on SPOT' },
    ]);
    await universe.close();
  });

  it('reports unknown listed symbols in a warning and goes on with the others', async () => {
    const ex = exchange(SPOT);
    const { logger, lines } = captureLogger();
    const universe = new SymbolUniverse({
      market: 'SPOT',
      rule: rule({ SYMBOLS: ['BTCUSDT', 'NOPEUSDT'] }),
      fetchExchangeInfo: ex.fetch,
      logger,
    });
    expect(await universe.start()).toEqual(['BTCUSDT']);
    expect(universe.selection()?.unknown).toEqual(['NOPEUSDT']);
    expect(lines.find((l) => l.level === 40)).toMatchObject({ unknown: ['NOPEUSDT'], component: 'universe', market: 'SPOT' });
    await universe.close();
  });

  it('lets new listings join and delisted symbols leave on refresh, and logs both', async () => {
    const ex = exchange(UM);
    const { logger, lines } = captureLogger();
    const universe = new SymbolUniverse({ market: 'UM', rule: rule({ MARKET: 'UM' }), fetchExchangeInfo: ex.fetch, logger });
    await universe.start();
    const joined: unknown[] = [];
    const left: unknown[] = [];
    universe.on('joined', (s) => joined.push(s));
    universe.on('left', (s) => left.push(s));

    ex.symbols = [
      ...UM.filter((s) => s.symbol !== 'BTCUSDT_260925'),
      { symbol: 'BTCUSDT_260925', status: 'SETTLING', contractType: 'CURRENT_QUARTER' },
      { symbol: 'NEWUSDT', status: 'TRADING', contractType: 'PERPETUAL' },
    ];
    expect(await universe.refresh()).toEqual({ joined: ['NEWUSDT'], left: ['BTCUSDT_260925'] });
    expect(universe.current()).toEqual(['BTCUSDT', 'BTCUSDT_261225', 'NEWUSDT', 'XAUUSDT']);
    expect(joined).toEqual([['NEWUSDT']]);
    expect(left).toEqual([['BTCUSDT_260925']]);
    expect(lines.some((l) => l.msg === '1 UM symbols joined' && JSON.stringify(l.symbols) === '["NEWUSDT"]')).toBe(true);
    expect(lines.some((l) => l.msg === '1 UM symbols left' && JSON.stringify(l.symbols) === '["BTCUSDT_260925"]')).toBe(true);

    expect(await universe.refresh()).toEqual({ joined: [], left: [] });
    expect(joined).toHaveLength(1);
    await universe.close();
  });

  it('with SHARD logs the share kept, lets a new listing join only its own shard, and refuses a shard left empty', async () => {
    const ex = exchange(SPOT);
    const { logger, lines } = captureLogger();
    const shards = ['1/2', '2/2'].map(
      (SHARD) => new SymbolUniverse({ market: 'SPOT', rule: rule({ SHARD }), fetchExchangeInfo: ex.fetch, logger }),
    );
    expect(await Promise.all(shards.map((u) => u.start()))).toEqual([['USDCUSDT'], ['BTCUSDT', 'ETHBTC', 'ETHUSDT']]);
    expect(lines.some((l) => l.msg === "shard 1/2: following 1 of the universe's 4 SPOT symbols" && l.shard === '1/2')).toBe(true);
    expect(lines.some((l) => l.msg === "shard 2/2: following 3 of the universe's 4 SPOT symbols" && l.total === 4)).toBe(true);

    // SOLUSDT is on shard 1 of 2, BNBUSDT on shard 2; ETHBTC leaves shard 2.
    ex.symbols = [
      ...SPOT.filter((s) => s.symbol !== 'ETHBTC'),
      { symbol: 'SOLUSDT', status: 'TRADING' },
      { symbol: 'BNBUSDT', status: 'TRADING' },
    ];
    expect(await Promise.all(shards.map((u) => u.refresh()))).toEqual([
      { joined: ['SOLUSDT'], left: [] },
      { joined: ['BNBUSDT'], left: ['ETHBTC'] },
    ]);
    for (const u of shards) await u.close();

    const empty = new SymbolUniverse({ market: 'SPOT', rule: rule({ SYMBOLS: ['BTCUSDT'], SHARD: '1/2' }), fetchExchangeInfo: ex.fetch });
    const error = await empty.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      {
        path: 'SHARD',
        received: '1/2',
        message:
          "expected a shard holding at least one symbol; the universe's 1 SPOT symbols are all on other shards (fewer shards, or more symbols)",
      },
    ]);
    await empty.close();
  });

  it('keeps the last good list when a refresh fails, and says so', async () => {
    const ex = exchange(SPOT);
    const { logger, lines } = captureLogger();
    const universe = new SymbolUniverse({ market: 'SPOT', rule: rule(), fetchExchangeInfo: ex.fetch, refreshMs: 5, logger });
    const before = await universe.start();
    ex.failWith = new Error('HTTP 503');
    expect(await nextEvent(universe, 'refreshFailed')).toBe(ex.failWith);
    expect(universe.current()).toBe(before);
    expect(lines.some((l) => l.level === 40 && String(l.msg).includes('keeping the last 4 symbols'))).toBe(true);
    await expect(universe.refresh()).rejects.toThrow('HTTP 503');

    // The periodic refresh goes on after a failure and picks up changes once the exchange answers.
    ex.symbols = SPOT.filter((s) => s.symbol !== 'ETHBTC');
    ex.failWith = undefined;
    expect(await nextEvent(universe, 'left')).toEqual(['ETHBTC']);
    await universe.close();
  });

  it('keeps calling listeners after one throws', async () => {
    const ex = exchange(SPOT);
    const { logger, lines } = captureLogger();
    const universe = new SymbolUniverse({ market: 'SPOT', rule: rule(), fetchExchangeInfo: ex.fetch, logger });
    await universe.start();
    universe.on('joined', () => {
      throw new Error('listener bug');
    });
    const seen: unknown[] = [];
    universe.on('joined', (s) => seen.push(s));
    ex.symbols = [...SPOT, { symbol: 'SOLUSDT', status: 'TRADING' }];
    await universe.refresh();
    expect(seen).toEqual([['SOLUSDT']]);
    expect(universe.current()).toContain('SOLUSDT');
    expect(lines.some((l) => l.level === 50 && l.event === 'joined')).toBe(true);
    await universe.close();
  });

  it('stops refreshing and aborts a request in flight on close', async () => {
    let calls = 0;
    let inFlight: AbortSignal | undefined;
    const universe = new SymbolUniverse({
      market: 'SPOT',
      rule: rule(),
      refreshMs: 1,
      fetchExchangeInfo: (signal) => {
        calls += 1;
        if (calls === 1) return Promise.resolve({ symbols: SPOT });
        inFlight = signal;
        // The second read never answers until aborted.
        return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
      },
    });
    await universe.start();
    for (let i = 0; i < 500 && inFlight === undefined; i += 1) await new Promise((r) => setTimeout(r, 2));
    expect(inFlight?.aborted).toBe(false);
    await universe.close();
    expect(inFlight?.aborted).toBe(true);
    expect(calls).toBe(2);
    await expect(universe.refresh()).rejects.toBeInstanceOf(ClosedError);
    await expect(universe.start()).rejects.toBeInstanceOf(ClosedError);
    expect(universe.current()).toHaveLength(4);
  });

  it("stops refreshing when start's signal aborts", async () => {
    const ex = exchange(SPOT);
    const controller = new AbortController();
    const universe = new SymbolUniverse({ market: 'SPOT', rule: rule(), fetchExchangeInfo: ex.fetch, refreshMs: 1 });
    await universe.start(controller.signal);
    controller.abort();
    expect(ex.signals[0]?.aborted).toBe(true);
    await universe.close();
  });

  it('rejects start with an already-aborted signal without reading exchangeInfo', async () => {
    const ex = exchange(SPOT);
    const universe = new SymbolUniverse({ market: 'SPOT', rule: rule(), fetchExchangeInfo: ex.fetch });
    const error = await universe.start(AbortSignal.abort()).catch((e: unknown) => e);
    expect((error as CandleServerError).code).toBe('ABORTED');
    expect(ex.calls).toBe(0);
    await universe.close();
  });

  it('refuses a refresh period that is not a positive number', () => {
    expect(() => new SymbolUniverse({ market: 'SPOT', rule: rule(), fetchExchangeInfo: exchange(SPOT).fetch, refreshMs: 0 })).toThrow(
      ConfigError,
    );
  });
});
