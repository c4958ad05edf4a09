import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import type { Clock } from '../../lib/clock.js';
import type { Policy } from '../../config.js';
import { badRequest, conflict, forbidden, notFound } from '../../lib/errors.js';
import { parseKeyIdQuery } from '../../domain/key-id.js';
import { isRecoveryPasswordShaped } from '../../domain/recovery-password.js';
import { can, clientScope, requirePermission, revealScope, systemActor, type Actor } from '../authz/authz.js';
import { toAuditEvent } from '../audit/audit.service.js';
import type { AuditService } from '../audit/audit.service.js';
import type { AuditEvent } from '../audit/audit.types.js';
import type { IdentityService } from '../identity/identity.service.js';
import type { KeysRepo } from '../keys/keys.repo.js';
import type { KeysService } from '../keys/keys.service.js';
import type { KeySummary } from '../keys/keys.types.js';

/**
 * What the web console needs beyond the plain resources: first-run setup, the helpdesk key-ID
 * lookup, per-client summaries and the server-side devices table, a device's history, and the
 * security settings page. Thin queries over the same tables; tenancy in every WHERE.
 */

type Deps = {
  db: Db;
  clock: Clock;
  policy: Policy;
  identity: Pick<IdentityService, 'hasUsers' | 'createUser'>;
  keys: Pick<KeysService, 'search'>;
  keysRepo: Pick<KeysRepo, 'searchByKeyId' | 'sourcesOf'>;
  audit: Pick<AuditService, 'record'>;
};

export type Encryption = 'encrypted' | 'not-encrypted' | 'unknown';
export type DeviceRow = {
  id: string;
  name: string;
  serial: string | null;
  primaryUser: string | null;
  lastSeenAt: string;
  lastCheckinAt: string | null;
  keys: number;
  encryption: Encryption;
  escrowed: boolean;
  openFindings: number;
};
export type DeviceTableQuery = {
  q?: string;
  encryption?: Encryption;
  escrowed?: boolean;
  sort?: 'name' | 'lastSeenAt' | 'keys' | 'encryption' | 'escrowed' | 'openFindings';
  dir?: 'asc' | 'desc';
  limit?: number;
  offset?: number;
};
export type ClientOverview = {
  client: { id: string; name: string };
  devices: number;
  keys: number;
  encryption: Record<Encryption, number>;
  escrow: { escrowed: number; notEscrowed: number };
  lastSeen: { day: number; week: number; month: number; older: number };
  openFindings: number;
  sources: Record<string, number>;
  /** Devices by their compliance status (issue 8's policy evaluation); notEvaluated: not evaluated yet. */
  compliance: ComplianceCounts;
};
export type ComplianceCounts = { compliant: number; 'non-compliant': number; exempt: number; unknown: number; notEvaluated: number };
export type SecuritySettings = {
  requireMfa: boolean;
  revealHideSeconds: number;
  stepUpMinutes: number;
  revealLimitPerHour: number;
  sessionIdleMinutes: number;
  sessionMaxHours: number;
  clients: { id: string; name: string; rotateAfterDisclosure: boolean; viewerCanReveal: boolean }[];
};

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HIDE_KEY = 'reveal_hide_seconds';
export const DEFAULT_HIDE_SECONDS = 60;
/** Keys that are still the device's current protector (not replaced, not rotated away). */
const CURRENT_KEY_STATES = ['active', 'disclosed', 'conflict'];
const EXPORT_MAX = 100_000;

