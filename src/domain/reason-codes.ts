/**
 * Why a recovery password is being revealed.
 *
 * Modeled on the MBAM Helpdesk "reason" dropdown (bitlocker-domain.md §5): the
 * technician must pick a reason before a key is shown, and it goes into the
 * audit log. The codes are stable kebab-case identifiers (stored in the
 * database and the audit log, so never rename one); the labels are MBAM's
 * English wording for display. `other` needs a ticket reference so every
 * non-standard reveal can be traced back to a request.
 */
import { containsRecoveryPasswordLike } from './recovery-password.js';
import { fail, ok, type Result } from './result.js';

export const REASON_CODES = [
  { code: 'os-boot-order-changed', label: 'Operating System Boot Order changed' },
  { code: 'bios-changed', label: 'BIOS Changed' },
  { code: 'os-files-changed', label: 'Operating System files changed' },
  { code: 'lost-startup-key', label: 'Lost Startup key' },
  { code: 'lost-pin', label: 'Lost PIN' },
  { code: 'tpm-reset', label: 'TPM Reset' },
  { code: 'lost-passphrase', label: 'Lost Passphrase' },
  { code: 'lost-smartcard', label: 'Lost Smartcard' },
  { code: 'reset-pin-lockout', label: 'Reset PIN lockout' },
  { code: 'turn-on-tpm', label: 'Turn on TPM' },
  { code: 'turn-off-tpm', label: 'Turn off TPM' },
  { code: 'change-tpm-password', label: 'Change TPM password' },
  { code: 'clear-tpm', label: 'Clear TPM' },
  { code: 'other', label: 'Other (see ticket)' },
] as const satisfies readonly { code: string; label: string }[];

export type ReasonCode = (typeof REASON_CODES)[number]['code'];

const CODES: ReadonlySet<string> = new Set(REASON_CODES.map((r) => r.code));

/** Maximum ticket reference length, in characters (code points). */
export const TICKET_MAX_LENGTH = 200;

export function isReasonCode(s: unknown): s is ReasonCode {
  return typeof s === 'string' && CODES.has(s);
}

/**
 * Validate the reason (and optional ticket reference) a technician gave for
 * revealing a key.
 *
 * - `reason` is matched case-insensitively after trimming.
 * - `ticket` is trimmed; empty means "no ticket" (null). `other` requires one.
 * - A ticket must be at most 200 characters of printable text: control and
 *   invisible formatting characters (including bidi overrides) are refused
 *   because the ticket is written to the audit log and shown to auditors.
 * - A ticket that contains something shaped like a recovery password is
 *   refused, so a pasted key never ends up in the audit log in clear text.
 */
export function parseRevealReason({ reason, ticket }: { reason: string; ticket?: string }): Result<{ reason: ReasonCode; ticket: string | null }> {
  const code = typeof reason === 'string' ? reason.trim().toLowerCase() : '';
  if (!isReasonCode(code)) {
    return fail(`choose a reason for revealing the key: one of ${REASON_CODES.map((r) => r.code).join(', ')}`);
  }

  let cleanTicket: string | null = null;
  if (ticket !== undefined && ticket !== null) {
    if (typeof ticket !== 'string') return fail('the ticket reference must be text');
    const t = ticket.trim();
    if (t !== '') {
      if ([...t].length > TICKET_MAX_LENGTH) {
        return fail(`the ticket reference is longer than ${TICKET_MAX_LENGTH} characters`);
      }
      // \p{C}: control, format (zero-width, bidi), surrogate, private-use and
      // unassigned code points. Line breaks and tabs are controls too.
      if (/\p{C}/u.test(t)) {
        return fail('the ticket reference may contain only printable characters on one line');
      }
      if (containsRecoveryPasswordLike(t)) {
        return fail('the ticket reference looks like it contains a recovery password; enter only the ticket number');
      }
      cleanTicket = t;
    }
  }

  if (code === 'other' && cleanTicket === null) {
    return fail('reason "other" needs a ticket reference');
  }
  return ok({ reason: code, ticket: cleanTicket });
}
