/**
 * Per-message timing of the live path inside the benchmark's process, without touching the
 * library: the `emit` of sockets and of `ws` WebSockets is wrapped so that every kline frame is
 * timed from the arrival of the socket chunk that carried it to the end of its 'message' handler
 * (decode + `CandleSync.onKline` + ring write), and its exchange event time `E` is read from the
 * frame text.
 *
 * ```
 *   simulator process          │ benchmark process
 *   E stamped ── send ── kernel ── socket 'data' ── ws framing ── 'message' handler ── ring
 *                                  │◀──────────── added ─────────────────────────────▶│
 *                                                                  │◀── handler ──────▶│
 *   │◀─────────────────────────────── event → ring ───────────────────────────────────▶│
 * ```
 *
 * Time a chunk waits in the kernel while the event loop is busy comes before 'data' and is not in
 * `added`: the event-loop delay measured beside it bounds that wait.
 *
 * @example
 * ```ts
 * const timing = instrumentMessages(500_000);
 * timing.isMeasuring = true;
 * // ... stream for a while ...
 * timing.isMeasuring = false;
 * timing.added.summary().p99;
 * timing.restore();
 * ```
 */
import { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { Samples } from './measure.js';

/** Timings collected while `isMeasuring` is true, in ms. */
export interface MessageTiming {
  /** Socket chunk arrival to the end of the message handler. */
  readonly added: Samples;
  /** The message handler alone (decode and ring write). */
  readonly handler: Samples;
  /** Exchange event time `E` (simulator process clock) to the end of the handler, ms resolution. */
  readonly eventToRing: Samples;
  isMeasuring: boolean;
  /** Puts the original `emit` functions back. */
  restore(): void;
}

const E_KEY = Buffer.from('"E":');

/** Installs the wrappers; keep at most `capacity` samples of each kind. */
export function instrumentMessages(capacity: number): MessageTiming {
  // The originals, called with .apply(this) by the wrappers and put back by restore().
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const socketEmit = Socket.prototype.emit;
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const wsEmit = WebSocket.prototype.emit;
  // Arrival of the chunk being processed: ws decodes and emits 'message' synchronously inside
  // the socket's 'data' event, so the latest chunk is the one carrying the message.
  let chunkAt = 0;
  const timing: MessageTiming = {
    added: new Samples(capacity),
    handler: new Samples(capacity),
    eventToRing: new Samples(capacity),
    isMeasuring: false,
    restore() {
      Socket.prototype.emit = socketEmit;
      WebSocket.prototype.emit = wsEmit;
    },
  };
  Socket.prototype.emit = function emit(this: Socket, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'data') chunkAt = performance.now();
    return socketEmit.apply(this, [event, ...args] as Parameters<typeof socketEmit>);
  } as typeof socketEmit;
  WebSocket.prototype.emit = function emit(this: WebSocket, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'message' || !timing.isMeasuring) return wsEmit.apply(this, [event, ...args]);
    const start = performance.now();
    const result = wsEmit.apply(this, [event, ...args]);
    const end = performance.now();
    timing.handler.add(end - start);
    timing.added.add(end - chunkAt);
    const eventTime = eventTimeOf(args[0]);
    if (eventTime > 0) timing.eventToRing.add(Date.now() - eventTime);
    return result;
  } as typeof wsEmit;
  return timing;
}

/** `E` of a kline frame (a Buffer, as ws delivers text frames by default), or 0. */
function eventTimeOf(data: unknown): number {
  if (!Buffer.isBuffer(data)) return 0;
  const at = data.indexOf(E_KEY);
  if (at < 0) return 0;
  let value = 0;
  for (let i = at + E_KEY.length; i < data.length; i += 1) {
    const digit = (data[i] as number) - 48;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  return value;
}
