import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { DEFAULT_RULE, downloadTimeOf, loadCandleRule, parseCandleRule, resolveEndpoints, shardSpecOf } from '../../src/rule.js';

/** The error parseCandleRule throws for `input`, failing the test if it does not throw. */
function configErrorOf(input: unknown): ConfigError {
  try {
    parseCandleRule(input);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

async function loadErrorOf(options: Parameters<typeof loadCandleRule>[0]): Promise<ConfigError> {
  const error: unknown = await loadCandleRule(options).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error instanceof ConfigError) return error;
  throw new Error(`expected a ConfigError, got ${String(error)}`);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'candle-rule-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function ruleFile(name: string, content: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, content);
  return file;
}

describe('CandleRule defaults', () => {
  it("equal the original's table", () => {
    expect(DEFAULT_RULE).toMatchObject({
      SERVER_WEIGHT: 0.75,
      SYMBOLS: 'all',
      SYMBOLS_FILTER: [],
      SYMBOL_CONTAINS: '',
      SYMBOL_ENDSWITH: '',
      BAR: '1m',
      TIMEZONE: 'America/New_York',
      CANDLE_DIR: './candles',
      DOWNLOAD_TIME: '00:10:00',
      LENGTH: 2880,
      UPDATE_INTERVAL_SECONDS: 3,
      CACHE_DELAY_SECONDS: 3600,
      CACHE_DIR: './BINANCE_CACHE',
      LOCAL_CANDLE_DAYS: 2,
    });
  });

  it("add candle-server's own fields with safe defaults", () => {
    expect(DEFAULT_RULE).toMatchObject({ MARKET: 'SPOT', USE_ARCHIVES: true, UPDATE_MODE: 'websocket', LOG_LEVEL: 'info' });
    expect(DEFAULT_RULE.REST_BASE_URL).toBeUndefined();
    expect(resolveEndpoints(DEFAULT_RULE)).toEqual({
      rest: 'https://api.binance.com',
      ws: 'wss://stream.binance.com:9443',
      archive: 'https://data.binance.vision',
    });
  });

  it('are frozen, lists included', () => {
    const rule = parseCandleRule({ SYMBOLS: ['BTCUSDT'] });
    expect(Object.isFrozen(rule)).toBe(true);
    expect(Object.isFrozen(rule.SYMBOLS)).toBe(true);
    expect(Object.isFrozen(rule.SYMBOLS_FILTER)).toBe(true);
  });
});

describe('parseCandleRule', () => {
  it('keeps valid values and fills the rest with defaults', () => {
    const rule = parseCandleRule({
      MARKET: 'UM',
      BAR: '5m',
      SYMBOLS: ['BTCUSDT', 'ETHUSDT'],
      DOWNLOAD_TIME: null,
      CACHE_DELAY_SECONDS: null,
    });
    expect(rule).toMatchObject({
      MARKET: 'UM',
      BAR: '5m',
      SYMBOLS: ['BTCUSDT', 'ETHUSDT'],
      DOWNLOAD_TIME: null,
      CACHE_DELAY_SECONDS: null,
      LENGTH: 2880,
    });
  });

  it.each([
    ['BAR', '2m', 'expected one of 1s, 1m, 3m'],
    ['TIMEZONE', 'Mars/Base', 'IANA time zone'],
    ['TIMEZONE', '../etc', 'IANA time zone'],
    ['DOWNLOAD_TIME', '25:00', "'HH:MM' or 'HH:MM:SS'"],
    ['DOWNLOAD_TIME', '12:60', "'HH:MM' or 'HH:MM:SS'"],
    ['SERVER_WEIGHT', 1.5, 'greater than 0 and at most 1'],
    ['SERVER_WEIGHT', 0, 'greater than 0 and at most 1'],
    ['LENGTH', 0, 'integer from 1'],
    ['LENGTH', 10.5, 'integer from 1'],
    ['LENGTH', 10_000_000, 'integer from 1'],
    ['UPDATE_INTERVAL_SECONDS', 0, 'greater than 0'],
    ['CACHE_DELAY_SECONDS', -1, 'greater than 0, or null'],
    ['LOCAL_CANDLE_DAYS', -1, 'integer from 0'],
    ['SYMBOL_ENDSWITH', 'US/DT', "'' or upper-case symbol characters"],
    ['MARKET', 'FUTURES', 'expected one of SPOT, UM, CM'],
    ['REST_BASE_URL', 'ftp://example.test', 'http:// or https://'],
    ['WS_BASE_URL', 'http://127.0.0.1:1', 'ws:// or wss://'],
    ['UPDATE_MODE', 'poll', 'websocket, rest'],
    ['LOG_LEVEL', 'verbose', 'fatal, error'],
    ['USE_ARCHIVES', 'yes', 'true or false'],
  ])('rejects %s %j, naming the field and the value received', (field, value, expected) => {
    const error = configErrorOf({ [field]: value });
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]).toMatchObject({ path: field, received: value });
    expect(error.message).toContain(`${field}: `);
    expect(error.message).toContain(expected);
    expect(error.message).toContain(`(received ${JSON.stringify(value)})`);
  });

  it('refuses 1s outside SPOT, naming the market and the bar', () => {
    expect(parseCandleRule({ BAR: '1s' }).BAR).toBe('1s');
    const error = configErrorOf({ MARKET: 'CM', BAR: '1s' });
    expect(error.message).toContain('BAR: 1s is offered on SPOT only; expected one of 1m,');
    expect(error.message).toContain('on CM (received "1s")');
  });

  it('lists every problem at once', () => {
    const error = configErrorOf({ BAR: '2m', TIMEZONE: 'Mars/Base', DOWNLOAD_TIME: '25:00', SERVER_WEIGHT: 1.5, LENGTH: 0 });
    expect(error.issues.map((i) => i.path).sort()).toEqual(['BAR', 'DOWNLOAD_TIME', 'LENGTH', 'SERVER_WEIGHT', 'TIMEZONE']);
    for (const received of ['"2m"', '"Mars/Base"', '"25:00"', '1.5', '0']) expect(error.message).toContain(`(received ${received})`);
  });

  it.each(['../x', 'a/b', '..', 'BTC USDT', ''])('refuses the path-escaping symbol %j in SYMBOLS and SYMBOLS_FILTER', (bad) => {
    const error = configErrorOf({ SYMBOLS: ['BTCUSDT', bad], SYMBOLS_FILTER: [bad] });
    expect(error.issues).toEqual([
      { path: 'SYMBOLS[1]', received: bad, message: 'expected a Binance symbol (A-Z, 0-9, _)' },
      { path: 'SYMBOLS_FILTER[0]', received: bad, message: 'expected a Binance symbol (A-Z, 0-9, _)' },
    ]);
  });

  it('refuses lower-case symbols with a hint rather than changing them', () => {
    const error = configErrorOf({ SYMBOLS: ['btcusdt'], SYMBOL_CONTAINS: 'usd' });
    expect(error.message).toContain('SYMBOLS[0]: expected a Binance symbol (A-Z, 0-9, _); did you mean "BTCUSDT"? (received "btcusdt")');
    expect(error.message).toContain('SYMBOL_CONTAINS: expected \'\' or upper-case symbol characters (A-Z, 0-9, _); did you mean "USD"?');
  });

  it('refuses an empty list, a duplicate and anything but a list or all', () => {
    expect(configErrorOf({ SYMBOLS: [] }).issues[0]?.path).toBe('SYMBOLS');
    expect(configErrorOf({ SYMBOLS: ['BTCUSDT', 'BTCUSDT'] }).message).toContain(
      'SYMBOLS[1]: expected unique symbols; BTCUSDT is listed twice',
    );
    expect(configErrorOf({ SYMBOLS: 'BTCUSDT' }).issues[0]).toMatchObject({ path: 'SYMBOLS', received: 'BTCUSDT' });
  });

  it('rejects an unknown key by name and suggests the field meant', () => {
    const error = configErrorOf({ LENGHT: 100, bar: '1m', SOMETHING_ELSE: 1 });
    expect(error.issues.map((i) => i.path).sort()).toEqual(['LENGHT', 'SOMETHING_ELSE', 'bar']);
    expect(error.message).toContain('LENGHT: unknown setting; did you mean LENGTH? (received 100)');
    expect(error.message).toContain('bar: unknown setting; did you mean BAR?');
    expect(error.message).toContain('SOMETHING_ELSE: unknown setting (received 1)');
  });

  it('rejects input that is not an object', () => {
    expect(configErrorOf(['BTCUSDT']).issues[0]).toMatchObject({ path: '', received: ['BTCUSDT'] });
  });

  it('normalises URLs and time-zone case', () => {
    const rule = parseCandleRule({ MARKET: 'UM', REST_BASE_URL: 'http://127.0.0.1:8080/', TIMEZONE: 'europe/london' });
    expect(resolveEndpoints(rule)).toEqual({
      rest: 'http://127.0.0.1:8080',
      ws: 'wss://fstream.binance.com',
      archive: 'https://data.binance.vision',
    });
    expect(rule.TIMEZONE).toBe('Europe/London');
  });

  it('splits DOWNLOAD_TIME into numbers', () => {
    expect(downloadTimeOf(parseCandleRule({ DOWNLOAD_TIME: '23:59:59' }))).toEqual({ hours: 23, minutes: 59, seconds: 59 });
    expect(downloadTimeOf(parseCandleRule({ DOWNLOAD_TIME: '00:10' }))).toEqual({ hours: 0, minutes: 10, seconds: 0 });
    expect(downloadTimeOf(parseCandleRule({ DOWNLOAD_TIME: null }))).toBeUndefined();
  });
});

