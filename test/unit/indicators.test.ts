import { describe, expect, it } from 'vitest';
import { bollinger, rsi, sma } from '../../src/analysis/indicators.js';
import { InvalidArgumentError } from '../../src/errors.js';

/** Compares a result with expected values, NaN matching NaN, to `digits` decimals. */
function expectSeries(actual: Float64Array, expected: readonly number[], digits = 10): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((value, i) => {
    if (Number.isNaN(value)) expect(actual[i], `index ${i}`).toBeNaN();
    else expect(actual[i], `index ${i}`).toBeCloseTo(value, digits);
  });
}

const N = Number.NaN;

describe('sma', () => {
  it('averages the last n values and is NaN before n values', () => {
    expectSeries(sma([1, 2, 3, 4, 5], 3), [N, N, 2, 3, 4]);
    expectSeries(sma(new Float64Array([10, 20]), 1), [10, 20]);
    expectSeries(sma([1, 2], 3), [N, N]);
  });

  it('spoils only the windows that hold a NaN', () => {
    expectSeries(sma([1, N, 3, 4, 5, 6], 2), [N, N, N, 3.5, 4.5, 5.5]);
  });

  it('stays exact over a long series of large prices', () => {
    const values = Array.from({ length: 10_000 }, (_, i) => 65_000 + ((i * 7919) % 1000) / 100);
    const out = sma(values, 20);
    const i = values.length - 1;
    const window = values.slice(i - 19);
    expect(out[i]).toBeCloseTo(window.reduce((a, b) => a + b, 0) / 20, 8);
  });

  it('refuses a period that is not a positive integer', () => {
    expect(() => sma([1], 0)).toThrow(InvalidArgumentError);
    expect(() => sma([1], 2.5)).toThrow(/sma period must be a positive integer, got 2.5/);
  });
});

describe('bollinger', () => {
  it('uses the population standard deviation (divide by n)', () => {
    // The textbook set: mean 5, population σ exactly 2 (the sample σ would be 2.138).
    const { middle, upper, lower } = bollinger([2, 4, 4, 4, 5, 5, 7, 9], 8, 2);
    expect(middle[7]).toBe(5);
    expect(upper[7]).toBe(9);
    expect(lower[7]).toBe(1);
    expect(upper[6]).toBeNaN();
  });

  it('rolls the window: [1,2,3] then [2,3,4], σ = √(2/3)', () => {
    const sigma = Math.sqrt(2 / 3);
    const bands = bollinger([1, 2, 3, 4], 3, 1.5);
    expectSeries(bands.middle, [N, N, 2, 3]);
    expectSeries(bands.upper, [N, N, 2 + 1.5 * sigma, 3 + 1.5 * sigma]);
    expectSeries(bands.lower, [N, N, 2 - 1.5 * sigma, 3 - 1.5 * sigma]);
  });

  it('defaults to 20 values and 2σ, and gives a flat series zero width', () => {
    const flat = bollinger(new Array<number>(25).fill(100));
    expect(flat.middle[18]).toBeNaN();
    expectSeries(flat.upper.slice(19), new Array<number>(6).fill(100));
    expectSeries(flat.lower.slice(19), new Array<number>(6).fill(100));
  });

  it('refuses a negative k', () => {
    expect(() => bollinger([1, 2], 2, -1)).toThrow(/bollinger k must be a non-negative number, got -1/);
  });
});

describe('rsi (Wilder)', () => {
  it('matches a hand computation with n = 3', () => {
    // Changes +1 −1 +2 +1 −1. At index 3: avgGain (1+0+2)/3 = 1, avgLoss (0+1+0)/3 = 1/3, RS 3, RSI 75.
    // Index 4 (+1): avgGain (1·2+1)/3 = 1, avgLoss (1/3·2+0)/3 = 2/9, RS 4.5, RSI 100 − 100/5.5.
    // Index 5 (−1): avgGain (1·2+0)/3 = 2/3, avgLoss (2/9·2+1)/3 = 13/27, RS 18/13, RSI 100 − 1300/31.
    expectSeries(rsi([10, 11, 10, 12, 13, 12], 3), [N, N, N, 75, 100 - 100 / 5.5, 100 - 1300 / 31]);
  });

  it('agrees with the ChartSchool worked example for n = 14 (its table rounds each step)', () => {
    const closes = [
      44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.1, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28, 46.0, 46.03, 46.41, 46.22,
      45.64, 46.21,
    ];
    const out = rsi(closes);
    expect(out[13]).toBeNaN();
    const published = [70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93];
    published.forEach((value, i) => expect(Math.abs((out[14 + i] as number) - value), `index ${14 + i}`).toBeLessThan(0.1));
  });

  it('is 100 when prices only rise, 0 when they only fall, 50 when flat', () => {
    expect(rsi([1, 2, 3, 4], 2)[3]).toBe(100);
    expect(rsi([4, 3, 2, 1], 2)[3]).toBe(0);
    expect(rsi([5, 5, 5, 5], 2)[3]).toBe(50);
  });

  it('starts afresh n changes after a NaN', () => {
    expectSeries(rsi([1, 2, N, 3, 4, 3], 2), [N, N, N, N, N, 50]);
  });
});
