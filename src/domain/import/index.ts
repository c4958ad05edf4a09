/**
 * Key-file import: bytes in, records and per-line rejections out.
 *
 * Pure: no file system, no I/O. The caller reads the file and decides what to
 * store; this module only decodes, detects the format and parses.
 */
import { extractRecoveryPassword } from '../recovery-password.js';
import { parseCsv } from './csv.js';
import { decodeText } from './decode.js';
import { detectFormat } from './detect.js';
import { parseJson } from './json.js';
import { parseManageBde } from './manage-bde.js';
import { parseTxt } from './txt.js';
import { IMPORT_FORMATS, ImportFormatError, type ImportFormat, type ParsedImport, type ParsedRows } from './types.js';

export { decodeText } from './decode.js';
export { detectFormat } from './detect.js';
export {
  IMPORT_FORMATS,
  ImportFormatError,
  MAX_REPORTED_REJECTIONS,
  type ImportFormat,
  type ImportRecord,
  type ImportRejection,
  type ParsedImport,
} from './types.js';
export { parseTimestamp } from './fields.js';

/** The file name for messages: base name only, no control characters, bounded length. */
function displayName(fileName: string | undefined): string {
  if (fileName === undefined) return 'the file';
  const base = (fileName.split(/[\\/]/).pop() ?? '').replace(/\p{C}/gu, '').trim();
  // Someone may have named the file after the key it holds; never echo that.
  if (base === '' || extractRecoveryPassword(base) !== null) return 'the file';
  return base.length > 120 ? `${base.slice(0, 117)}...` : base;
}

/**
 * Parse an uploaded key file.
 *
 * `format` 'auto' (the default) detects it; throws ImportFormatError when the
 * format cannot be told or the whole file is unusable. Bad rows never throw:
 * they come back in `rejected` with their line numbers.
 */
export function parseImport(input: { bytes: Uint8Array; fileName?: string; format?: ImportFormat | 'auto' }): ParsedImport {
  const text = decodeText(input.bytes);
  if (text.trim() === '') throw new ImportFormatError(`${displayName(input.fileName)} is empty`);

  const requested = input.format ?? 'auto';
  let format: ImportFormat;
  if (requested === 'auto') {
    const detected = detectFormat(text, input.fileName);
    if (detected === null) {
      throw new ImportFormatError(`could not tell the format of ${displayName(input.fileName)}; pass --format txt|manage-bde|csv|json`);
    }
    format = detected;
  } else if ((IMPORT_FORMATS as readonly string[]).includes(requested)) {
    format = requested;
  } else {
    throw new ImportFormatError('unknown import format; use txt, manage-bde, csv or json');
  }

  let rows: ParsedRows;
  switch (format) {
    case 'txt':
      rows = parseTxt(text, input.fileName);
      break;
    case 'manage-bde':
      rows = parseManageBde(text);
      break;
    case 'csv':
      rows = parseCsv(text);
      break;
    case 'json':
      rows = parseJson(text);
      break;
  }
  return { format, ...rows };
}
