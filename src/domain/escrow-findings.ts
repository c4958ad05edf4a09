/**
 * What an agent's report can reveal about a device's recovery passwords against the vault (the
 * `findings` table, opened and resolved by the agent check-in). Each kind has a severity (how
 * likely the vault fails the next recovery call) and a title in product words, so the console, the
 * API and exports say the same thing.
 */
// did_not_unlock: opened by a person after a reveal ("Did it unlock? no", keys.outcome.ts), closed by a re-escrow.
export const ESCROW_FINDING_KINDS = ['mismatch', 'unescrowed_key', 'no_recovery_password', 'key_conflict', 'did_not_unlock'] as const;
export type EscrowFindingKind = (typeof ESCROW_FINDING_KINDS)[number];

/** high: the vault cannot unlock the drive today; medium: the right password is stored, among others. */
export const FINDING_SEVERITIES = ['high', 'medium'] as const;
export type FindingSeverity = (typeof FINDING_SEVERITIES)[number];

export const ESCROW_FINDING_INFO: Record<EscrowFindingKind, { title: string; severity: FindingSeverity }> = {
  mismatch: { title: 'Stored key may not unlock', severity: 'high' },
  unescrowed_key: { title: 'Recovery password not in the vault', severity: 'high' },
  no_recovery_password: { title: 'No recovery password on the drive', severity: 'high' },
  key_conflict: { title: 'Two passwords stored for one key ID', severity: 'medium' },
  did_not_unlock: { title: 'Stored key did not unlock', severity: 'high' },
};

export const isEscrowFindingKind = (k: string): k is EscrowFindingKind => (ESCROW_FINDING_KINDS as readonly string[]).includes(k);
