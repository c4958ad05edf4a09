import type { Role } from '../authz/authz.js';

export type UserView = {
  id: string;
  email: string;
  name: string;
  role: Role;
  clients: 'all' | string[];
  status: 'active' | 'disabled';
  mfaEnabled: boolean;
  lastLoginAt: string | null;
  createdAt: string;
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
