/**
 * Integer hashing for the simulator's deterministic randomness: every random-looking number of a
 * candle is a hash of (seed, symbol, what, when), so any candle can be computed on its own.
 *
 * @example
 * ```ts
 * const key = hash32(seed, hashString('BTCUSDT'));
 * unit(hash32(key, 7, minute)); // uniform in [0, 1), the same every time
 * ```
 */
import { fmix32 as finalise, fnv1a32 } from '../util/hash.js';

/** 32-bit integer hash of up to four integers (murmur3-style finaliser over a mix). */
export function hash32(a: number, b: number, c = 0, d = 0): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ b, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ c, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15) ^ d, 0x165667b1);
  return finalise(h);
}

/**
 * A lighter 32-bit hash of an index under a seed (murmur3's finaliser), for the many values per
 * minute and per second; seed it with hash32 of what the values are for.
 */
export function mix32(seed: number, index: number): number {
  return finalise(Math.imul(seed ^ index, 0x9e3779b1));
}

/** Hash of a string (FNV-1a), to key symbols. */
export const hashString: (text: string) => number = fnv1a32;

/** Uniform in [0, 1) from a 32-bit hash. */
export function unit(h: number): number {
  return h / 4294967296;
}
