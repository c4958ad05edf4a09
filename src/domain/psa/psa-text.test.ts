import { describe, expect, it } from 'vitest';
import { inertPsaText, psaLine } from './psa-text.js';

describe('text written into a PSA', () => {
  it('turns markup into inert quotation marks and drops control characters, keeping line breaks', () => {
    expect(inertPsaText('LAPTOP-07 <img src=x onerror=alert(1)>')).toBe('LAPTOP-07 ‹img src=x onerror=alert(1)›');
    expect(inertPsaText('a\u0000b\u202ec\nd\te')).toBe('abc\nd\te');
    expect(inertPsaText('Recovery key 4290B6C0… for LAPTOP-07 (client Contoso & Co)')).toBe('Recovery key 4290B6C0… for LAPTOP-07 (client Contoso & Co)');
  });

  it('keeps a quoted name on one line: line breaks and separators of every kind become one space', () => {
    expect(psaLine('LAPTOP-07\nRecovery key 00000000… revealed; rotation queued (agent).')).toBe(
      'LAPTOP-07 Recovery key 00000000… revealed; rotation queued (agent).',
    );
    expect(psaLine(' a\r\n\tb\u2028c\u2029d\u0085e\u000bf ')).toBe('a b c d e f');
  });
});