describe('loadCandleRule', () => {
  it.each(['spot', 'um', 'cm'])('parses the shipped config/%s.json', async (name) => {
    const rule = await loadCandleRule({ file: `config/${name}.json` });
    expect(rule.MARKET).toBe(name.toUpperCase());
    expect(rule.CACHE_DIR).toBe('./cache');
    expect(rule.CANDLE_DIR).toBe('./candles');
  });

  it('lets the environment override the file, and code override both', async () => {
    const file = await ruleFile('layers.json', JSON.stringify({ MARKET: 'UM', BAR: '1h', LENGTH: 100, SYMBOLS: ['BTCUSDT'] }));
    const env = {
      CANDLE_SERVER_BAR: '5m',
      CANDLE_SERVER_LENGTH: '200',
      CANDLE_SERVER_SYMBOLS: 'ETHUSDT, SOLUSDT',
      CANDLE_SERVER_DOWNLOAD_TIME: 'none',
      CANDLE_SERVER_CACHE_DELAY_SECONDS: 'null',
      CANDLE_SERVER_USE_ARCHIVES: 'false',
      CANDLE_SERVER_SYMBOLS_FILTER: '',
      UNRELATED: 'x',
    };
    const fromEnv = await loadCandleRule({ file, env });
    expect(fromEnv).toMatchObject({
      MARKET: 'UM',
      BAR: '5m',
      LENGTH: 200,
      SYMBOLS: ['ETHUSDT', 'SOLUSDT'],
      DOWNLOAD_TIME: null,
      CACHE_DELAY_SECONDS: null,
      USE_ARCHIVES: false,
      SYMBOLS_FILTER: [],
    });

    const fromCode = await loadCandleRule({ file, env, rule: { LENGTH: 300, SYMBOLS: 'all' } });
    expect(fromCode).toMatchObject({ BAR: '5m', LENGTH: 300, SYMBOLS: 'all' });
  });

  it('takes the file from CANDLE_SERVER_CONFIG when no file is given', async () => {
    const file = await ruleFile('from-env.json', JSON.stringify({ MARKET: 'CM' }));
    expect((await loadCandleRule({ env: { CANDLE_SERVER_CONFIG: file } })).MARKET).toBe('CM');
  });

  it('says which layer a bad value came from', async () => {
    const file = await ruleFile('bad.json', JSON.stringify({ LENGTH: 0 }));
    const error = await loadErrorOf({ file, env: { CANDLE_SERVER_BAR: '2m', CANDLE_SERVER_SERVER_WEIGHT: 'lots' } });
    expect(error.message).toContain(`LENGTH: expected an integer from 1 to 100000 [from ${file}] (received 0)`);
    expect(error.message).toContain('BAR: expected one of 1s, 1m');
    expect(error.message).toContain('[from CANDLE_SERVER_BAR] (received "2m")');
    expect(error.message).toContain(
      'SERVER_WEIGHT: expected a number greater than 0 and at most 1 [from CANDLE_SERVER_SERVER_WEIGHT] (received "lots")',
    );
  });

  it('rejects an unknown CANDLE_SERVER_ variable by name', async () => {
    const error = await loadErrorOf({ env: { CANDLE_SERVER_LENGHT: '10' } });
    expect(error.issues).toEqual([
      { path: 'CANDLE_SERVER_LENGHT', received: '10', message: 'unknown environment variable; did you mean LENGTH?' },
    ]);
  });

  it('names the file and the position of a JSON syntax error', async () => {
    const file = await ruleFile('broken.json', '{\n  "BAR": "1m",\n  "LENGTH": 10,\n}\n');
    const error = await loadErrorOf({ file });
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/line 4 column 1/);
  });

  it('names a missing file', async () => {
    const missing = join(dir, 'missing.json');
    const error = await loadErrorOf({ file: missing });
    expect(error.message).toContain(missing);
    expect(error.message).toContain('ENOENT');
  });

  it('refuses a file whose top level is not an object', async () => {
    const file = await ruleFile('list.json', '["BTCUSDT"]');
    expect((await loadErrorOf({ file })).message).toContain('expected a JSON object of CandleRule fields');
  });
});

