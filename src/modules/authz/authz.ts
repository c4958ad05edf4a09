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
  | 'audit:read';

const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  owner: ['client:read', 'client:manage', 'device:read', 'key:list', 'key:lookup', 'key:reveal', 'key:import', 'audit:read'],
  admin: ['client:read', 'client:manage', 'device:read', 'key:list', 'key:lookup', 'key:reveal', 'key:import', 'audit:read'],
  technician: ['client:read', 'device:read', 'key:list', 'key:lookup', 'key:reveal'],
  helpdesk: ['client:read', 'key:lookup'],
  auditor: ['client:read', 'device:read', 'key:list', 'audit:read'],
  'client-viewer': ['client:read', 'device:read'],
};

export function can(actor: Actor, permission: Permission, clientId?: string | null): boolean {
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
};

/** The client filter every query applies: null means "all clients". */
export function clientScope(actor: Actor): readonly string[] | null {
  return actor.clients === 'all' ? null : actor.clients;
}

/** The local CLI runs with the master key on the machine, so it acts as the vault owner. */
export function cliActor(osUser: string): Actor {
  return { type: 'cli', id: `cli:${osUser}`, name: `${osUser} (local CLI)`, role: 'owner', clients: 'all' };
}
