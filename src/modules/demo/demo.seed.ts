import { randomBytes } from 'node:crypto';
import type { Container } from '../../container.js';
import type { Executor } from '../../db/database.js';
import { openKeyring } from '../../crypto/keyring.js';
import { loadMasterKey } from '../../crypto/master-key.js';
import { agentFingerprint } from '../../crypto/tokens.js';
import type { Clock } from '../../lib/clock.js';
import { conflict } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { CheckinRequest, UploadRequest, type CheckinResponse } from '../agent/agent.protocol.js';
import { systemActor, type Actor, type Role } from '../authz/authz.js';
import { createDevicesRepo } from '../devices/devices.repo.js';
import { createDirectoryRepo } from '../directory/directory.repo.js';
import { adTaskId } from '../directory/directory.service.js';
import { createGraphRepo } from '../graph/graph.repo.js';
import { syncTaskId } from '../graph/graph.service.js';
import { createKeyIngest, type KeyIngest } from '../keys/keys.ingest.js';
import { createKeysRepo } from '../keys/keys.repo.js';
import type { KeyReport } from '../keys/keys.types.js';
import { createVaultRepo } from '../vault/vault.repo.js';
import { DEMO_CLIENTS, DEMO_MSP, generateDevices, type DemoDevice, type DemoVolume } from './demo.data.js';
import { createRng, type Rng } from './demo.random.js';
import { createDemoRepo } from './demo.repo.js';

/**
 * `keywarden demo`: a realistic MSP in an empty vault, built through the same services the real
 * sources use (agent enrolment and check-ins, Entra- and AD-shaped syncs through the key ingest,
 * CSV and TXT imports, reveals by users), so the console shows the product as it really behaves.
 * Every password in it is generated from the seed and only ever lives in this demo vault.
 */

/** A clock the seeder can move into the past, so the demo has weeks of history. */
export type DemoClock = Clock & { setDaysAgo(days: number): void; reset(): void };
export function createDemoClock(): DemoClock {
  let offsetMs: number | null = null;
  return {
    now: () => new Date(Date.now() - (offsetMs ?? 0)).toISOString(),
    setDaysAgo(days: number) {
      const next = Math.max(0, Math.round(days * 86_400_000));
      // Never moves backwards: the audit chain is in time order.
      if (offsetMs === null || next < offsetMs) offsetMs = next;
    },
    reset: () => void (offsetMs = 0),
  };
}
const isDemoClock = (c: Clock): c is DemoClock => typeof (c as DemoClock).setDaysAgo === 'function';

export type DemoUser = { email: string; role: Role; clients: 'all' | string[]; note: string };
export type DemoSummary = {
  msp: string;
  /** The one password of every demo user: printed once, for this demo only. */
  password: string;
  users: DemoUser[];
  clients: { id: string; name: string; devices: number; sources: string[] }[];
  devices: number;
  keys: number;
  findings: number;
  reveals: number;
  /** Key-ID prefixes to try in the console: each finds exactly one key. */
  samplePrefixes: { prefix: string; client: string; device: string }[];
  /** A prefix two keys share (in different clients): the "several keys match" case. */
  ambiguousPrefix: string;
  /** Who takes the helpdesk call in the demo (reveal by key ID only). */
  helpdeskEmail: string;
  /** The client the client-viewer demo user belongs to. */
  viewerClient: { id: string; name: string };
};

const repo = createDemoRepo();

const DEMO_IP = '192.0.2.10'; // TEST-NET-1: documentation addresses, never a real client
const DEMO_UA = 'Mozilla/5.0 (Keywarden demo data)';

/** True when the vault has no clients, no users and no keys: the only vault the demo fills. */
export async function isEmptyVault(c: Container): Promise<boolean> {
  const db = c.database.db;
  return !(await repo.any(db, 'clients')) && !(await repo.any(db, 'users')) && !(await repo.any(db, 'recovery_keys'));
}

