/**
 * Suggests the PSA company for a Keywarden client by name. Names differ in the small print
 * ("Contoso Ltd" vs "Contoso Limited", "Fabrikam, Inc." vs "Fabrikam"), so both are reduced to their
 * significant words first. A suggestion is only a suggestion: a person confirms every link, and
 * near-duplicates ("Contoso" vs "Contoso Pharmaceuticals") are never suggested over an exact match.
 */

/** Legal-form and filler words that do not tell two companies apart. */
const NOISE = new Set([
  'ltd',
  'limited',
  'inc',
  'incorporated',
  'llc',
  'llp',
  'lp',
  'plc',
  'corp',
  'corporation',
  'co',
  'company',
  'gmbh',
  'ag',
  'kg',
  'sa',
  'sarl',
  'sas',
  'bv',
  'nv',
  'srl',
  'spa',
  'pty',
  'pte',
  'ab',
  'as',
  'oy',
  'aps',
  'the',
  'and',
  'group',
  'holdings',
]);

export function nameWords(name: string): string[] {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/&/g, ' and ')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter((w) => w && !NOISE.has(w));
}

/** 1 for the same significant words, less for overlap (Jaccard of the word sets), 0 for none. */
export function nameScore(a: string, b: string): number {
  const x = nameWords(a);
  const y = nameWords(b);
  if (!x.length || !y.length) return 0;
  if (x.join(' ') === y.join(' ')) return 1;
  const sx = new Set(x);
  const sy = new Set(y);
  let both = 0;
  for (const w of sx) if (sy.has(w)) both += 1;
  return both / (sx.size + sy.size - both);
}

export type CompanyCandidate = { id: string; name: string };
export type CompanySuggestion = { id: string; name: string; score: number };

/** Below this, two names are not offered as the same company. */
export const SUGGEST_MIN_SCORE = 0.5;

/**
 * The best company for a client name, or null: an exact match of significant words wins; otherwise
 * the highest overlap at or above SUGGEST_MIN_SCORE, and only when no other company scores the same
 * (a tie is no suggestion: the person must choose).
 */
export function suggestCompany(clientName: string, companies: readonly CompanyCandidate[], taken: ReadonlySet<string> = new Set()): CompanySuggestion | null {
  let best: CompanySuggestion | null = null;
  let tie = false;
  for (const c of companies) {
    if (taken.has(c.id)) continue;
    const score = nameScore(clientName, c.name);
    if (score < SUGGEST_MIN_SCORE) continue;
    if (!best || score > best.score) {
      best = { id: c.id, name: c.name, score };
      tie = false;
    } else if (score === best.score) tie = true;
  }
  return best && !tie ? { ...best, score: Math.round(best.score * 100) / 100 } : null;
}
