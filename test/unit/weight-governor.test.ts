import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AbortedError, BannedError, ClosedError, InvalidArgumentError, WeightUnavailableError } from '../../src/errors.js';
import { BanStore } from '../../src/exchange/ban-store.js';
import { WeightGovernor, sharedGovernor } from '../../src/exchange/weight-governor.js';
import { backoffDelay, sleep } from '../../src/util/abort.js';

const WINDOW = 1000;

function governor(overrides: Partial<ConstructorParameters<typeof WeightGovernor>[0]> = {}): WeightGovernor {
  return new WeightGovernor({ name: 'test', limit: 20, serverWeight: 0.5, windowMs: WINDOW, marginMs: 100, ...overrides });
}

/** Records the order in which acquire calls were granted; the "reply" arrives at once. */
function track(g: WeightGovernor, weight: number, label: string, order: string[], priority: 'live' | 'backfill' = 'live') {
  return g.acquire(weight, { priority }).then((settle) => {
    settle();
    order.push(label);
  });
}

describe('WeightGovernor scheduling', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 10 * WINDOW });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('budget is the limit times serverWeight, falling back to the market table', () => {
    expect(governor().budget).toBe(10);
    expect(new WeightGovernor({ name: 'spot', serverWeight: 0.75 }).budget).toBe(4500);
    expect(new WeightGovernor({ name: 'futures', serverWeight: 0.5 }).budget).toBe(1200);
    expect(() => new WeightGovernor({ name: 'x', serverWeight: 0.5 })).toThrow(InvalidArgumentError);
    expect(() => governor({ serverWeight: 1.5 })).toThrow(/serverWeight must be in \(0, 1\], got 1.5/);
  });

  it('grants within the budget at once and holds the rest until the next window', async () => {
    const g = governor();
    const order: string[] = [];
    const all = [track(g, 4, 'a', order), track(g, 4, 'b', order), track(g, 4, 'c', order)];
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual(['a', 'b']);
    expect(g.usedWeight).toBe(8);
    expect(g.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(WINDOW - 1);
    expect(order).toEqual(['a', 'b']);
    await vi.advanceTimersByTimeAsync(1);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(g.usedWeight).toBe(4);
    await Promise.all(all);
    g.close();
  });

  it("grants 'forward' weight at once or refuses it, never ahead of waiting work and never past the budget", async () => {
    const g = governor();
    const refusal = async (weight: number): Promise<WeightUnavailableError> => {
      const error: unknown = await g.acquire(weight, { priority: 'forward' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(WeightUnavailableError);
      return error as WeightUnavailableError;
    };
    (await g.acquire(4, { priority: 'forward' }))();
    expect(g.usedWeight).toBe(4);
    // Forwarded requests may use 8 of the budget of 10 (FORWARD_RESERVE): 4 + 5 is refused, with
    // the window's turn as the time to try again.
    const full = await refusal(5);
    expect(full.retryAt).toBe(11 * WINDOW);
    expect(full.retryAfterMs).toBe(WINDOW);
    expect(full.message).toMatch(
      /cannot grant 5 at once \(4 of 10 used in this window\): the window has no room left \(forwarded requests may use 8/,
    );
    (await g.acquire(4, { priority: 'forward' }))();
    expect(g.usedWeight).toBe(8);
    // The reserve is there for live work.
    (await g.acquire(2))();
    expect(g.usedWeight).toBe(10);
    // Live work waiting for the next window goes first, even when the forward charge would fit then.
    const order: string[] = [];
    const live = track(g, 6, 'live', order);
    await vi.advanceTimersByTimeAsync(0);
    expect(g.queued).toBe(1);
    expect((await refusal(1)).message).toMatch(/1 live or back-fill requests are waiting/);
    await vi.advanceTimersByTimeAsync(WINDOW);
    await live;
    expect(order).toEqual(['live']);
    (await g.acquire(2, { priority: 'forward' }))();
    expect(g.usedWeight).toBe(8);
    // A 429 pause refuses until its end.
    await vi.advanceTimersByTimeAsync(WINDOW);
    g.pauseFor(300, '429');
    const paused = await refusal(1);
    expect(paused.retryAfterMs).toBe(300);
    expect(paused.message).toMatch(/paused after a 429/);
    // A ban is a BannedError, as for every priority that does not wait for bans.
    g.pauseFor(5 * WINDOW, '418');
    await expect(g.acquire(1, { priority: 'forward' })).rejects.toBeInstanceOf(BannedError);
    g.close();
  });

  it('serves live waiters before back-fill, FIFO within each', async () => {
    const g = governor();
    (await g.acquire(10))();
    const order: string[] = [];
    const all = [
      track(g, 3, 'b1', order, 'backfill'),
      track(g, 3, 'l1', order, 'live'),
      track(g, 3, 'b2', order, 'backfill'),
      track(g, 3, 'l2', order, 'live'),
    ];
    await vi.advanceTimersByTimeAsync(WINDOW);
    expect(order).toEqual(['l1', 'l2', 'b1']);
    await vi.advanceTimersByTimeAsync(WINDOW);
    expect(order).toEqual(['l1', 'l2', 'b1', 'b2']);
    await Promise.all(all);
    g.close();
  });

  it('counts in the next window too the charges whose reply came late, within the margin, or never', async () => {
    const g = governor();
    const early = await g.acquire(1);
    early();
    const slow = await g.acquire(2);
    const unsettled = await g.acquire(3);
    await vi.advanceTimersByTimeAsync(WINDOW - 50); // inside the 100 ms margin
    const marginal = await g.acquire(4);
    marginal();
    expect(g.usedWeight).toBe(10);
    await vi.advanceTimersByTimeAsync(100);
    slow(); // the reply arrived after the window turned: the exchange may have counted it in this one
    expect(g.usedWeight).toBe(2 + 3 + 4);
    await vi.advanceTimersByTimeAsync(WINDOW);
    expect(g.usedWeight).toBe(0);
    unsettled();
  });

  it('takes the exchange count when it is higher, from the same window only', async () => {
    const g = governor();
    (await g.acquire(2))();
    g.observe(9, Date.now());
    expect(g.usedWeight).toBe(9);
    g.observe(3, Date.now());
    expect(g.usedWeight).toBe(9);
    g.observe(10, Date.now() - WINDOW);
    expect(g.usedWeight).toBe(9);
    const order: string[] = [];
    const pending = track(g, 2, 'x', order);
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual([]);
    await vi.advanceTimersByTimeAsync(WINDOW);
    expect(order).toEqual(['x']);
    await pending;
  });

  it('grants nothing during a 429 pause, then resumes', async () => {
    const g = governor();
    g.pause(Date.now() + 2500, '429');
    const order: string[] = [];
    const pending = track(g, 1, 'a', order);
    await vi.advanceTimersByTimeAsync(2499);
    expect(order).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(order).toEqual(['a']);
    await pending;
  });

  it('a ban fails waiters with BannedError unless they wait for it', async () => {
    const g = governor();
    await g.acquire(10);
    const failing = g.acquire(1);
    const order: string[] = [];
    const waiting = g.acquire(1, { waitForBan: true }).then(() => order.push('waited'));
    const until = Date.now() + 5000;
    g.pause(until, '418');
    await expect(failing).rejects.toBeInstanceOf(BannedError);
    await expect(g.acquire(1)).rejects.toMatchObject({ until });
    expect(g.bannedUntil).toBe(until);
    await vi.advanceTimersByTimeAsync(4999);
    expect(order).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(order).toEqual(['waited']);
    expect(g.bannedUntil).toBeUndefined();
    await waiting;
  });

  it('an aborted waiter leaves the queue and lets smaller ones behind it through', async () => {
    const g = governor();
    await g.acquire(8);
    const controller = new AbortController();
    const big = g.acquire(5, { signal: controller.signal });
    const order: string[] = [];
    const small = track(g, 2, 'small', order);
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual([]);
    controller.abort();
    await expect(big).rejects.toBeInstanceOf(AbortedError);
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual(['small']);
    expect(g.queued).toBe(0);
    await small;
  });

  it('close rejects waiters with ClosedError and leaves no timer', async () => {
    const g = governor();
    await g.acquire(10);
    const waiting = g.acquire(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(1);
    g.close();
    await expect(waiting).rejects.toBeInstanceOf(ClosedError);
    expect(vi.getTimerCount()).toBe(0);
    await expect(g.acquire(1)).rejects.toBeInstanceOf(ClosedError);
  });

  it('refuses a weight larger than the whole budget instead of waiting forever', async () => {
    const g = governor();
    await expect(g.acquire(11)).rejects.toThrow(/weight 11 exceeds the whole test budget of 10/);
  });

  it('setLimit changes the budget and wakes waiters', async () => {
    const g = governor();
    await g.acquire(10);
    const order: string[] = [];
    const pending = track(g, 5, 'a', order);
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual([]);
    g.setLimit(40);
    expect(g.budget).toBe(20);
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual(['a']);
    await pending;
  });
});

describe('sharedGovernor', () => {
  it('gives every caller of a group the same open governor, a new one after close', () => {
    const create = () => new WeightGovernor({ name: 'futures', serverWeight: 0.5 });
    const um = sharedGovernor({ group: 'futures', scope: 'unit' }, create);
    const cm = sharedGovernor({ group: 'futures', scope: 'unit' }, create);
    const spot = sharedGovernor({ group: 'spot', scope: 'unit' }, () => new WeightGovernor({ name: 'spot', serverWeight: 0.5 }));
    expect(cm).toBe(um);
    expect(spot).not.toBe(um);
    um.close();
    expect(sharedGovernor({ group: 'futures', scope: 'unit' }, create)).not.toBe(um);
  });
});

describe('ban persistence', () => {
  it('a new governor reads a saved ban and grants nothing until it ends', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ban-store-'));
    try {
      const file = join(dir, 'nested', 'bans.json');
      const first = new WeightGovernor({ name: 'futures', serverWeight: 0.5, banStore: new BanStore(file) });
      const until = Date.now() + 60_000;
      first.pause(until, '418');
      first.close();
      // The save runs in the background; a second store sees it once written.
      const store = new BanStore(file);
      for (let i = 0; i < 100 && (await store.load()).futures === undefined; i += 1) await sleep(10);
      expect(await store.load()).toEqual({ futures: until });

      const second = new WeightGovernor({ name: 'futures', serverWeight: 0.5, banStore: store });
      await expect(second.acquire(1)).rejects.toBeInstanceOf(BannedError);
      expect(second.bannedUntil).toBe(until);
      const other = new WeightGovernor({ name: 'spot', serverWeight: 0.5, banStore: store });
      await expect(other.acquire(1)).resolves.toBeTypeOf('function');
      second.close();
      other.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps the later ban end and treats a corrupt file as no ban', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ban-store-'));
    try {
      const store = new BanStore(join(dir, 'bans.json'));
      await Promise.all([store.save('spot', 500), store.save('spot', 200), store.save('futures', 300)]);
      expect(await store.load()).toEqual({ spot: 500, futures: 300 });
      const { writeFile } = await import('node:fs/promises');
      await writeFile(store.file, '{not json');
      expect(await store.load()).toEqual({});
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('back-off and sleep', () => {
  it('doubles per attempt within [half, full] of the ceiling', () => {
    expect(backoffDelay(0, { baseMs: 1000, random: () => 0 })).toBe(500);
    expect(backoffDelay(3, { baseMs: 1000, random: () => 0 })).toBe(4000);
    expect(backoffDelay(3, { baseMs: 1000, random: () => 0.999999 })).toBe(8000);
    expect(backoffDelay(20, { baseMs: 1000, maxMs: 5000, random: () => 0 })).toBe(2500);
  });

  it('sleep rejects with AbortedError when aborted', async () => {
    const controller = new AbortController();
    const pending = sleep(60_000, controller.signal, 'test sleep');
    controller.abort();
    await expect(pending).rejects.toThrow('test sleep was aborted');
  });
});
