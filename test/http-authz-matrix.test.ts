/**
 * The authorization matrix: every registered HTTP route × every role (as a signed-in session and
 * as an API token of that role) × own client / other client (and a missing object, which must
 * answer exactly like the other client's), plus an owner of the Own client only (session and token;
 * its own column), API tokens whose creator changed after making them (a global admin later limited
 * to Own; an admin later demoted to helpdesk: each must answer like a token of what both hold now),
 * the device credential of an enrolled agent (which opens the agent routes and nothing else), no
 * session, expired / idle / signed-out / disabled sessions, revoked / expired / unknown tokens,
 * revoked / replaced / unknown device credentials and missing CSRF headers.
 *
 * The expected statuses below are the specification, written out by hand from the permission
 * rules; they are deliberately NOT derived from src/modules/authz (that would test the code with
 * itself). Every response body is also checked for recovery passwords (only a 200 reveal may carry
 * one, and only the password of the key it names), for credentials (API tokens, enrollment tokens,
 * device credentials: never echoed, never listed) and, for client-limited principals (the agent
 * included), for any trace of the other client (its name, ids, device names, key IDs, its agent
 * device, enrollment token, jobs and Entra ID connection).
 *
 * A route registered in the app without an entry in MATRIX fails the first test; so does an entry
 * for a route that no longer exists, or whose auth mode (public / authenticated / enrolment / agent)
 * changed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, createTestApp, type TestApp } from './helpers/app.js';
import { owner as cliOwner } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';
import { ROLES, type Actor, type Role } from '../src/modules/authz/authz.js';
import { sha256Hex } from '../src/crypto/tokens.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';
import { generateSelfSignedCertificate } from '../src/crypto/certificate.js';

// ------------------------------------------------------------------------------------ types

/** The roles this matrix specifies; a role added to src without a column here fails the coverage test. */
const MATRIX_ROLES = ['owner', 'admin', 'technician', 'helpdesk', 'auditor', 'client-viewer'] as const satisfies readonly Role[];
type MRole = (typeof MATRIX_ROLES)[number];
/**
 * The expectation columns: one per role (the owner global, every other role limited to the Own
 * client), plus the owner of the Own client only. Its column is written out by hand like the others.
 */
type Col = MRole | 'scoped-owner';

/** 'agent': the device credential (kwd_…) of the test device enrolled for the Own client. */
type Kind = 'session' | 'token' | 'agent';
type SeedUser = { id: string; email: string; role: Role; clients: 'all' | string[] };
type Principal = {
  name: string;
  /** The expectation column this principal is checked against. */
  col: Col;
  /**
   * The role whose powers it has now, for the body checks. For the agent: the role src gives agent
   * actors; its expectations come from `agent`, never from a role column.
   */
  role: MRole;
  /** The role GET /me reports (a token keeps its own role name while its creator's narrows it); default `role`. */
  meRole?: MRole;
  /** Hand-written: the permissions GET /me must report, for the principals where they are the point. */
  mePermissions?: readonly string[];
  kind: Kind;
  /** owner is global ('all'); every other role (and the agent) is limited to the Own client. */
  global: boolean;
  headers: Record<string, string>;
  /** The signed-in user (session), or the user the token belongs to (token); none for the agent. */
  user?: SeedUser;
  tokenId?: string;
  /** Tokens: the person who made it, when their current clients limit it (grantClient widens both). */
  creator?: SeedUser;
  /** Tokens: granted "all clients" (no rows in api_token_clients). */
  tokenAll?: boolean;
};

type KeyFx = { recordId: string; keyId: string; password: string };
type ClientFx = {
  id: string;
  name: string;
  device: { id: string; name: string };
  /** A key whose 8-digit prefix is unique. */
  solo: KeyFx;
  /** Two keys sharing an 8-digit prefix: a prefix reveal is ambiguous. */
  twins: [KeyFx, KeyFx];
  twinPrefix: string;
  /** A device of this client with an enrolled agent (a live device credential). */
  agentDevice: { id: string; name: string };
  /** A long-lived enrollment token of this client (its id; the secret is in Fx.enroll). */
  enrollmentTokenId: string;
  /** The client's Entra ID (Microsoft Graph) connection: one per client, pointed at GRAPH_LOGIN_URL / GRAPH_URL. */
  connectionId: string;
};

type Fx = {
  t: TestApp;
  own: ClientFx;
  other: ClientFx;
  users: Record<MRole, SeedUser> & { 'scoped-owner': SeedUser };
  ownerSession: Record<string, string>;
  /** A user of the Own client the /users/:userId routes act on (never signs in). */
  targetUserId: string;
  /** A global user (all clients) the /users/:userId routes act on (never signs in). */
  globalTargetUserId: string;
  /** API tokens made by the global owner: nobody client-limited may list them. */
  ownerTokenIds: string[];
  /** Every recovery password the test ever put in a request or in the vault. */
  passwords: string[];
  /** Enrollment tokens and device credentials: no response may ever carry one. */
  secrets: string[];
  /** The agents of Own (the matrix's agent principal) and Other, each enrolled and checked in once. */
  agents: { own: TestAgent; other: TestAgent };
  /** Unlimited enrollment tokens per client, for throwaway devices. */
  enroll: { own: string; other: string };
  /** Enrollment tokens of the Own client that must not enroll anything. */
  deadEnroll: { revoked: string; expired: string; usedUp: string };
  /** A job queued for Other's agent device. */
  otherJobId: string;
};

type Target = 'own' | 'other' | 'missing';
type Req = {
  url: string;
  payload?: string | Record<string, unknown>;
  headers?: Record<string, string>;
  /**
   * For session principals: 'fresh-session' signs the same user in again (for logout, which ends
   * the session it is sent with); 'new-user' creates a throwaway user of the same role and clients
   * (for a password change, which ends all their sessions). Tokens always use the token.
   */
  as?: 'fresh-session' | 'new-user';
  /** The password a 200 answer to this request may (and must) carry. */
  reveals?: string;
  after?: () => Promise<void>;
};
type Ctx = { p: Principal; fx: Fx };
type CheckArgs = { p: Principal; target: Target | 'any'; json: unknown; fx: Fx };
type Check = (a: CheckArgs) => string | undefined;

/** [own client, other client]. A missing object must answer like the other client's. */
type Pair = readonly [own: number, other: number];
type ClientVariant = {
  label: string;
  axis: 'client';
  build: (ctx: Ctx, c: ClientFx, target: Target) => Req | Promise<Req>;
  session: Record<Col, Pair>;
  /** Where an API token of the role answers differently from a session. */
  token?: Partial<Record<Col, Pair>>;
  /** The Own agent's device credential; only on agent routes (elsewhere: 401, or as everyone on public routes). */
  agent?: Pair;
  check?: Check;
};
type FlatVariant = {
  label: string;
  /** The own / other client distinction does not apply: one request, one expectation per role. */
  axis: 'none';
  build: (ctx: Ctx) => Req | Promise<Req>;
  session: Record<Col, number>;
  token?: Partial<Record<Col, number>>;
  agent?: number;
  check?: Check;
};
type Variant = ClientVariant | FlatVariant;
type Entry = { auth: 'public' | 'authenticated' | 'enrolment' | 'agent' | 'self-service'; variants: Variant[] };

// ------------------------------------------------------------------------------------ helpers

const OK: Pair = [200, 200];
const MINE: Pair = [200, 404];
const DENY: Pair = [403, 403];
/**
 * A list filtered by ?clientId= of a client outside the principal's clients: refused with 403, the
 * same answer as for a client id that does not exist, so nothing about its existence is disclosed.
 * (A list filter is not an object; the services check the permission for the filtered client.)
 */
const FILTER: Pair = [200, 403];

const COLS: readonly Col[] = [...MATRIX_ROLES, 'scoped-owner'];
const all = <T>(v: T): Record<Col, T> => ({ owner: v, admin: v, technician: v, helpdesk: v, auditor: v, 'client-viewer': v, 'scoped-owner': v });
const only = (roles: readonly Col[], yes: number, no = 403): Record<Col, number> =>
  Object.fromEntries(COLS.map((r) => [r, roles.includes(r) ? yes : no])) as Record<Col, number>;

const hex = (n = 4) => randomBytes(n).toString('hex');
/** A client's "rotate after disclosure" as created (on): a request that sets it changes nothing. */
const ROTATE_DEFAULT = true;
/** Written out by hand (not imported): what no API token ever holds. */
const PERSON_ONLY_BY_HAND = [
  'key:export',
  'lifecycle:destroy',
  'lifecycle:approve',
  'user:manage',
  'user:invite',
  'settings:manage',
  'token:manage',
  'key:break-glass',
];
/** Written out by hand: what an owner of one client holds (everything but the vault-wide powers). */
const SCOPED_OWNER_PERMISSIONS = [
  'client:read',
  'client:manage',
  'device:read',
  'key:list',
  'key:lookup',
  'key:reveal',
  'key:import',
  'audit:read',
  'user:manage',
  'user:invite',
  'token:manage',
  'integration:manage',
  'agent:manage',
  'lifecycle:manage',
  'lifecycle:destroy',
  'lifecycle:approve',
  'key:break-glass',
];
/** ... and an API token of it (no person-only powers). */
const SCOPED_OWNER_TOKEN_PERMISSIONS = [
  'client:read',
  'client:manage',
  'device:read',
  'key:list',
  'key:lookup',
  'key:reveal',
  'key:import',
  'audit:read',
  'integration:manage',
  'agent:manage',
  'lifecycle:manage',
];
const REVEAL = { reason: 'lost-pin' };
const NEW_PASSWORD = 'matrix changed password 42';

/** A client that does not exist: random ids throughout. */
function missingClient(): ClientFx {
  const k = (): KeyFx => ({ recordId: randomUUID(), keyId: randomKeyId(), password: randomRecoveryPassword() });
  const prefix = hex();
  return {
    id: randomUUID(),
    name: `Northwind ${hex()}`,
    device: { id: randomUUID(), name: `NW-${hex()}` },
    solo: k(),
    twins: [
      { ...k(), keyId: prefix + randomKeyId().slice(8) },
      { ...k(), keyId: prefix + randomKeyId().slice(8) },
    ],
    twinPrefix: prefix,
    agentDevice: { id: randomUUID(), name: `NW-AGENT-${hex()}` },
    enrollmentTokenId: randomUUID(),
    connectionId: randomUUID(),
  };
}

function multipart(fields: Record<string, string>, file: { filename: string; content: string }): { payload: string; headers: Record<string, string> } {
  const boundary = `----kwmatrix${hex(8)}`;
  const parts = Object.entries(fields).map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`);
  parts.push(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.filename}"\r\nContent-Type: text/csv\r\n\r\n${file.content}\r\n`);
  parts.push(`--${boundary}--\r\n`);
  return { payload: parts.join(''), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** Single sign-on (OIDC part): a provider made by the local CLI for a request to act on. */
const matrixProvider = async (fx: Fx) =>
  (
    await fx.t.container.sso.createProvider(cliOwner, {
      kind: 'oidc',
      name: `Matrix IdP ${hex()}`,
      issuer: 'https://127.0.0.1:9/matrix',
      clientId: 'matrix',
      clientSecret: 'matrix-client-secret',
    })
  ).id;

/** A person actor for service calls that need a user (token creation records created_by). */
const personActor = (u: SeedUser): Actor => ({
  type: 'user',
  id: u.id,
  name: u.email,
  role: u.role,
  clients: u.clients,
  // Signed in, without an authenticator app: what minting a token asks of a person.
  session: { id: `matrix-${u.id}`, mfaAt: null, mfaEnrolled: false, mfaEnrolmentRequired: false },
});

/** Gives a client-limited principal one more client for the duration of a request. */
async function grantClient(fx: Fx, p: Principal, clientId: string): Promise<(() => Promise<void>) | undefined> {
  // A device credential belongs to one device of one client: nothing to grant (and it opens no such route).
  if (p.global || p.kind === 'agent') return undefined;
  const db = fx.t.container.database.db;
  if (p.kind === 'session') {
    const userId = p.user!.id;
    await db.insertInto('user_clients').values({ user_id: userId, client_id: clientId }).execute();
    return async () => void (await db.deleteFrom('user_clients').where('user_id', '=', userId).where('client_id', '=', clientId).execute());
  }
  // A token reaches a client only when both it and its creator (as they are now) do.
  const creator = p.creator && p.creator.clients !== 'all' ? p.creator.id : null;
  if (!p.tokenAll) await db.insertInto('api_token_clients').values({ token_id: p.tokenId!, client_id: clientId }).execute();
  if (creator) await db.insertInto('user_clients').values({ user_id: creator, client_id: clientId }).execute();
  return async () => {
    if (!p.tokenAll) await db.deleteFrom('api_token_clients').where('token_id', '=', p.tokenId!).where('client_id', '=', clientId).execute();
    if (creator) await db.deleteFrom('user_clients').where('user_id', '=', creator).where('client_id', '=', clientId).execute();
  };
}

/** Enrolls a fresh simulated machine (a new device) with an enrollment token. */
async function enrollMachine(app: FastifyInstance, token: string, hostname = `MATRIX-TMP-${hex(3).toUpperCase()}`): Promise<TestAgent> {
  const agent = new TestAgent(injectTransport(app), new SimMachine(hostname));
  const r = await agent.enroll(token);
  if (r.status !== 200) throw new Error(`enroll ${hostname}: ${r.status} ${JSON.stringify(r.json)}`);
  return agent;
}
/** A throwaway device of the Own or Other client with a live device credential. */
async function throwawayDevice(fx: Fx, client: 'own' | 'other'): Promise<{ deviceId: string; credential: string }> {
  const a = await enrollMachine(fx.t.app, fx.enroll[client]);
  fx.secrets.push(a.credential!);
  return { deviceId: a.deviceId!, credential: a.credential! };
}
/**
 * A device of the Own or Other client whose agent waits for approval: a second machine enrolled with
 * the serial number and SMBIOS UUID of a throwaway device that has a live agent.
 */
async function waitingDevice(fx: Fx, client: 'own' | 'other'): Promise<string> {
  const real = await enrollMachine(fx.t.app, fx.enroll[client]);
  fx.secrets.push(real.credential!);
  const twin = new TestAgent(injectTransport(fx.t.app), new SimMachine(`MATRIX-TWIN-${hex(3).toUpperCase()}`, real.machine.serial, real.machine.smbiosUuid));
  const r = await twin.enroll(fx.enroll[client]);
  if (r.status !== 200 || r.json.pendingApproval !== true) throw new Error(`twin enrollment: ${r.status} ${JSON.stringify(r.json)}`);
  fx.secrets.push(twin.credential!);
  return twin.deviceId!;
}
/** One waiting agent per client, made on first use, so the list of waiting agents has something to leak. */
const waitingSeeded = new WeakSet<Fx>();
async function seedWaiting(fx: Fx): Promise<void> {
  if (waitingSeeded.has(fx)) return;
  waitingSeeded.add(fx);
  await waitingDevice(fx, 'own');
  await waitingDevice(fx, 'other');
}
const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });
/** A valid enroll body for a machine that was never seen. */
const enrollBody = (enrollmentToken: string) => ({
  enrollmentToken,
  agentVersion: 'matrix-1.0',
  device: {
    hostname: `MATRIX-ENROLL-${hex(3).toUpperCase()}`,
    domain: 'WORKGROUP',
    domainJoined: false,
    serialNumber: `SN-${hex()}`,
    smbiosUuid: randomUUID(),
    entraDeviceId: null,
  },
});
/** The next upload of the Own agent: its own C: recovery password (stored once, then a duplicate). */
const ownUploadBody = (fx: Fx, jobId: string | null = null) => {
  const a = fx.agents.own;
  const p = a.machine.recoveryPasswords('C:')[0]!;
  return {
    seq: ++a.seq,
    sentAt: new Date().toISOString(),
    jobId,
    keys: [{ mountPoint: 'C:', protectorId: p.id, recoveryPassword: p.password!, volumeType: 'OperatingSystem' }],
  };
};

// ------------------------------------------------------------------------------------ Entra ID (Graph) connections

/**
 * The sign-in and Graph URLs of every connection the matrix makes: the discard port of this machine,
 * where nothing listens. Nothing is ever contacted: the refused sign-in fails "test" and "sync" at
 * once (src/integrations/graph-client.ts retries only Graph calls, never a token request, so there is
 * no backoff to wait for), and both still answer 200 with the failure in the body.
 */
const GRAPH_LOGIN_URL = 'http://127.0.0.1:9/login';
const GRAPH_URL = 'http://127.0.0.1:9/graph';
/** The app secret of every connection the matrix makes: stored encrypted, never in any response. */
const GRAPH_SECRET = `matrix-graph-secret-${hex(16)}`;
const graphBody = (clientId: string) => ({
  clientId,
  tenantId: randomUUID(),
  appClientId: randomUUID(),
  clientSecret: GRAPH_SECRET,
  loginUrl: GRAPH_LOGIN_URL,
  graphUrl: GRAPH_URL,
});

/**
 * A throwaway client for one request (a client holds one connection at most): for 'own', granted to
 * a client-limited principal for the duration of the request; for 'other', outside its clients.
 * A global principal sees both anyway.
 */
async function spareClient(fx: Fx, p: Principal, target: 'own' | 'other'): Promise<{ id: string; after?: () => Promise<void> }> {
  const spare = await fx.t.container.clients.create(cliOwner, { name: `Matrix Graph Spare ${hex()}` });
  return { id: spare.id, after: target === 'own' ? await grantClient(fx, p, spare.id) : undefined };
}

/** A throwaway connection (on a spare client) for one request, or a random id for a missing one. */
async function throwawayConnection(fx: Fx, p: Principal, target: Target): Promise<{ id: string; after?: () => Promise<void> }> {
  if (target === 'missing') return { id: randomUUID() };
  const spare = await spareClient(fx, p, target);
  const conn = await fx.t.container.graph.createConnection(cliOwner, graphBody(spare.id));
  return { id: conn.id, after: spare.after };
}

/**
 * One certificate and private key for every certificate credential the matrix uploads (made once:
 * parsing is cheap, generating an RSA key per request is not). The key must never be in an answer.
 */
const MATRIX_CERT = generateSelfSignedCertificate({ commonName: 'Matrix app', days: 365, bits: 2048, now: new Date() });
const certBody = { certificatePem: MATRIX_CERT.certificatePem, privateKeyPem: MATRIX_CERT.privateKeyPem };
const leaksKey = (json: unknown) => (/PRIVATE KEY/.test(JSON.stringify(json ?? '')) ? 'a private key is in the answer' : undefined);

/** A throwaway connection with a certificate credential (on a spare client), or a random id for a missing one. */
async function certConnection(fx: Fx, p: Principal, target: Target): Promise<{ id: string; after?: () => Promise<void> }> {
  if (target === 'missing') return { id: randomUUID() };
  const spare = await spareClient(fx, p, target);
  const { clientSecret: _s, ...body } = graphBody(spare.id);
  const conn = await fx.t.container.graph.createConnection(cliOwner, { ...body, ...certBody });
  return { id: conn.id, after: spare.after };
}

/** The MSP app of the matrix vault (a certificate credential), set up by the CLI owner once. */
let mspAppReady: Promise<unknown> | null = null;
const ensureMspApp = (fx: Fx) =>
  (mspAppReady ??= fx.t.container.mspApp.set(cliOwner, { appClientId: randomUUID(), loginUrl: GRAPH_LOGIN_URL, graphUrl: GRAPH_URL, ...certBody }));

const asArray = (json: unknown): Record<string, unknown>[] => (Array.isArray(json) ? (json as Record<string, unknown>[]) : []);
/** True when an object has any field that looks like a secret (the app secret is never returned). */
const hasSecretField = (o: Record<string, unknown>) => Object.keys(o).some((k) => /secret/i.test(k));
const clientIdsOf = (json: unknown) => asArray(json).map((x) => (x.client as { id: string } | undefined)?.id ?? (x.clientId as string | undefined) ?? x.id);

