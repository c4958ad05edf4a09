/**
 * CSV exports: RMM custom fields, Intune / spreadsheet exports, scripts.
 *
 * - A header row is required (the first non-empty line). Column names are
 *   matched by synonym (see fields.ts); only a password column is mandatory,
 *   because RMM custom-field exports often carry just the 48 digits.
 * - The delimiter is `,`, `;` (European Excel) or tab, whichever occurs most
 *   in the header line.
 * - Line numbers are real file lines, so an admin can open the file at the
 *   rejected line.
 * - One broken row never costs the file: records are read the way csv-parse
 *   reads them with relaxed quotes and column counts (`readRecords`, linear
 *   and cheap per row; csv-parse itself cost tens of microseconds a row).
 *   Only a quote left open at the end of the file gives up on the whole
 *   file; then we fall back to reading line by line so that just the broken
 *   line is rejected.
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

export interface RawRow {
  /** 1-based line where the row starts. */
  line: number;
  cells: string[];
  /** Set when the line could not be read; the reason it is rejected. */
  broken?: string;
}

const UNBALANCED_QUOTE_REASON = 'this line has an unbalanced quote and could not be read';

/**
 * How the file was always read with csv-parse. Records are now split by `readRecords` below, which
 * follows these options exactly (csv-sameness.test.ts compares the two on random files);
 * csv-parse itself only still reads the rare text with a carriage return in it.
 */
export const CSV_OPTIONS = {
  relax_quotes: true,
  relax_column_count: true,
  skip_empty_lines: true,
  bom: false,
} as const;

function countNewlines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/** Thrown by `readRecords` where csv-parse throws: a quote still open at the end of the text. */
export class CsvQuoteNotClosed extends Error {
  constructor() {
    super('a quote is still open at the end of the CSV text');
    this.name = 'CsvQuoteNotClosed';
  }
}

const QUOTE = 0x22;
const LF = 0x0a;

/** Lone UTF-16 surrogates: csv-parse reads UTF-8 bytes, where each one became U+FFFD. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * The text as csv-parse always received it: a line of spaces or tabs is emptied (to csv-parse it
 * was a kept row, dropped later as blank, at the price of a whole record: half a minute per MB;
 * emptied, it is a skipped empty line and every line number stays the same), and a lone
 * surrogate is U+FFFD as in the UTF-8 bytes csv-parse read.
 */
function preparedText(text: string): string {
  return text.replace(/^[ \t]+$/gm, '').replace(LONE_SURROGATE, '\uFFFD');
}

/**
 * Splits LF-only text into records exactly as csv-parse does with CSV_OPTIONS, in one linear pass
 * and at the cost of a `split` for the common line: csv-parse spent 10-30 µs on every record
 * (an error object per row whose column count differs from the first row's), so a MB of short
 * rows took seconds. `lines[k]` is the 1-based line where record `cells[k]` starts.
 *
 * - A line without a quote character is one record, split at every delimiter; an empty line is
 *   skipped.
 * - A line with a quote goes through the csv-parse state machine (`readQuotedRecord`), which may
 *   run over several lines while a quoted cell is open.
 *
 * Throws CsvQuoteNotClosed where csv-parse throws (its only error with these options).
 */
export function readRecords(text: string, delimiter: CsvDelimiter): { lines: number[]; cells: string[][] } {
  // Two parallel arrays rather than an object per record: with a { line, cells } literal per row,
  // the optimized loop now and then ran at ~10 µs a row for the rest of the process (seen in CPU
  // profiles; likely V8 pretenuring that allocation site), the very cost this reader avoids.
  const lines: number[] = [];
  const cells: string[][] = [];
  const d = delimiter.charCodeAt(0);
  const n = text.length;
  let line = 1;
  let i = 0;
  // Position of the next quote at or after i (cached: searching again from every line of a file
  // without quotes would cost the rest of the file each time).
  let nextQuote = text.indexOf('"');
  while (i < n) {
    let end = text.indexOf('\n', i);
    if (end === -1) end = n;
    if (nextQuote !== -1 && nextQuote < i) nextQuote = text.indexOf('"', i);
    if (nextQuote === -1 || nextQuote >= end) {
      if (end > i) {
        lines.push(line);
        cells.push(text.slice(i, end).split(delimiter));
      }
    } else {
      const record: string[] = [];
      const recordEnd = readQuotedRecord(text, i, d, record);
      if (record.length > 0) {
        lines.push(line);
        cells.push(record);
      }
      line += countNewlines(text.slice(i, recordEnd));
      end = recordEnd;
    }
    line++;
    i = end + 1;
  }
  return { lines, cells };
}

