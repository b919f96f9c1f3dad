import { describe, expect, it } from 'vitest';
import { CandleServer } from '../../src/candle-server.js';
import { ConfigError, InvalidArgumentError, NetworkError } from '../../src/errors.js';
import { isNoProxy, parseProxyUrl, proxiesFromEnv, proxyFor, redactProxyUrl } from '../../src/exchange/proxy.js';
import { parseCandleRule, resolveEndpoints } from '../../src/rule.js';

describe('proxy URLs', () => {
  it('accepts http, https and socks5 proxies with or without credentials', () => {
    expect(parseProxyUrl('http://127.0.0.1:7890', 'PROXY').host).toBe('127.0.0.1:7890');
    expect(parseProxyUrl('socks5://me:secret@127.0.0.1:1080', 'PROXY').username).toBe('me');
    expect(parseProxyUrl('https://proxy.example:443/', 'PROXY').protocol).toBe('https:');
  });

  it('refuses other schemes and paths, naming the proxy without its password', () => {
    expect(() => parseProxyUrl('ftp://me:secret@host:21', 'PROXY')).toThrow(InvalidArgumentError);
    expect(() => parseProxyUrl('ftp://me:secret@host:2121', 'PROXY')).toThrow(/ftp:\/\/\*\*\*@host:2121/);
    expect(() => parseProxyUrl('ftp://me:secret@host:21', 'PROXY')).not.toThrow(/secret/);
    expect(() => parseProxyUrl('http://host:8080/path', 'PROXY')).toThrow(/nothing after the port/);
    expect(() => parseProxyUrl('me:secret@host', 'PROXY')).not.toThrow(/secret/);
  });

  it('shows credentials as ***', () => {
    expect(redactProxyUrl('http://me:secret@127.0.0.1:7890')).toBe('http://***@127.0.0.1:7890');
    expect(redactProxyUrl('socks5://127.0.0.1:1080')).toBe('socks5://127.0.0.1:1080');
  });
});

describe('choosing the proxy of a connection', () => {
  const proxies = { http: 'http://127.0.0.1:1', https: 'http://127.0.0.1:2', no_proxy: 'localhost,.internal.example' };

  it('takes the http proxy for http and ws targets, the https one for https and wss', () => {
    expect(proxyFor('http://sim:9000', proxies)?.port).toBe('1');
    expect(proxyFor('ws://sim:9000/stream', proxies)?.port).toBe('1');
    expect(proxyFor('https://api.binance.com', proxies)?.port).toBe('2');
    expect(proxyFor('wss://stream.binance.com:9443', proxies)?.port).toBe('2');
  });

  it('falls back on all, and goes direct with no proxy or for NO_PROXY hosts', () => {
    expect(proxyFor('https://api.binance.com', { all: 'socks5://127.0.0.1:3' })?.protocol).toBe('socks5:');
    expect(proxyFor('https://api.binance.com', undefined)).toBeUndefined();
    expect(proxyFor('http://localhost:9000', proxies)).toBeUndefined();
    expect(proxyFor('https://data.internal.example', proxies)).toBeUndefined();
  });

  it('matches NO_PROXY as curl does: *, host, .suffix, *.suffix, host:port', () => {
    const target = new URL('https://fapi.binance.com');
    expect(isNoProxy(target, '*')).toBe(true);
    expect(isNoProxy(target, 'fapi.binance.com')).toBe(true);
    expect(isNoProxy(target, 'binance.com')).toBe(true);
    expect(isNoProxy(target, '.binance.com')).toBe(true);
    expect(isNoProxy(target, '*.binance.com')).toBe(true);
    expect(isNoProxy(target, 'binance.com:443')).toBe(true);
    expect(isNoProxy(target, 'binance.com:80')).toBe(false);
    expect(isNoProxy(target, 'notbinance.com, example.org')).toBe(false);
    expect(isNoProxy(target, '')).toBe(false);
  });

  it('reads the environment as curl does, lower case first', () => {
    expect(proxiesFromEnv({})).toBeUndefined();
    expect(proxiesFromEnv({ HTTPS_PROXY: 'http://a:1', https_proxy: 'http://b:2', NO_PROXY: 'localhost' })).toEqual({
      http: undefined,
      https: 'http://b:2',
      all: undefined,
      no_proxy: 'localhost',
    });
    expect(proxiesFromEnv({ ALL_PROXY: 'socks5://c:3' })?.all).toBe('socks5://c:3');
  });
});

describe('proxy settings of the rule and the server', () => {
  it('validates PROXY and never echoes its password', () => {
    expect(parseCandleRule({ PROXY: 'socks5://me:secret@127.0.0.1:1080' }).PROXY).toBe('socks5://me:secret@127.0.0.1:1080');
    expect(parseCandleRule({}).PROXY).toBeNull();
    let error: unknown;
    try {
      parseCandleRule({ PROXY: 'ftp://me:secret@127.0.0.1:21' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as Error).message)).toMatch(/PROXY/);
    expect(JSON.stringify(error) + String((error as Error).message)).not.toMatch(/secret/);
  });

  it('refuses malformed proxies and proxyHost options of the server, without credentials', () => {
    expect(() => new CandleServer({ instType: 'SPOT', proxies: { https: 'gopher://me:secret@x:1' } })).toThrow(ConfigError);
    expect(() => new CandleServer({ instType: 'SPOT', proxies: { https: 'gopher://me:secret@x:1' } })).not.toThrow(/secret/);
    expect(() => new CandleServer({ instType: 'SPOT', proxyHost: 'ftp://fwd' })).toThrow(/proxyHost/);
  });

  it('puts a forwarding server in front of every market, REST paths as they are, streams under /ws-<market>', () => {
    expect(resolveEndpoints(parseCandleRule({ MARKET: 'UM' }), 'https://fwd.example/')).toEqual({
      rest: 'https://fwd.example',
      ws: 'wss://fwd.example/ws-um',
      archive: 'https://data.binance.vision',
    });
    expect(resolveEndpoints(parseCandleRule({ MARKET: 'SPOT' }), 'http://127.0.0.1:8080').ws).toBe('ws://127.0.0.1:8080/ws-spot');
    // An explicit endpoint still wins.
    expect(resolveEndpoints(parseCandleRule({ MARKET: 'CM', REST_BASE_URL: 'http://mirror:1' }), 'https://fwd.example').rest).toBe(
      'http://mirror:1',
    );
  });

  it('network errors name the proxy without its credentials, whatever the cause says', () => {
    const error = new NetworkError(
      { market: 'SPOT', endpoint: '/api/v3/time' },
      { cause: new Error('connect to http://me:secret@127.0.0.1:9 refused'), via: redactProxyUrl('http://me:secret@127.0.0.1:9') },
    );
    expect(error.message).toContain('through the proxy http://***@127.0.0.1:9');
    expect(error.message).not.toContain('secret');
  });
});
