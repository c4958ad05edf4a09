import type { PsaAccess } from './psa.access.js';

/**
 * No PSA connection and every client's ticket policy off: what the vault has until the PSA
 * connection service (psa.service.ts) is wired in its place, and what tests get unless they pass
 * their own PsaAccess to buildContainer.
 */
export const noPsaAccess: PsaAccess = {
  active: async () => null,
  clientSettings: async (_exec, clientId) => ({ clientId, companyId: null, companyName: null, ticketPolicy: 'off', requireAssignee: false }),
  linkedClients: async () => [],
  memberOf: async () => null,
};
