/**
 * A multi-tenant simulator of the Microsoft identity platform token endpoint and of the parts
 * of Microsoft Graph that Keywarden uses for BitLocker keys (bitlocker-domain.md §2).
 *
 * Written from the public documentation only (no SDK code). It is a test fixture: it lives in
 * test/ and is never shipped. See README.md next to this file for the list of simulated and
 * NOT simulated behaviour.
 *
 * One real HTTP server on 127.0.0.1 (random port) serves every tenant:
 *   POST {loginUrl}/{tenantId}/oauth2/v2.0/token             (client-credentials grant)
 *   GET  {graphUrl}/{v1.0|beta}/informationProtection/bitlocker/recoveryKeys[/{id}]   §2.1, §2.5
 *   GET  {graphUrl}/{v1.0|beta}/devices?$filter=deviceId eq '…'                         §2.6
 *   GET  {graphUrl}/{v1.0|beta}/deviceManagement/managedDevices?$filter=azureADDeviceId eq '…'
 *   POST {graphUrl}/beta/deviceManagement/managedDevices/{id}/rotateBitLockerKeys        §2.7
 *   GET  {graphUrl}/{v1.0|beta}/auditLogs/directoryAudits?$filter=…                      §2.8
 */
import http from 'node:http';
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { defaultPosture, postureRoute, POSTURE_PERMISSIONS, type SimPosture } from './posture.js';
import { routeOwners } from './owners.js';
import { SimApps } from './consent.js';

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** `bitlockerRecoveryKey` (§2.2). `id` is a lower-case GUID, `key` a 48-digit recovery password. */
export type SimKey = { id: string; createdDateTime: string; volumeType: number | string; deviceId: string; key: string };

/** Entra `device` (§2.6). `deviceId` is what keys point at; `id` is the directory object id. */
export type SimDevice = {
  id: string;
  deviceId: string;
  displayName: string;
  operatingSystem: string;
  operatingSystemVersion: string;
  trustType: 'AzureAd' | 'ServerAd' | 'Workplace';
  approximateLastSignInDateTime: string;
  isManaged?: boolean;
  isCompliant?: boolean;
};

/** Intune `managedDevice` (§2.6, §2.7). `azureADDeviceId` equals Entra `device.deviceId`. */
export type SimManagedDevice = { id: string; azureADDeviceId: string; deviceName: string };

/** Entra `directoryAudit` entry (§2.8). */
export type SimAudit = {
  id: string;
  activityDateTime: string;
  activityDisplayName: 'Read BitLocker key';
  category: 'KeyManagement';
  result: 'success';
  /**
   * `user` is always present (brief's shape). For app-only (client-credentials) reads the
   * simulator fills `user.userPrincipalName` with '' and adds `app`; Entra itself sends
   * `user: null` plus `app` in that case.
   */
  initiatedBy: { user: { userPrincipalName: string; ipAddress: string }; app?: { appId: string; displayName: string } };
  /** `targetResources[0].displayName` is the key id (Sentinel's BitLockerKeyRetrieval query relies on it). */
  targetResources: { displayName: string }[];
};

export type RetryAfterMode = { seconds: number } | { httpDate: true; seconds: number } | { omit: true };

/** What `rotateBitLockerKeys` does to the tenant's keys (§2.7; the real device acts asynchronously). */
export type RotateBehaviour =
  | 'add' // default: a new key for the device's newest volume is added; the old key stays
  | 'replace' // the new key replaces every older key of that device and volume type
  | 'none' // 204, but the device never rotates (offline device, missing policy)
  | ((tenant: SimTenant, device: SimManagedDevice) => void);

export type SimTenant = {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** Application permissions granted to the app in this tenant. Checked live on every request. */
  permissions: Set<string>;
  keys: SimKey[];
  devices: SimDevice[];
  managedDevices: SimManagedDevice[];
  audits: SimAudit[];
  /** recoveryKeys page size (default 200). */
  pageSize: number;
  /** directoryAudits page size when the client sends no $top (default 100). */
  auditPageSize?: number;
  /** throttling: every Nth Graph request (counted per tenant) answers 429 with Retry-After */
  throttleEvery?: number;
  /** Retry-After form for 429s (default `{ seconds: 1 }`). `{ omit: true }` sends no header. */
  retryAfter?: RetryAfterMode;
  /** every Nth Graph request answers 503 with `Retry-After: 1`. */
  fail503Every?: number;
  /** every Nth Graph request answers 504 without Retry-After (client must back off on its own). */
  fail504Every?: number;
  /** directoryAudits answers this error instead of its page (the rest of Graph works): a broken optional step. */
  auditFailure?: { status: number; code: string; message: string };
  /** default 3600; small values let tests hit expiry (401 InvalidAuthenticationToken) */
  tokenLifetimeSeconds?: number;
  /** what happens when rotateBitLockerKeys is called: by default a new key for the same device/volume is added and the old one stays */
  onRotate?: RotateBehaviour;
  /** Authorization policy and Intune BitLocker configuration (posture.ts). */
  posture: SimPosture;
};

export type SimRequest = {
  method: string;
  /** URL path as received, e.g. `/graph/v1.0/informationProtection/bitlocker/recoveryKeys/…`. */
  path: string;
  /** Decoded query string without `?` (e.g. `$select=key`); `rawQuery` has it as sent. */
  query: string;
  rawQuery: string;
  status: number;
  /** Arrival time (simulator clock, ms). */
  at: number;
  kind: 'token' | 'graph';
  /** The headers §2.4 talks about, as sent (absent ones omitted). */
  headers: Partial<Record<'user-agent' | 'client-request-id' | 'ocp-client-name' | 'ocp-client-version', string>>;
};

export type SimThrottle = {
  at: number;
  retryAfterSeconds: number;
  status: 429 | 503;
  path: string;
  until: number | null;
  /** Early requests excused as already in flight (see GraphSimulatorOptions.inFlightGraceMs). */
  excusedInFlight: number;
};
export type SimViolation = {
  at: number;
  method: string;
  path: string;
  query: string;
  status: 429 | 503;
  throttledAt: number;
  until: number;
  earlyByMs: number;
};

export type GraphSimulatorOptions = {
  /** Delay before every response is written (default 0). */
  latencyMs?: number;
  /** Clock used for tokens, throttling windows, audit and key timestamps (default Date.now). */
  now?: () => number;
  /**
   * Real milliseconds after a 429/503 is written during which requests of the same tenant are
   * treated as already in flight (sent by other workers before the client could see the 429)
   * and are not violations. An immediate retry of the throttled request itself is always a
   * violation. Default 100; 0 makes every early request a violation (sequential clients).
   */
  inFlightGraceMs?: number;
};

export type SeedOptions = {
  keys: number;
  devices: number;
  pageSize?: number;
  /** Deterministic output for a given (seed, tenantId); random when omitted. */
  seed?: string | number;
};

/** Slack allowed when checking that a client waited for Retry-After. */
export const RETRY_AFTER_SLACK_MS = 50;

export const ALL_PERMISSIONS = [
  'BitlockerKey.Read.All',
  'BitlockerKey.ReadBasic.All',
  'Device.Read.All',
  'DeviceManagementManagedDevices.ReadWrite.All',
  'AuditLog.Read.All',
  ...POSTURE_PERMISSIONS,
] as const;

export const VOLUME_TYPE_NAMES = ['operatingSystemVolume', 'fixedDataVolume', 'removableDataVolume', 'unknownFutureValue'] as const;

// ---------------------------------------------------------------------------------------------
// Small helpers: randomness, GUIDs, recovery passwords, dates
// ---------------------------------------------------------------------------------------------

/**
 * Byte source: crypto randomness, or a SHA-256 counter stream when seeded (reproducible).
 * Reads straight from one buffer (no per-call allocation: seeding 500k keys must stay cheap).
 */
class Rng {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private counter = 0;
  constructor(private readonly seed?: string) {}

