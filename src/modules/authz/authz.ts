import { forbidden, stepUpRequired } from '../../lib/errors.js';

/**
 * Who is acting, passed first to every service method. Authorization and audit read it; nothing
 * guesses the actor from ambient state.
 *
 * This file is the only authority on what an actor may do: services ask `can` / `requirePermission`
 * for a named permission, and never compare role names themselves.
 */
export type Role = 'owner' | 'admin' | 'technician' | 'helpdesk' | 'auditor' | 'client-viewer';
/** end-user: a person of a client's organisation signed in for self-service recovery (holds no console permission). */
export type ActorType = 'user' | 'token' | 'agent' | 'system' | 'cli' | 'end-user';

export type Actor = {
  type: ActorType;
  id: string;
  name: string;
  role: Role;
  /** 'all' for a global role, otherwise the client ids this actor may see. */
  clients: 'all' | readonly string[];
  /**
   * The permissions this actor holds now, when they differ from its role's row in the table: an API
   * token holds only what both it and its creator hold today. Absent: the role's row.
   */
  permissions?: readonly Permission[];
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
 * Seeing that a key exists (`key:list`) and revealing it (`key:reveal`) are separate permissions.
 * `key:lookup` is the helpdesk path: find one key by its key ID, never a list.
 */
export type Permission =
  | 'client:read'
  | 'client:manage'
  | 'device:read'
  | 'key:list'
  | 'key:lookup'
  | 'key:reveal'
  | 'key:import'
  | 'key:export'
  | 'audit:read'
  | 'user:manage'
  | 'user:invite'
  | 'token:manage'
  | 'settings:manage'
  | 'integration:manage'
  | 'agent:manage'
  | 'lifecycle:manage'
  | 'lifecycle:destroy'
  | 'lifecycle:approve'
  | 'key:break-glass';

export const PERMISSIONS: readonly Permission[] = [
  'client:read',
  'client:manage',
  'device:read',
  'key:list',
  'key:lookup',
  'key:reveal',
  'key:import',
  'key:export',
  'audit:read',
  'user:manage',
  'user:invite',
  'token:manage',
  'settings:manage',
  'integration:manage',
  'agent:manage',
  'lifecycle:manage',
  'lifecycle:destroy',
  'lifecycle:approve',
  'key:break-glass',
];

/** The permission table. Nothing else decides what a role may do. */
export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  owner: PERMISSIONS,
  admin: [
    'client:read',
    'client:manage',
    'device:read',
    'key:list',
    'key:lookup',
    'key:reveal',
    'key:import',
    'audit:read',
    // An admin invites people (never beyond their own role and clients) but does not manage users.
    'user:invite',
    'token:manage',
    'integration:manage',
    'agent:manage',
    'lifecycle:manage',
  ],
  technician: ['client:read', 'device:read', 'key:list', 'key:lookup', 'key:reveal'],
  helpdesk: ['client:read', 'key:lookup', 'key:reveal'],
  auditor: ['client:read', 'device:read', 'key:list', 'audit:read'],
  // key:lookup / key:reveal only for the clients whose owner switched it on (see `can`).
  'client-viewer': ['client:read', 'device:read', 'key:lookup', 'key:reveal'],
};

/**
 * Vault-wide powers: they reach every client at once, so only a principal with "all clients" holds
 * them, whatever its role says.
 */
export const VAULT_WIDE: readonly Permission[] = ['settings:manage', 'key:export'];

/** Powers a person exercises themselves: an API token never carries them. */
export const PERSON_ONLY: readonly Permission[] = [
  'key:export',
  'lifecycle:destroy',
  'lifecycle:approve',
  'user:manage',
  'user:invite',
  'settings:manage',
  'token:manage',
  'key:break-glass',
];

/**
 * Actions that need a person who has just proved their second factor again (step-up), so that a
 * stolen session alone cannot mint tokens, add owners, change security or destroy data.
 */
export type SensitiveAction =
  | 'mint an API token'
  | 'manage users'
  | 'change security settings'
  | 'change lifecycle settings'
  | 'remove your authenticator app'
  | 'add a passkey'
  | 'remove a passkey'
  | 'offboard a client'
  | 'destroy recovery keys'
  | 'lift a legal hold'
  | 'approve a destructive action'
  | 'export recovery keys'
  | 'reveal a recovery key'
  | 'approve or deny a reveal'
  | 'reveal without approval (break-glass)'
  | 'change the reveal approval policy';

export const ROLES: readonly Role[] = ['owner', 'admin', 'technician', 'helpdesk', 'auditor', 'client-viewer'];

/** What this actor may do now: its role's row, narrowed for tokens and client-limited principals. */
export function permissionsOf(actor: Pick<Actor, 'role' | 'clients' | 'type' | 'permissions'>): ReadonlySet<Permission> {
  const base = actor.permissions ?? ROLE_PERMISSIONS[actor.role];
  return new Set(
    base.filter(
      (p) =>
        ROLE_PERMISSIONS[actor.role].includes(p) &&
        !(actor.clients !== 'all' && VAULT_WIDE.includes(p)) &&
        !(actor.type === 'token' && PERSON_ONLY.includes(p)),
    ),
  );
}

export function can(actor: Actor, permission: Permission, clientId?: string | null): boolean {
  if (!permissionsOf(actor).has(permission)) return false;
  if (actor.role === 'client-viewer' && (permission === 'key:lookup' || permission === 'key:reveal')) {
    // A client's own IT staff may reveal only where the owner switched it on for that client.
    const allowed = actor.revealClients ?? [];
    return clientId == null ? allowed.length > 0 : allowed.includes(clientId);
  }
  if (clientId == null || actor.clients === 'all') return true;
  return actor.clients.includes(clientId);
}

