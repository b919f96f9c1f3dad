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

// murmur3's fmix32: spreads every input bit over the whole word.
function finalise(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of a string (FNV-1a), to key symbols. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Uniform in [0, 1) from a 32-bit hash. */
export function unit(h: number): number {
  return h / 4294967296;
}
