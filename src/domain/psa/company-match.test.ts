import { describe, expect, it } from 'vitest';
import { nameScore, nameWords, suggestCompany } from './company-match.js';

const companies = [
  { id: '1', name: 'Contoso Ltd' },
  { id: '2', name: 'Contoso Pharmaceuticals' },
  { id: '3', name: 'Fabrikam, Inc.' },
  { id: '4', name: 'Northwind Traders' },
  { id: '5', name: 'Northwind Traders GmbH' },
  { id: '6', name: 'Café Müller & Söhne' },
];

describe('PSA company suggestions by name', () => {
  it('reduces names to their significant words', () => {
    expect(nameWords('Fabrikam, Inc.')).toEqual(['fabrikam']);
    expect(nameWords('The Contoso Group Ltd')).toEqual(['contoso']);
    expect(nameWords('Café Müller & Söhne')).toEqual(['cafe', 'muller', 'sohne']);
  });

  it('an exact match of significant words wins over a near-duplicate', () => {
    expect(suggestCompany('Contoso Limited', companies)).toEqual({ id: '1', name: 'Contoso Ltd', score: 1 });
    expect(suggestCompany('Contoso Pharmaceuticals Inc', companies)?.id).toBe('2');
    expect(suggestCompany('FABRIKAM', companies)?.id).toBe('3');
    expect(suggestCompany('Cafe Muller and Sohne', companies)?.id).toBe('6');
  });

  it('a tie or a weak overlap is no suggestion', () => {
    // Both "Northwind Traders" companies reduce to the same words: the person must choose.
    expect(suggestCompany('Northwind Traders', companies)).toBeNull();
    expect(suggestCompany('Tailspin Toys', companies)).toBeNull();
    expect(nameScore('Contoso', 'Contoso Pharmaceuticals')).toBe(0.5);
    expect(suggestCompany('Ltd', companies)).toBeNull();
  });

  it('skips companies already linked to another client', () => {
    expect(suggestCompany('Contoso', companies, new Set(['1']))?.id).toBe('2');
    expect(suggestCompany('Fabrikam', companies, new Set(['3']))).toBeNull();
  });
});