  private take(n: number): number {
    if (this.pos + n > this.buf.length) this.refill(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u16(): number {
    return this.buf.readUInt16LE(this.take(2));
  }

  /** Uniform enough for fixtures: 32 random bits modulo max. */
  int(max: number): number {
    return this.buf.readUInt32LE(this.take(4)) % max;
  }

  /** Lower-case RFC 4122 version-4 GUID. */
  guid(): string {
    const at = this.take(16);
    const b = this.buf;
    b[at + 6] = (b[at + 6]! & 0x0f) | 0x40;
    b[at + 8] = (b[at + 8]! & 0x3f) | 0x80;
    // Array.join builds a flat string; template literals would leave V8 cons-strings behind, and
    // half a million of those make the garbage collector the bottleneck when seeding.
    const h = b.toString('hex', at, at + 16);
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-');
  }

  /** A valid recovery password (§1.1): eight random uint16 values, each × 11, zero-padded to 6 digits. */
  recoveryPassword(): string {
    const out = Buffer.allocUnsafe(55);
    for (let i = 0; i < 8; i++) {
      let v = this.u16() * 11;
      for (let d = 5; d >= 0; d--) {
        out[i * 7 + d] = 48 + (v % 10);
        v = Math.floor(v / 10);
      }
      if (i < 7) out[i * 7 + 6] = 45; // '-'
    }
    return out.toString('latin1');
  }

  private refill(n: number): void {
    // Leftover bytes are dropped: cheaper than concatenating, and still deterministic when seeded.
    const want = Math.max(1 << 16, n);
    if (this.seed === undefined) {
      this.buf = randomBytes(want);
    } else {
      const buf = Buffer.allocUnsafe(Math.ceil(want / 32) * 32);
      for (let off = 0; off < buf.length; off += 32) createHash('sha256').update(`${this.seed}:${this.counter++}`).digest().copy(buf, off);
      this.buf = buf;
    }
    this.pos = 0;
  }
}

const cryptoRng = new Rng();

export function randomRecoveryPassword(): string {
  return cryptoRng.recoveryPassword();
}

/** §1.1 rule: 8 groups of 6 digits, each divisible by 11 and ≤ 720885. */
export function isValidRecoveryPassword(s: string): boolean {
  if (!/^\d{6}(?:-\d{6}){7}$/.test(s)) return false;
  return s.split('-').every((g) => Number(g) % 11 === 0 && Number(g) <= 0xffff * 11);
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `2020-06-15T13:45:30.1230000Z`: the 7-digit fraction form of the Graph docs example (§2.2). */
function graphDate(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '0000Z');
}

/** `2024-03-01T10:00:00Z`: the whole-second form directory objects use. */
function secondsDate(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

// ---------------------------------------------------------------------------------------------
// Change tracking and lookups (10,000 keys × 50 tenants must stay O(1) per request)
// ---------------------------------------------------------------------------------------------

const observedArrays = new WeakSet<object>();
/** proxy → the plain array behind it, for bulk appends that skip the traps. */
const proxyTargets = new WeakMap<object, unknown[]>();

/** Appends without going through the proxy (one version bump instead of two per element). */
function appendAll<T>(arr: T[], items: T[], bump: () => void): void {
  const target = (proxyTargets.get(arr) as T[] | undefined) ?? arr;
  for (const x of items) target.push(x);
  bump();
}

/** Wraps an array so writes (push, splice, index assignment, length) bump a version number. */
function observe<T>(arr: T[], bump: () => void): T[] {
  if (observedArrays.has(arr)) return arr;
  const p = new Proxy(arr, {
    set(target, prop, value) {
      bump();
      return Reflect.set(target, prop, value);
    },
    deleteProperty(target, prop) {
      bump();
      return Reflect.deleteProperty(target, prop);
    },
  });
  observedArrays.add(p);
  proxyTargets.set(p, arr);
  return p;
}

/** Multi-map from a lower-cased field to the items, rebuilt when the array or version changes. */
class Lookup<T> {
  private ref: T[] | null = null;
  private version = -1;
  private map = new Map<string, T[]>();
  constructor(private readonly field: (t: T) => string) {}

  get(arr: T[], version: number, key: string): T[] {
    const k = key.toLowerCase();
    if (arr !== this.ref || version !== this.version) this.build(arr, version);
    let hit = this.map.get(k);
    // An item edited in place (no array write) makes the index stale: rebuild once.
    if (hit?.some((x) => this.field(x).toLowerCase() !== k)) {
      this.build(arr, version);
      hit = this.map.get(k);
    }
    return hit ?? [];
  }

  private build(arr: T[], version: number): void {
    this.map.clear();
    for (const item of arr) {
      const k = this.field(item).toLowerCase();
      const list = this.map.get(k);
      if (list) list.push(item);
      else this.map.set(k, [item]);
    }
    this.ref = arr;
    this.version = version;
  }
}

// ---------------------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------------------

type TenantState = {
  t: SimTenant;
  version: number;
  log: SimRequest[];
  keyReads: Map<string, number>;
  throttles: SimThrottle[];
  violations: SimViolation[];
  graphCount: number;
  window: { from: number; until: number; status: 429 | 503; realFrom: number; url: string; entry: SimThrottle } | null;
  keysById: Lookup<SimKey>;
  keysByDevice: Lookup<SimKey>;
  devicesByDeviceId: Lookup<SimDevice>;
  devicesById: Lookup<SimDevice>;
  managedById: Lookup<SimManagedDevice>;
  managedByAad: Lookup<SimManagedDevice>;
};

type TokenRecord = {
  tenantKey: string;
  expiresAt: number;
  audience: 'graph' | 'other';
  clientId: string;
  /** A person's delegated token (trustDelegated): whose, with which delegated scopes. */
  delegated?: { userObjectId: string; scopes: string[] };
};

/** What a delegated (user) token stands for, as the test's identity provider says (trustDelegated). */
export type DelegatedToken = { tenantId: string; userObjectId: string; scopes: string[] };

type Reply = {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Throttled reply: Retry-After and the violation window are computed when it is written. */
  throttle?: { status: 429 | 503; retry: RetryAfterMode };
  contentType?: string;
};

class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const GRAPH_CT = 'application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8';
const TOKEN_CT = 'application/json; charset=utf-8';
const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';
const GRAPH_SCOPES = new Set(['https://graph.microsoft.com/.default', `${GRAPH_APP_ID}/.default`]);

const KEY_PROPS = ['id', 'createdDateTime', 'volumeType', 'deviceId', 'key'] as const;
const DEVICE_PROPS = [
  'id',
  'deviceId',
  'displayName',
  'operatingSystem',
  'operatingSystemVersion',
  'trustType',
  'approximateLastSignInDateTime',
  'isManaged',
  'isCompliant',
  'accountEnabled',
  'registrationDateTime',
  'createdDateTime',
  'deviceOwnership',
  'enrollmentType',
  'managementType',
  'profileType',
  'mdmAppId',
  'onPremisesSyncEnabled',
  'manufacturer',
  'model',
];
const ODATA_OPTIONS = ['filter', 'select', 'top', 'skip', 'skiptoken', 'orderby', 'count', 'search', 'expand', 'format'];

const PERM = {
  keyMeta: ['BitlockerKey.ReadBasic.All', 'BitlockerKey.Read.All'],
  keyRead: ['BitlockerKey.Read.All'],
  devices: ['Device.Read.All', 'Device.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'],
  managedRead: ['DeviceManagementManagedDevices.Read.All', 'DeviceManagementManagedDevices.ReadWrite.All'],
  rotate: ['DeviceManagementManagedDevices.ReadWrite.All'],
  audits: ['AuditLog.Read.All'],
};

// ---------------------------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------------------------

export class GraphSimulator {
  private readonly latencyMs: number;
  private readonly inFlightGraceMs: number;
  private readonly now: () => number;
  private readonly tenants = new Map<string, TenantState>();
  private readonly tokens = new Map<string, TokenRecord>();
  private delegatedLookup: ((token: string) => Promise<DelegatedToken | null> | DelegatedToken | null) | null = null;
  private readonly skipSecret = randomBytes(32);
  private readonly unattributedLog: SimRequest[] = [];
  private readonly serverErrors: Error[] = [];
  private server: http.Server | null = null;
  private base = '';
  /** Multi-tenant apps, admin consent and certificate credentials (consent.ts). */
  readonly apps: SimApps;

  constructor(opts: GraphSimulatorOptions = {}) {
    this.latencyMs = opts.latencyMs ?? 0;
    this.inFlightGraceMs = opts.inFlightGraceMs ?? 100;
    this.now = opts.now ?? Date.now;
    this.apps = new SimApps({ now: this.now, tenantId: (id) => this.tenants.get(id.toLowerCase())?.t.tenantId ?? null });
  }

  /** An administrator of `tenantId` follows an admin-consent link (see consent.ts). */
  consent(url: string, who: Parameters<SimApps['consent']>[1]) {
    return this.apps.consent(url, who);
  }

  revokeConsent(tenantId: string, appId: string): void {
    this.apps.revokeConsent(tenantId, appId);
  }

  get loginUrl(): string {
    return `${this.requireBase()}/login`;
  }

  get graphUrl(): string {
    return `${this.requireBase()}/graph`;
  }

  async start(): Promise<{ loginUrl: string; graphUrl: string }> {
    if (this.server) throw new Error('GraphSimulator already started');
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.serverErrors.push(err instanceof Error ? err : new Error(String(err)));
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': GRAPH_CT });
          res.end(JSON.stringify({ error: { code: 'InternalServerError', message: 'Simulator error.' } }));
        } else res.destroy();
      });
    });
    // Long server-side keep-alive: the client (undici, 4 s) always closes idle sockets first. A short
    // one races when a test blocks the event loop (e.g. seeding 500k keys) and then reuses a socket
    // the server is about to close, which surfaces as ECONNRESET in the app under test.
    server.keepAliveTimeout = 120_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { loginUrl: this.loginUrl, graphUrl: this.graphUrl };
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  addTenant(t: Partial<SimTenant> & { tenantId: string }): SimTenant {
    const tenantKey = t.tenantId.toLowerCase();
    if (this.tenants.has(tenantKey)) throw new Error(`tenant ${t.tenantId} already exists`);
    const st = {
      version: 0,
      log: [],
      keyReads: new Map(),
      throttles: [],
      violations: [],
      graphCount: 0,
      window: null,
      keysById: new Lookup<SimKey>((k) => k.id),
      keysByDevice: new Lookup<SimKey>((k) => k.deviceId),
      devicesByDeviceId: new Lookup<SimDevice>((d) => d.deviceId),
      devicesById: new Lookup<SimDevice>((d) => d.id),
      managedById: new Lookup<SimManagedDevice>((m) => m.id),
      managedByAad: new Lookup<SimManagedDevice>((m) => m.azureADDeviceId),
    } as unknown as TenantState;
    const tenant: SimTenant = {
      ...t,
      tenantId: t.tenantId,
      clientId: t.clientId ?? randomUUID(),
      clientSecret: t.clientSecret ?? `sim~${randomBytes(24).toString('base64url')}`,
      permissions: t.permissions ?? new Set(ALL_PERMISSIONS),
      keys: t.keys ?? [],
      devices: t.devices ?? [],
      managedDevices: t.managedDevices ?? [],
      audits: t.audits ?? [],
      pageSize: t.pageSize ?? 200,
      posture: t.posture ?? defaultPosture(),
    };
    st.t = tenant;
    this.tenants.set(tenantKey, st);
    this.observeArrays(st);
    return tenant;
  }

  tenant(id: string): SimTenant {
    return this.state(id).t;
  }

  /**
   * Generates (or extends) a tenant with N keys over M devices. Key i belongs to device i % M, so
   * every device gets a key when N ≥ M. A device's keys are OS, fixed, removable, then older OS
   * keys again, with increasing createdDateTime. Even-numbered keys carry volumeType as a number,
   * odd-numbered ones as the enum member name. Devices are named FAKE-<n> (n from 1), every
   * tenth device (n % 10 == 0) is not enrolled in Intune.
   */
  seedTenant(tenantId: string, opts: SeedOptions): SimTenant {
    const t = this.tenants.has(tenantId.toLowerCase()) ? this.tenant(tenantId) : this.addTenant({ tenantId });
    const bump = () => this.touch(tenantId);
    if (opts.pageSize !== undefined) t.pageSize = opts.pageSize;
    const rng = new Rng(opts.seed === undefined ? undefined : `${opts.seed}:${tenantId.toLowerCase()}`);
    const now = this.now();
    const day = 86_400_000;
    const OS_VERSIONS = ['10.0.19045.5371', '10.0.22631.4751', '10.0.26100.2894'];

    const newDevices: SimDevice[] = [];
    const newManaged: SimManagedDevice[] = [];
    const firstN = t.devices.length + 1;
    for (let i = 0; i < opts.devices; i++) {
      const n = firstN + i;
      const trustType: SimDevice['trustType'] = n % 7 === 0 ? 'Workplace' : n % 3 === 0 ? 'ServerAd' : 'AzureAd';
      const managed = n % 10 !== 0;
      const d: SimDevice = {
        id: rng.guid(),
        deviceId: rng.guid(),
        displayName: `FAKE-${n}`,
        operatingSystem: 'Windows',
        operatingSystemVersion: OS_VERSIONS[rng.int(OS_VERSIONS.length)]!,
        trustType,
        approximateLastSignInDateTime: secondsDate(now - rng.int(90 * day)),
        isManaged: managed,
        isCompliant: managed && n % 4 !== 0,
      };
      newDevices.push(d);
      if (managed) newManaged.push({ id: rng.guid(), azureADDeviceId: d.deviceId, deviceName: d.displayName });
    }
    appendAll(t.devices, newDevices, bump);
    appendAll(t.managedDevices, newManaged, bump);

    if (opts.keys > 0) {
      if (newDevices.length === 0) throw new Error('seedTenant: keys need at least one device');
      const perDevice = Math.ceil(opts.keys / newDevices.length);
      const span = 400 * day;
      const step = Math.floor(span / (perDevice + 1));
      const newKeys: SimKey[] = [];
      for (let i = 0; i < opts.keys; i++) {
        const j = Math.floor(i / newDevices.length); // j-th key of its device
        const vol = j < 3 ? j + 1 : 1;
        newKeys.push({
          id: rng.guid(),
          createdDateTime: graphDate(now - span + j * step + rng.int(Math.max(1, step - 1))),
          volumeType: i % 2 === 0 ? vol : VOLUME_TYPE_NAMES[vol - 1]!,
          deviceId: newDevices[i % newDevices.length]!.deviceId,
          key: rng.recoveryPassword(),
        });
      }
      appendAll(t.keys, newKeys, bump);
    }
    return t;
  }

  /** Per-tenant request log (token and Graph requests), oldest first. */
  requests(tenantId: string): SimRequest[] {
    return [...this.state(tenantId).log];
  }

  /** Graph requests whose token was missing or unknown (cannot be tied to a tenant). */
  unattributedRequests(): SimRequest[] {
    return [...this.unattributedLog];
  }

  /** key id (lower-case) → number of successful `$select=key` reads. */
  keyReads(tenantId: string): Map<string, number> {
    return new Map(this.state(tenantId).keyReads);
  }

  /** Every 429 and 503 this tenant got, with the Retry-After sent (`until` null when omitted). */
  throttledAt(tenantId: string): SimThrottle[] {
    return [...this.state(tenantId).throttles];
  }

  /** Requests that arrived before the previous 429/503's Retry-After elapsed (minus 50 ms slack). */
  violations(tenantId: string): SimViolation[] {
    return [...this.state(tenantId).violations];
  }

  /** Unexpected exceptions inside the simulator (tests may assert this is empty). */
  errors(): Error[] {
    return [...this.serverErrors];
  }

  /** Clears logs and counters (request log, key reads, throttles, violations, the Nth-request counter). Data stays. */
  reset(tenantId: string): void {
    const st = this.state(tenantId);
    st.log = [];
    st.keyReads = new Map();
    st.throttles = [];
    st.violations = [];
    st.graphCount = 0;
    st.window = null;
  }

  /** Call after editing keys/devices objects in place (array writes are tracked automatically). */
  touch(tenantId: string): void {
    this.state(tenantId).version++;
  }

  /**
   * Delegated (user) tokens: the simulator issues only app-only tokens itself; a bearer token it
   * does not know is shown to `lookup` (wired by a test to its identity provider), which says whose
   * token it is in which tenant and with which delegated scopes, or null (then: 401 as for any unknown token).
   */
  trustDelegated(lookup: ((token: string) => Promise<DelegatedToken | null> | DelegatedToken | null) | null): void {
    this.delegatedLookup = lookup;
  }

  /** Makes every token issued for this tenant invalid (as if it had expired). */
  expireTokens(tenantId: string): void {
    const key = this.state(tenantId).t.tenantId.toLowerCase();
    for (const rec of this.tokens.values()) if (rec.tenantKey === key) rec.expiresAt = Number.NEGATIVE_INFINITY;
  }

  /** Appends an audit entry as if a person had shown the key in the Entra or Intune portal (§2.8). */
  portalRead(tenantId: string, keyId: string, who: { userPrincipalName: string; ipAddress?: string; at?: number }): SimAudit {
    const t = this.tenant(tenantId);
    const a: SimAudit = {
      id: auditId(),
      activityDateTime: graphDate(who.at ?? this.now()),
      activityDisplayName: 'Read BitLocker key',
      category: 'KeyManagement',
      result: 'success',
      initiatedBy: { user: { userPrincipalName: who.userPrincipalName, ipAddress: who.ipAddress ?? '203.0.113.10' } },
      targetResources: [{ displayName: keyId.toLowerCase() }],
    };
    t.audits.push(a);
    return a;
  }

  // -------------------------------------------------------------------------------------------
  // HTTP plumbing
  // -------------------------------------------------------------------------------------------

  private requireBase(): string {
    if (!this.base) throw new Error('GraphSimulator not started');
    return this.base;
  }

  private state(id: string): TenantState {
    const st = this.tenants.get(id.toLowerCase());
    if (!st) throw new Error(`unknown simulated tenant ${id}`);
    this.observeArrays(st);
    return st;
  }

  /** (Re-)wraps the tenant's arrays so writes are noticed, also after a test assigns a new array. */
  private observeArrays(st: TenantState): void {
    const bump = () => {
      st.version++;
    };
    const t = st.t;
    if (!observedArrays.has(t.keys)) t.keys = observe(t.keys, bump);
    if (!observedArrays.has(t.devices)) t.devices = observe(t.devices, bump);
    if (!observedArrays.has(t.managedDevices)) t.managedDevices = observe(t.managedDevices, bump);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const at = this.now();
    const rawUrl = req.url ?? '/';
    const qIdx = rawUrl.indexOf('?');
    const path = qIdx < 0 ? rawUrl : rawUrl.slice(0, qIdx);
    const rawQuery = qIdx < 0 ? '' : rawUrl.slice(qIdx + 1);
    const body = await readBody(req);
    const method = req.method ?? 'GET';
    const headers: SimRequest['headers'] = {};
    for (const h of ['user-agent', 'client-request-id', 'ocp-client-name', 'ocp-client-version'] as const) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const entry: SimRequest = { method, path, query: safeDecode(rawQuery), rawQuery, status: 0, at, kind: 'graph', headers };
    const requestId = randomUUID();
    const clientRequestId = typeof req.headers['client-request-id'] === 'string' ? req.headers['client-request-id'] : requestId;

    let reply: Reply;
    let st: TenantState | null = null;
    if (path.startsWith('/login/')) {
      entry.kind = 'token';
      const r = this.token(method, path, body, at);
      st = r.st;
      reply = r.reply;
    } else if (path === '/graph' || path.startsWith('/graph/')) {
      // Only when a test trusts delegated tokens (no extra await otherwise: timing-sensitive Retry-After checks).
      if (this.delegatedLookup) await this.learnDelegated(req, at);
      const r = this.graph(req, method, path, rawQuery, at);
      st = r.st;
      reply = r.reply;
    } else {
      reply = { status: 404, body: { error: { code: 'NotFound', message: 'Not a simulated endpoint.' } } };
    }
    if (st) st.log.push(entry);
    else this.unattributedLog.push(entry);

    if (this.latencyMs > 0) await sleep(this.latencyMs);

    const sentAt = this.now();
    const out: Record<string, string> = {
      'request-id': requestId,
      'client-request-id': clientRequestId,
      ...reply.headers,
    };
    if (reply.throttle && st) {
      const { status, retry } = reply.throttle;
      let until: number | null = null;
      let seconds = 0;
      if ('omit' in retry) {
        // No header: nothing the client can be held to.
      } else if ('httpDate' in retry) {
        seconds = retry.seconds;
        until = Math.ceil((sentAt + seconds * 1000) / 1000) * 1000; // HTTP-date has 1 s resolution
        out['retry-after'] = new Date(until).toUTCString();
      } else {
        seconds = retry.seconds;
        until = sentAt + seconds * 1000;
        out['retry-after'] = String(seconds);
      }
      const th: SimThrottle = { at: sentAt, retryAfterSeconds: seconds, status, path, until, excusedInFlight: 0 };
      st.throttles.push(th);
      if (until !== null) st.window = { from: sentAt, until, status, realFrom: performance.now(), url: `${method} ${rawUrl}`, entry: th };
    }
    entry.status = reply.status;
    if (reply.status === 204 || reply.body === undefined) {
      res.writeHead(reply.status, out);
      res.end();
      return;
    }
    const payload = JSON.stringify(reply.body);
    out['content-type'] = reply.contentType ?? GRAPH_CT;
    out['content-length'] = String(Buffer.byteLength(payload));
    res.writeHead(reply.status, out);
    res.end(payload);
  }

  // -------------------------------------------------------------------------------------------
  // Token endpoint
  // -------------------------------------------------------------------------------------------

  private token(method: string, path: string, body: string, at: number): { st: TenantState | null; reply: Reply } {
    const m = /^\/login\/([^/]+)\/oauth2\/v2\.0\/token\/?$/.exec(path);
    if (!m) return { st: null, reply: { status: 404, body: { error: 'not_found' }, contentType: TOKEN_CT } };
    const tenantParam = safeDecode(m[1]!);
    const st = this.tenants.get(tenantParam.toLowerCase()) ?? null;
    const fail = (status: number, error: string, code: number, description: string): Reply => ({
      status,
      contentType: TOKEN_CT,
      body: {
        error,
        error_description: `AADSTS${code}: ${description} Trace ID: ${randomUUID()} Correlation ID: ${randomUUID()} Timestamp: ${secondsDate(at).replace('T', ' ')}`,
        error_codes: [code],
        timestamp: secondsDate(at).replace('T', ' '),
        trace_id: randomUUID(),
        correlation_id: randomUUID(),
        error_uri: `https://login.microsoftonline.com/error?code=${code}`,
      },
    });
    if (method !== 'POST')
      return { st, reply: fail(400, 'invalid_request', 900561, `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`) };
    if (!st)
      return {
        st: null,
        reply: fail(
          400,
          'invalid_request',
          90002,
          `Tenant '${tenantParam}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
        ),
      };
    const form = new URLSearchParams(body);
    const grantType = form.get('grant_type');
    const clientId = form.get('client_id');
    const secret = form.get('client_secret');
    const scope = form.get('scope');
    if (!grantType) return { st, reply: fail(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.") };
    if (grantType !== 'client_credentials')
      return { st, reply: fail(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType}'.`) };
    if (!clientId) return { st, reply: fail(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_id'.") };
    // Multi-tenant apps and client assertions (consent.ts); null: the tenant's own app with a secret.
    const auth = this.apps.authenticate(st.t, clientId, form, `${this.base}${path}`, at);
    if (auth && !auth.ok) return { st, reply: fail(auth.failure.status, auth.failure.error, auth.failure.code, auth.failure.description) };
    if (!auth && clientId.toLowerCase() !== st.t.clientId.toLowerCase())
      return {
        st,
        reply: fail(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${st.t.tenantId}'.`),
      };
    if (!auth && !secret)
      return {
        st,
        reply: fail(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
      };
    if (!auth && !safeEqual(secret!, st.t.clientSecret))
      return {
        st,
        reply: fail(
          401,
          'invalid_client',
          7000215,
          `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${st.t.clientId}'.`,
        ),
      };
    if (!scope) return { st, reply: fail(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'scope'.") };
    const scopes = scope.split(' ').filter(Boolean);
    if (scopes.length !== 1 || !scopes[0]!.endsWith('/.default'))
      return {
        st,
        reply: fail(
          400,
          'invalid_scope',
          1002012,
          `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
        ),
      };
    const lifetime = st.t.tokenLifetimeSeconds ?? 3600;
    const accessToken = randomBytes(32).toString('base64url');
    this.tokens.set(accessToken, {
      tenantKey: st.t.tenantId.toLowerCase(),
      expiresAt: at + lifetime * 1000,
      audience: GRAPH_SCOPES.has(scopes[0]!.toLowerCase()) || GRAPH_SCOPES.has(scopes[0]!) ? 'graph' : 'other',
      clientId: auth?.clientId ?? st.t.clientId,
    });
    return {
      st,
      reply: {
        status: 200,
        contentType: TOKEN_CT,
        headers: { 'cache-control': 'no-store, no-cache', pragma: 'no-cache' },
        body: { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken },
      },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Graph
  // -------------------------------------------------------------------------------------------

  /** An unknown bearer token the test's identity provider vouches for becomes a delegated token of its tenant. */
  private async learnDelegated(req: http.IncomingMessage, at: number): Promise<void> {
    const m = typeof req.headers.authorization === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization) : null;
    if (!m || !this.delegatedLookup || this.tokens.has(m[1]!)) return;
    const d = await this.delegatedLookup(m[1]!);
    if (!d || !this.tenants.has(d.tenantId.toLowerCase())) return;
    this.tokens.set(m[1]!, {
      tenantKey: d.tenantId.toLowerCase(),
      expiresAt: at + 3600_000,
      audience: 'graph',
      clientId: 'delegated',
      delegated: { userObjectId: d.userObjectId.toLowerCase(), scopes: [...d.scopes] },
    });
  }

  private graph(req: http.IncomingMessage, method: string, path: string, rawQuery: string, at: number): { st: TenantState | null; reply: Reply } {
    const unauthorized = (message: string): Reply => ({
      status: 401,
      headers: {
        'www-authenticate': `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="${GRAPH_APP_ID}"`,
      },
      body: graphErrorBody('InvalidAuthenticationToken', message, at),
    });
    const auth = req.headers.authorization;
    const m = typeof auth === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(auth) : null;
    if (!m) return { st: null, reply: unauthorized('Access token is empty.') };
    const rec = this.tokens.get(m[1]!);
    const st = rec ? (this.tenants.get(rec.tenantKey) ?? null) : null;
    if (!rec || !st) return { st: null, reply: unauthorized('Access token has expired or is not yet valid.') };
    this.observeArrays(st);

    // Retry-After honoured? A request of this tenant inside the window is a violation unless it
    // was plausibly already in flight (a different request, arriving within the grace period).
    const w = st.window;
    if (w && at < w.until - RETRY_AFTER_SLACK_MS) {
      const retry = `${method} ${req.url ?? ''}` === w.url;
      if (!retry && performance.now() - w.realFrom <= this.inFlightGraceMs) w.entry.excusedInFlight++;
      else
        st.violations.push({ at, method, path, query: safeDecode(rawQuery), status: w.status, throttledAt: w.from, until: w.until, earlyByMs: w.until - at });
    }
    if (rec.expiresAt <= at) return { st, reply: unauthorized('Access token has expired or is not yet valid.') };
    if (rec.audience !== 'graph') return { st, reply: unauthorized('Access token validation failure. Invalid audience.') };

    st.graphCount++;
    const n = st.graphCount;
    const t = st.t;
    if (t.throttleEvery && n % t.throttleEvery === 0) {
      return {
        st,
        reply: {
          status: 429,
          throttle: { status: 429, retry: t.retryAfter ?? { seconds: 1 } },
          body: graphErrorBody('TooManyRequests', 'Too many requests.', at),
        },
      };
    }
    if (t.fail503Every && n % t.fail503Every === 0) {
      return {
        st,
        reply: {
          status: 503,
          throttle: { status: 503, retry: { seconds: 1 } },
          body: graphErrorBody('ServiceUnavailable', 'The service is currently unavailable. Please try again later.', at),
        },
      };
    }
    if (t.fail504Every && n % t.fail504Every === 0) {
      return { st, reply: { status: 504, body: graphErrorBody('GatewayTimeout', 'The gateway did not receive a timely response.', at) } };
    }

    try {
      return {
        st,
        reply: this.route(st, method, path, rawQuery, at, req.socket.remoteAddress ?? '127.0.0.1', rec.clientId, rec.delegated ?? null),
      };
    } catch (err) {
      if (err instanceof GraphError) return { st, reply: { status: err.status, body: graphErrorBody(err.code, err.message, at) } };
      throw err;
    }
  }

  private route(
    st: TenantState,
    method: string,
    path: string,
    rawQuery: string,
    at: number,
    ip: string,
    appId: string,
    delegated: { userObjectId: string; scopes: string[] } | null,
  ): Reply {
    const segs = path
      .slice('/graph/'.length)
      .split('/')
      .filter((s) => s !== '')
      .map((s) => safeDecode(s));
    const version = segs.shift();
    if (version !== 'v1.0' && version !== 'beta') throw new GraphError(400, 'BadRequest', `Invalid version: ${version ?? ''}`);
    const q = parseQuery(rawQuery);
    const lower = segs.map((s) => s.toLowerCase());
    const ctx: Ctx = { st, method, version, q, at, ip, lower, segs, appId };

    const allowMethods = (...ms: string[]) => {
      if (!ms.includes(method)) throw new GraphError(405, 'Request_BadRequest', `Specified HTTP method is not allowed for the request target.`);
    };
    // /me needs a person: Graph answers an app-only token with 400 BadRequest. (sim choice) A
    // delegated token reaches only /me's device relations here (owners.ts); nothing app-only.
    if (lower[0] === 'me' && !delegated) throw new GraphError(400, 'BadRequest', '/me request is only valid with delegated authentication flow.');
    if (delegated && lower[0] !== 'me') throw new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');

    if (lower[0] === 'informationprotection' && lower[1] === 'bitlocker' && lower[2] === 'recoverykeys') {
      allowMethods('GET');
      if (segs.length === 3) return this.listKeys(ctx);
      if (segs.length === 4) return this.getKey(ctx, segs[3]!);
    }
    if (lower[0] === 'devices' && segs.length === 1) {
      allowMethods('GET');
      return this.listDevices(ctx);
    }
    const alt = /^devices\(deviceId='((?:[^']|'')*)'\)$/i.exec(segs[0] ?? '');
    if (lower[0] === 'devices' && segs.length === 2) {
      allowMethods('GET');
      return this.getDevice(ctx, st.devicesById.get(st.t.devices, st.version, segs[1]!)[0], segs[1]!);
    }
    if (alt && segs.length === 1) {
      allowMethods('GET');
      const id = alt[1]!.replace(/''/g, "'");
      return this.getDevice(ctx, st.devicesByDeviceId.get(st.t.devices, st.version, id)[0], id);
    }
    if (lower[0] === 'devicemanagement' && lower[1] === 'manageddevices') {
      if (segs.length === 2) {
        allowMethods('GET');
        return this.listManaged(ctx);
      }
      if (segs.length === 3) {
        allowMethods('GET');
        return this.getManaged(ctx, segs[2]!);
      }
      if (segs.length === 4 && lower[3] === 'rotatebitlockerkeys' && version === 'beta') {
        allowMethods('POST');
        return this.rotate(ctx, segs[2]!);
      }
    }
    if (lower[0] === 'auditlogs' && lower[1] === 'directoryaudits') {
      allowMethods('GET');
      if (segs.length === 2) return this.listAudits(ctx);
      if (segs.length === 3) return this.getAudit(ctx, segs[2]!);
    }
    const posture = postureRoute({
      ...ctx,
      posture: st.t.posture,
      permissions: st.t.permissions,
      graphUrl: this.graphUrl,
      page: (k, n, size) => this.page(ctx, k, n, size),
    });
    if (posture) {
      if ('error' in posture) throw new GraphError(posture.status, posture.error.code, posture.error.message);
      return posture;
    }
    // Device owners and users, users' owned and registered devices (owners.ts).
    const owned = routeOwners({
      tenant: st.t,
      method,
      segs,
      delegated,
      query: (name) => q.get(name),
      page: (kind, total, size) => this.page(ctx, kind, total, size),
      collection: (contextPath, value, nextLink) => this.collection(ctx, contextPath, value, nextLink),
      fail: (status, code, message) => {
        throw new GraphError(status, code, message);
      },
      deviceByObjectId: (id) => st.devicesById.get(st.t.devices, st.version, id)[0],
      deviceByDeviceId: (id) => st.devicesByDeviceId.get(st.t.devices, st.version, id)[0],
    });
    if (owned) return owned as Reply;
    const last = segs[segs.length - 1] ?? '';
    throw new GraphError(400, 'BadRequest', `Resource not found for the segment '${last}'.`);
  }

  // --- recoveryKeys (§2.1, §2.2, §2.3, §2.5) --------------------------------------------------

  private listKeys(c: Ctx): Reply {
    requirePermission(c.st, PERM.keyMeta);
    for (const opt of ['$top', '$skip', '$orderby', '$search', '$expand', '$count']) {
      if (c.q.has(opt)) throw new GraphError(400, 'Request_UnsupportedQuery', `This method does not support the ${opt} query parameter.`);
    }
    const select = parseSelect(c.q.get('$select'), KEY_PROPS, 'bitlockerRecoveryKey');
    let items = c.st.t.keys;
    const filter = c.q.get('$filter');
    if (filter !== undefined) {
      const eq = parseEq(filter);
      if (!eq || eq.prop.toLowerCase() !== 'deviceid')
        throw new GraphError(
          400,
          'Request_UnsupportedQuery',
          `Unsupported or invalid query filter clause specified for property of resource 'bitlockerRecoveryKey'.`,
        );
      items = c.st.keysByDevice.get(c.st.t.keys, c.st.version, eq.value);
    }
    const page = this.page(c, 'recoveryKeys', items.length, c.st.t.pageSize);
    // The list never returns `key`, even when selected (§2.1).
    const value = items.slice(page.offset, page.end).map((k) =>
      project(
        keyMeta(k),
        select?.filter((p) => p !== 'key'),
      ),
    );
    return this.collection(c, `informationProtection/bitlocker/recoveryKeys`, value, page.nextLink);
  }

  private getKey(c: Ctx, rawId: string): Reply {
    requirePermission(c.st, PERM.keyMeta);
    const select = parseSelect(c.q.get('$select'), KEY_PROPS, 'bitlockerRecoveryKey');
    const wantsKey = select?.includes('key') ?? false;
    if (wantsKey) requirePermission(c.st, PERM.keyRead);
    const k = this.findKey(c.st, rawId);
    if (!k) throw notFound(rawId);
    const ctxUrl = `${this.graphUrl}/${c.version}/$metadata#informationProtection/bitlocker/recoveryKeys/$entity`;
    if (!wantsKey) return { status: 200, body: { '@odata.context': ctxUrl, ...project(keyMeta(k), select) } };
    // `$select=key` returns the password and writes an Entra audit entry (§2.1, §2.8).
    const id = k.id.toLowerCase();
    c.st.keyReads.set(id, (c.st.keyReads.get(id) ?? 0) + 1);
    c.st.t.audits.push({
      id: auditId(),
      activityDateTime: graphDate(c.at),
      activityDisplayName: 'Read BitLocker key',
      category: 'KeyManagement',
      result: 'success',
      initiatedBy: { user: { userPrincipalName: '', ipAddress: c.ip }, app: { appId: c.appId, displayName: 'Keywarden' } },
      targetResources: [{ displayName: id }],
    });
    const full = select && select.length > 1 ? project({ ...keyMeta(k), key: k.key }, select) : { ...keyMeta(k), key: k.key };
    return { status: 200, body: { '@odata.context': ctxUrl, ...full } };
  }

  private findKey(st: TenantState, rawId: string): SimKey | undefined {
    const hit = st.keysById.get(st.t.keys, st.version, rawId)[0];
    if (hit) return hit;
    // Miss: an in-place id edit would leave the index stale, so confirm with a scan.
    const id = rawId.toLowerCase();
    const found = st.t.keys.find((k) => k.id.toLowerCase() === id);
    if (found) st.version++;
    return found;
  }

  // --- devices (§2.6) ---------------------------------------------------------------------------

  private listDevices(c: Ctx): Reply {
    requirePermission(c.st, PERM.devices);
    const select = parseSelect(c.q.get('$select'), DEVICE_PROPS, 'device');
    let items = c.st.t.devices;
    const filter = c.q.get('$filter');
    if (filter !== undefined) {
      const eq = parseEq(filter);
      const prop = eq?.prop.toLowerCase();
      if (!eq || (prop !== 'deviceid' && prop !== 'displayname' && prop !== 'id'))
        throw new GraphError(400, 'Request_UnsupportedQuery', `Unsupported or invalid query filter clause specified for property of resource 'Device'.`);
      if (prop === 'deviceid') items = c.st.devicesByDeviceId.get(c.st.t.devices, c.st.version, eq.value);
      else if (prop === 'id') items = c.st.devicesById.get(c.st.t.devices, c.st.version, eq.value);
      else items = items.filter((d) => d.displayName.toLowerCase() === eq.value.toLowerCase());
    }
    const top = parseTop(c.q.get('$top'), 999);
    const page = this.page(c, 'devices', items.length, top ?? 100);
    const value = items.slice(page.offset, page.end).map((d) => projectDevice(d, select));
    const sel = select ? `(${select.join(',')})` : '';
    return this.collection(c, `devices${sel}`, value, page.nextLink);
  }

  private getDevice(c: Ctx, d: SimDevice | undefined, shown: string): Reply {
    requirePermission(c.st, PERM.devices);
    const select = parseSelect(c.q.get('$select'), DEVICE_PROPS, 'device');
    if (!d) throw notFound(shown);
    return { status: 200, body: { '@odata.context': `${this.graphUrl}/${c.version}/$metadata#devices/$entity`, ...projectDevice(d, select) } };
  }

  // --- Intune managedDevices and rotateBitLockerKeys (§2.6, §2.7) --------------------------------

  private listManaged(c: Ctx): Reply {
    requireIntunePermission(c.st, PERM.managedRead);
    const select = parseSelect(c.q.get('$select'), null, 'managedDevice');
    let items = c.st.t.managedDevices;
    const filter = c.q.get('$filter');
    if (filter !== undefined) {
      const eq = parseEq(filter);
      const prop = eq?.prop.toLowerCase();
      if (!eq || (prop !== 'azureaddeviceid' && prop !== 'devicename' && prop !== 'id')) throw new GraphError(400, 'BadRequest', `Invalid filter clause`);
      if (prop === 'azureaddeviceid') items = c.st.managedByAad.get(c.st.t.managedDevices, c.st.version, eq.value);
      else if (prop === 'id') items = c.st.managedById.get(c.st.t.managedDevices, c.st.version, eq.value);
      else items = items.filter((m) => m.deviceName.toLowerCase() === eq.value.toLowerCase());
    }
    const top = parseTop(c.q.get('$top'), 1000);
    const page = this.page(c, 'managedDevices', items.length, top ?? 1000);
    const value = items.slice(page.offset, page.end).map((m) => project({ id: m.id, azureADDeviceId: m.azureADDeviceId, deviceName: m.deviceName }, select));
    return this.collection(c, 'deviceManagement/managedDevices', value, page.nextLink);
  }

  private getManaged(c: Ctx, id: string): Reply {
    requireIntunePermission(c.st, PERM.managedRead);
    const select = parseSelect(c.q.get('$select'), null, 'managedDevice');
    const m = c.st.managedById.get(c.st.t.managedDevices, c.st.version, id)[0];
    if (!m) throw new GraphError(404, 'ResourceNotFound', `Resource not found: managedDevice '${id}'.`);
    return {
      status: 200,
      body: {
        '@odata.context': `${this.graphUrl}/${c.version}/$metadata#deviceManagement/managedDevices/$entity`,
        ...project({ id: m.id, azureADDeviceId: m.azureADDeviceId, deviceName: m.deviceName }, select),
      },
    };
  }

  private rotate(c: Ctx, id: string): Reply {
    requireIntunePermission(c.st, PERM.rotate);
    const t = c.st.t;
    const m = c.st.managedById.get(t.managedDevices, c.st.version, id)[0];
    if (!m) throw new GraphError(404, 'ResourceNotFound', `Resource not found: managedDevice '${id}'.`);
    const behaviour = t.onRotate ?? 'add';
    if (typeof behaviour === 'function') behaviour(t, m);
    else if (behaviour !== 'none') {
      const own = c.st.keysByDevice.get(t.keys, c.st.version, m.azureADDeviceId);
      let newest: SimKey | undefined;
      for (const k of own) if (!newest || Date.parse(k.createdDateTime) >= Date.parse(newest.createdDateTime)) newest = k;
      const volumeType = newest?.volumeType ?? 1;
      const created = Math.max(c.at, newest ? Date.parse(newest.createdDateTime) + 1000 : 0);
      const fresh: SimKey = {
        id: cryptoRng.guid(),
        createdDateTime: graphDate(created),
        volumeType,
        deviceId: newest?.deviceId ?? m.azureADDeviceId,
        key: randomRecoveryPassword(),
      };
      if (behaviour === 'replace') {
        const vol = volumeNumber(volumeType);
        const dev = fresh.deviceId.toLowerCase();
        for (let i = t.keys.length - 1; i >= 0; i--) {
          const k = t.keys[i]!;
          if (k.deviceId.toLowerCase() === dev && volumeNumber(k.volumeType) === vol) t.keys.splice(i, 1);
        }
      }
      t.keys.push(fresh);
    }
    c.st.version++;
    return { status: 204 };
  }

  // --- directoryAudits (§2.8) ---------------------------------------------------------------------

  private listAudits(c: Ctx): Reply {
    requirePermission(c.st, PERM.audits);
    const failure = c.st.t.auditFailure;
    if (failure) throw new GraphError(failure.status, failure.code, failure.message);
    const all = c.st.t.audits;
    const tokenPayload = this.readSkiptoken(c, 'directoryAudits');
    const snapshot = tokenPayload?.n ?? all.length; // entries added while paging show up in the next run, not mid-way
    const filter = c.q.get('$filter');
    const pred = filter === undefined ? () => true : parseAuditFilter(filter);
    const orderby = (c.q.get('$orderby') ?? 'activityDateTime desc').trim().toLowerCase().replace(/\s+/g, ' ');
    if (orderby !== 'activitydatetime desc' && orderby !== 'activitydatetime asc' && orderby !== 'activitydatetime')
      throw new GraphError(400, 'BadRequest', `Invalid $orderby: ${orderby}`);
    const asc = orderby !== 'activitydatetime desc';
    const rows = all
      .slice(0, snapshot)
      .map((a, i) => ({ a, i, ms: Date.parse(a.activityDateTime) }))
      .filter((r) => pred(r.a));
    rows.sort((x, y) => (asc ? x.ms - y.ms || x.i - y.i : y.ms - x.ms || y.i - x.i));
    const top = parseTop(c.q.get('$top'), 1000);
    const page = this.page(c, 'directoryAudits', rows.length, top ?? c.st.t.auditPageSize ?? 100, snapshot);
    const value = rows.slice(page.offset, page.end).map((r) => r.a);
    return this.collection(c, 'auditLogs/directoryAudits', value, page.nextLink);
  }

  private getAudit(c: Ctx, id: string): Reply {
    requirePermission(c.st, PERM.audits);
    const a = c.st.t.audits.find((x) => x.id.toLowerCase() === id.toLowerCase());
    if (!a) throw notFound(id);
    return { status: 200, body: { '@odata.context': `${this.graphUrl}/${c.version}/$metadata#auditLogs/directoryAudits/$entity`, ...a } };
  }

  // --- paging (§2.5) ------------------------------------------------------------------------------

  /**
   * Offset paging with an opaque, HMAC-protected `$skiptoken`. The token binds the tenant, the
   * collection and every other query option, so a nextLink must be followed unchanged: a
   * tampered token, or one replayed with a different `$filter`/`$select`, answers 400.
   */
  private page(c: Ctx, kind: string, total: number, size: number, snapshot?: number): { offset: number; end: number; nextLink?: string } {
    const tok = this.readSkiptoken(c, kind);
    const offset = tok?.o ?? 0;
    const end = Math.min(total, offset + Math.max(1, size));
    if (end >= total) return { offset, end };
    const payload: SkipPayload = { k: kind, t: c.st.t.tenantId.toLowerCase(), q: querySignature(c.q), o: end };
    if (snapshot !== undefined) payload.n = snapshot;
    const token = this.signSkiptoken(payload);
    const params: string[] = [];
    for (const [k, v] of c.q.entries) if (k !== '$skiptoken') params.push(`${k}=${encodeQueryValue(v)}`);
    params.push(`$skiptoken=${token}`);
    return { offset, end, nextLink: `${this.graphUrl}/${c.version}/${c.segs.join('/')}?${params.join('&')}` };
  }

  private signSkiptoken(p: SkipPayload): string {
    const body = Buffer.from(JSON.stringify(p)).toString('base64url');
    const mac = createHmac('sha256', this.skipSecret).update(body).digest('base64url').slice(0, 22);
    return `RFNwdAIAAQAAAC${body}.${mac}`;
  }

  private readSkiptoken(c: Ctx, kind: string): SkipPayload | null {
    const raw = c.q.get('$skiptoken');
    if (raw === undefined) return null;
    const bad = () => new GraphError(400, 'Request_BadRequest', 'Invalid $skiptoken: the token was modified or belongs to a different query.');
    const m = /^RFNwdAIAAQAAAC([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{22})$/.exec(raw);
    if (!m) throw bad();
    const mac = createHmac('sha256', this.skipSecret).update(m[1]!).digest('base64url').slice(0, 22);
    if (!safeEqual(mac, m[2]!)) throw bad();
    const p = JSON.parse(Buffer.from(m[1]!, 'base64url').toString('utf8')) as SkipPayload;
    if (p.k !== kind || p.t !== c.st.t.tenantId.toLowerCase() || p.q !== querySignature(c.q)) throw bad();
    return p;
  }

  private collection(c: Ctx, contextPath: string, value: unknown[], nextLink: string | undefined): Reply {
    const body: Record<string, unknown> = { '@odata.context': `${this.graphUrl}/${c.version}/$metadata#${contextPath}` };
    if (nextLink) body['@odata.nextLink'] = nextLink;
    body.value = value;
    return { status: 200, body };
  }
}

// ---------------------------------------------------------------------------------------------
// Request helpers (module-private)
// ---------------------------------------------------------------------------------------------

type Ctx = {
  st: TenantState;
  method: string;
  version: 'v1.0' | 'beta';
  q: Query;
  at: number;
  ip: string;
  lower: string[];
  segs: string[];
  /** The app the access token was issued to (the tenant's own app, or a multi-tenant app). */
  appId: string;
};

type SkipPayload = { k: string; t: string; q: string; o: number; n?: number };

/** Query options in request order; OData system options normalised to their `$` names. */
class Query {
  constructor(readonly entries: [string, string][]) {}
  get(name: string): string | undefined {
    return this.entries.find(([k]) => k === name)?.[1];
  }
  has(name: string): boolean {
    return this.entries.some(([k]) => k === name);
  }
}

function parseQuery(raw: string): Query {
  const entries: [string, string][] = [];
  for (const [k0, v] of new URLSearchParams(raw)) {
    let k = k0;
    const bare = k.startsWith('$') ? k.slice(1).toLowerCase() : k.toLowerCase();
    if (ODATA_OPTIONS.includes(bare)) k = `$${bare}`;
    if (entries.some(([e]) => e === k)) throw new GraphError(400, 'BadRequest', `Query option '${k}' was specified more than once.`);
    entries.push([k, v]);
  }
  return new Query(entries);
}

/** Everything except `$skiptoken`, order-insensitive. */
function querySignature(q: Query): string {
  return createHash('sha256')
    .update(JSON.stringify(q.entries.filter(([k]) => k !== '$skiptoken').sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))))
    .digest('base64url')
    .slice(0, 16);
}

function encodeQueryValue(v: string): string {
  return encodeURIComponent(v).replace(/%24/g, '$').replace(/%2C/gi, ',');
}

const ODATA_STRING = String.raw`'((?:[^']|'')*)'`;
const EQ_RE = new RegExp(String.raw`^\s*([A-Za-z][A-Za-z0-9/]*)\s+eq\s+${ODATA_STRING}\s*$`, 'i');

function parseEq(filter: string): { prop: string; value: string } | null {
  const m = EQ_RE.exec(filter);
  return m ? { prop: m[1]!, value: m[2]!.replace(/''/g, "'") } : null;
}

/** `$filter` on directoryAudits: clauses joined by `and`. */
function parseAuditFilter(filter: string): (a: SimAudit) => boolean {
  const clauses = splitAnd(filter);
  const preds = clauses.map((cl): ((a: SimAudit) => boolean) => {
    const eq = parseEq(cl);
    if (eq) {
      const prop = eq.prop.toLowerCase();
      const v = eq.value;
      if (prop === 'activitydisplayname') return (a) => a.activityDisplayName === v;
      if (prop === 'category') return (a) => a.category === v;
      if (prop === 'result') return (a) => a.result === v;
      if (prop === 'id') return (a) => a.id === v;
      if (prop === 'initiatedby/user/userprincipalname') return (a) => a.initiatedBy.user.userPrincipalName.toLowerCase() === v.toLowerCase();
      if (prop === 'initiatedby/app/appid') return (a) => a.initiatedBy.app?.appId.toLowerCase() === v.toLowerCase();
    }
    const dt = /^\s*activityDateTime\s+(ge|gt|le|lt|eq)\s+(\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2}))\s*$/i.exec(cl);
    if (dt) {
      const ms = Date.parse(dt[2]!);
      if (Number.isNaN(ms)) throw new GraphError(400, 'BadRequest', `Invalid filter clause: ${cl}`);
      const op = dt[1]!.toLowerCase();
      return (a) => {
        const x = Date.parse(a.activityDateTime);
        return op === 'ge' ? x >= ms : op === 'gt' ? x > ms : op === 'le' ? x <= ms : op === 'lt' ? x < ms : x === ms;
      };
    }
    const any = new RegExp(String.raw`^\s*targetResources/any\(\s*(\w+)\s*:\s*\1/displayName\s+eq\s+${ODATA_STRING}\s*\)\s*$`, 'i').exec(cl);
    if (any) {
      const v = any[2]!.replace(/''/g, "'").toLowerCase();
      return (a) => a.targetResources.some((r) => r.displayName.toLowerCase() === v);
    }
    throw new GraphError(400, 'BadRequest', `Invalid filter clause: ${cl.trim()}`);
  });
  return (a) => preds.every((p) => p(a));
}

/** Splits on ` and ` outside string literals. */
function splitAnd(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inStr = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === "'") inStr = !inStr; // '' toggles twice, which is right
    if (!inStr && /\s/.test(ch) && /^\s+and\s+/i.test(s.slice(i))) {
      out.push(cur);
      cur = '';
      i += /^\s+and\s+/i.exec(s.slice(i))![0].length - 1;
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out;
}

/** `$select` list, validated against known properties (null: accept any property). */
function parseSelect(raw: string | undefined, known: readonly string[] | null, type: string): string[] | undefined {
  if (raw === undefined) return undefined;
  const props = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (props.length === 0) throw new GraphError(400, 'BadRequest', 'Empty $select.');
  return props.map((p) => {
    if (!known) return p;
    const hit = known.find((k) => k.toLowerCase() === p.toLowerCase());
    if (!hit)
      throw new GraphError(
        400,
        'BadRequest',
        `Parsing OData Select and Expand failed: Could not find a property named '${p}' on type 'microsoft.graph.${type}'.`,
      );
    return hit;
  });
}

function parseTop(raw: string | undefined, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new GraphError(400, 'Request_BadRequest', `Invalid page size specified: '${raw}'. Must be between 1 and ${max} inclusive.`);
  return n;
}

function project(obj: Record<string, unknown>, select: string[] | undefined): Record<string, unknown> {
  if (!select) return obj;
  const out: Record<string, unknown> = { id: obj.id };
  for (const p of select) out[p] = obj[p] ?? null;
  return out;
}

function projectDevice(d: SimDevice, select: string[] | undefined): Record<string, unknown> {
  return project({ ...d } as Record<string, unknown>, select);
}

function keyMeta(k: SimKey): Record<string, unknown> {
  return { id: k.id, createdDateTime: k.createdDateTime, volumeType: k.volumeType, deviceId: k.deviceId };
}

function volumeNumber(v: number | string): number {
  if (typeof v === 'number') return v;
  const i = (VOLUME_TYPE_NAMES as readonly string[]).indexOf(v);
  return i >= 0 ? i + 1 : Number(v);
}

function requirePermission(st: TenantState, anyOf: string[]): void {
  if (!anyOf.some((p) => st.t.permissions.has(p)))
    throw new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
}

function requireIntunePermission(st: TenantState, anyOf: string[]): void {
  if (!anyOf.some((p) => st.t.permissions.has(p)))
    throw new GraphError(
      403,
      'Forbidden',
      `Application is not authorized to perform this operation. Application must have one of the following scopes: ${anyOf.join(', ')}`,
    );
}

function notFound(id: string): GraphError {
  return new GraphError(404, 'Request_ResourceNotFound', `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`);
}

function graphErrorBody(code: string, message: string, at: number): { error: Record<string, unknown> } {
  const id = randomUUID();
  return { error: { code, message, innerError: { date: secondsDate(at), 'request-id': id, 'client-request-id': id } } };
}

function auditId(): string {
  return `Directory_${randomUUID().replace(/-/g, '').toUpperCase().slice(0, 5)}_${randomBytes(4).toString('hex')}`;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1 << 20) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// Re-exported for fixtures that want GUIDs of the same shape.
export function randomGuid(): string {
  return cryptoRng.guid();
}

export { GUID_RE };