/** The key ingest over the container's database (the container keeps its own private). */
export async function openIngest(c: Container): Promise<KeyIngest> {
  const keyring = await openKeyring(createVaultRepo(), c.database.db, loadMasterKey(c.config.masterKey), newId);
  return createKeyIngest({ keys: createKeysRepo(), devices: createDevicesRepo(), keyring, audit: c.audit, clock: c.clock });
}

const braces = (g: string) => `{${g.toUpperCase()}}`;

/** The Windows agent as a device would run it, talking to the agent service directly. */
class DemoAgent {
  actor!: Actor;
  salt!: string;
  seq = 0;
  constructor(
    private readonly c: Container,
    readonly device: DemoDevice,
    private readonly clock: Clock,
  ) {}

  /** approver: the admin who links an agent that enrolled as a device already known from Entra or an import. */
  async enroll(token: string, entraJoined: boolean, domain: string | null, approver?: Actor) {
    const d = this.device;
    const r = await this.c.agent.enroll(
      {
        enrollmentToken: token,
        agentVersion: '1.0.0',
        device: {
          hostname: d.name,
          domain,
          domainJoined: !!domain,
          serialNumber: d.serial,
          manufacturer: d.manufacturer,
          model: d.model,
          smbiosUuid: d.smbiosUuid,
          entraDeviceId: entraJoined ? d.entraDeviceId : null,
        },
      },
      { ip: DEMO_IP, userAgent: 'Keywarden-Agent/1.0.0 (demo)' },
    );
    this.salt = r.fingerprintSalt;
    if (r.pendingApproval && approver) await this.c.agent.approveLink(approver, r.deviceId);
    this.actor = (await this.c.agent.authenticateDevice(r.credential, { ip: DEMO_IP, userAgent: 'Keywarden-Agent/1.0.0 (demo)' }))!;
  }

  /** Volumes the agent sees: fixed drives only (a USB stick is usually not plugged in). */
  private volumes() {
    return this.device.volumes.filter((v) => v.type !== 'removable');
  }

  async checkin(entraJoined: boolean, domain: string | null, jobResults: CheckinRequest['jobResults'] = []): Promise<CheckinResponse> {
    const d = this.device;
    const body = CheckinRequest.parse({
      seq: ++this.seq,
      sentAt: this.clock.now(),
      agentVersion: '1.0.0',
      device: {
        hostname: d.name,
        domain,
        domainJoined: !!domain,
        serialNumber: d.serial,
        manufacturer: d.manufacturer,
        model: d.model,
        smbiosUuid: d.smbiosUuid,
        os: d.os,
        entra: {
          joinType: entraJoined ? (domain ? 'HybridJoined' : 'AzureAdJoined') : 'NotJoined',
          deviceId: entraJoined ? d.entraDeviceId : null,
          tenantId: null,
        },
        adComputerName: domain ? d.name : null,
        tpm: { present: true, ready: true, enabled: true, activated: true, specVersion: '2.0, 0, 1.59', manufacturer: 'INTC' },
        secureBoot: true,
      },
      volumes: this.volumes().map((v) => ({
        mountPoint: v.mountPoint,
        volumeType: v.type === 'os' ? 'OperatingSystem' : 'Data',
        volumeStatus: v.status,
        protectionStatus: v.protection,
        lockStatus: 'Unlocked',
        encryptionMethod: v.method,
        encryptionPercentage: v.percentage,
        keyProtectors: [
          ...(v.tpmId ? [{ id: braces(v.tpmId), type: 'Tpm' }] : []),
          ...v.keys.map((k) => ({ id: braces(k.keyId), type: 'RecoveryPassword', fingerprint: agentFingerprint(this.salt, k.password) })),
        ],
      })),
      manageBde: null,
      events: [],
      jobResults,
    });
    return this.c.agent.checkin(this.actor, body);
  }

