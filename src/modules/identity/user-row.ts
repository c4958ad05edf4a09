import type { UsersTable } from '../../db/schema.js';
import { hashPassword } from '../../crypto/passwords.js';
import { newSecret } from '../../crypto/tokens.js';
import { newId } from '../../lib/ids.js';

/**
 * The row a new account starts with, whoever creates it (an owner, an invitation, a just-in-time
 * single sign-on): no second factor, no failed sign-ins, nothing locked. Without a password hash
 * the account gets a random password nobody knows and is marked SSO-only: that person signs in
 * through the identity provider only.
 */
export async function newUserRow(
  input: { email: string; name: string; passwordHash: string | null; role: string; allClients: boolean; status?: 'active' | 'disabled' },
  now: string,
): Promise<UsersTable> {
  return {
    id: newId(),
    email: input.email,
    name: input.name,
    password_hash: input.passwordHash ?? (await hashPassword(newSecret())),
    role: input.role,
    all_clients: input.allClients ? 1 : 0,
    status: input.status ?? 'active',
    totp_secret: null,
    totp_confirmed_at: null,
    totp_last_step: null,
    failed_logins: 0,
    lockouts: 0,
    locked_until: null,
    last_login_at: null,
    password_changed_at: now,
    created_at: now,
    updated_at: now,
    sso_only: input.passwordHash === null ? 1 : 0,
  };
}