// ------------------------------------------------------------------------------------ lifecycle helpers

/** A throwaway enrolled device of Own / Other (retired, or under legal hold, if asked), or a random id. */
async function lifecycleDevice(fx: Fx, target: Target, state: 'live' | 'retired' | 'held' = 'live'): Promise<string> {
  if (target === 'missing') return randomUUID();
  const d = await throwawayDevice(fx, target);
  if (state === 'retired') await fx.t.container.lifecycle.retireDevice(cliOwner, d.deviceId, {});
  if (state === 'held') await fx.t.container.lifecycle.setDeviceHold(cliOwner, d.deviceId, { hold: true, reason: 'matrix hold' });
  return d.deviceId;
}
/** A throwaway client (optionally under legal hold), granted to a client-limited principal for the request when 'own'. */
async function lifecycleClient(fx: Fx, p: Principal, target: Target, held = false): Promise<{ id: string; name: string; after?: () => Promise<void> }> {
  if (target === 'missing') return { id: randomUUID(), name: 'Missing Co' };
  const name = `Matrix Lifecycle ${hex()}`;
  const { id } = await fx.t.container.clients.create(cliOwner, { name });
  if (held) await fx.t.container.lifecycle.setClientHold(cliOwner, id, { hold: true, reason: 'matrix hold' });
  return { id, name, after: target === 'own' ? await grantClient(fx, p, id) : undefined };
}
/** A pending two-owner request, asked by another owner, to destroy a throwaway retired device's keys. */
async function pendingApproval(fx: Fx, target: Target): Promise<{ id: string; confirm: string }> {
  if (target === 'missing') return { id: randomUUID(), confirm: 'Missing Co' };
  const c = target === 'own' ? fx.own : fx.other;
  const deviceId = await lifecycleDevice(fx, target, 'retired');
  const id = randomUUID();
  const now = new Date().toISOString();
  await fx.t.container.database.db
    .insertInto('lifecycle_approvals')
    .values({
      id,
      action: 'destroy-device-keys',
      client_id: c.id,
      device_id: deviceId,
      status: 'pending',
      reason: 'matrix',
      requested_by: `user:${randomUUID()}`,
      requested_by_name: 'another owner',
      requested_at: now,
      expires_at: new Date(Date.now() + 3_600_000).toISOString(),
      approved_by: null,
      approved_by_name: null,
      approved_at: null,
      closed_at: null,
      result: null,
    })
    .execute();
  return { id, confirm: c.name };
}
const isExecuted = ({ json }: CheckArgs) =>
  (json as { status?: string }).status === 'executed' ? undefined : `expected the action to run, got ${JSON.stringify(json).slice(0, 200)}`;

// ------------------------------------------------------------------------------------ notifications helpers

/**
 * Channels the matrix makes point at the discard port of this machine with plain SMTP: a "send test"
 * is refused at once and answers 200 with ok:false. Their SMTP password is sealed and must never be
 * in any response.
 */
const NOTIFY_SMTP_PASSWORD = `matrix-smtp-password-${hex(16)}`;
const notifyEmailBody = (clientId: string | null) => ({
  clientId,
  name: `Matrix mail ${hex()}`,
  kind: 'email',
  host: '127.0.0.1',
  port: 9,
  starttls: 'ignore',
  username: 'matrix',
  password: NOTIFY_SMTP_PASSWORD,
  from: 'keywarden@matrix.example',
  to: ['it@matrix.example'],
});
const notifySecret = (fx: Fx) => {
  if (!fx.secrets.includes(NOTIFY_SMTP_PASSWORD)) fx.secrets.push(NOTIFY_SMTP_PASSWORD);
};
/** A throwaway e-mail channel of the client (made by the CLI owner), or a random id for a missing one. */
async function notifyChannel(fx: Fx, c: ClientFx, target: Target): Promise<string> {
  notifySecret(fx);
  if (target === 'missing') return randomUUID();
  return (await fx.t.container.notifications.createChannel(cliOwner, notifyEmailBody(c.id) as never)).channel.id;
}
async function notifyRule(fx: Fx, c: ClientFx, target: Target): Promise<string> {
  if (target === 'missing') return randomUUID();
  const channelId = await notifyChannel(fx, c, target);
  return (
    await fx.t.container.notifications.createRule(cliOwner, {
      clientId: c.id,
      name: `Matrix rule ${hex()}`,
      eventTypes: ['device.noncompliant'],
      channelIds: [channelId],
    })
  ).id;
}
async function notifySchedule(fx: Fx, c: ClientFx, target: Target): Promise<string> {
  if (target === 'missing') return randomUUID();
  const channelId = await notifyChannel(fx, c, target);
  return (
    await fx.t.container.notifications.createSchedule(cliOwner, {
      clientId: c.id,
      name: `Matrix schedule ${hex()}`,
      channelId,
      recipients: ['ceo@matrix.example'],
    })
  ).id;
}
/** A delivery of the client's (a refused "send test"), or a random id. */
async function notifyDelivery(fx: Fx, c: ClientFx, target: Target): Promise<string> {
  if (target === 'missing') return randomUUID();
  return (await fx.t.container.notifications.testChannel(cliOwner, await notifyChannel(fx, c, target))).deliveryId;
}
/** Lists: a client-limited principal sees only Own's rows (never MSP-wide ones); nothing carries a secret field. */
const notifyListCheck: Check = ({ p, target, json, fx }) => {
  const rows = asArray(json);
  if (rows.some(hasSecretField)) return 'a row has a secret field';
  if (target !== 'any' && rows.some((r) => r.clientId !== (target === 'own' ? fx.own.id : fx.other.id))) return 'a row of another client in a filtered list';
  if (!p.global && rows.some((r) => r.clientId !== fx.own.id)) return 'a client-limited principal sees a row of another client or an MSP-wide one';
  return undefined;
};

/** Passkeys (issue 19): well-formed WebAuthn answers that no authenticator made. */
const FAKE_REGISTRATION = {
  id: 'bWF0cml4LWNyZWRlbnRpYWw',
  rawId: 'bWF0cml4LWNyZWRlbnRpYWw',
  type: 'public-key',
  response: { clientDataJSON: 'e30', attestationObject: 'oA' },
  clientExtensionResults: {},
};
const FAKE_ASSERTION = {
  id: 'bWF0cml4LWNyZWRlbnRpYWw',
  rawId: 'bWF0cml4LWNyZWRlbnRpYWw',
  type: 'public-key',
  response: { clientDataJSON: 'e30', authenticatorData: 'AA', signature: 'AA' },
  clientExtensionResults: {},
};

// ------------------------------------------------------------------------------------ two-person reveal helpers (issue 19, reveal approval)

/** The tag of the matrix's tagged reveal policy: only devices the matrix tags with it need approval, so every other reveal entry is unaffected. */
const APPROVAL_TAG = 'matrix-approval';
const approvalPolicy = { mode: 'tagged', tags: [APPROVAL_TAG] } as const;
/** A fresh key on a fresh device of Own / Other tagged for approval (the client's tagged policy set), or a random id. */
async function approvalKey(fx: Fx, target: Target): Promise<string> {
  if (target === 'missing') return randomUUID();
  const c = target === 'own' ? fx.own : fx.other;
  const k = { device: `MATRIX-APPROVAL-${hex(3).toUpperCase()}`, keyId: randomKeyId(), password: randomRecoveryPassword() };
  fx.passwords.push(k.password);
  await fx.t.container.revealApprovals.setPolicy(cliOwner, c.id, { ...approvalPolicy, tags: [...approvalPolicy.tags] });
  await fx.t.container.imports.importFile(cliOwner, c.name, { fileName: 'approval.csv', bytes: bytes(csvOf([k])) });
  const key = (await fx.t.container.keys.searchByKeyId(cliOwner, k.keyId))[0]!;
  await fx.t.container.deviceTags.set(cliOwner, key.device!.id, { tags: [APPROVAL_TAG] });
  return key.id;
}
/** A pending reveal request of Own / Other, asked by `requester` (default: a person who is nobody in the matrix), or a random id. */
async function revealRequest(fx: Fx, target: Target, requester?: Principal): Promise<string> {
  if (target === 'missing') return randomUUID();
  const c = target === 'own' ? fx.own : fx.other;
  const id = randomUUID();
  const now = new Date().toISOString();
  // A token's person is its creator (the person a second person must differ from).
  const person = (requester?.kind === 'token' ? (requester.creator ?? requester.user) : requester?.user)?.id ?? randomUUID();
  await fx.t.container.database.db
    .insertInto('reveal_requests')
    .values({
      id,
      client_id: c.id,
      recovery_key_id: c.solo.recordId,
      device_id: c.device.id,
      reason: 'lost-pin',
      ticket: 'MATRIX-1',
      note: null,
      requester_type: requester?.kind === 'token' ? 'token' : 'user',
      requester_id: requester?.kind === 'token' ? `token:${requester.tokenId}` : person,
      requester_person_id: person,
      requester_name: 'someone else',
      status: 'pending',
      requested_at: now,
      expires_at: new Date(Date.now() + 3_600_000).toISOString(),
      decided_by_id: null,
      decided_by_name: null,
      decided_at: null,
      decision_note: null,
      approval_expires_at: null,
      used_at: null,
    })
    .execute();
  return id;
}
const requestStatus =
  (want: string): Check =>
  ({ json }) =>
    (json as { status?: string }).status === want ? undefined : `expected the request to be ${want}, got ${JSON.stringify(json).slice(0, 200)}`;

// ------------------------------------------------------------------------------------ the matrix

/** Invitations (issue 19, item 3): a fresh invitation made by the global owner (a person), for these clients; its id. */
async function matrixInvitation(fx: Fx, clients: 'all' | string[]): Promise<string> {
  const o = fx.users.owner;
  const inviter: Actor = {
    type: 'user',
    id: o.id,
    name: o.email,
    role: 'owner',
    clients: 'all',
    session: { id: 'matrix', mfaAt: null, mfaEnrolled: false, mfaEnrolmentRequired: false },
  };
  const r = await fx.t.container.invitations.create(inviter, { email: `matrix-invitee-${hex()}@example.test`, role: 'helpdesk', clients });
  return r.invitation.id;
}

