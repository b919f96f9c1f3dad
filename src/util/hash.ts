/**
 * Small, fixed 32-bit string and integer hashes. Their results are part of contracts (the
 * simulator's data, the assignment of symbols to shards): never change what they compute.
 *
 * @example
 * ```ts
 * fnv1a32('BTCUSDT');         // 3895251564, on every host and in every version
 * fmix32(fnv1a32('BTCUSDT')); // every input bit spread over the whole word
 * ```
 */

/**
 * FNV-1a, 32 bits, over the string's UTF-16 code units (its bytes, for ASCII such as symbols):
 * offset basis 0x811c9dc5, prime 0x01000193.
 *
 * @example
 * ```ts
 * fnv1a32(''); // 0x811c9dc5
 * ```
 */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * murmur3's fmix32 finaliser: spreads every input bit over the whole word, so that any bits of the
 * result (e.g. a remainder) depend on every bit of the input.
 *
 * @example
 * ```ts
 * fmix32(0); // 0
 * ```
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
