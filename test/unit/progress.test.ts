import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Progress } from '../../src/cli/progress.js';

function sink(isTTY: boolean): Writable & { isTTY: boolean; columns: number; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  return Object.assign(stream, { isTTY, columns: 80, text: () => chunks.join('') });
}

describe('Progress', () => {
  it('redraws one line in place on a terminal and ends it on done()', () => {
    let now = 0;
    const out = sink(true);
    const progress = new Progress({ label: 'download', total: 4, stream: out, now: () => now });
    now = 1000;
    progress.tick('BTCUSDT');
    now = 2000;
    progress.tick('ETHUSDT', true);
    progress.done();
    const text = out.text();
    expect(text.split('\r')).toHaveLength(4);
    expect(text).toContain('50% 2/4 (1 failed)');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.split('\n')).toHaveLength(2);
  });

  it('writes a plain line at most every plainEveryMs off a terminal, and always the last', () => {
    let now = 0;
    const out = sink(false);
    const progress = new Progress({ label: 'download', total: 10, stream: out, plainEveryMs: 5000, now: () => now });
    for (let i = 0; i < 10; i += 1) {
      now += 1000;
      progress.tick();
    }
    progress.done();
    progress.done();
    const lines = out.text().trim().split('\n');
    // ticks at 1 s and 6 s pass the 5 s spacing, then the final line.
    expect(lines).toEqual(['download 10% 1/10 eta 9 s', 'download 60% 6/10 eta 4 s', 'download 100% 10/10 in 10.0 s']);
  });
});
