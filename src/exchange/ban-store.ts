/**
 * Remembers when IP bans end, across restarts. After a 418 every request lengthens the ban, so a
 * process that restarts mid-ban must not start by sending requests: it reads the ban's end here.
 *
 * The file is a small JSON object, budget name to ban end (epoch ms, exchange time):
 * `{"spot": 1767225600000, "futures": 1767225720000}`. Writes go to a temporary file that is then
 * renamed over the old one, so a crash mid-write never leaves a broken file.
 *
 * @example
 * ```ts
 * const store = new BanStore('./BINANCE_CACHE/bans.json');
 * await store.save('futures', Date.now() + 120_000);
 * (await store.load()).futures; // the ban's end
 * ```
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';

/**
 * A JSON file of ban ends, one per weight budget.
 *
 * @example
 * ```ts
 * const bans = await new BanStore('/var/lib/candle-server/bans.json').load();
 * ```
 */
export class BanStore {
  readonly file: string;
  readonly #logger: Logger;
  // Saves run one after another so two renames never race and no update is lost.
  #writes: Promise<void> = Promise.resolve();

  constructor(file: string, options: { logger?: Logger } = {}) {
    this.file = file;
    this.#logger = options.logger ?? silentLogger();
  }

  /**
   * Reads every recorded ban end. A missing file means no bans; an unreadable one is logged and
   * treated as no bans, since refusing to start would be worse than risking one more request.
   */
  async load(): Promise<Record<string, number>> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw error;
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new Error(`expected a JSON object of budget name to epoch ms, got ${text.slice(0, 80)}`);
      }
      const bans: Record<string, number> = {};
      for (const [budget, until] of Object.entries(parsed)) {
        if (typeof until === 'number' && Number.isFinite(until)) bans[budget] = until;
      }
      return bans;
    } catch (error) {
      this.#logger.warn({ err: error, file: this.file }, 'ban file unreadable; assuming no ban');
      return {};
    }
  }

  /** Records that `budget` is banned until `until` (epoch ms), keeping the later of old and new. */
  save(budget: string, until: number): Promise<void> {
    const write = this.#writes.then(async () => {
      const bans = await this.load();
      bans[budget] = Math.max(bans[budget] ?? 0, until);
      // Temp file, fsync and rename: a crash leaves the old file or the new one, never half of one.
      await writeFileAtomic(this.file, `${JSON.stringify(bans)}\n`);
    });
    // A failed save must not block the ones after it; the caller still sees its own failure.
    this.#writes = write.catch(() => undefined);
    return write;
  }
}
