/**
 * Names people read and choose between (clients, above all): one normal form, no invisible
 * characters, and a "skeleton" that tells when two different names look the same on screen.
 *
 * - NFKC folds compatibility forms (full-width `Ｃontoso`, ligatures, superscripts) into the
 *   ordinary characters they display as;
 * - format characters (Unicode category Cf: zero-width spaces and joiners, bidi embeddings,
 *   overrides and isolates, soft hyphens, the BOM) and other invisible fillers are refused, since
 *   a name carrying them looks like another name or reorders the text around it;
 * - `nameSkeleton` maps the common look-alikes of Latin letters (Cyrillic, Greek) to Latin,
 *   drops accents and case, so "Cоntoso Dental" (Cyrillic о) and "Contoso Dental" share one.
 *   It is a short list of the letters that matter in practice, not the full Unicode table.
 */
import { fail, ok, type Result } from './result.js';

/** Characters with no visible glyph that Cf does not cover (Hangul fillers, the combining grapheme joiner, Braille blank). */
const INVISIBLE = /\p{Cf}|\u034F|\u115F|\u1160|\u17B4|\u17B5|[\u2800\u3164\uFFA0]/u;
const CONTROL = /\p{Cc}/u;

/** NFKC, whitespace collapsed and trimmed; refused when it holds control or invisible characters. */
export function normalizeName(raw: string, what = 'A name'): Result<string> {
  const folded = raw.normalize('NFKC');
  // Before whitespace is collapsed: JavaScript counts U+FEFF as a space.
  if (INVISIBLE.test(folded)) return fail(`${what} cannot contain invisible or text-direction characters (zero-width spaces, bidi controls).`);
  const name = folded.trim().replace(/\s+/g, ' ');
  if (CONTROL.test(name)) return fail(`${what} cannot contain control characters.`);
  return ok(name);
}

/** Look-alikes → the Latin letter they are mistaken for. Both cases, mapped before lower-casing. */
const CONFUSABLES: Record<string, string> = {
  // Cyrillic
  а: 'a',
  А: 'A',
  в: 'b',
  В: 'B',
  с: 'c',
  С: 'C',
  ԁ: 'd',
  е: 'e',
  Е: 'E',
  ё: 'e',
  Ё: 'E',
  һ: 'h',
  Н: 'H',
  і: 'i',
  І: 'I',
  ї: 'i',
  Ї: 'I',
  ј: 'j',
  Ј: 'J',
  к: 'k',
  К: 'K',
  ӏ: 'l',
  Ӏ: 'I',
  м: 'm',
  М: 'M',
  о: 'o',
  О: 'O',
  р: 'p',
  Р: 'P',
  ԛ: 'q',
  ѕ: 's',
  Ѕ: 'S',
  т: 't',
  Т: 'T',
  у: 'y',
  У: 'Y',
  ԝ: 'w',
  Ԝ: 'W',
  х: 'x',
  Х: 'X',
  ү: 'y',
  Ү: 'Y',
  ɡ: 'g',
  // Greek
  α: 'a',
  Α: 'A',
  Β: 'B',
  ϲ: 'c',
  Ϲ: 'C',
  ε: 'e',
  Ε: 'E',
  Ζ: 'Z',
  Η: 'H',
  ι: 'i',
  Ι: 'I',
  Κ: 'K',
  κ: 'k',
  Μ: 'M',
  Ν: 'N',
  ν: 'v',
  ο: 'o',
  Ο: 'O',
  ρ: 'p',
  Ρ: 'P',
  Τ: 'T',
  τ: 't',
  υ: 'u',
  Υ: 'Y',
  Χ: 'X',
  χ: 'x',
  ϳ: 'j',
  // Latin look-alikes of other Latin letters
  ı: 'i',
  ȷ: 'j',
  ł: 'l',
  ß: 'ss',
  // Dashes and quotes
  '\u2010': '-',
  '\u2011': '-',
  '\u2012': '-',
  '\u2013': '-',
  '\u2014': '-',
  '\u2015': '-',
  '\u2212': '-',
  '\u2018': "'",
  '\u2019': "'",
  '\u02BC': "'",
  '\u201C': '"',
  '\u201D': '"',
};
const CONFUSABLE_CHARS = new RegExp(
  `[${Object.keys(CONFUSABLES)
    .join('')
    .replace(/[\]\\^-]/g, '\\$&')}]`,
  'gu',
);

/**
 * What a name looks like, for comparing two names: equal skeletons mean a reader could take one
 * for the other. Not for display or storage.
 */
export function nameSkeleton(name: string): string {
  return (
    name
      .normalize('NFKC')
      .replace(CONFUSABLE_CHARS, (c) => CONFUSABLES[c] ?? c)
      .normalize('NFD')
      .replace(/\p{M}/gu, '')
      .replace(INVISIBLE_ALL, '')
      // Capital I and small l are the same stroke in most sans-serif fonts.
      .replace(/I/g, 'l')
      .toLowerCase()
      .replace(/\s+/g, ' ')
      .trim()
  );
}
const INVISIBLE_ALL = new RegExp(INVISIBLE.source, 'gu');

/** The first of `existing` that looks like `name` without being the same name (case aside), or undefined. */
export function confusableWith<T extends { name: string }>(name: string, existing: readonly T[]): T | undefined {
  const skeleton = nameSkeleton(name);
  const key = name.toLowerCase();
  return existing.find((e) => e.name.toLowerCase() !== key && nameSkeleton(e.name) === skeleton);
}
