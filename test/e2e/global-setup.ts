/**
 * Builds `dist/` once before the tests when any source is newer than the built bin, so the
 * end-to-end tests drive the CLI exactly as installed. A build with type errors in files under
 * work still emits; the type check is `npm run typecheck`'s job.
 */
import { execFile } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');

async function newestSourceTime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? await newestSourceTime(path) : (await stat(path)).mtimeMs);
  }
  return newest;
}

export default async function setup(): Promise<void> {
  const built = await stat(bin).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  if (built > 0 && built >= (await newestSourceTime(join(root, 'src')))) return;
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  try {
    await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root });
  } catch (error) {
    // tsc exits non-zero on type errors but still writes dist/; only a missing bin is fatal.
    const isBuilt = await stat(bin).then(
      (s) => s.mtimeMs > built,
      () => false,
    );
    if (!isBuilt) throw error;
  }
}
