/**
 * State that must be one per process, not one per copy of this package: the weight budget per IP
 * and its users, the running servers, the per-folder manifest queues. A bot whose dependencies
 * nest a second copy of candle-server (another version's folder, a bundler's duplicate) loads
 * every module twice; module-level maps would then be two, and two budgets could together spend
 * more than the IP's limit. So each such map lives on `globalThis` under a `Symbol.for` key, which
 * every copy in the process resolves to the same symbol.
 *
 * ```
 * globalThis[Symbol.for('candle-server.process-wide.v1')]  Map
 *   'weight-governors'  -> Map<group+scope, WeightGovernor>
 *   'governor-users'    -> Map<WeightGovernor, number>
 *   'running-servers'   -> Map<MarketType, CandleServer>
 *   'manifest-queues'   -> Map<folder, Promise<void>>
 * ```
 *
 * The key carries a version: a copy whose shared objects have another shape would use another
 * key (and then its own budget) rather than call methods that are not there.
 *
 * @example
 * ```ts
 * const governors = processWide('weight-governors', () => new Map<string, WeightGovernor>());
 * ```
 */

// Bump when the shape of a shared value changes incompatibly.
const REGISTRY_KEY = Symbol.for('candle-server.process-wide.v1');

type Registry = Map<string, unknown>;

function registry(): Registry {
  const holder = globalThis as unknown as Record<symbol, Registry | undefined>;
  let found = holder[REGISTRY_KEY];
  if (found === undefined) {
    found = new Map();
    Object.defineProperty(globalThis, REGISTRY_KEY, { value: found, enumerable: false, configurable: false, writable: false });
  }
  return found;
}

/**
 * The process-wide value named `name`, created by `create` the first time any copy of the package
 * in this process asks for it. Every copy gets the same object.
 */
export function processWide<T>(name: string, create: () => T): T {
  const map = registry();
  if (!map.has(name)) map.set(name, create());
  return map.get(name) as T;
}
