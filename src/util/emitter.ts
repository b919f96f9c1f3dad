/**
 * A small typed event emitter whose listeners cannot hurt the emitter: a listener that throws is
 * reported through `onListenerError` and the other listeners still run. Ingestion code emits from
 * its hot path, so a bot's bug in a listener must never stop candles from being written.
 *
 * @example
 * ```ts
 * const events = new SafeEmitter<{ closed: (symbol: string) => void }>((error) => log.error(error));
 * const off = events.on('closed', (symbol) => console.log(symbol));
 * events.emit('closed', 'BTCUSDT');
 * off();
 * ```
 */

/**
 * A map of event names to listener signatures. Written as a mapped type over the map's own keys,
 * so that an interface without an index signature qualifies and only its names type-check:
 * `on('candleclosed', ...)` is a compile error, not a listener that never fires.
 */
export type EventMap<Events> = { [E in keyof Events]: (...args: never[]) => void };

/** Emits typed events to listeners, isolating the emitter from listener failures. */
export class SafeEmitter<Events extends EventMap<Events>> {
  readonly #listeners = new Map<keyof Events, Set<Events[keyof Events]>>();
  readonly #onListenerError: (error: unknown, event: keyof Events) => void;

  constructor(onListenerError: (error: unknown, event: keyof Events) => void) {
    this.#onListenerError = onListenerError;
  }

  /** Adds a listener; returns a function that removes it. */
  on<E extends keyof Events>(event: E, listener: Events[E]): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** Removes a listener. */
  off<E extends keyof Events>(event: E, listener: Events[E]): void {
    this.#listeners.get(event)?.delete(listener);
  }

  /** True when someone listens to `event`: lets hot paths skip building an event nobody reads. */
  has(event: keyof Events): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }

  /** Calls every listener of `event` with `args`; a throwing listener is reported, not rethrown. */
  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of set) {
      try {
        (listener as (...a: Parameters<Events[E]>) => void)(...args);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear();
  }
}
