import { createContext, use, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, type Client, type Me, type Permission, type Role } from './api';

/**
 * Who is signed in and what they may do. The server's permission table (src/modules/authz/authz.ts)
 * is the authority: GET /me returns this person's effective permissions and clients, and the console
 * only hides what they would be refused anyway.
 */
export type { Permission };

export type SessionInfo = {
  me: Me;
  role: Role;
  /** May the signed-in person do this (for this client, when given)? */
  can: (p: Permission, clientId?: string) => boolean;
  /** The clients this person sees (for names and the client-viewer reveal switch). */
  clients: Client[];
};

const Ctx = createContext<SessionInfo | null>(null);

export function SessionProvider({ me, children }: { me: Me; children: ReactNode }) {
  const role = me.actor.role;
  const clients = useQuery({ queryKey: ['clients'], queryFn: () => api.get('/api/v1/clients'), enabled: !me.mfaEnrolmentRequired });
  const list = clients.data ?? [];
  const can = (p: Permission, clientId?: string) => {
    if (!me.permissions.includes(p)) return false;
    if (!clientId) return true;
    // Revealing is limited to the clients the server names (a client's own staff: where the owner allowed it).
    const scope = p === 'key:reveal' || p === 'key:lookup' ? me.revealClients : me.actor.clients;
    return scope === 'all' || scope.includes(clientId);
  };
  return <Ctx value={{ me, role, can, clients: list }}>{children}</Ctx>;
}

export function useSession(): SessionInfo {
  const s = use(Ctx);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}

export const ROLE_LABEL: Record<Role, string> = {
  owner: 'Owner',
  admin: 'Admin',
  technician: 'Technician',
  helpdesk: 'Helpdesk',
  auditor: 'Auditor',
  'client-viewer': 'Client viewer',
};
/** Every role the server names, in the order of ROLE_LABEL (a role the API adds is a type error there). */
export const ROLES = Object.keys(ROLE_LABEL) as Role[];
