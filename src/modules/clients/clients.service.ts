import type { Executor } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, conflict, forbidden, notFound } from '../../lib/errors.js';
import type { Keyring } from '../../crypto/keyring.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { clientNameKey, type ClientsRepo } from './clients.repo.js';
import { confusableWith, normalizeName } from '../../domain/names.js';

/** offboardedAt: set once the client's data key was destroyed (crypto-shred); nothing new can be sealed for it. */
export type Client = { id: string; name: string; createdAt: string; viewerCanReveal: boolean; offboardedAt?: string | null };
export type ClientSummary = Client & { devices: number; keys: number };

type Deps = {
  tx: Transactions;
  repo: ClientsRepo;
  keyring: Pick<Keyring<Executor>, 'createClientKey'>;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
};

const MAX_NAME = 200;

export function validateClientName(raw: string): string {
  const normalized = normalizeName(raw, 'A client name');
  if (!normalized.ok) throw badRequest(normalized.reason);
  const name = normalized.value;
  if (!name) throw badRequest('A client name cannot be empty.');
  if (name.length > MAX_NAME) throw badRequest(`A client name can be at most ${MAX_NAME} characters; got ${name.length}.`);
  return name;
}

/** Refuses a name that reads like another client's (look-alike letters from other scripts). */
function refuseConfusable(name: string, others: readonly { id: string; name: string }[], self?: string): void {
  const twin = confusableWith(
    name,
    others.filter((o) => o.id !== self),
  );
  if (twin) throw badRequest(`"${name}" looks the same as the existing client "${twin.name}"; choose a name that reads differently.`, { field: 'name' });
}

export function createClientsService({ tx: transactions, repo, keyring, audit, clock }: Deps) {
  return {
    /** Creates the client and its own data key in one transaction. */
    async create(actor: Actor, input: { name: string }): Promise<Client> {
      requirePermission(actor, 'client:manage');
      // A client-limited admin would create a client they cannot see; new clients come from global roles.
      if (actor.clients !== 'all') throw forbidden('Only an owner or an admin of all clients can add clients.');
      const name = validateClientName(input.name);
      return transactions.run(async (tx) => {
        if (await repo.findByNameKey(tx, clientNameKey(name), null)) {
          throw conflict(`A client named "${name}" already exists.`);
        }
        refuseConfusable(name, await repo.allNames(tx));
        const now = clock.now();
        const id = newId();
        await repo.insert(tx, {
          id,
          name,
          name_key: clientNameKey(name),
          created_at: now,
          updated_at: now,
          archived_at: null,
          viewer_can_reveal: 0,
          rotate_after_disclosure: 1,
        });
        await keyring.createClientKey(tx, id, now);
        await audit.record(tx, actor, { action: 'client.create', outcome: 'success', clientId: id, targetType: 'client', targetId: id, details: { name } });
        return { id, name, createdAt: now, viewerCanReveal: false };
      });
    },

    async list(actor: Actor): Promise<ClientSummary[]> {
      requirePermission(actor, 'client:read');
      const rows = await repo.list(transactions.reader, clientScope(actor));
      return rows.map((r) => ({
        id: r.id,
        name: r.name,
        createdAt: r.created_at,
        viewerCanReveal: !!r.viewer_can_reveal,
        devices: Number(r.devices ?? 0),
        keys: Number(r.keys ?? 0),
      }));
    },

    /** Finds a client by name (case-insensitive) among those the actor may see; 404 otherwise. */
    async getByName(actor: Actor, name: string): Promise<Client> {
      requirePermission(actor, 'client:read');
      const row = await repo.findByNameKey(transactions.reader, clientNameKey(name), clientScope(actor));
      if (!row || row.archived_at)
        throw notFound(`No client named "${name.trim()}". See "npx keywarden client list", or create it with "npx keywarden client add".`);
      return { id: row.id, name: row.name, createdAt: row.created_at, viewerCanReveal: !!row.viewer_can_reveal, offboardedAt: row.offboarded_at ?? null };
    },

    /** One client by id among those the actor may see; another client's id is "not found". */
    async get(actor: Actor, id: string): Promise<Client> {
      requirePermission(actor, 'client:read');
      const row = await repo.findVisible(transactions.reader, id, clientScope(actor));
      if (!row) throw notFound(`No client with id ${id.slice(0, 60)}.`);
      return { id: row.id, name: row.name, createdAt: row.created_at, viewerCanReveal: !!row.viewer_can_reveal };
    },

    /** Rename, or switch whether the client's own staff (client-viewer) may reveal its keys. */
    async update(actor: Actor, id: string, patch: { name?: string; viewerCanReveal?: boolean }): Promise<Client> {
      // The permission first, without the id: a client outside the actor's list is then "not found".
      requirePermission(actor, 'client:manage');
      // Letting a client's own staff reveal keys hands out reveal power: the same people who grant roles decide.
      if (patch.viewerCanReveal !== undefined) requirePermission(actor, 'user:manage');
      return transactions.run(async (tx) => {
        const row = await repo.findVisible(tx, id, clientScope(actor));
        if (!row) throw notFound(`No client with id ${id.slice(0, 60)}.`);
        const changes: Parameters<ClientsRepo['update']>[2] = { updated_at: clock.now() };
        if (patch.name !== undefined) {
          const name = validateClientName(patch.name);
          const other = await repo.findByNameKey(tx, clientNameKey(name), null);
          if (other && other.id !== row.id) throw conflict(`A client named "${name}" already exists.`);
          refuseConfusable(name, await repo.allNames(tx), row.id);
          changes.name = name;
          changes.name_key = clientNameKey(name);
        }
        if (patch.viewerCanReveal !== undefined) changes.viewer_can_reveal = patch.viewerCanReveal ? 1 : 0;
        await repo.update(tx, row.id, changes);
        await audit.record(tx, actor, {
          action: 'client.update',
          outcome: 'success',
          clientId: row.id,
          targetType: 'client',
          targetId: row.id,
          details: patch,
        });
        const updated = { ...row, ...changes };
        return { id: row.id, name: updated.name, createdAt: row.created_at, viewerCanReveal: !!updated.viewer_can_reveal };
      });
    },

    /** Archives a client: hidden from lists, its keys and audit trail kept (never deleted). */
    async archive(actor: Actor, id: string): Promise<void> {
      requirePermission(actor, 'client:manage');
      await transactions.run(async (tx) => {
        const row = await repo.findVisible(tx, id, clientScope(actor));
        if (!row) throw notFound(`No client with id ${id.slice(0, 60)}.`);
        const now = clock.now();
        await repo.update(tx, row.id, { archived_at: now, updated_at: now });
        await audit.record(tx, actor, {
          action: 'client.update',
          outcome: 'success',
          clientId: row.id,
          targetType: 'client',
          targetId: row.id,
          details: { archived: true },
        });
      });
    },
  };
}
export type ClientsService = ReturnType<typeof createClientsService>;
