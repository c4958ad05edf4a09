import { fail, ok, type Result } from './result.js';

/**
 * The primary user an agent reports for its device: the UPN of the account that joined the device
 * to Entra ID (agent/README.md, "What the agent reports"). Self-service recovery lets the person
 * with that UPN reveal the device's keys, so only a plausible personal account is taken: one `@`
 * with something on both sides, no whitespace or control characters, at most 256 characters (an
 * Entra UPN's limit is 113; 256 leaves room for other directories), and none of the placeholder
 * accounts Windows writes there instead of a person.
 */
export const MAX_PRIMARY_USER_LENGTH = 256;

/**
 * Accounts that are not a person: `fooUser@…` is what hybrid-joined and Autopilot pre-provisioned
 * devices record as the join user; `package_<guid>@…` is the account a bulk-enrolment provisioning
 * package (Windows Configuration Designer) joins with, shared by every device it enrolled.
 */
const PLACEHOLDER_LOCAL_PART = /^(foouser|package_.*)$/i;

/** The trimmed UPN, or why it is not one (the reason quotes no more than the first 40 characters). */
export function parsePrimaryUser(input: string): Result<string> {
  const s = input.trim();
  if (s === '') return fail('the primary user is empty');
  if (s.length > MAX_PRIMARY_USER_LENGTH) return fail(`the primary user is ${s.length} characters long; at most ${MAX_PRIMARY_USER_LENGTH} are accepted`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(s)) return fail('the primary user contains control characters');
  const shown = JSON.stringify(s.slice(0, 40));
  if (/\s/.test(s)) return fail(`the primary user ${shown} contains whitespace; a user principal name has none`);
  const parts = s.split('@');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') return fail(`the primary user ${shown} is not a user principal name (name@domain)`);
  if (PLACEHOLDER_LOCAL_PART.test(parts[0]!)) return fail(`the primary user ${shown} is a provisioning placeholder account, not a person`);
  return ok(s);
}