  async upload(requested: CheckinResponse['requestPasswords'], jobId: string | null = null) {
    const keys = requested.flatMap((q) => {
      const v = this.device.volumes.find((x) => x.mountPoint === q.mountPoint);
      const k = v?.keys.find((x) => braces(x.keyId) === q.protectorId.toUpperCase());
      return v && k
        ? [{ mountPoint: v.mountPoint, protectorId: braces(k.keyId), recoveryPassword: k.password, volumeType: v.type === 'os' ? 'OperatingSystem' : 'Data' }]
        : [];
    });
    if (!keys.length) return;
    await this.c.agent.uploadKeys(this.actor, UploadRequest.parse({ seq: ++this.seq, sentAt: this.clock.now(), jobId, keys }));
  }
}

/**
 * Fills an EMPTY vault with the demo MSP. Refuses a vault that holds anything: demo data must
 * never mix with real keys. With a DemoClock in the container, the history spreads over months.
 */
export async function seedDemo(c: Container, opts: { seed?: number; password?: string; onProgress?: (step: string) => void } = {}): Promise<DemoSummary> {
  if (!(await isEmptyVault(c))) {
    throw conflict(
      'This vault already has clients, users or keys; the demo only fills an empty vault. Use a fresh data folder, e.g. --data-dir ./keywarden-demo.',
    );
  }
  const rng = createRng(opts.seed ?? 7);
  const clock = isDemoClock(c.clock) ? c.clock : null;
  const at = (daysAgo: number) => clock?.setDaysAgo(daysAgo);
  const step = opts.onProgress ?? (() => {});
  const ingest = await openIngest(c);
  const demo = systemActor('demo data');
  // Not random from the seed: a demo server may be reachable by others, so its password is not guessable.
  const password = opts.password ?? `demo-${randomBytes(9).toString('base64url')}`;

  at(120);
  step('clients and users');
  const clients = [];
  for (const p of DEMO_CLIENTS) clients.push({ profile: p, client: await c.clients.create(demo, { name: p.name }), devices: generateDevices(rng, p) });
  const byName = new Map(clients.map((x) => [x.profile.name, x]));
  const viewer = clients[0]!.client;

  // Devices given a special role below (ambiguous ID, conflict, rotation) are not reused for another.
  const reserved = new Set<DemoDevice>();
  const healthy = (devices: DemoDevice[]) => {
    const d = devices.find((d) => d.scenario === 'healthy' && !reserved.has(d) && d.volumes[0]!.keys.length > 0)!;
    reserved.add(d);
    return d;
  };

  // Plant the ambiguous case: a Fabrikam key and a Contoso key share their first 8 hex digits.
  const contosoKey = healthy(clients[0]!.devices).volumes[0]!.keys[0]!;
  const fabrikamKey = healthy(byName.get('Fabrikam Logistics')!.devices).volumes[0]!.keys[0]!;
  fabrikamKey.keyId = contosoKey.keyId.slice(0, 8) + fabrikamKey.keyId.slice(8);
  const ambiguousPrefix = contosoKey.keyId.slice(0, 8).toUpperCase();

  const mspDomain = 'northwind-msp.example';
  const users: DemoUser[] = [
    { email: `owner@${mspDomain}`, role: 'owner', clients: 'all', note: 'everything, including users and security settings' },
    { email: `admin@${mspDomain}`, role: 'admin', clients: 'all', note: 'clients, integrations, enrollment, API tokens' },
    { email: `tech@${mspDomain}`, role: 'technician', clients: 'all', note: 'browse devices and keys, reveal with a reason' },
    { email: `helpdesk@${mspDomain}`, role: 'helpdesk', clients: 'all', note: 'reveal by key ID only, no browsing' },
    { email: `auditor@${mspDomain}`, role: 'auditor', clients: 'all', note: 'read-only: metadata and the audit log' },
    { email: `it@${clients[0]!.profile.domain}`, role: 'client-viewer', clients: [viewer.id], note: `${viewer.name} staff: their own client only` },
  ];
  const userIds = new Map<Role, string>();
  for (const u of users) {
    const created = await c.identity.createUser(demo, { email: u.email, name: `${u.role} (demo)`, password, role: u.role, clients: u.clients });
    userIds.set(u.role, created.id);
  }
  const person = (role: Role): Actor => ({
    type: 'user',
    id: userIds.get(role)!,
    name: users.find((u) => u.role === role)!.email,
    role,
    clients: 'all',
    ip: DEMO_IP,
    userAgent: DEMO_UA,
  });

  // ---- Entra ID (Graph-shaped: what runSync builds from bitlockerRecoveryKey + device objects)
  step('Entra ID and Active Directory keys');
  at(110);
  // Syncs run again every day; the last one (below) only refreshes what they saw.
  const syncs: { system: Actor; clientId: string; source: { type: 'entra' | 'ad'; ref: string }; reports: KeyReport[] }[] = [];
  for (const x of clients.filter((x) => x.profile.sources.includes('entra'))) {
    const tenantId = createRng(x.profile.name.length * 7919).guid();
    const system: Actor = { type: 'system', id: `system:graph:${tenantId}`, name: `Entra sync (${tenantId})`, role: 'owner', clients: [x.client.id] };
    const reports: KeyReport[] = x.devices.flatMap((d) =>
      d.volumes.flatMap((v) =>
        v.keys.map((k) => ({
          keyId: k.keyId,
          recoveryPassword: k.password,
          device: { name: d.name, entraDeviceId: d.entraDeviceId, user: d.user },
          volume: { volumeType: v.type },
          createdAt: daysAgoIso(c.clock, rng.int(130, 700)),
        })),
      ),
    );
    await c.database.db.transaction().execute(async (tx) => {
      const r = await ingest(tx, system, x.client.id, { type: 'entra', ref: tenantId }, reports);
      await c.audit.record(tx, system, {
        action: 'graph.sync',
        outcome: 'success',
        clientId: x.client.id,
        details: { demo: true, tenantId, keysListed: reports.length, newKeys: r.imported },
      });
    });
    syncs.push({ system, clientId: x.client.id, source: { type: 'entra', ref: tenantId }, reports });
  }
  // ---- Active Directory (msFVE-RecoveryInformation objects under computer accounts)
  at(105);
  for (const x of clients.filter((x) => x.profile.sources.includes('ad'))) {
    const dc = `dc01.${x.profile.domain}`;
    const system: Actor = { type: 'system', id: `system:ad:${dc}`, name: 'Active Directory sync', role: 'owner', clients: [x.client.id] };
    const reports: KeyReport[] = x.devices.flatMap((d) =>
      d.volumes
        .filter((v) => v.type !== 'removable')
        .flatMap((v) =>
          v.keys.map((k) => ({
            keyId: k.keyId,
            recoveryPassword: k.password,
            device: { name: d.name, domain: x.profile.domain },
            createdAt: daysAgoIso(c.clock, rng.int(110, 900)),
          })),
        ),
    );
    await c.database.db.transaction().execute(async (tx) => {
      const r = await ingest(tx, system, x.client.id, { type: 'ad', ref: dc }, reports);
      await c.audit.record(tx, system, {
        action: 'ad.sync',
        outcome: 'success',
        clientId: x.client.id,
        details: { demo: true, dc, objectsRead: reports.length, newKeys: r.imported },
      });
    });
    syncs.push({ system, clientId: x.client.id, source: { type: 'ad', ref: dc }, reports });
  }

  // ---- The connections those syncs came from, so Settings → Integrations shows them. Created
  // through the services, then switched off and unscheduled: the tenants, hosts and secrets are
  // made up, and a demo server must not call Microsoft or a domain controller on its own.
  step('Entra ID and Active Directory connections (disabled)');
  const graphRepo = createGraphRepo();
  const directoryRepo = createDirectoryRepo();
  for (const sync of syncs) {
    const x = clients.find((x) => x.client.id === sync.clientId)!;
    const id =
      sync.source.type === 'entra'
        ? (
            await c.graph.createConnection(demo, {
              clientId: x.client.id,
              tenantId: sync.source.ref,
              appClientId: createRng(x.profile.name.length * 104_729).guid(),
              clientSecret: 'demo-not-a-real-secret',
            })
          ).id
        : (
            await c.directory.createConnection(demo, {
              clientId: x.client.id,
              hosts: [sync.source.ref],
              bindDn: `CN=svc-keywarden-demo,OU=Service Accounts,DC=${x.profile.domain.split('.').join(',DC=')}`,
              password: 'demo-not-a-real-password',
              baseDns: [`DC=${x.profile.domain.split('.').join(',DC=')}`],
              pinnedSha256: '00'.repeat(32),
            })
          ).id;
    await c.database.db.transaction().execute(async (t) => {
      if (sync.source.type === 'entra') {
        await graphRepo.disableClientConnections(t, x.client.id, c.clock.now());
        await c.scheduler.removeTask(t, syncTaskId(id));
      } else {
        await directoryRepo.disableClientConnections(t, x.client.id, c.clock.now());
        await c.scheduler.removeTask(t, adTaskId(id));
      }
    });
  }
  // The PDFs and the console carry the demo MSP's name, as a real MSP's would.
  await c.settings.updateBranding(demo, { mspName: DEMO_MSP });

  // ---- CSV (an RMM custom-field export) through the real import
  step('CSV and TXT imports');
  at(95);
  const tech = person('technician');
  const admin = person('admin');
  for (const x of clients.filter((x) => x.profile.sources.includes('csv') && x.profile.sources[0] === 'csv')) {
    const rows = x.devices.flatMap((d) =>
      d.volumes.flatMap((v) => v.keys.map((k) => csvRow(d, v, k.keyId, k.password, daysAgoIso(c.clock, rng.int(100, 800))))),
    );
    await c.imports.importFile(admin, x.profile.name, { fileName: `ninja-rmm-bitlocker-export.csv`, bytes: Buffer.from(CSV_HEADER + rows.join('\n') + '\n') });
  }
  // ---- TXT: "BitLocker Recovery Key <ID>.TXT" files users saved, imported one by one (manual)
  for (const x of clients.filter((x) => x.profile.sources.includes('txt'))) {
    for (const d of x.devices.filter((_, i) => i % 4 === 0)) {
      const v = d.volumes.find((v) => v.type === 'removable') ?? d.volumes[0]!;
      const k = v.keys[0];
      if (!k) continue;
      await c.imports.importFile(admin, x.profile.name, {
        fileName: `BitLocker Recovery Key ${k.keyId.toUpperCase()}.TXT`,
        bytes: Buffer.from(recoveryKeyTxt(k.keyId, k.password)),
        defaultDevice: d.name,
      });
    }
  }

  // ---- Agents: enrolment and first check-in, spread over weeks
  step('agent enrolments and check-ins');
  const agents: { agent: DemoAgent; entra: boolean; domain: string | null; clientId: string }[] = [];
  const agentClients = clients.filter((x) => x.profile.sources.includes('agent'));
  const agentDevices = agentClients.flatMap((x) => x.devices.filter((_, i) => x.profile.sources[0] === 'agent' || i % 2 === 0).map((d) => ({ x, d })));
  const tokens = new Map<string, string>();
  at(80);
  for (const x of agentClients) tokens.set(x.client.id, (await c.agent.createEnrollmentToken(admin, { clientId: x.client.id, expiresInDays: 365 })).token);
  for (let i = 0; i < agentDevices.length; i++) {
    const { x, d } = agentDevices[i]!;
    at(75 - (30 * i) / agentDevices.length);
    const entra = x.profile.sources.includes('entra');
    const domain = x.profile.sources.includes('ad') ? x.profile.domain : null;
    const agent = new DemoAgent(c, d, c.clock);
    await agent.enroll(tokens.get(x.client.id)!, entra, domain, admin);
    const r = await agent.checkin(entra, domain);
    // An unescrowed key: the upload "failed" (in real life: proxy, crash, no network).
    if (d.scenario !== 'unescrowed') await agent.upload(r.requestPasswords);
    agents.push({ agent, entra, domain, clientId: x.client.id });
  }

  // ---- An old spreadsheet imported over the agent's data: one key ID with another password.
  step('conflicts and mismatches');
  at(30);
  const cd = clients[0]!;
  const conflictDevice = healthy(cd.devices);
  const sheet = [
    csvRow(conflictDevice, conflictDevice.volumes[0]!, conflictDevice.volumes[0]!.keys[0]!.keyId, rng.recoveryPassword(), daysAgoIso(c.clock, 400)),
  ];
  for (const d of cd.devices.slice(-3).filter((d) => !reserved.has(d)))
    sheet.push(...d.volumes.flatMap((v) => v.keys.map((k) => csvRow(d, v, k.keyId, k.password, daysAgoIso(c.clock, 300)))));
  await c.imports.importFile(admin, cd.profile.name, { fileName: 'old-laptops-2024.csv', bytes: Buffer.from(CSV_HEADER + sheet.join('\n') + '\n') });

  // The password of a protector changed on the device (re-encrypted by hand) but was not re-escrowed.
  at(12);
  for (const a of agents.filter((a) => a.agent.device.scenario === 'mismatch')) {
    const k = a.agent.device.volumes[0]!.keys[0];
    if (k) k.password = rng.recoveryPassword();
    await a.agent.checkin(a.entra, a.domain);
  }

  // ---- A reveal whose rotation the agent already carried out.
  step('reveals and rotations');
  at(6);
  const rotatedDevice = healthy(agents.map((a) => a.agent.device));
  const rotated = agents.find((a) => a.agent.device === rotatedDevice);
  let reveals = 0;
  if (rotated) {
    const key = rotated.agent.device.volumes[0]!.keys[0]!;
    const r0 = await c.keys.revealByKeyId(tech, {
      query: key.keyId.slice(0, 8),
      reason: 'bios-changed',
      ticket: 'T-10412',
      note: 'BIOS update by the vendor tool; user called from the front desk.',
    });
    if (r0.status === 'revealed') reveals++;
    at(5);
    const r = await rotated.agent.checkin(rotated.entra, rotated.domain);
    const job = r.jobs.find((j) => j.kind === 'rotate');
    if (job) {
      const vol = rotated.agent.device.volumes.find((v) => v.mountPoint === job.mountPoint)!;
      const fresh = { keyId: rng.guid(), password: rng.recoveryPassword() };
      vol.keys.push(fresh);
      await rotated.agent.upload([{ mountPoint: vol.mountPoint, protectorId: braces(fresh.keyId) }], job.id);
      vol.keys = vol.keys.filter((k) => k !== key);
      await rotated.agent.checkin(rotated.entra, rotated.domain, [
        { jobId: job.id, status: 'succeeded', newProtectorId: braces(fresh.keyId), removedProtectorId: braces(key.keyId) },
      ]);
    }
  }

  // ---- The last check-ins: most devices within the last day (agents check in hourly), every
  // fourth a laptop that was off for a few days; stale devices stay silent for weeks.
  const live = agents.filter((a) => a.agent.device.scenario !== 'stale');
  const away = live.filter((_, i) => i % 4 === 3);
  const recent = live.filter((_, i) => i % 4 !== 3);
  const last = [...away.map((a, i) => ({ a, days: 6 - (4.5 * i) / away.length })), ...recent.map((a, i) => ({ a, days: 0.95 - (0.1 * i) / recent.length }))];
  for (const { a, days } of last) {
    at(days);
    const r = await a.agent.checkin(a.entra, a.domain);
    if (a.agent.device.scenario !== 'unescrowed' && a.agent.device.scenario !== 'mismatch') await a.agent.upload(r.requestPasswords);
  }

  // ---- Last night's Entra and AD syncs: nothing new, every key and device seen again.
  at(0.85);
  for (const sync of syncs) {
    await c.database.db.transaction().execute(async (tx) => {
      const r = await ingest(tx, sync.system, sync.clientId, sync.source, sync.reports);
      const action = sync.source.type === 'entra' ? 'graph.sync' : 'ad.sync';
      await c.audit.record(tx, sync.system, {
        action,
        outcome: 'success',
        clientId: sync.clientId,
        details: { demo: true, source: sync.source.ref, listed: sync.reports.length, newKeys: r.imported, unchanged: r.duplicates },
      });
    });
  }

  // ---- Today's helpdesk calls: reveals with reasons, one unknown ID, one ambiguous prefix.
  const calls: { who: Role; x: (typeof clients)[number]; reason: string; ticket: string; note?: string }[] = [
    { who: 'technician', x: byName.get('Woodgrove Accounting')!, reason: 'tpm-reset', ticket: 'T-10488', note: 'Motherboard replaced under warranty.' },
    { who: 'helpdesk', x: byName.get('Litware Legal')!, reason: 'os-boot-order-changed', ticket: 'T-10491' },
    { who: 'technician', x: byName.get('Tailspin Toys')!, reason: 'lost-pin', ticket: 'T-10495' },
    { who: 'helpdesk', x: byName.get('Adventure Works Cycles')!, reason: 'bios-changed', ticket: 'T-10502', note: 'Docking station firmware update.' },
  ];
  let hours = 20;
  for (const call of calls) {
    at(hours / 24);
    hours -= 4;
    const d = healthy(call.x.devices);
    const r = await c.keys.revealByKeyId(person(call.who), {
      query: d.volumes[0]!.keys[0]!.keyId.slice(0, 8).toUpperCase(),
      reason: call.reason,
      ticket: call.ticket,
      note: call.note,
    });
    if (r.status === 'revealed') reveals++;
  }
  at(2 / 24);
  await c.keys.revealByKeyId(person('helpdesk'), { query: 'D5A2F7E1', reason: 'lost-pin', ticket: 'T-10507' });
  await c.keys.revealByKeyId(person('helpdesk'), { query: ambiguousPrefix, reason: 'lost-pin', ticket: 'T-10507' });
  clock?.reset();

  // ---- What the console will show.
  const samplePrefixes = clients.slice(0, 5).map((x) => {
    const d = healthy(x.devices);
    return { prefix: d.volumes[0]!.keys[0]!.keyId.slice(0, 8).toUpperCase(), client: x.profile.name, device: d.name };
  });
  const db = c.database.db;
  const count = (t: 'devices' | 'recovery_keys') => repo.count(db, t);
  const findings = await repo.openFindings(db);
  return {
    msp: DEMO_MSP,
    password,
    users,
    clients: clients.map((x) => ({ id: x.client.id, name: x.client.name, devices: x.devices.length, sources: x.profile.sources })),
    devices: await count('devices'),
    keys: await count('recovery_keys'),
    findings,
    reveals,
    samplePrefixes,
    ambiguousPrefix,
    helpdeskEmail: users.find((u) => u.role === 'helpdesk')!.email,
    viewerClient: { id: viewer.id, name: viewer.name },
  };
}

