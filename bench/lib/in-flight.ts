/**
 * Requests in flight over time: the most at once, the time-weighted mean between the first start
 * and the last end, and the mean duration. Used on both sides of a cold start: in the simulator
 * process (`sim-process.ts`, per REST request it handles) and in the benchmark's process
 * (`countUndiciRequests`, per request the REST client's undici pool has been given, queued for a
 * connection or sent), without touching the library.
 *
 * @example
 * ```ts
 * const counter = new InFlightCounter();
 * const end = counter.enter(req.socket);
 * // ... reply ...
 * end();
 * counter.summary().maxInFlight;
 * ```
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';

/** Requests in flight as one side saw them. */
export interface InFlightSummary {
  /** Requests that started. */
  readonly arrived: number;
  /** Most requests in flight at once. */
  readonly maxInFlight: number;
  /** Mean requests in flight between the first start and the last end (time-weighted). */
  readonly meanInFlight: number;
  /** Distinct connections (sockets) the requests came on, when known. */
  readonly sockets: number;
  /** Epoch ms of the first start and the last end (undefined before any request). */
  readonly firstArrivalAt: number | undefined;
  readonly lastReplyAt: number | undefined;
  /** Mean time from start to end, ms. */
  readonly meanReplyMs: number;
}

/** Counts requests in flight; `enter` at the start, the returned function at the end (idempotent). */
export class InFlightCounter {
  #inFlight = 0;
  #max = 0;
  #arrived = 0;
  // Integral of in-flight over time (request-ms) and the time of the last change.
  #area = 0;
  #changedAt = performance.now();
  #first: number | undefined;
  #last: number | undefined;
  #replyMsSum = 0;
  #replies = 0;
  #sockets = new WeakSet<object>();
  #socketCount = 0;

  enter(socket?: object): () => void {
    const start = performance.now();
    this.#advance(start);
    this.#first ??= Date.now();
    this.#arrived += 1;
    this.#inFlight += 1;
    if (this.#inFlight > this.#max) this.#max = this.#inFlight;
    if (socket !== undefined && !this.#sockets.has(socket)) {
      this.#sockets.add(socket);
      this.#socketCount += 1;
    }
    let isDone = false;
    return () => {
      if (isDone) return;
      isDone = true;
      const end = performance.now();
      this.#advance(end);
      this.#inFlight -= 1;
      this.#replyMsSum += end - start;
      this.#replies += 1;
      this.#last = Date.now();
    };
  }

  #advance(now: number): void {
    if (this.#inFlight > 0) this.#area += this.#inFlight * (now - this.#changedAt);
    this.#changedAt = now;
  }

  /** Forgets the history; requests in flight now stay counted as in flight. */
  reset(): void {
    this.#max = this.#inFlight;
    this.#arrived = 0;
    this.#area = 0;
    this.#changedAt = performance.now();
    this.#first = undefined;
    this.#last = undefined;
    this.#replyMsSum = 0;
    this.#replies = 0;
    this.#sockets = new WeakSet();
    this.#socketCount = 0;
  }

  summary(): InFlightSummary {
    const span = this.#first === undefined || this.#last === undefined ? 0 : this.#last - this.#first;
    return {
      arrived: this.#arrived,
      maxInFlight: this.#max,
      meanInFlight: span > 0 ? this.#area / span : 0,
      sockets: this.#socketCount,
      firstArrivalAt: this.#first,
      lastReplyAt: this.#last,
      meanReplyMs: this.#replies === 0 ? 0 : this.#replyMsSum / this.#replies,
    };
  }
}

/**
 * Counts the requests of every undici client in this process, from the moment a request is
 * created (handed to a pool, possibly waiting there for a connection) to its complete response or
 * its error, through undici's diagnostics channels. `stop()` unsubscribes.
 */
export function countUndiciRequests(): { readonly counter: InFlightCounter; stop(): void } {
  const counter = new InFlightCounter();
  const ends = new WeakMap<object, () => void>();
  const onCreate = (message: unknown) => {
    const { request } = message as { request: object };
    ends.set(request, counter.enter());
  };
  const onEnd = (message: unknown) => {
    const { request } = message as { request: object };
    ends.get(request)?.();
    ends.delete(request);
  };
  subscribe('undici:request:create', onCreate);
  subscribe('undici:request:trailers', onEnd);
  subscribe('undici:request:error', onEnd);
  return {
    counter,
    stop() {
      unsubscribe('undici:request:create', onCreate);
      unsubscribe('undici:request:trailers', onEnd);
      unsubscribe('undici:request:error', onEnd);
    },
  };
}
