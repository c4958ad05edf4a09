import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, owner, type TestVault } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';
import { createKeyIngest } from '../src/modules/keys/keys.ingest.js';
import { createKeysRepo } from '../src/modules/keys/keys.repo.js';
import { createDevicesRepo } from '../src/modules/devices/devices.repo.js';
import { createImportsService } from '../src/modules/imports/imports.service.js';
import { transactions } from '../src/db/transactions.js';
import { createAuditService } from '../src/modules/audit/audit.service.js';
import { createAuditRepo } from '../src/modules/audit/audit.repo.js';
import { openKeyring } from '../src/crypto/keyring.js';
import { createVaultRepo } from '../src/modules/vault/vault.repo.js';
import { newId } from '../src/lib/ids.js';
import { systemClock } from '../src/lib/clock.js';

const txt = (keyId: string, password: string) =>
  [
    'BitLocker Drive Encryption recovery key',
    '',
    'To verify that this is the correct recovery key, compare the start of the following identifier with the identifier value displayed on your PC.',
    '',
    'Identifier:',
    '',
    `\t${keyId.toUpperCase()}`,
    '',
    'Recovery Key:',
    '',
    `\t${password}`,
    '',
  ].join('\r\n');

describe(`key ingestion on ${ENGINE}`, () => {
  let v: TestVault;
  beforeAll(async () => {
    v = await createTestVault();
    await v.container.clients.create(owner, { name: 'Contoso' });
    await v.container.clients.create(owner, { name: 'Fabrikam' });
  });
  afterAll(() => v.close());

  const importText = (client: string, fileName: string, text: string, extra: { device?: string; dryRun?: boolean } = {}) =>
    v.container.imports.importFile(owner, client, { fileName, bytes: bytes(text), defaultDevice: extra.device }, { dryRun: extra.dryRun });

  it('the same key from two sources is one key with two sources', async () => {
    const keyId = randomKeyId();
    const pw = randomRecoveryPassword();
    const a = await importText('Contoso', `BitLocker Recovery Key ${keyId.toUpperCase()}.TXT`, txt(keyId, pw), { device: 'FAKE-PC-1' });
    expect(a).toMatchObject({ imported: 1, duplicates: 0, conflicts: 0, rejected: [] });
    const b = await importText(
      'Contoso',
      'rmm-export.csv',
      csvOf([{ device: 'fake-pc-1', keyId: `{${keyId.toUpperCase()}}`, password: pw.replace(/-/g, ' ') }]),
    );
    expect(b).toMatchObject({ imported: 0, duplicates: 1, conflicts: 0 });

    const found = await v.container.keys.searchByKeyId(owner, keyId);
    expect(found).toHaveLength(1);
    expect(found[0]!.state).toBe('active');
    expect(found[0]!.device?.name).toBe('FAKE-PC-1');
    expect(found[0]!.sources.map((s) => s.ref).sort()).toEqual([`BitLocker Recovery Key ${keyId.toUpperCase()}.TXT`, 'rmm-export.csv'].sort());
    // Importing the same file again adds no key and no source.
    const c = await importText('Contoso', 'rmm-export.csv', csvOf([{ device: 'fake-pc-1', keyId, password: pw }]));
    expect(c).toMatchObject({ imported: 0, duplicates: 1 });
    expect((await v.container.keys.searchByKeyId(owner, keyId))[0]!.sources).toHaveLength(2);
  });

  it('a different password under the same key ID is a conflict: both kept and flagged', async () => {
    const keyId = randomKeyId();
    const first = randomRecoveryPassword();
    const second = randomRecoveryPassword();
    await importText('Contoso', 'a.csv', csvOf([{ device: 'FAKE-PC-2', keyId, password: first }]));
    const r = await importText('Contoso', 'b.csv', csvOf([{ device: 'FAKE-PC-2', keyId, password: second }]));
    expect(r).toMatchObject({ imported: 0, duplicates: 0, conflicts: 1 });

    const found = await v.container.keys.searchByKeyId(owner, keyId);
    expect(found).toHaveLength(2);
    expect(found.map((k) => k.state)).toEqual(['conflict', 'conflict']);
    // Both passwords are still there: a full-ID lookup is ambiguous, not silently one of them.
    const reveal = await v.container.keys.revealByKeyId(owner, { query: keyId, reason: 'tpm-reset' });
    expect(reveal.status).toBe('ambiguous');
    const events = await v.container.audit.list(owner, { action: 'key.conflict' });
    expect(events.some((e) => e.details?.keyId === keyId)).toBe(true);
    // Re-importing the conflicting file is now a duplicate, not a third row.
    const again = await importText('Contoso', 'b.csv', csvOf([{ device: 'FAKE-PC-2', keyId, password: second }]));
    expect(again).toMatchObject({ imported: 0, duplicates: 1, conflicts: 0 });
  });

  it('a key without an ID is matched by its password and gets the ID when a source supplies it', async () => {
    const keyId = randomKeyId();
    const pw = randomRecoveryPassword();
    await importText('Contoso', 'ninja.csv', `Device;BitLocker Key\nFAKE-PC-3;C: ${pw}\n`);
    expect(await v.container.keys.searchByKeyId(owner, keyId)).toHaveLength(0);
    const r = await importText('Contoso', 'agent.csv', csvOf([{ device: 'FAKE-PC-3', keyId, password: pw }]));
    expect(r).toMatchObject({ imported: 0, duplicates: 1, conflicts: 0 });
    const found = await v.container.keys.searchByKeyId(owner, keyId);
    expect(found).toHaveLength(1);
    expect(found[0]!.sources).toHaveLength(2);
  });

  it("keeps clients apart: the same key in another client is that client's own key", async () => {
    const keyId = randomKeyId();
    const pw = randomRecoveryPassword();
    await importText('Contoso', 'x.csv', csvOf([{ device: 'FAKE-PC-4', keyId, password: pw }]));
    const r = await importText('Fabrikam', 'x.csv', csvOf([{ device: 'FAKE-PC-4', keyId, password: pw }]));
    expect(r.imported).toBe(1);
    const found = await v.container.keys.searchByKeyId(owner, keyId);
    expect(found.map((k) => k.client.name).sort()).toEqual(['Contoso', 'Fabrikam']);
  });

  it('duplicates inside one file count once', async () => {
    const keyId = randomKeyId();
    const pw = randomRecoveryPassword();
    const r = await importText(
      'Contoso',
      'dup.csv',
      csvOf([
        { device: 'FAKE-PC-5', keyId, password: pw },
        { device: 'FAKE-PC-5', keyId, password: pw },
      ]),
    );
    expect(r).toMatchObject({ imported: 1, duplicates: 1, conflicts: 0 });
  });

  it('a dry run counts but saves nothing', async () => {
    const before = (await v.container.keys.list(owner)).length;
    const r = await importText('Contoso', 'dry.csv', csvOf([{ device: 'FAKE-PC-6', keyId: randomKeyId(), password: randomRecoveryPassword() }]), {
      dryRun: true,
    });
    expect(r.imported).toBe(1);
    expect((await v.container.keys.list(owner)).length).toBe(before);
  });

  it('bad rows are reported with their line and the rest goes in', async () => {
    const good = [randomRecoveryPassword(), randomRecoveryPassword()];
    const text = `Device,Key ID,Recovery Password\nFAKE-PC-7,${randomKeyId()},${good[0]}\nFAKE-PC-7,${randomKeyId()},123456-231453-873456-213546-654678-765689-123456-324565\nFAKE-PC-7,${randomKeyId()},${good[1]}\n`;
    const r = await importText('Contoso', 'mixed.csv', text);
    expect(r.imported).toBe(2);
    expect(r.rejected).toHaveLength(1);
    expect(r.rejected[0]).toMatchObject({ file: 'mixed.csv', line: 3 });
    expect(r.rejected[0]!.reason).not.toMatch(/\d{6}/);
  });

  it('a file that fails half-way leaves nothing behind', async () => {
    const c = v.container;
    const client = await c.clients.getByName(owner, 'Contoso');
    const db = c.database.db;
    const vaultRepo = createVaultRepo();
    const keyring = await openKeyring(vaultRepo, db, Buffer.from(v.masterKey, 'base64'), newId);
    const audit = createAuditService({ tx: transactions(db), repo: createAuditRepo(), keyring, clock: systemClock });
    // A devices repo that breaks on its second bulk insert: after the first chunk of keys was written
    // (500 keys on SQLite, 2,000 on PostgreSQL: src/db/bulk.ts, bulkStepRows).
    const real = createDevicesRepo();
    let calls = 0;
    const failing = {
      ...real,
      insertMany: async (...args: Parameters<typeof real.insertMany>) => {
        if (++calls === 2) throw new Error('disk full (simulated)');
        return real.insertMany(...args);
      },
    };
    const ingest = createKeyIngest({ keys: createKeysRepo(), devices: failing, keyring, audit, clock: systemClock });
    const imports = createImportsService({ tx: transactions(db), ingest, clients: c.clients, audit });
    const rows = Array.from({ length: 3000 }, (_, i) => ({ device: `FAKE-HALF-${i}`, keyId: randomKeyId(), password: randomRecoveryPassword() }));
    const keysBefore = (await c.keys.list(owner, { clientId: client.id })).length;
    const auditBefore = (await c.audit.list(owner, { limit: 1 }))[0]!.seq;
    await expect(imports.importFile(owner, 'Contoso', { fileName: 'half.csv', bytes: bytes(csvOf(rows)) })).rejects.toThrow('disk full');
    expect((await c.keys.list(owner, { clientId: client.id })).length).toBe(keysBefore);
    expect((await c.audit.list(owner, { limit: 1 }))[0]!.seq).toBe(auditBefore);
    const devices = await db.selectFrom('devices').select('id').where('name', 'like', 'FAKE-HALF-%').execute();
    expect(devices).toHaveLength(0);
  });
});
