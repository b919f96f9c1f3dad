/**
 * The remote reader: a publisher's rings read from NATS JetStream, served with the in-process
 * reading API (getCandleSecurity, status, symbols, on, close). The light surface a bot on another
 * host imports: it loads neither the server nor the exchange code, and the NATS client only when
 * it starts.
 *
 * @example
 * ```ts
 * import { connectRemote } from 'candle-server/remote';
 * const candles = await connectRemote({ servers: 'nats://10.0.0.5:4222', market: 'UM', bar: '1m' });
 * const view = candles.getCandleSecurity('BTCUSDT', 180);
 * if (!view.isEmpty) console.log(view.close(view.length - 1));
 * await candles.close();
 * ```
 */
export { RemoteCandleReader, connectRemote, type RemoteCandleReaderOptions, type RemoteCandleEvents } from './remote-reader.js';
export { ExchangeClockEstimate } from './exchange-clock.js';
export { RemoteSymbol, type RemoteApplyResult } from './remote-symbol.js';
export { CandleRing } from '../store/candle-ring.js';
export { CandleView, EMPTY_CANDLE_VIEW } from '../store/candle-view.js';
export { COL, KLINE_WIDTH } from '../binance/kline.js';
export type { SymbolStatus } from '../candle-server.js';
export type { Interval, MarketType } from '../binance/markets.js';
