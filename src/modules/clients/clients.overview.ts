import type { Transactions } from '../../db/transactions.js';
import { summarizeCompliance, type ComplianceSummary } from '../../domain/compliance/summary.js';
import { lastSeenBand, type Encryption } from '../../domain/device-status.js';
import type { Clock } from '../../lib/clock.js';
import { can, clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { DeviceTableRepo } from '../devices/device-table.repo.js';
import { toDeviceRow } from '../devices/device-table.service.js';
import type { ClientsRepo } from './clients.repo.js';
import { requireVisibleClient } from './visible-client.js';

/**
 * Clients at a glance: devices by encryption and key escrow (src/domain/device-status.ts), last
 * seen, open findings, key sources and compliance (src/domain/compliance/summary.ts: the same
 * numbers as the client page and the compliance report), for one client or every visible one.
 */

export type ComplianceCounts = ComplianceSummary;
export type ClientOverview = {
  client: { id: string; name: string };
  devices: number;
  keys: number;
  encryption: Record<Encryption, number>;
  escrow: { escrowed: number; notEscrowed: number };
  lastSeen: { day: number; week: number; month: number; older: number };
  /** The agent's open key-escrow findings (a count of findings, not of devices); compliance is the policy's view. */
  openFindings: number;
  sources: Record<string, number>;
  /** Devices by their compliance status (never evaluated: unknown), per cent compliant and its level. */
  compliance: ComplianceCounts;
};
export type ClientAtAGlance = Omit<ClientOverview, 'client' | 'lastSeen' | 'sources' | 'compliance'> & {
  id: string;
  name: string;
  compliance: ComplianceCounts | null;
};

type Deps = {
  tx: Transactions;
  table: Pick<DeviceTableRepo, 'all' | 'counts' | 'complianceCounts' | 'sourceCounts'>;
  clients: Pick<ClientsRepo, 'listVisible'>;
  clock: Clock;
};

export function createClientOverview({ tx, table, clients, clock }: Deps) {
  const complianceOf = async (clientId: string, devices: number): Promise<ComplianceCounts> =>
    summarizeCompliance(await table.complianceCounts(tx.reader, clientId), devices);

  return {
    async clientOverview(actor: Actor, clientId: string): Promise<ClientOverview> {
      const client = await requireVisibleClient(tx.reader, actor, clientId, 'device:read');
      const rows = (await table.all(tx.reader, client.id)).map(toDeviceRow);
      const now = Date.parse(clock.now());
      const out: ClientOverview = {
        client: { id: client.id, name: client.name },
        devices: rows.length,
        keys: 0,
        encryption: { encrypted: 0, 'not-encrypted': 0, unknown: 0 },
        escrow: { escrowed: 0, notEscrowed: 0 },
        lastSeen: { day: 0, week: 0, month: 0, older: 0 },
        openFindings: 0,
        sources: {},
        compliance: summarizeCompliance([], 0),
      };
      for (const d of rows) {
        out.keys += d.keys;
        out.encryption[d.encryption]++;
        if (d.escrowed) out.escrow.escrowed++;
        else out.escrow.notEscrowed++;
        out.lastSeen[lastSeenBand(d.lastSeenAt, now)]++;
        out.openFindings += d.openFindings;
      }
      for (const s of await table.sourceCounts(tx.reader, client.id)) out.sources[s.source_type] = Number(s.n);
      out.compliance = await complianceOf(client.id, out.devices);
      return out;
    },

    /** Every visible client at a glance (the clients list): devices, keys, encryption and escrow counts. */
    async clientsOverview(actor: Actor): Promise<ClientAtAGlance[]> {
      requirePermission(actor, 'client:read');
      const out: ClientAtAGlance[] = [];
      for (const c of await clients.listVisible(tx.reader, clientScope(actor))) {
        const row: ClientAtAGlance = {
          id: c.id,
          name: c.name,
          devices: 0,
          keys: 0,
          encryption: { encrypted: 0, 'not-encrypted': 0, unknown: 0 },
          escrow: { escrowed: 0, notEscrowed: 0 },
          openFindings: 0,
          compliance: null,
        };
        // Helpdesk sees clients but not their devices: names only.
        if (can(actor, 'device:read', c.id)) {
          for (const r of await table.counts(tx.reader, c.id)) {
            const n = Number(r.n);
            row.devices += n;
            row.keys += Number(r.keys ?? 0);
            row.openFindings += Number(r.findings ?? 0);
            row.encryption[r.encryption] += n;
            if (Number(r.escrowed) === 1) row.escrow.escrowed += n;
            else row.escrow.notEscrowed += n;
          }
          row.compliance = await complianceOf(c.id, row.devices);
        }
        out.push(row);
      }
      return out;
    },
  };
}
export type ClientOverviewService = ReturnType<typeof createClientOverview>;
