import { describe, expect, it } from 'vitest';
import { confusableWith, nameSkeleton, normalizeName } from './names.js';

describe('normalizeName', () => {
  it('folds compatibility forms and whitespace', () => {
    expect(normalizeName('  Ｃontoso   Dental ')).toEqual({ ok: true, value: 'Contoso Dental' });
  });
  it.each([
    ['zero-width space', 'Contoso\u200b Dental'],
    ['bidi override', 'Contoso Dental\u202e'],
    ['bidi isolate', '\u2066Contoso\u2069'],
    ['BOM inside', 'Con\ufefftoso'],
    ['Hangul filler', 'Contoso\u3164'],
  ])('refuses a %s', (_what, name) => {
    expect(normalizeName(name).ok).toBe(false);
  });
  it('refuses control characters', () => {
    expect(normalizeName('Con\u0007toso')).toEqual({ ok: false, reason: 'A name cannot contain control characters.' });
  });
  it('keeps ordinary names in any script', () => {
    for (const n of ['Müller GmbH', 'Ωmega Ltd', 'Общество', '株式会社']) expect(normalizeName(n)).toEqual({ ok: true, value: n });
  });
});

describe('nameSkeleton / confusableWith', () => {
  const existing = [{ id: '1', name: 'Contoso Dental' }];
  it.each(['C\u043entoso Dental', 'Ｃontoso Dental', 'СОNTOSO DENTAL', 'Contoso Dentaⅼ', 'Contosо Dental'])('%s looks like Contoso Dental', (n) => {
    expect(confusableWith(n, existing)?.name).toBe('Contoso Dental');
  });
  it('the same name in another case is not a look-alike (that is a duplicate)', () => {
    expect(confusableWith('contoso dental', existing)).toBeUndefined();
  });
  it('different names stay different', () => {
    expect(confusableWith('Contoso Dentistry', existing)).toBeUndefined();
    expect(nameSkeleton('Fabrikam')).not.toBe(nameSkeleton('Contoso'));
  });
});