const MATRIX: Record<string, Entry> = {
  // ---------------------------------------------------------------- public
  'GET /healthz': { auth: 'public', variants: [{ label: '', axis: 'none', build: () => ({ url: '/healthz' }), session: all(200) }] },
  'GET /readyz': { auth: 'public', variants: [{ label: '', axis: 'none', build: () => ({ url: '/readyz' }), session: all(200) }] },
  'GET /api/openapi.json': { auth: 'public', variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/openapi.json' }), session: all(200) }] },
  'POST /api/v1/auth/login': {
    auth: 'public',
    variants: [
      {
        label: 'wrong password (never 403, never a session)',
        axis: 'none',
        build: () => ({ url: '/api/v1/auth/login', payload: { email: `nobody-${hex()}@example.test`, password: 'not the right password' } }),
        session: all(401),
      },
    ],
  },

  // ---------------------------------------------------------------- sign-in, step-up, me
  'POST /api/v1/auth/logout': {
    auth: 'enrolment',
    variants: [
      // Tokens have no session: signing out is a no-op that still answers ok.
      { label: 'a throwaway session of the same user', axis: 'none', build: () => ({ url: '/api/v1/auth/logout', as: 'fresh-session' }), session: all(200) },
    ],
  },
  'POST /api/v1/auth/step-up': {
    auth: 'authenticated',
    variants: [
      {
        // No seeded user has an authenticator app: a session gets past authorization to "set one up first" (400).
        label: 'no authenticator set up',
        axis: 'none',
        build: () => ({ url: '/api/v1/auth/step-up', payload: { code: '123456' } }),
        session: all(400),
        token: all(403),
      },
    ],
  },
  'GET /api/v1/me': {
    auth: 'enrolment',
    variants: [
      {
        label: '',
        axis: 'none',
        build: () => ({ url: '/api/v1/me' }),
        session: all(200),
        check: ({ p, json, fx }) => {
          const me = json as { actor?: { role?: string; clients?: unknown }; permissions?: string[] };
          const role = p.meRole ?? p.role;
          if (me.actor?.role !== role) return `me.actor.role is not ${role}`;
          const clients = p.global ? 'all' : [fx.own.id];
          if (p.kind !== 'agent' && JSON.stringify(me.actor?.clients) !== JSON.stringify(clients))
            return `me.actor.clients is ${JSON.stringify(me.actor?.clients)}, expected ${JSON.stringify(clients)}`;
          if (p.mePermissions && JSON.stringify([...(me.permissions ?? [])].sort()) !== JSON.stringify([...p.mePermissions].sort())) {
            return `me.permissions is ${JSON.stringify(me.permissions)}, expected ${JSON.stringify(p.mePermissions)}`;
          }
          // Powers a person exercises themselves are never a token's.
          if (p.kind === 'token' && me.permissions?.some((x) => PERSON_ONLY_BY_HAND.includes(x)))
            return `a token reports ${me.permissions.filter((x) => PERSON_ONLY_BY_HAND.includes(x)).join(', ')}`;
          return undefined;
        },
      },
    ],
  },
  'POST /api/v1/me/password': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a throwaway user of the same role changes their password',
        axis: 'none',
        build: () => ({ url: '/api/v1/me/password', payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, as: 'new-user' }),
        session: all(200),
        token: all(403),
      },
    ],
  },
  'POST /api/v1/me/mfa': {
    auth: 'enrolment',
    variants: [{ label: 'start authenticator set-up', axis: 'none', build: () => ({ url: '/api/v1/me/mfa' }), session: all(200), token: all(403) }],
  },
  'POST /api/v1/me/mfa/confirm': {
    auth: 'enrolment',
    variants: [
      // A wrong code (or no set-up started): authorized, then refused as a bad request.
      {
        label: 'wrong code',
        axis: 'none',
        build: () => ({ url: '/api/v1/me/mfa/confirm', payload: { code: 'not-a-code' } }),
        session: all(400),
        token: all(403),
      },
    ],
  },
  'DELETE /api/v1/me/mfa': {
    auth: 'authenticated',
    variants: [
      // Nothing to remove: authorized, then a bad request.
      {
        label: 'no authenticator set up',
        axis: 'none',
        build: () => ({ url: '/api/v1/me/mfa', payload: { code: '123456' } }),
        session: all(400),
        token: all(403),
      },
    ],
  },

  // ---------------------------------------------------------------- passkeys (issue 19, item 2)
  // The matrix's vault has no KEYWARDEN_PUBLIC_URL, so a person gets past authorization to "passkeys
  // need the public address" (400) wherever a relying party is needed; test/passkeys.test.ts covers
  // the flows themselves. API tokens have no passkeys (403); a passkey that is not yours is 404.
  'GET /api/v1/me/passkeys': {
    auth: 'enrolment',
    variants: [
      {
        label: 'your passkeys (none)',
        axis: 'none',
        build: () => ({ url: '/api/v1/me/passkeys' }),
        session: all(200),
        token: all(403),
        check: ({ json }) => (asArray(json).length === 0 ? undefined : 'a person without passkeys lists some'),
      },
    ],
  },
  'POST /api/v1/me/passkeys/options': {
    auth: 'enrolment',
    variants: [{ label: 'no public URL configured', axis: 'none', build: () => ({ url: '/api/v1/me/passkeys/options' }), session: all(400), token: all(403) }],
  },
  'POST /api/v1/me/passkeys': {
    auth: 'enrolment',
    variants: [
      {
        label: 'an answer, no public URL configured',
        axis: 'none',
        build: () => ({ url: '/api/v1/me/passkeys', payload: { name: 'Matrix key', response: FAKE_REGISTRATION } }),
        session: all(400),
        token: all(403),
      },
    ],
  },
  'PATCH /api/v1/me/passkeys/:passkeyId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a passkey that is not yours',
        axis: 'none',
        build: () => ({ url: `/api/v1/me/passkeys/${randomUUID()}`, payload: { name: 'Renamed' } }),
        session: all(404),
        token: all(403),
      },
    ],
  },
  'DELETE /api/v1/me/passkeys/:passkeyId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a passkey that is not yours',
        axis: 'none',
        build: () => ({ url: `/api/v1/me/passkeys/${randomUUID()}` }),
        session: all(404),
        token: all(403),
      },
    ],
  },
  'POST /api/v1/auth/passkey/options': {
    auth: 'public',
    variants: [{ label: 'no public URL configured', axis: 'none', build: () => ({ url: '/api/v1/auth/passkey/options', payload: {} }), session: all(400) }],
  },
  'POST /api/v1/auth/passkey': {
    auth: 'public',
    variants: [
      {
        label: 'an answer, no public URL configured (never a session)',
        axis: 'none',
        build: () => ({ url: '/api/v1/auth/passkey', payload: { response: FAKE_ASSERTION } }),
        session: all(400),
      },
    ],
  },
  'POST /api/v1/auth/step-up/passkey/options': {
    auth: 'authenticated',
    variants: [
      { label: 'no public URL configured', axis: 'none', build: () => ({ url: '/api/v1/auth/step-up/passkey/options' }), session: all(400), token: all(403) },
    ],
  },
  'POST /api/v1/auth/step-up/passkey': {
    auth: 'authenticated',
    variants: [
      {
        label: 'an answer, no public URL configured',
        axis: 'none',
        build: () => ({ url: '/api/v1/auth/step-up/passkey', payload: { response: FAKE_ASSERTION } }),
        session: all(400),
        token: all(403),
      },
    ],
  },
  // ---------------------------------------------------------------- end of passkeys

  // ---------------------------------------------------------------- clients
  'GET /api/v1/clients': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'none',
        build: () => ({ url: '/api/v1/clients' }),
        session: all(200),
        check: ({ p, json, fx }) => {
          const ids = asArray(json).map((c) => c.id as string);
          if (!ids.includes(fx.own.id)) return 'the list lacks the Own client';
          if (!p.global && ids.some((id) => id !== fx.own.id)) return `a client-limited principal sees ${ids.length} clients`;
          return undefined;
        },
      },
    ],
  },
  'POST /api/v1/clients': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a new client',
        axis: 'none',
        build: () => ({ url: '/api/v1/clients', payload: { name: `Matrix New ${hex()}` } }),
        session: only(['owner'], 201),
      },
    ],
  },
  'GET /api/v1/clients/:clientId': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'client', build: (_x, c) => ({ url: `/api/v1/clients/${c.id}` }), session: { ...all(MINE), owner: OK } }],
  },
  'PATCH /api/v1/clients/:clientId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'rename (to its own name)',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}`, payload: { name: c.name } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
      {
        // Who of the client's own staff may reveal: managing people (never a token), the client's owner included.
        label: 'viewerCanReveal (owners)',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}`, payload: { viewerCanReveal: false } }),
        session: { ...all(DENY), owner: OK, 'scoped-owner': MINE },
        token: { owner: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  'DELETE /api/v1/clients/:clientId': {
    auth: 'authenticated',
    variants: [
      {
        // Own = a throwaway client granted to the principal for this request; other = a throwaway client it cannot see.
        label: 'archive a throwaway client',
        axis: 'client',
        build: async ({ p, fx }, c, target) => {
          if (target === 'missing') return { url: `/api/v1/clients/${c.id}` };
          const spare = await fx.t.container.clients.create(cliOwner, { name: `Matrix Spare ${hex()}` });
          const after = target === 'own' ? await grantClient(fx, p, spare.id) : undefined;
          return { url: `/api/v1/clients/${spare.id}`, after };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },

  // ---------------------------------------------------------------- devices
  'GET /api/v1/devices': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/devices' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 200),
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices?clientId=${c.id}` }),
        session: { ...all(FILTER), owner: OK, helpdesk: DENY },
      },
      {
        label: 'search by device name',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices?q=${encodeURIComponent(c.device.name)}` }),
        session: { ...all(OK), helpdesk: DENY },
        check: ({ p, target, json }) => (!p.global && target !== 'own' && asArray(json).length ? "found another client's device" : undefined),
      },
    ],
  },
  'GET /api/v1/devices/:deviceId': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.device.id}` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
        check: ({ p, json }) => {
          const n = ((json as { recoveryKeys?: unknown[] }).recoveryKeys ?? []).length;
          const mayList = ['owner', 'admin', 'technician', 'auditor'].includes(p.role);
          return mayList === n > 0 ? undefined : `device detail lists ${n} keys for ${p.role}`;
        },
      },
    ],
  },

  // ---------------------------------------------------------------- keys
  'GET /api/v1/keys': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/keys' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => (!p.global && clientIdsOf(json).some((id) => id !== fx.own.id) ? "lists another client's keys" : undefined),
      },
      {
        label: 'one client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/keys?clientId=${c.id}` }),
        session: { ...all(DENY), owner: OK, admin: FILTER, technician: FILTER, auditor: FILTER, 'scoped-owner': FILTER },
      },
      {
        label: 'search by key ID',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/keys?q=${c.solo.keyId}` }),
        session: { ...all(DENY), owner: OK, admin: OK, technician: OK, auditor: OK, 'scoped-owner': OK },
        check: ({ p, target, json }) => {
          const n = asArray(json).length;
          const want = p.global ? (target === 'missing' ? 0 : 1) : target === 'own' ? 1 : 0;
          return n === want ? undefined : `search found ${n} keys, expected ${want}`;
        },
      },
    ],
  },
  'POST /api/v1/keys/:keyRecordId/unlock-outcome': {
    auth: 'authenticated',
    variants: [
      {
        label: 'after revealing it (only the person who revealed a key answers)',
        axis: 'client',
        build: async ({ p, fx }, c) => {
          // The principal reveals the key first; where it may not, the outcome is refused as well.
          await fx.t.app.inject({ method: 'POST', url: `/api/v1/keys/${c.solo.recordId}/reveal`, headers: p.headers, payload: REVEAL });
          return { url: `/api/v1/keys/${c.solo.recordId}/unlock-outcome`, payload: { unlocked: true } };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, helpdesk: MINE, 'scoped-owner': MINE },
        check: ({ json }) => ((json as { unlocked?: boolean; key?: { id?: string } }).unlocked === true ? undefined : 'no unlock outcome recorded'),
      },
    ],
  },
  'GET /api/v1/keys/reasons': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/keys/reasons' }), session: all(200) }],
  },
  'GET /api/v1/keys/:keyRecordId': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/keys/${c.solo.recordId}` }),
        session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, auditor: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'POST /api/v1/keys/:id/reveal': {
    auth: 'authenticated',
    variants: (
      [
        ['by key ID', (c: ClientFx) => c.solo.keyId],
        ['by 8-digit key ID prefix (upper case)', (c: ClientFx) => c.solo.keyId.slice(0, 8).toUpperCase()],
        ['by key record id', (c: ClientFx) => c.solo.recordId],
      ] as const
    )
      .map(([label, q]): Variant => ({
        label,
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/keys/${encodeURIComponent(q(c))}/reveal`, payload: REVEAL, reveals: c.solo.password }),
        session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, helpdesk: MINE, 'scoped-owner': MINE },
        check: ({ json, target, fx }) => {
          const want = (target === 'own' ? fx.own : fx.other).solo.password;
          return (json as { key?: { recoveryPassword?: string } }).key?.recoveryPassword === want ? undefined : "the revealed password is not the key's";
        },
      }))
      .concat([
        {
          label: 'ambiguous prefix: no password, candidates only for roles that may list keys',
          axis: 'client',
          build: (_x, c) => ({ url: `/api/v1/keys/${c.twinPrefix}/reveal`, payload: REVEAL }),
          session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, helpdesk: MINE, 'scoped-owner': MINE },
          check: ({ p, json }) => {
            const r = json as { status?: string; matches?: number; candidates?: unknown[] | null };
            if (r.status !== 'ambiguous' || r.matches !== 2) return `expected an ambiguous answer with 2 matches, got ${JSON.stringify(r).slice(0, 200)}`;
            const mayList = ['owner', 'admin', 'technician'].includes(p.role);
            return mayList === Array.isArray(r.candidates) ? undefined : `candidates ${mayList ? 'missing' : 'shown'} for ${p.role}`;
          },
        },
      ]),
  },

  // ---------------------------------------------------------------- imports
  'POST /api/v1/imports': {
    auth: 'authenticated',
    variants: (
      [
        ['dry run, client by name', (c: ClientFx) => c.name],
        ['dry run, client by id', (c: ClientFx) => c.id],
      ] as const
    ).map(([label, client]): Variant => ({
      label,
      axis: 'client',
      build: ({ fx }, c) => {
        const password = randomRecoveryPassword();
        fx.passwords.push(password);
        const body = multipart(
          { client: client(c), dryRun: 'true' },
          { filename: 'keys.csv', content: csvOf([{ device: `IMPORT-${hex()}`, keyId: randomKeyId(), password }]) },
        );
        return { url: '/api/v1/imports', ...body };
      },
      session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
    })),
  },

  // ---------------------------------------------------------------- audit
  'GET /api/v1/audit': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/audit?limit=1000' }),
        session: only(['owner', 'admin', 'auditor', 'scoped-owner'], 200),
        check: ({ p, json, fx }) =>
          !p.global && asArray(json).some((e) => e.clientId !== fx.own.id) ? 'a client-limited reader sees events outside its client' : undefined,
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/audit?clientId=${c.id}` }),
        session: { ...all(DENY), owner: OK, admin: FILTER, auditor: FILTER, 'scoped-owner': FILTER },
      },
    ],
  },
  'GET /api/v1/audit/export': {
    auth: 'authenticated',
    variants: [
      {
        label: 'CSV, all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/audit/export?format=csv' }),
        session: only(['owner', 'admin', 'auditor', 'scoped-owner'], 200),
      },
      {
        label: 'JSON lines, one client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/audit/export?format=jsonl&clientId=${c.id}` }),
        session: { ...all(DENY), owner: OK, admin: FILTER, auditor: FILTER, 'scoped-owner': FILTER },
      },
    ],
  },
  'GET /api/v1/audit/verify': {
    auth: 'authenticated',
    // The chain spans every client: only a global reader may walk it (client-limited admin and auditor: 403).
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/audit/verify' }), session: only(['owner'], 200) }],
  },
  'GET /api/v1/audit/actions': {
    auth: 'authenticated',
    // Labels only, the same for every reader of the log.
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/audit/actions' }), session: only(['owner', 'admin', 'auditor', 'scoped-owner'], 200) }],
  },

  // ---------------------------------------------------------------- users
  // People manage people (never a token); an owner of one client sees and manages only users whose
  // every client is its own, and a global user is "not found" to it.
  'GET /api/v1/users': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'none',
        build: () => ({ url: '/api/v1/users' }),
        session: only(['owner', 'scoped-owner'], 200),
        token: { owner: 403, 'scoped-owner': 403 },
        check: ({ p, json, fx }) => {
          const rows = asArray(json);
          const ids = rows.map((u) => u.id);
          if (!ids.includes(fx.targetUserId)) return "the list lacks the Own client's user";
          if (p.global) return ids.includes(fx.globalTargetUserId) ? undefined : 'a global owner does not see a global user';
          const outside = rows.filter((u) => u.clients === 'all' || !(u.clients as string[]).every((c) => c === fx.own.id));
          return outside.length
            ? `a client-limited owner sees ${outside.length} users outside its client (${outside.map((u) => u.email).join(', ')})`
            : undefined;
        },
      },
    ],
  },
  'POST /api/v1/users': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a helpdesk user of that client',
        axis: 'client',
        build: (_x, c) => ({
          url: '/api/v1/users',
          payload: { email: `matrix-${hex()}@example.test`, password: NEW_PASSWORD, role: 'helpdesk', clients: [c.id] },
        }),
        // Another client's id in the body is refused exactly like a missing one (400 "no such client").
        session: { ...all(DENY), owner: [201, 201], 'scoped-owner': [201, 400] },
        token: { owner: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  'GET /api/v1/users/:userId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a user of Own',
        axis: 'none',
        build: ({ fx }) => ({ url: `/api/v1/users/${fx.targetUserId}` }),
        session: only(['owner', 'scoped-owner'], 200),
        token: { owner: 403, 'scoped-owner': 403 },
      },
      {
        label: 'a global user',
        axis: 'none',
        build: ({ fx }) => ({ url: `/api/v1/users/${fx.globalTargetUserId}` }),
        session: { ...only(['owner'], 200), 'scoped-owner': 404 },
        token: { owner: 403, 'scoped-owner': 403 },
      },
    ],
  },
  'PATCH /api/v1/users/:userId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'rename a user of Own',
        axis: 'none',
        build: ({ fx }) => ({ url: `/api/v1/users/${fx.targetUserId}`, payload: { name: `Target ${hex()}` } }),
        session: only(['owner', 'scoped-owner'], 200),
        token: { owner: 403, 'scoped-owner': 403 },
      },
      {
        label: 'rename a global user',
        axis: 'none',
        build: ({ fx }) => ({ url: `/api/v1/users/${fx.globalTargetUserId}`, payload: { name: `Global target ${hex()}` } }),
        session: { ...only(['owner'], 200), 'scoped-owner': 404 },
        token: { owner: 403, 'scoped-owner': 403 },
      },
      {
        // Granting "all clients" is for principals with all clients.
        label: 'give a throwaway user of Own all clients',
        axis: 'none',
        build: async ({ fx }) => ({ url: `/api/v1/users/${(await fx.t.addUser('technician', [fx.own.id])).id}`, payload: { clients: 'all' } }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
    ],
  },
  'POST /api/v1/users/:userId/password': {
    auth: 'authenticated',
    variants: [
      {
        label: 'reset a user of Own',
        axis: 'none',
        build: ({ fx }) => ({ url: `/api/v1/users/${fx.targetUserId}/password`, payload: { password: NEW_PASSWORD } }),
        session: only(['owner', 'scoped-owner'], 200),
        token: { owner: 403, 'scoped-owner': 403 },
      },
      {
        label: 'reset a global user',
        axis: 'none',
        build: ({ fx }) => ({ url: `/api/v1/users/${fx.globalTargetUserId}/password`, payload: { password: NEW_PASSWORD } }),
        session: { ...only(['owner'], 200), 'scoped-owner': 404 },
        token: { owner: 403, 'scoped-owner': 403 },
      },
    ],
  },

  // ---------------------------------------------------------------- invitations (issue 19, item 3: invitations)
  // Inviting: people with user:invite (owners; admins within their own role and clients), never a
  // token, never beyond their own clients; an invitation outside a client-limited owner's reach is "not found". The invitee's
  // preview and acceptance are public: an unknown link answers 400 to everyone.
  'GET /api/v1/invitations': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'none',
        build: () => ({ url: '/api/v1/invitations' }),
        session: only(['owner', 'scoped-owner', 'admin'], 200),
        token: { owner: 403, 'scoped-owner': 403, admin: 403 },
        check: ({ p, json }) => {
          if (JSON.stringify(json).includes('kwi_')) return 'the list carries an invitation token';
          if (p.global) return undefined;
          const outside = asArray(json).filter((i) => i.clients === 'all' || !(i.clients as string[]).every((c) => c === p.user?.clients[0]));
          return outside.length ? `a client-limited owner sees ${outside.length} invitations outside its client` : undefined;
        },
      },
    ],
  },
  'POST /api/v1/invitations': {
    auth: 'authenticated',
    variants: [
      {
        // Another client's id in the body is refused exactly like a missing one (400 "no such client").
        label: 'a helpdesk invitation for that client',
        axis: 'client',
        build: (_x, c) => ({ url: '/api/v1/invitations', payload: { email: `matrix-invite-${hex()}@example.test`, role: 'helpdesk', clients: [c.id] } }),
        session: { ...all(DENY), owner: [201, 201], 'scoped-owner': [201, 400], admin: [201, 400] },
        token: { owner: DENY, 'scoped-owner': DENY, admin: DENY },
      },
      {
        label: 'an owner of all clients',
        axis: 'none',
        build: () => ({ url: '/api/v1/invitations', payload: { email: `matrix-invite-${hex()}@example.test`, role: 'owner', clients: 'all' } }),
        session: only(['owner'], 201),
        token: { owner: 403 },
      },
    ],
  },
  'POST /api/v1/invitations/:invitationId/resend': {
    auth: 'authenticated',
    variants: [
      {
        label: 'an invitation for Own',
        axis: 'none',
        build: async ({ fx }) => ({ url: `/api/v1/invitations/${await matrixInvitation(fx, [fx.own.id])}/resend`, payload: {} }),
        session: only(['owner', 'scoped-owner', 'admin'], 200),
        token: { owner: 403, 'scoped-owner': 403, admin: 403 },
      },
      {
        label: 'an invitation for all clients',
        axis: 'none',
        build: async ({ fx }) => ({ url: `/api/v1/invitations/${await matrixInvitation(fx, 'all')}/resend`, payload: {} }),
        session: { ...only(['owner'], 200), 'scoped-owner': 404, admin: 404 },
        token: { owner: 403, 'scoped-owner': 403, admin: 403 },
      },
    ],
  },
  'DELETE /api/v1/invitations/:invitationId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'an invitation for Own',
        axis: 'none',
        build: async ({ fx }) => ({ url: `/api/v1/invitations/${await matrixInvitation(fx, [fx.own.id])}` }),
        session: only(['owner', 'scoped-owner', 'admin'], 200),
        token: { owner: 403, 'scoped-owner': 403, admin: 403 },
      },
      {
        label: 'an invitation for all clients',
        axis: 'none',
        build: async ({ fx }) => ({ url: `/api/v1/invitations/${await matrixInvitation(fx, 'all')}` }),
        session: { ...only(['owner'], 200), 'scoped-owner': 404, admin: 404 },
        token: { owner: 403, 'scoped-owner': 403, admin: 403 },
      },
    ],
  },
  'POST /api/v1/invitations/preview': {
    auth: 'public',
    variants: [
      {
        label: 'an unknown link',
        axis: 'none',
        build: () => ({ url: '/api/v1/invitations/preview', payload: { token: `kwi_${hex(32)}` } }),
        session: all(400),
      },
    ],
  },
  'POST /api/v1/invitations/accept': {
    auth: 'public',
    variants: [
      {
        label: 'an unknown link (never a session)',
        axis: 'none',
        build: () => ({ url: '/api/v1/invitations/accept', payload: { token: `kwi_${hex(32)}`, password: NEW_PASSWORD } }),
        session: all(400),
      },
    ],
  },
  // ---------------------------------------------------------------- end of invitations (issue 19, item 3)

  // ---------------------------------------------------------------- API tokens
  // Tokens are managed by people, never by other tokens. A client-limited person sees the tokens of
  // the people it may manage and its own; never the global owner's.
  'GET /api/v1/tokens': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'none',
        build: () => ({ url: '/api/v1/tokens' }),
        session: only(['owner', 'admin', 'scoped-owner'], 200),
        token: { owner: 403, admin: 403, 'scoped-owner': 403 },
        check: ({ p, json, fx }) => {
          const ids = asArray(json).map((x) => x.id as string);
          if (p.global) return fx.ownerTokenIds.every((id) => ids.includes(id)) ? undefined : 'the global owner does not see its own tokens';
          return ids.some((id) => fx.ownerTokenIds.includes(id)) ? "a client-limited person sees the global owner's tokens" : undefined;
        },
      },
    ],
  },
  'POST /api/v1/tokens': {
    auth: 'authenticated',
    variants: [
      {
        // Another client's id in the body is refused exactly like a missing one (400 "no such client").
        label: 'an auditor token for that client',
        axis: 'client',
        build: (_x, c) => ({ url: '/api/v1/tokens', payload: { name: `matrix made ${hex()}`, role: 'auditor', clients: [c.id] } }),
        session: { ...all(DENY), owner: [201, 201], admin: [201, 400], 'scoped-owner': [201, 400] },
        // Tokens are created by people, never by other tokens.
        token: { owner: DENY, admin: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  'DELETE /api/v1/tokens/:tokenId': {
    auth: 'authenticated',
    variants: [
      {
        // Own = a fresh token created by this person (a token principal: by the owner who made it);
        // other = a fresh token created by someone it may not manage (for the global owner: an
        // admin's, which it may revoke). Admins revoke only their own tokens.
        label: 'revoke a throwaway token',
        axis: 'client',
        build: async ({ p, fx }, _c, target) => {
          if (target === 'missing') return { url: `/api/v1/tokens/${randomUUID()}` };
          const me = p.kind === 'session' && (p.role === 'owner' || p.role === 'admin') ? p.user! : fx.users.owner;
          const creator = target === 'own' ? me : me.role === 'owner' && me.clients === 'all' ? fx.users.admin : fx.users.owner;
          const r = await fx.t.container.identity.createToken(personActor(creator), {
            name: `matrix throwaway ${hex()}`,
            role: 'auditor',
            clients: [fx.own.id],
          });
          return { url: `/api/v1/tokens/${r.view.id}` };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        token: { owner: DENY, admin: DENY, 'scoped-owner': DENY },
      },
    ],
  },

  // ---------------------------------------------------------------- vault-wide settings: a person with all clients (the owner), never a token
  'GET /api/v1/settings': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/settings' }), session: only(['owner'], 200), token: { owner: 403 } }],
  },
  'PATCH /api/v1/settings': {
    auth: 'authenticated',
    variants: [
      {
        label: 'requireMfa stays off',
        axis: 'none',
        build: () => ({ url: '/api/v1/settings', payload: { requireMfa: false } }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
    ],
  },

  // ---------------------------------------------------------------- the agent's own calls
  'POST /api/v1/agent/enroll': {
    auth: 'public',
    // One answer (401, never 403, never a credential) for every token that must not enroll; a valid one is tested in agent-e2e.
    variants: (
      [
        ['an unknown enrollment token', () => `kwe_${randomBytes(32).toString('base64url')}`],
        ['a revoked enrollment token', (fx: Fx) => fx.deadEnroll.revoked],
        ['an expired enrollment token', (fx: Fx) => fx.deadEnroll.expired],
        ['a used-up enrollment token', (fx: Fx) => fx.deadEnroll.usedUp],
        ['an API token in place of an enrollment token', (fx: Fx) => fx.secrets.find((x) => x.startsWith('kw_'))!],
      ] as const
    ).map(([label, token]): Variant => ({
      label,
      axis: 'none',
      build: ({ fx }) => ({ url: '/api/v1/agent/enroll', payload: enrollBody(token(fx)) }),
      session: all(401),
    })),
  },
  'POST /api/v1/agent/checkin': {
    auth: 'agent',
    variants: [
      {
        // Every user session and API token: 401 (a device credential only), before the body is looked at.
        label: 'the Own test device reports (next seq, sentAt = now)',
        axis: 'none',
        build: ({ fx }) => ({ url: '/api/v1/agent/checkin', payload: fx.agents.own.checkinBody() }),
        session: all(401),
        agent: 200,
        check: ({ json }) => {
          const r = json as { requestPasswords?: unknown[]; jobs?: unknown[]; nextCheckinSeconds?: number };
          return Array.isArray(r.requestPasswords) && Array.isArray(r.jobs) && typeof r.nextCheckinSeconds === 'number'
            ? undefined
            : `not a check-in answer: ${JSON.stringify(r).slice(0, 160)}`;
        },
      },
      {
        // Authentication comes before validation: a session or token never learns what the body lacks.
        label: 'an invalid body (the agent: 400)',
        axis: 'none',
        build: () => ({ url: '/api/v1/agent/checkin', payload: { seq: 0, sentAt: 'yesterday' } }),
        session: all(401),
        agent: 400,
      },
      {
        label: 'a replayed seq (the agent: 409)',
        axis: 'none',
        build: ({ fx }) => ({ url: '/api/v1/agent/checkin', payload: { ...fx.agents.own.checkinBody(), seq: 1 } }),
        session: all(401),
        agent: 409,
      },
    ],
  },
  'POST /api/v1/agent/keys': {
    auth: 'agent',
    variants: [
      {
        label: 'the Own test device uploads its recovery password',
        axis: 'none',
        build: ({ fx }) => ({ url: '/api/v1/agent/keys', payload: ownUploadBody(fx) }),
        session: all(401),
        agent: 200,
        check: ({ json }) => {
          const status = (json as { stored?: { status?: string }[] }).stored?.[0]?.status;
          return status === 'stored' || status === 'duplicate' ? undefined : `the upload was not escrowed (${status})`;
        },
      },
      {
        // A device credential works for its own device only: another device's job is "not found".
        label: "for a job of Other's device (the agent: 404)",
        axis: 'none',
        build: ({ fx }) => ({ url: '/api/v1/agent/keys', payload: ownUploadBody(fx, fx.otherJobId) }),
        session: all(401),
        agent: 404,
      },
    ],
  },

  // ---------------------------------------------------------------- agents: enrollment tokens, jobs, findings
  'GET /api/v1/agent/enrollment-tokens': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/agent/enrollment-tokens' }),
        session: only(['owner', 'admin', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => {
          const rows = asArray(json);
          if (!rows.some((r) => r.id === fx.own.enrollmentTokenId)) return "the list lacks the Own client's enrollment token";
          if (p.global && !rows.some((r) => r.id === fx.other.enrollmentTokenId)) return "a global principal does not see the Other client's enrollment token";
          if (!p.global && rows.some((r) => r.clientId !== fx.own.id)) return "lists another client's enrollment tokens";
          return undefined;
        },
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/agent/enrollment-tokens?clientId=${c.id}` }),
        session: { ...all(DENY), owner: OK, admin: FILTER, 'scoped-owner': FILTER },
        check: ({ target, json, fx }) =>
          asArray(json).some((r) => r.clientId !== (target === 'own' ? fx.own.id : fx.other.id)) ? "the filter lets other clients' tokens through" : undefined,
      },
    ],
  },
  'POST /api/v1/agent/enrollment-tokens': {
    auth: 'authenticated',
    variants: [
      {
        // Another client's id in the body is "not found" for an admin limited to Own, exactly like a missing one.
        label: 'a one-use token for that client',
        axis: 'client',
        build: (_x, c) => ({ url: '/api/v1/agent/enrollment-tokens', payload: { clientId: c.id, expiresInDays: 1, maxUses: 1 } }),
        session: { ...all(DENY), owner: [201, 201], admin: [201, 404], 'scoped-owner': [201, 404] },
        check: ({ target, json, fx }) => {
          const r = json as { token?: string; enrollmentToken?: { clientId?: string } };
          if (!r.token?.startsWith('kwe_')) return 'no kwe_ token in the answer';
          return r.enrollmentToken?.clientId === (target === 'own' ? fx.own.id : fx.other.id) ? undefined : 'the token is for another client';
        },
      },
    ],
  },
  'DELETE /api/v1/agent/enrollment-tokens/:tokenId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'revoke a throwaway enrollment token of that client',
        axis: 'client',
        build: async ({ fx }, c, target) => {
          if (target === 'missing') return { url: `/api/v1/agent/enrollment-tokens/${randomUUID()}` };
          const r = await fx.t.container.agent.createEnrollmentToken(cliOwner, { clientId: c.id, expiresInDays: 1, maxUses: 1 });
          fx.secrets.push(r.token);
          return { url: `/api/v1/agent/enrollment-tokens/${r.view.id}` };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'GET /api/v1/devices/:deviceId/jobs': {
    auth: 'authenticated',
    variants: [
      {
        label: "the client's agent device",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.agentDevice.id}/jobs` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
      },
    ],
  },
  'POST /api/v1/devices/:deviceId/jobs': {
    auth: 'authenticated',
    variants: [
      {
        label: "rotate C: on the client's agent device",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.agentDevice.id}/jobs`, payload: { kind: 'rotate', mountPoint: 'C:' } }),
        session: { ...all(DENY), owner: [201, 201], admin: [201, 404], 'scoped-owner': [201, 404] },
        check: ({ json }) => ((json as { kind?: string }).kind === 'rotate' ? undefined : 'the answer is not the rotate job'),
      },
      {
        // Permission, then visibility, then "no agent": another client's device never reaches the agent check.
        label: 'a device without an agent (400 once authorized)',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.device.id}/jobs`, payload: { kind: 'rotate', mountPoint: 'C:' } }),
        session: { ...all(DENY), owner: [400, 400], admin: [400, 404], 'scoped-owner': [400, 404] },
      },
    ],
  },
  'GET /api/v1/clients/:clientId/agent-jobs': {
    auth: 'authenticated',
    variants: [
      {
        label: "the client's agent jobs",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/agent-jobs?limit=1000` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
        // The rotate job queued for Other's agent is listed for Other only.
        check: ({ target, json, fx }) =>
          asArray(json).some((j) => j.id === fx.otherJobId) === (target === 'other') ? undefined : `Other's job ${target === 'other' ? 'missing' : 'listed'}`,
      },
    ],
  },
  'POST /api/v1/clients/:clientId/agent-jobs': {
    auth: 'authenticated',
    variants: [
      {
        // A dry run: authorization and scoping are the same as for a real one, and nothing is queued.
        label: "a dry run of rotate on the client's agent device",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/agent-jobs`, payload: { kind: 'rotate', deviceIds: [c.agentDevice.id], dryRun: true } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) => ((json as { dryRun?: boolean }).dryRun === true ? undefined : 'not the dry run answer'),
      },
    ],
  },
  'POST /api/v1/devices/:deviceId/revoke-agent': {
    auth: 'authenticated',
    variants: [
      {
        // A throwaway enrolled device per request, so the matrix's own agent keeps working.
        label: 'a throwaway enrolled device of that client',
        axis: 'client',
        build: async ({ fx }, _c, target) => {
          if (target === 'missing') return { url: `/api/v1/devices/${randomUUID()}/revoke-agent` };
          const d = await throwawayDevice(fx, target);
          return { url: `/api/v1/devices/${d.deviceId}/revoke-agent` };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) =>
          (json as { revoked?: number }).revoked === 1 ? undefined : `revoked ${(json as { revoked?: number }).revoked} credentials, expected 1`,
      },
    ],
  },
  'GET /api/v1/agent/pending-links': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: async ({ fx }) => {
          await seedWaiting(fx);
          return { url: '/api/v1/agent/pending-links' };
        },
        session: only(['owner', 'admin', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => {
          const ids = asArray(json).map((r) => (r.client as { id?: string } | undefined)?.id);
          if (!ids.includes(fx.own.id)) return "the list lacks the Own client's waiting agent";
          if (p.global && !ids.includes(fx.other.id)) return "a global principal does not see the Other client's waiting agent";
          if (!p.global && ids.some((id) => id !== fx.own.id)) return "lists another client's waiting agents";
          return undefined;
        },
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: async ({ fx }, c) => {
          await seedWaiting(fx);
          return { url: `/api/v1/agent/pending-links?clientId=${c.id}` };
        },
        session: { ...all(DENY), owner: OK, admin: FILTER, 'scoped-owner': FILTER },
        check: ({ target, json, fx }) =>
          asArray(json).some((r) => (r.client as { id?: string } | undefined)?.id !== (target === 'own' ? fx.own.id : fx.other.id))
            ? "the filter lets other clients' waiting agents through"
            : undefined,
      },
    ],
  },
  'POST /api/v1/devices/:deviceId/approve-agent-link': {
    auth: 'authenticated',
    variants: [
      {
        // A throwaway waiting agent per request; approving it cuts off the throwaway device's own agent only.
        label: 'a throwaway waiting agent of that client',
        axis: 'client',
        build: async ({ fx }, _c, target) => {
          if (target === 'missing') return { url: `/api/v1/devices/${randomUUID()}/approve-agent-link` };
          return { url: `/api/v1/devices/${await waitingDevice(fx, target)}/approve-agent-link` };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) => (typeof (json as { deviceId?: string }).deviceId === 'string' ? undefined : 'the answer names no device'),
      },
    ],
  },
  'GET /api/v1/findings': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/findings' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => {
          const ids = clientIdsOf(json);
          if (!ids.includes(fx.own.id)) return "the list lacks the Own agent's finding";
          if (p.global && !ids.includes(fx.other.id)) return "a global principal does not see the Other agent's finding";
          if (!p.global && ids.some((id) => id !== fx.own.id)) return "lists another client's findings";
          return undefined;
        },
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/findings?clientId=${c.id}` }),
        session: { ...all(FILTER), owner: OK, helpdesk: DENY },
      },
      {
        // A device filter is a search: a device outside the principal's clients simply matches nothing.
        label: "filtered by the client's agent device",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/findings?deviceId=${c.agentDevice.id}` }),
        session: { ...all(OK), helpdesk: DENY },
        check: ({ p, target, json }) => {
          const n = asArray(json).length;
          const want = target === 'missing' ? false : p.global || target === 'own';
          return want === n > 0 ? undefined : `found ${n} findings for the ${target} client's agent device`;
        },
      },
    ],
  },

  'GET /api/v1/agent/health': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/agent/health' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => {
          const ids = asArray((json as { devices?: unknown }).devices).map((d) => d.id);
          const clientIds = clientIdsOf((json as { devices?: unknown }).devices);
          if (!ids.includes(fx.own.agentDevice.id)) return "the list lacks the Own client's agent";
          if (p.global && !ids.includes(fx.other.agentDevice.id)) return "a global principal does not see the Other client's agent";
          if (!p.global && clientIds.some((id) => id !== fx.own.id)) return "lists another client's agents";
          return undefined;
        },
      },
      {
        // A client outside the principal's is "not found", exactly like one that does not exist.
        label: 'filtered by client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/agent/health?clientId=${c.id}` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
        check: ({ target, json, fx }) => {
          const want = target === 'own' ? fx.own : fx.other;
          const devices = asArray((json as { devices?: unknown }).devices);
          if (!devices.some((d) => d.id === want.agentDevice.id)) return "the filtered list lacks the client's agent";
          return clientIdsOf(devices).some((id) => id !== want.id) ? "the filter lets other clients' agents through" : undefined;
        },
      },
    ],
  },

  // ---------------------------------------------------------------- Entra ID (Microsoft Graph) connections
  'GET /api/v1/graph/connections': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/graph/connections' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => {
          const rows = asArray(json);
          if (rows.some(hasSecretField)) return 'a connection in the list has a secret field';
          if (!rows.some((r) => r.id === fx.own.connectionId)) return "the list lacks the Own client's connection";
          if (p.global && !rows.some((r) => r.id === fx.other.connectionId)) return "a global principal does not see the Other client's connection";
          if (!p.global && rows.some((r) => r.clientId !== fx.own.id || r.id === fx.other.connectionId)) return 'lists a connection of another client';
          return undefined;
        },
      },
    ],
  },
  'POST /api/v1/graph/connections': {
    auth: 'authenticated',
    variants: [
      {
        // Own = a throwaway client granted to the principal for this request; other = a throwaway client it cannot see.
        // Another client's id in the body is "not found" for an admin limited to Own, exactly like a missing one.
        label: 'connect a throwaway client',
        axis: 'client',
        build: async ({ p, fx }, c, target) => {
          if (target === 'missing') return { url: '/api/v1/graph/connections', payload: graphBody(c.id) };
          const spare = await spareClient(fx, p, target);
          return { url: '/api/v1/graph/connections', payload: graphBody(spare.id), after: spare.after };
        },
        session: { ...all(DENY), owner: [201, 201], admin: [201, 404], 'scoped-owner': [201, 404] },
        check: ({ json }) => {
          const r = json as Record<string, unknown>;
          if (hasSecretField(r)) return 'the new connection is returned with a secret field';
          return r.loginUrl === GRAPH_LOGIN_URL && r.graphUrl === GRAPH_URL ? undefined : `not the connection asked for: ${JSON.stringify(r).slice(0, 160)}`;
        },
      },
      {
        // Permission, then visibility, then "already connected": another client's connection is never confirmed by a 409.
        label: 'a second connection for the client (409 once authorized)',
        axis: 'client',
        build: (_x, c) => ({ url: '/api/v1/graph/connections', payload: graphBody(c.id) }),
        session: { ...all(DENY), owner: [409, 409], admin: [409, 404], 'scoped-owner': [409, 404] },
      },
    ],
  },
  'DELETE /api/v1/graph/connections/:connectionId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'remove a throwaway connection',
        axis: 'client',
        build: async ({ p, fx }, _c, target) => {
          const conn = await throwawayConnection(fx, p, target);
          return { url: `/api/v1/graph/connections/${conn.id}`, after: conn.after };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) => ((json as { ok?: boolean }).ok === true ? undefined : 'the answer is not ok'),
      },
    ],
  },
  'POST /api/v1/graph/connections/:connectionId/test': {
    auth: 'authenticated',
    variants: [
      {
        // The sign-in service is unreachable: authorized, the test runs and reports its failing checks.
        label: "the client's connection (unreachable: ok false)",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/graph/connections/${c.connectionId}/test` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) => {
          const r = json as { ok?: boolean; checks?: { check: string; ok: boolean }[] };
          if (r.ok !== false || !r.checks?.length) return `expected ok:false with checks, got ${JSON.stringify(r).slice(0, 160)}`;
          return r.checks.some((x) => x.check.startsWith('sign-in') && !x.ok) ? undefined : 'no failing sign-in check';
        },
      },
    ],
  },
  'POST /api/v1/graph/connections/:connectionId/sync': {
    auth: 'authenticated',
    variants: [
      {
        // The sign-in service is unreachable: authorized, the sync runs, fails at once and answers its failed run.
        label: "the client's connection (unreachable: a failed run)",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/graph/connections/${c.connectionId}/sync` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ target, json, fx }) => {
          const r = json as { status?: string; clientId?: string; errorText?: string | null };
          if (r.clientId !== (target === 'own' ? fx.own.id : fx.other.id)) return 'the run is of another client';
          return r.status === 'failed' && r.errorText ? undefined : `expected a failed run, got ${JSON.stringify(r).slice(0, 160)}`;
        },
      },
    ],
  },
  'GET /api/v1/graph/connections/:connectionId/runs': {
    auth: 'authenticated',
    variants: [
      {
        label: "the client's connection",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/graph/connections/${c.connectionId}/runs` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
        check: ({ target, json, fx }) => {
          const runs = asArray(json);
          if (!runs.length) return 'no runs listed (one was seeded)';
          return runs.every((r) => r.clientId === (target === 'own' ? fx.own.id : fx.other.id)) ? undefined : 'lists runs of another client';
        },
      },
    ],
  },
  'GET /api/v1/graph/connections/:connectionId/certificate': {
    auth: 'authenticated',
    variants: [
      {
        label: "a throwaway connection's public certificate",
        axis: 'client',
        build: async ({ p, fx }, _c, target) => {
          const conn = await certConnection(fx, p, target);
          return { url: `/api/v1/graph/connections/${conn.id}/certificate`, after: conn.after };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) =>
          leaksKey(json) ?? ((json as { certificatePem?: string }).certificatePem === MATRIX_CERT.certificatePem ? undefined : 'not the certificate uploaded'),
      },
    ],
  },

  // ---------------------------------------------------------------- the MSP's one multi-tenant app (issue 20)
  // Reading it and making consent links is managing integrations; setting it is a vault-wide setting
  // (owners with all clients, never a token). The consent callback is public (the client's admin has
  // no account): an unknown state is refused there for everyone.
  'GET /api/v1/graph/msp-app': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'none',
        build: async ({ fx }) => (await ensureMspApp(fx), { url: '/api/v1/graph/msp-app' }),
        session: only(['owner', 'admin', 'scoped-owner'], 200),
        check: ({ json }) => leaksKey(json),
      },
    ],
  },
  'PUT /api/v1/graph/msp-app': {
    auth: 'authenticated',
    variants: [
      {
        label: 'set the app (certificate)',
        axis: 'none',
        build: async ({ fx }) => (
          await ensureMspApp(fx),
          { url: '/api/v1/graph/msp-app', payload: { appClientId: randomUUID(), loginUrl: GRAPH_LOGIN_URL, graphUrl: GRAPH_URL, ...certBody } }
        ),
        session: only(['owner'], 200),
        token: { owner: 403 },
        check: ({ json }) => leaksKey(json),
      },
    ],
  },
  'GET /api/v1/graph/msp-app/certificate': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'none',
        build: async ({ fx }) => (await ensureMspApp(fx), { url: '/api/v1/graph/msp-app/certificate' }),
        session: only(['owner', 'admin', 'scoped-owner'], 200),
        check: ({ json }) => leaksKey(json),
      },
    ],
  },
  'POST /api/v1/graph/consent-links': {
    auth: 'authenticated',
    variants: [
      {
        label: "a consent link for the client's administrator",
        axis: 'client',
        build: async ({ fx }, c) => (await ensureMspApp(fx), { url: '/api/v1/graph/consent-links', payload: { clientId: c.id } }),
        session: { ...all(DENY), owner: [201, 201], admin: [201, 404], 'scoped-owner': [201, 404] },
        check: ({ json }) => (/\/adminconsent\?/.test((json as { url?: string }).url ?? '') ? undefined : 'no admin-consent URL in the answer'),
      },
    ],
  },
  'GET /api/v1/graph/consent-links': {
    auth: 'authenticated',
    variants: [
      {
        label: "the client's consent links",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/graph/consent-links?clientId=${c.id}` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ target, json, fx }) =>
          asArray(json).every((l) => l.clientId === (target === 'own' ? fx.own.id : fx.other.id)) ? undefined : 'lists links of another client',
      },
    ],
  },
  'GET /api/v1/graph/consent/callback': {
    auth: 'public',
    variants: [
      {
        label: 'an unknown state',
        axis: 'none',
        build: () => ({ url: `/api/v1/graph/consent/callback?admin_consent=True&tenant=${randomUUID()}&state=${hex(32)}` }),
        session: all(400),
      },
    ],
  },
  // ================================================================ web console routes
  // The console's page and its assets are public (they carry no data); a missing asset is a 404 either way,
  // so these answers do not depend on whether dist/web was built.
  'GET /': { auth: 'public', variants: [{ label: 'the console page', axis: 'none', build: () => ({ url: '/' }), session: all(200) }] },
  'GET /assets/*': {
    auth: 'public',
    variants: [{ label: 'a file that is not there', axis: 'none', build: () => ({ url: `/assets/matrix-${hex()}.js` }), session: all(404) }],
  },
  // The agent rollout kit: the script and its helpers, public downloads of a fixed list of files.
  'GET /agent/*': {
    auth: 'public',
    variants: [
      { label: 'the agent script', axis: 'none', build: () => ({ url: '/agent/Keywarden-Agent.ps1' }), session: all(200) },
      { label: 'a path outside the kit', axis: 'none', build: () => ({ url: '/agent/..%2Fpackage.json' }), session: all(404) },
    ],
  },
  'GET /api/v1/agent/files': {
    auth: 'public',
    variants: [
      {
        label: '',
        axis: 'none',
        build: () => ({ url: '/api/v1/agent/files' }),
        session: all(200),
        check: ({ json }) => (asArray((json as { files?: unknown }).files).length === 5 ? undefined : 'the manifest does not list the five files'),
      },
    ],
  },
  'GET /api/v1/setup': {
    auth: 'public',
    variants: [
      {
        label: 'first-run state',
        axis: 'none',
        build: () => ({ url: '/api/v1/setup' }),
        session: all(200),
        check: ({ p, json }) => {
          const r = json as { needed?: boolean; signedIn?: boolean };
          if (r.needed !== false) return 'the vault has users: setup must not be needed';
          return r.signedIn === (p.kind === 'session') ? undefined : `signedIn is ${r.signedIn} for a ${p.kind}`;
        },
      },
    ],
  },
  'POST /api/v1/setup': {
    auth: 'public',
    // The vault has users: nobody (signed in or not) can create another "first" owner.
    variants: [
      {
        label: 'a second first owner',
        axis: 'none',
        build: () => ({ url: '/api/v1/setup', payload: { email: `matrix-setup-${hex()}@example.test`, password: NEW_PASSWORD, setupToken: `kws_${hex()}` } }),
        session: all(409),
      },
    ],
  },
  'GET /api/v1/console/settings': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/console/settings' }), session: all(200) }],
  },
  'GET /api/v1/console/clients': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'none',
        build: () => ({ url: '/api/v1/console/clients' }),
        session: all(200),
        check: ({ p, json, fx }) => {
          const rows = asArray(json);
          if (!rows.some((r) => r.id === fx.own.id)) return 'the list lacks the Own client';
          if (!p.global && rows.some((r) => r.id !== fx.own.id)) return `a client-limited principal sees ${rows.length} clients`;
          // Helpdesk sees client names only, no device counts.
          const own = rows.find((r) => r.id === fx.own.id)!;
          return (p.role === 'helpdesk') === (own.devices === 0) ? undefined : `device counts ${own.devices ? 'shown' : 'missing'} for ${p.role}`;
        },
      },
    ],
  },
  'GET /api/v1/keys/lookup': {
    auth: 'authenticated',
    variants: [
      {
        label: 'by key ID',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/keys/lookup?keyId=${c.solo.keyId}` }),
        // A lookup is a search: another client's key is simply not found (0 matches).
        session: { ...all(DENY), owner: OK, admin: OK, technician: OK, helpdesk: OK, 'scoped-owner': OK },
        check: ({ p, target, json }) => {
          const r = json as { matches?: number; keys?: unknown[] };
          const want = p.global ? (target === 'missing' ? 0 : 1) : target === 'own' ? 1 : 0;
          return r.matches === want && r.keys?.length === want ? undefined : `lookup found ${r.matches} (${r.keys?.length} shown), expected ${want}`;
        },
      },
      {
        label: 'ambiguous 8-digit prefix: the count, candidates only for roles that may list keys',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/keys/lookup?keyId=${c.twinPrefix.toUpperCase()}` }),
        session: { ...all(DENY), owner: OK, admin: OK, technician: OK, helpdesk: OK, 'scoped-owner': OK },
        check: ({ p, target, json }) => {
          const r = json as { matches?: number; keys?: unknown[] };
          const visible = p.global ? target !== 'missing' : target === 'own';
          const want = visible ? 2 : 0;
          if (r.matches !== want) return `lookup found ${r.matches}, expected ${want}`;
          const shown = visible && p.role !== 'helpdesk' ? 2 : 0;
          return r.keys?.length === shown ? undefined : `${r.keys?.length} candidates shown to ${p.role}, expected ${shown}`;
        },
      },
    ],
  },
  'GET /api/v1/clients/:clientId/overview': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/overview` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
        check: ({ json }) => {
          const r = json as { devices?: number; keys?: number };
          return r.devices !== undefined && r.devices >= 1 && (r.keys ?? 0) >= 3
            ? undefined
            : `not the seeded client's overview: ${JSON.stringify(r).slice(0, 160)}`;
        },
      },
    ],
  },
  'GET /api/v1/clients/:clientId/devices': {
    auth: 'authenticated',
    variants: [
      {
        label: 'sorted by last seen, filtered by name',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/devices?sort=lastSeenAt&dir=desc&q=${encodeURIComponent(c.device.name)}` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
        check: ({ target, json, fx }) => {
          const r = json as { total?: number; items?: { name: string }[] };
          const want = (target === 'own' ? fx.own : fx.other).device.name;
          return r.total === 1 && r.items?.[0]?.name === want ? undefined : `expected the one device ${want}, got ${JSON.stringify(r).slice(0, 160)}`;
        },
      },
    ],
  },
  'GET /api/v1/clients/:clientId/devices/export': {
    auth: 'authenticated',
    variants: [
      {
        label: 'CSV',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/devices/export` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
      },
    ],
  },
  'GET /api/v1/devices/:deviceId/volume-history': {
    auth: 'authenticated',
    variants: [
      {
        label: "the client's agent device",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.agentDevice.id}/volume-history` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
      },
    ],
  },
  'GET /api/v1/devices/:deviceId/audit': {
    auth: 'authenticated',
    variants: [
      {
        label: "the client's device (its keys were imported: events exist)",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.device.id}/audit` }),
        session: { ...all(DENY), owner: OK, admin: MINE, auditor: MINE, 'scoped-owner': MINE },
        check: ({ target, json, fx }) => {
          const id = (target === 'own' ? fx.own : fx.other).id;
          return asArray(json).every((e) => e.clientId === id) ? undefined : "the trail has another client's events";
        },
      },
    ],
  },
  'GET /api/v1/settings/security': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/settings/security' }), session: only(['owner'], 200), token: { owner: 403 } }],
  },
  'PATCH /api/v1/settings/security': {
    auth: 'authenticated',
    variants: [
      {
        label: 'hide after 60 s (the default)',
        axis: 'none',
        build: () => ({ url: '/api/v1/settings/security', payload: { revealHideSeconds: 60 } }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
      {
        // Even for a client of its own, a client-limited owner changes no security setting.
        label: "the client's rotate-after-disclosure (unchanged value)",
        axis: 'client',
        build: (_x, c) => ({ url: '/api/v1/settings/security', payload: { clients: [{ id: c.id, rotateAfterDisclosure: ROTATE_DEFAULT }] } }),
        session: { ...all(DENY), owner: OK },
        token: { owner: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  'GET /api/v1/directory/connections': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/directory/connections' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 200),
      },
    ],
  },
  // No Active Directory connection is seeded here (test/ad-*.test.ts drive real ones against Samba):
  // a missing one is "not found" for the roles that manage agents and a refusal for everyone else.
  'POST /api/v1/directory/connections/:connectionId/test': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a missing connection',
        axis: 'none',
        build: () => ({ url: `/api/v1/directory/connections/${randomUUID()}/test` }),
        session: only(['owner', 'admin', 'scoped-owner'], 404),
      },
    ],
  },
  'POST /api/v1/directory/connections/:connectionId/sync': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a missing connection',
        axis: 'none',
        build: () => ({ url: `/api/v1/directory/connections/${randomUUID()}/sync` }),
        session: only(['owner', 'admin', 'scoped-owner'], 404),
      },
    ],
  },
  'POST /api/v1/directory/connections': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a missing client',
        axis: 'none',
        build: () => ({
          url: '/api/v1/directory/connections',
          payload: { clientId: randomUUID(), hosts: ['dc.invalid'], allowUntrusted: true, bindDn: 'CN=kw,DC=x', password: 'pw', baseDns: ['DC=x'] },
        }),
        session: only(['owner', 'admin', 'scoped-owner'], 404),
      },
    ],
  },
  'PATCH /api/v1/directory/connections/:connectionId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a missing connection',
        axis: 'none',
        build: () => ({ url: `/api/v1/directory/connections/${randomUUID()}`, payload: { enabled: false } }),
        session: only(['owner', 'admin', 'scoped-owner'], 404),
      },
    ],
  },
  'DELETE /api/v1/directory/connections/:connectionId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a missing connection',
        axis: 'none',
        build: () => ({ url: `/api/v1/directory/connections/${randomUUID()}` }),
        session: only(['owner', 'admin', 'scoped-owner'], 404),
      },
    ],
  },
  'GET /api/v1/directory/connections/:connectionId/runs': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a missing connection',
        axis: 'none',
        build: () => ({ url: `/api/v1/directory/connections/${randomUUID()}/runs` }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 404),
      },
    ],
  },

  // ================================================================ compliance, reports routes
  // Policies: every role with access to a client reads its policy (helpdesk included: it says what
  // "compliant" means); owners change the MSP default; owners and admins (of that client) change a client's.
  'GET /api/v1/compliance/policy': {
    auth: 'authenticated',
    variants: [{ label: 'the MSP default', axis: 'none', build: () => ({ url: '/api/v1/compliance/policy' }), session: all(200) }],
  },
  'PATCH /api/v1/compliance/policy': {
    auth: 'authenticated',
    // A client-limited admin may not change what every other client inherits.
    variants: [
      {
        label: 'the MSP default (a value equal to the built-in)',
        axis: 'none',
        build: () => ({ url: '/api/v1/compliance/policy', payload: { set: { staleAfterDays: 30 } } }),
        session: only(['owner'], 200),
      },
    ],
  },
  'GET /api/v1/clients/:clientId/compliance/policy': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'client', build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/compliance/policy` }), session: { ...all(MINE), owner: OK } }],
  },
  'PATCH /api/v1/clients/:clientId/compliance/policy': {
    auth: 'authenticated',
    variants: [
      {
        label: 'override a field with its built-in value',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/compliance/policy`, payload: { set: { suspendedGraceHours: 24 } } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'GET /api/v1/compliance/exemptions': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/compliance/exemptions' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => (!p.global && clientIdsOf(json).some((id) => id !== fx.own.id) ? "lists another client's exemptions" : undefined),
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/compliance/exemptions?clientId=${c.id}` }),
        session: { ...all(FILTER), owner: OK, helpdesk: DENY },
      },
    ],
  },
  'POST /api/v1/compliance/exemptions': {
    auth: 'authenticated',
    variants: [
      {
        // Another client's device is "not found" for an admin limited to Own, exactly like a missing one.
        label: "exempt the client's device for an hour",
        axis: 'client',
        build: (_x, c) => ({
          url: '/api/v1/compliance/exemptions',
          payload: { deviceId: c.device.id, reason: 'matrix: lab machine', expiresAt: new Date(Date.now() + 3600_000).toISOString() },
        }),
        session: { ...all(DENY), owner: [201, 201], admin: [201, 404], 'scoped-owner': [201, 404] },
      },
    ],
  },
  'DELETE /api/v1/compliance/exemptions/:exemptionId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'end a throwaway exemption',
        axis: 'client',
        build: async ({ fx }, c, target) => {
          if (target === 'missing') return { url: `/api/v1/compliance/exemptions/${randomUUID()}` };
          const e = await fx.t.container.compliance.createExemption(cliOwner, {
            deviceId: c.device.id,
            reason: 'matrix throwaway',
            expiresAt: new Date(Date.now() + 3600_000).toISOString(),
          });
          return { url: `/api/v1/compliance/exemptions/${e.id}` };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'GET /api/v1/compliance/devices': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/compliance/devices' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => (!p.global && clientIdsOf(json).some((id) => id !== fx.own.id) ? "lists another client's devices" : undefined),
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/compliance/devices?clientId=${c.id}` }),
        session: { ...all(FILTER), owner: OK, helpdesk: DENY },
      },
    ],
  },
  'GET /api/v1/compliance/tenant-posture': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/compliance/tenant-posture' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => (!p.global && clientIdsOf(json).some((id) => id !== fx.own.id) ? "lists another client's tenant posture" : undefined),
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/compliance/tenant-posture?clientId=${c.id}` }),
        session: { ...all(FILTER), owner: OK, helpdesk: DENY },
      },
    ],
  },
  'GET /api/v1/devices/:deviceId/compliance': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.device.id}/compliance` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
      },
    ],
  },
  'POST /api/v1/compliance/evaluate': {
    auth: 'authenticated',
    variants: [
      {
        label: 'every client the principal manages',
        axis: 'none',
        build: () => ({ url: '/api/v1/compliance/evaluate', payload: {} }),
        session: only(['owner', 'admin', 'scoped-owner'], 200),
      },
      // A client outside the principal's clients is refused (403) like one that does not exist.
      {
        label: 'one client',
        axis: 'client',
        build: (_x, c) => ({ url: '/api/v1/compliance/evaluate', payload: { clientId: c.id } }),
        session: { ...all(DENY), owner: OK, admin: [200, 403], 'scoped-owner': [200, 403] },
      },
    ],
  },
  // Reports: whoever may see devices reads the compliance, devices, escrow and recovery-boot reports;
  // the recovery audit (who revealed which key) is for audit readers and the client's own staff, not
  // technicians; helpdesk reads none. A client outside the principal's: 403, like a missing one.
  'GET /api/v1/reports/:report': {
    auth: 'authenticated',
    variants: [
      {
        label: 'devices CSV, all visible clients',
        axis: 'none',
        build: () => ({ url: '/api/v1/reports/devices?format=csv' }),
        session: only(['owner', 'admin', 'technician', 'auditor', 'client-viewer', 'scoped-owner'], 200),
        check: ({ p, json, fx }) =>
          !p.global && typeof json === 'string' && json.includes(fx.other.name) ? "another client's devices in the report" : undefined,
      },
      {
        label: 'compliance summary PDF of a client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/reports/compliance-summary?format=pdf&clientId=${c.id}` }),
        session: { ...all(FILTER), owner: OK, helpdesk: DENY },
      },
      {
        label: 'recovery audit CSV of a client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/reports/recovery-audit?format=csv&clientId=${c.id}` }),
        session: { ...all(FILTER), owner: OK, helpdesk: DENY, technician: DENY },
      },
      {
        label: 'escrow coverage CSV of a client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/reports/escrow-coverage?clientId=${c.id}` }),
        session: { ...all(FILTER), owner: OK, helpdesk: DENY },
      },
      {
        label: 'recovery boots CSV of a client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/reports/recovery-boots?clientId=${c.id}` }),
        session: { ...all(FILTER), owner: OK, helpdesk: DENY },
      },
    ],
  },
  // The report catalog: every signed-in principal gets the list of what it may read (helpdesk: none).
  'GET /api/v1/reports': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/reports' }), session: all(200) }],
  },
  'GET /api/v1/settings/branding': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/settings/branding' }), session: only(['owner'], 200), token: { owner: 403 } }],
  },
  'PATCH /api/v1/settings/branding': {
    auth: 'authenticated',
    variants: [
      {
        label: 'the MSP name',
        axis: 'none',
        build: () => ({ url: '/api/v1/settings/branding', payload: { mspName: 'Matrix MSP' } }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
    ],
  },

  // ================================================================ single sign-on (issue 19, OIDC part)
  // Sign-in buttons, start and callback are public (start and callback answer with a redirect, to
  // the console's sign-in page when anything is wrong); provider settings are the owner's (a person
  // with all clients, never a token); SSO-only is managing a user.
  'GET /api/v1/auth/sso/providers': {
    auth: 'public',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/auth/sso/providers' }), session: all(200) }],
  },
  'GET /api/v1/auth/sso/:id/start': {
    auth: 'public',
    variants: [{ label: 'an unknown provider', axis: 'none', build: () => ({ url: `/api/v1/auth/sso/${randomUUID()}/start` }), session: all(302) }],
  },
  'GET /api/v1/auth/sso/callback': {
    auth: 'public',
    variants: [
      { label: 'an unknown state', axis: 'none', build: () => ({ url: `/api/v1/auth/sso/callback?state=${hex(16)}&code=${hex(16)}` }), session: all(302) },
    ],
  },
  'GET /api/v1/auth/sso/step-up': {
    auth: 'authenticated',
    // None of the matrix's sessions was opened through a provider: 400 for people, 403 for tokens (no second factor).
    variants: [{ label: 'a password session', axis: 'none', build: () => ({ url: '/api/v1/auth/sso/step-up' }), session: all(400), token: all(403) }],
  },
  'GET /api/v1/me/sso': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/me/sso' }), session: all(200) }],
  },
  'GET /api/v1/settings/sso/providers': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/settings/sso/providers' }), session: only(['owner'], 200), token: { owner: 403 } }],
  },
  'POST /api/v1/settings/sso/providers': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a new provider',
        axis: 'none',
        build: () => ({
          url: '/api/v1/settings/sso/providers',
          payload: {
            kind: 'oidc',
            name: `Matrix IdP ${hex()}`,
            issuer: 'https://127.0.0.1:9/matrix',
            clientId: 'matrix',
            clientSecret: 'matrix-client-secret',
          },
        }),
        session: only(['owner'], 200),
        token: { owner: 403 },
        check: ({ json }) => (JSON.stringify(json ?? '').includes('matrix-client-secret') ? 'the client secret was echoed' : undefined),
      },
    ],
  },
  'PATCH /api/v1/settings/sso/providers/:id': {
    auth: 'authenticated',
    variants: [
      {
        label: 'rename a provider',
        axis: 'none',
        build: async ({ fx }) => ({ url: `/api/v1/settings/sso/providers/${await matrixProvider(fx)}`, payload: { name: `Renamed ${hex()}` } }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
    ],
  },
  'DELETE /api/v1/settings/sso/providers/:id': {
    auth: 'authenticated',
    variants: [
      {
        label: 'remove a provider',
        axis: 'none',
        build: async ({ fx }) => ({ url: `/api/v1/settings/sso/providers/${await matrixProvider(fx)}` }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
    ],
  },
  'POST /api/v1/settings/sso/providers/:id/test': {
    auth: 'authenticated',
    variants: [
      {
        label: 'an unreachable issuer',
        axis: 'none',
        build: async ({ fx }) => ({ url: `/api/v1/settings/sso/providers/${await matrixProvider(fx)}/test` }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
    ],
  },
  'PUT /api/v1/users/:userId/sso-only': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a user of Own',
        axis: 'none',
        build: ({ fx }) => ({ url: `/api/v1/users/${fx.targetUserId}/sso-only`, payload: { ssoOnly: false } }),
        session: only(['owner', 'scoped-owner'], 200),
        token: { owner: 403, 'scoped-owner': 403 },
      },
      {
        label: 'a global user',
        axis: 'none',
        build: ({ fx }) => ({ url: `/api/v1/users/${fx.globalTargetUserId}/sso-only`, payload: { ssoOnly: false } }),
        session: { ...only(['owner'], 200), 'scoped-owner': 404 },
        token: { owner: 403, 'scoped-owner': 403 },
      },
    ],
  },
  // ================================================================ end of single sign-on (OIDC part)

  // ================================================================ notifications routes
  // Owners and admins manage channels, rules and report schedules (admins only of their clients; MSP-wide
  // ones need all clients); auditors read them and the delivery log; everyone else gets 403.
  'GET /api/v1/notifications/channels': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: ({ fx }) => (notifySecret(fx), { url: '/api/v1/notifications/channels' }),
        session: only(['owner', 'admin', 'auditor', 'scoped-owner'], 200),
        check: notifyListCheck,
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: async ({ fx }, c, target) => (await notifyChannel(fx, c, target), { url: `/api/v1/notifications/channels?clientId=${c.id}` }),
        session: { ...all(DENY), owner: OK, admin: FILTER, auditor: FILTER, 'scoped-owner': FILTER },
        check: notifyListCheck,
      },
    ],
  },
  'POST /api/v1/notifications/channels': {
    auth: 'authenticated',
    variants: [
      {
        label: 'an e-mail channel of the client',
        axis: 'client',
        build: ({ fx }, c) => (notifySecret(fx), { url: '/api/v1/notifications/channels', payload: notifyEmailBody(c.id) }),
        session: { ...all(DENY), owner: [201, 201], admin: [201, 404], 'scoped-owner': [201, 404] },
        check: ({ json }) => {
          const r = json as { channel?: Record<string, unknown> };
          if (!r.channel || hasSecretField(r.channel) || 'signingSecret' in (r as object)) return 'the new channel is returned with a secret';
          return (r.channel.masked as Record<string, string>)?.password === '••••••••' ? undefined : 'the password is not shown masked';
        },
      },
      {
        label: 'an MSP-wide channel',
        axis: 'none',
        build: ({ fx }) => (notifySecret(fx), { url: '/api/v1/notifications/channels', payload: notifyEmailBody(null) }),
        session: only(['owner'], 201),
      },
    ],
  },
  'PATCH /api/v1/notifications/channels/:channelId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'rename a throwaway channel',
        axis: 'client',
        build: async ({ fx }, c, target) => ({
          url: `/api/v1/notifications/channels/${await notifyChannel(fx, c, target)}`,
          payload: { name: 'Matrix renamed' },
        }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'DELETE /api/v1/notifications/channels/:channelId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'remove a throwaway channel',
        axis: 'client',
        build: async ({ fx }, c, target) => ({ url: `/api/v1/notifications/channels/${await notifyChannel(fx, c, target)}` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'POST /api/v1/notifications/channels/:channelId/test': {
    auth: 'authenticated',
    variants: [
      {
        // Nothing listens on the discard port: authorized, the test runs and reports the refusal.
        label: 'send test (refused: ok false)',
        axis: 'client',
        build: async ({ fx }, c, target) => ({ url: `/api/v1/notifications/channels/${await notifyChannel(fx, c, target)}/test` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) =>
          (json as { ok?: boolean; error?: string }).ok === false && (json as { error?: string }).error
            ? undefined
            : `expected ok:false with an error, got ${JSON.stringify(json).slice(0, 160)}`,
      },
    ],
  },
  'GET /api/v1/notifications/rules': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/notifications/rules' }),
        session: only(['owner', 'admin', 'auditor', 'scoped-owner'], 200),
        check: notifyListCheck,
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: async ({ fx }, c, target) => (await notifyRule(fx, c, target), { url: `/api/v1/notifications/rules?clientId=${c.id}` }),
        session: { ...all(DENY), owner: OK, admin: FILTER, auditor: FILTER, 'scoped-owner': FILTER },
        check: notifyListCheck,
      },
    ],
  },
  'POST /api/v1/notifications/rules': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a rule on a channel of the client',
        axis: 'client',
        build: async ({ fx }, c, target) => ({
          url: '/api/v1/notifications/rules',
          payload: {
            clientId: c.id,
            name: `Matrix rule ${hex()}`,
            eventTypes: ['device.noncompliant', 'key.revealed'],
            channelIds: [await notifyChannel(fx, c, target)],
            digest: 'hourly',
          },
        }),
        session: { ...all(DENY), owner: [201, 201], admin: [201, 404], 'scoped-owner': [201, 404] },
      },
    ],
  },
  'PATCH /api/v1/notifications/rules/:ruleId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a throwaway rule to daily',
        axis: 'client',
        build: async ({ fx }, c, target) => ({ url: `/api/v1/notifications/rules/${await notifyRule(fx, c, target)}`, payload: { digest: 'daily' } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'DELETE /api/v1/notifications/rules/:ruleId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'remove a throwaway rule',
        axis: 'client',
        build: async ({ fx }, c, target) => ({ url: `/api/v1/notifications/rules/${await notifyRule(fx, c, target)}` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'GET /api/v1/notifications/deliveries': {
    auth: 'authenticated',
    variants: [
      {
        label: 'the whole log visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/notifications/deliveries' }),
        session: only(['owner', 'admin', 'auditor', 'scoped-owner'], 200),
        check: notifyListCheck,
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: async ({ fx }, c, target) => (await notifyDelivery(fx, c, target), { url: `/api/v1/notifications/deliveries?clientId=${c.id}` }),
        session: { ...all(DENY), owner: OK, admin: FILTER, auditor: FILTER, 'scoped-owner': FILTER },
        check: notifyListCheck,
      },
    ],
  },
  'GET /api/v1/notifications/deliveries/:deliveryId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a refused test delivery with its attempt',
        axis: 'client',
        build: async ({ fx }, c, target) => ({ url: `/api/v1/notifications/deliveries/${await notifyDelivery(fx, c, target)}` }),
        session: { ...all(DENY), owner: OK, admin: MINE, auditor: MINE, 'scoped-owner': MINE },
        check: ({ json }) =>
          (json as { status?: string; attemptLog?: unknown[] }).status === 'failed' && (json as { attemptLog: unknown[] }).attemptLog?.length === 1
            ? undefined
            : `unexpected delivery ${JSON.stringify(json).slice(0, 160)}`,
      },
    ],
  },
  'GET /api/v1/notifications/report-schedules': {
    auth: 'authenticated',
    variants: [
      {
        label: 'all visible',
        axis: 'none',
        build: () => ({ url: '/api/v1/notifications/report-schedules' }),
        session: only(['owner', 'admin', 'auditor', 'scoped-owner'], 200),
        check: notifyListCheck,
      },
      {
        label: 'filtered by client',
        axis: 'client',
        build: async ({ fx }, c, target) => (await notifySchedule(fx, c, target), { url: `/api/v1/notifications/report-schedules?clientId=${c.id}` }),
        session: { ...all(DENY), owner: OK, admin: FILTER, auditor: FILTER, 'scoped-owner': FILTER },
        check: notifyListCheck,
      },
    ],
  },
  'POST /api/v1/notifications/report-schedules': {
    auth: 'authenticated',
    variants: [
      {
        label: "monthly reports through the client's e-mail channel",
        axis: 'client',
        build: async ({ fx }, c, target) => ({
          url: '/api/v1/notifications/report-schedules',
          payload: { clientId: c.id, name: `Matrix monthly ${hex()}`, channelId: await notifyChannel(fx, c, target), recipients: ['ceo@matrix.example'] },
        }),
        session: { ...all(DENY), owner: [201, 201], admin: [201, 404], 'scoped-owner': [201, 404] },
      },
    ],
  },
  'PATCH /api/v1/notifications/report-schedules/:scheduleId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a throwaway schedule to weekly',
        axis: 'client',
        build: async ({ fx }, c, target) => ({
          url: `/api/v1/notifications/report-schedules/${await notifySchedule(fx, c, target)}`,
          payload: { frequency: 'weekly', day: 1 },
        }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'DELETE /api/v1/notifications/report-schedules/:scheduleId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'remove a throwaway schedule',
        axis: 'client',
        build: async ({ fx }, c, target) => ({ url: `/api/v1/notifications/report-schedules/${await notifySchedule(fx, c, target)}` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'POST /api/v1/notifications/report-schedules/:scheduleId/run': {
    auth: 'authenticated',
    variants: [
      {
        // Queued only (the worker renders and sends it): nothing is contacted during the matrix.
        label: 'send a throwaway schedule now',
        axis: 'client',
        build: async ({ fx }, c, target) => ({ url: `/api/v1/notifications/report-schedules/${await notifySchedule(fx, c, target)}/run` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) =>
          (json as { kind?: string; status?: string }).kind === 'report' && (json as { status?: string }).status === 'pending'
            ? undefined
            : 'not a queued report delivery',
      },
    ],
  },

  // ================================================================ lifecycle routes
  // Retire / reinstate / hold change a device, so each request gets a throwaway enrolled device.
  'GET /api/v1/devices/:deviceId/lifecycle': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.device.id}/lifecycle` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
        check: ({ json }) => (typeof (json as { status?: unknown }).status === 'string' ? undefined : 'no lifecycle status'),
      },
    ],
  },
  'POST /api/v1/devices/:deviceId/retire': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a throwaway device',
        axis: 'client',
        build: async ({ fx }, _c, target) => ({ url: `/api/v1/devices/${await lifecycleDevice(fx, target)}/retire`, payload: { reason: 'matrix' } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) => (String((json as { status?: string }).status).startsWith('retired, keys kept until ') ? undefined : 'no "keys kept until" status'),
      },
    ],
  },
  'POST /api/v1/devices/:deviceId/reinstate': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a throwaway retired device',
        axis: 'client',
        build: async ({ fx }, _c, target) => ({ url: `/api/v1/devices/${await lifecycleDevice(fx, target, 'retired')}/reinstate` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'PUT /api/v1/devices/:deviceId/legal-hold': {
    auth: 'authenticated',
    variants: [
      {
        label: 'set a hold (protects: client managers)',
        axis: 'client',
        build: async ({ fx }, _c, target) => ({
          url: `/api/v1/devices/${await lifecycleDevice(fx, target)}/legal-hold`,
          payload: { hold: true, reason: 'matrix litigation' },
        }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
      {
        // Lifting lets destruction resume: owners as people (a fresh second factor), never a token.
        label: 'lift a hold (owners)',
        axis: 'client',
        build: async ({ fx }, _c, target) => ({
          url: `/api/v1/devices/${await lifecycleDevice(fx, target, 'held')}/legal-hold`,
          payload: { hold: false, reason: 'matrix settled' },
        }),
        session: { ...all(DENY), owner: OK, 'scoped-owner': MINE },
        token: { owner: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  'POST /api/v1/devices/:deviceId/destroy-keys': {
    auth: 'authenticated',
    variants: [
      {
        // Owners acting as themselves only: an owner's API token is refused.
        label: 'a throwaway retired device, typed client name',
        axis: 'client',
        build: async ({ fx }, c, target) => ({
          url: `/api/v1/devices/${await lifecycleDevice(fx, target, 'retired')}/destroy-keys`,
          payload: { confirm: c.name },
        }),
        session: { ...all(DENY), owner: OK, 'scoped-owner': MINE },
        token: { owner: DENY, 'scoped-owner': DENY },
        check: isExecuted,
      },
      {
        label: 'the wrong typed name (400 once authorized)',
        axis: 'client',
        build: async ({ fx }, _c, target) => ({
          url: `/api/v1/devices/${await lifecycleDevice(fx, target, 'retired')}/destroy-keys`,
          payload: { confirm: 'not the name' },
        }),
        session: { ...all(DENY), owner: [400, 400], 'scoped-owner': [400, 404] },
        token: { owner: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  'GET /api/v1/devices/:deviceId/key-history': {
    auth: 'authenticated',
    variants: [
      {
        label: "the client's device",
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.device.id}/key-history` }),
        session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, auditor: MINE, 'scoped-owner': MINE },
        check: ({ json }) => {
          const keys = ((json as { volumes?: { keys: unknown[] }[] }).volumes ?? []).flatMap((v) => v.keys);
          return keys.length === 3 ? undefined : `history lists ${keys.length} keys, expected 3`;
        },
      },
    ],
  },
  'GET /api/v1/clients/:clientId/lifecycle': {
    auth: 'authenticated',
    variants: [
      { label: '', axis: 'client', build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/lifecycle` }), session: { ...all(MINE), owner: OK, helpdesk: DENY } },
    ],
  },
  'PATCH /api/v1/clients/:clientId/lifecycle': {
    auth: 'authenticated',
    // Shortening retention brings destruction closer: the power to destroy, as a person.
    variants: [
      {
        label: 'retention (to the default)',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/lifecycle`, payload: { retentionDays: 365 } }),
        session: { ...all(DENY), owner: OK, 'scoped-owner': MINE },
        token: { owner: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  'PUT /api/v1/clients/:clientId/legal-hold': {
    auth: 'authenticated',
    variants: [
      {
        label: 'set a hold on a throwaway client',
        axis: 'client',
        build: async ({ p, fx }, _c, target) => {
          const x = await lifecycleClient(fx, p, target);
          return { url: `/api/v1/clients/${x.id}/legal-hold`, payload: { hold: true, reason: 'matrix inquiry' }, after: x.after };
        },
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
      {
        label: 'lift a hold (owners, never a token)',
        axis: 'client',
        build: async ({ p, fx }, _c, target) => {
          const x = await lifecycleClient(fx, p, target, true);
          return { url: `/api/v1/clients/${x.id}/legal-hold`, payload: { hold: false, reason: 'matrix closed' }, after: x.after };
        },
        session: { ...all(DENY), owner: OK, 'scoped-owner': MINE },
        token: { owner: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  'POST /api/v1/clients/:clientId/retention-run': {
    auth: 'authenticated',
    variants: [
      {
        // Nothing of the seeded clients is past retention: the run executes and destroys nothing.
        label: 'typed client name',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/retention-run`, payload: { confirm: c.name } }),
        session: { ...all(DENY), owner: OK, 'scoped-owner': MINE },
        token: { owner: DENY, 'scoped-owner': DENY },
        check: ({ json }) =>
          (json as { result?: { keys?: number } }).result?.keys === 0 ? undefined : `expected 0 keys destroyed, got ${JSON.stringify(json).slice(0, 200)}`,
      },
    ],
  },
  'POST /api/v1/clients/:clientId/offboard': {
    auth: 'authenticated',
    variants: [
      {
        label: 'crypto-shred a throwaway client, typed name',
        axis: 'client',
        build: async ({ p, fx }, _c, target) => {
          const x = await lifecycleClient(fx, p, target);
          return { url: `/api/v1/clients/${x.id}/offboard`, payload: { confirm: x.name }, after: x.after };
        },
        session: { ...all(DENY), owner: OK, 'scoped-owner': MINE },
        token: { owner: DENY, 'scoped-owner': DENY },
        check: isExecuted,
      },
    ],
  },
  'GET /api/v1/lifecycle/settings': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/lifecycle/settings' }), session: only(['owner'], 200), token: { owner: 403 } }],
  },
  'PATCH /api/v1/lifecycle/settings': {
    auth: 'authenticated',
    // Left off: the rest of the matrix runs without two-owner approval.
    variants: [
      {
        label: 'two-owner approval off',
        axis: 'none',
        build: () => ({ url: '/api/v1/lifecycle/settings', payload: { twoOwnerApproval: false } }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
    ],
  },
  'GET /api/v1/lifecycle/approvals': {
    auth: 'authenticated',
    variants: [
      {
        // Owners approve as people; an owner of one client sees only that client's requests.
        label: "a pending request of Own and one of Other's",
        axis: 'none',
        build: async ({ fx }) => {
          await pendingApproval(fx, 'own');
          await pendingApproval(fx, 'other');
          return { url: '/api/v1/lifecycle/approvals?status=pending' };
        },
        session: only(['owner', 'scoped-owner'], 200),
        token: { owner: 403, 'scoped-owner': 403 },
        check: ({ p, json, fx }) => {
          const ids = asArray(json).map((a) => (a.client as { id: string } | null)?.id ?? null);
          if (!ids.includes(fx.own.id)) return "the list lacks Own's request";
          if (p.global) return ids.includes(fx.other.id) ? undefined : "the global owner does not see Other's request";
          return ids.every((id) => id === fx.own.id) ? undefined : 'a client-limited owner sees requests of another client (or vault-wide ones)';
        },
      },
    ],
  },
  'POST /api/v1/lifecycle/approvals/:approvalId/approve': {
    auth: 'authenticated',
    variants: [
      {
        label: "another owner's pending request, typed client name",
        axis: 'client',
        build: async ({ fx }, _c, target) => {
          const a = await pendingApproval(fx, target);
          return { url: `/api/v1/lifecycle/approvals/${a.id}/approve`, payload: { confirm: a.confirm } };
        },
        session: { ...all(DENY), owner: OK, 'scoped-owner': MINE },
        token: { owner: DENY, 'scoped-owner': DENY },
        check: isExecuted,
      },
    ],
  },
  'POST /api/v1/lifecycle/approvals/:approvalId/cancel': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a pending request',
        axis: 'client',
        build: async ({ fx }, _c, target) => ({ url: `/api/v1/lifecycle/approvals/${(await pendingApproval(fx, target)).id}/cancel` }),
        session: { ...all(DENY), owner: OK, 'scoped-owner': MINE },
        token: { owner: DENY, 'scoped-owner': DENY },
      },
    ],
  },

  // ================================================================ two-person reveal (issue 19, reveal approval): policy, tags, requests
  'GET /api/v1/clients/:clientId/reveal-policy': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'client', build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/reveal-policy` }), session: { ...all(MINE), owner: OK } }],
  },
  'PUT /api/v1/clients/:clientId/reveal-policy': {
    auth: 'authenticated',
    variants: [
      {
        // The matrix's own tagged policy, set again: nothing else changes.
        label: 'the same tagged policy again (step-up; never a token)',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/reveal-policy`, payload: { ...approvalPolicy, tags: [...approvalPolicy.tags] } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        token: { owner: DENY, admin: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  // ================================================================ findings → PSA tickets (issue 21)
  'GET /api/v1/clients/:clientId/psa/ticket-rules': {
    auth: 'authenticated',
    variants: [
      {
        label: 'integration:manage for the client',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/psa/ticket-rules` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'PUT /api/v1/clients/:clientId/psa/ticket-rules': {
    auth: 'authenticated',
    variants: [
      {
        // Rules switched off: nothing is ever sent to a PSA (the matrix vault has none anyway).
        label: 'rules switched off (integration:manage)',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/psa/ticket-rules`, payload: { enabled: false, codes: ['rotation_failed'] } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'GET /api/v1/clients/:clientId/psa/finding-tickets': {
    auth: 'authenticated',
    variants: [
      {
        label: 'client:read',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/psa/finding-tickets` }),
        session: { ...all(MINE), owner: OK },
      },
    ],
  },
  'POST /api/v1/clients/:clientId/psa/finding-tickets/run': {
    auth: 'authenticated',
    variants: [
      {
        // No PSA connection in the matrix vault: an authorized run answers what it skipped.
        label: 'run now (integration:manage)',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/psa/finding-tickets/run` }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        check: ({ json }) => ((json as { status?: string }).status === 'skipped' ? undefined : `not skipped: ${JSON.stringify(json).slice(0, 160)}`),
      },
    ],
  },
  'GET /api/v1/clients/:clientId/device-tags': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/device-tags` }),
        // helpdesk sees the client but not its devices.
        session: { ...all(MINE), owner: OK, helpdesk: [403, 404] },
      },
    ],
  },
  'GET /api/v1/devices/:deviceId/tags': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.device.id}/tags` }),
        session: { ...all(MINE), owner: OK, helpdesk: DENY },
      },
    ],
  },
  'PUT /api/v1/devices/:deviceId/tags': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a tag no policy names',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/devices/${c.device.id}/tags`, payload: { tags: ['matrix'] } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'GET /api/v1/keys/:keyRecordId/approval': {
    auth: 'authenticated',
    variants: [
      {
        label: '',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/keys/${c.solo.recordId}/approval` }),
        session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, helpdesk: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  'GET /api/v1/reveal-requests': {
    auth: 'authenticated',
    variants: [
      {
        label: "a pending request of Own and one of Other's",
        axis: 'none',
        build: async ({ fx }) => {
          await revealRequest(fx, 'own');
          await revealRequest(fx, 'other');
          return { url: '/api/v1/reveal-requests?status=pending' };
        },
        session: only(['owner', 'admin', 'technician', 'helpdesk', 'scoped-owner'], 200),
        check: ({ p, json, fx }) => {
          const ids = asArray(json).map((a) => (a.client as { id: string }).id);
          if (!ids.includes(fx.own.id)) return "the list lacks Own's request";
          if (p.global) return ids.includes(fx.other.id) ? undefined : "the global owner does not see Other's request";
          return ids.every((id) => id === fx.own.id) ? undefined : 'a client-limited principal sees requests of another client';
        },
      },
    ],
  },
  'POST /api/v1/reveal-requests': {
    auth: 'authenticated',
    variants: [
      {
        label: 'a key of a device the tagged policy names',
        axis: 'client',
        build: async ({ fx }, _c, target) => ({
          url: '/api/v1/reveal-requests',
          payload: { keyRecordId: await approvalKey(fx, target), reason: 'lost-pin', ticket: 'MATRIX-2' },
        }),
        session: { ...all(DENY), owner: [201, 201], admin: [201, 404], technician: [201, 404], helpdesk: [201, 404], 'scoped-owner': [201, 404] },
        check: requestStatus('pending'),
      },
    ],
  },
  'GET /api/v1/reveal-requests/:requestId': {
    auth: 'authenticated',
    variants: [
      {
        label: "another person's pending request",
        axis: 'client',
        build: async ({ fx }, _c, target) => ({ url: `/api/v1/reveal-requests/${await revealRequest(fx, target)}` }),
        session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, helpdesk: MINE, 'scoped-owner': MINE },
        check: requestStatus('pending'),
      },
    ],
  },
  'POST /api/v1/reveal-requests/:requestId/approve': {
    auth: 'authenticated',
    variants: [
      {
        // A second person who may reveal in the client; never an API token.
        label: "another person's pending request",
        axis: 'client',
        build: async ({ fx }, _c, target) => ({ url: `/api/v1/reveal-requests/${await revealRequest(fx, target)}/approve`, payload: {} }),
        session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, helpdesk: MINE, 'scoped-owner': MINE },
        token: all(DENY),
        check: requestStatus('approved'),
      },
      {
        label: 'their own request (also through their token): never',
        axis: 'client',
        build: async ({ fx, p }, _c, target) => ({ url: `/api/v1/reveal-requests/${await revealRequest(fx, target, p)}/approve`, payload: {} }),
        session: { ...all(DENY), admin: [403, 404], technician: [403, 404], helpdesk: [403, 404], 'scoped-owner': [403, 404] },
        token: all(DENY),
      },
    ],
  },
  'POST /api/v1/reveal-requests/:requestId/deny': {
    auth: 'authenticated',
    variants: [
      {
        label: "another person's pending request",
        axis: 'client',
        build: async ({ fx }, _c, target) => ({ url: `/api/v1/reveal-requests/${await revealRequest(fx, target)}/deny`, payload: { note: 'matrix' } }),
        session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, helpdesk: MINE, 'scoped-owner': MINE },
        token: all(DENY),
        check: requestStatus('denied'),
      },
    ],
  },
  'POST /api/v1/reveal-requests/:requestId/cancel': {
    auth: 'authenticated',
    variants: [
      {
        label: 'their own pending request',
        axis: 'client',
        build: async ({ fx, p }, _c, target) => ({ url: `/api/v1/reveal-requests/${await revealRequest(fx, target, p)}/cancel` }),
        session: { ...all(DENY), owner: OK, admin: MINE, technician: MINE, helpdesk: MINE, 'scoped-owner': MINE },
        check: requestStatus('cancelled'),
      },
      {
        label: "another person's request: only the requester cancels",
        axis: 'client',
        build: async ({ fx }, _c, target) => ({ url: `/api/v1/reveal-requests/${await revealRequest(fx, target)}/cancel` }),
        session: { ...all(DENY), admin: [403, 404], technician: [403, 404], helpdesk: [403, 404], 'scoped-owner': [403, 404] },
      },
    ],
  },
  // ================================================================ end of two-person reveal

  // ================================================================ export, backup routes
  'POST /api/v1/clients/:clientId/export': {
    auth: 'authenticated',
    variants: [
      {
        // A bulk export of a client's working keys: owner only, and only with a fresh second factor
        // (step-up), never an API token. No seeded principal has an authenticator app, so even the
        // owner's session is refused here (403, before the client is looked up); the stepped-up
        // owner's 200 (and 404 for a missing client) is in test/export-http.test.ts.
        label: 'to a recipient public key',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/export`, payload: { recipient: 'age16jwvm8gmrvzq3ffqmechr7trn30saq65tasrtkvdku4dtcf8vctszxkej5' } }),
        session: all(DENY),
      },
    ],
  },

  // ================================================================ scale, metrics routes
  // /metrics has its own secret (KEYWARDEN_METRICS_TOKEN) instead of users' sessions and tokens. This app
  // has none configured, so /metrics is off: 404 to everyone, whatever they send. With a token configured,
  // only that token opens it (401 for no token, a wrong one, a user session or an API token):
  // test/scale-out.test.ts checks that on real processes.
  'GET /metrics': {
    auth: 'public',
    variants: [{ label: 'not enabled without KEYWARDEN_METRICS_TOKEN', axis: 'none', build: () => ({ url: '/metrics' }), session: all(404) }],
  },

  // ================================================================ self-service recovery for end users (issue 20)
  // The end user's routes take only the end user's own session cookie: every console session and API token gets 401.
  'GET /api/v1/recover/start': {
    auth: 'public',
    // No self-service app set up in the matrix's vault: back to the self-service page with a reason word.
    variants: [{ label: 'not set up', axis: 'none', build: () => ({ url: '/api/v1/recover/start' }), session: all(302) }],
  },
  'GET /api/v1/recover/callback': {
    auth: 'public',
    variants: [
      { label: 'an unknown state', axis: 'none', build: () => ({ url: `/api/v1/recover/callback?state=${hex(16)}&code=${hex(16)}` }), session: all(302) },
    ],
  },
  'GET /api/v1/recover/me': {
    auth: 'self-service',
    variants: [{ label: 'a console session or token', axis: 'none', build: () => ({ url: '/api/v1/recover/me' }), session: all(401) }],
  },
  'POST /api/v1/recover/reveal': {
    auth: 'self-service',
    variants: [
      {
        label: 'a console session or token',
        axis: 'none',
        build: ({ fx }) => ({ url: '/api/v1/recover/reveal', payload: { keyId: fx.own.solo.keyId.slice(0, 8), reason: 'matrix' } }),
        session: all(401),
      },
    ],
  },
  'POST /api/v1/recover/sign-out': {
    auth: 'self-service',
    variants: [{ label: 'a console session or token', axis: 'none', build: () => ({ url: '/api/v1/recover/sign-out', payload: {} }), session: all(401) }],
  },
  'GET /api/v1/settings/self-service': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/settings/self-service' }), session: only(['owner'], 200), token: { owner: 403 } }],
  },
  'GET /api/v1/settings/self-service/clients': {
    auth: 'authenticated',
    variants: [
      { label: '', axis: 'none', build: () => ({ url: '/api/v1/settings/self-service/clients' }), session: only(['owner'], 200), token: { owner: 403 } },
    ],
  },
  'PUT /api/v1/settings/self-service': {
    auth: 'authenticated',
    variants: [
      {
        label: 'the sign-in app, switched off (step-up; never a token)',
        axis: 'none',
        build: () => ({
          url: '/api/v1/settings/self-service',
          payload: { issuer: 'http://127.0.0.1:9/matrix', clientId: 'matrix', clientSecret: 'matrix-self-service-secret', enabled: false },
        }),
        session: only(['owner'], 200),
        token: { owner: 403 },
        check: ({ json }) => (JSON.stringify(json ?? '').includes('matrix-self-service-secret') ? 'the client secret was echoed' : undefined),
      },
    ],
  },
  'GET /api/v1/clients/:id/self-service': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'client', build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/self-service` }), session: { ...all(MINE), owner: OK } }],
  },
  'PUT /api/v1/clients/:id/self-service': {
    auth: 'authenticated',
    variants: [
      {
        // Off, as it is by default: nothing changes.
        label: 'switched off',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/self-service`, payload: { enabled: false } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
      },
    ],
  },
  // ================================================================ PSA connection (issue 21); the matrix's vault has none
  'GET /api/v1/settings/psa': {
    auth: 'authenticated',
    variants: [{ label: 'none set', axis: 'none', build: () => ({ url: '/api/v1/settings/psa' }), session: only(['owner'], 200) }],
  },
  'PUT /api/v1/settings/psa': {
    auth: 'authenticated',
    variants: [
      {
        // Refused by the service after the permission check: nothing is stored.
        label: 'an address Keywarden refuses (owners; step-up; never a token)',
        axis: 'none',
        build: () => ({
          url: '/api/v1/settings/psa',
          payload: { kind: 'halopsa', url: 'ftp://psa.example.test', clientId: 'matrix', clientSecret: 'matrix-psa-secret' },
        }),
        session: only(['owner'], 400),
        token: { owner: 403 },
        check: ({ json }) => (JSON.stringify(json ?? '').includes('matrix-psa-secret') ? 'the PSA secret was echoed' : undefined),
      },
    ],
  },
  'POST /api/v1/settings/psa/test': {
    auth: 'authenticated',
    variants: [{ label: 'none set', axis: 'none', build: () => ({ url: '/api/v1/settings/psa/test' }), session: only(['owner'], 404) }],
  },
  'DELETE /api/v1/settings/psa': {
    auth: 'authenticated',
    variants: [
      {
        label: 'none set (owners; step-up; never a token)',
        axis: 'none',
        build: () => ({ url: '/api/v1/settings/psa' }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
    ],
  },
  'GET /api/v1/psa/companies': {
    auth: 'authenticated',
    variants: [{ label: 'no PSA connected', axis: 'none', build: () => ({ url: '/api/v1/psa/companies' }), session: only(['owner'], 400) }],
  },
  'GET /api/v1/clients/:clientId/psa': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'client', build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/psa` }), session: { ...all(MINE), owner: OK } }],
  },
  'PUT /api/v1/clients/:clientId/psa': {
    auth: 'authenticated',
    variants: [
      {
        label: 'ticket policy off, as by default (step-up; never a token)',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/psa`, payload: { ticketPolicy: 'off' } }),
        session: { ...all(DENY), owner: OK, admin: MINE, 'scoped-owner': MINE },
        token: { owner: DENY, admin: DENY, 'scoped-owner': DENY },
      },
      {
        // Choosing a company takes the PSA's company list (every customer): principals limited to some
        // clients are refused before anything is looked up; all clients get 400 here (no PSA connected).
        label: 'link a company (all clients only)',
        axis: 'client',
        build: (_x, c) => ({ url: `/api/v1/clients/${c.id}/psa`, payload: { companyId: '17' } }),
        session: { ...all(DENY), owner: [400, 400], admin: [403, 404], 'scoped-owner': [403, 404] },
        token: { owner: DENY, admin: DENY, 'scoped-owner': DENY },
      },
    ],
  },
  'GET /api/v1/psa/members': {
    auth: 'authenticated',
    variants: [{ label: '', axis: 'none', build: () => ({ url: '/api/v1/psa/members' }), session: only(['owner'], 200), token: { owner: 403 } }],
  },
  'PUT /api/v1/psa/members/:userId': {
    auth: 'authenticated',
    variants: [
      {
        label: 'unlinked, as it is (owners of all clients; step-up; never a token)',
        axis: 'none',
        build: ({ fx }) => ({ url: `/api/v1/psa/members/${fx.globalTargetUserId}`, payload: { member: null } }),
        session: only(['owner'], 200),
        token: { owner: 403 },
      },
    ],
  },
};

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const splitKey = (key: string) => {
  const i = key.indexOf(' ');
  return { method: key.slice(0, i) as NonNullable<InjectOptions['method']>, url: key.slice(i + 1) };
};

