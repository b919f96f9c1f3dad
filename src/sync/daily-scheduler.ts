/**
 * The daily candle files of a running service: the last LOCAL_CANDLE_DAYS full local days
 * back-filled at start-up, and yesterday's file written every day at DOWNLOAD_TIME in TIMEZONE
 * (a cron job; a null DOWNLOAD_TIME turns it off). Files hold final candle values only: a day is
 * fetched once all of its candles have closed on the exchange, waiting for that if DOWNLOAD_TIME
 * comes first (a 1d bar in New York closes at 19:00 local on the next day).
 *
 * @example
 * ```ts
 * const files = new DailyScheduler({ connection, symbols: () => universe.current(), logger });
 * await files.backfillRecent(signal);
 * files.startSchedule();
 * await files.close();
 * ```
 */
import { CronJob } from 'cron';
import { ClosedError } from '../errors.js';
import { closeTimeOf } from '../binance/intervals.js';
import { expectedOpenTimes, lastFullLocalDays } from '../files/daily-layout.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { downloadTimeOf } from '../rule.js';
import { sleep } from '../util/abort.js';
import { DailyBackfill, type BackfillProgress, type DaySummary } from './daily-backfill.js';
import type { MarketConnection } from './market-connection.js';

/** Options of {@link DailyScheduler}. */
export interface DailySchedulerOptions {
  readonly connection: MarketConnection;
  /** The symbols to keep files for; read at each run, so universe changes are followed. */
  readonly symbols: () => readonly string[];
  readonly onProgress?: (progress: BackfillProgress) => void;
  readonly logger?: Logger;
}

// Margin after a day's last close before asking for it, so the exchange has settled the candle.
const SETTLE_MS = 2_000;

/** Back-fill at start and the daily download of yesterday. */
export class DailyScheduler {
  readonly backfill: DailyBackfill;
  readonly #connection: MarketConnection;
  readonly #symbols: () => readonly string[];
  readonly #logger: Logger;
  // Aborted by close(): stops a run in progress and the wait for a day to end.
  readonly #closing = new AbortController();
  #job: CronJob | undefined;
  // The scheduled run in progress, awaited by close().
  #running: Promise<void> | undefined;

  constructor(options: DailySchedulerOptions) {
    const { rule } = options.connection;
    this.#connection = options.connection;
    this.#symbols = options.symbols;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'daily-files', market: rule.MARKET });
    this.backfill = new DailyBackfill({
      market: rule.MARKET,
      bar: rule.BAR,
      timezone: rule.TIMEZONE,
      candleDir: rule.CANDLE_DIR,
      rest: options.connection.rest,
      archives: options.connection.archives,
      now: () => options.connection.clock.now(),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      logger: options.logger ?? silentLogger(),
    });
  }

  /** Makes sure the last LOCAL_CANDLE_DAYS full local days are on disk. */
  async backfillRecent(signal?: AbortSignal): Promise<DaySummary[]> {
    const { TIMEZONE, LOCAL_CANDLE_DAYS } = this.#connection.rule;
    const days = lastFullLocalDays(this.#connection.clock.now(), TIMEZONE, LOCAL_CANDLE_DAYS);
    return this.backfill.run(days, this.#symbols(), this.#signal(signal));
  }

  /**
   * Writes yesterday's files (local day in TIMEZONE), first waiting until its last candle has
   * closed on the exchange.
   */
  async runYesterday(signal?: AbortSignal): Promise<DaySummary[]> {
    const { TIMEZONE, BAR } = this.#connection.rule;
    const combined = this.#signal(signal);
    const [day] = lastFullLocalDays(this.#connection.clock.now(), TIMEZONE, 1);
    if (day === undefined) return [];
    const last = expectedOpenTimes(day, TIMEZONE, BAR).at(-1);
    if (last !== undefined) {
      const waitMs = closeTimeOf(BAR, last) + SETTLE_MS - this.#connection.clock.now();
      if (waitMs > 0) {
        this.#logger.info({ day, waitMs }, `waiting for the last ${BAR} candle of ${day} to close`);
        await sleep(waitMs, combined, 'daily download');
      }
    }
    return this.backfill.run([day], this.#symbols(), combined);
  }

  /**
   * Starts the daily download at DOWNLOAD_TIME in TIMEZONE; does nothing when DOWNLOAD_TIME is
   * null. Idempotent. A run still going when the next one is due is not doubled.
   */
  startSchedule(): void {
    if (this.#job !== undefined || this.#closing.signal.aborted) return;
    const time = downloadTimeOf(this.#connection.rule);
    if (time === undefined) {
      this.#logger.info('DOWNLOAD_TIME is null: no daily download');
      return;
    }
    this.#job = CronJob.from({
      cronTime: `${time.seconds} ${time.minutes} ${time.hours} * * *`,
      timeZone: this.#connection.rule.TIMEZONE,
      start: true,
      onTick: () => {
        if (this.#running !== undefined) {
          this.#logger.warn('previous daily download still running; skipping this one');
          return;
        }
        this.#running = this.runYesterday()
          .then(() => undefined)
          .catch((error: unknown) => {
            if (!this.#closing.signal.aborted) this.#logger.error({ err: error }, 'daily download failed');
          })
          .finally(() => {
            this.#running = undefined;
          });
      },
    });
    this.#logger.info({ next: this.nextScheduledRun()?.toISOString() }, 'daily download scheduled');
  }

  /** When the next daily download starts, or undefined when none is scheduled. */
  nextScheduledRun(): Date | undefined {
    return this.#job?.nextDate().toJSDate();
  }

  /** Stops the schedule and any run in progress. Idempotent. */
  async close(): Promise<void> {
    this.#closing.abort(new ClosedError('daily scheduler'));
    await this.#job?.stop();
    this.#job = undefined;
    await this.#running;
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal === undefined ? this.#closing.signal : AbortSignal.any([signal, this.#closing.signal]);
  }
}
