/**
 * Device owners and users for the Graph simulator (issue 20, self-service recovery), written from
 * the public documentation (learn.microsoft.com: device-list-registeredowners,
 * device-list-registeredusers, user-list-owneddevices, user-list-registereddevices; "limited
 * information returned for inaccessible member objects"). The simulator calls `routeOwners` for
 * every Graph request it does not answer itself; the data lives here, per tenant.
 *
 * A user's own devices are read only as that user: `/me/ownedDevices|registeredDevices` with a
 * delegated token (User.Read or Directory.Read.All; the simulator learns delegated tokens through
 * `sim.trustDelegated`). `/users/{id}/ownedDevices|registeredDevices` with an app-only token is
 * 403 Authorization_RequestDenied: the docs list application permissions as "Not supported".
 *
 *   const o = simOwners(tenant);                 // tenant = sim.seedTenant(…)
 *   o.addUser({ id, userPrincipalName: 'ann@contoso.example' });
 *   o.setOwners(tenant.devices[0].id, [userId]); // device *object* id, like Graph
 */
import type { SimDevice, SimTenant } from './simulator.js';

export type SimUser = { id: string; userPrincipalName: string; displayName?: string };

type OwnerData = { users: SimUser[]; owners: Map<string, string[]>; registered: Map<string, string[]> };
const store = new WeakMap<SimTenant, OwnerData>();
const dataOf = (t: SimTenant): OwnerData => {
  let d = store.get(t);
  if (!d) store.set(t, (d = { users: [], owners: new Map(), registered: new Map() }));
  return d;
};

/** Seeding: users, a device's registered owner(s) and registered users (by device object id). */
export function simOwners(t: SimTenant) {
  const d = dataOf(t);
  return {
    addUser(u: SimUser): SimUser {
      d.users.push(u);
      return u;
    },
    setOwners(deviceObjectId: string, userIds: string[]) {
      d.owners.set(
        deviceObjectId.toLowerCase(),
        userIds.map((x) => x.toLowerCase()),
      );
    },
    setRegisteredUsers(deviceObjectId: string, userIds: string[]) {
      d.registered.set(
        deviceObjectId.toLowerCase(),
        userIds.map((x) => x.toLowerCase()),
      );
    },
  };
}

/** What the simulator lends this file for one request: its paging, its collection shape, its errors. */
export type OwnersHost = {
  tenant: SimTenant;
  method: string;
  segs: string[];
  /** The person of a delegated token (trustDelegated), null for an app-only token. */
  delegated: { userObjectId: string; scopes: string[] } | null;
  query: (name: string) => string | undefined;
  page(kind: string, total: number, size: number): { offset: number; end: number; nextLink?: string };
  collection(contextPath: string, value: unknown[], nextLink: string | undefined): unknown;
  fail(status: number, code: string, message: string): never;
  deviceByObjectId(id: string): SimDevice | undefined;
  deviceByDeviceId(deviceId: string): SimDevice | undefined;
};

const DEVICE_READ = ['Device.Read.All', 'Device.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'];
const USER_READ = ['User.Read.All', 'User.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'];
const has = (t: SimTenant, anyOf: string[]) => anyOf.some((p) => t.permissions.has(p));
/** Delegated permissions for /me/ownedDevices and /me/registeredDevices (least privileged: User.Read). */
const ME_DEVICES = ['User.Read', 'User.Read.All', 'User.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'];

/** A user as a directoryObject; without a user-reading permission only @odata.type and id (limited information). */
const userObject = (t: SimTenant, u: SimUser) =>
  has(t, USER_READ)
    ? { '@odata.type': '#microsoft.graph.user', id: u.id, userPrincipalName: u.userPrincipalName, displayName: u.displayName ?? null }
    : { '@odata.type': '#microsoft.graph.user', id: u.id, userPrincipalName: null, displayName: null };