const CSV_HEADER = 'Device,Serial Number,User,Drive,Volume Type,Key ID,Recovery Password,Created\n';
function csvRow(d: DemoDevice, v: DemoVolume, keyId: string, password: string, created: string): string {
  return [
    d.name,
    d.serial,
    d.user,
    v.mountPoint,
    v.type === 'os' ? 'OS' : v.type === 'fixed' ? 'Fixed' : 'Removable',
    `{${keyId.toUpperCase()}}`,
    password,
    created.slice(0, 10),
  ].join(',');
}

/** The file Windows writes when a user saves a recovery key (Windows 10/11 wording). */
function recoveryKeyTxt(keyId: string, password: string): string {
  return [
    'BitLocker Drive Encryption recovery key',
    '',
    'To verify that this is the correct recovery key, compare the start of the following identifier with the identifier value displayed on your PC.',
    '',
    'Identifier:',
    '',
    `\t${keyId.toUpperCase()}`,
    '',
    'If the above identifier matches the one displayed by your PC, then use the following key to unlock your drive.',
    '',
    'Recovery Key:',
    '',
    `\t${password}`,
    '',
    "If the above identifier doesn't match the one displayed by your PC, then this isn't the right key to unlock your drive.",
    'Try another recovery key, or refer to https://go.microsoft.com/fwlink/?LinkID=260589 for additional assistance.',
    '',
  ].join('\r\n');
}

