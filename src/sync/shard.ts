/**
 * Which shard a symbol belongs to when a universe is split across N servers (rule field SHARD
 * 'k/N', one server per egress IP, since Binance's weight limits are per IP).
 *
 * The assignment is part of the deployment contract: it depends on the symbol's name and N only,
 * never on the universe, the order of listing or the other symbols, so every server of a
 * deployment agrees on it without talking to the others, a new listing lands on exactly one shard,
 * and a symbol stays on its shard while N stays the same. It is the same on every host and in
 * every version (test/unit/shard.test.ts pins known assignments); changing N moves symbols.
 *
 * ```
 *   shard = fmix32(fnv1a32(symbol)) mod N + 1
 *           fnv1a32: FNV-1a 32 over the name's bytes (offset 0x811c9dc5, prime 0x01000193)
 *           fmix32:  murmur3's finaliser, so that the remainder depends on every bit of the name
 * ```
 *
 * @example
 * ```ts
 * shardOf('BTCUSDT', 4); // 4, on every host, in every version
 * ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'].filter((symbol) => shardOf(symbol, 2) === 1);
 * ```
 */
import { InvalidArgumentError } from '../errors.js';
import { MAX_SHARDS } from '../rule.js';
import { fmix32, fnv1a32 } from '../util/hash.js';

/**
 * The shard (1..count) of `symbol` among `count` shards. Throws InvalidArgumentError when `count`
 * is not an integer from 1 to MAX_SHARDS (1024).
 *
 * @example
 * ```ts
 * shardOf('ETHUSDT', 1); // 1: one shard holds everything
 * ```
 */
export function shardOf(symbol: string, count: number): number {
  if (!Number.isInteger(count) || count < 1 || count > MAX_SHARDS) {
    throw new InvalidArgumentError(`shard count ${String(count)} is invalid: expected an integer from 1 to ${MAX_SHARDS}`);
  }
  return (fmix32(fnv1a32(symbol)) % count) + 1;
}
