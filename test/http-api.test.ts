import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseCsv } from 'csv-parse/sync';
import { systemActor } from '../src/modules/authz/authz.js';
import { createTestApp, PASSWORD, sessionFrom, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { csvOf, randomRecoveryPassword } from './helpers/keys.js';
import { expectNoLeak, multipart, type UploadFile } from './helpers/http.js';

/**
 * The documented HTTP API, happy paths end to end: an owner sets up clients, uploads key files,
 * browses devices and keys, reveals, reads and exports the audit trail, and manages users,
 * tokens and settings.
 */

const API = '/api/v1';
const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/import');
const fixture = (name: string): UploadFile => ({ name, content: new Uint8Array(fs.readFileSync(path.join(FIXTURES, name))) });
const TXT = 'BitLocker Recovery Key 4290B6C0-B17A-497A-8552-272CC30E80D4.TXT';
/** FAKE-LAPTOP-02's key ID from keys-with-ids.csv, with another (valid) password: a conflict. */
const CONFLICT_CSV = csvOf([{ device: 'FAKE-LAPTOP-02', keyId: 'D866F103-018A-4D18-AEF7-5543CB22039D', password: randomRecoveryPassword() }]);
const FILES = ['keys-with-ids.csv', 'keys-with-bad-rows.csv', TXT, 'manage-bde-two-volumes.txt', 'conflict.csv'];
const upFile = (name: string): UploadFile => (name === 'conflict.csv' ? { name, content: CONFLICT_CSV } : fixture(name));

/** Known rows of keys-with-ids.csv. */
const LAPTOP_01 = {
  keyId: '4363365b-db8a-4395-83d0-579527c14421',
  password: '218295-314006-039116-363605-259171-090915-081675-330187',
  serial: 'FAKE-SN-0001',
  user: 'jane.doe@example.invalid',
};

const AMBIGUOUS = [
  { keyId: 'abcdef01-0000-4000-8000-000000000001', password: randomRecoveryPassword() },
  { keyId: 'abcdef01-0000-4000-8000-000000000002', password: randomRecoveryPassword() },
];

type Summary = {
  imported: number;
  duplicates: number;
  conflicts: number;
  rejected: { file: string; line: number; reason: string }[];
  rejectedCount: number;
  files: { file: string; format: string | null; imported: number; duplicates: number; conflicts: number; rejected: number }[];
  dryRun: boolean;
};

/** ISO-8601 for the same instant in another UTC offset (what a browser in that zone may send). */
function withOffset(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().replace('Z', '');
  const a = Math.abs(offsetMinutes);
  return `${local}${offsetMinutes >= 0 ? '+' : '-'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

describe(`HTTP API happy paths on ${ENGINE}`, () => {
  let t: TestApp;
  let o: Session;
  let ownerId: string;
  let contoso: string;
  let fabrikam: string;
  const allSecrets = () => [PASSWORD, LAPTOP_01.password, ...AMBIGUOUS.map((k) => k.password)];

  const get = (url: string, headers: Record<string, string> = o.headers) => t.app.inject({ method: 'GET', url, headers });
  const send = (method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = o.headers) =>
    t.app.inject({ method, url, headers, ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) });
  const upload = async (fields: Record<string, string>, files: UploadFile[], headers: Record<string, string> = o.headers) => {
    const body = await multipart(fields, files);
    return t.app.inject({ method: 'POST', url: `${API}/imports`, headers: { ...headers, ...body.headers }, payload: body.payload });
  };

  beforeAll(async () => {
    t = await createTestApp();
    const u = await t.addUser('owner', 'all', 'owner@example.test');
    ownerId = u.id;
    o = await t.signIn(u.email);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('GET /healthz and /readyz answer 200 without signing in', async () => {
    const h = await t.app.inject({ method: 'GET', url: '/healthz' });
    expect(h.statusCode).toBe(200);
    expect(h.json()).toEqual({ status: 'ok' });
    const r = await t.app.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ready' });
  });

  it('GET /me describes the signed-in owner', async () => {
    const r = await get(`${API}/me`);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      actor: { type: 'user', id: ownerId, name: 'owner@example.test', role: 'owner', clients: 'all' },
      user: { id: ownerId, email: 'owner@example.test', role: 'owner', clients: 'all', status: 'active', mfaEnabled: false },
      mfaEnrolmentRequired: false,
      stepUpValidUntil: null,
    });
    expect(r.json().user.lastLoginAt).toBeTruthy();
  });

  describe('clients', () => {
    it('creates, lists, reads, renames and archives clients', async () => {
      const a = await send('POST', `${API}/clients`, { name: 'Contoso' });
      expect(a.statusCode).toBe(201);
      expect(a.json()).toEqual({ id: expect.any(String), name: 'Contoso', createdAt: expect.any(String), viewerCanReveal: false });
      contoso = a.json().id;
      fabrikam = (await send('POST', `${API}/clients`, { name: 'Fabrikam Ltd' })).json().id;
      expect((await send('POST', `${API}/clients`, { name: 'contoso' })).statusCode).toBe(409);

      const tmp = await send('POST', `${API}/clients`, { name: 'Temporary' });
      expect(tmp.statusCode).toBe(201);
      const renamed = await send('PATCH', `${API}/clients/${tmp.json().id}`, { name: 'Temporary 2' });
      expect(renamed.statusCode).toBe(200);
      expect(renamed.json().name).toBe('Temporary 2');
      expect((await get(`${API}/clients/${tmp.json().id}`)).json().name).toBe('Temporary 2');
      expect((await send('DELETE', `${API}/clients/${tmp.json().id}`)).json()).toEqual({ ok: true });
      expect((await get(`${API}/clients/${tmp.json().id}`)).statusCode).toBe(404);

      const list = await get(`${API}/clients`);
      expect(list.statusCode).toBe(200);
      expect(list.json()).toEqual([
        { id: contoso, name: 'Contoso', createdAt: expect.any(String), viewerCanReveal: false, devices: 0, keys: 0 },
        { id: fabrikam, name: 'Fabrikam Ltd', createdAt: expect.any(String), viewerCanReveal: false, devices: 0, keys: 0 },
      ]);
      const one = await get(`${API}/clients/${contoso}`);
      expect(one.json()).toEqual({ id: contoso, name: 'Contoso', createdAt: expect.any(String), viewerCanReveal: false });
    });
  });

  describe('imports', () => {
    let dry: Summary;

    it('a dry run gives the same summary as `keywarden import --dry-run --json` and stores nothing', async () => {
      const r = await upload({ client: 'Contoso', device: 'FAKE-TXT-LAPTOP', dryRun: 'true' }, FILES.map(upFile));
      expect(r.statusCode).toBe(200);
      dry = r.json();
      expect(dry.dryRun).toBe(true);
      expect(dry.files.map((f) => f.file)).toEqual(FILES);

      // The CLI reads the same files from a folder of its own.
      const dir = fs.mkdtempSync(path.join(t.db.dir, 'upload-'));
      for (const name of FILES) fs.writeFileSync(path.join(dir, name), upFile(name).content);
      const cli = await t.cli(['import', ...FILES, '--client', 'Contoso', '--device', 'FAKE-TXT-LAPTOP', '--dry-run', '--json'], { cwd: dir });
      expect(cli.stderr).toBe('');
      const fromCli = JSON.parse(cli.stdout);
      expect({
        imported: dry.imported,
        duplicates: dry.duplicates,
        conflicts: dry.conflicts,
        rejected: dry.rejected,
        rejectedCount: dry.rejectedCount,
      }).toEqual(fromCli);
      // Per-file counts add up to the totals.
      expect(dry.files.reduce((s, f) => s + f.imported, 0)).toBe(dry.imported);
      expect(dry.files.reduce((s, f) => s + f.rejected, 0)).toBe(dry.rejectedCount);
      expect(dry.rejectedCount).toBe(dry.rejected.length);

      expect((await get(`${API}/keys`)).json()).toEqual([]);
      expect((await get(`${API}/devices`)).json()).toEqual([]);
    });

    it('imports several files in one upload: the JSON summary the CLI prints, plus per-file counts', async () => {
      const r = await upload({ client: contoso, device: 'FAKE-TXT-LAPTOP' }, FILES.map(upFile));
      expect(r.statusCode).toBe(200);
      const s: Summary = r.json();
      expect(Object.keys(s).sort()).toEqual(['conflicts', 'devices', 'dryRun', 'duplicates', 'files', 'imported', 'rejected', 'rejectedCount']);
      expect(s.dryRun).toBe(false);
      expect(s.files).toEqual(
        FILES.map((file) => ({
          file,
          format: expect.any(String),
          imported: expect.any(Number),
          duplicates: expect.any(Number),
          conflicts: expect.any(Number),
          rejected: expect.any(Number),
        })),
      );
      // Per file: 4 new keys; 3 good and 6 bad rows; one key file; two volumes of which one is the key
      // file's key again (a duplicate); and one known key ID with another password (a conflict).
      expect(s.files.map(({ file: _f, ...counts }) => counts)).toEqual([
        { format: 'csv', imported: 4, duplicates: 0, conflicts: 0, rejected: 0 },
        { format: 'csv', imported: 3, duplicates: 0, conflicts: 0, rejected: 6 },
        { format: 'txt', imported: 1, duplicates: 0, conflicts: 0, rejected: 0 },
        { format: 'manage-bde', imported: 2, duplicates: 1, conflicts: 0, rejected: 0 },
        { format: 'csv', imported: 0, duplicates: 0, conflicts: 1, rejected: 0 },
      ]);
      expect(s).toMatchObject({ imported: 10, duplicates: 1, conflicts: 1 });
      // The rejected rows are the same as in the dry run, each with file, line and reason, never digits.
      expect(s.rejected).toEqual(dry.rejected);
      expect(s.rejected.length).toBeGreaterThan(0);
      for (const x of s.rejected) {
        expect(x).toEqual({ file: 'keys-with-bad-rows.csv', line: expect.any(Number), reason: expect.any(String) });
        expect(x.line).toBeGreaterThan(1);
        expect(x.reason).not.toMatch(/\d{6}-\d{6}/);
      }
      expect(s.imported + s.duplicates + s.conflicts).toBe(dry.imported + dry.duplicates + dry.conflicts);
      expectNoLeak(r, [LAPTOP_01.password]);

      const again = await upload({ client: 'Contoso', device: 'FAKE-TXT-LAPTOP' }, [fixture('keys-with-ids.csv')]);
      expect(again.json()).toMatchObject({ imported: 0, duplicates: 4, conflicts: 0, rejected: [], dryRun: false });

      const amb = await upload({ client: 'Fabrikam Ltd' }, [
        { name: 'ambiguous.csv', content: csvOf(AMBIGUOUS.map((k, i) => ({ device: `FAKE-FAB-${i + 1}`, keyId: k.keyId, password: k.password }))) },
      ]);
      expect(amb.json()).toMatchObject({ imported: 2, duplicates: 0, conflicts: 0, rejected: [] });

      const counts = (await get(`${API}/clients`)).json();
      expect(counts.find((x: { id: string }) => x.id === fabrikam)).toMatchObject({ devices: 2, keys: 2 });
      // A conflict keeps both passwords: one key more, and both are flagged.
      expect(counts.find((x: { id: string }) => x.id === contoso).keys).toBe(s.imported + s.conflicts);
      const flagged = (await get(`${API}/keys?q=d866f103`)).json();
      expect(flagged.map((k: { state: string }) => k.state)).toEqual(['conflict', 'conflict']);
      const conflictEvents = (await get(`${API}/audit?action=key.conflict`)).json();
      expect(conflictEvents).toHaveLength(1);
    });

    it('a file it cannot read is one rejected entry with line 0', async () => {
      const r = await upload({ client: 'Contoso' }, [{ name: 'notes.txt', content: 'hello, this is not a key file' }]);
      expect(r.statusCode).toBe(200);
      expect(r.json()).toMatchObject({ imported: 0, rejected: [{ file: 'notes.txt', line: 0, reason: expect.any(String) }] });
    });
  });

  describe('devices and keys', () => {
    it('lists devices with their client and key count; one device has volumes and key metadata, never a password', async () => {
      const list = await get(`${API}/devices?clientId=${contoso}`);
      expect(list.statusCode).toBe(200);
      const devices = list.json() as { id: string; name: string; client: { id: string }; keys: number; serial: string | null; primaryUser: string | null }[];
      expect(devices.map((d) => d.name)).toEqual(expect.arrayContaining(['FAKE-LAPTOP-01', 'FAKE-LAPTOP-02', 'FAKE-DESKTOP-03', 'FAKE-TXT-LAPTOP']));
      expect(devices.every((d) => d.client.id === contoso)).toBe(true);
      const laptop = devices.find((d) => d.name === 'FAKE-LAPTOP-01')!;
      expect(laptop).toMatchObject({ serial: LAPTOP_01.serial, primaryUser: LAPTOP_01.user, keys: 1 });

      const all = (await get(`${API}/devices`)).json();
      expect(all.length).toBe(devices.length + 2);
      expect((await get(`${API}/devices?q=fake-laptop-01`)).json().map((d: { id: string }) => d.id)).toEqual([laptop.id]);
      expect((await get(`${API}/devices?limit=1&offset=1&clientId=${contoso}`)).json()).toEqual([devices[1]]);

      const one = await get(`${API}/devices/${laptop.id}`);
      expect(one.statusCode).toBe(200);
      const d = one.json();
      expect(d).toMatchObject({ id: laptop.id, name: 'FAKE-LAPTOP-01', client: { id: contoso, name: 'Contoso' }, domain: 'corp.example' });
      expect(d.volumes).toEqual([expect.objectContaining({ mountPoint: 'C:', type: expect.any(String) })]);
      expect(d.recoveryKeys).toEqual([
        expect.objectContaining({
          keyId: LAPTOP_01.keyId,
          state: 'active',
          device: { id: laptop.id, name: 'FAKE-LAPTOP-01' },
          sources: [expect.objectContaining({ type: 'import', ref: 'keys-with-ids.csv' })],
        }),
      ]);
      const desk = (await get(`${API}/devices/${devices.find((x) => x.name === 'FAKE-DESKTOP-03')!.id}`)).json();
      expect(desk.volumes.length).toBe(2);
      for (const r of [list, one]) expectNoLeak(r, allSecrets());
      expect(JSON.stringify(all)).not.toMatch(/\d{6}-\d{6}-\d{6}/);
    });

    it('searches keys by an 8-character key-ID prefix, device name, serial and user; metadata only', async () => {
      const byPrefix = await get(`${API}/keys?q=${LAPTOP_01.keyId.slice(0, 8).toUpperCase()}`);
      expect(byPrefix.statusCode).toBe(200);
      expect(byPrefix.json().map((k: { keyId: string }) => k.keyId)).toEqual([LAPTOP_01.keyId]);
      for (const q of ['FAKE-LAPTOP-01', 'laptop-01', LAPTOP_01.serial, 'jane.doe']) {
        const r = await get(`${API}/keys?q=${encodeURIComponent(q)}`);
        expect(r.statusCode, q).toBe(200);
        expect(
          r.json().map((k: { keyId: string }) => k.keyId),
          q,
        ).toEqual([LAPTOP_01.keyId]);
      }
      const full = await get(`${API}/keys?q=${encodeURIComponent(`{${LAPTOP_01.keyId.toUpperCase()}}`)}`);
      expect(full.json().map((k: { keyId: string }) => k.keyId)).toEqual([LAPTOP_01.keyId]);
      const fab = await get(`${API}/keys?clientId=${fabrikam}`);
      expect(
        fab
          .json()
          .map((k: { keyId: string }) => k.keyId)
          .sort(),
      ).toEqual(AMBIGUOUS.map((k) => k.keyId));
      expect((await get(`${API}/keys?q=abcdef01`)).json()).toHaveLength(2);
      const all = await get(`${API}/keys?limit=1000`);
      for (const r of [byPrefix, full, fab, all]) expectNoLeak(r, allSecrets());
      expect(all.body).not.toMatch(/\d{6}-\d{6}-\d{6}/);
      const reasons = (await get(`${API}/keys/reasons`)).json();
      expect(reasons).toEqual(
        expect.arrayContaining([
          { code: 'lost-pin', label: 'Lost PIN' },
          { code: 'other', label: expect.any(String) },
        ]),
      );
    });

    it('gets one key by its record id', async () => {
      const id = (await get(`${API}/keys?q=${LAPTOP_01.keyId.slice(0, 8)}`)).json()[0].id;
      const r = await get(`${API}/keys/${id}`);
      expect(r.statusCode).toBe(200);
      expect(r.json()).toMatchObject({
        id,
        keyId: LAPTOP_01.keyId,
        client: { id: contoso, name: 'Contoso' },
        device: { name: 'FAKE-LAPTOP-01' },
        volume: { mountPoint: 'C:' },
        state: 'active',
        createdAt: expect.stringMatching(/^2024-03-01/),
      });
      expect(Object.keys(r.json()).sort()).toEqual([
        'client',
        'createdAt',
        'device',
        'firstSeenAt',
        'id',
        'keyId',
        'lastSeenAt',
        'mayNotUnlock',
        'sources',
        'state',
        'volume',
      ]);
      expectNoLeak(r, allSecrets());
    });

    it('reveals by prefix: 200 with the recovery password, and the key becomes disclosed', async () => {
      const r = await send('POST', `${API}/keys/${LAPTOP_01.keyId.slice(0, 8)}/reveal`, { reason: 'other', ticket: 'T-1001', note: 'user on the phone' });
      expect(r.statusCode).toBe(200);
      expect(r.json()).toMatchObject({ status: 'revealed', key: { keyId: LAPTOP_01.keyId, recoveryPassword: LAPTOP_01.password, state: 'disclosed' } });
      expect(r.headers['cache-control']).toBe('no-store');
      const after = (await get(`${API}/keys/${r.json().key.id}`)).json();
      expect(after.state).toBe('disclosed');
      expect(after.recoveryPassword).toBeUndefined();
    });

    it('an ambiguous prefix answers 200 "ambiguous" with the candidates and no password', async () => {
      const r = await send('POST', `${API}/keys/abcdef01/reveal`, { reason: 'lost-pin' });
      expect(r.statusCode).toBe(200);
      expect(r.json()).toMatchObject({ status: 'ambiguous', matches: 2 });
      expect(
        r
          .json()
          .candidates.map((k: { keyId: string }) => k.keyId)
          .sort(),
      ).toEqual(AMBIGUOUS.map((k) => k.keyId));
      expect(r.json().key).toBeUndefined();
      expectNoLeak(r, allSecrets());
      // The full ID picks one.
      const one = await send('POST', `${API}/keys/${AMBIGUOUS[1]!.keyId}/reveal`, { reason: 'lost-pin' });
      expect(one.json()).toMatchObject({ status: 'revealed', key: { recoveryPassword: AMBIGUOUS[1]!.password } });
    });
  });

  describe('audit', () => {
    type Ev = {
      seq: number;
      action: string;
      clientId: string | null;
      occurredAt: string;
      outcome: string;
      details: Record<string, unknown> | null;
      actorId: string;
      reasonCode: string | null;
      ticket: string | null;
    };
    let all: Ev[];

    beforeAll(async () => {
      all = (await get(`${API}/audit?limit=1000`)).json();
    });

    it('lists events newest first, filtered by action, outcome and client, paged with beforeSeq', async () => {
      expect(all.length).toBeGreaterThan(10);
      expect(all.map((e) => e.seq)).toEqual([...all.map((e) => e.seq)].sort((a, b) => b - a));
      const reveals = (await get(`${API}/audit?action=key.reveal`)).json() as Ev[];
      expect(reveals.map((e) => e.outcome)).toEqual(['success', 'ambiguous', 'success']);
      expect(reveals[2]).toMatchObject({
        actorId: ownerId,
        reasonCode: 'other',
        ticket: 'T-1001',
        clientId: contoso,
        details: expect.objectContaining({ note: 'user on the phone' }),
      });
      expect((await get(`${API}/audit?action=key.reveal&outcome=ambiguous`)).json()).toHaveLength(1);

      const forContoso = (await get(`${API}/audit?clientId=${contoso}&limit=1000`)).json() as Ev[];
      expect(forContoso.length).toBeGreaterThan(0);
      expect(forContoso.every((e) => e.clientId === contoso)).toBe(true);
      expect(forContoso.map((e) => e.action)).toEqual(expect.arrayContaining(['keys.import', 'key.reveal']));
      expect(forContoso.length).toBe(all.filter((e) => e.clientId === contoso).length);

      const page1 = (await get(`${API}/audit?limit=3`)).json() as Ev[];
      const page2 = (await get(`${API}/audit?limit=3&beforeSeq=${page1[2]!.seq}`)).json() as Ev[];
      expect([...page1, ...page2].map((e) => e.seq)).toEqual(all.slice(0, 6).map((e) => e.seq));
      expectNoLeak(JSON.stringify(all), allSecrets());
    });

    it('filters by time: from is inclusive, to is exclusive', async () => {
      const mid = all[Math.floor(all.length / 2)]!;
      const from = (await get(`${API}/audit?limit=1000&from=${encodeURIComponent(mid.occurredAt)}`)).json() as Ev[];
      expect(from.map((e) => e.seq)).toEqual(all.filter((e) => e.occurredAt >= mid.occurredAt).map((e) => e.seq));
      expect(from.map((e) => e.seq)).toContain(mid.seq);
      const to = (await get(`${API}/audit?limit=1000&to=${encodeURIComponent(mid.occurredAt)}`)).json() as Ev[];
      expect(to.map((e) => e.seq)).toEqual(all.filter((e) => e.occurredAt < mid.occurredAt).map((e) => e.seq));
      const future = new Date(Date.now() + 3600_000).toISOString();
      expect((await get(`${API}/audit?from=${encodeURIComponent(future)}`)).json()).toEqual([]);
      const both = (await get(`${API}/audit?limit=1000&from=${encodeURIComponent(all.at(-1)!.occurredAt)}&to=${encodeURIComponent(future)}`)).json();
      expect(both).toHaveLength(all.length);
    });

    it('compares times as instants: a bound with a UTC offset or without milliseconds means the same moment', async () => {
      const mid = all[Math.floor(all.length / 2)]!;
      const at = Date.parse(mid.occurredAt);
      const atOrAfter = (ms: number) => all.filter((e) => Date.parse(e.occurredAt) >= ms).map((e) => e.seq);
      const before = (ms: number) => all.filter((e) => Date.parse(e.occurredAt) < ms).map((e) => e.seq);

      // The same instant, written in UTC+05:30 and UTC-08:00.
      for (const offset of [330, -480]) {
        const f = withOffset(at, offset);
        expect(Date.parse(f)).toBe(at);
        const r = await get(`${API}/audit?limit=1000&from=${encodeURIComponent(f)}`);
        expect(r.statusCode, f).toBe(200);
        expect
          .soft(
            r.json().map((e: Ev) => e.seq),
            `from=${f}`,
          )
          .toEqual(atOrAfter(at));
        const r2 = await get(`${API}/audit?limit=1000&to=${encodeURIComponent(f)}`);
        expect
          .soft(
            r2.json().map((e: Ev) => e.seq),
            `to=${f}`,
          )
          .toEqual(before(at));
      }
      // Whole seconds, no fraction: "2025-01-01T10:00:00Z".
      const second = Math.floor(at / 1000) * 1000;
      const plain = new Date(second).toISOString().replace('.000Z', 'Z');
      const r = await get(`${API}/audit?limit=1000&from=${encodeURIComponent(plain)}`);
      expect
        .soft(
          r.json().map((e: Ev) => e.seq),
          `from=${plain}`,
        )
        .toEqual(atOrAfter(second));
      const r2 = await get(`${API}/audit?limit=1000&to=${encodeURIComponent(plain)}`);
      expect
        .soft(
          r2.json().map((e: Ev) => e.seq),
          `to=${plain}`,
        )
        .toEqual(before(second));
    });

    it('exports CSV (header row, JSON details quoted) and JSON lines, oldest first; the export is audited', async () => {
      const csv = await get(`${API}/audit/export?format=csv`);
      expect(csv.statusCode).toBe(200);
      expect(csv.headers['content-type']).toMatch(/^text\/csv/);
      expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="keywarden-audit-\d{4}-\d{2}-\d{2}\.csv"$/);
      const lines = csv.body.split(/\r?\n/);
      expect(lines[0]).toBe(
        'seq,occurredAt,actorType,actorId,actorName,action,outcome,clientId,targetType,targetId,reasonCode,ticket,ip,userAgent,details,actor,actionLabel,device,keyId,reasonLabel',
      );
      const rows = parseCsv(csv.body, { columns: true }) as Record<string, string>[];
      // The export records itself first, then reads: it is the last row.
      expect(rows.length).toBe(all.length + 1);
      expect(rows.at(-1)).toMatchObject({ action: 'audit.export', outcome: 'success', actorId: ownerId });
      expect(rows.map((r) => Number(r.seq))).toEqual([...all.map((e) => e.seq)].reverse().concat([rows.at(-1)!.seq].map(Number)));
      const reveal = all.find((e) => e.action === 'key.reveal' && e.ticket === 'T-1001')!;
      const row = rows.find((r) => Number(r.seq) === reveal.seq)!;
      expect(JSON.parse(row.details!)).toEqual(reveal.details);
      expect(row).toMatchObject({ reasonCode: 'other', ticket: 'T-1001', action: 'key.reveal' });
      // The JSON is quoted as one CSV field, its quotes doubled.
      expect(csv.body).toContain(`"{""keyId"":""${LAPTOP_01.keyId}""`);
      expectNoLeak(csv.body, allSecrets());

      const jl = await get(`${API}/audit/export?format=jsonl&action=key.reveal`);
      expect(jl.statusCode).toBe(200);
      expect(jl.headers['content-type']).toMatch(/^application\/x-ndjson/);
      expect(jl.body.endsWith('\n')).toBe(true);
      const events = jl.body
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Ev);
      expect(events.map((e) => e.seq)).toEqual(
        all
          .filter((e) => e.action === 'key.reveal')
          .map((e) => e.seq)
          .reverse(),
      );
      expect(events[0]).toEqual(all.find((e) => e.seq === events[0]!.seq));

      const dflt = await get(`${API}/audit/export?clientId=${fabrikam}`);
      expect(dflt.headers['content-type']).toMatch(/^application\/x-ndjson/);
      expect(
        dflt.body
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l).clientId)
          .every((c: string) => c === fabrikam),
      ).toBe(true);

      const exports = (await get(`${API}/audit?action=audit.export`)).json() as Ev[];
      expect(exports).toHaveLength(3);
      expect(exports[0]!.details).toMatchObject({ filter: { clientId: fabrikam } });
    });

    it('verifies the hash chain', async () => {
      const r = await get(`${API}/audit/verify`);
      expect(r.statusCode).toBe(200);
      const count = (await get(`${API}/audit?limit=1000`)).json().length;
      expect(r.json()).toEqual({ intact: true, events: count, headSeq: count });
    });
  });

  describe('users', () => {
    let userId: string;
    const email = 'tech.one@example.test';
    const pw = 'technician password 1';

    it('creates a user with a role and clients; lists and reads them', async () => {
      const r = await send('POST', `${API}/users`, { email: 'Tech.One@Example.TEST', name: 'Tech One', password: pw, role: 'technician', clients: [contoso] });
      expect(r.statusCode).toBe(201);
      expect(r.json()).toEqual({
        id: expect.any(String),
        email,
        name: 'Tech One',
        role: 'technician',
        clients: [contoso],
        status: 'active',
        mfaEnabled: false,
        totpEnabled: false,
        ssoOnly: false,
        lastLoginAt: null,
        createdAt: expect.any(String),
      });
      expect(r.body).not.toContain(pw);
      userId = r.json().id;
      expect((await send('POST', `${API}/users`, { email, password: pw, role: 'auditor', clients: 'all' })).statusCode).toBe(409);
      const short = await send('POST', `${API}/users`, { email: 'short@example.test', password: 'short', role: 'auditor', clients: 'all' });
      expect(short.statusCode).toBe(400);
      expect(short.json().fields).toEqual([{ field: 'password', message: expect.stringMatching(/12/) }]);

      const list = (await get(`${API}/users`)).json();
      expect(list.map((u: { email: string }) => u.email)).toEqual(['owner@example.test', email]);
      expect((await get(`${API}/users/${userId}`)).json()).toEqual(r.json());
    });

    it('the new user signs in and sees only their client', async () => {
      const s = await t.signIn(email, pw);
      expect((await get(`${API}/clients`, s.headers)).json().map((c: { name: string }) => c.name)).toEqual(['Contoso']);
      expect((await get(`${API}/audit`, s.headers)).statusCode).toBe(403);
      expect((await get(`${API}/users/${userId}`)).json().lastLoginAt).toBeTruthy();
    });

    it('changes role and clients, renames, disables and enables', async () => {
      const s = await t.signIn(email, pw);
      const role = await send('PATCH', `${API}/users/${userId}`, { role: 'auditor', clients: 'all' });
      expect(role.statusCode).toBe(200);
      expect(role.json()).toMatchObject({ role: 'auditor', clients: 'all' });
      // The running session follows the new role at once.
      expect((await get(`${API}/audit`, s.headers)).statusCode).toBe(200);
      expect((await get(`${API}/clients`, s.headers)).json()).toHaveLength(2);

      const name = await send('PATCH', `${API}/users/${userId}`, { name: 'Tech Number One' });
      expect(name.json()).toMatchObject({ name: 'Tech Number One', role: 'auditor' });

      const off = await send('PATCH', `${API}/users/${userId}`, { status: 'disabled' });
      expect(off.json().status).toBe('disabled');
      expect((await get(`${API}/me`, s.headers)).statusCode).toBe(401);
      expect((await t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email, password: pw } })).statusCode).toBe(401);
      const on = await send('PATCH', `${API}/users/${userId}`, { status: 'active' });
      expect(on.json().status).toBe('active');
      await t.signIn(email, pw);

      const audit = (await get(`${API}/audit?targetId=${userId}&limit=100`)).json().map((e: { action: string }) => e.action);
      expect(audit).toEqual(expect.arrayContaining(['user.create', 'user.role', 'user.update']));
      expect((await get(`${API}/users/${userId}`)).json()).toMatchObject({ name: 'Tech Number One', role: 'auditor', clients: 'all', status: 'active' });
    });

    it("sets a user's password", async () => {
      const next = 'a completely new password';
      expect((await send('POST', `${API}/users/${userId}/password`, { password: next })).json()).toEqual({ ok: true });
      expect((await t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email, password: pw } })).statusCode).toBe(401);
      await t.signIn(email, next);
    });

    it('a display name with invisible or text-direction characters is refused; full-width forms are folded', async () => {
      const bad = await send('POST', `${API}/users`, {
        email: 'bidi.name@example.test',
        password: 'bidi name password',
        role: 'auditor',
        clients: 'all',
        name: 'Eve\u202eliam',
      });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().fields?.[0]?.field).toBe('name');
      const good = await send('POST', `${API}/users`, {
        email: 'wide.name@example.test',
        password: 'wide name password',
        role: 'auditor',
        clients: 'all',
        name: 'Ｅve  Smith',
      });
      expect(good.statusCode).toBe(201);
      expect(good.json().name).toBe('Eve Smith');
    });

    it('keeps the last owner: cannot disable or demote yourself into an ownerless vault', async () => {
      expect((await send('PATCH', `${API}/users/${ownerId}`, { status: 'disabled' })).statusCode).toBe(400);
      expect((await send('PATCH', `${API}/users/${ownerId}`, { role: 'admin' })).statusCode).toBe(400);
      expect((await get(`${API}/me`)).json().actor.role).toBe('owner');
    });

    it('an owner of one client does not count: the last owner of all clients cannot narrow themselves to one', async () => {
      const client = (await send('POST', `${API}/clients`, { name: 'Last Owner Test Client' })).json();
      expect(
        (await send('POST', `${API}/users`, { email: 'one.client.owner@example.test', password: 'one client owner pw', role: 'owner', clients: [client.id] }))
          .statusCode,
      ).toBe(201);
      const r = await send('PATCH', `${API}/users/${ownerId}`, { clients: [client.id] });
      expect(r.statusCode).toBe(400);
      expect(r.json().message).toMatch(/last active owner of all clients/);
      expect((await get(`${API}/me`)).json().actor.clients).toBe('all');
    });
  });

  describe('API tokens', () => {
    it('creates, lists, uses and revokes a token', async () => {
      const r = await send('POST', `${API}/tokens`, { name: 'SIEM export', role: 'auditor', clients: 'all', expiresInDays: 30 });
      expect(r.statusCode).toBe(201);
      const { token, apiToken } = r.json();
      expect(token).toMatch(/^kw_/);
      expect(apiToken).toEqual({
        id: expect.any(String),
        name: 'SIEM export',
        prefix: token.slice(0, apiToken.prefix.length),
        role: 'auditor',
        clients: 'all',
        createdBy: ownerId,
        createdAt: expect.any(String),
        expiresAt: expect.any(String),
        lastUsedAt: null,
        revokedAt: null,
      });
      const days = (Date.parse(apiToken.expiresAt) - Date.parse(apiToken.createdAt)) / 86_400_000;
      expect(days).toBeCloseTo(30, 3);

      const list = await get(`${API}/tokens`);
      expect(list.json()).toEqual([expect.objectContaining({ id: apiToken.id, name: 'SIEM export' })]);
      expect(list.body).not.toContain(token);

      const used = await t.app.inject({
        method: 'GET',
        url: `${API}/audit/export?format=jsonl&action=token.create`,
        headers: { authorization: `Bearer ${token}` },
      });
      expect(used.statusCode).toBe(200);
      expect(used.body).not.toContain(token);

      expect((await send('DELETE', `${API}/tokens/${apiToken.id}`)).json()).toEqual({ ok: true });
      const after = (await get(`${API}/tokens`)).json()[0];
      expect(after.revokedAt).toBeTruthy();
      expect(after.lastUsedAt).toBeTruthy();
      expect((await t.app.inject({ method: 'GET', url: `${API}/audit`, headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401);
      expect((await send('DELETE', `${API}/tokens/0badc0de-0000-4000-8000-000000000000`)).statusCode).toBe(404);
    });
  });

  describe('settings', () => {
    it('reads and changes the vault settings', async () => {
      expect((await get(`${API}/settings`)).json()).toEqual({ requireMfa: false });
      expect((await send('PATCH', `${API}/settings`, {})).json()).toEqual({ requireMfa: false });
      const on = await send('PATCH', `${API}/settings`, { requireMfa: true });
      expect(on.statusCode).toBe(200);
      expect(on.json()).toEqual({ requireMfa: true });
      // The owner has no authenticator app yet, so the rule now applies to them too.
      expect((await get(`${API}/settings`)).statusCode).toBe(403);
      expect((await get(`${API}/me`)).json().mfaEnrolmentRequired).toBe(true);
      await t.container.settings.update(systemActor('test'), { requireMfa: false });
      expect((await get(`${API}/settings`)).json()).toEqual({ requireMfa: false });
      const events = (await get(`${API}/audit?action=settings.update`)).json();
      expect(events.map((e: { details: unknown }) => e.details)).toEqual([{ requireMfa: false }, { requireMfa: true }, {}]);
    });
  });

  it('signs out', async () => {
    const s = sessionFrom(await t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email: 'owner@example.test', password: PASSWORD } }));
    expect((await t.app.inject({ method: 'POST', url: `${API}/auth/logout`, headers: s.headers })).json()).toEqual({ ok: true });
    expect((await get(`${API}/me`, s.headers)).statusCode).toBe(401);
  });
});

describe(`readiness on ${ENGINE}`, () => {
  it('GET /readyz answers 503 once the database is gone', async () => {
    const t = await createTestApp();
    try {
      expect((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      await t.container.database.close();
      const r = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toEqual({ status: 'database unreachable' });
      expectNoLeak(r);
      expect((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await t.app.close();
      await t.db.drop();
    }
  });
});
