/**
 * Request weight as Binance counts it: per client IP and budget (spot, or futures shared by UM and
 * CM), in fixed windows aligned to the exchange clock. Over the limit a request gets 429; a
 * client that keeps sending after 429s gets 418 and an IP ban that doubles for repeat offenders.
 *
 * @example
 * ```ts
 * const ledger = new WeightLedger({ limits: { spot: 6000, futures: 2400 } });
 * const verdict = ledger.charge('spot', '127.0.0.1', 2, Date.now());
 * if (verdict.kind === 'ok') console.log('used', verdict.used);
 * ```
 */
import type { BudgetGroup } from '../binance/markets.js';

/** Options of the weight ledger. */
export interface WeightLedgerOptions {
  readonly limits?: { readonly spot?: number; readonly futures?: number };
  /** Window length (ms); Binance's is one minute. */
  readonly windowMs?: number;
  /** Requests sent after a 429 in the same window before the IP is banned. */
  readonly requestsAfter429?: number;
  /** First ban length (ms); doubles per repeat up to `banMaxMs`. */
  readonly banBaseMs?: number;
  readonly banMaxMs?: number;
  readonly stats?: SimStats;
}

/** What the ledger decided for one request. */
export type WeightVerdict =
  | { readonly kind: 'ok'; readonly used: number }
  | { readonly kind: 'limited'; readonly used: number; readonly retryAfterMs: number; readonly limit: number }
  | { readonly kind: 'banned'; readonly used: number; readonly until: number };

// One IP's state in one budget.
interface ClientState {
  windowStart: number;
  used: number;
  // Requests that arrived after this window's first 429.
  ignoredLimit: number;
  isLimited: boolean;
  bannedUntil: number;
  bans: number;
}

/**
 * What the simulator saw: weight per budget per window, 429 and 418 counts, requests per path and
 * status, and requests that arrived while their IP was banned.
 *
 * @example
 * ```ts
 * sim.stats.maxWindowWeight('futures'); // highest weight counted in any window
 * sim.stats.requestsTo('/fapi/v1/klines'); // how many klines requests reached UM
 * ```
 */
export class SimStats {
  count429 = 0;
  count418 = 0;
  /** Requests received while their IP was banned (each could lengthen a real ban). */
  requestsWhileBanned = 0;
  readonly #weight: Record<BudgetGroup, Map<number, number>> = { spot: new Map(), futures: new Map() };
  // Keyed by path, then by HTTP status.
  readonly #requests: Map<string, Map<number, number>> = new Map();

  /** Records weight counted in a window. */
  addWeight(group: BudgetGroup, windowStart: number, weight: number): void {
    const byWindow = this.#weight[group];
    byWindow.set(windowStart, (byWindow.get(windowStart) ?? 0) + weight);
  }

