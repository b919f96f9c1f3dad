/**
 * The exchange's clock as seen from here. A candle is final when its close time is before the
 * exchange's "now", and weight windows follow the exchange's minute, so anything that asks "what
 * time is it" for trading purposes asks this clock rather than the local one.
 *
 * @example
 * ```ts
 * const clock = new ServerClock({ fetchServerTime: (signal) => client.time({ signal }) });
 * await clock.sync();
 * clock.now(); // local time corrected by the measured offset
 * ```
 */
import { InvalidArgumentError } from '../errors.js';
import { throwIfAborted } from '../util/abort.js';

/** Options of {@link ServerClock}. */
export interface ServerClockOptions {
  /** Asks the exchange for its time (epoch ms), e.g. `GET /api/v3/time`. */
  readonly fetchServerTime: (signal?: AbortSignal) => Promise<number>;
  /** The local clock; tests pass a controlled one. */
  readonly localNow?: () => number;
}

/** One measurement of the offset between the exchange clock and the local clock. */
export interface ClockSample {
  readonly offsetMs: number;
  readonly rttMs: number;
}

/**
 * Measures and applies the offset between the exchange clock and the local clock.
 *
 * @example
 * ```ts
 * const clock = new ServerClock({ fetchServerTime: async () => Date.now() + 1500 });
 * await clock.sync();
 * Math.round(clock.offsetMs / 100); // 15
 * ```
 */
export class ServerClock {
  readonly #fetchServerTime: (signal?: AbortSignal) => Promise<number>;
  readonly #localNow: () => number;
  #offsetMs = 0;
  // The round trip of the sample behind the current offset: its half is the offset's uncertainty.
  #rttMs: number | undefined;

  constructor(options: ServerClockOptions) {
    this.#fetchServerTime = options.fetchServerTime;
    this.#localNow = options.localNow ?? Date.now;
  }

  /** Server time minus local time, in ms (0 until the first sync). */
  get offsetMs(): number {
    return this.#offsetMs;
  }

  /** Round-trip time of the sample the offset came from, or undefined before the first sync. */
  get rttMs(): number | undefined {
    return this.#rttMs;
  }

  /** The exchange's current time (epoch ms), as well as it is known. */
  now(): number {
    return this.#localNow() + this.#offsetMs;
  }

  /**
   * Takes `samples` measurements one after another and keeps the one with the shortest round
   * trip: a short round trip leaves the least room for the reply to have been stamped early or
   * late. Assumes the reply was stamped halfway through the round trip.
   */
  async sync(options: { signal?: AbortSignal; samples?: number } = {}): Promise<ClockSample> {
    const samples = options.samples ?? 3;
    if (!Number.isInteger(samples) || samples < 1) {
      throw new InvalidArgumentError(`samples must be a positive integer, got ${samples}`);
    }
    let best: ClockSample | undefined;
    for (let i = 0; i < samples; i += 1) {
      throwIfAborted(options.signal, 'server clock sync');
      const sentAt = this.#localNow();
      const serverTime = await this.#fetchServerTime(options.signal);
      const receivedAt = this.#localNow();
      const rttMs = receivedAt - sentAt;
      const sample = { offsetMs: Math.round(serverTime - (sentAt + receivedAt) / 2), rttMs };
      if (best === undefined || sample.rttMs < best.rttMs) best = sample;
    }
    // `samples >= 1` so a sample exists; the check satisfies the type system.
    if (best === undefined) throw new InvalidArgumentError('no clock sample taken');
    this.#offsetMs = best.offsetMs;
    this.#rttMs = best.rttMs;
    return best;
  }
}
