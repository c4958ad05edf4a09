import type { Db, Executor } from '../../db/database.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, conflict, notFound } from '../../lib/errors.js';
import type { Keyring } from '../../crypto/keyring.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { clientNameKey, type ClientsRepo } from './clients.repo.js';

export type Client = { id: string; name: string; createdAt: string };
export type ClientSummary = Client & { devices: number; keys: number };

type Deps = {
  db: Db;
  repo: ClientsRepo;
  keyring: Pick<Keyring<Executor>, 'createClientKey'>;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
};

const MAX_NAME = 200;

export function validateClientName(raw: string): string {
  const name = raw.trim().replace(/\s+/g, ' ');
  if (!name) throw badRequest('A client name cannot be empty.');
  if (name.length > MAX_NAME) throw badRequest(`A client name can be at most ${MAX_NAME} characters; got ${name.length}.`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw badRequest('A client name cannot contain control characters.');
  return name;
}

export function createClientsService({ db, repo, keyring, audit, clock }: Deps) {
  return {
    /** Creates the client and its own data key in one transaction. */
    async create(actor: Actor, input: { name: string }): Promise<Client> {
      requirePermission(actor, 'client:manage');
      const name = validateClientName(input.name);
      return db.transaction().execute(async (tx) => {
        if (await repo.findByNameKey(tx, clientNameKey(name), null)) {
          throw conflict(`A client named "${name}" already exists.`);
        }
        const now = clock.now();
        const id = newId();
        await repo.insert(tx, { id, name, name_key: clientNameKey(name), created_at: now, updated_at: now, archived_at: null });
        await keyring.createClientKey(tx, id, now);
        await audit.record(tx, actor, { action: 'client.create', outcome: 'success', clientId: id, targetType: 'client', targetId: id, details: { name } });
        return { id, name, createdAt: now };
      });
    },

    async list(actor: Actor): Promise<ClientSummary[]> {
      requirePermission(actor, 'client:read');
      const rows = await repo.list(db, clientScope(actor));
      return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at, devices: Number(r.devices ?? 0), keys: Number(r.keys ?? 0) }));
    },

    /** Finds a client by name (case-insensitive) among those the actor may see; 404 otherwise. */
    async getByName(actor: Actor, name: string): Promise<Client> {
      requirePermission(actor, 'client:read');
      const row = await repo.findByNameKey(db, clientNameKey(name), clientScope(actor));
      if (!row) throw notFound(`No client named "${name.trim()}". See "keywarden client list", or create it with "keywarden client add".`);
      return { id: row.id, name: row.name, createdAt: row.created_at };
    },
  };
}
export type ClientsService = ReturnType<typeof createClientsService>;
