/**
 * `candle-server start`: the daemon. Loads the rule (file, CANDLE_SERVER_* environment,
 * --log-level), starts the CandleServer and, when HTTP_PORT is set, the HTTP API; tells PM2 it is
 * ready once the candle map is ready and the API listens; on the first stop request closes
 * gracefully (final snapshot) within --shutdown-timeout, on a second one stops at once.
 *
 * @example
 * ```sh
 * candle-server start --config config/spot.json
 * CANDLE_SERVER_HTTP_PORT=8080 candle-server start --config config/um.json --log-level debug
 * ```
 */
import { proxiesFromEnv } from '../../exchange/proxy.js';
import { CandleServer } from '../../candle-server.js';
import type { Logger } from '../../log.js';
import { loadCandleRule, type CandleRuleInput } from '../../rule.js';
import { binanceRoutes } from '../../service/binance-routes.js';
import { chartRoutes } from '../../service/chart-routes.js';
import { startHttpApi } from '../../service/http-api.js';
import { integerOption, parseOrHelp, stringOption, untilAborted, type CliContext, type CommandSpec } from '../args.js';
import { createCliLogger } from '../logger.js';

/** Default bound on a graceful stop, seconds; PM2's kill_timeout and systemd's TimeoutStopSec sit above it. */
export const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 20;

/** The `start` command's options and help. */
export const startSpec: CommandSpec = {
  name: 'start',
  summary:
    'Runs the candle server: keeps the last LENGTH candles of every symbol current, writes snapshots and daily files, ' +
    'and serves the HTTP API when HTTP_PORT is set. SIGTERM/SIGINT stop it gracefully; a second signal stops it at once.',
  usage: 'start [--config FILE] [options]',
  options: {
    config: {
      type: 'string',
      short: 'c',
      value: 'FILE',
      description: 'JSON rule file (default: $CANDLE_SERVER_CONFIG); CANDLE_SERVER_<FIELD> variables override it',
    },
    'log-level': { type: 'string', value: 'LEVEL', description: 'fatal, error, warn, info, debug, trace or silent (overrides LOG_LEVEL)' },
    'shutdown-timeout': {
      type: 'string',
      value: 'SECONDS',
      description: `longest graceful stop before giving up (default ${DEFAULT_SHUTDOWN_TIMEOUT_SECONDS})`,
    },
  },
  examples: ['candle-server start --config config/spot.json', 'CANDLE_SERVER_HTTP_PORT=8080 candle-server start --config config/um.json'],
};

/**
 * Runs `start`; resolves with the exit code (0 after a graceful stop, 1 when the start failed or
 * the stop overran its bound).
 *
 * @example
 * ```ts
 * const code = await runStart(['--config', 'config/spot.json'], context);
 * ```
 */
export async function runStart(argv: readonly string[], context: CliContext): Promise<number> {
  const parsed = parseOrHelp(startSpec, argv, context);
  if (parsed === undefined) return 0;
  const timeoutMs = (integerOption(parsed.values, 'shutdown-timeout', { min: 1, max: 3600 }) ?? DEFAULT_SHUTDOWN_TIMEOUT_SECONDS) * 1000;
  const file = stringOption(parsed.values, 'config');
  const logLevel = stringOption(parsed.values, 'log-level');
  const rule = await loadCandleRule({
    env: context.env,
    ...(file === undefined ? {} : { file }),
    // An unknown level is reported by the rule's validation, with the accepted ones.
    ...(logLevel === undefined ? {} : { rule: { LOG_LEVEL: logLevel as CandleRuleInput['LOG_LEVEL'] } }),
  });
  const logger = createCliLogger({ level: rule.LOG_LEVEL, stream: context.stdout });
  const log = logger.child({ component: 'cli' });
  // HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY apply when the rule names no PROXY.
  const proxies = proxiesFromEnv(context.env);
  const server = new CandleServer({ instType: rule.MARKET, rule, logger, ...(proxies === undefined ? {} : { proxies }) });
  let api: Awaited<ReturnType<typeof startHttpApi>> | undefined;

  const onForce = (): void => {
    log.warn('second stop signal: stopping at once, without a final snapshot');
    server.destroy();
    void api?.close();
  };
  context.force.addEventListener('abort', onForce, { once: true });
  try {
    return await serve();
  } finally {
    context.force.removeEventListener('abort', onForce);
  }

  async function serve(): Promise<number> {
    try {
      if (rule.HTTP_PORT !== null) {
        // Binance's own market-data paths first: other bots on the host read through them.
        const binance = binanceRoutes(server, { logger });
        api = await startHttpApi({
          server,
          host: rule.HTTP_HOST,
          port: rule.HTTP_PORT,
          logger,
          extraRoutes: [binance.route, ...chartRoutes(server, { logger })],
        });
        log.info(
          { url: api.url, port: api.port },
          `try ${api.url}/chart, ${api.url}/health, ${api.url}/metrics, ${api.url}/symbols, ${api.url}/candles/<SYMBOL>, and Binance's own ${api.url}${binance.prefix}/klines`,
        );
      }
      const started = server.runCandleMap();
      // A stop during the warm-up makes runCandleMap reject with ClosedError; that is not a failure.
      started.catch(() => undefined);
      await Promise.race([started, untilAborted(context.stop)]);
      if (!context.stop.aborted) {
        log.info({ market: rule.MARKET, symbols: server.symbols().length }, 'ready');
        context.notifyReady?.();
        await untilAborted(context.stop);
      }
    } catch (error) {
      if (context.force.aborted) return 1;
      log.fatal({ err: error }, `could not start: ${error instanceof Error ? error.message : String(error)}`);
      await closeWithin(log, timeoutMs, server, api);
      return 1;
    }
    if (context.force.aborted) return 1;
    log.info({ timeoutMs }, 'stopping: closing gracefully (a second signal stops at once)');
    return (await closeWithin(log, timeoutMs, server, api)) ? 0 : 1;
  }
}

/** Closes the API, then the server (final snapshot); destroys the server when that overruns. */
async function closeWithin(
  log: Logger,
  timeoutMs: number,
  server: CandleServer,
  api: { close(): Promise<void> } | undefined,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const closing = (async () => {
    await api?.close();
    await server.close();
    return true as const;
  })();
  try {
    const isClosed = await Promise.race([closing, overrun]);
    if (!isClosed) {
      log.error({ timeoutMs }, `did not close within ${timeoutMs} ms; stopping at once`);
      server.destroy();
    }
    return isClosed;
  } catch (error) {
    log.error({ err: error }, 'close failed; stopping at once');
    server.destroy();
    return false;
  } finally {
    clearTimeout(timer);
  }
}
