/**
 * The kline CSV row codec shared by Binance's archives and the daily files: 12 comma-separated
 * values in Binance's column order, times and trades as integers, prices and volumes as the
 * exchange's own decimal strings, kept byte for byte.
 *
 * ```
 * open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,...
 * 1706072400000,39870.10,39880.00,39860.00,39875.50,12.345,1706072459999,492123.45,321,...
 * ```
 *
 * @example
 * ```ts
 * const text = formatKlineCsv(rows);            // header + one line per row, '\n' after each
 * parseKlineCsv(text, 'BTCUSDT.csv');            // the same rows back
 * parseKlineCsvRow(line, 'BTCUSDT-1m.csv', 7);   // one line, e.g. of an archive
 * ```
 */
import { CorruptFileError } from '../errors.js';
import { describeKlineProblem, KLINE_COLUMNS, KLINE_WIDTH, type RawKline } from './kline.js';

/** The header row of a kline CSV (without its line end). */
export const KLINE_CSV_HEADER = KLINE_COLUMNS.join(',');

/**
 * Formats rows as a kline CSV: the header, then each row's 12 values exactly as given, `\n` after
 * every line. Numbers are integers (times, trade count), so nothing is re-formatted.
 *
 * @example
 * ```ts
 * formatKlineCsv([[1706072400000, '0.00162008', ...]]);
 * // 'open_time,open,...,ignore\n1706072400000,0.00162008,...\n'
 * ```
 */
export function formatKlineCsv(rows: readonly RawKline[]): string {
  const lines = [KLINE_CSV_HEADER];
  for (const row of rows) lines.push(row.join(','));
  return `${lines.join('\n')}\n`;
}

/**
 * Parses a kline CSV back into rows: numbers for open time, close time and trades, the original
 * strings for the rest, so `formatKlineCsv(parseKlineCsv(text))` equals `text` byte for byte.
 * Throws CorruptFileError naming `file` and the line on a bad header, a bad row or a missing final
 * line end (a truncated file).
 *
 * @example
 * ```ts
 * const rows = parseKlineCsv(await readFile(path, 'utf8'), path);
 * ```
 */
export function parseKlineCsv(text: string, file: string): RawKline[] {
  const lines = text.split('\n');
  if (lines[0] !== KLINE_CSV_HEADER) {
    throw new CorruptFileError(
      file,
      `line 1 is ${JSON.stringify(lines[0]?.slice(0, 120))}, expected the header ${JSON.stringify(KLINE_CSV_HEADER)}`,
    );
  }
  if (lines[lines.length - 1] !== '') {
    throw new CorruptFileError(file, `line ${lines.length} has no line end: the file is truncated`);
  }
  const rows: RawKline[] = [];
  for (let index = 1; index < lines.length - 1; index += 1) {
    rows.push(parseKlineCsvRow(lines[index]!, file, index + 1));
  }
  return rows;
}

/**
 * Parses one comma-separated kline line (12 fields) into a RawKline, keeping the decimal strings
 * as they are. `transformTime` may rewrite open and close time (archives use it to turn
 * microseconds into milliseconds). Throws CorruptFileError naming the line.
 *
 * @example
 * ```ts
 * parseKlineCsvRow('1706072400000,1.0,...,0', 'BTCUSDT.csv', 2);
 * ```
 */
export function parseKlineCsvRow(
  line: string,
  file: string,
  lineNumber: number,
  transformTime: (time: number) => number = (t) => t,
): RawKline {
  const fields = line.split(',');
  if (fields.length !== KLINE_WIDTH) {
    throw new CorruptFileError(
      file,
      `line ${lineNumber} has ${fields.length} values, expected ${KLINE_WIDTH}: ${JSON.stringify(line.slice(0, 120))}`,
    );
  }
  const row = fields as unknown[];
  for (const index of [0, 6, 8] as const) {
    const text = fields[index]!;
    const value = Number(text);
    // Only canonical integers, so that formatting the number gives back the same text.
    if (String(value) !== text) {
      throw new CorruptFileError(file, `line ${lineNumber}: ${KLINE_COLUMNS[index]} must be an integer, got ${JSON.stringify(text)}`);
    }
    row[index] = index === 8 ? value : transformTime(value);
  }
  const problem = describeKlineProblem(row);
  if (problem !== undefined) throw new CorruptFileError(file, `line ${lineNumber}: ${problem}`);
  return row as RawKline;
}

/**
 * Decodes UTF-8 text, throwing CorruptFileError naming `file` on invalid bytes.
 *
 * @example
 * ```ts
 * decodeUtf8(await readFile(path), path);
 * ```
 */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new CorruptFileError(file, 'is not valid UTF-8 text', { cause: error });
  }
}