export function createConsoleService({ db, clock, policy, identity, keys, keysRepo, audit }: Deps) {
  /** Only one first-run setup at a time in this process: two racing browsers make one owner. */
  let setupRunning: Promise<unknown> = Promise.resolve();

  const scoped = (actor: Actor, clientId: string) => {
    const scope = clientScope(actor);
    if (scope && !scope.includes(clientId)) throw notFound(`No client with id ${clientId.slice(0, 60)}.`);
  };
  const loadClient = async (actor: Actor, clientId: string) => {
    if (!ID.test(clientId)) throw notFound(`No client with id ${clientId.slice(0, 60)}.`);
    scoped(actor, clientId);
    const c = await db.selectFrom('clients').select(['id', 'name']).where('id', '=', clientId.toLowerCase()).where('archived_at', 'is', null).executeTakeFirst();
    if (!c) throw notFound(`No client with id ${clientId.slice(0, 60)}.`);
    return c;
  };

  /** One row per device of a client with its computed encryption / escrow state (a subquery to filter and sort on). */
  const deviceRows = (clientId: string) =>
    db
      .selectFrom('devices as d')
      .where('d.client_id', '=', clientId)
      .where('d.retired_at', 'is', null)
      .select((eb) => [
        'd.id',
        'd.name',
        'd.name_key',
        'd.serial',
        'd.primary_user',
        'd.last_seen_at',
        'd.last_checkin_at',
        eb.selectFrom('recovery_keys as k').whereRef('k.device_id', '=', 'd.id').where('k.client_id', '=', clientId).select(eb.fn.countAll<number>().as('n')).as('keys'),
        eb
          .selectFrom('recovery_keys as k')
          .whereRef('k.device_id', '=', 'd.id')
          .where('k.client_id', '=', clientId)
          .where('k.state', 'in', CURRENT_KEY_STATES)
          .select(eb.fn.countAll<number>().as('n'))
          .as('current_keys'),
        eb
          .selectFrom('volumes as v')
          .whereRef('v.device_id', '=', 'd.id')
          .where('v.client_id', '=', clientId)
          .where('v.encryption_state', 'is not', null)
          .select(eb.fn.countAll<number>().as('n'))
          .as('known_volumes'),
        eb
          .selectFrom('volumes as v')
          .whereRef('v.device_id', '=', 'd.id')
          .where('v.client_id', '=', clientId)
          .where('v.encryption_state', '=', 'FullyDecrypted')
          .select(eb.fn.countAll<number>().as('n'))
          .as('clear_volumes'),
        eb
          .selectFrom('findings as f')
          .whereRef('f.device_id', '=', 'd.id')
          .where('f.client_id', '=', clientId)
          .where('f.resolved_at', 'is', null)
          .select(eb.fn.countAll<number>().as('n'))
          .as('open_findings'),
      ]);

  /** The same rows with the derived columns, as a table the outer query filters, sorts and pages. */
  const deviceTable = (clientId: string) =>
    db
      .selectFrom(deviceRows(clientId).as('t'))
      .selectAll('t')
      .select([
        sql<Encryption>`case when t.clear_volumes > 0 then 'not-encrypted' when t.known_volumes > 0 then 'encrypted' else 'unknown' end`.as('encryption'),
        sql<number>`case when t.current_keys > 0 and t.open_findings = 0 then 1 else 0 end`.as('escrowed'),
      ]);

  type TableRow = Awaited<ReturnType<ReturnType<typeof deviceTable>['execute']>>[number];
  const toDeviceRow = (r: TableRow): DeviceRow => ({
    id: r.id,
    name: r.name,
    serial: r.serial,
    primaryUser: r.primary_user,
    lastSeenAt: r.last_seen_at,
    lastCheckinAt: r.last_checkin_at,
    keys: Number(r.keys ?? 0),
    encryption: r.encryption,
    escrowed: Number(r.escrowed) === 1,
    openFindings: Number(r.open_findings ?? 0),
  });

  const filtered = (clientId: string, query: DeviceTableQuery) => {
    let q = db.selectFrom(deviceTable(clientId).as('x'));
    const text = query.q?.trim().toLowerCase();
    if (text) {
      const like = `%${text}%`;
      q = q.where((eb) => eb.or([eb('x.name_key', 'like', like), eb(eb.fn('lower', ['x.serial']), 'like', like), eb(eb.fn('lower', ['x.primary_user']), 'like', like)]));
    }
    if (query.encryption) q = q.where('x.encryption', '=', query.encryption);
    if (query.escrowed !== undefined) q = q.where('x.escrowed', '=', query.escrowed ? 1 : 0);
    return q;
  };

  /** Compliance status counts of a client's (not retired) devices, from the latest evaluation. */
  const complianceOf = async (clientId: string, devices: number): Promise<ComplianceCounts> => {
    const rows = await db
      .selectFrom('device_compliance as dc')
      .innerJoin('devices as d', 'd.id', 'dc.device_id')
      .select((eb) => ['dc.status', eb.fn.countAll<number>().as('n')])
      .where('dc.client_id', '=', clientId)
      .where('d.client_id', '=', clientId)
      .where('d.retired_at', 'is', null)
      .groupBy('dc.status')
      .execute();
    const out: ComplianceCounts = { compliant: 0, 'non-compliant': 0, exempt: 0, unknown: 0, notEvaluated: 0 };
    let seen = 0;
    for (const r of rows) {
      const n = Number(r.n);
      seen += n;
      if (r.status in out) out[r.status as keyof ComplianceCounts] += n;
      else out.unknown += n;
    }
    out.notEvaluated = Math.max(devices - seen, 0);
    return out;
  };

  const SORT_COLUMN = { name: 'x.name_key', lastSeenAt: 'x.last_seen_at', keys: 'x.keys', encryption: 'x.encryption', escrowed: 'x.escrowed', openFindings: 'x.open_findings' } as const;

  const security = async (actor: Actor): Promise<SecuritySettings> => {
    const rows = await db.selectFrom('settings').select(['key', 'value']).where('key', 'in', ['require_mfa', HIDE_KEY]).execute();
    const get = (k: string) => rows.find((r) => r.key === k)?.value;
    let cq = db.selectFrom('clients').select(['id', 'name', 'rotate_after_disclosure', 'viewer_can_reveal']).where('archived_at', 'is', null).orderBy('name_key');
    const scope = clientScope(actor);
    if (scope) cq = scope.length ? cq.where('id', 'in', scope as string[]) : cq.where((eb) => eb.val(false));
    const clients = await cq.execute();
    return {
      requireMfa: get('require_mfa') === 'true',
      revealHideSeconds: Number(get(HIDE_KEY) ?? DEFAULT_HIDE_SECONDS),
      stepUpMinutes: policy.stepUpMinutes,
      revealLimitPerHour: policy.revealLimitPerHour,
      sessionIdleMinutes: policy.sessionIdleMinutes,
      sessionMaxHours: policy.sessionMaxHours,
      clients: clients.map((c) => ({ id: c.id, name: c.name, rotateAfterDisclosure: c.rotate_after_disclosure === 1, viewerCanReveal: c.viewer_can_reveal === 1 })),
    };
  };

  return {
    // ---------------------------------------------------------------- first-run setup
    async setupStatus(): Promise<{ needed: boolean }> {
      return { needed: !(await identity.hasUsers()) };
    },

    /**
     * Creates the first owner from the browser while the vault has no user at all. Accepted only
     * from this machine (loopback): on a server, the first owner is made with `keywarden user add`.
     */
    async setupOwner(input: { email: string; password: string; ip: string | null }): Promise<void> {
      const loopback = input.ip === '127.0.0.1' || input.ip === '::1' || input.ip === '::ffff:127.0.0.1';
      if (!loopback) {
        throw forbidden('First-run setup from the browser works only on the server itself (http://127.0.0.1). On a remote server, create the first owner with "keywarden user add you@example.com".');
      }
      const run = setupRunning.then(async () => {
        if (await identity.hasUsers()) throw conflict('Keywarden already has an owner. Sign in instead.');
        await identity.createUser(systemActor('first-run setup'), { email: input.email, password: input.password, role: 'owner', clients: 'all' });
      });
      setupRunning = run.catch(() => undefined);
      await run;
    },

    // ---------------------------------------------------------------- the helpdesk lookup
    /**
     * Key-ID lookup for people who may reveal but not browse (helpdesk, a client's own staff):
     * only a key ID or its first 8+ characters, only keys they may reveal. A single match shows
     * its metadata (to confirm device and user on the phone); several show only how many.
     */
    async lookup(actor: Actor, text: string): Promise<{ matches: number; keys: KeySummary[] }> {
      requirePermission(actor, 'key:lookup');
      if (isRecoveryPasswordShaped(text)) throw badRequest('That looks like a recovery password, not a key ID. Type the key ID shown on the recovery screen.');
      const q = parseKeyIdQuery(text);
      if (!q.ok) throw badRequest(`Type the key ID shown on the recovery screen, at least its first 8 characters (${q.reason}).`, { field: 'keyId' });
      // Roles that may list keys get the same candidates the search box shows them.
      if (can(actor, 'key:list') && actor.role !== 'client-viewer') {
        const found = await keys.search(actor, text, 51);
        return { matches: found.length, keys: found.slice(0, 50) };
      }
      const rows = await keysRepo.searchByKeyId(db, revealScope(actor), q.value, 51);
      if (rows.length !== 1) return { matches: rows.length, keys: [] };
      const r = rows[0]!;
      const sources = await keysRepo.sourcesOf(db, [r.id]);
      return {
        matches: 1,
        keys: [
          {
            id: r.id,
            keyId: r.key_id,
            client: { id: r.client_id, name: r.client_name },
            device: r.device_id ? { id: r.device_id, name: r.device_name ?? '' } : null,
            volume: r.mount_point || r.volume_type ? { mountPoint: r.mount_point ?? null, type: r.volume_type ?? 'unknown' } : null,
            state: r.state as KeySummary['state'],
            createdAt: r.source_created_at,
            firstSeenAt: r.first_seen_at,
            lastSeenAt: r.last_seen_at,
            sources: sources.map((s) => ({ type: s.source_type, ref: s.source_ref, firstSeenAt: s.first_seen_at, lastSeenAt: s.last_seen_at })),
          },
        ],
      };
    },

    // ---------------------------------------------------------------- clients at a glance
    async clientOverview(actor: Actor, clientId: string): Promise<ClientOverview> {
      // The permission first, without the client: a client outside the actor's list is then "not found".
      requirePermission(actor, 'device:read');
      const client = await loadClient(actor, clientId);
      const rows = await deviceTable(client.id).execute();
      const now = Date.parse(clock.now());
      const age = (iso: string) => (now - Date.parse(iso)) / 86_400_000;
      const out: ClientOverview = {
        client,
        devices: rows.length,
        keys: 0,
        encryption: { encrypted: 0, 'not-encrypted': 0, unknown: 0 },
        escrow: { escrowed: 0, notEscrowed: 0 },
        lastSeen: { day: 0, week: 0, month: 0, older: 0 },
        openFindings: 0,
        sources: {},
        compliance: { compliant: 0, 'non-compliant': 0, exempt: 0, unknown: 0, notEvaluated: 0 },
      };
      for (const r of rows) {
        const d = toDeviceRow(r);
        out.keys += d.keys;
        out.encryption[d.encryption]++;
        if (d.escrowed) out.escrow.escrowed++;
        else out.escrow.notEscrowed++;
        const a = age(d.lastSeenAt);
        if (a <= 1) out.lastSeen.day++;
        else if (a <= 7) out.lastSeen.week++;
        else if (a <= 30) out.lastSeen.month++;
        else out.lastSeen.older++;
        out.openFindings += d.openFindings;
      }
      const sources = await db
        .selectFrom('key_sources')
        .select((eb) => ['source_type', eb.fn.countAll<number>().as('n')])
        .where('client_id', '=', client.id)
        .where('removed_at', 'is', null)
        .groupBy('source_type')
        .execute();
      for (const s of sources) out.sources[s.source_type] = Number(s.n);
      out.compliance = await complianceOf(client.id, out.devices);
      return out;
    },

    /** Every visible client at a glance (the clients list): devices, keys, encryption and escrow counts. */
    async clientsOverview(actor: Actor): Promise<(Omit<ClientOverview, 'client' | 'lastSeen' | 'sources' | 'compliance'> & { id: string; name: string; compliance: ComplianceCounts | null })[]> {
      requirePermission(actor, 'client:read');
      let q = db.selectFrom('clients').select(['id', 'name']).where('archived_at', 'is', null).orderBy('name_key');
      const scope = clientScope(actor);
      if (scope) q = scope.length ? q.where('id', 'in', scope as string[]) : q.where((eb) => eb.val(false));
      const clients = await q.execute();
      const mayDevices = (id: string) => can(actor, 'device:read', id);
      const out = [];
      for (const c of clients) {
        const row = {
          id: c.id,
          name: c.name,
          devices: 0,
          keys: 0,
          encryption: { encrypted: 0, 'not-encrypted': 0, unknown: 0 },
          escrow: { escrowed: 0, notEscrowed: 0 },
          openFindings: 0,
          compliance: null as ComplianceCounts | null,
        };
        // Helpdesk sees clients but not their devices: names only.
        if (mayDevices(c.id)) {
          const counts = await db
            .selectFrom(deviceTable(c.id).as('x'))
            .select((eb) => ['x.encryption', 'x.escrowed', eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('x.keys').as('keys'), eb.fn.sum<number>('x.open_findings').as('findings')])
            .groupBy(['x.encryption', 'x.escrowed'])
            .execute();
          for (const r of counts) {
            const n = Number(r.n);
            row.devices += n;
            row.keys += Number(r.keys ?? 0);
            row.openFindings += Number(r.findings ?? 0);
            row.encryption[r.encryption as Encryption] += n;
            if (Number(r.escrowed) === 1) row.escrow.escrowed += n;
            else row.escrow.notEscrowed += n;
          }
          row.compliance = await complianceOf(c.id, row.devices);
        }
        out.push(row);
      }
      return out;
    },

    /** The client page's devices table: filtered, sorted and paged by the database. */
    async clientDevices(actor: Actor, clientId: string, query: DeviceTableQuery): Promise<{ total: number; items: DeviceRow[] }> {
      // The permission first, without the client: a client outside the actor's list is then "not found".
      requirePermission(actor, 'device:read');
      const client = await loadClient(actor, clientId);
      const base = filtered(client.id, query);
      const total = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      const dir = query.dir ?? 'asc';
      const rows = await base
        .selectAll('x')
        .orderBy(SORT_COLUMN[query.sort ?? 'name'], dir)
        .orderBy('x.name_key', 'asc')
        .orderBy('x.id', 'asc')
        .limit(Math.min(Math.max(query.limit ?? 50, 1), 500))
        .offset(Math.max(query.offset ?? 0, 0))
        .execute();
      return { total: Number(total.n), items: (rows as TableRow[]).map(toDeviceRow) };
    },

    /** Every matching device of the table, for CSV (bounded; the table's own filters and order). */
    async exportClientDevices(actor: Actor, clientId: string, query: DeviceTableQuery): Promise<{ client: string; rows: DeviceRow[] }> {
      // The permission first, without the client: a client outside the actor's list is then "not found".
      requirePermission(actor, 'device:read');
      const client = await loadClient(actor, clientId);
      const rows = await filtered(client.id, query)
        .selectAll('x')
        .orderBy(SORT_COLUMN[query.sort ?? 'name'], query.dir ?? 'asc')
        .orderBy('x.name_key', 'asc')
        .limit(EXPORT_MAX)
        .execute();
      return { client: client.name, rows: (rows as TableRow[]).map(toDeviceRow) };
    },

    // ---------------------------------------------------------------- a device's history
    /** Reported encryption states of the device's volumes over time, newest first. */
    async volumeHistory(actor: Actor, deviceId: string) {
      requirePermission(actor, 'device:read');
      const device = await visibleDevice(actor, deviceId);
      const rows = await db
        .selectFrom('volume_states as s')
        .innerJoin('volumes as v', 'v.id', 's.volume_id')
        .select(['s.id', 's.recorded_at', 'v.mount_point', 's.volume_status', 's.protection_status', 's.encryption_method', 's.encryption_percentage'])
        .where('s.client_id', '=', device.client_id)
        .where('v.client_id', '=', device.client_id)
        .where('v.device_id', '=', device.id)
        .orderBy('s.recorded_at', 'desc')
        .limit(200)
        .execute();
      return rows.map((r) => ({
        id: r.id,
        recordedAt: r.recorded_at,
        mountPoint: r.mount_point,
        volumeStatus: r.volume_status,
        protectionStatus: r.protection_status,
        encryptionMethod: r.encryption_method,
        encryptionPercentage: r.encryption_percentage,
      }));
    },

    /** Audit events about the device or any of its keys, newest first (audit readers only). */
    async deviceAudit(actor: Actor, deviceId: string, limit = 100): Promise<AuditEvent[]> {
      requirePermission(actor, 'audit:read');
      const device = await visibleDevice(actor, deviceId);
      const keyIds = (await db.selectFrom('recovery_keys').select('id').where('client_id', '=', device.client_id).where('device_id', '=', device.id).execute()).map((k) => k.id);
      const targets = [device.id, ...keyIds];
      const rows = await db
        .selectFrom('audit_events')
        .selectAll()
        .where('client_id', '=', device.client_id)
        .where((eb) => {
          const parts = [];
          for (let i = 0; i < targets.length; i += 500) parts.push(eb('target_id', 'in', targets.slice(i, i + 500)));
          return eb.or(parts);
        })
        .orderBy('seq', 'desc')
        .limit(Math.min(Math.max(limit, 1), 500))
        .execute();
      return rows.map(toAuditEvent);
    },

    // ---------------------------------------------------------------- settings
    /** What every signed-in person's console needs to know (no secrets): how long a revealed password stays. */
    async consoleSettings(actor: Actor): Promise<{ revealHideSeconds: number; stepUpMinutes: number }> {
      void actor;
      const row = await db.selectFrom('settings').select('value').where('key', '=', HIDE_KEY).executeTakeFirst();
      return { revealHideSeconds: Number(row?.value ?? DEFAULT_HIDE_SECONDS), stepUpMinutes: policy.stepUpMinutes };
    },

    async getSecurity(actor: Actor): Promise<SecuritySettings> {
      requirePermission(actor, 'settings:manage');
      return security(actor);
    },

    /** The owner's security page: MFA required, how long a revealed password stays on screen, rotate after disclosure per client. */
    async updateSecurity(
      actor: Actor,
      patch: { requireMfa?: boolean; revealHideSeconds?: number; clients?: { id: string; rotateAfterDisclosure: boolean }[] },
    ): Promise<SecuritySettings> {
      requirePermission(actor, 'settings:manage');
      if (patch.revealHideSeconds !== undefined && (!Number.isInteger(patch.revealHideSeconds) || patch.revealHideSeconds < 10 || patch.revealHideSeconds > 600)) {
        throw badRequest('A revealed password stays on screen from 10 to 600 seconds.', { field: 'revealHideSeconds' });
      }
      await db.transaction().execute(async (tx) => {
        const now = clock.now();
        const put = async (key: string, value: string) => {
          const has = await tx.selectFrom('settings').select('key').where('key', '=', key).executeTakeFirst();
          if (has) await tx.updateTable('settings').set({ value, updated_at: now }).where('key', '=', key).execute();
          else await tx.insertInto('settings').values({ key, value, updated_at: now }).execute();
        };
        if (patch.requireMfa !== undefined) await put('require_mfa', String(patch.requireMfa));
        if (patch.revealHideSeconds !== undefined) await put(HIDE_KEY, String(patch.revealHideSeconds));
        for (const c of patch.clients ?? []) {
          const row = ID.test(c.id) ? await tx.selectFrom('clients').select('id').where('id', '=', c.id.toLowerCase()).where('archived_at', 'is', null).executeTakeFirst() : undefined;
          if (!row) throw badRequest(`No such client: ${c.id.slice(0, 60)}.`, { field: 'clients' });
          await tx.updateTable('clients').set({ rotate_after_disclosure: c.rotateAfterDisclosure ? 1 : 0, updated_at: now }).where('id', '=', row.id).execute();
          await audit.record(tx, actor, { action: 'client.update', outcome: 'success', clientId: row.id, targetType: 'client', targetId: row.id, details: { rotateAfterDisclosure: c.rotateAfterDisclosure } });
        }
        const { clients: _c, ...rest } = patch;
        if (Object.keys(rest).length) await audit.record(tx, actor, { action: 'settings.update', outcome: 'success', details: rest });
      });
      return security(actor);
    },
  };

  async function visibleDevice(actor: Actor, deviceId: string) {
    const scope = clientScope(actor);
    let q = db.selectFrom('devices').select(['id', 'client_id']).where('id', '=', ID.test(deviceId) ? deviceId.toLowerCase() : '00000000-0000-0000-0000-000000000000');
    if (scope) q = scope.length ? q.where('client_id', 'in', scope as string[]) : q.where((eb) => eb.val(false));
    const d = await q.executeTakeFirst();
    if (!d) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
    return d;
  }
}
export type ConsoleService = ReturnType<typeof createConsoleService>;
