/**
 * The simulated Binance exchange: a loopback market-data server (REST, archives, kline streams)
 * for tests, benchmarks and offline demos.
 *
 * @example
 * ```ts
 * import { SimulatedBinance, generateSymbols } from 'candle-server/sim';
 * const sim = await SimulatedBinance.start({ symbols: { UM: generateSymbols('UM', 500) } });
 * console.log(sim.urls('UM').rest);
 * await sim.close();
 * ```
 */
export {
  SimulatedBinance,
  type SimulatedBinanceOptions,
  type SimStreamOptions,
  type SimUrls,
  type SimAcceptedConnection,
} from './simulated-binance.js';
export {
  MarketWorld,
  DEFAULT_SYMBOLS,
  defaultFaults,
  generateSymbols,
  splitSymbol,
  type MarketWorldOptions,
  type SimReplay,
  type SimSymbolInit,
} from './world.js';
export { SimStats, WeightLedger, type WeightLedgerOptions, type WeightVerdict } from './weights.js';
export { ArchiveRoutes, archiveCsv, type ArchiveFile, type ArchiveRoutesOptions } from './archive.js';
export { RestRoutes, type RestRoutesOptions } from './rest.js';
export { ReplaySeries, type OhlcvRow, type SymbolProfile } from './market-data.js';
export { KlineStreamServer, type KlineStreamServerOptions, type KlineStreamStats } from './streams.js';
export type { SimFaults, SimSymbol, SimSymbolStatus, SimWorld } from './types.js';