describe('HTTP API settings', () => {
  it('default to no API, bound to loopback when turned on', () => {
    expect(DEFAULT_RULE.HTTP_HOST).toBe('127.0.0.1');
    expect(DEFAULT_RULE.HTTP_PORT).toBeNull();
    expect(parseCandleRule({ HTTP_PORT: 0 }).HTTP_PORT).toBe(0);
    expect(parseCandleRule({ HTTP_PORT: 8080, HTTP_HOST: '::1' })).toMatchObject({ HTTP_PORT: 8080, HTTP_HOST: '::1' });
    expect(parseCandleRule({ HTTP_HOST: 'localhost' }).HTTP_HOST).toBe('localhost');
  });

  it('refuse a port outside 0-65535 or not an integer, and a host with a scheme or port', () => {
    for (const port of [-1, 65_536, 80.5, '8080']) {
      expect(configErrorOf({ HTTP_PORT: port }).issues[0]?.message).toBe(
        'expected an integer port from 0 (any free port) to 65535, or null (no HTTP API)',
      );
    }
    for (const host of ['http://localhost', '127.0.0.1:8080', '', 'a b']) {
      expect(configErrorOf({ HTTP_HOST: host }).issues[0]?.path).toBe('HTTP_HOST');
    }
  });

  it('are read from CANDLE_SERVER_HTTP_PORT and CANDLE_SERVER_HTTP_HOST', async () => {
    const rule = await loadCandleRule({ env: { CANDLE_SERVER_HTTP_PORT: '9100', CANDLE_SERVER_HTTP_HOST: '0.0.0.0' } });
    expect(rule).toMatchObject({ HTTP_PORT: 9100, HTTP_HOST: '0.0.0.0' });
    expect((await loadCandleRule({ env: { CANDLE_SERVER_HTTP_PORT: 'none' } })).HTTP_PORT).toBeNull();
  });
});

