import net from 'node:net';
import type { Executor } from '../../db/database.js';
import type { DirectoryConnectionsTable, DirectorySyncRunsTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import { lockKey } from '../../db/locks.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, conflict, notFound } from '../../lib/errors.js';
import { parseRecoveryPassword } from '../../domain/recovery-password.js';
import type { EgressPolicy } from '../../integrations/egress.js';
import { LdapError, openLdap, windowsGuid, type LdapEntry, type LdapSession, type LdapTarget } from '../../integrations/ldap-client.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { KeyIngest } from '../keys/keys.ingest.js';
import type { KeysRepo } from '../keys/keys.repo.js';
import type { KeyReport } from '../keys/keys.types.js';
import type { Scheduler } from '../jobs/scheduler.js';
import { notifySyncFailed } from '../jobs/sync-failed.js';
import type { Notifier } from '../notifications/notifier.js';
import { deviceNameKey, newDeviceRow, type DevicesRepo } from '../devices/devices.repo.js';
import type { DirectoryRepo } from './directory.repo.js';

export type DirectoryConnectionView = {
  id: string;
  clientId: string;
  hosts: string[];
  port: number;
  tlsMode: 'ldaps' | 'starttls';
  pinnedSha256: string | null;
  allowUntrusted: boolean;
  bindDn: string;
  baseDns: string[];
  syncIntervalMinutes: number;
  /** A CA certificate is stored (it is shown nowhere; a new one replaces it). */
  hasCaCert: boolean;
  enabled: boolean;
  lastSyncAt: string | null;
  lastStatus: string | null;
  lastError: string | null;
};

/** What an admin gives to connect a directory (the password is sealed at once). */
export type DirectoryConnectionInput = {
  clientId: string;
  hosts: string[];
  port?: number;
  tlsMode?: 'ldaps' | 'starttls';
  caCert?: string | null;
  pinnedSha256?: string | null;
  allowUntrusted?: boolean;
  bindDn: string;
  password: string;
  baseDns: string[];
  syncIntervalMinutes?: number;
};
/** A change: fields left out stay; a password left out (or empty) is kept. */
export type DirectoryConnectionPatch = Partial<Omit<DirectoryConnectionInput, 'clientId' | 'password'>> & { password?: string | null; enabled?: boolean };

export type DirectoryTestCheck = { check: string; ok: boolean; detail: string };

export type DirectorySyncRunView = {
  id: string;
  status: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  mode: 'full' | 'incremental';
  dc: string | null;
  objectsRead: number;
  newKeys: number;
  newDevices: number;
  unchanged: number;
  removed: number;
  invalid: number;
  errorText: string | null;
  durationMs: number | null;
};

type Deps = {
  tx: Transactions;
  repo: DirectoryRepo;
  keyring: Pick<Keyring<Executor>, 'clientCipher'>;
  ingest: KeyIngest;
  keys: Pick<KeysRepo, 'upsertSources' | 'markSourcePresence'>;
  devices: Pick<DevicesRepo, 'findByAdObjectGuid' | 'findByNameKeys' | 'patch' | 'insert'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  scheduler: () => Scheduler;
  /** After a sync: compliance re-evaluates the client's devices (new keys, last seen, keys gone at source). */
  onSynced?: (clientId: string) => Promise<void>;
  /** sync.failed notifications. */
  notifier?: Notifier;
  /** Domain controllers are reached only at addresses this policy checked. */
  egress: EgressPolicy;
};

export const adTaskId = (id: string) => `ad-sync:${id}`;
const RECOVERY_ATTRS = ['msFVE-RecoveryPassword', 'msFVE-RecoveryGuid', 'msFVE-VolumeGuid', 'whenCreated', 'uSNChanged', 'name'];
const COMPUTER_ATTRS = ['name', 'dNSHostName', 'objectGUID', 'operatingSystem', 'lastLogonTimestamp'];
const secretContext = (id: string) => `ldap=${id}`;

const view = (c: DirectoryConnectionsTable): DirectoryConnectionView => ({
  id: c.id,
  clientId: c.client_id,
  hosts: JSON.parse(c.hosts) as string[],
  port: c.port,
  tlsMode: c.tls_mode as 'ldaps' | 'starttls',
  pinnedSha256: c.pinned_sha256,
  allowUntrusted: !!c.allow_untrusted,
  bindDn: c.bind_dn,
  baseDns: JSON.parse(c.base_dns) as string[],
  syncIntervalMinutes: c.sync_interval_minutes,
  hasCaCert: !!c.ca_cert,
  enabled: c.enabled === 1,
  lastSyncAt: c.last_sync_at,
  lastStatus: c.last_status,
  lastError: c.last_error,
});
const runView = (r: DirectorySyncRunsTable): DirectorySyncRunView => ({
  id: r.id,
  status: r.status as DirectorySyncRunView['status'],
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  mode: r.mode as DirectorySyncRunView['mode'],
  dc: r.dc,
  objectsRead: r.objects_read,
  newKeys: r.new_keys,
  newDevices: r.new_devices,
  unchanged: r.unchanged,
  removed: r.removed,
  invalid: r.invalid,
  errorText: r.error_text,
  durationMs: r.duration_ms,
});

const first = (v: unknown): string | undefined => (Array.isArray(v) ? (v[0] as string | undefined) : (v as string | undefined));
const firstBuf = (v: unknown): Buffer | undefined => (Array.isArray(v) ? (v[0] as Buffer | undefined) : Buffer.isBuffer(v) ? v : undefined);
/** The parent of an object: its DN without the first RDN (RDN values here never contain commas). */
const parentDn = (dn: string) => dn.slice(dn.indexOf(',', dn.indexOf('}')) + 1);
/** AD generalized time 20240105173035.0Z → ISO. */
const generalizedTime = (s: string | undefined) => {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})/.exec(s ?? '');
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)).toISOString() : null;
};
/** The CN's own creation time, with the client's offset: 2011-01-05T17:30:35-08:00{GUID}. */
const cnTime = (cn: string | undefined) => {
  const t = cn?.split('{')[0];
  const ms = t ? Date.parse(t) : NaN;
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
};