// ------------------------------------------------------------------------------------ the test

describe(`HTTP authorization matrix on ${ENGINE}`, () => {
  let t: TestApp;
  let fx: Fx;
  const principals: Principal[] = [];
  let requests = 0;

  async function seedClient(name: string, tag: string): Promise<Omit<ClientFx, 'agentDevice' | 'enrollmentTokenId' | 'connectionId'>> {
    const { id } = await t.container.clients.create(cliOwner, { name });
    const twinPrefix = hex();
    const solo = { keyId: randomKeyId(), password: randomRecoveryPassword() };
    const twins = [0, 1].map(() => ({ keyId: twinPrefix + randomKeyId().slice(8), password: randomRecoveryPassword() }));
    const deviceName = `${tag}-LAPTOP-${hex(2).toUpperCase()}`;
    const rows = [solo, ...twins].map((k, i) => ({ device: deviceName, keyId: k.keyId, password: k.password, drive: ['C:', 'D:', 'E:'][i] }));
    const r = await t.container.imports.importFile(cliOwner, name, { fileName: `${tag}.csv`, bytes: bytes(csvOf(rows)) });
    expect(r.imported).toBe(3);
    const [device] = await t.container.devices.list(cliOwner, { clientId: id });
    const keys = await t.container.keys.list(cliOwner, { clientId: id });
    const rec = (keyId: string): KeyFx => {
      const k = keys.find((x) => x.keyId === keyId);
      if (!k) throw new Error(`seeded key ${keyId} not found`);
      return { recordId: k.id, keyId, password: rows.find((x) => x.keyId === keyId)!.password };
    };
    return { id, name, device: { id: device!.id, name: device!.name }, solo: rec(solo.keyId), twins: [rec(twins[0]!.keyId), rec(twins[1]!.keyId)], twinPrefix };
  }

  beforeAll(async () => {
    t = await createTestApp({
      KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '10000',
      KEYWARDEN_LOGIN_MAX_FAILURES: '100',
      KEYWARDEN_LOGIN_MAX_FAILURES_PER_IP: '10000',
    });
    const ownSeed = await seedClient('Contoso', 'CON');
    const otherSeed = await seedClient('Fabrikam', 'FAB');
    const passwords = [ownSeed.solo, ...ownSeed.twins, otherSeed.solo, ...otherSeed.twins].map((k) => k.password);
    const secrets: string[] = [];
    const own = ownSeed;

    const users = {} as Fx['users'];
    let ownerSession: Record<string, string> = {};
    for (const role of MATRIX_ROLES) {
      const clients = role === 'owner' ? ('all' as const) : [own.id];
      const u = await t.addUser(role, clients, `matrix-${role}@example.test`);
      const user: SeedUser = { id: u.id, email: u.email, role, clients };
      users[role] = user;
      const s = await t.signIn(u.email);
      if (role === 'owner') ownerSession = s.headers;
      principals.push({ name: `${role} session`, col: role, role, kind: 'session', global: role === 'owner', headers: s.headers, user });
    }
    // The owner of the Own client only.
    {
      const u = await t.addUser('owner', [own.id], 'matrix-scoped-owner@example.test');
      const user: SeedUser = { id: u.id, email: u.email, role: 'owner', clients: [own.id] };
      users['scoped-owner'] = user;
      const s = await t.signIn(u.email);
      principals.push({
        name: 'scoped-owner session',
        col: 'scoped-owner',
        role: 'owner',
        kind: 'session',
        global: false,
        headers: s.headers,
        user,
        mePermissions: SCOPED_OWNER_PERMISSIONS,
      });
    }
    const mintToken = async (headers: Record<string, string>, name: string, role: Role, clients: 'all' | string[]) => {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers, payload: { name, role, clients } });
      if (res.statusCode !== 201) throw new Error(`token ${name}: ${res.statusCode} ${res.body}`);
      const body = res.json() as { token: string; apiToken: { id: string } };
      secrets.push(body.token);
      return { headers: { authorization: `Bearer ${body.token}` }, id: body.apiToken.id };
    };
    const ownerTokenIds: string[] = [];
    for (const role of MATRIX_ROLES) {
      const tok = await mintToken(ownerSession, `matrix ${role}`, role, role === 'owner' ? 'all' : [own.id]);
      ownerTokenIds.push(tok.id);
      principals.push({
        name: `${role} token`,
        col: role,
        role,
        kind: 'token',
        global: role === 'owner',
        headers: tok.headers,
        user: users.owner,
        tokenId: tok.id,
      });
    }
    {
      const tok = await mintToken(ownerSession, 'matrix scoped owner', 'owner', [own.id]);
      ownerTokenIds.push(tok.id);
      principals.push({
        name: 'scoped-owner token',
        col: 'scoped-owner',
        role: 'owner',
        kind: 'token',
        global: false,
        headers: tok.headers,
        user: users.owner,
        tokenId: tok.id,
        mePermissions: SCOPED_OWNER_TOKEN_PERMISSIONS,
      });
    }
    // Tokens whose creator changed after making them: each must answer exactly like a token of what
    // both it and its creator hold now.
    {
      // A technician token for all clients, made by an admin of all clients who is then limited to Own:
      // a technician token of Own.
      const a = await t.addUser('admin', 'all', 'matrix-narrowed-admin@example.test');
      const tok = await mintToken((await t.signIn(a.email)).headers, 'matrix narrowed creator', 'technician', 'all');
      const narrowed = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${a.id}`, headers: ownerSession, payload: { clients: [own.id] } });
      if (narrowed.statusCode !== 200) throw new Error(`narrowing the token's creator: ${narrowed.statusCode} ${narrowed.body}`);
      principals.push({
        name: 'technician token (all clients) of an admin later limited to Own',
        col: 'technician',
        role: 'technician',
        kind: 'token',
        global: false,
        headers: tok.headers,
        user: users.owner,
        tokenId: tok.id,
        creator: { id: a.id, email: a.email, role: 'admin', clients: [own.id] },
        tokenAll: true,
        mePermissions: ['client:read', 'device:read', 'key:list', 'key:lookup', 'key:reveal'],
      });
    }
    {
      // A technician token of Own, made by an admin of Own who is then demoted to helpdesk: what both
      // hold is helpdesk's (find and reveal one key, never list).
      const a = await t.addUser('admin', [own.id], 'matrix-demoted-admin@example.test');
      const tok = await mintToken((await t.signIn(a.email)).headers, 'matrix demoted creator', 'technician', [own.id]);
      const demoted = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${a.id}`, headers: ownerSession, payload: { role: 'helpdesk' } });
      if (demoted.statusCode !== 200) throw new Error(`demoting the token's creator: ${demoted.statusCode} ${demoted.body}`);
      principals.push({
        name: 'technician token of an admin of Own later demoted to helpdesk',
        col: 'helpdesk',
        role: 'helpdesk',
        meRole: 'technician',
        kind: 'token',
        global: false,
        headers: tok.headers,
        user: users.owner,
        tokenId: tok.id,
        creator: { id: a.id, email: a.email, role: 'helpdesk', clients: [own.id] },
        mePermissions: ['client:read', 'key:lookup', 'key:reveal'],
      });
    }

    // Agents: an unlimited enrollment token per client (made by the owner over HTTP), and one
    // enrolled test device per client that has checked in once (so each client has a finding).
    const enrollmentToken = async (clientId: string) => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/agent/enrollment-tokens',
        headers: ownerSession,
        payload: { clientId, expiresInDays: 7, maxUses: null },
      });
      if (res.statusCode !== 201) throw new Error(`enrollment token: ${res.statusCode} ${res.body}`);
      const body = res.json() as { token: string; enrollmentToken: { id: string } };
      secrets.push(body.token);
      return { token: body.token, id: body.enrollmentToken.id };
    };
    const ownEnroll = await enrollmentToken(ownSeed.id);
    const otherEnroll = await enrollmentToken(otherSeed.id);
    const agentOf = async (token: string, tag: string) => {
      const a = await enrollMachine(t.app, token, `${tag}-AGENT-${hex(2).toUpperCase()}`);
      secrets.push(a.credential!);
      passwords.push(...a.machine.volumes.flatMap((v) => v.protectors.flatMap((p) => (p.password ? [p.password] : []))));
      const r = await a.post('/api/v1/agent/checkin', a.checkinBody());
      if (r.status !== 200) throw new Error(`first check-in of ${tag}: ${r.status} ${JSON.stringify(r.json)}`);
      return a;
    };
    const agents = { own: await agentOf(ownEnroll.token, 'CON'), other: await agentOf(otherEnroll.token, 'FAB') };
    // An Entra ID connection per client, each with one (failed) sync run, so the run lists show something.
    secrets.push(GRAPH_SECRET);
    const connect = async (clientId: string) => {
      const conn = await t.container.graph.createConnection(cliOwner, graphBody(clientId));
      const run = await t.container.graph.syncNow(cliOwner, conn.id);
      if (run.status !== 'failed') throw new Error(`seed sync against ${GRAPH_URL}: ${run.status}`);
      return conn.id;
    };
    const connections = { own: await connect(ownSeed.id), other: await connect(otherSeed.id) };
    const ownFx: ClientFx = {
      ...ownSeed,
      agentDevice: { id: agents.own.deviceId!, name: agents.own.machine.hostname },
      enrollmentTokenId: ownEnroll.id,
      connectionId: connections.own,
    };
    const otherFx: ClientFx = {
      ...otherSeed,
      agentDevice: { id: agents.other.deviceId!, name: agents.other.machine.hostname },
      enrollmentTokenId: otherEnroll.id,
      connectionId: connections.other,
    };
    principals.push({
      name: 'agent (Own device credential)',
      col: 'client-viewer',
      role: 'client-viewer',
      kind: 'agent',
      global: false,
      headers: bearer(agents.own.credential!),
    });

    const deadEnrollment = async (maxUses: number | null) => {
      const r = await t.container.agent.createEnrollmentToken(cliOwner, { clientId: own.id, expiresInDays: 7, maxUses });
      secrets.push(r.token);
      return r;
    };
    const revoked = await deadEnrollment(null);
    await t.container.agent.revokeEnrollmentToken(cliOwner, revoked.view.id);
    const expired = await deadEnrollment(null);
    await t.container.database.db.updateTable('enrollment_tokens').set({ expires_at: '2001-01-01T00:00:00.000Z' }).where('id', '=', expired.view.id).execute();
    const usedUp = await deadEnrollment(1);
    secrets.push((await enrollMachine(t.app, usedUp.token)).credential!);
    const otherJob = await t.container.agent.queueJobFor(cliOwner, otherFx.agentDevice.id, { kind: 'rotate', mountPoint: 'C:' });

    const target = await t.addUser('technician', [own.id], 'matrix-target@example.test');
    const globalTarget = await t.addUser('technician', 'all', 'matrix-global-target@example.test');
    fx = {
      t,
      own: ownFx,
      other: otherFx,
      users,
      ownerSession,
      targetUserId: target.id,
      globalTargetUserId: globalTarget.id,
      ownerTokenIds,
      passwords,
      secrets,
      agents,
      enroll: { own: ownEnroll.token, other: otherEnroll.token },
      deadEnroll: { revoked: revoked.token, expired: expired.token, usedUp: usedUp.token },
      otherJobId: otherJob.id,
    };
  });

  afterAll(async () => {
    if (requests) console.info(`authorization matrix on ${ENGINE}: ${requests} requests checked`);
    await t?.close();
  });

  /** Strings that would show a client-limited principal something of the other client. */
  const otherClientTraces = () => [
    fx.other.name,
    fx.other.id,
    fx.other.device.id,
    fx.other.device.name,
    fx.other.agentDevice.id,
    fx.other.agentDevice.name,
    fx.other.enrollmentTokenId,
    fx.other.connectionId,
    fx.otherJobId,
    ...[fx.other.solo, ...fx.other.twins].flatMap((k) => [k.recordId, k.keyId]),
  ];

  /** Everything wrong with one response body: passwords it must not carry, other-client traces. */
  function bodyProblems(p: Principal | null, requestText: string, body: string, allowedPassword: string | undefined): string[] {
    const problems: string[] = [];
    for (const pw of fx.passwords) {
      if (pw === allowedPassword) continue;
      if (body.includes(pw) || body.includes(pw.replace(/-/g, ''))) problems.push(`body contains a recovery password it must not (${pw.slice(0, 6)}…)`);
    }
    for (const secret of fx.secrets) if (body.includes(secret)) problems.push(`body contains a credential (${secret.slice(0, 8)}…)`);
    if (p && !p.global) {
      const lower = body.toLowerCase();
      const asked = requestText.toLowerCase();
      for (const s of otherClientTraces()) {
        const x = s.toLowerCase();
        if (!asked.includes(x) && lower.includes(x)) problems.push(`body shows the other client's "${s}"`);
      }
    }
    return problems;
  }

  async function send(method: NonNullable<InjectOptions['method']>, req: Req, auth: Record<string, string>): Promise<LightMyRequestResponse> {
    requests++;
    const opts: InjectOptions = { method, url: req.url, headers: { ...auth, ...req.headers } };
    if (req.payload !== undefined) opts.payload = req.payload;
    return t.app.inject(opts);
  }

  /** The auth headers for one request of a live principal, after resolving `as`. */
  async function authFor(p: Principal, req: Req): Promise<Record<string, string>> {
    if (p.kind !== 'session' || !req.as) return p.headers;
    const user = p.user!;
    if (req.as === 'fresh-session') return (await t.signIn(user.email)).headers;
    const u = await t.addUser(p.role, user.clients === 'all' ? 'all' : [...user.clients]);
    return (await t.signIn(u.email)).headers;
  }

  const expectedFor = (entry: Entry, v: Variant, p: Principal, target: Target | 'any'): number => {
    const pick = (x: number | Pair) => (typeof x === 'number' ? x : target === 'own' ? x[0] : x[1]);
    // A device credential opens the agent routes only: public routes answer it like anyone, everything else is 401.
    if (p.kind === 'agent') return pick(v.agent ?? (entry.auth === 'public' ? v.session.owner : 401));
    return pick((p.kind === 'token' ? v.token?.[p.col] : undefined) ?? v.session[p.col]);
  };

  const requestText = (req: Req) => `${req.url} ${typeof req.payload === 'string' ? req.payload : JSON.stringify(req.payload ?? '')}`;
  const parse = (res: LightMyRequestResponse): unknown => {
    try {
      return res.json();
    } catch {
      return res.body;
    }
  };

  it('covers every registered route with the auth mode it is registered with, and nothing else', () => {
    const registered = new Map(t.app.routeTable.map((r) => [`${r.method} ${r.url}`, r.auth]));
    const problems: string[] = [];
    for (const [key, auth] of registered) {
      if (!MATRIX[key]) problems.push(`route ${key} has no entry in the authorization matrix`);
      else if (MATRIX[key]!.auth !== auth) problems.push(`route ${key} is registered as "${auth}" but the matrix says "${MATRIX[key]!.auth}"`);
    }
    for (const key of Object.keys(MATRIX)) if (!registered.has(key)) problems.push(`matrix entry ${key} is not a registered route`);
    // Agent routes take a device credential only: every role, as session and as token, is 401 there;
    // and only an agent route may expect anything but 401 of the device credential.
    for (const [key, entry] of Object.entries(MATRIX)) {
      for (const v of entry.variants) {
        if (entry.auth === 'agent') {
          const roleAnswers = [...Object.values(v.session), ...Object.values(v.token ?? {})].flat();
          if (roleAnswers.some((s) => s !== 401)) problems.push(`agent route ${key} [${v.label}] expects a user session or API token to get past 401`);
          if (v.agent === undefined) problems.push(`agent route ${key} [${v.label}] has no expectation for the device credential`);
        } else if (v.agent !== undefined) problems.push(`${key} [${v.label}] is not an agent route but expects something of the device credential`);
      }
    }
    expect([...ROLES].sort(), 'every role has a column in the matrix').toEqual([...MATRIX_ROLES].sort());
    expect(problems).toEqual([]);
  });

  for (const [key, entry] of Object.entries(MATRIX)) {
    it(`${key}: every role, as session and token, on its own and another client`, async () => {
      const { method } = splitKey(key);
      const failures: string[] = [];
      for (const v of entry.variants) {
        for (const p of principals) {
          const targets: (Target | 'any')[] = v.axis === 'none' ? ['any'] : p.global ? ['own', 'other'] : ['own', 'other', 'missing'];
          for (const target of targets) {
            const client = target === 'own' ? fx.own : target === 'other' ? fx.other : missingClient();
            const req = v.axis === 'none' ? await v.build({ p, fx }) : await v.build({ p, fx }, client, target as Target);
            const where = `${v.label ? `[${v.label}] ` : ''}${p.name}${target === 'any' ? '' : `, ${target} client`}`;
            try {
              const res = await send(method, req, await authFor(p, req));
              const want = expectedFor(entry, v, p, target);
              if (res.statusCode !== want) failures.push(`${where}: expected ${want}, got ${res.statusCode} ${res.body.slice(0, 160)}`);
              const allowed = want === 200 && res.statusCode === 200 ? req.reveals : undefined;
              for (const problem of bodyProblems(p, requestText(req), res.body, allowed)) failures.push(`${where}: ${problem}`);
              if (v.check && res.statusCode === want && want < 300) {
                const problem = v.check({ p, target, json: parse(res), fx });
                if (problem) failures.push(`${where}: ${problem}`);
              }
            } finally {
              await req.after?.();
            }
          }
        }
      }
      expect(failures).toEqual([]);
    });
  }

  // ---------------------------------------------------------------- dead credentials
  type Dead = { name: string; headers: () => Promise<Record<string, string>> };
  const past = '2001-01-01T00:00:00.000Z';
  const ownerTokenHeaders = async (): Promise<{ id: string; headers: Record<string, string> }> => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: fx.ownerSession,
      payload: { name: `matrix dead ${hex()}`, role: 'owner', clients: 'all' },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json() as { token: string; apiToken: { id: string } };
    return { id: body.apiToken.id, headers: { authorization: `Bearer ${body.token}` } };
  };
  /** Dead credentials all belong to global owners: if one still worked, it would work for everything. */
  const freshOwnerSession = async () => t.signIn((await t.addUser('owner', 'all')).email);
  const DEAD: Dead[] = [
    { name: 'no credentials', headers: async () => ({}) },
    { name: 'an unknown session cookie', headers: async () => ({ cookie: `kw_session=${randomBytes(32).toString('base64url')}`, 'x-csrf-token': hex(16) }) },
    {
      name: 'an expired session',
      headers: async () => {
        const s = await freshOwnerSession();
        await t.container.database.db.updateTable('sessions').set({ expires_at: past }).where('token_hash', '=', sha256Hex(s.cookie)).execute();
        return s.headers;
      },
    },
    {
      name: 'an idle session',
      headers: async () => {
        const s = await freshOwnerSession();
        const idle = new Date(Date.now() - 6 * 3600_000).toISOString();
        await t.container.database.db.updateTable('sessions').set({ last_seen_at: idle }).where('token_hash', '=', sha256Hex(s.cookie)).execute();
        return s.headers;
      },
    },
    {
      name: 'a signed-out session',
      headers: async () => {
        const s = await freshOwnerSession();
        expect((await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: s.headers })).statusCode).toBe(200);
        return s.headers;
      },
    },
    {
      name: 'a session whose user was disabled',
      headers: async () => {
        const s = await freshOwnerSession();
        const res = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${s.userId}`, headers: fx.ownerSession, payload: { status: 'disabled' } });
        expect(res.statusCode).toBe(200);
        return s.headers;
      },
    },
    {
      name: 'a revoked API token',
      headers: async () => {
        const tok = await ownerTokenHeaders();
        expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${tok.id}`, headers: fx.ownerSession })).statusCode).toBe(200);
        return tok.headers;
      },
    },
    {
      name: 'an expired API token',
      headers: async () => {
        const tok = await ownerTokenHeaders();
        await t.container.database.db.updateTable('api_tokens').set({ expires_at: past }).where('id', '=', tok.id).execute();
        return tok.headers;
      },
    },
    { name: 'an unknown API token', headers: async () => ({ authorization: `Bearer kw_${randomBytes(32).toString('base64url')}` }) },
    { name: 'a malformed Authorization header', headers: async () => ({ authorization: 'Basic bWF0cml4Om1hdHJpeA==' }) },
    // Device credentials: dead ones open nothing, not even the agent routes; a live one is the matrix's agent principal.
    {
      name: 'a revoked device credential',
      headers: async () => {
        const d = await throwawayDevice(fx, 'own');
        expect((await t.app.inject({ method: 'POST', url: `/api/v1/devices/${d.deviceId}/revoke-agent`, headers: fx.ownerSession })).statusCode).toBe(200);
        return bearer(d.credential);
      },
    },
    {
      name: 'a device credential replaced by enrolling the same machine again',
      headers: async () => {
        const a = await enrollMachine(t.app, fx.enroll.own);
        const first = a.credential!;
        expect((await a.enroll(fx.enroll.own)).status).toBe(200);
        fx.secrets.push(first, a.credential!);
        expect(a.credential).not.toBe(first);
        return bearer(first);
      },
    },
    {
      name: 'the device credential of a retired device',
      headers: async () => {
        const d = await throwawayDevice(fx, 'own');
        await t.container.database.db.updateTable('devices').set({ retired_at: past }).where('id', '=', d.deviceId).execute();
        return bearer(d.credential);
      },
    },
    { name: 'an unknown device credential', headers: async () => bearer(`kwd_${randomBytes(32).toString('base64url')}`) },
    {
      name: 'a live device credential sent as the session cookie',
      headers: async () => ({ cookie: `kw_session=${(await throwawayDevice(fx, 'own')).credential}`, 'x-csrf-token': hex(16) }),
    },
    { name: 'a live enrollment token as a bearer credential', headers: async () => bearer(fx.enroll.own) },
  ];

  it.each(DEAD.map((d) => [d.name, d] as const))('%s: 401 on every non-public route, public routes unaffected', async (_name, dead) => {
    const headers = await dead.headers();
    const ownerP = principals.find((p) => p.role === 'owner' && p.kind === 'session')!;
    const failures: string[] = [];
    for (const [key, entry] of Object.entries(MATRIX)) {
      const { method } = splitKey(key);
      for (const v of entry.variants) {
        const req = v.axis === 'none' ? await v.build({ p: ownerP, fx }) : await v.build({ p: ownerP, fx }, fx.own, 'own');
        try {
          const res = await send(method, req, headers);
          const want = entry.auth === 'public' ? expectedFor(entry, v, ownerP, 'own') : 401;
          if (res.statusCode !== want) failures.push(`${key} [${v.label}]: expected ${want}, got ${res.statusCode} ${res.body.slice(0, 160)}`);
          for (const problem of bodyProblems(null, requestText(req), res.body, undefined)) failures.push(`${key} [${v.label}]: ${problem}`);
        } finally {
          await req.after?.();
        }
      }
    }
    expect(failures).toEqual([]);
  });

  // ---------------------------------------------------------------- CSRF
  it('a session without the right x-csrf-token gets 403 on every unsafe route (before any permission or validation); on agent and self-service routes a console cookie is simply 401', async () => {
    const ownerP = principals.find((p) => p.role === 'owner' && p.kind === 'session')!;
    const otherCsrf = principals.find((p) => p.role === 'technician' && p.kind === 'session')!.headers['x-csrf-token']!;
    const agentP = principals.find((p) => p.kind === 'agent')!;
    const failures: string[] = [];
    let unsafe = 0;
    for (const [key, entry] of Object.entries(MATRIX)) {
      const { method } = splitKey(key);
      if (!UNSAFE.has(method) || entry.auth === 'public') continue;
      unsafe++;
      const v = entry.variants[0]!;
      for (const csrf of [undefined, otherCsrf, 'x']) {
        const req = v.axis === 'none' ? await v.build({ p: ownerP, fx }) : await v.build({ p: ownerP, fx }, fx.own, 'own');
        try {
          const { 'x-csrf-token': _drop, ...cookieOnly } = await authFor(ownerP, req);
          const res = await send(method, req, csrf === undefined ? cookieOnly : { ...cookieOnly, 'x-csrf-token': csrf });
          const details = (parse(res) as { details?: { csrf?: boolean } }).details;
          const what = csrf === undefined ? 'no x-csrf-token' : "another session's / a bogus x-csrf-token";
          if (entry.auth === 'agent') {
            // Agent routes read a device credential only: the cookie is no credential there at all,
            // and a stray cookie next to the device credential asks for no CSRF header either.
            if (res.statusCode !== 401 || details?.csrf === true)
              failures.push(`${key} (agent route) with a session cookie and ${what}: expected 401, got ${res.statusCode} ${res.body.slice(0, 160)}`);
            if (csrf === undefined) {
              const again = v.axis === 'none' ? await v.build({ p: agentP, fx }) : await v.build({ p: agentP, fx }, fx.own, 'own');
              const withDevice = await send(method, again, { ...cookieOnly, ...agentP.headers });
              const want = expectedFor(entry, v, agentP, 'own');
              if (withDevice.statusCode !== want)
                failures.push(
                  `${key} (agent route) with the device credential and a session cookie: expected ${want}, got ${withDevice.statusCode} ${withDevice.body.slice(0, 160)}`,
                );
            }
          } else if (entry.auth === 'self-service') {
            // Self-service routes read the end user's own cookie only: a console session is no credential there.
            if (res.statusCode !== 401 || details?.csrf === true)
              failures.push(`${key} (self-service route) with a console session and ${what}: expected 401, got ${res.statusCode} ${res.body.slice(0, 160)}`);
          } else if (res.statusCode !== 403 || details?.csrf !== true)
            failures.push(`${key} with ${what}: expected a 403 CSRF refusal, got ${res.statusCode} ${res.body.slice(0, 160)}`);
          for (const problem of bodyProblems(null, requestText(req), res.body, undefined)) failures.push(`${key}: ${problem}`);
        } finally {
          await req.after?.();
        }
      }
    }
    expect(unsafe).toBeGreaterThan(10);
    expect(failures).toEqual([]);
  });

  // ---------------------------------------------------------------- client-viewer reveals
  it("client-viewer reveals its own client's keys only while the owner allows it for that client", async () => {
    const viewers = principals.filter((p) => p.role === 'client-viewer' && p.kind !== 'agent');
    const admin = principals.find((p) => p.role === 'admin' && p.kind === 'session')!;
    const reveal = (p: Principal, q: string) => send('POST', { url: `/api/v1/keys/${q}/reveal`, payload: REVEAL }, p.headers);
    const setViewerCanReveal = (on: boolean, headers = fx.ownerSession) =>
      send('PATCH', { url: `/api/v1/clients/${fx.own.id}`, payload: { viewerCanReveal: on } }, headers);

    // An admin may not switch it on (it is a vault setting): 403, and nothing changes.
    expect((await setViewerCanReveal(true, admin.headers)).statusCode).toBe(403);
    for (const p of viewers) expect((await reveal(p, fx.own.solo.keyId)).statusCode, p.name).toBe(403);

    expect((await setViewerCanReveal(true)).statusCode).toBe(200);
    try {
      for (const p of viewers) {
        const own = await reveal(p, fx.own.solo.keyId);
        expect(own.statusCode, p.name).toBe(200);
        expect((own.json() as { key: { recoveryPassword: string } }).key.recoveryPassword).toBe(fx.own.solo.password);
        expect(bodyProblems(p, '', own.body, fx.own.solo.password)).toEqual([]);

        const other = await reveal(p, fx.other.solo.keyId);
        expect(other.statusCode, p.name).toBe(404);
        expect(bodyProblems(p, fx.other.solo.keyId, other.body, undefined)).toEqual([]);

        // The agent's actor is a client-viewer of Own in src, but a device credential reveals nothing.
        const agentP = principals.find((x) => x.kind === 'agent')!;
        expect((await reveal(agentP, fx.own.solo.keyId)).statusCode, agentP.name).toBe(401);

        // Revealing is not browsing: an ambiguous prefix names no candidates, and the key list stays closed.
        const amb = await reveal(p, fx.own.twinPrefix);
        expect(amb.statusCode, p.name).toBe(200);
        expect(amb.json()).toEqual({ status: 'ambiguous', matches: 2, candidates: null });
        expect((await send('GET', { url: '/api/v1/keys' }, p.headers)).statusCode, p.name).toBe(403);
        expect((await send('GET', { url: `/api/v1/keys/${fx.own.solo.recordId}` }, p.headers)).statusCode, p.name).toBe(403);
      }
    } finally {
      expect((await setViewerCanReveal(false)).statusCode).toBe(200);
    }
    for (const p of viewers) expect((await reveal(p, fx.own.solo.keyId)).statusCode, p.name).toBe(403);
  });
});
