import { forbidden } from '../../lib/errors.js';

/**
 * Who is acting, passed first to every service method. Authorization and audit read it; nothing
 * guesses the actor from ambient state.
 */
export type Role = 'owner' | 'admin' | 'technician' | 'helpdesk' | 'auditor' | 'client-viewer';
export type ActorType = 'user' | 'token' | 'agent' | 'system' | 'cli';

export type Actor = {
  type: ActorType;
  id: string;
  name: string;
  role: Role;
  /** 'all' for a global role, otherwise the client ids this actor may see. */
  clients: 'all' | readonly string[];
  /** For client-viewer: the clients whose owner allows their own staff to reveal keys. */
  revealClients?: readonly string[];
  /** Agents only: the device this credential belongs to. */
  device?: { id: string; credentialId: string; salt: string };
  /** Interactive sessions only: what step-up and the MFA policy need to know. */
  session?: { id: string; mfaAt: string | null; mfaEnrolled: boolean; mfaEnrolmentRequired: boolean };
  ip?: string | null;
  userAgent?: string | null;
};

/**
 * Seeing that a key exists (`key:list`) and revealing it (`key:reveal`) are separate
 * permissions. `key:lookup` is the helpdesk path: reveal by key ID only, no browsing.
 */
export type Permission =
  | 'client:read'
  | 'client:manage'
  | 'device:read'
  | 'key:list'
  | 'key:lookup'
  | 'key:reveal'
  | 'key:import'
  | 'audit:read'
  | 'user:manage'
  | 'token:manage'
  | 'settings:manage'
  | 'agent:manage';

const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  owner: [
    'client:read', 'client:manage', 'device:read', 'key:list', 'key:lookup', 'key:reveal', 'key:import', 'audit:read',
    'user:manage', 'token:manage', 'settings:manage', 'agent:manage',
  ],
  admin: ['client:read', 'client:manage', 'device:read', 'key:list', 'key:lookup', 'key:reveal', 'key:import', 'audit:read', 'token:manage', 'agent:manage'],
  technician: ['client:read', 'device:read', 'key:list', 'key:lookup', 'key:reveal'],
  helpdesk: ['client:read', 'key:lookup'],
  auditor: ['client:read', 'device:read', 'key:list', 'audit:read'],
  'client-viewer': ['client:read', 'device:read'],
};

export const ROLES: readonly Role[] = ['owner', 'admin', 'technician', 'helpdesk', 'auditor', 'client-viewer'];

/** Roles ordered by power: nobody may hand out a role above their own. */
export const ROLE_RANK: Record<Role, number> = { owner: 5, admin: 4, technician: 3, helpdesk: 2, auditor: 2, 'client-viewer': 1 };

export function can(actor: Actor, permission: Permission, clientId?: string | null): boolean {
  if (actor.role === 'client-viewer' && (permission === 'key:lookup' || permission === 'key:reveal')) {
    // A client's own IT staff may reveal only where the owner switched it on for that client.
    const allowed = actor.revealClients ?? [];
    return clientId == null ? allowed.length > 0 : allowed.includes(clientId);
  }
  if (!ROLE_PERMISSIONS[actor.role].includes(permission)) return false;
  if (clientId == null || actor.clients === 'all') return true;
  return actor.clients.includes(clientId);
}


/** The one denial path: throws an AppError the audit writer and error handler both recognise. */
export function requirePermission(actor: Actor, permission: Permission, clientId?: string | null): void {
  if (!can(actor, permission, clientId)) {
    throw forbidden(`You are not allowed to ${PERMISSION_WORDS[permission]}.`);
  }
}

const PERMISSION_WORDS: Record<Permission, string> = {
  'client:read': 'see clients',
  'client:manage': 'manage clients',
  'device:read': 'see devices',
  'key:list': 'list recovery keys',
  'key:lookup': 'look up recovery keys',
  'key:reveal': 'reveal recovery keys',
  'key:import': 'import recovery keys',
  'audit:read': 'read the audit log',
  'user:manage': 'manage users',
  'token:manage': 'manage API tokens',
  'settings:manage': 'change vault settings',
  'agent:manage': 'manage agents, enrollment tokens and device jobs',
};

/** The client filter every query applies: null means "all clients". */
export function clientScope(actor: Actor): readonly string[] | null {
  return actor.clients === 'all' ? null : actor.clients;
}

/** The clients whose keys this actor may reveal (null = all it can see). */
export function revealScope(actor: Actor): readonly string[] | null {
  if (actor.role === 'client-viewer') return actor.revealClients ?? [];
  return clientScope(actor);
}

/** A system actor for jobs and bootstrap steps that no person started. */
export const systemActor = (what: string): Actor => ({ type: 'system', id: `system:${what}`, name: `Keywarden (${what})`, role: 'owner', clients: 'all' });

/** The local CLI runs with the master key on the machine, so it acts as the vault owner. */
export function cliActor(osUser: string): Actor {
  return { type: 'cli', id: `cli:${osUser}`, name: `${osUser} (local CLI)`, role: 'owner', clients: 'all' };
}