describe('SHARD', () => {
  it('defaults to null (no sharding) and reads k/N as numbers, leading zeros dropped', () => {
    expect(DEFAULT_RULE.SHARD).toBeNull();
    expect(shardSpecOf(DEFAULT_RULE)).toBeUndefined();
    expect(parseCandleRule({ SHARD: '2/4' }).SHARD).toBe('2/4');
    expect(parseCandleRule({ SHARD: '02/04' }).SHARD).toBe('2/4');
    expect(shardSpecOf(parseCandleRule({ SHARD: '1/1024' }))).toEqual({ index: 1, count: 1024 });
    expect(shardSpecOf(parseCandleRule({ SHARD: '1/1' }))).toEqual({ index: 1, count: 1 });
  });

  it('refuses k outside 1..N, N outside 1..1024 and anything but k/N, naming the value and what is expected', () => {
    const expected = "expected null (no sharding) or 'k/N' with integers 1 <= k <= N <= 1024, e.g. '2/4' (the second of four)";
    const cases: Array<[unknown, string]> = [
      ['5/4', `k is 5, outside 1..4; ${expected}`],
      ['0/4', `k is 0, outside 1..4; ${expected}`],
      ['1/1025', `N is 1025, outside 1..1024; ${expected}`],
      ['0/0', `N is 0, outside 1..1024; ${expected}`],
      ['1.5/4', `not of the form k/N; ${expected}`],
      ['-1/4', `not of the form k/N; ${expected}`],
      ['2 / 4', `not of the form k/N; ${expected}`],
      ['', `not of the form k/N; ${expected}`],
      [2, expected],
    ];
    for (const [value, message] of cases) {
      expect(configErrorOf({ SHARD: value }).issues).toEqual([{ path: 'SHARD', received: value, message }]);
    }
  });

  it('is read from CANDLE_SERVER_SHARD, none turning it off, and a bad value names the variable', async () => {
    expect((await loadCandleRule({ env: { CANDLE_SERVER_SHARD: '2/4' } })).SHARD).toBe('2/4');
    expect((await loadCandleRule({ env: { CANDLE_SERVER_SHARD: 'none' } })).SHARD).toBeNull();
    const error = await loadErrorOf({ env: { CANDLE_SERVER_SHARD: '9/4' } });
    expect(error.issues[0]).toMatchObject({ path: 'SHARD', received: '9/4' });
    expect(error.issues[0]?.message).toMatch(/^k is 9, outside 1\.\.4; .* \[from CANDLE_SERVER_SHARD\]$/);
  });
});

