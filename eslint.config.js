// @ts-check
/**
 * ESLint: typescript-eslint's type-aware rules (a floating or misused promise is a bug no test
 * reliably catches; only the type checker knows what returns a promise), plus import-boundary
 * rules that encode the layering of src/ (LAYERS below), plus `process` for src/cli/ only.
 * Formatting is Prettier's job: eslint-config-prettier comes last and turns off what it owns.
 */
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// ---------------------------------------------------------------------------------------------
// Layering. Each unit of src/ (a folder, or a file at the top of src/) may import only the units
// it lists (`only`), plus itself; or anything but the units in `allBut`. Data flows down:
// exchange -> sync -> store -> readers. A unit without an entry (src/symbols.ts, which moves into
// binance/; publish/, remote/, sinks/ as they come) imports freely, but the units with an `only`
// list cannot reach it. Dynamic import() is not checked by no-restricted-imports.
// ---------------------------------------------------------------------------------------------

/** Folders of src/ (`src/<name>/**`) and files at the top of src/ (`src/<name>.ts`). */
const FOLDERS = [
  'util',
  'binance',
  'exchange',
  'store',
  'files',
  'sync',
  'analysis',
  'service',
  'cli',
  'sim',
  'publish',
  'remote',
  'sinks',
];
const FILES = ['errors', 'log', 'rule', 'candle-server', 'index'];
const UNITS = [...FOLDERS, ...FILES];

/** @type {Record<string, { only: string[] } | { allBut: string[] }>} */
const LAYERS = {
  errors: { only: [] },
  util: { only: ['errors'] },
  log: { only: ['errors', 'util'] },
  binance: { only: ['errors', 'util'] },
  exchange: { only: ['binance', 'util', 'errors', 'log'] },
  store: { only: ['binance', 'util', 'errors'] },
  files: { only: ['binance', 'store', 'util', 'errors', 'log'] },
  rule: { only: ['binance', 'util', 'errors'] },
  analysis: { only: ['binance', 'store', 'util', 'errors'] },
  sync: { only: ['binance', 'exchange', 'store', 'files', 'rule', 'util', 'errors', 'log', 'analysis'] },
  'candle-server': { allBut: ['service', 'cli'] },
  service: { allBut: ['cli'] },
  sim: { only: ['binance', 'util', 'errors', 'log'] },
  index: { allBut: ['cli'] },
};

const escape = (/** @type {string} */ text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The restricted-import patterns of one unit. Imports are relative: a file in a folder of src/
 * reaches another unit through `../` (one or more), a file at the top of src/ through `./`.
 */
function boundaryPatterns(/** @type {string} */ unit) {
  const layer = LAYERS[unit];
  if (!layer) return [];
  const forbidden = 'only' in layer ? UNITS.filter((other) => other !== unit && !layer.only.includes(other)) : layer.allBut;
  const prefix = FOLDERS.includes(unit) ? '^(\\.\\./)+' : '^\\./';
  const folders = forbidden.filter((name) => FOLDERS.includes(name)).map(escape);
  const files = forbidden.filter((name) => FILES.includes(name)).map(escape);
  const allowed = !('only' in layer)
    ? `must not import ${layer.allBut.join(', ')}`
    : layer.only.length === 0
      ? 'imports nothing of ours'
      : `may import only ${[...layer.only, 'itself'].join(', ')}`;
  const message = `layering (LAYERS in eslint.config.js): src/${FOLDERS.includes(unit) ? `${unit}/` : `${unit}.ts`} ${allowed}.`;
  const patterns = [];
  if (folders.length > 0) patterns.push({ regex: `${prefix}(${folders.join('|')})(/|$)`, caseSensitive: true, message });
  if (files.length > 0) patterns.push({ regex: `${prefix}(${files.join('|')})(\\.js)?$`, caseSensitive: true, message });
  return patterns;
}

/** Library code never touches `process`: only the CLI does. */
const PROCESS_MESSAGE = 'library code never touches process; only src/cli/ does (take an option or an injected env instead).';
const PROCESS_IMPORTS = [
  { name: 'node:process', message: PROCESS_MESSAGE },
  { name: 'process', message: PROCESS_MESSAGE },
];

/** One config block per unit: its boundaries plus the `process` ban (a later block replaces a rule's options, so both go together). */
const layering = Object.keys(LAYERS).map((unit) => ({
  name: `candle-server/layering/${unit}`,
  files: FOLDERS.includes(unit) ? [`src/${unit}/**/*.ts`] : [`src/${unit}.ts`],
  rules: {
    'no-restricted-imports': ['error', { paths: PROCESS_IMPORTS, patterns: boundaryPatterns(unit) }],
  },
}));

export default defineConfig(
  globalIgnores([
    'dist/',
    'coverage/',
    'node_modules/',
    'bench/results/',
    'cache/',
    'candles/',
    'test-artifacts/',
    '.tmp/',
    'demo/',
    'logs/',
  ]),

  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    name: 'candle-server/type-aware',
    languageOptions: {
      parserOptions: {
        // Each file is checked with the nearest tsconfig.json: the root one for src, test, bench and
        // scripts, web/chart/tsconfig.json (DOM lib) for the chart page. The JavaScript files outside
        // any tsconfig get the default project.
        projectService: {
          allowDefaultProject: ['eslint.config.js', 'scripts/*.mjs', 'scripts/*.cjs'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // Async functions without an await are deliberate: they implement promise-returning interfaces
      // (fakes in tests, async generators), and a throw in them must reject rather than throw.
      '@typescript-eslint/require-await': 'off',
      // ws hands text frames over as a Buffer; the RawData union also names ArrayBuffer and Buffer[].
      '@typescript-eslint/no-base-to-string': [
        'error',
        { ignoredTypeNames: ['Error', 'RegExp', 'URL', 'URLSearchParams', 'Buffer', 'ArrayBuffer'] },
      ],
      // A `let` that closures read before its one assignment cannot be a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    name: 'candle-server/tests',
    files: ['test/**/*.ts'],
    rules: {
      // vitest's asymmetric matchers (expect.any, expect.stringContaining, ...) are typed `any`.
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
  {
    name: 'candle-server/javascript',
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: globals.node },
  },
  {
    name: 'candle-server/commonjs',
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    // PM2 loads its ecosystem file with require(): CommonJS is the point of a .cjs file.
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    name: 'candle-server/browser',
    files: ['web/**/*.ts'],
    languageOptions: { globals: globals.browser },
  },

  // `process` is for src/cli/ only; outside src (test, bench, scripts) it is fine.
  {
    name: 'candle-server/no-process',
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**'],
    rules: {
      'no-restricted-globals': ['error', { name: 'process', message: PROCESS_MESSAGE }],
      'no-restricted-properties': ['error', { object: 'globalThis', property: 'process', message: PROCESS_MESSAGE }],
      'no-restricted-imports': ['error', { paths: PROCESS_IMPORTS }],
    },
  },
  ...layering,

  prettier,
);
