import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createTestVault, owner, randomMasterKey, type TestVault } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';
import { loadConfig } from '../src/config.js';
import { buildContainer } from '../src/container.js';

describe(`encryption at rest on ${ENGINE}`, () => {
  let v: TestVault;
  const passwords = Array.from({ length: 20 }, randomRecoveryPassword);
  const keyIds = passwords.map(() => randomKeyId());
  beforeAll(async () => {
    v = await createTestVault();
    await v.container.clients.create(owner, { name: 'Contoso' });
    await v.container.clients.create(owner, { name: 'Fabrikam' });
    const rows = passwords.map((password, i) => ({ device: `FAKE-ENC-${i}`, keyId: keyIds[i], password }));
    await v.container.imports.importFile(owner, 'Contoso', { fileName: 'a.csv', bytes: bytes(csvOf(rows.slice(0, 10))) });
    await v.container.imports.importFile(owner, 'Fabrikam', { fileName: 'b.csv', bytes: bytes(csvOf(rows.slice(10))) });
    // Reveal one so a disclosed key is in the data too.
    await v.container.keys.revealByKeyId(owner, { query: keyIds[0]!, reason: 'bios-changed' });
  });
  afterAll(() => v.close());

  /** Every form a password could be stored in: dashed, plain digits, and each 6-digit group run. */
  const forms = (pw: string) => [pw, pw.replace(/-/g, ''), pw.replace(/-/g, ' ')];

  it('never stores a recovery password in plaintext', async () => {
    let raw: Buffer;
    if (ENGINE === 'sqlite') {
      // Fold the WAL into the main file, then read both byte for byte.
      await sql`pragma wal_checkpoint(TRUNCATE)`.execute(v.container.database.db);
      const file = v.db.name;
      raw = Buffer.concat([fs.readFileSync(file), fs.existsSync(file + '-wal') ? fs.readFileSync(file + '-wal') : Buffer.alloc(0)]);
    } else {
      raw = execFileSync('pg_dump', ['--no-owner', '--data-only', v.db.url], { maxBuffer: 256 * 1024 * 1024 });
      expect(raw.toString('utf8')).toContain('recovery_keys');
    }
    expect(raw.length).toBeGreaterThan(1000);
    const text = raw.toString('latin1');
    for (const pw of passwords) for (const f of forms(pw)) expect(text.includes(f)).toBe(false);
    // Sanity check that the search itself works: key IDs (not secret) are in the dump.
    expect(text.includes(keyIds[1]!)).toBe(true);
  });

  it('fails clearly with the wrong master key', async () => {
    const config = loadConfig({ ...v.env, KEYWARDEN_MASTER_KEY: randomMasterKey() });
    await expect(buildContainer(config)).rejects.toThrow(/master key does not unlock this vault: it expects master key mk-[0-9a-f]{12}/);
    const r = await v.cli(['keys', 'list'], { env: { KEYWARDEN_MASTER_KEY: randomMasterKey() } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/master key does not unlock this vault/);
    const bad = await v.cli(['keys', 'list'], { env: { KEYWARDEN_MASTER_KEY: 'not-a-key' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/KEYWARDEN_MASTER_KEY must be 32 random bytes in base64/);
    expect(bad.stderr).not.toContain('not-a-key');
  });

  it('a ciphertext copied to another row, or to another client, does not decrypt', async () => {
    const db = v.container.database.db;
    const rowOf = (keyId: string) => db.selectFrom('recovery_keys').selectAll().where('key_id', '=', keyId).executeTakeFirstOrThrow();
    const source = await rowOf(keyIds[1]!); // Contoso
    const sameClient = await rowOf(keyIds[2]!); // Contoso
    const otherClient = await rowOf(keyIds[11]!); // Fabrikam
    for (const target of [sameClient, otherClient]) {
      await db.updateTable('recovery_keys').set({ ciphertext: source.ciphertext }).where('id', '=', target.id).execute();
      await expect(v.container.keys.revealByKeyId(owner, { query: target.key_id!, reason: 'lost-pin' })).rejects.toThrow(
        /does not decrypt: it was altered, or copied from another record or client/,
      );
    }
    // The failed attempts are in the audit log as errors, and the original still opens.
    const events = await v.container.audit.list(owner, { action: 'key.reveal', limit: 5 });
    expect(events.filter((e) => e.outcome === 'error').map((e) => e.targetId)).toEqual(expect.arrayContaining([sameClient.id, otherClient.id]));
    const ok = await v.container.keys.revealByKeyId(owner, { query: keyIds[1]!, reason: 'lost-pin' });
    expect(ok.status === 'revealed' && ok.key.recoveryPassword).toBe(passwords[1]);
  });

  it('a client data key moved to another client does not open', async () => {
    const db = v.container.database.db;
    const [a, b] = await db.selectFrom('data_keys').selectAll().where('purpose', '=', 'client').execute();
    await db.updateTable('data_keys').set({ wrapped_key: a!.wrapped_key }).where('id', '=', b!.id).execute();
    const fresh = await buildContainer(v.config);
    try {
      const client = await db.selectFrom('clients').select('name').where('id', '=', b!.scope).executeTakeFirstOrThrow();
      const keyId = client.name === 'Contoso' ? keyIds[3]! : keyIds[13]!;
      await expect(fresh.keys.revealByKeyId(owner, { query: keyId, reason: 'lost-pin' })).rejects.toThrow(/does not open: it was altered or moved/);
    } finally {
      await fresh.close();
    }
  });
});
