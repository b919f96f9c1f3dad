#!/usr/bin/env node
/**
 * Builds the chart page into dist/web/chart/: app.ts bundled with Lightweight Charts and the
 * library's indicators (esbuild, one ES module, no CDN at run time), plus index.html and app.css.
 *
 * Usage: `node scripts/build-web.mjs` (also run by `npm run build`). Importable:
 * `await buildWeb({ outDir })` returns the folder written.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'web', 'chart');

/** Bundles the page; returns the chart folder it wrote. */
export async function buildWeb({ outDir = join(root, 'dist', 'web') } = {}) {
  const target = join(outDir, 'chart');
  await mkdir(target, { recursive: true });
  await build({
    entryPoints: [join(source, 'app.ts')],
    outfile: join(target, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    minify: true,
    sourcemap: true,
    legalComments: 'eof',
    logLevel: 'warning',
  });
  await copyFile(join(source, 'index.html'), join(target, 'index.html'));
  await copyFile(join(source, 'app.css'), join(target, 'app.css'));
  return target;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const target = await buildWeb();
  console.log(`chart page built into ${target}`);
}
