/**
 * `candle-server sim`: the simulated Binance on loopback, for offline use and demos. Prints its
 * URLs as one JSON line and, with --write-config, writes one ready-to-use rule file per market
 * pointing at it, so `candle-server start --config DIR/spot.json` runs the whole service with no
 * network. Run it as its own process: it outlives the service's restarts and reloads, so the
 * written files stay valid even though the ports are chosen at random.
 *
 * @example
 * ```sh
 * candle-server sim --markets SPOT --write-config ./demo &
 * candle-server start --config ./demo/spot.json
 * ```
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from '../../errors.js';
import { MARKET_TYPES, isMarketType, type MarketType } from '../../binance/markets.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import type { CandleRuleInput } from '../../rule.js';
import { generateSymbols, SimulatedBinance, type OhlcvRow, type SimulatedBinanceOptions, type SimUrls } from '../../sim/index.js';
import { isSymbol } from '../../binance/symbols.js';
import {
  integerOption,
  listOption,
  parseOrHelp,
  stringOption,
  untilAborted,
  usageError,
  type CliContext,
  type CommandSpec,
} from '../args.js';

/** The `sim` command's options and help. */
export const simSpec: CommandSpec = {
  name: 'sim',
  summary:
    'Starts the simulated Binance exchange (REST, kline streams, daily archives) on loopback and prints its URLs as one JSON line. ' +
    'It runs until SIGTERM/SIGINT.',
  usage: 'sim [options]',
  options: {
    markets: { type: 'string', value: 'LIST', description: `markets to serve, comma-separated (default ${MARKET_TYPES.join(',')})` },
    symbols: { type: 'string', value: 'N', description: 'list N generated symbols per market (XAAAUSDT, ...)' },
    'symbol-list': { type: 'string', value: 'A,B', description: 'list exactly these symbols in every market' },
    seed: { type: 'string', value: 'N', description: 'seed of the synthetic prices (default 1)' },
    replay: { type: 'string', value: 'FILE', description: 'recorded 1m OHLCV rows (JSON) to play as one symbol' },
    'replay-symbol': { type: 'string', value: 'SYMBOL', description: 'the symbol --replay plays (default BTCUSDT), in the first market' },
    host: { type: 'string', value: 'HOST', description: 'interface to listen on (default 127.0.0.1)' },
    'port-file': { type: 'string', value: 'FILE', description: 'also write the URLs JSON to FILE' },
    'write-config': { type: 'string', value: 'DIR', description: 'write DIR/<market>.json rule files pointing at the simulator' },
    'http-port': { type: 'string', value: 'PORT', description: 'HTTP_PORT in the written rule files (default 0: any free port)' },
  },
  examples: [
    'candle-server sim --markets SPOT --write-config ./demo',
    'candle-server sim --markets SPOT --replay ../shared/data/real-1m-ohlcv-2017-11.json --replay-symbol BTCUSDT',
  ],
};

/** What `sim` prints (and writes to --port-file): the URLs of each market and the rule files written. */
export interface SimAnnouncement {
  readonly sim: Partial<Record<MarketType, SimUrls>>;
  readonly configs: Partial<Record<MarketType, string>>;
}

/**
 * Runs `sim` until the stop signal; resolves with the exit code.
 *
 * @example
 * ```ts
 * const code = await runSim(['--markets', 'SPOT', '--write-config', '/tmp/demo'], context);
 * ```
 */
