import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CSV_OPTIONS, csvHeaderLine, parseWhole, type CsvDelimiter, type RawRow } from './csv.js';
import { decodeText } from './decode.js';
import { LONG_LINE_REASON, MAX_LINE_CHARS } from './types.js';

/**
 * The CSV reader splits records itself (csv-parse cost tens of microseconds a row). It must read
 * every text exactly as csv-parse did with the same options: the same cells, the same start
 * lines, a long record rejected the same way, and a throw (then the line-by-line fallback) for
 * the same texts. The reference below is the reader as it was, csv-parse and all.
 */
function csvParseWhole(text: string, delimiter: CsvDelimiter): RawRow[] {
  const out = parse(text.replace(/^[ \t]+$/gm, ''), { ...CSV_OPTIONS, delimiter, info: true }) as unknown as {
    record: string[];
    info: { lines: number };
  }[];
  return out.map(({ record, info }) => {
    let inner = 0;
    let size = 0;
    for (const cell of record) {
      inner += cell.split('\n').length - 1;
      size += cell.length;
    }
    const line = info.lines - inner;
    return size > MAX_LINE_CHARS ? { line, cells: [], broken: LONG_LINE_REASON } : { line, cells: record };
  });
}

type Outcome = { rows: RawRow[] } | { threw: true };
const outcome = (read: () => RawRow[]): Outcome => {
  try {
    return { rows: read() };
  } catch {
    return { threw: true };
  }
};

function expectSame(text: string, delimiter: CsvDelimiter): void {
  expect(outcome(() => parseWhole(text, delimiter))).toEqual(outcome(() => csvParseWhole(text, delimiter)));
}

const delimiterArb = fc.constantFrom<CsvDelimiter>(',', ';', '\t');

/** Pieces that matter to a CSV reader, glued at random. */
const pieceArb = fc.constantFrom(
  'a',
  'bc',
  '1',
  ' ',
  '  ',
  '\t',
  ',',
  ';',
  '"',
  '""',
  '"x"',
  'a"b',
  '\n',
  '\n\n',
  ' \n',
  '\r\n',
  '\r',
  '\uFEFF',
  '\0',
  'é',
  '😀',
  '\uD83D',
  '\uDE00',
  '\u2028',
  '\u00a0',
);
const soupArb = fc.array(pieceArb, { maxLength: 40 }).map((p) => p.join(''));

/** A cell as exporters write it: plain, or quoted with doubled quotes and maybe line breaks. */
const cellArb = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9 :{}\-.]{0,8}$/),
  fc.array(fc.constantFrom('x', 'Y', ' ', '"', ',', ';', '\t', '\n', '-'), { maxLength: 8 }).map((p) => `"${p.join('').replaceAll('"', '""')}"`),
);
/** A file of rows: delimiter, line ending (LF or CRLF), blank and whitespace lines, maybe a BOM. */
const fileArb = fc
  .record({
    delimiter: delimiterArb,
    eol: fc.constantFrom('\n', '\r\n'),
    bom: fc.boolean(),
    rows: fc.array(
      fc.oneof({ weight: 4, arbitrary: fc.array(cellArb, { minLength: 1, maxLength: 5 }) }, { weight: 1, arbitrary: fc.constantFrom([], ['  '], ['\t']) }),
      {
        maxLength: 12,
      },
    ),
    trailingEol: fc.boolean(),
  })
  .map(({ delimiter, eol, bom, rows, trailingEol }) => {
    const body = rows.map((cells) => cells.join(delimiter)).join(eol) + (trailingEol ? eol : '');
    return (bom ? '\uFEFF' : '') + body.replaceAll('\n', eol);
  });

describe('the CSV reader reads every text as csv-parse did', () => {
  it('random soups of quotes, delimiters, line breaks, BOMs, NULs and surrogates', () => {
    fc.assert(
      fc.property(soupArb, delimiterArb, (text, delimiter) => {
        expectSame(text, delimiter);
        expectSame(text.replace(/\r\n?/g, '\n'), delimiter);
      }),
      { numRuns: 3000 },
    );
  });

  it('random CSV files, decoded as uploads are, with the delimiter detected from the header', () => {
    fc.assert(
      fc.property(fileArb, (file) => {
        // As parseImport sees it: bytes (a UTF-8 BOM is dropped, CRLF becomes LF), then the detected delimiter.
        const text = decodeText(new TextEncoder().encode(file));
        const delimiter = csvHeaderLine(text)?.delimiter ?? ',';
        expectSame(text, delimiter);
        // And the raw text, carriage returns and all.
        expectSame(file, delimiter);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['a quoted cell with line breaks', 'RecoveryPassword,Device\n"a\nb\n",x\n\n"c""d",y\n'],
    ['a closing quote followed by text', 'a,"b"c,d\n"e"f"g"\n""x\n'],
    ['a closing quote followed by NUL', '"a"\0b,c\n'],
    ['an empty quoted line', 'a\n""\n\nb'],
    ['a quote never closed', 'a,b\n"c,d\ne\n'],
    ['lines of spaces and tabs', 'a,b\n  \n\t\n \t x\nc'],
    ['a BOM and no final newline', '\uFEFFRecoveryPassword;Device\nx;y'],
    ['a plain line over 64 KB', `a,b\n${'x,'.repeat(MAX_LINE_CHARS / 2 + 1)}\nc,d\n`],
    ['a quoted record over 64 KB', `a,b\n"${'x\n'.repeat(MAX_LINE_CHARS / 2 + 1)}",y\nc,d\n`],
    ['a line separator next to spaces', 'a,b\n  \u2028  \u2028c\n'],
  ])('%s', (_name, text) => {
    for (const d of [',', ';', '\t'] as const) expectSame(text, d);
  });
});
