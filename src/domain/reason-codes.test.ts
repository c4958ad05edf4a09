import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REASON_CODES, isReasonCode, parseRevealReason, type ReasonCode } from './reason-codes.js';

describe('REASON_CODES', () => {
  it('has the 13 MBAM reasons plus other, with unique kebab-case codes', () => {
    expect(REASON_CODES.map((r) => r.code)).toEqual([
      'os-boot-order-changed',
      'bios-changed',
      'os-files-changed',
      'lost-startup-key',
      'lost-pin',
      'tpm-reset',
      'lost-passphrase',
      'lost-smartcard',
      'reset-pin-lockout',
      'turn-on-tpm',
      'turn-off-tpm',
      'change-tpm-password',
      'clear-tpm',
      'other',
    ]);
    for (const r of REASON_CODES) {
      expect(r.code).toMatch(/^[a-z]+(-[a-z]+)*$/);
      expect(r.label.length).toBeGreaterThan(0);
    }
    expect(REASON_CODES.find((r) => r.code === 'os-boot-order-changed')?.label).toBe('Operating System Boot Order changed');
  });

  it('isReasonCode', () => {
    expect(isReasonCode('lost-pin')).toBe(true);
    expect(isReasonCode('Lost PIN')).toBe(false);
    expect(isReasonCode('')).toBe(false);
    expect(isReasonCode(undefined)).toBe(false);
  });
});

describe('parseRevealReason', () => {
  it('accepts a code without a ticket', () => {
    expect(parseRevealReason({ reason: 'lost-pin' })).toEqual({
      ok: true,
      value: { reason: 'lost-pin', ticket: null },
    });
    expect(parseRevealReason({ reason: ' TPM-Reset ', ticket: '  ' })).toEqual({
      ok: true,
      value: { reason: 'tpm-reset', ticket: null },
    });
  });

  it('trims and keeps a ticket', () => {
    expect(parseRevealReason({ reason: 'bios-changed', ticket: '  INC-4711 ' })).toEqual({
      ok: true,
      value: { reason: 'bios-changed', ticket: 'INC-4711' },
    });
  });

  it('requires a ticket for other', () => {
    expect(parseRevealReason({ reason: 'other' })).toEqual({
      ok: false,
      reason: 'reason "other" needs a ticket reference',
    });
    expect(parseRevealReason({ reason: 'other', ticket: ' \t' }).ok).toBe(false);
    expect(parseRevealReason({ reason: 'other', ticket: 'Ticket #123 – Ümlaut ok' })).toEqual({
      ok: true,
      value: { reason: 'other', ticket: 'Ticket #123 – Ümlaut ok' },
    });
  });

  it('lists the valid codes for an unknown reason', () => {
    const r = parseRevealReason({ reason: 'because' });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      for (const { code } of REASON_CODES) expect(r.reason).toContain(code);
    }
  });

  it.each([
    ['x'.repeat(201), 'the ticket reference is longer than 200 characters'],
    ['INC-1\nINC-2', 'the ticket reference may contain only printable characters on one line'],
    ['INC\u0000', 'the ticket reference may contain only printable characters on one line'],
    ['INC\u202E1', 'the ticket reference may contain only printable characters on one line'],
    ['INC\u200B1', 'the ticket reference may contain only printable characters on one line'],
    [
      'INC-1 496298-461032-321464-595518-463221-173943-033616-139579',
      'the ticket reference looks like it contains a recovery password; enter only the ticket number',
    ],
  ])('rejects ticket %j', (ticket, reason) => {
    expect(parseRevealReason({ reason: 'lost-pin', ticket })).toEqual({ ok: false, reason });
  });

  it('accepts a 200-character ticket (counting code points)', () => {
    expect(parseRevealReason({ reason: 'lost-pin', ticket: '😀'.repeat(200) }).ok).toBe(true);
  });

  it('never throws and always returns a known code', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.constantFrom(...REASON_CODES.map((r) => r.code))),
        fc.option(fc.string({ maxLength: 250 }), { nil: undefined }),
        (reason, ticket) => {
          const r = parseRevealReason(ticket === undefined ? { reason } : { reason, ticket });
          if (r.ok) {
            expect(isReasonCode(r.value.reason)).toBe(true);
            const code: ReasonCode = r.value.reason;
            if (code === 'other') expect(r.value.ticket).not.toBeNull();
            if (r.value.ticket !== null) expect(r.value.ticket).toBe(r.value.ticket.trim());
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
