import type { Role } from '../authz/authz.js';

export type UserView = {
  id: string;
  email: string;
  name: string;
  role: Role;
  clients: 'all' | string[];
  status: 'active' | 'disabled';
  /** Any second factor: an authenticator app or a passkey. */
  mfaEnabled: boolean;
  /** An authenticator app in particular. */
  totpEnabled: boolean;
  /** Signs in only through single sign-on (password sign-in refused). */
  ssoOnly: boolean;
  lastLoginAt: string | null;
  createdAt: string;
  /** Set when the change waits for a second owner (two-owner approval): the approval request's id. */
  pendingApprovalId?: string;
};

export type TokenView = {
  id: string;
  name: string;
  prefix: string;
  role: Role;
  clients: 'all' | string[];
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
};

export type Settings = { requireMfa: boolean };

export type LoginResult = {
  sessionToken: string;
  csrfToken: string;
  user: UserView;
  /** The owner requires a second factor and this user has none yet: enrol before anything else. */
  mfaEnrolmentRequired: boolean;
};
