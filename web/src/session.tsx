import { createContext, use, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, type Client, type Me, type Role } from './api';

/**
 * Who is signed in and what they may do. The console hides what a role may not do; the server
 * refuses it anyway (src/modules/authz/authz.ts is the authority, this mirrors it for display).
 */
export type Permission = 'key:list' | 'key:lookup' | 'key:reveal' | 'client:read' | 'client:manage' | 'device:read' | 'audit:read' | 'user:manage' | 'token:manage' | 'settings:manage' | 'agent:manage';

const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  owner: ['client:read', 'client:manage', 'device:read', 'key:list', 'key:lookup', 'key:reveal', 'audit:read', 'user:manage', 'token:manage', 'settings:manage', 'agent:manage'],
  admin: ['client:read', 'client:manage', 'device:read', 'key:list', 'key:lookup', 'key:reveal', 'audit:read', 'token:manage', 'agent:manage'],
  technician: ['client:read', 'device:read', 'key:list', 'key:lookup', 'key:reveal'],
  helpdesk: ['client:read', 'key:lookup'],
  auditor: ['client:read', 'device:read', 'key:list', 'audit:read'],
  'client-viewer': ['client:read', 'device:read'],
};

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
  const clients = useQuery({ queryKey: ['clients'], queryFn: () => api.get<Client[]>('/clients'), enabled: !me.mfaEnrolmentRequired });
  const list = clients.data ?? [];
  const can = (p: Permission, clientId?: string) => {
    if (role === 'client-viewer' && (p === 'key:lookup' || p === 'key:reveal')) {
      // A client's own IT staff reveal only where the owner switched it on for that client.
      const allowed = list.filter((c) => c.viewerCanReveal).map((c) => c.id);
      return clientId ? allowed.includes(clientId) : allowed.length > 0;
    }
    if (!ROLE_PERMISSIONS[role].includes(p)) return false;
    if (!clientId || me.actor.clients === 'all') return true;
    return me.actor.clients.includes(clientId);
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
export const ROLES: Role[] = ['owner', 'admin', 'technician', 'helpdesk', 'auditor', 'client-viewer'];
