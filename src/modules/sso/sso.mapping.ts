import { ROLES, ROLE_PERMISSIONS, type Role } from '../authz/authz.js';

/**
 * Mapping rules: a claim of the ID token (a group, a role, a domain…) with a value -> a Keywarden
 * role and the clients it reaches. Pure code, no I/O.
 *
 * - `first`: the first rule in the list that matches wins (order them from most to least specific).
 * - `most`: of every rule that matches, the most privileged wins: the role holding the most
 *   permissions of the table, then "all clients" over a list, then the longer list; a tie goes to
 *   the earlier rule. Rules are never merged: a person gets exactly one rule's grant.
 */
export type MappingRule = { claim: string; value: string; role: Role; clients: 'all' | string[] };
export type MappingMode = 'first' | 'most';
export type Grant = { role: Role; clients: 'all' | string[]; rule: number };

/** The string values a claim carries (a string, a number or boolean, or a list of them). */
export function claimValues(claims: Record<string, unknown>, claim: string): string[] {
  const v = claims[claim];
  const one = (x: unknown) => (typeof x === 'string' ? [x] : typeof x === 'number' || typeof x === 'boolean' ? [String(x)] : []);
  return Array.isArray(v) ? v.flatMap(one) : one(v);
}

const rank = (r: MappingRule) => [ROLE_PERMISSIONS[r.role].length, r.clients === 'all' ? 1 : 0, r.clients === 'all' ? 0 : r.clients.length] as const;

export function evaluateMapping(rules: readonly MappingRule[], mode: MappingMode, claims: Record<string, unknown>): Grant | null {
  let best: { rule: MappingRule; index: number } | null = null;
  for (const [index, rule] of rules.entries()) {
    if (!(ROLES as readonly string[]).includes(rule.role)) continue;
    if (!claimValues(claims, rule.claim).includes(rule.value)) continue;
    if (mode === 'first') return { role: rule.role, clients: rule.clients, rule: index };
    if (!best) best = { rule, index };
    else {
      const a = rank(rule);
      const b = rank(best.rule);
      const better = a[0] !== b[0] ? a[0] > b[0] : a[1] !== b[1] ? a[1] > b[1] : a[2] > b[2];
      if (better) best = { rule, index };
    }
  }
  return best ? { role: best.rule.role, clients: best.rule.clients, rule: best.index } : null;
}

/** The amr values (RFC 8176) that show more than one factor, or a factor beyond a password. */
export const MFA_AMR = ['mfa', 'mca', 'otp', 'hwk', 'sc', 'sms', 'tel', 'fido'] as const;

/** Whether the ID token shows a multi-factor sign-in: an amr value above, or one of the provider's acr values. */
export function idTokenShowsMfa(claims: Record<string, unknown>, acrValues: readonly string[]): boolean {
  const amr = claimValues(claims, 'amr');
  if (amr.some((a) => (MFA_AMR as readonly string[]).includes(a))) return true;
  return typeof claims.acr === 'string' && acrValues.includes(claims.acr);
}