/**
 * Active Directory, one connection per client: recovery objects (msFVE-RecoveryInformation) under
 * the client's computers, synced over LDAPS/StartTLS; incremental by uSNChanged on the same DC.
 */
export function createDirectoryService({ tx, repo, keyring, ingest, keys, devices, audit, clock, scheduler, onSynced, notifier, egress }: Deps) {
  const load = async (exec: Executor, actor: Actor, id: string) => {
    const c = await repo.findVisible(exec, id, clientScope(actor));
    if (!c) throw notFound(`No directory connection with id ${id.slice(0, 60)}.`);
    return c;
  };
  const target = async (c: DirectoryConnectionsTable): Promise<LdapTarget> => ({
    hosts: JSON.parse(c.hosts) as string[],
    port: c.port,
    tlsMode: c.tls_mode as 'ldaps' | 'starttls',
    caCert: c.ca_cert,
    pinnedSha256: c.pinned_sha256,
    allowUntrusted: !!c.allow_untrusted,
    bindDn: c.bind_dn,
    password: (await keyring.clientCipher(tx.reader, c.client_id)).openSecret(secretContext(c.id), {
      ciphertext: c.password_ciphertext,
      dataKeyVersion: c.password_data_key_version,
    }),
  });
  const baseDns = (c: DirectoryConnectionsTable) => JSON.parse(c.base_dns) as string[];

  async function readRoot(s: LdapSession): Promise<{ dc: string; usn: string }> {
    const [root] = await s.search('', '(objectClass=*)', ['highestCommittedUSN', 'dsServiceName', 'dnsHostName', 'serverName'], { scope: 'base' });
    return { dc: first(root?.dsServiceName) ?? first(root?.serverName) ?? s.host, usn: first(root?.highestCommittedUSN) ?? '0' };
  }

  /** The connection settings, checked and completed with their defaults. */
  async function checkSettings(input: Omit<DirectoryConnectionInput, 'clientId' | 'password'>) {
    const hosts = (input.hosts ?? []).map((h) => h.trim()).filter(Boolean);
    if (!hosts.length || hosts.length > 10 || hosts.some((h) => !/^[A-Za-z0-9.:[\]-]{1,255}$/.test(h)))
      throw badRequest('hosts must list 1 to 10 domain controller host names.', { field: 'hosts' });
    const tlsMode = input.tlsMode ?? 'ldaps';
    if (tlsMode !== 'ldaps' && tlsMode !== 'starttls') throw badRequest('tlsMode must be ldaps or starttls.', { field: 'tlsMode' });
    const port = input.port ?? (tlsMode === 'ldaps' ? 636 : 389);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw badRequest('port must be 1 to 65535.', { field: 'port' });
    const caCert = input.caCert?.trim() || null;
    if (caCert && !caCert.includes('-----BEGIN CERTIFICATE-----'))
      throw badRequest('caCert must be a PEM certificate (-----BEGIN CERTIFICATE-----).', { field: 'caCert' });
    const pinnedSha256 = input.pinnedSha256?.trim() || null;
    if (pinnedSha256 && !/^[0-9A-Fa-f:]{64,95}$/.test(pinnedSha256))
      throw badRequest('pinnedSha256 must be the SHA-256 fingerprint of the DC certificate in hex (colons allowed).', { field: 'pinnedSha256' });
    const allowUntrusted = !!input.allowUntrusted;
    if (!caCert && !pinnedSha256 && !allowUntrusted) {
      throw badRequest(
        'Give the domain CA certificate (caCert), or the SHA-256 of the DC certificate (pinnedSha256); accepting any certificate needs allowUntrusted: true.',
        { field: 'caCert' },
      );
    }
    const bindDn = (input.bindDn ?? '').trim();
    if (!bindDn || bindDn.length > 500)
      throw badRequest('bindDn must name the account to bind as, e.g. CN=keywarden,OU=Service,DC=corp,DC=example.', { field: 'bindDn' });
    const baseDns = (input.baseDns ?? []).map((b) => b.trim()).filter(Boolean);
    if (!baseDns.length || baseDns.length > 20 || baseDns.some((b) => !/=/.test(b) || b.length > 500))
      throw badRequest('baseDns must list the DNs to search, e.g. OU=Contoso,DC=corp,DC=example.', { field: 'baseDns' });
    const syncIntervalMinutes = input.syncIntervalMinutes ?? 60;
    if (!Number.isInteger(syncIntervalMinutes) || syncIntervalMinutes < 5 || syncIntervalMinutes > 10080)
      throw badRequest('syncIntervalMinutes must be 5 to 10080 (a week).', { field: 'syncIntervalMinutes' });
    // An address the egress policy refuses is refused now; names are checked at every connection.
    for (const h of hosts) if (net.isIP(h.replace(/^\[|\]$/g, ''))) await egress.resolve(h, port, 'local', 'the domain controller');
    return { hosts, port, tlsMode, caCert, pinnedSha256, allowUntrusted, bindDn, baseDns, syncIntervalMinutes };
  }
  const certificateWord = (s: { caCert: string | null; pinnedSha256: string | null }) => (s.pinnedSha256 ? 'pinned' : s.caCert ? 'ca' : 'ANY (allowUntrusted)');

  const service = {
    async createConnection(actor: Actor, input: DirectoryConnectionInput): Promise<DirectoryConnectionView> {
      requirePermission(actor, 'integration:manage');
      const settings = await checkSettings(input);
      if (!input.password) throw badRequest('The bind password is required.', { field: 'password' });
      if (input.password.length > 500) throw badRequest('The bind password is at most 500 characters.', { field: 'password' });
      return tx.run(async (t) => {
        const client = await requireVisibleClient(t, actor, input.clientId, 'integration:manage');
        if (await repo.findByClient(t, client.id)) throw conflict(`${client.name} already has a directory connection.`);
        const id = newId();
        const sealed = (await keyring.clientCipher(t, client.id)).sealSecret(secretContext(id), input.password);
        const now = clock.now();
        const row: DirectoryConnectionsTable = {
          id,
          client_id: client.id,
          hosts: JSON.stringify(settings.hosts),
          port: settings.port,
          tls_mode: settings.tlsMode,
          ca_cert: settings.caCert,
          pinned_sha256: settings.pinnedSha256,
          allow_untrusted: settings.allowUntrusted ? 1 : 0,
          bind_dn: settings.bindDn,
          password_ciphertext: sealed.ciphertext,
          password_data_key_version: sealed.dataKeyVersion,
          base_dns: JSON.stringify(settings.baseDns),
          sync_interval_minutes: settings.syncIntervalMinutes,
          enabled: 1,
          last_dc: null,
          last_usn: null,
          created_at: now,
          updated_at: now,
          last_sync_at: null,
          last_status: null,
          last_error: null,
        };
        await repo.insert(t, row);
        await scheduler().ensureTask(t, { id: adTaskId(id), kind: 'ad-sync', clientId: client.id, targetId: id, intervalMinutes: row.sync_interval_minutes });
        await audit.record(t, actor, {
          action: 'ad.connect',
          outcome: 'success',
          clientId: client.id,
          targetType: 'directory_connection',
          targetId: id,
          details: {
            hosts: settings.hosts,
            port: settings.port,
            tlsMode: settings.tlsMode,
            bindDn: settings.bindDn,
            baseDns: settings.baseDns,
            certificate: certificateWord(settings),
          },
        });
        return view(row);
      });
    },

    /** Edit, enable or disable; a new bind password replaces the sealed one (empty keeps it). */
    async updateConnection(actor: Actor, id: string, patch: DirectoryConnectionPatch): Promise<DirectoryConnectionView> {
      requirePermission(actor, 'integration:manage');
      const before = await load(tx.reader, actor, id);
      const settings = await checkSettings({
        hosts: patch.hosts ?? (JSON.parse(before.hosts) as string[]),
        tlsMode: patch.tlsMode ?? (before.tls_mode as 'ldaps' | 'starttls'),
        port: patch.port ?? (patch.tlsMode && patch.tlsMode !== before.tls_mode ? undefined : before.port),
        caCert: patch.caCert === undefined ? before.ca_cert : patch.caCert,
        pinnedSha256: patch.pinnedSha256 === undefined ? before.pinned_sha256 : patch.pinnedSha256,
        allowUntrusted: patch.allowUntrusted ?? !!before.allow_untrusted,
        bindDn: patch.bindDn ?? before.bind_dn,
        baseDns: patch.baseDns ?? (JSON.parse(before.base_dns) as string[]),
        syncIntervalMinutes: patch.syncIntervalMinutes ?? before.sync_interval_minutes,
      });
      if (patch.password && patch.password.length > 500) throw badRequest('The bind password is at most 500 characters.', { field: 'password' });
      return tx.run(async (t) => {
        const c = await load(t, actor, id);
        const enabled = patch.enabled === undefined ? c.enabled === 1 : patch.enabled;
        const sealed = patch.password ? (await keyring.clientCipher(t, c.client_id)).sealSecret(secretContext(c.id), patch.password) : undefined;
        const hosts = JSON.stringify(settings.hosts);
        const baseDns = JSON.stringify(settings.baseDns);
        // Another directory, account or subtree: the next sync reads everything again.
        const fresh = hosts !== c.hosts || settings.port !== c.port || settings.bindDn !== c.bind_dn || baseDns !== c.base_dns;
        const now = clock.now();
        const changes = {
          hosts,
          port: settings.port,
          tls_mode: settings.tlsMode,
          ca_cert: settings.caCert,
          pinned_sha256: settings.pinnedSha256,
          allow_untrusted: settings.allowUntrusted ? 1 : 0,
          bind_dn: settings.bindDn,
          base_dns: baseDns,
          sync_interval_minutes: settings.syncIntervalMinutes,
          enabled: enabled ? 1 : 0,
          ...(sealed ? { password_ciphertext: sealed.ciphertext, password_data_key_version: sealed.dataKeyVersion } : {}),
          ...(fresh ? { last_dc: null, last_usn: null } : {}),
          updated_at: now,
        };
        await repo.edit(t, c.id, changes);
        if (enabled)
          await scheduler().ensureTask(t, {
            id: adTaskId(c.id),
            kind: 'ad-sync',
            clientId: c.client_id,
            targetId: c.id,
            intervalMinutes: settings.syncIntervalMinutes,
          });
        else await scheduler().removeTask(t, adTaskId(c.id));
        const changed = Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined && (k !== 'password' || !!patch.password));
        await audit.record(t, actor, {
          action: 'ad.update',
          outcome: 'success',
          clientId: c.client_id,
          targetType: 'directory_connection',
          targetId: c.id,
          details: {
            changed,
            enabled,
            hosts: settings.hosts,
            port: settings.port,
            tlsMode: settings.tlsMode,
            bindDn: settings.bindDn,
            baseDns: settings.baseDns,
            certificate: certificateWord(settings),
          },
        });
        return view({ ...c, ...changes });
      });
    },

    /** Removes the connection and its run history; the keys it synced stay in the vault. */
    async deleteConnection(actor: Actor, id: string): Promise<void> {
      requirePermission(actor, 'integration:manage');
      await tx.run(async (t) => {
        const c = await load(t, actor, id);
        await scheduler().removeTask(t, adTaskId(c.id));
        await repo.remove(t, c.id);
        await audit.record(t, actor, {
          action: 'ad.disconnect',
          outcome: 'success',
          clientId: c.client_id,
          targetType: 'directory_connection',
          targetId: c.id,
          details: { hosts: JSON.parse(c.hosts) as string[], bindDn: c.bind_dn },
        });
      });
    },

    /** Recent sync runs, newest first: the connection's health. */
    async runs(actor: Actor, id: string, limit = 20): Promise<DirectorySyncRunView[]> {
      requirePermission(actor, 'device:read');
      const c = await load(tx.reader, actor, id);
      return (await repo.runsOf(tx.reader, c.id, Math.min(Math.max(limit, 1), 100))).map(runView);
    },

    async listConnections(actor: Actor): Promise<DirectoryConnectionView[]> {
      requirePermission(actor, 'device:read');
      return (await repo.list(tx.reader, clientScope(actor))).map(view);
    },

    /**
     * Bind, then: can this account actually read recovery passwords? (A plain user sees none, silently.)
     * Each step is one check with its own result, in the order they ran.
     */
    async testConnection(
      actor: Actor,
      id: string,
    ): Promise<{ ok: boolean; detail: string; computers: number; recoveryObjects: number; readablePasswords: number; checks: DirectoryTestCheck[] }> {
      requirePermission(actor, 'integration:manage');
      const c = await load(tx.reader, actor, id);
      const checks: DirectoryTestCheck[] = [];
      let s: LdapSession | undefined;
      try {
        try {
          s = await openLdap(await target(c), egress);
          checks.push({
            check: 'Connect and sign in',
            ok: true,
            detail: `Bound to ${s.host} as ${c.bind_dn} over ${c.tls_mode === 'ldaps' ? 'LDAPS' : 'StartTLS'}.`,
          });
        } catch (e) {
          const err = e instanceof LdapError ? e : new LdapError('ldap_error', String(e));
          checks.push({ check: 'Connect and sign in', ok: false, detail: `${err.kind}: ${err.message}` });
          return { ok: false, detail: `${err.kind}: ${err.message}`, computers: 0, recoveryObjects: 0, readablePasswords: 0, checks };
        }
        let computers = 0;
        let objects = 0;
        let readable = 0;
        try {
          for (const base of baseDns(c)) {
            computers += (await s.search(base, '(objectClass=computer)', ['name'])).length;
            const rec = await s.search(base, '(objectClass=msFVE-RecoveryInformation)', ['msFVE-RecoveryPassword']);
            objects += rec.length;
            readable += rec.filter((e) => first(e['msFVE-RecoveryPassword'])).length;
          }
        } catch (e) {
          const err = e instanceof LdapError ? e : new LdapError('ldap_error', String(e));
          checks.push({ check: 'Search the base DNs', ok: false, detail: `${err.kind}: ${err.message}` });
          return { ok: false, detail: `${err.kind}: ${err.message}`, computers, recoveryObjects: objects, readablePasswords: readable, checks };
        }
        checks.push({ check: 'Search the base DNs', ok: true, detail: `${computers} computers under ${baseDns(c).join('; ')}.` });
        const ok = objects > 0 ? readable === objects : computers === 0;
        const detail = !ok
          ? objects === 0
            ? `Bound to ${s.host}, but the account sees no BitLocker recovery objects under ${computers} computers: it most likely lacks read access to msFVE-RecoveryInformation (see docs/active-directory.md).`
            : `Bound to ${s.host}; the account sees ${objects} recovery objects but can read the password of only ${readable}: grant it read access to the confidential attribute msFVE-RecoveryPassword.`
          : `Bound to ${s.host}; ${computers} computers, ${objects} recovery objects, all readable.`;
        checks.push({
          check: 'Read BitLocker recovery passwords',
          ok,
          detail: ok ? `${objects} recovery objects, ${readable} passwords readable.` : detail,
        });
        return { ok, detail, computers, recoveryObjects: objects, readablePasswords: readable, checks };
      } finally {
        await s?.close();
      }
    },

    async syncNow(actor: Actor, id: string): Promise<DirectorySyncRunView> {
      requirePermission(actor, 'integration:manage');
      const c = await load(tx.reader, actor, id);
      if (c.enabled !== 1) throw conflict('This directory connection is disabled: enable it before syncing.');
      await scheduler().runNow(adTaskId(c.id));
      return runView((await repo.latestRun(tx.reader, c.id))!);
    },

    /** One sync of one connection (scheduler handler). Never throws for a directory failure. */
    async runSync(connectionId: string): Promise<DirectorySyncRunView> {
      const conn = await repo.find(tx.reader, connectionId);
      if (!conn) throw notFound(`No directory connection ${connectionId}.`);
      const actor: Actor = { type: 'system', id: `system:ad:${conn.id}`, name: 'Active Directory sync', role: 'owner', clients: [conn.client_id] };
      const started = Date.now();
      const run: DirectorySyncRunsTable = {
        id: newId(),
        client_id: conn.client_id,
        connection_id: conn.id,
        started_at: clock.now(),
        finished_at: null,
        status: 'running',
        mode: 'full',
        dc: null,
        objects_read: 0,
        new_keys: 0,
        new_devices: 0,
        unchanged: 0,
        removed: 0,
        invalid: 0,
        error_text: null,
        duration_ms: null,
      };
      await tx.run((t) => repo.insertRun(t, run));
      let s: LdapSession | undefined;
      try {
        s = await openLdap(await target(conn), egress);
        const root = await readRoot(s);
        run.dc = root.dc;
        // uSNChanged is per domain controller: incremental only against the DC of the last sync.
        const incremental = !!conn.last_usn && conn.last_dc === root.dc;
        run.mode = incremental ? 'incremental' : 'full';
        const filter = incremental
          ? `(&(objectClass=msFVE-RecoveryInformation)(uSNChanged>=${BigInt(conn.last_usn!) + 1n}))`
          : '(objectClass=msFVE-RecoveryInformation)';
        const changed: LdapEntry[] = [];
        const present = new Set<string>();
        for (const base of baseDns(conn)) {
          changed.push(...(await s.search(base, filter, RECOVERY_ATTRS, { buffers: ['msFVE-RecoveryGuid', 'msFVE-VolumeGuid'] })));
          // Which keys still exist (ids only, no passwords): how deletions are noticed.
          for (const e of await s.search(base, '(objectClass=msFVE-RecoveryInformation)', ['msFVE-RecoveryGuid'], { buffers: ['msFVE-RecoveryGuid'] })) {
            const g = windowsGuid(firstBuf(e['msFVE-RecoveryGuid'])!);
            if (g) present.add(g);
          }
        }
        run.objects_read = changed.length;
        // The computers these keys belong to.
        const computerDns = [...new Set(changed.map((e) => parentDn(e.dn)))];
        const computers = new Map<string, { name: string; guid: string | null; dn: string; os: string | null; dns: string | null }>();
        for (const dn of computerDns) {
          const [c] = await s.search(dn, '(objectClass=computer)', COMPUTER_ATTRS, { scope: 'base', buffers: ['objectGUID'] }).catch(() => [] as LdapEntry[]);
          if (!c) continue;
          const guidBuf = firstBuf(c.objectGUID);
          computers.set(dn, {
            name: first(c.name) ?? dn.split(',')[0]!.slice(3),
            guid: guidBuf ? windowsGuid(guidBuf) : null,
            dn,
            os: first(c.operatingSystem) ?? null,
            dns: first(c.dNSHostName) ?? null,
          });
        }
        // Computers match devices by objectGUID, then by name; the device's name is what ingest matches on.
        await tx.run(async (t) => {
          // The client's ingest lock before any write: devices created here and the keys ingested
          // below are serialised with imports, other syncs and agent uploads of the same client.
          await lockKey(t, 'ingest', conn.client_id);
          const now = clock.now();
          for (const comp of computers.values()) {
            let dev: { id: string; name: string } | undefined = comp.guid ? await devices.findByAdObjectGuid(t, conn.client_id, comp.guid) : undefined;
            dev ??= (await devices.findByNameKeys(t, conn.client_id, [deviceNameKey(comp.name)]))[0];
            if (dev) {
              await devices.patch(t, conn.client_id, dev.id, { ad_object_guid: comp.guid, ad_dn: comp.dn, last_seen_at: now });
              comp.name = dev.name;
            } else {
              run.new_devices++;
              await devices.insert(
                t,
                newDeviceRow({
                  id: newId(),
                  clientId: conn.client_id,
                  name: comp.name,
                  now,
                  domain: comp.dns?.split('.').slice(1).join('.') || null,
                  ad_object_guid: comp.guid,
                  ad_dn: comp.dn,
                  facts: JSON.stringify({ os: { caption: comp.os } }),
                }),
              );
            }
          }
          const reports: KeyReport[] = [];
          for (const e of changed) {
            const keyId = windowsGuid(firstBuf(e['msFVE-RecoveryGuid'])!);
            const pw = parseRecoveryPassword(first(e['msFVE-RecoveryPassword']) ?? '');
            const comp = computers.get(parentDn(e.dn));
            if (!keyId) continue;
            if (!pw.ok) {
              // AD does not validate what it stores: report it, never import it as a working key.
              run.invalid++;
              await audit.record(t, actor, {
                action: 'ad.invalid_password',
                outcome: 'failure',
                clientId: conn.client_id,
                targetType: 'ad_object',
                targetId: keyId,
                details: { keyId, computer: comp?.name ?? null, problem: pw.reason },
              });
              continue;
            }
            reports.push({
              keyId,
              recoveryPassword: pw.value,
              device: comp ? { name: comp.name } : undefined,
              createdAt: cnTime(first(e.name)) ?? generalizedTime(first(e.whenCreated)),
            });
          }
          if (reports.length) {
            const r = await ingest(t, actor, conn.client_id, { type: 'ad', ref: conn.id }, reports);
            run.new_keys = r.imported + r.conflicts;
            run.unchanged = r.duplicates;
          }
          // Keys gone from AD (computer deleted, key removed): kept, marked removed at source.
          run.removed = await keys.markSourcePresence(t, conn.client_id, { type: 'ad', ref: conn.id }, present, now);
          await repo.update(t, conn.id, { last_dc: root.dc, last_usn: root.usn });
        });
        run.status = 'succeeded';
      } catch (e) {
        run.status = 'failed';
        run.error_text = e instanceof LdapError ? `${e.kind}: ${e.message}` : 'an unexpected error stopped the sync';
      } finally {
        await s?.close();
      }
      run.finished_at = clock.now();
      run.duration_ms = Date.now() - started;
      await tx.run(async (t) => {
        await repo.updateRun(t, run);
        if (run.status === 'failed' && notifier) {
          await notifySyncFailed(t, notifier, {
            source: 'Active Directory',
            dedupKind: 'ad',
            clientId: conn.client_id,
            connectionId: conn.id,
            occurredAt: run.finished_at!,
            details: { dc: run.dc, error: run.error_text },
          });
        }
      });
      await tx.run((t) =>
        repo.update(t, conn.id, { last_sync_at: run.finished_at, last_status: run.status, last_error: run.error_text, updated_at: run.finished_at! }),
      );
      await audit.recordNow(actor, {
        action: 'ad.sync',
        outcome: run.status === 'succeeded' ? 'success' : 'failure',
        clientId: conn.client_id,
        targetType: 'directory_connection',
        targetId: conn.id,
        details: {
          mode: run.mode,
          dc: run.dc,
          objectsRead: run.objects_read,
          newKeys: run.new_keys,
          unchanged: run.unchanged,
          removed: run.removed,
          invalid: run.invalid,
          error: run.error_text,
        },
      });
      if (run.status === 'succeeded') await onSynced?.(conn.client_id);
      return runView(run);
    },
  };
  return service;
}
export type DirectoryService = ReturnType<typeof createDirectoryService>;
