/**
 * Checks of numeric options shared by the classes that take them.
 *
 * @example
 * ```ts
 * const staleAfterMs = positiveOption('KlineStreams', 'staleAfterMs', options.staleAfterMs, 10_000);
 * ```
 */
import { InvalidArgumentError } from '../errors.js';

/** `value` when it is a positive finite number, `fallback` when undefined; throws otherwise. */
export function positiveOption(owner: string, name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`${owner} option ${name} must be a positive number, got ${JSON.stringify(value)}`);
  }
  return value;
}
