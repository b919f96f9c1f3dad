/**
 * Pacing of the messages a client sends on one kline stream connection. Binance closes a
 * connection that sends more than its limit per second, counting pongs as well as SUBSCRIBE and
 * UNSUBSCRIBE; pongs cannot wait, so the pacer keeps two messages of the limit free for them (a
 * pong can follow a burst of controls within the same second) and measures its window a little
 * longer than a second.
 *
 * ```
 * sent:  ring of the times of the last `capacity` messages (controls and pongs)
 *        a new control may go when the oldest of them left the window
 * ```
 *
 * @example
 * ```ts
 * const pacer = new MessagePacer(5); // spot: 5 messages per second
 * if (pacer.delayMs(performance.now()) === 0) { ws.send(msg); pacer.record(performance.now()); }
 * ```
 */

// Extra length of the pacing window over Binance's second: covers clock and network jitter.
const WINDOW_MARGIN_MS = 150;
// Messages of the limit left to pongs, which go out whenever the server pings.
const PONG_RESERVE = 2;

/**
 * A sliding-window pacer for one connection's outgoing messages.
 *
 * @example
 * ```ts
 * const pacer = new MessagePacer(10);
 * pacer.record(0);
 * pacer.delayMs(10); // 0 while fewer than 8 messages went out in the window
 * ```
 */
export class MessagePacer {
  /** Times of the last `capacity` messages, oldest at `#next`. */
  readonly #sent: Float64Array;
  #next = 0;
  readonly #windowMs: number;

  /** `limitPerSecond` is the server's limit; two of it stay free for pongs. */
  constructor(limitPerSecond: number) {
    this.#sent = new Float64Array(Math.max(1, Math.floor(limitPerSecond) - PONG_RESERVE)).fill(-Infinity);
    this.#windowMs = 1000 + WINDOW_MARGIN_MS;
  }

  /** Milliseconds to wait before the next control message may go (0: now). */
  delayMs(now: number): number {
    const oldest = this.#sent[this.#next] ?? -Infinity;
    return Math.max(0, Math.ceil(oldest + this.#windowMs - now));
  }

  /** Records a message sent at `now` (a control message or a pong). */
  record(now: number): void {
    this.#sent[this.#next] = now;
    this.#next = (this.#next + 1) % this.#sent.length;
  }
}
