/**
 * CSV exports: RMM custom fields, Intune / spreadsheet exports, scripts.
 *
 * - A header row is required (the first non-empty line). Column names are
 *   matched by synonym (see fields.ts); only a password column is mandatory,
 *   because RMM custom-field exports often carry just the 48 digits.
 * - The delimiter is `,`, `;` (European Excel) or tab, whichever occurs most
 *   in the header line.
 * - Line numbers are real file lines, taken from csv-parse's `info`, so an
 *   admin can open the file at the rejected line.
 * - One broken row never costs the file: csv-parse runs with relaxed quotes
 *   and column counts. Only an unbalanced quote makes csv-parse give up on
 *   the rest of the file; then we fall back to reading line by line so that
 *   just the broken line is rejected.
 */
import { parse } from 'csv-parse/sync';
import { findRecoveryPasswordCandidates } from '../recovery-password.js';
import { buildRecord, mapFields, passwordFieldNamesForMessage, type FieldName } from './fields.js';
import { ImportFormatError, LONG_LINE_REASON, MAX_LINE_CHARS, Rejections, type ImportRecord, type ParsedRows } from './types.js';

export type CsvDelimiter = ',' | ';' | '\t';

const DELIMITERS: readonly CsvDelimiter[] = [',', ';', '\t'];

/** Pick the delimiter that occurs most often (outside quotes) in the header line; ties → comma. */
export function detectDelimiter(headerLine: string): CsvDelimiter {
  const counts = new Map<string, number>(DELIMITERS.map((d) => [d, 0]));
  let inQuotes = false;
  for (const ch of headerLine) {
    if (ch === '"') inQuotes = !inQuotes;
    else if (!inQuotes && counts.has(ch)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  }
  let best: CsvDelimiter = ',';
  let bestCount = 0;
  for (const d of DELIMITERS) {
    const c = counts.get(d) ?? 0;
    if (c > bestCount) {
      best = d;
      bestCount = c;
    }
  }
  return best;
}

/** First line with any non-whitespace content, with its 1-based number. */
export function firstContentLine(text: string): { line: number; text: string } | null {
  let lineNo = 1;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    if (line.trim() !== '') return { line: lineNo, text: line };
    if (end === text.length) break;
    start = end + 1;
    lineNo++;
  }
  return null;
}

interface RawRow {
  /** 1-based line where the row starts. */
  line: number;
  cells: string[];
  /** Set when the line could not be read; the reason it is rejected. */
  broken?: string;
}

const UNBALANCED_QUOTE_REASON = 'this line has an unbalanced quote and could not be read';

const CSV_OPTIONS = {
  relax_quotes: true,
  relax_column_count: true,
  // Kept empty lines cost csv-parse a hundred microseconds each (a file of blank lines took
  // minutes), so they are skipped and line numbers come from `info` instead.
  skip_empty_lines: true,
  bom: false,
} as const;

function countNewlines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Whole-file parse. csv-parse reports the line where each record ENDS; newlines inside quoted
 * fields are the only way a record spans lines (the text is LF-normalized), so subtracting them
 * gives the first line. A record longer than MAX_LINE_CHARS is one rejected row.
 */
function parseWhole(text: string, delimiter: CsvDelimiter): RawRow[] {
  // A line of spaces or tabs is a blank row (dropped below) but not an empty line to csv-parse,
  // which keeps it at the same cost per row: a file of them took half a minute per MB. Emptied
  // here, csv-parse skips them; the line count, and so every line number, stays the same.
  const out = parse(text.replace(/^[ \t]+$/gm, ''), { ...CSV_OPTIONS, delimiter, info: true }) as unknown as {
    record: string[];
    info: { lines: number };
  }[];
  return out.map(({ record, info }) => {
    let inner = 0;
    let size = 0;
    for (const cell of record) {
      inner += countNewlines(cell);
      size += cell.length;
    }
    const line = info.lines - inner;
    return size > MAX_LINE_CHARS ? { line, cells: [], broken: LONG_LINE_REASON } : { line, cells: record };
  });
}

/**
 * Fallback after csv-parse gave up (an unbalanced quote swallowed the rest of
 * the file): every physical line is its own record. Lines that still cannot
 * be read are reported as `broken` so the caller can reject them.
 */