const daysAgoIso = (clock: Clock, days: number) => new Date(Date.parse(clock.now()) - days * 86_400_000).toISOString();

export type BulkResult = { clients: string[]; keys: number; sampleKeyIds: string[] };

/**
 * Adds N keys fast (for the search benchmark and load tests): through the real ingest (sealed
 * under each client's data key, fingerprinted, devices and volumes created), in large batches,
 * one transaction per batch. Key IDs come from the seed; the sample lets a benchmark type real
 * prefixes.
 */
export async function seedBulkKeys(
  c: Container,
  n: number,
  opts: { seed?: number; clients?: number; batch?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<BulkResult> {
  const rng: Rng = createRng(opts.seed ?? 100_000);
  const ingest = await openIngest(c);
  const actor = systemActor('demo bulk keys');
  const clientCount = Math.max(1, opts.clients ?? 10);
  const batch = opts.batch ?? 5000;
  const existing = await repo.clientNameKeys(c.database.db);
  const clients: { id: string; name: string }[] = [];
  for (let i = 1; clients.length < clientCount; i++) {
    const name = `Bulk Client ${String(i).padStart(2, '0')}`;
    if (existing.has(name.toLowerCase())) continue;
    clients.push(await c.clients.create(actor, { name }));
  }
  const sampleEvery = Math.max(1, Math.floor(n / 200));
  const sampleKeyIds: string[] = [];
  let done = 0;
  while (done < n) {
    const size = Math.min(batch, n - done);
    const client = clients[Math.floor(done / batch) % clients.length]!;
    const reports: KeyReport[] = [];
    for (let i = 0; i < size; i++) {
      const k = done + i;
      const keyId = rng.guid();
      if (k % sampleEvery === 0) sampleKeyIds.push(keyId);
      // Two volumes per device: OS and data, like a desktop.
      reports.push({
        keyId,
        recoveryPassword: rng.recoveryPassword(),
        device: { name: `BULK-${String(Math.floor(k / 2)).padStart(7, '0')}`, serial: `BULK${k}` },
        volume: { mountPoint: k % 2 ? 'D:' : 'C:', volumeType: k % 2 ? 'fixed' : 'os' },
        createdAt: null,
      });
    }
    await c.database.db.transaction().execute(async (tx: Executor) => {
      const r = await ingest(tx, actor, client.id, { type: 'import', ref: 'bulk-demo-keys' }, reports);
      await c.audit.record(tx, actor, {
        action: 'keys.import',
        outcome: 'success',
        clientId: client.id,
        targetType: 'client',
        targetId: client.id,
        details: { demo: true, file: 'bulk-demo-keys', imported: r.imported, duplicates: r.duplicates, conflicts: r.conflicts },
      });
    });
    done += size;
    opts.onProgress?.(done, n);
  }
  return { clients: clients.map((x) => x.name), keys: n, sampleKeyIds };
}
