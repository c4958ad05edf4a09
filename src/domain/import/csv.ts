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
import { ImportFormatError, type ImportRecord, type ImportRejection, type ParsedRows } from './types.js';

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
}

const CSV_OPTIONS = {
  relax_quotes: true,
  relax_column_count: true,
  // Blank lines are kept (and skipped by us) so line numbers can be counted.
  skip_empty_lines: false,
  bom: false,
} as const;

function countNewlines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Whole-file parse.
 *
 * Line numbers without csv-parse's `info` option (which costs about a third
 * of the parse time on 100k rows): empty lines are kept as records, so every
 * record spans exactly 1 + (newlines inside its quoted fields) lines, and a
 * running sum gives each record's first line. If the sum does not match the
 * file's line count (a csv-parse behaviour we did not anticipate), we re-parse
 * with `info` rather than report wrong lines.
 */
function parseWhole(text: string, delimiter: CsvDelimiter): RawRow[] {
  const records = parse(text, { ...CSV_OPTIONS, delimiter }) as string[][];
  const rows: RawRow[] = [];
  let line = 1;
  for (const cells of records) {
    rows.push({ line, cells });
    let inner = 0;
    for (const cell of cells) inner += countNewlines(cell);
    line += 1 + inner;
  }
  const totalLines = countNewlines(text) + (text.endsWith('\n') ? 0 : 1);
  if (line - 1 === totalLines) return rows;
  return parseWithInfo(text, delimiter);
}

/** Slower variant: csv-parse reports the line where each record ENDS. */
function parseWithInfo(text: string, delimiter: CsvDelimiter): RawRow[] {
  const out = parse(text, { ...CSV_OPTIONS, delimiter, info: true }) as unknown as {
    record: string[];
    info: { lines: number };
  }[];
  return out.map(({ record, info }) => {
    // Newlines inside quoted fields are the only way a record spans lines
    // (the text is LF-normalized), so subtract them to get the first line.
    let inner = 0;
    for (const cell of record) inner += countNewlines(cell);
    return { line: info.lines - inner, cells: record };
  });
}

/**
 * Fallback after csv-parse gave up (an unbalanced quote swallowed the rest of
 * the file): every physical line is its own record. Lines that still cannot
 * be read are reported as `broken` so the caller can reject them.
 */
function parseLineByLine(text: string, delimiter: CsvDelimiter): { rows: RawRow[]; broken: number[] } {
  const rows: RawRow[] = [];
  const broken: number[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.trim() === '') continue;
    if (!line.includes('"')) {
      rows.push({ line: i + 1, cells: line.split(delimiter) });
      continue;
    }
    try {
      const rec = parse(line, { ...CSV_OPTIONS, delimiter }) as string[][];
      rows.push({ line: i + 1, cells: rec[0] ?? [] });
    } catch {
      broken.push(i + 1);
    }
  }
  return { rows, broken };
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
  let broken: number[] = [];
  try {
    rows = parseWhole(text, delimiter);
  } catch {
    ({ rows, broken } = parseLineByLine(text, delimiter));
  }

  const isBlank = (r: RawRow): boolean => r.cells.every((c) => c.trim() === '');
  // The header is the first non-blank row at or after the header line (this
  // skips an Excel `sep=` line).
  const headerIdx = rows.findIndex((r) => r.line >= first.line && !isBlank(r));
  const header = rows[headerIdx];
  if (header === undefined || (broken[0] !== undefined && broken[0] <= header.line)) {
    throw new ImportFormatError('the CSV header line could not be read (check for an unbalanced quote)');
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
  const rejected: ImportRejection[] = broken
    .filter((l) => l > header.line)
    .map((line) => ({ line, reason: 'this line has an unbalanced quote and could not be read' }));

  for (let i = headerIdx + 1; i < rows.length; i++) {
    const row = rows[i];
    if (row === undefined || isBlank(row)) continue;
    const get = (field: FieldName): unknown => {
      const col = columns[field];
      return col === undefined ? undefined : row.cells[col];
    };
    const built = buildRecord(row.line, get);
    if (built.ok) records.push(built.value);
    else rejected.push({ line: row.line, reason: built.reason });
  }
  rejected.sort((a, b) => a.line - b.line);
  return { records, rejected };
}
