/**
 * Chart analysis a bot can call too: aggregation of candles into longer periods, and indicators
 * (moving averages, Bollinger bands, RSI). The chart page uses these same functions.
 *
 * @example
 * ```ts
 * import { aggregate, COL, rsi } from 'candle-server';
 * const hourly = aggregate(server.getCandleSecurity('BTCUSDT'), '1m', '1h');
 * const strength = rsi(hourly.map((bar) => bar.close), 14);
 * ```
 */
export { aggregate, canAggregate, concatBars, type AggregateOptions, type AggregateSource, type Bar } from './aggregate.js';
export { bollinger, rsi, sma, type BollingerBands } from './indicators.js';