/** The one denial path: throws an AppError the audit writer and error handler both recognise. */
export function requirePermission(actor: Actor, permission: Permission, clientId?: string | null): void {
  if (!can(actor, permission, clientId)) {
    throw forbidden(`You are not allowed to ${PERMISSION_WORDS[permission]}.`);
  }
}

export const PERMISSION_WORDS: Record<Permission, string> = {
  'client:read': 'see clients',
  'client:manage': 'manage clients',
  'device:read': 'see devices',
  'key:list': 'list recovery keys',
  'key:lookup': 'look up recovery keys',
  'key:reveal': 'reveal recovery keys',
  'key:import': 'import recovery keys',
  'key:export': 'export recovery keys (break-glass bundles and recovery sheets)',
  'audit:read': 'read the audit log',
  'user:manage': 'manage users',
  'user:invite': 'invite people',
  'token:manage': 'manage API tokens',
  'settings:manage': 'change vault-wide settings',
  'integration:manage': 'manage Entra ID and Active Directory connections',
  'agent:manage': 'manage agents, enrollment tokens and device jobs',
  'lifecycle:manage': 'retire devices and manage legal holds',
  'lifecycle:destroy': 'destroy keys or offboard clients',
  'lifecycle:approve': 'approve destructive actions',
  'key:break-glass': 'reveal a key without the second approval its client requires (break-glass)',
};

/**
 * A principal (a user, or a token's grant) is inside this actor's reach when every client it has is
 * one the actor has, and it holds nothing the actor does not hold. Only such principals may be
 * seen, created, changed or reset by the actor.
 */
export function mayManagePrincipal(actor: Actor, target: { role: Role; clients: 'all' | readonly string[] }): boolean {
  if (actor.clients !== 'all') {
    if (target.clients === 'all') return false;
    if (!target.clients.every((c) => actor.clients.includes(c))) return false;
  }
  const mine = permissionsOf(actor);
  // Compared by the target's role row, so a client-limited target is not "smaller" merely because it lacks vault-wide powers it could gain.
  return ROLE_PERMISSIONS[target.role].every((p) => mine.has(p) || (actor.clients !== 'all' && VAULT_WIDE.includes(p)));
}

/**
 * A grant that controls the whole vault (managing people, or every client at once). While two-owner
 * approval is on, giving it to someone takes a second owner.
 */
export function grantsVaultControl(target: { role: Role; clients: 'all' | readonly string[] }): boolean {
  return target.clients === 'all' || ROLE_PERMISSIONS[target.role].includes('user:manage');
}

/**
 * The effective grant of an API token at this moment: what it was granted, intersected with what its
 * creator holds now (permissions and clients). A disabled or deleted creator leaves nothing.
 */
export function tokenGrant(
  token: { role: Role; clients: 'all' | readonly string[] },
  creator: { role: Role; clients: 'all' | readonly string[]; active: boolean },
): { permissions: Permission[]; clients: 'all' | string[] } {
  if (!creator.active) return { permissions: [], clients: [] };
  const creatorPerms = permissionsOf({ role: creator.role, clients: creator.clients, type: 'user' });
  const permissions = ROLE_PERMISSIONS[token.role].filter((p) => creatorPerms.has(p));
  let clients: 'all' | string[];
  if (token.clients === 'all') clients = creator.clients === 'all' ? 'all' : [...creator.clients];
  else clients = creator.clients === 'all' ? [...token.clients] : token.clients.filter((c) => creator.clients.includes(c));
  return { permissions, clients };
}

/**
 * A fresh second factor for sensitive actions. People with an authenticator must have proved it
 * within the step-up window; API tokens have no second factor and may not do these things at all.
 * The CLI (which holds the master key) and system jobs are not asked.
 */
export function requireFreshSecondFactor(actor: Actor, action: SensitiveAction, now: string, stepUpMinutes: number): void {
  if (actor.type === 'cli' || actor.type === 'system') return;
  if (actor.type !== 'user' || !actor.session) throw forbidden(`Only a signed-in person can ${action}; API tokens cannot.`);
  if (!actor.session.mfaEnrolled) return;
  const at = actor.session.mfaAt;
  if (!(at && Date.parse(at) + stepUpMinutes * 60_000 > Date.parse(now))) throw stepUpRequired(action);
}

/** The client filter every query applies: null means "all clients". */
export function clientScope(actor: Actor): readonly string[] | null {
  return actor.clients === 'all' ? null : actor.clients;
}

/** The clients whose keys this actor may reveal (null = all it can see). */
export function revealScope(actor: Actor): readonly string[] | null {
  if (actor.role === 'client-viewer') return actor.revealClients ?? [];
  return clientScope(actor);
}

/** What a key-ID search may show besides the one match: candidates are browsing, for roles that may list. */
export function mayListCandidates(actor: Actor): boolean {
  return can(actor, 'key:list');
}

/** A system actor for jobs and bootstrap steps that no person started. */
export const systemActor = (what: string): Actor => ({ type: 'system', id: `system:${what}`, name: `Keywarden (${what})`, role: 'owner', clients: 'all' });

/** The local CLI runs with the master key on the machine, so it acts as the vault owner. */
export function cliActor(osUser: string): Actor {
  return { type: 'cli', id: `cli:${osUser}`, name: `${osUser} (local CLI)`, role: 'owner', clients: 'all' };
}
