import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { multipart, type UploadFile } from './helpers/http.js';

/**
 * What the console's Import screen reads from POST /imports: the devices the keys were filed under
 * (ids only once they are stored, so a dry run links nowhere), the format each file was read as,
 * and rejected rows that never carry a recovery password.
 */
const API = '/api/v1';

describe(`POST /imports answer for the console on ${ENGINE}`, () => {
  let t: TestApp;
  let o: Session;
  let clientId: string;

  beforeAll(async () => {
    t = await createTestApp();
    const u = await t.addUser('owner', 'all', 'owner@example.test');
    o = await t.signIn(u.email);
    const c = await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: o.headers, payload: { name: 'Fabrikam Imports' } });
    expect(c.statusCode).toBe(201);
    clientId = c.json().id;
  });
  afterAll(async () => {
    await t?.close();
  });

  const upload = async (fields: Record<string, string>, files: UploadFile[]) => {
    const body = await multipart(fields, files);
    return t.app.inject({ method: 'POST', url: `${API}/imports`, headers: { ...o.headers, ...body.headers }, payload: body.payload });
  };

  it('names the devices (no ids in a dry run), the format, and rejected rows without their password', async () => {
    const good = [randomRecoveryPassword(), randomRecoveryPassword()];
    const bad = good[0]!.slice(0, -1) + ((Number(good[0]!.slice(-1)) + 1) % 10);
    const csv = csvOf([
      { device: 'FAKE-IMPORT-01', keyId: randomKeyId(), password: good[0]! },
      { device: 'FAKE-IMPORT-02', keyId: randomKeyId(), password: good[1]! },
      { device: 'FAKE-IMPORT-03', keyId: randomKeyId(), password: bad },
    ]);
    const files = [{ name: 'keys.csv', content: csv }];

    const dry = await upload({ client: clientId, dryRun: 'true' }, files);
    expect(dry.statusCode).toBe(200);
    const d = dry.json();
    expect(d).toMatchObject({ dryRun: true, imported: 2, rejectedCount: 1, files: [{ file: 'keys.csv', format: 'csv', imported: 2, rejected: 1 }] });
    expect(d.devices).toEqual([
      { id: null, name: 'FAKE-IMPORT-01' },
      { id: null, name: 'FAKE-IMPORT-02' },
    ]);
    expect(d.rejected).toEqual([{ file: 'keys.csv', line: 4, reason: expect.stringMatching(/checksum|digits/) }]);
    for (const pw of [...good, bad]) expect(dry.body).not.toContain(pw.slice(0, 20));

    const real = await upload({ client: clientId }, files);
    expect(real.statusCode).toBe(200);
    const r = real.json();
    expect(r).toMatchObject({ dryRun: false, imported: 2, duplicates: 0 });
    const list = await t.app.inject({ method: 'GET', url: `${API}/clients/${clientId}/devices`, headers: o.headers });
    const stored = (list.json().items as { id: string; name: string }[]).map((x) => ({ id: x.id, name: x.name }));
    expect(r.devices).toEqual(expect.arrayContaining(stored));
    expect(r.devices).toHaveLength(2);

    // The same file again: already known, the same devices.
    const again = (await upload({ client: clientId }, files)).json();
    expect(again).toMatchObject({ imported: 0, duplicates: 2 });
    expect(again.devices).toEqual(r.devices);
  });

  it('a file in no known format is one rejected line 0 with format null', async () => {
    const res = await upload({ client: clientId, dryRun: 'true', format: 'json' }, [{ name: 'notes.json', content: 'this is not JSON' }]);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ imported: 0, rejectedCount: 1, devices: [], files: [{ file: 'notes.json', format: null }] });
    expect(res.json().rejected[0]).toMatchObject({ file: 'notes.json', line: 0 });
  });
});
