/**
 * The request-weight budget of one Binance IP limit. Binance counts weight per IP in fixed
 * one-minute windows; SPOT has its own limit and UM and CM share one. Every client spending from
 * the same limit must share one governor, or their sum overshoots.
 *
 * A request is charged before it is sent. When the charge does not fit in the current window the
 * request waits for the next window; while a 429 pause or a 418 ban is in force nothing is
 * granted. Waiters are served live updates first, back-fill after, each in arrival order.
 *
 * A request charged in window N may reach the exchange after the window turned and be counted in
 * N+1. So each grant comes with `settle()`, called when the reply has arrived: a charge not
 * settled by the end of its window (or settled within the margin before it, to absorb clock
 * error) is counted in the next window too.
 *
 * ```
 *   window N                                     | window N+1
 *   |--------------------------------|--margin---|-------------------------------------
 *    charge ... settle   -> N only                 used starts at the weight of the charges
 *    charge ........................ settle -> N and N+1      settled late or not at all
 *    charge ............................................ settle -> N and N+1
 * ```
 *
 * @example
 * ```ts
 * const governor = new WeightGovernor({ name: 'futures', limit: 2400, serverWeight: 0.75 });
 * const settle = await governor.acquire(2, { priority: 'live', signal });
 * // ... send the request; when the reply arrives, settle and correct from its header:
 * settle();
 * governor.observe(Number(headers['x-mbx-used-weight-1m']));
 * ```
 */