function parseLineByLine(text: string, delimiter: CsvDelimiter): RawRow[] {
  const rows: RawRow[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.length > MAX_LINE_CHARS) {
      rows.push({ line: i + 1, cells: [], broken: LONG_LINE_REASON });
      continue;
    }
    if (line.trim() === '') continue;
    if (!line.includes('"')) {
      rows.push({ line: i + 1, cells: line.split(delimiter) });
      continue;
    }
    const cells = splitCsvLine(line, delimiter);
    rows.push(cells === null ? { line: i + 1, cells: [], broken: UNBALANCED_QUOTE_REASON } : { line: i + 1, cells });
  }
  return rows;
}

/**
 * One physical line split into cells in a single pass, the way csv-parse reads it with relaxed
 * quotes: a cell that starts with `"` runs to the next lone `"` (`""` is a quote), which must be
 * followed by the delimiter or the end of the line; a quote inside an unquoted cell is kept as
 * is. Null when a quoted cell is never closed or is followed by other text.
 */
export function splitCsvLine(line: string, delimiter: CsvDelimiter): string[] | null {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (line.charCodeAt(i) === 0x22) {
      let cell = '';
      let from = i + 1;
      for (;;) {
        const q = line.indexOf('"', from);
        if (q === -1) return null;
        cell += line.slice(from, q);
        if (line.charCodeAt(q + 1) === 0x22) {
          cell += '"';
          from = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      cells.push(cell);
      if (i === line.length) return cells;
      if (line[i] !== delimiter) return null;
      i++;
      continue;
    }
    const end = line.indexOf(delimiter, i);
    if (end === -1) {
      cells.push(line.slice(i));
      return cells;
    }
    cells.push(line.slice(i, end));
    i = end + 1;
  }
}

/** Excel's optional first line `sep=;` names the delimiter. */
const SEP_LINE = /^\s*"?sep=([,;\t])"?\s*$/i;

/** The header line (after an optional `sep=` line) and the delimiter to use. */
export function csvHeaderLine(text: string): { line: number; text: string; delimiter: CsvDelimiter } | null {
  const first = firstContentLine(text);
  if (first === null) return null;
  const sep = SEP_LINE.exec(first.text)?.[1] as CsvDelimiter | undefined;
  if (sep === undefined) return { ...first, delimiter: detectDelimiter(first.text) };
  const rest = text.split('\n').slice(first.line).join('\n');
  const next = firstContentLine(rest);
  if (next === null) return null;
  return { line: first.line + next.line, text: next.text, delimiter: sep };
}

export function parseCsv(text: string): ParsedRows {
  const first = csvHeaderLine(text);
  if (first === null) throw new ImportFormatError('the CSV file is empty');
  const delimiter = first.delimiter;

  let rows: RawRow[];
  try {
    rows = parseWhole(text, delimiter);
  } catch {
    rows = parseLineByLine(text, delimiter);
  }

  const isBlank = (r: RawRow): boolean => r.broken === undefined && r.cells.every((c) => c.trim() === '');
  // The header is the first non-blank row at or after the header line (this
  // skips an Excel `sep=` line).
  const headerIdx = rows.findIndex((r) => r.line >= first.line && !isBlank(r));
  const header = rows[headerIdx];
  if (header === undefined || rows.slice(0, headerIdx + 1).some((r) => r.broken !== undefined)) {
    throw new ImportFormatError('the CSV header line could not be read (check for an unbalanced quote or a very long line)');
  }

  const columns = mapFields(header.cells);
  const passwordCol = columns.recoveryPassword;
  if (passwordCol === undefined) {
    // Never echo header cells: a headerless file would have a password there.
    const looksLikeData = header.cells.some((c) => findRecoveryPasswordCandidates(c).length > 0);
    throw new ImportFormatError(
      looksLikeData
        ? 'the first line of the CSV file must be a header row naming the columns, but it contains a recovery password'
        : `the CSV file has no recovery password column; name it ${passwordFieldNamesForMessage()}`,
    );
  }

  const records: ImportRecord[] = [];
  const rejected = new Rejections();
  for (let i = headerIdx + 1; i < rows.length; i++) {
    const row = rows[i];
    if (row === undefined || isBlank(row)) continue;
    if (row.broken !== undefined) {
      rejected.add(row.line, row.broken);
      continue;
    }
    const get = (field: FieldName): unknown => {
      const col = columns[field];
      return col === undefined ? undefined : row.cells[col];
    };
    const built = buildRecord(row.line, get);
    if (built.ok) records.push(built.value);
    else rejected.add(row.line, built.reason);
  }
  return rejected.rows(records);
}