  /** Records one answered request. */
  addRequest(path: string, status: number): void {
    let byStatus = this.#requests.get(path);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.#requests.set(path, byStatus);
    }
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    if (status === 429) this.count429 += 1;
    if (status === 418) this.count418 += 1;
  }

  /** Weight counted per window start (epoch ms) for a budget, all IPs together. */
  weightByWindow(group: BudgetGroup): Map<number, number> {
    return new Map(this.#weight[group]);
  }

  /** The highest weight counted in any one window of a budget (0 when none). */
  maxWindowWeight(group: BudgetGroup): number {
    let max = 0;
    for (const weight of this.#weight[group].values()) max = Math.max(max, weight);
    return max;
  }

  /** Requests received on a path, optionally only those answered with `status`. */
  requestsTo(path: string, status?: number): number {
    const byStatus = this.#requests.get(path);
    if (byStatus === undefined) return 0;
    if (status !== undefined) return byStatus.get(status) ?? 0;
    let total = 0;
    for (const count of byStatus.values()) total += count;
    return total;
  }

  /** Every path seen, with its counts per status. */
  requests(): Map<string, Map<number, number>> {
    return new Map([...this.#requests].map(([path, byStatus]) => [path, new Map(byStatus)]));
  }

  /** Total requests received (all paths). */
  get totalRequests(): number {
    let total = 0;
    for (const path of this.#requests.keys()) total += this.requestsTo(path);
    return total;
  }

  /** Forgets everything seen so far. */
  reset(): void {
    this.count429 = 0;
    this.count418 = 0;
    this.requestsWhileBanned = 0;
    this.#weight.spot.clear();
    this.#weight.futures.clear();
    this.#requests.clear();
  }
}

/** Counts weight per IP and budget and decides 200, 429 or 418. */
export class WeightLedger {
  readonly limits: Readonly<Record<BudgetGroup, number>>;
  readonly windowMs: number;
  readonly stats: SimStats;
  readonly #requestsAfter429: number;
  readonly #banBaseMs: number;
  readonly #banMaxMs: number;
  readonly #clients: Map<string, ClientState> = new Map();

  constructor(options: WeightLedgerOptions = {}) {
    this.limits = { spot: options.limits?.spot ?? 6000, futures: options.limits?.futures ?? 2400 };
    this.windowMs = options.windowMs ?? 60_000;
    this.#requestsAfter429 = options.requestsAfter429 ?? 5;
    this.#banBaseMs = options.banBaseMs ?? 120_000;
    this.#banMaxMs = options.banMaxMs ?? 3 * 86_400_000;
    this.stats = options.stats ?? new SimStats();
  }

  /** Start of the window containing `now`. */
  windowStart(now: number): number {
    return Math.floor(now / this.windowMs) * this.windowMs;
  }

  /** Weight an IP has used in the current window of a budget. */
  used(group: BudgetGroup, ip: string, now: number): number {
    const state = this.#clients.get(`${group}|${ip}`);
    return state === undefined || state.windowStart !== this.windowStart(now) ? 0 : state.used;
  }

  /** Charges `weight` to an IP's budget and says whether the request may be served. */
  charge(group: BudgetGroup, ip: string, weight: number, now: number): WeightVerdict {
    const state = this.#client(group, ip, now);
    if (state.bannedUntil > now) {
      this.stats.requestsWhileBanned += 1;
      return { kind: 'banned', used: state.used, until: state.bannedUntil };
    }
    const windowStart = this.windowStart(now);
    const retryAfterMs = windowStart + this.windowMs - now;
    if (state.isLimited) {
      state.ignoredLimit += 1;
      if (state.ignoredLimit >= this.#requestsAfter429) {
        state.bans += 1;
        state.bannedUntil = now + Math.min(this.#banMaxMs, this.#banBaseMs * 2 ** (state.bans - 1));
        state.isLimited = false;
        state.ignoredLimit = 0;
        return { kind: 'banned', used: state.used, until: state.bannedUntil };
      }
      return { kind: 'limited', used: state.used, retryAfterMs, limit: this.limits[group] };
    }
    state.used += weight;
    this.stats.addWeight(group, windowStart, weight);
    if (state.used > this.limits[group]) {
      state.isLimited = true;
      return { kind: 'limited', used: state.used, retryAfterMs, limit: this.limits[group] };
    }
    return { kind: 'ok', used: state.used };
  }

  /** Bans an IP until `until` (forced faults), counting as a repeat offence. */
  ban(group: BudgetGroup, ip: string, until: number, now: number): void {
    const state = this.#client(group, ip, now);
    state.bannedUntil = until;
    state.bans += 1;
  }

  /** Lifts every ban and forgets every window (repeat-offence counts too). */
  reset(): void {
    this.#clients.clear();
  }

  #client(group: BudgetGroup, ip: string, now: number): ClientState {
    const key = `${group}|${ip}`;
    const windowStart = this.windowStart(now);
    let state = this.#clients.get(key);
    if (state === undefined) {
      state = { windowStart, used: 0, ignoredLimit: 0, isLimited: false, bannedUntil: 0, bans: 0 };
      this.#clients.set(key, state);
    } else if (state.windowStart !== windowStart) {
      state.windowStart = windowStart;
      state.used = 0;
      state.isLimited = false;
      state.ignoredLimit = 0;
    }
    return state;
  }
}