import { AbortedError, BannedError, ClosedError, InvalidArgumentError, WeightUnavailableError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { BanStore } from './ban-store.js';
import { MARKETS, type BudgetGroup } from '../binance/markets.js';
import { processWide } from '../util/process-wide.js';

/**
 * Which waiters are served first: live updates before back-fill. 'forward' (requests the HTTP API
 * passes on for other processes) is below both and never waits: it is granted at once, when the
 * charge fits now (leaving FORWARD_RESERVE of the budget) and nothing else is waiting, or refused
 * with WeightUnavailableError.
 */
export type WeightPriority = 'live' | 'backfill' | 'forward';

/** Options of {@link WeightGovernor}. */
export interface WeightGovernorOptions {
  /** Budget name: 'spot' or 'futures' for the real limits; also the key in the ban file. */
  readonly name: string;
  /** REQUEST_WEIGHT per window as exchangeInfo reports it; defaults to the market table's. */
  readonly limit?: number;
  /** Share of the limit this process may use, 0 < serverWeight <= 1. */
  readonly serverWeight: number;
  /** Length of Binance's weight window: 60 000 ms; tests shorten it. */
  readonly windowMs?: number;
  /**
   * Charges settled this close to their window's end also count in the next window, covering the
   * error of the clock offset. Defaults to a tenth of the window, at most 1 s.
   */
  readonly marginMs?: number;
  /** The exchange's clock (epoch ms): windows are aligned to the exchange's minutes. */
  readonly now?: () => number;
  /** Where 418 bans are remembered across restarts. */
  readonly banStore?: BanStore;
  readonly logger?: Logger;
}

/** Options of {@link WeightGovernor.acquire}. */
export interface AcquireOptions {
  readonly priority?: WeightPriority;
  readonly signal?: AbortSignal;
  /**
   * Wait for a ban to end instead of failing with BannedError. Bans last from minutes to days, so
   * by default callers learn of the ban at once and decide.
   */
  readonly waitForBan?: boolean;
}

/**
 * Called when the reply to a granted request has arrived, or the request failed: until then its
 * weight may still be counted by the exchange in the next window.
 */
export type SettleWeight = () => void;

// One granted charge that the exchange may count in the window after the one it was made in.
interface Charge {
  readonly weight: number;
  readonly windowEnd: number;
  settledAt: number | undefined;
}

interface Waiter {
  readonly weight: number;
  readonly waitForBan: boolean;
  readonly resolve: (settle: SettleWeight) => void;
  readonly reject: (error: Error) => void;
  readonly detach: () => void;
}

/**
 * Share of the budget 'forward' grants leave to live and back-fill work arriving later in the
 * window: other processes' requests never take the weight a repair will need.
 */
export const FORWARD_RESERVE = 0.2;

// setTimeout fires at once for delays above 2^31 - 1 ms; longer waits are re-armed in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Grants request weight within SERVER_WEIGHT × REQUEST_WEIGHT per window.
 *
 * @example
 * ```ts
 * const governor = new WeightGovernor({ name: 'spot', serverWeight: 0.75 });
 * governor.budget; // 4500 (0.75 × 6000)
 * ```
 */
export class WeightGovernor {
  readonly name: string;
  readonly windowMs: number;
  readonly #serverWeight: number;
  readonly #marginMs: number;
  readonly #now: () => number;
  readonly #banStore: BanStore | undefined;
  readonly #logger: Logger;
  #limit: number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #used = 0;
  // Charges of the current window that may yet be counted in the next: unsettled, or settled late.
  readonly #unsettled = new Set<Charge>();
  #pausedUntil = 0;
  #banUntil = 0;
  readonly #live: Waiter[] = [];
  readonly #backfill: Waiter[] = [];
  // The one timer that wakes the queue at the next window, pause end or ban end.
  #timer: NodeJS.Timeout | undefined;
  // Loading the ban file happens once, on the first acquire: constructors do no I/O.
  #restored: Promise<void> | undefined;
  #closed = false;

  constructor(options: WeightGovernorOptions) {
    const { serverWeight, windowMs = 60_000 } = options;
    if (!(serverWeight > 0 && serverWeight <= 1)) {
      throw new InvalidArgumentError(`serverWeight must be in (0, 1], got ${serverWeight}`);
    }
    if (!(Number.isFinite(windowMs) && windowMs > 0)) {
      throw new InvalidArgumentError(`windowMs must be a positive number of ms, got ${windowMs}`);
    }
    this.name = options.name;
    this.windowMs = windowMs;
    this.#serverWeight = serverWeight;
    this.#marginMs = options.marginMs ?? Math.min(1000, windowMs / 10);
    this.#now = options.now ?? Date.now;
    this.#banStore = options.banStore;
    this.#logger = (options.logger ?? silentLogger()).child({ component: 'weight-governor', budget: options.name });
    this.#limit = WeightGovernor.#checkLimit(options.limit ?? fallbackLimit(options.name));
  }

  static #checkLimit(limit: number): number {
    if (!(Number.isFinite(limit) && limit > 0)) {
      throw new InvalidArgumentError(`limit must be a positive REQUEST_WEIGHT, got ${limit}`);
    }
    return limit;
  }

  /** Weight this process may spend per window: floor(limit × serverWeight), at least 1. */
  get budget(): number {
    return Math.max(1, Math.floor(this.#limit * this.#serverWeight));
  }

  /** The exchange's REQUEST_WEIGHT per window in use. */
  get limit(): number {
    return this.#limit;
  }

  /** Weight counted in the current window (charges and the exchange's own count, whichever is higher). */
  get usedWeight(): number {
    this.#roll(this.#now());
    return this.#used;
  }

  /** End of the 418 ban in force (exchange epoch ms), or undefined when there is none. */
  get bannedUntil(): number | undefined {
    return this.#banUntil > this.#now() ? this.#banUntil : undefined;
  }

  /** End of the pause in force (429 or 418), or undefined when requests may go. */
  get pausedUntil(): number | undefined {
    return this.#pausedUntil > this.#now() ? this.#pausedUntil : undefined;
  }

  /** Number of acquire calls waiting. */
  get queued(): number {
    return this.#live.length + this.#backfill.length;
  }

  /** True after close(). */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Applies the REQUEST_WEIGHT limit read from exchangeInfo `rateLimits`. */
  setLimit(limit: number): void {
    this.#limit = WeightGovernor.#checkLimit(limit);
    this.#drain();
  }

  /** Loads a ban remembered from an earlier run. Called by the first acquire; safe to call again. */
  restore(): Promise<void> {
    this.#restored ??= this.#loadBan();
    return this.#restored;
  }

  async #loadBan(): Promise<void> {
    if (this.#banStore === undefined) return;
    try {
      const until = (await this.#banStore.load())[this.name];
      if (until !== undefined && until > this.#now()) {
        this.#logger.warn({ until: new Date(until).toISOString() }, 'IP ban from an earlier run still in force');
        this.#applyPause(until, '418');
      }
    } catch (error) {
      this.#logger.error({ err: error }, 'could not read the ban file');
    }
  }

  /**
   * Waits until `weight` fits in the budget, then charges it. Resolves when the request may be
   * sent, with the function to call once its reply has arrived; rejects with AbortedError (signal), ClosedError (close), BannedError (a ban is in force
   * and `waitForBan` is not set) or InvalidArgumentError (weight above the whole budget). At
   * priority 'forward' it does not wait: it rejects with WeightUnavailableError when the weight
   * cannot be granted at once (a pause, work waiting, or the window's budget spent but for the
   * {@link FORWARD_RESERVE} kept for live work).
   */
  async acquire(weight: number, options: AcquireOptions = {}): Promise<SettleWeight> {
    if (this.#closed) throw new ClosedError(`weight governor ${this.name}`);
    if (!(Number.isFinite(weight) && weight > 0)) {
      throw new InvalidArgumentError(`weight must be a positive number, got ${weight}`);
    }
    if (weight > this.budget) {
      throw new InvalidArgumentError(`weight ${weight} exceeds the whole ${this.name} budget of ${this.budget} per window`);
    }
    const { signal, priority = 'live', waitForBan = false } = options;
    if (signal?.aborted) throw new AbortedError('weight acquire', { cause: signal.reason });
    await this.restore();
    if (this.#closed) throw new ClosedError(`weight governor ${this.name}`);
    if (!waitForBan && this.bannedUntil !== undefined) throw new BannedError(this.name, this.#banUntil);
    if (priority === 'forward') return this.#grantNow(weight);

    return new Promise<SettleWeight>((resolve, reject) => {
      const queue = priority === 'live' ? this.#live : this.#backfill;
      const onAbort = (): void => {
        const index = queue.indexOf(waiter);
        if (index >= 0) queue.splice(index, 1);
        reject(new AbortedError('weight acquire', { cause: signal?.reason }));
        // The aborted waiter may have been holding up smaller ones behind it.
        this.#drain();
      };
      const waiter: Waiter = {
        weight,
        waitForBan,
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
      this.#drain();
    });
  }

  /**
   * Corrects the count from a reply's `X-MBX-USED-WEIGHT-1M`: the exchange's figure includes
   * everything this IP spent, other processes too, so the higher of the two counts wins.
   */
  observe(usedWeightHeader: number, replyServerTime: number = this.#now()): void {
    if (!Number.isFinite(usedWeightHeader) || usedWeightHeader < 0) return;
    this.#roll(replyServerTime);
    if (this.#windowOf(replyServerTime) !== this.#windowStart) return;
    if (usedWeightHeader > this.#used) {
      this.#logger.debug({ counted: this.#used, exchange: usedWeightHeader }, 'exchange counts more weight');
      this.#used = usedWeightHeader;
    }
  }

  /**
   * Stops granting weight until `untilServerTime`: after a 429 (Retry-After) or a 418 (ban). A ban
   * is saved to the ban store and fails the waiters that do not wait for bans.
   */
  pause(untilServerTime: number, reason: '429' | '418'): void {
    if (this.#closed) return;
    this.#applyPause(untilServerTime, reason);
    if (reason === '418' && this.#banStore !== undefined) {
      this.#banStore.save(this.name, untilServerTime).catch((error: unknown) => {
        this.#logger.error({ err: error }, 'could not save the ban; a restart would not know of it');
      });
    }
  }

  #applyPause(until: number, reason: '429' | '418'): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, until);
    if (reason === '418') {
      this.#banUntil = Math.max(this.#banUntil, until);
      for (const queue of [this.#live, this.#backfill]) {
        for (let i = queue.length - 1; i >= 0; i -= 1) {
          const waiter = queue[i];
          if (waiter === undefined || waiter.waitForBan) continue;
          queue.splice(i, 1);
          waiter.detach();
          waiter.reject(new BannedError(this.name, this.#banUntil));
        }
      }
    }
    this.#logger.warn({ reason, until: new Date(until).toISOString() }, 'requests paused');
    this.#drain();
  }

  /**
   * Pauses for `durationMs` from now on this governor's clock, and returns the end. Clients use it
   * with Retry-After so that a client clock synced differently cannot shorten the pause.
   */
  pauseFor(durationMs: number, reason: '429' | '418'): number {
    const until = this.#now() + Math.max(0, durationMs);
    this.pause(until, reason);
    return until;
  }

  /** Fails every waiter with ClosedError and clears the timer. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const waiter of [...this.#live.splice(0), ...this.#backfill.splice(0)]) {
      waiter.detach();
      waiter.reject(new ClosedError(`weight governor ${this.name}`));
    }
  }

  #windowOf(time: number): number {
    return Math.floor(time / this.windowMs) * this.windowMs;
  }

  #roll(now: number): void {
    const start = this.#windowOf(now);
    // Windows only move forward: a clock re-sync that steps back must not forget charges.
    if (start <= this.#windowStart) return;
    const end = this.#windowStart + this.windowMs;
    let carried = 0;
    if (start === end) {
      for (const charge of this.#unsettled) {
        if (charge.settledAt === undefined || charge.settledAt >= end - this.#marginMs) carried += charge.weight;
      }
    }
    // A carried charge is not carried twice: a reply takes far less than a window.
    this.#unsettled.clear();
    this.#used = carried;
    this.#windowStart = start;
  }

  #drain(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed) return;
    for (;;) {
      const queue = this.#live.length > 0 ? this.#live : this.#backfill;
      const waiter = queue[0];
      if (waiter === undefined) return;
      const now = this.#now();
      if (this.#pausedUntil > now) return this.#wakeIn(this.#pausedUntil - now);
      if (waiter.weight > this.budget) {
        // Only after setLimit lowered the budget: this weight can never be granted.
        queue.shift();
        waiter.detach();
        waiter.reject(new InvalidArgumentError(`weight ${waiter.weight} exceeds the ${this.name} budget of ${this.budget}`));
        continue;
      }
      this.#roll(now);
      if (this.#used + waiter.weight > this.budget) {
        return this.#wakeIn(this.#windowStart + this.windowMs - now);
      }
      queue.shift();
      waiter.detach();
      waiter.resolve(this.#charge(waiter.weight));
    }
  }

  /** Charges `weight` to the current window (rolled already); returns its settle function. */
  #charge(weight: number): SettleWeight {
    this.#used += weight;
    const charge: Charge = { weight, windowEnd: this.#windowStart + this.windowMs, settledAt: undefined };
    this.#unsettled.add(charge);
    return () => this.#settle(charge);
  }

  /** The 'forward' grant: now or never, behind every waiter and inside the window's budget. */
  #grantNow(weight: number): SettleWeight {
    const now = this.#now();
    this.#roll(now);
    const windowEnd = this.#windowStart + this.windowMs;
    const refuse = (reason: string, retryAt: number): WeightUnavailableError =>
      new WeightUnavailableError({
        budget: this.name,
        weight,
        used: this.#used,
        limit: this.budget,
        reason,
        retryAt,
        retryAfterMs: retryAt - now,
      });
    if (this.#pausedUntil > now) throw refuse('requests are paused after a 429', this.#pausedUntil);
    if (this.queued > 0) throw refuse(`${this.queued} live or back-fill requests are waiting`, windowEnd);
    const room = this.budget - Math.floor(this.budget * FORWARD_RESERVE);
    if (this.#used + weight > room) {
      throw refuse(`the window has no room left (forwarded requests may use ${room}, the rest is kept for live work)`, windowEnd);
    }
    return this.#charge(weight);
  }

  #settle(charge: Charge): void {
    if (charge.settledAt !== undefined) return;
    charge.settledAt = this.#now();
    // Settled well before its window ended: the exchange counted it in that window only.
    if (charge.settledAt < charge.windowEnd - this.#marginMs) this.#unsettled.delete(charge);
  }

  #wakeIn(ms: number): void {
    this.#timer = setTimeout(() => this.#drain(), Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(ms))));
  }
}

function fallbackLimit(name: string): number {
  const market = Object.values(MARKETS).find((m) => m.budgetGroup === name);
  if (market === undefined) {
    throw new InvalidArgumentError(`no limit given and "${name}" is not a budget group (spot, futures)`);
  }
  return market.fallbackWeightLimit;
}

/** Identifies a shared budget: the group, and a scope that keeps separate registries apart (tests). */
export interface GovernorKey {
  readonly group: BudgetGroup;
  readonly scope?: string;
}

// One per process, shared by every copy of the package (see util/process-wide).
const registry = processWide('weight-governors', () => new Map<string, WeightGovernor>());

/**
 * The process-wide governor of a budget group: SPOT has one, UM and CM share one. `create` runs
 * only when no open governor exists for the key.
 *
 * @example
 * ```ts
 * const um = sharedGovernor({ group: MARKETS.UM.budgetGroup }, () => new WeightGovernor({ name: 'futures', serverWeight: 0.75 }));
 * const cm = sharedGovernor({ group: MARKETS.CM.budgetGroup }, () => new WeightGovernor({ name: 'futures', serverWeight: 0.75 }));
 * um === cm; // true
 * ```
 */
export function sharedGovernor(key: GovernorKey, create: () => WeightGovernor): WeightGovernor {
  const id = `${key.group}\u0000${key.scope ?? ''}`;
  const existing = registry.get(id);
  if (existing !== undefined && !existing.isClosed) return existing;
  const governor = create();
  registry.set(id, governor);
  return governor;
}
