/**
 * kill -9 in the middle of a CLI import. A file is imported in one transaction, so a process killed
 * after it has written some chunks leaves nothing of the file behind (no key, device, volume or
 * audit event), and the same import run again stores every key once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, owner, type TestVault } from './helpers/vault.js';
import { csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';

const REPO = path.resolve(import.meta.dirname, '..');
const KEYS = 12_000;

describe(`keywarden import killed with SIGKILL on ${ENGINE}`, () => {
  let v: TestVault;
  beforeAll(async () => {
    v = await createTestVault();
    expect((await v.cli(['client', 'add', 'Contoso'])).code).toBe(0);
    const rows = Array.from({ length: KEYS }, (_, i) => ({
      device: `FAKE-KILL-${Math.floor(i / 2)}`,
      keyId: randomKeyId(),
      password: randomRecoveryPassword(),
      drive: i % 2 ? 'D:' : 'C:',
    }));
    fs.writeFileSync(path.join(v.db.dir, 'big.csv'), csvOf(rows));
  });
  afterAll(async () => {
    await v.close();
  });

  const stored = async () => {
    const db = v.container.database.db;
    const client = await v.container.clients.getByName(owner, 'Contoso');
    const count = async (table: 'recovery_keys' | 'devices' | 'volumes') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('client_id', '=', client.id)
            .executeTakeFirstOrThrow()
        ).n,
      );
    return { keys: await count('recovery_keys'), devices: await count('devices'), volumes: await count('volumes') };
  };
  const lastAuditSeq = async () => (await v.container.audit.list(owner, { limit: 1 }))[0]!.seq;

  it('a process killed after some chunks were written leaves nothing behind; the import run again stores every key once', { timeout: 180_000 }, async () => {
    const auditBefore = await lastAuditSeq();
    const file = path.join(v.db.dir, 'big.csv');
    const proc = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'src', 'main.ts'), 'import', file, '--client', 'Contoso'], {
      cwd: REPO,
      env: { ...process.env, ...v.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on('exit', (_code, signal) => resolve(signal)));
    // The first progress line: at least one chunk of keys, devices and volumes is written (not committed).
    await new Promise<void>((resolve, reject) => {
      proc.stderr.on('data', (d) => {
        stderr += d;
        if (/big\.csv: [\d,]+ \/ 12,000 keys/.test(stderr)) resolve();
      });
      proc.on('exit', () => reject(new Error(`the import ended before it was killed:\n${stderr}`)));
    });
    proc.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    expect(await stored()).toEqual({ keys: 0, devices: 0, volumes: 0 });
    expect(await lastAuditSeq()).toBe(auditBefore);

    const again = await v.cli(['import', 'big.csv', '--client', 'Contoso', '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ imported: KEYS, duplicates: 0, conflicts: 0 });
    expect(await stored()).toEqual({ keys: KEYS, devices: KEYS / 2, volumes: KEYS });
  });
});
