import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { assertSymbol, isSymbol, symbolProblem } from '../../src/binance/symbols.js';

describe('symbol names', () => {
  it('accepts the shapes Binance uses on all three markets', () => {
    for (const symbol of ['BTCUSDT', '1000SHIBUSDT', 'BTCUSD_PERP', 'ETHUSDT_250926']) {
      expect(assertSymbol(symbol, 'symbol')).toBe(symbol);
      expect(isSymbol(symbol)).toBe(true);
    }
  });

  it.each(['../x', 'a/b', '..', 'BTC USDT', '', 'BTC\\USDT', 'BTC.USDT', 'BTC%2FUSDT', 'BTCUSDT\n'])(
    'refuses %j, which could escape a folder or break a request',
    (value) => {
      expect(isSymbol(value)).toBe(false);
      expect(() => assertSymbol(value, 'symbol')).toThrow(InvalidArgumentError);
    },
  );

  it('names the place and the value received in its message', () => {
    expect(() => assertSymbol('btc/usdt', 'SYMBOLS[2]')).toThrow('SYMBOLS[2] "btc/usdt" is not a Binance symbol (A-Z, 0-9, _)');
  });

  it('suggests the upper-case name for a lower-case symbol instead of changing it', () => {
    expect(() => assertSymbol('btcusdt', 'symbol')).toThrow(
      'symbol "btcusdt" is not a Binance symbol (A-Z, 0-9, _); did you mean "BTCUSDT"?',
    );
    expect(symbolProblem('b/c')).not.toContain('did you mean');
  });

  it('describes values that are not strings', () => {
    expect(symbolProblem(42)).toBe('a number is not a Binance symbol (A-Z, 0-9, _)');
    expect(symbolProblem(null)).toBe('null is not a Binance symbol (A-Z, 0-9, _)');
    expect(symbolProblem(['BTCUSDT'])).toBe('an array is not a Binance symbol (A-Z, 0-9, _)');
  });
});
