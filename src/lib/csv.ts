import { stringify as stringifyStream, type Stringifier } from 'csv-stringify';
import { stringify as stringifySync } from 'csv-stringify/sync';

/**
 * The one CSV writer of the product (audit export, reports, console exports, report e-mails).
 *
 * Text in a cell can come from anyone: a User-Agent or e-mail typed at a failed sign-in, a
 * hostname or serial an agent reports. A spreadsheet runs a cell that starts with `=`, `+`, `-`,
 * `@`, a tab or a carriage return as a formula (`=HYPERLINK(…)` sends data away when clicked), so
 * such text is written with a leading `'`, which spreadsheets show as plain text. Numbers are
 * written as they are.
 */
const FORMULA_START = /^[=+\-@\t\r]/;

export function neutraliseCell(value: string): string {
  return FORMULA_START.test(value) ? `'${value}` : value;
}

const options = (columns: string[]) => ({ header: true, columns, cast: { string: neutraliseCell } });

/** A streaming CSV writer with a header row: write rows (arrays in column order), pipe it out. */
export function csvWriter(columns: string[]): Stringifier {
  return stringifyStream(options(columns));
}

/** A small CSV document at once (bounded exports). */
export function csvText(columns: string[], rows: unknown[][]): string {
  return stringifySync(rows, options(columns));
}