function select(h: OwnersHost, obj: Record<string, unknown>): Record<string, unknown> {
  const raw = h.query('$select');
  if (raw === undefined) return obj;
  const out: Record<string, unknown> = { '@odata.type': obj['@odata.type'], id: obj.id };
  for (const p of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean))
    out[p] = obj[p] ?? null;
  return out;
}

function pageOf(h: OwnersHost, kind: string, contextPath: string, items: Record<string, unknown>[]) {
  for (const opt of ['$orderby', '$expand', '$skip'])
    if (h.query(opt) !== undefined) h.fail(400, 'Request_UnsupportedQuery', `The ${opt} query option is not supported here.`);
  const top = h.query('$top');
  const size = top === undefined ? 100 : Number(top);
  if (!Number.isInteger(size) || size < 1 || size > 999)
    h.fail(400, 'Request_BadRequest', `Invalid page size specified: '${top}'. Must be between 1 and 999 inclusive.`);
  const p = h.page(kind, items.length, size);
  return h.collection(
    contextPath,
    items.slice(p.offset, p.end).map((o) => select(h, o)),
    p.nextLink,
  );
}

/** Answers the owner/user relations, or undefined when the request is not one of them. */
export function routeOwners(h: OwnersHost): unknown {
  const { segs, tenant: t } = h;
  const lower = segs.map((s) => s.toLowerCase());
  const d = dataOf(t);
  const rel = lower[lower.length - 1];

  // GET /devices/{id}/registeredOwners|registeredUsers, GET /devices(deviceId='…')/…
  const alt = /^devices\(deviceId='((?:[^']|'')*)'\)$/i.exec(segs[0] ?? '');
  const deviceSegs = (lower[0] === 'devices' && segs.length === 3) || (alt && segs.length === 2);
  if (deviceSegs && (rel === 'registeredowners' || rel === 'registeredusers')) {
    if (h.method !== 'GET') h.fail(405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.');
    if (!has(t, DEVICE_READ)) h.fail(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    const dev = alt ? h.deviceByDeviceId(alt[1]!.replace(/''/g, "'")) : h.deviceByObjectId(segs[1]!);
    if (!dev)
      h.fail(
        404,
        'Request_ResourceNotFound',
        `Resource '${alt ? alt[1] : segs[1]}' does not exist or one of its queried reference-property objects are not present.`,
      );
    const ids = (rel === 'registeredowners' ? d.owners : d.registered).get(dev!.id.toLowerCase()) ?? [];
    const users = ids.map((id) => d.users.find((u) => u.id.toLowerCase() === id)).filter((u): u is SimUser => !!u);
    return pageOf(
      h,
      `device-${rel}`,
      'directoryObjects',
      users.map((u) => userObject(t, u)),
    );
  }

  // GET /users/{id | userPrincipalName}/ownedDevices|registeredDevices: the docs list no
  // application permission ("Not supported"), so an app-only token is refused whatever it holds.
  if (lower[0] === 'users' && segs.length === 3 && (rel === 'owneddevices' || rel === 'registereddevices')) {
    if (h.method !== 'GET') h.fail(405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.');
    h.fail(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
  }

  // GET /me/ownedDevices|registeredDevices with a person's delegated token (User.Read or more).
  if (lower[0] === 'me' && segs.length === 2 && (rel === 'owneddevices' || rel === 'registereddevices')) {
    if (h.method !== 'GET') h.fail(405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.');
    const me = h.delegated;
    if (!me) return h.fail(400, 'BadRequest', '/me request is only valid with delegated authentication flow.');
    if (!ME_DEVICES.some((p) => me.scopes.includes(p))) h.fail(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    const map = rel === 'owneddevices' ? d.owners : d.registered;
    const devices = t.devices.filter((dev) => (map.get(dev.id.toLowerCase()) ?? []).includes(me.userObjectId));
    return pageOf(
      h,
      `me-${rel}`,
      'directoryObjects',
      devices.map((dev) => ({
        '@odata.type': '#microsoft.graph.device',
        id: dev.id,
        deviceId: dev.deviceId,
        displayName: dev.displayName,
        trustType: dev.trustType,
      })),
    );
  }
  return undefined;
}