export async function runSim(argv: readonly string[], context: CliContext): Promise<number> {
  const parsed = parseOrHelp(simSpec, argv, context);
  if (parsed === undefined) return 0;
  const { values } = parsed;
  const markets = parseMarkets(listOption(values, 'markets'));
  const count = integerOption(values, 'symbols', { min: 1, max: 20_000 });
  const list = listOption(values, 'symbol-list');
  if (count !== undefined && list !== undefined) throw usageError(simSpec, '--symbols and --symbol-list exclude each other; give one');
  for (const symbol of list ?? []) {
    if (!isSymbol(symbol)) throw usageError(simSpec, `--symbol-list: ${JSON.stringify(symbol)} is not a Binance symbol (A-Z, 0-9, _)`);
  }
  const seed = integerOption(values, 'seed', { min: 0 });
  const httpPort = integerOption(values, 'http-port', { min: 0, max: 65_535 }) ?? 0;
  const host = stringOption(values, 'host');
  const replayFile = stringOption(values, 'replay');
  const replaySymbol = stringOption(values, 'replay-symbol') ?? 'BTCUSDT';
  if (!isSymbol(replaySymbol))
    throw usageError(simSpec, `--replay-symbol: ${JSON.stringify(replaySymbol)} is not a Binance symbol (A-Z, 0-9, _)`);
  const firstMarket = markets[0] as MarketType;

  const symbols: Partial<Record<MarketType, string[]>> = {};
  for (const market of markets) {
    if (count !== undefined) symbols[market] = generateSymbols(market, count);
    else if (list !== undefined) symbols[market] = list;
  }
  const options: SimulatedBinanceOptions = {
    markets,
    symbols,
    ...(seed === undefined ? {} : { seed }),
    ...(host === undefined ? {} : { host }),
    ...(replayFile === undefined ? {} : { replay: [{ market: firstMarket, symbol: replaySymbol, rows: await readReplay(replayFile) }] }),
  };
  const sim = await SimulatedBinance.start(options);
  try {
    const announcement: SimAnnouncement = { sim: {}, configs: {} };
    const configDir = stringOption(values, 'write-config');
    for (const market of markets) {
      const urls = sim.urls(market);
      (announcement.sim as Record<MarketType, SimUrls>)[market] = urls;
      if (configDir !== undefined) {
        const file = resolve(configDir, `${market.toLowerCase()}.json`);
        const listed = sim.world.symbols(market).map((s) => s.symbol);
        await writeFileAtomic(file, `${JSON.stringify(simRule(market, urls, resolve(configDir), listed, httpPort), null, 2)}\n`);
        (announcement.configs as Record<MarketType, string>)[market] = file;
      }
    }
    const line = `${JSON.stringify(announcement)}\n`;
    const portFile = stringOption(values, 'port-file');
    if (portFile !== undefined) await writeFileAtomic(portFile, line);
    context.stdout.write(line);
    await untilAborted(context.stop);
  } finally {
    await sim.close();
  }
  return 0;
}

/**
 * A rule for the service against the simulator: its URLs, small LENGTH for a quick start, no
 * daily downloads (the demo has no past), snapshots every minute, folders under `dir`.
 */
function simRule(market: MarketType, urls: SimUrls, dir: string, symbols: readonly string[], httpPort: number): CandleRuleInput {
  return {
    MARKET: market,
    SYMBOLS: symbols.length > 0 && symbols.length <= 50 ? [...symbols] : 'all',
    BAR: '1m',
    LENGTH: 240,
    // Longer timeframes kept from the 1m streams: the chart reads them, and so does Binance's klines path.
    INTERVALS: ['5m', '15m', '1h'],
    TIMEZONE: 'UTC',
    LOCAL_CANDLE_DAYS: 0,
    DOWNLOAD_TIME: null,
    UPDATE_INTERVAL_SECONDS: 3,
    CACHE_DELAY_SECONDS: 60,
    CACHE_DIR: join(dir, 'cache', market.toLowerCase()),
    CANDLE_DIR: join(dir, 'candles'),
    REST_BASE_URL: urls.rest,
    WS_BASE_URL: urls.ws,
    ARCHIVE_BASE_URL: urls.archive,
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: httpPort,
    LOG_LEVEL: 'info',
  };
}

function parseMarkets(list: string[] | undefined): MarketType[] {
  if (list === undefined) return [...MARKET_TYPES];
  const markets: MarketType[] = [];
  for (const item of list) {
    if (!isMarketType(item))
      throw usageError(simSpec, `--markets: ${JSON.stringify(item)} is not a market; expected ${MARKET_TYPES.join(', ')}`);
    if (!markets.includes(item)) markets.push(item);
  }
  return markets;
}

async function readReplay(file: string): Promise<OhlcvRow[]> {
  let rows: unknown;
  try {
    rows = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new InvalidArgumentError(
      `--replay ${file}: expected a readable JSON file of [time, open, high, low, close, volume] rows (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  const isRows =
    Array.isArray(rows) &&
    rows.length > 0 &&
    rows.every((row) => Array.isArray(row) && row.length >= 6 && row.every((v) => typeof v === 'number'));
  if (!isRows)
    throw new InvalidArgumentError(
      `--replay ${file}: expected a non-empty JSON array of [time, open, high, low, close, volume] number rows`,
    );
  return rows as OhlcvRow[];
}
