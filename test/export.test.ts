import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { armor } from 'age-encryption';
import { cliRun, createTestVault, owner, type TestVault } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';
import type { Actor } from '../src/modules/authz/authz.js';

/**
 * Offline break-glass bundles and the printed recovery sheet, on both engines: export with a
 * passphrase and with a recipient key, open both with nothing but the file (no server, data
 * folder, configuration or database), identical keys; wrong passphrase, wrong identity, tampered
 * and truncated bundles fail with clear words; every export is audited without a secret; the
 * sheet renders one page per device (poppler's pdftoppm / pdftotext).
 */
const REPO = path.resolve(import.meta.dirname, '..');
const PASSPHRASE = 'granite lantern orbit meadow 42';

type Row = { device: string; keyId: string; password: string; drive: string };
type Opened = { device: string | null; keyId: string | null; recoveryPassword: string; client: string; volume: string | null };

describe(`offline export bundles on ${ENGINE}`, () => {
  let v: TestVault;
  let work: string;
  const contoso: Row[] = [
    { device: 'FAKE-EXP-LAPTOP-1', keyId: randomKeyId(), password: randomRecoveryPassword(), drive: 'C:' },
    { device: 'FAKE-EXP-LAPTOP-1', keyId: randomKeyId(), password: randomRecoveryPassword(), drive: 'D:' },
    { device: 'FAKE-EXP-LAPTOP-2', keyId: randomKeyId(), password: randomRecoveryPassword(), drive: 'C:' },
    { device: 'FAKE-EXP-DESKTOP-3', keyId: randomKeyId(), password: randomRecoveryPassword(), drive: 'C:' },
    // Superseded below: it no longer unlocks anything and stays out of the bundle.
    { device: 'FAKE-EXP-DESKTOP-4', keyId: randomKeyId(), password: randomRecoveryPassword(), drive: 'C:' },
  ];
  const fabrikam: Row[] = [{ device: 'FAKE-EXP-OTHER-1', keyId: randomKeyId(), password: randomRecoveryPassword(), drive: 'C:' }];
  const exported = () => contoso.slice(0, 4);
  const all = () => [...contoso, ...fabrikam];
  const file = (name: string) => path.join(work, name);
  const write = (name: string, text: string | Buffer) => (fs.writeFileSync(file(name), text), file(name));
  /** A folder with nothing in it, and no KEYWARDEN_* variables: what "offline" means here. */
  const offline = (args: string[]) => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-offline-'));
    return cliRun(args, { PATH: process.env.PATH }, empty).then((r) => {
      const left = fs.readdirSync(empty);
      fs.rmSync(empty, { recursive: true, force: true });
      return { ...r, left };
    });
  };
  const sortKeys = (ks: { keyId: string | null; recoveryPassword: string; device: string | null }[]) =>
    ks.map((k) => `${k.device}|${k.keyId}|${k.recoveryPassword}`).sort();
  const expected = () => sortKeys(exported().map((k) => ({ device: k.device, keyId: k.keyId, recoveryPassword: k.password })));

  beforeAll(async () => {
    v = await createTestVault();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-export-'));
    await v.container.clients.create(owner, { name: 'Contoso' });
    await v.container.clients.create(owner, { name: 'Fabrikam' });
    await v.container.imports.importFile(owner, 'Contoso', { fileName: 'contoso.csv', bytes: bytes(csvOf(contoso)) });
    await v.container.imports.importFile(owner, 'Fabrikam', { fileName: 'fabrikam.csv', bytes: bytes(csvOf(fabrikam)) });
    await v.container.database.db.updateTable('recovery_keys').set({ state: 'superseded' }).where('key_id', '=', contoso[4]!.keyId).execute();
    // A revealed (disclosed) key still unlocks its drive until rotated: it stays in the bundle.
    const r = await v.container.keys.revealByKeyId(owner, { query: contoso[0]!.keyId, reason: 'lost-pin' });
    expect(r.status).toBe('revealed');
    fs.writeFileSync(file('pass.txt'), PASSPHRASE + '\n');
  });
  afterAll(async () => {
    await v.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  let passBundle: string;
  let recipBundle: string;
  let identityFile: string;
  let recipient: string;

  it('exports to a passphrase and opens it offline, in an empty folder without any configuration', async () => {
    passBundle = file('contoso-pass.age');
    const r = await v.cli(['export', '--client', 'contoso', '--out', passBundle, '--passphrase-file', file('pass.txt'), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ client: 'Contoso', keys: 4, devices: 3, out: passBundle, sheet: null, protection: 'passphrase' });
    const text = fs.readFileSync(passBundle, 'utf8');
    expect(text.startsWith('-----BEGIN AGE ENCRYPTED FILE-----')).toBe(true);
    expect(fs.statSync(passBundle).mode & 0o777).toBe(0o600);
    for (const k of all()) expect(text).not.toContain(k.password);

    const opened = await offline(['export', 'open', passBundle, '--passphrase-file', file('pass.txt'), '--json']);
    expect(opened.stderr).toBe('');
    expect(opened.code).toBe(0);
    expect(opened.left).toEqual([]); // nothing created: no data folder, no database
    const bundle = JSON.parse(opened.stdout) as { format: string; clients: { name: string }[]; keys: Opened[] };
    expect(bundle.format).toBe('keywarden-export');
    expect(bundle.clients.map((c) => c.name)).toEqual(['Contoso']);
    expect(sortKeys(bundle.keys)).toEqual(expected());
    expect(bundle.keys.every((k) => k.client === 'Contoso')).toBe(true);
    expect(bundle.keys.find((k) => k.keyId === contoso[1]!.keyId)?.volume).toBe('D:');

    // The human form lists client, device, key ID and password.
    const human = await offline(['export', 'open', passBundle, '--passphrase-file', file('pass.txt')]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`Contoso\\s+FAKE-EXP-LAPTOP-2\\s+C:\\s+\\{${contoso[2]!.keyId.toUpperCase()}\\}\\s+${contoso[2]!.password}`));
  });

  it('opens in a separate process with no KEYWARDEN_* environment and an empty working folder', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-offline-proc-'));
    try {
      const r = spawnSync(
        path.join(REPO, 'node_modules', '.bin', 'tsx'),
        [path.join(REPO, 'src', 'main.ts'), 'export', 'open', passBundle, '--passphrase-file', file('pass.txt'), '--json'],
        {
          cwd: empty,
          env: { PATH: process.env.PATH, HOME: empty },
          encoding: 'utf8',
        },
      );
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(sortKeys((JSON.parse(r.stdout) as { keys: Opened[] }).keys)).toEqual(expected());
      expect(fs.readdirSync(empty).filter((f) => !f.startsWith('.'))).toEqual([]);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it('exports to a recipient key made by keygen; both bundles hold identical keys', async () => {
    identityFile = file('identity.txt');
    const g = await offline(['export', 'keygen', '--out', identityFile, '--json']);
    expect(g.code).toBe(0);
    const out = JSON.parse(g.stdout) as { recipient: string; fingerprint: string };
    recipient = out.recipient;
    expect(recipient).toMatch(/^age1[a-z0-9]{58}$/);
    expect(fs.statSync(identityFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(identityFile, 'utf8')).toContain(`# public key: ${recipient}`);
    // keygen never overwrites an identity.
    expect((await offline(['export', 'keygen', '--out', identityFile])).code).toBe(2);

    recipBundle = file('contoso-recipient.age');
    const r = await v.cli(['export', '--client', 'Contoso', '--out', recipBundle, '--recipient', recipient, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).protection).toBe(`recipient ${out.fingerprint}`);

    const opened = await offline(['export', 'open', recipBundle, '--identity', identityFile, '--json']);
    expect(opened.code).toBe(0);
    expect(opened.left).toEqual([]);
    const fromRecipient = (JSON.parse(opened.stdout) as { keys: Opened[] }).keys;
    const fromPassphrase = (
      JSON.parse((await offline(['export', 'open', passBundle, '--passphrase-file', file('pass.txt'), '--json'])).stdout) as { keys: Opened[] }
    ).keys;
    expect(sortKeys(fromRecipient)).toEqual(sortKeys(fromPassphrase));
    expect(sortKeys(fromRecipient)).toEqual(expected());
  });

  it('a wrong passphrase or identity fails clearly, exit 1, and prints no key', async () => {
    const wrong = write('wrong.txt', 'granite lantern orbit meadow 43\n');
    const r = await offline(['export', 'open', passBundle, '--passphrase-file', wrong]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/The passphrase does not open this bundle: wrong passphrase/);
    expect(r.stdout).toBe('');

    const other = file('other-identity.txt');
    expect((await offline(['export', 'keygen', '--out', other])).code).toBe(0);
    const wrongId = await offline(['export', 'open', recipBundle, '--identity', other]);
    expect(wrongId.code).toBe(1);
    expect(wrongId.stderr).toMatch(/made for another recipient key/);

    const mixed = await offline(['export', 'open', passBundle, '--identity', identityFile]);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toMatch(/protected by a passphrase/);
    const mixed2 = await offline(['export', 'open', recipBundle, '--passphrase-file', file('pass.txt')]);
    expect(mixed2.code).toBe(1);
    expect(mixed2.stderr).toMatch(/made for a recipient key/);
    // No terminal to ask on: says how to give the passphrase instead of hanging.
    const noTty = await offline(['export', 'open', passBundle]);
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/--passphrase-file/);
    for (const out of [r, wrongId, mixed, mixed2, noTty]) for (const k of all()) expect(out.stdout + out.stderr).not.toContain(k.password);
  });

  it('a tampered or truncated bundle fails with "the bundle is damaged or was altered"', async () => {
    const binary = armor.decode(fs.readFileSync(passBundle, 'utf8'));
    const flipped = Uint8Array.from(binary);
    flipped[flipped.length - 30]! ^= 0x01;
    const cut = binary.subarray(0, binary.length - 17);
    const cases: [string, string | Uint8Array][] = [
      ['flipped.age', armor.encode(flipped)],
      ['truncated.age', armor.encode(cut)],
      ['binary-flipped.age', flipped],
      ['armor-cut.age', fs.readFileSync(passBundle, 'utf8').split('\n').slice(0, 4).join('\n')],
    ];
    for (const [name, content] of cases) {
      const f = write(name, Buffer.from(content));
      const r = await offline(['export', 'open', f, '--passphrase-file', file('pass.txt')]);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(/the bundle is damaged or was altered/i);
      expect(r.stdout, name).toBe('');
    }
    // The untouched binary form opens as well (what "age -o file.age" writes without -a).
    const bin = write('binary.age', Buffer.from(binary));
    const ok = await offline(['export', 'open', bin, '--passphrase-file', file('pass.txt'), '--json']);
    expect(ok.code).toBe(0);
    const notBundle = await offline(['export', 'open', write('plain.txt', 'hello'), '--passphrase-file', file('pass.txt')]);
    expect(notBundle.code).toBe(1);
    expect(notBundle.stderr).toMatch(/not an encrypted Keywarden bundle/);
  });

  it('refuses weak or empty passphrases and never overwrites a file', async () => {
    for (const weak of ['', 'k9#xQ', 'aaaaaaaaaaaaaaaa', 'password123456', 'Password1234!']) {
      const f = write('weak.txt', weak + '\n');
      const out = file('weak.age');
      const r = await v.cli(['export', '--client', 'Contoso', '--out', out, '--passphrase-file', f]);
      expect(r.code, weak).toBe(2);
      expect(r.stderr, weak).toMatch(/passphrase/i);
      expect(fs.existsSync(out), weak).toBe(false);
      if (weak) expect(r.stderr).not.toContain(weak);
    }
    const before = fs.readFileSync(passBundle);
    const again = await v.cli(['export', '--client', 'Contoso', '--out', passBundle, '--passphrase-file', file('pass.txt')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists/);
    expect(fs.readFileSync(passBundle).equals(before)).toBe(true);
    const badRecipient = await v.cli(['export', '--client', 'Contoso', '--out', file('bad.age'), '--recipient', 'age1notakey']);
    expect(badRecipient.code).toBe(2);
    expect(badRecipient.stderr).toMatch(/age X25519 public key/);
    expect((await v.cli(['export', '--client', 'Nobody', '--out', file('nobody.age'), '--passphrase-file', file('pass.txt')])).code).toBe(2);
  });

  it('the recovery sheet renders one page per device, each with its keys, and is audited', async () => {
    const pdf = file('sheet.pdf');
    const r = await v.cli(['export', '--client', 'Contoso', '--sheet', pdf, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ keys: 4, devices: 3, out: null, sheet: pdf });
    const pngDir = fs.mkdtempSync(path.join(work, 'png-'));
    const conv = spawnSync('pdftoppm', ['-png', '-r', '40', pdf, path.join(pngDir, 'page')], { encoding: 'utf8' });
    expect(conv.status, conv.stderr).toBe(0);
    const pages = fs.readdirSync(pngDir).filter((f) => f.endsWith('.png'));
    expect(pages.length).toBe(3);
    // Not blank: a page of large digits has many dark pixels (grey map, one byte per pixel).
    const gray = spawnSync('pdftoppm', ['-gray', '-r', '40', pdf, path.join(pngDir, 'gray')], { encoding: 'utf8' });
    expect(gray.status).toBe(0);
    const pgms = fs
      .readdirSync(pngDir)
      .filter((f) => f.endsWith('.pgm'))
      .sort();
    expect(pgms.length).toBe(3);
    for (const p of pgms) {
      const buf = fs.readFileSync(path.join(pngDir, p));
      const m = /^P5\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(buf.subarray(0, 50).toString('latin1'))!;
      const pixels = buf.subarray(buf.length - Number(m[1]) * Number(m[2]));
      const dark = pixels.filter((x) => x < 128).length;
      expect(dark / pixels.length, p).toBeGreaterThan(0.01);
    }
    // Page text: device, client, key ID and the 8 groups of each key, the footer.
    const devices = ['FAKE-EXP-DESKTOP-3', 'FAKE-EXP-LAPTOP-1', 'FAKE-EXP-LAPTOP-2'];
    for (let i = 0; i < 3; i++) {
      const t = spawnSync('pdftotext', ['-f', String(i + 1), '-l', String(i + 1), '-layout', pdf, '-'], { encoding: 'utf8' }).stdout;
      expect(t).toContain(devices[i]);
      expect(t).toContain('Client: Contoso');
      expect(t).toContain('DESTROY WHEN SUPERSEDED');
      for (const k of exported().filter((x) => x.device === devices[i])) {
        expect(t).toContain(k.keyId.toUpperCase());
        for (const g of k.password.split('-')) expect(t).toContain(g);
      }
      expect(t).not.toContain(contoso[4]!.keyId.toUpperCase());
      expect(t).not.toContain(fabrikam[0]!.keyId.toUpperCase());
    }
    // The PDF's metadata names no device and holds no password.
    const info = spawnSync('pdfinfo', [pdf], { encoding: 'utf8' }).stdout;
    expect(info).toMatch(/Pages:\s+3/);
    expect(info).not.toMatch(/FAKE-EXP/);
    const sheets = await v.container.audit.list(owner, { action: 'export.sheet' });
    expect(sheets[0]).toMatchObject({ outcome: 'success', details: { client: 'Contoso', keys: 4, devices: 3, pages: 3 } });
  });

  it('every export is audited with its scope and nothing secret', async () => {
    const events = await v.container.audit.list(owner, { action: 'export.bundle', limit: 1000 });
    const ok = events.filter((e) => e.outcome === 'success');
    expect(ok.map((e) => e.details?.protection).sort()).toEqual(['passphrase', 'recipient']);
    for (const e of ok) {
      expect(e.clientId).toBeTruthy();
      expect(e.details).toMatchObject({ client: 'Contoso', keys: 4, devices: 3, format: 'age-v1' });
    }
    expect(ok.find((e) => e.details?.protection === 'recipient')?.details?.recipientFingerprint).toMatch(/^age:[0-9a-f]{16}$/);
    const everything = JSON.stringify(await v.container.audit.list(owner, { limit: 1000 }));
    expect(everything).not.toContain(PASSPHRASE);
    expect(everything).not.toContain(recipient); // the fingerprint only
    for (const k of all()) expect(everything).not.toContain(k.password);
    expect((await v.container.audit.verify(owner)).intact).toBe(true);
  });

  it('an offboarded (crypto-shredded) client has nothing to export, and doctor skips it', async () => {
    // What offboarding leaves behind: no data key, keys marked destroyed, the client flagged.
    const fab = await v.container.clients.getByName(owner, 'Fabrikam');
    const db = v.container.database.db;
    await db.deleteFrom('data_keys').where('purpose', '=', 'client').where('scope', '=', fab.id).execute();
    await db.updateTable('recovery_keys').set({ state: 'destroyed' }).where('client_id', '=', fab.id).execute();
    await db.updateTable('clients').set({ offboarded_at: new Date().toISOString() }).where('id', '=', fab.id).execute();
    const r = await v.cli(['export', '--client', 'Fabrikam', '--out', file('fab.age'), '--passphrase-file', file('pass.txt')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/was offboarded on .*nothing to export/);
    expect(fs.existsSync(file('fab.age'))).toBe(false);
    const doctor = await v.cli(['doctor', '--json']);
    expect(doctor.code, doctor.stdout).toBe(0);
    const checks = (JSON.parse(doctor.stdout) as { checks: { name: string; detail: string }[] }).checks;
    expect(checks.find((c) => c.name === 'data keys')!.detail).toMatch(/all 1 clients \(1 offboarded, crypto-shredded client\(s\) skipped\)/);
  });

  it('only an owner exports; API tokens never; refusals are audited', async () => {
    const base = { id: 'x', name: 'x', clients: 'all' as const };
    const clientId = (await v.container.clients.getByName(owner, 'Contoso')).id;
    const actors: Actor[] = [
      { ...base, type: 'user', id: 'u-admin', name: 'admin@example.test', role: 'admin' },
      { ...base, type: 'user', id: 'u-tech', name: 'tech@example.test', role: 'technician' },
      { ...base, type: 'token', id: 't-owner', name: 'owner token', role: 'owner' },
      // An owner signed in without an authenticator app cannot step up.
      {
        ...base,
        type: 'user',
        id: 'u-owner',
        name: 'owner@example.test',
        role: 'owner',
        session: { id: 's', mfaAt: null, mfaEnrolled: false, mfaEnrolmentRequired: false },
      },
      // An owner whose second factor is older than the step-up window.
      {
        ...base,
        type: 'user',
        id: 'u-owner2',
        name: 'owner2@example.test',
        role: 'owner',
        session: { id: 's2', mfaAt: '2001-01-01T00:00:00.000Z', mfaEnrolled: true, mfaEnrolmentRequired: false },
      },
    ];
    for (const a of actors) {
      await expect(v.container.exports.exportClient(a, { clientId, protection: { kind: 'passphrase', passphrase: PASSPHRASE } }), a.id).rejects.toMatchObject({
        kind: a.id === 'u-owner2' ? 'step_up_required' : 'forbidden',
      });
    }
    const denied = await v.container.audit.list(owner, { action: 'export.bundle', outcome: 'denied' });
    expect(denied.map((e) => e.actorId).sort()).toEqual(actors.map((a) => a.id).sort());
  });
});