describe('INTERVALS (derived timeframes)', () => {
  it('default to none, are sorted shortest first and frozen', () => {
    expect(DEFAULT_RULE.INTERVALS).toEqual([]);
    const rule = parseCandleRule({ BAR: '1m', INTERVALS: ['1M', '1h', '5m', '1w', '1d'] });
    expect(rule.INTERVALS).toEqual(['5m', '1h', '1d', '1w', '1M']);
    expect(Object.isFrozen(rule.INTERVALS)).toBe(true);
    expect(parseCandleRule({ MARKET: 'UM', BAR: '3m', INTERVALS: ['15m', '1h', '1w'] }).INTERVALS).toEqual(['15m', '1h', '1w']);
  });

  it('refuse an interval not longer than BAR, not made of whole BAR candles, listed twice or not offered on the market', () => {
    const error = configErrorOf({ MARKET: 'UM', BAR: '3m', INTERVALS: ['1m', '3m', '5m', '1h', '1h'] });
    expect(error.issues.map((issue) => [issue.path, issue.received])).toEqual([
      ['INTERVALS[0]', '1m'],
      ['INTERVALS[1]', '3m'],
      ['INTERVALS[2]', '5m'],
      ['INTERVALS[4]', '1h'],
    ]);
    expect(error.issues[2]?.message).toMatch(/longer than BAR \(3m\) made of whole 3m candles, e\.g\. 15m, 30m, 1h/);
    expect(error.issues[3]?.message).toBe('1h is listed twice; expected each interval once');
    expect(configErrorOf({ MARKET: 'CM', INTERVALS: ['1s'] }).issues[0]?.message).toMatch(
      /^1s is not offered on CM; expected one of 1m, 3m/,
    );
    expect(configErrorOf({ BAR: '3d', INTERVALS: ['1w'] }).issues[0]?.message).toMatch(/made of whole 3d candles, e\.g\. none/);
    expect(configErrorOf({ INTERVALS: ['2m'] }).issues[0]).toMatchObject({ path: 'INTERVALS[0]', received: '2m' });
  });

  it('are read from CANDLE_SERVER_INTERVALS, with FORWARD_KLINES from CANDLE_SERVER_FORWARD_KLINES', async () => {
    const rule = await loadCandleRule({ env: { CANDLE_SERVER_INTERVALS: '1h, 5m', CANDLE_SERVER_FORWARD_KLINES: 'false' } });
    expect(rule).toMatchObject({ INTERVALS: ['5m', '1h'], FORWARD_KLINES: false });
    expect(DEFAULT_RULE.FORWARD_KLINES).toBe(true);
  });
});

describe('NATS publishing settings', () => {
  it('default to off, with the prefix candles', () => {
    expect(DEFAULT_RULE.NATS_URL).toBeNull();
    expect(DEFAULT_RULE.NATS_SUBJECT_PREFIX).toBe('candles');
  });

  it('are read from CANDLE_SERVER_NATS_URL (none turns it off) and CANDLE_SERVER_NATS_SUBJECT_PREFIX', async () => {
    const rule = await loadCandleRule({
      env: { CANDLE_SERVER_NATS_URL: 'nats://127.0.0.1:4222,nats://127.0.0.1:4223', CANDLE_SERVER_NATS_SUBJECT_PREFIX: 'desk-1.candles' },
    });
    expect(rule).toMatchObject({ NATS_URL: 'nats://127.0.0.1:4222,nats://127.0.0.1:4223', NATS_SUBJECT_PREFIX: 'desk-1.candles' });
    expect((await loadCandleRule({ env: { CANDLE_SERVER_NATS_URL: 'none' } })).NATS_URL).toBeNull();
  });

  it('name the variable a bad value came from, without echoing a password', async () => {
    const error = await loadErrorOf({ env: { CANDLE_SERVER_NATS_URL: 'redis://user:hunter2@127.0.0.1:6379' } });
    expect(error.issues[0]?.path).toBe('NATS_URL');
    expect(error.issues[0]?.message).toContain('CANDLE_SERVER_NATS_URL');
    expect(error.message).not.toContain('hunter2');
  });
});
