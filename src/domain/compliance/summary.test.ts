import { describe, expect, it } from 'vitest';
import { addSummaries, complianceStatusOf, summarizeCompliance } from './summary.js';

const rows = (o: Record<string, number>) => Object.entries(o).map(([status, n]) => ({ status, n }));

describe('one definition of compliant / non-compliant / unknown', () => {
  it('a client with no evaluable device is unknown, not 0 %', () => {
    const s = summarizeCompliance(rows({ unknown: 7 }), 9);
    expect(s).toMatchObject({ compliant: 0, 'non-compliant': 0, exempt: 0, unknown: 9, devices: 9, judged: 0, percentCompliant: null, level: 'unknown' });
    expect(summarizeCompliance([], 0)).toMatchObject({ devices: 0, percentCompliant: null, level: 'unknown' });
  });

  it('per cent compliant is compliant ÷ (compliant + non-compliant): exempt and unknown are not judged', () => {
    const s = summarizeCompliance(rows({ compliant: 34, 'non-compliant': 8, exempt: 3, unknown: 2 }), 50);
    expect(s).toMatchObject({ unknown: 5, devices: 50, judged: 42, percentCompliant: 81, level: 'most' });
  });

  it('levels: all (nothing non-compliant), most ≥ 80 %, some ≥ 50 %, few below; 81 % is not "few"', () => {
    expect(summarizeCompliance(rows({ compliant: 5, unknown: 3 }), 8)).toMatchObject({ percentCompliant: 100, level: 'all' });
    expect(summarizeCompliance(rows({ compliant: 81, 'non-compliant': 19 }), 100).level).toBe('most');
    expect(summarizeCompliance(rows({ compliant: 80, 'non-compliant': 20 }), 100).level).toBe('most');
    expect(summarizeCompliance(rows({ compliant: 79, 'non-compliant': 21 }), 100).level).toBe('some');
    expect(summarizeCompliance(rows({ compliant: 50, 'non-compliant': 50 }), 100).level).toBe('some');
    expect(summarizeCompliance(rows({ compliant: 49, 'non-compliant': 51 }), 100).level).toBe('few');
  });

  it('one non-compliant device in a thousand is 99 %, never a rounded 100 %', () => {
    expect(summarizeCompliance(rows({ compliant: 999, 'non-compliant': 1 }), 1000)).toMatchObject({ percentCompliant: 99, level: 'most' });
  });

  it('a stored status it does not know, or none, is unknown; repeated rows add up', () => {
    expect(complianceStatusOf('retired')).toBe('unknown');
    expect(complianceStatusOf(null)).toBe('unknown');
    expect(complianceStatusOf('exempt')).toBe('exempt');
    expect(
      summarizeCompliance(
        [
          { status: 'compliant', n: '2' },
          { status: 'compliant', n: 1n },
          { status: 'bogus', n: 1 },
        ],
        4,
      ),
    ).toMatchObject({
      compliant: 3,
      unknown: 1,
      devices: 4,
    });
  });

  it('adds clients up with the same rules', () => {
    const a = summarizeCompliance(rows({ compliant: 9, 'non-compliant': 1 }), 10);
    const b = summarizeCompliance([], 4);
    expect(addSummaries([a, b])).toMatchObject({ compliant: 9, 'non-compliant': 1, unknown: 4, devices: 14, percentCompliant: 90 });
  });
});
