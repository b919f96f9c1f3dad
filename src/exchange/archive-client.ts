/**
 * Downloads Binance's daily kline archives (the data.binance.vision layout). They cost no request
 * weight, so back-fill takes every UTC day they cover from here and only the rest over REST.
 *
 * Each archive is checked against its `.CHECKSUM` companion before a row is read: a file that was
 * truncated or is being replaced is retried once, then reported as CorruptFileError so that the
 * caller falls back to REST for that day.
 *
 * @example
 * ```ts
 * const archives = new ArchiveClient({ market: 'UM' });
 * const rows = await archives.dailyKlines('BTCUSDT', '1m', '2024-01-24'); // undefined: not published
 * await archives.close();
 * ```
 */
import { Agent, request, type Dispatcher } from 'undici';
import { proxyDispatcher, redactProxyUrl } from './proxy.js';
import { AbortedError, ClosedError, CorruptFileError, ExchangeError, NetworkError, TimeoutError, type EndpointRef } from '../errors.js';
import { archiveFileName, archiveUrl, checksumUrl, readArchiveRows, verifyArchive } from '../binance/archives.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { backoffDelay, sleep } from '../util/abort.js';
import type { RawKline } from '../binance/kline.js';
import { DEFAULT_ARCHIVE_BASE_URL, type Interval, type MarketType } from '../binance/markets.js';

/** Options of {@link ArchiveClient}. */
export interface ArchiveClientOptions {
  readonly market: MarketType;
  /** Origin of the archives; defaults to data.binance.vision. */
  readonly baseUrl?: string;
  /** Time-out of one download, in ms (archives of 1m days are about 60 KB). */
  readonly timeoutMs?: number;
  /** Retries after the first try for 5xx, network errors, time-outs and checksum mismatches. */
  readonly retries?: number;
  readonly backoffBaseMs?: number;
  readonly logger?: Logger;
  /** An undici dispatcher to send through; the client then does not close it. */
  readonly dispatcher?: Dispatcher;
  /** A proxy every download goes through (see exchange/proxy.ts); ignored when `dispatcher` is given. */
  readonly proxy?: URL | undefined;
}

type Download = { readonly status: 'ok'; readonly body: Uint8Array } | { readonly status: 'absent' };

/** Client of the daily kline archives of one market. */
export class ArchiveClient {
  readonly market: MarketType;
  readonly baseUrl: string;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #backoffBaseMs: number;
  readonly #logger: Logger;
  readonly #dispatcher: Dispatcher;
  // The agent this client created, closed by close(); a dispatcher passed in belongs to the caller.
  readonly #agent: Dispatcher | undefined;
  // The proxy downloads go through, credentials hidden, for error messages.
  readonly #via: string | undefined;
  // Aborted by close(): cancels every download and back-off in progress.
  readonly #closing = new AbortController();
  #closed: Promise<void> | undefined;

  constructor(options: ArchiveClientOptions) {
    this.market = options.market;
    this.baseUrl = options.baseUrl ?? DEFAULT_ARCHIVE_BASE_URL;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#retries = options.retries ?? 2;
    this.#backoffBaseMs = options.backoffBaseMs ?? 500;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'archive-client', market: options.market });
    const proxy = options.dispatcher === undefined ? options.proxy : undefined;
    this.#via = proxy === undefined ? undefined : redactProxyUrl(proxy);
    if (options.dispatcher !== undefined) this.#agent = undefined;
    else this.#agent = proxy === undefined ? new Agent({ connections: 8 }) : proxyDispatcher(proxy, { connections: 8 });
    this.#dispatcher = options.dispatcher ?? (this.#agent as Dispatcher);
  }

  /**
   * The closed candles of one UTC day from its archive, or undefined when the archive is not
   * published (yet). Throws CorruptFileError when the archive keeps failing its checksum.
   */
  async dailyKlines(
    symbol: string,
    interval: Interval,
    utcDate: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<RawKline[] | undefined> {
    const name = archiveFileName(symbol, interval, utcDate);
    const zipUrl = archiveUrl(this.baseUrl, this.market, symbol, interval, utcDate);
    const sumUrl = checksumUrl(this.baseUrl, this.market, symbol, interval, utcDate);
    for (let attempt = 0; ; attempt += 1) {
      const checksum = await this.#download(sumUrl, options.signal);
      if (checksum.status === 'absent') return undefined;
      const zip = await this.#download(zipUrl, options.signal);
      if (zip.status === 'absent') return undefined;
      try {
        verifyArchive(zip.body, new TextDecoder().decode(checksum.body), name);
        return readArchiveRows(zip.body, name);
      } catch (error) {
        if (!(error instanceof CorruptFileError) || attempt >= this.#retries) throw error;
        this.#logger.warn({ err: error, symbol, utcDate, attempt }, 'archive failed verification; downloading again');
        await this.#backoff(attempt, options.signal, name);
      }
    }
  }

  /** Cancels downloads in progress and releases connections. Idempotent. */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closing.abort(new ClosedError(`${this.market} archive client`));
      this.#closed = this.#agent?.close() ?? Promise.resolve();
    }
    return this.#closed;
  }

  async #download(url: string, callerSignal: AbortSignal | undefined): Promise<Download> {
    const ref: EndpointRef = { market: this.market, endpoint: new URL(url).pathname };
    for (let attempt = 0; ; attempt += 1) {
      if (this.#closing.signal.aborted) throw new ClosedError(`${this.market} archive client`);
      const timeout = AbortSignal.timeout(this.#timeoutMs);
      const signals = [timeout, this.#closing.signal, ...(callerSignal === undefined ? [] : [callerSignal])];
      let failure: Error;
      try {
        const response = await request(url, { dispatcher: this.#dispatcher, signal: AbortSignal.any(signals) });
        if (response.statusCode === 200) return { status: 'ok', body: new Uint8Array(await response.body.arrayBuffer()) };
        await response.body.dump();
        // S3 answers 403 as well as 404 for keys that do not exist.
        if (response.statusCode === 404 || response.statusCode === 403) return { status: 'absent' };
        failure = new ExchangeError({ ...ref, status: response.statusCode });
        if (response.statusCode < 500) throw failure;
      } catch (error) {
        if (error instanceof ExchangeError) throw error;
        if (this.#closing.signal.aborted) throw new ClosedError(`${this.market} archive client`);
        if (callerSignal?.aborted) throw new AbortedError(`${ref.market} ${ref.endpoint} download`, { cause: error });
        failure = timeout.aborted
          ? new TimeoutError(ref, this.#timeoutMs, { cause: error })
          : new NetworkError(ref, { cause: error, via: this.#via });
      }
      if (attempt >= this.#retries) throw failure;
      this.#logger.warn({ err: failure, attempt }, 'archive download failed; retrying');
      await this.#backoff(attempt, callerSignal, ref.endpoint);
    }
  }

  async #backoff(attempt: number, callerSignal: AbortSignal | undefined, what: string): Promise<void> {
    const signal = callerSignal === undefined ? this.#closing.signal : AbortSignal.any([callerSignal, this.#closing.signal]);
    await sleep(backoffDelay(attempt, { baseMs: this.#backoffBaseMs }), signal, what);
  }
}
