/**
 * Guess the format of an uploaded key file from its content (and, as a last
 * resort, its file extension).
 *
 * Order matters; each test is a strong structural signal:
 * 1. json        first non-space character is `[` or `{`;
 * 2. manage-bde  some line is `ID: {GUID}`;
 * 3. csv         the first line is a header with a delimiter (`,` `;` or tab)
 *                and a recognized password column;
 * 4. txt         a full GUID (in the text or the file name) and at least one
 *                password-shaped line;
 * 5. extension   `.csv`/`.tsv` → csv and `.json` → json, so the specific
 *                parser can explain what is wrong (e.g. no password column);
 *                `.txt` with a password-shaped line → txt.
 * Otherwise null: the caller asks the user to pass --format.
 */
import { extractRecoveryPassword } from '../recovery-password.js';
import { csvHeaderLine } from './csv.js';
import { mapFields } from './fields.js';
import { MANAGE_BDE_ID_LINE, firstGuid, guidFromFileName } from './text-scan.js';
import { MAX_LINE_CHARS, type ImportFormat } from './types.js';

function hasCsvHeader(text: string): boolean {
  const header = csvHeaderLine(text);
  if (header === null || header.text.length > MAX_LINE_CHARS) return false;
  // A delimiter is required: a lone "Recovery Key:" label line starts many
  // TXT files. Single-column CSV files are recognized by extension instead.
  if (!header.text.includes(header.delimiter)) return false;
  // Split naively (quotes stripped): good enough to recognize column names.
  const cells = header.text.split(header.delimiter).map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
  return mapFields(cells).recoveryPassword !== undefined;
}

/** Some line holds a password, or a broken attempt at one (which txt will reject). */
function hasPasswordLine(text: string): boolean {
  return text.split('\n').some((line) => line.length <= MAX_LINE_CHARS && extractRecoveryPassword(line) !== null);
}

export function detectFormat(text: string, fileName?: string): ImportFormat | null {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) return 'json';
  if (MANAGE_BDE_ID_LINE.test(text)) return 'manage-bde';
  if (hasCsvHeader(text)) return 'csv';

  const hasGuid = firstGuid(text) !== null || guidFromFileName(fileName) !== null;
  if (hasGuid && hasPasswordLine(text)) return 'txt';

  const name = fileName ?? '';
  const dot = name.lastIndexOf('.');
  const ext = dot === -1 ? '' : name.slice(dot + 1).toLowerCase();
  if (ext === 'csv' || ext === 'tsv') return 'csv';
  if (ext === 'json') return 'json';
  if (ext === 'txt' && hasPasswordLine(text)) return 'txt';
  return null;
}
