import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { WireDevice, listen, newProtector, request, volume } from './helpers/agent-wire.js';
import { randomRecoveryPassword } from './helpers/keys.js';

type Finding = {
  id: string;
  kind: string;
  title: string;
  severity: string;
  client: { id: string; name: string };
  device: { id: string; name: string };
  mountPoint: string | null;
  resolvedAt: string | null;
};

/**
 * GET /findings as the console's work queue reads it (issue 17): across every client one sees,
 * filtered by client, type (kind), severity and state, paged with limit/offset, each finding with
 * its severity and title in product words; and the bulk re-escrow the queue sends per client.
 */
describe(`findings work queue (${ENGINE})`, () => {
  let t: TestApp;
  let base: string;
  let owner: Session;
  let contoso: string;
  let fabrikam: string;
  let n = 0;
  const api = (method: string, url: string, body?: unknown, headers: Record<string, string> = owner.headers) =>
    request(base, method, `/api/v1${url}`, { headers, body });
  const findings = async (query: string, headers?: Record<string, string>): Promise<Finding[]> => {
    const r = await api('GET', `/findings${query}`, undefined, headers);
    expect(r.status, r.body).toBe(200);
    return r.json as Finding[];
  };
  const device = (volumes = [volume('C:')]) => new WireDevice(base, `FAKE-FQ-${String(++n).padStart(2, '0')}`, volumes);
  const tokenOf = async (clientId: string) => (await api('POST', '/agent/enrollment-tokens', { clientId })).json.token as string;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    t = await createTestApp();
    base = await listen(t.app);
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    contoso = (await api('POST', '/clients', { name: 'Contoso' })).json.id;
    fabrikam = (await api('POST', '/clients', { name: 'Fabrikam' })).json.id;
    const ct = await tokenOf(contoso);
    const ft = await tokenOf(fabrikam);

    // Contoso: a key never uploaded, a drive with no recovery password, a key changed on the device.
    const unescrowed = device();
    await unescrowed.enroll(ct);
    await unescrowed.checkin();
    ids.unescrowed = unescrowed.deviceId!;
    const noPassword = device([volume('C:', { protectors: [newProtector('Tpm')] })]);
    await noPassword.settle(ct);
    ids.noPassword = noPassword.deviceId!;
    const changed = device();
    await changed.settle(ct);
    changed.recoveryPasswords('C:')[0]!.password = randomRecoveryPassword();
    await changed.checkin();
    ids.changed = changed.deviceId!;
    // Fabrikam: one key never uploaded.
    const other = device();
    await other.enroll(ft);
    await other.checkin();
    ids.other = other.deviceId!;
  });
  afterAll(() => t.close());

  it('answers each finding with its type, title and severity, across clients', async () => {
    const all = await findings('?open=true');
    const byDevice = new Map(all.map((f) => [f.device.id, f]));
    expect(byDevice.get(ids.unescrowed!)).toMatchObject({
      kind: 'unescrowed_key',
      severity: 'high',
      title: 'Recovery password not in the vault',
      mountPoint: 'C:',
    });
    expect(byDevice.get(ids.noPassword!)).toMatchObject({ kind: 'no_recovery_password', severity: 'high', title: 'No recovery password on the drive' });
    expect(byDevice.get(ids.changed!)).toMatchObject({ kind: 'mismatch', severity: 'high', title: 'Stored key may not unlock' });
    expect(byDevice.get(ids.other!)).toMatchObject({ kind: 'unescrowed_key', client: { id: fabrikam, name: 'Fabrikam' } });
  });

  it('filters by client, type, severity and state, and pages with limit and offset', async () => {
    const contosoOnly = await findings(`?clientId=${contoso}&open=true`);
    expect(new Set(contosoOnly.map((f) => f.client.id))).toEqual(new Set([contoso]));
    expect(contosoOnly.map((f) => f.device.id).sort()).toEqual([ids.unescrowed, ids.noPassword, ids.changed].sort());

    const unescrowed = await findings('?kind=unescrowed_key&open=true');
    expect(unescrowed.map((f) => f.device.id).sort()).toEqual([ids.unescrowed, ids.other].sort());
    expect((await findings(`?kind=unescrowed_key&clientId=${fabrikam}`)).map((f) => f.device.id)).toEqual([ids.other]);

    expect((await findings('?severity=high&open=true')).length).toBe(4);
    expect(await findings('?severity=medium')).toEqual([]);
    // A type of another severity matches nothing.
    expect(await findings('?severity=medium&kind=mismatch')).toEqual([]);
    // Settling a device opens "not in the vault" until the upload, then resolves it.
    const resolved = await findings('?open=false');
    expect(resolved.length).toBeGreaterThan(0);
    expect(resolved.every((f) => f.resolvedAt !== null)).toBe(true);
    expect(resolved.map((f) => f.device.id)).not.toContain(ids.unescrowed);

    const all = await findings('?open=true');
    const pages = [...(await findings('?open=true&limit=2')), ...(await findings('?open=true&limit=2&offset=2'))];
    expect(pages.map((f) => f.id)).toEqual(all.map((f) => f.id));
    expect(await findings('?open=true&offset=4')).toEqual([]);
  });

  it('refuses an unknown type or severity with a clear message', async () => {
    const kind = await api('GET', '/findings?kind=broken_drive');
    expect(kind.status).toBe(400);
    expect(kind.json.message).toMatch(/kind/);
    const severity = await api('GET', '/findings?severity=urgent');
    expect(severity.status).toBe(400);
    expect(severity.json.message).toMatch(/severity/);
  });

  it('a client-scoped user sees only their client, and a filter on another client answers nothing of it', async () => {
    const admin = await t.signIn((await t.addUser('admin', [fabrikam])).email);
    const mine = await findings('', admin.headers);
    expect(new Set(mine.map((f) => f.client.id))).toEqual(new Set([fabrikam]));
    const r = await api('GET', `/findings?clientId=${contoso}`, undefined, admin.headers);
    expect([403, 404]).toContain(r.status);
  });

  it('bulk re-escrow for the devices of selected findings: a dry run queues nothing, then the jobs exist', async () => {
    const chosen = (await findings(`?clientId=${contoso}&severity=high&open=true`)).filter((f) => f.kind !== 'no_recovery_password').map((f) => f.device.id);
    expect(chosen.sort()).toEqual([ids.unescrowed, ids.changed].sort());
    // A device of another client in the request is skipped, with why.
    const body = { kind: 're-escrow', deviceIds: [...chosen, ids.other], mountPoint: 'C:' };
    const dry = await api('POST', `/clients/${contoso}/agent-jobs`, { ...body, dryRun: true });
    expect(dry.status, dry.body).toBe(200);
    expect(dry.json).toMatchObject({ dryRun: true, queued: 2 });
    expect(dry.json.jobs.map((j: { jobId: string | null }) => j.jobId)).toEqual([null, null]);
    expect(dry.json.skipped).toEqual([{ deviceId: ids.other, device: null, why: 'no such device in this client' }]);
    expect((await api('GET', `/clients/${contoso}/agent-jobs?state=active`)).json).toEqual([]);

    const real = await api('POST', `/clients/${contoso}/agent-jobs`, body);
    expect(real.json).toMatchObject({ dryRun: false, queued: 2 });
    const jobs = (await api('GET', `/clients/${contoso}/agent-jobs?state=active`)).json as { kind: string; origin: string; device: { id: string } }[];
    expect(jobs.map((j) => [j.kind, j.origin, j.device.id]).sort()).toEqual(chosen.map((id) => ['re-escrow', 'bulk', id]).sort());
  });
});
