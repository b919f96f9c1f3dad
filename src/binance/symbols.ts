/**
 * Symbol names are validated once, here, before they reach a file path, a URL or a stream name.
 * A Binance symbol is upper-case letters, digits and `_` (SYMBOL_PATTERN), so anything that could
 * climb out of a folder (`..`, `a/b`, `..\x`) or break a query string is refused.
 *
 * Lower-case names are refused too, with a hint, rather than upper-cased silently: a daily file
 * named after `btcusdt` and one named after `BTCUSDT` must never both exist.
 *
 * @example
 * ```ts
 * assertSymbol('BTCUSDT', 'symbol');            // ok
 * assertSymbol('btc/usdt', 'SYMBOLS[2]');       // throws InvalidArgumentError:
 * // SYMBOLS[2] "btc/usdt" is not a Binance symbol (A-Z, 0-9, _)
 * ```
 */
import { InvalidArgumentError } from '../errors.js';
import { SYMBOL_PATTERN } from './markets.js';

/** What a valid symbol looks like, for error messages. */
export const SYMBOL_EXPECTED = 'a Binance symbol (A-Z, 0-9, _)';

/**
 * True when `value` is a well-formed Binance symbol name.
 *
 * @example
 * ```ts
 * isSymbol('BTCUSD_PERP'); // true
 * isSymbol('../x');        // false
 * ```
 */
export function isSymbol(value: unknown): value is string {
  return typeof value === 'string' && SYMBOL_PATTERN.test(value);
}

/**
 * Why `value` is not a symbol, as a sentence fragment naming the value, or undefined when it is
 * one. Shared by assertSymbol and the CandleRule schema so both say the same thing.
 *
 * @example
 * ```ts
 * symbolProblem('btcusdt'); // '"btcusdt" is not a Binance symbol (A-Z, 0-9, _); did you mean "BTCUSDT"?'
 * symbolProblem('ETHUSDT'); // undefined
 * ```
 */
export function symbolProblem(value: unknown): string | undefined {
  if (isSymbol(value)) return undefined;
  const shown = typeof value === 'string' ? JSON.stringify(value) : describeNonString(value);
  const base = `${shown} is not ${SYMBOL_EXPECTED}`;
  return base + upperCaseHint(value);
}

/**
 * Throws InvalidArgumentError unless `value` is a Binance symbol. `where` names the value in the
 * message (`SYMBOLS[2]`, `symbol`, `GET /candles?symbol`).
 *
 * @example
 * ```ts
 * const symbol = assertSymbol(request.query.symbol, 'query symbol');
 * const file = join(dayDir, `${symbol}.csv`); // safe: no separators, no dots
 * ```
 */
export function assertSymbol(value: unknown, where: string): string {
  const problem = symbolProblem(value);
  if (problem !== undefined) throw new InvalidArgumentError(`${where} ${problem}`);
  return value as string;
}

/**
 * The hint appended when upper-casing would make `value` valid, else ''.
 *
 * @example
 * ```ts
 * upperCaseHint('btcusdt'); // '; did you mean "BTCUSDT"?'
 * ```
 */
export function upperCaseHint(value: unknown): string {
  if (typeof value !== 'string') return '';
  const upper = value.toUpperCase();
  return upper !== value && SYMBOL_PATTERN.test(upper) ? `; did you mean ${JSON.stringify(upper)}?` : '';
}

function describeNonString(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