/**
 * One record from `start` (the beginning of a line) the way csv-parse reads it with relaxed
 * quotes: a quote opens a quoted cell only as the cell's first character; inside, `""` is a
 * quote and newlines are text; the closing quote must be followed by the delimiter, a newline,
 * the end of the text or a NUL (csv-parse checks the next byte for truthiness), otherwise the
 * cell continues unquoted with the quote kept on both sides of what was read so far. A quote
 * anywhere else is text. The cells are pushed to `cells`; returns the position of the newline
 * that ends the record (or the text length).
 */
function readQuotedRecord(text: string, start: number, d: number, cells: string[]): number {
  const n = text.length;
  let field = '';
  let wasQuoting = false;
  let seg = start; // unquoted text from seg to i still belongs to field
  let i = start;
  for (;;) {
    if (i >= n) {
      field += text.slice(seg, i);
      if (wasQuoting || cells.length > 0 || field !== '') cells.push(field);
      return n;
    }
    const c = text.charCodeAt(i);
    if (c === LF) {
      field += text.slice(seg, i);
      if (wasQuoting || cells.length > 0 || field !== '') cells.push(field);
      return i;
    }
    if (c === d) {
      cells.push(field + text.slice(seg, i));
      field = '';
      wasQuoting = false;
      seg = ++i;
      continue;
    }
    if (c !== QUOTE || field !== '' || seg !== i) {
      i++;
      continue;
    }
    // A quoted cell.
    let from = i + 1;
    for (;;) {
      const q = text.indexOf('"', from);
      if (q === -1) throw new CsvQuoteNotClosed();
      field += text.slice(from, q);
      const next = q + 1 < n ? text.charCodeAt(q + 1) : -1;
      if (next === QUOTE) {
        field += '"';
        from = q + 2;
        continue;
      }
      wasQuoting = true;
      if (next !== -1 && next !== 0 && next !== d && next !== LF) field = `"${field}"`;
      i = q + 1;
      break;
    }
    seg = i;
  }
}

/** The old reader, kept for text with a carriage return (parseImport never passes one). */
function csvParseRecords(text: string, delimiter: CsvDelimiter): { lines: number[]; cells: string[][] } {
  const out = parse(text, { ...CSV_OPTIONS, delimiter, info: true }) as unknown as {
    record: string[];
    info: { lines: number };
  }[];
  // csv-parse reports the line where each record ENDS; newlines inside quoted fields are the only
  // way a record spans lines, so subtracting them gives the first line.
  const lines = out.map(({ record, info }) => {
    let inner = 0;
    for (const cell of record) inner += countNewlines(cell);
    return info.lines - inner;
  });
  return { lines, cells: out.map((r) => r.record) };
}

/**
 * Whole-file parse: every record with the line where it starts. A record longer than
 * MAX_LINE_CHARS is one rejected row. Throws when csv-parse would give up (a quote still open at
 * the end of the file).
 */
export function parseWhole(text: string, delimiter: CsvDelimiter): RawRow[] {
  const prepared = preparedText(text);
  const { lines, cells } = prepared.includes('\r') ? csvParseRecords(prepared, delimiter) : readRecords(prepared, delimiter);
  return cells.map((record, k) => {
    const line = lines[k] ?? 0;
    let size = 0;
    for (const cell of record) size += cell.length;
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
