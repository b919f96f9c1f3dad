/**
 * Test helpers that drive the built CLI (`dist/cli/main.js`) as a user would: spawn it, read its
 * JSON log lines as they come, wait (bounded) for a line or for the exit, and kill whatever is
 * left at the end of the file.
 *
 * @example
 * ```ts
 * const cli = spawnCli(['sim', '--markets', 'SPOT']);
 * const urls = await cli.waitForLine((line) => line.startsWith('{"sim"'));
 * cli.kill('SIGTERM');
 * expect(await cli.exited).toBe(0);
 * ```
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root and the built bin. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** A running CLI process with its output split into lines. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resolves with the exit code (128 + n for a signal). */
  readonly exited: Promise<number>;
  /** Resolves with the first stdout line (seen or to come) matching `test`; rejects after `ms`. */
  waitForLine(test: (line: string) => boolean, ms?: number): Promise<string>;
  /** The first stdout JSON log record matching `test`, waited for like waitForLine. */
  waitForLog(test: (record: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): void;
}

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
const children = new Set<ChildProcess>();

/** Spawns `node dist/cli/main.js ...args` (cwd: the repository root unless given). */
export function spawnCli(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): CliProcess {
  return spawnNode([CLI, ...args], options);
}

/** Spawns `node ...args` with the line readers and exit promise of {@link CliProcess}. */
export function spawnNode(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): CliProcess {
  const child = spawn(process.execPath, [...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  const split = (stream: NodeJS.ReadableStream | null, into: string[]): void => {
    let rest = '';
    stream?.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      into.push(...lines);
      for (const wake of waiters) wake();
    });
    // A last line without a newline.
    stream?.on('end', () => {
      if (rest !== '') into.push(rest);
      rest = '';
    });
  };
  split(child.stdout, stdout);
  split(child.stderr, stderr);
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      const settle = (): void => {
        for (const wake of waiters) wake();
        resolve(code ?? 128 + (SIGNAL_NUMBERS[signal ?? ''] ?? 0));
      };
      // 'close' comes once the pipes are drained; a grandchild holding them (a daemon) must not hang us.
      const timer = setTimeout(settle, 1000);
      child.once('close', () => {
        clearTimeout(timer);
        settle();
      });
    });
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });

  function waitForLine(test: (line: string) => boolean, ms = 20_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = stdout.find(test);
        if (found !== undefined) finish(() => resolve(found));
        else if (hasExited || child.exitCode !== null)
          finish(() => reject(new Error(`process exited before the line came; stderr: ${stderr.join('\n')}`)));
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(new Error(`no such line within ${ms} ms; last lines:\n${stdout.slice(-5).join('\n')}\n${stderr.join('\n')}`)),
          ),
        ms,
      );
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      waiters.add(check);
      check();
    });
  }

  return {
    child,
    stdout,
    stderr,
    exited,
    waitForLine,
    async waitForLog(test, ms) {
      const line = await waitForLine((text) => {
        const record = parseRecord(text);
        return record !== undefined && test(record);
      }, ms);
      return parseRecord(line) ?? {};
    },
    kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Runs the CLI to its end (killed after `ms`, default 30 s) and returns its exit code and output. */
export async function runCli(
  args: readonly string[],
  options: { env?: Record<string, string>; cwd?: string; ms?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const cli = spawnCli(args, options);
  const timer = setTimeout(() => cli.kill('SIGKILL'), options.ms ?? 30_000);
  const code = await cli.exited;
  clearTimeout(timer);
  return { code, stdout: cli.stdout.join('\n'), stderr: cli.stderr.join('\n') };
}

/** Kills every CLI process still running (for afterAll). */
export async function killAll(): Promise<void> {
  const left = [...children];
  for (const child of left) child.kill('SIGKILL');
  await Promise.all(
    left.map(
      (child) =>
        new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve))),
    ),
  );
}

/** Polls `check` every 100 ms until it returns a value other than undefined, or throws after `ms`. */
export async function pollFor<T>(what: string, check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- whatever the check threw, shown as it is
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${lastError === undefined ? '' : ` (${String(lastError)})`}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function parseRecord(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
