import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, owner, type TestVault } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';
import { buildContainer, type Container } from '../src/container.js';
import { generateIdentity, openBundle } from '../src/crypto/bundle.js';
import { parseBundle } from '../src/domain/export-bundle.js';
import type { Clock } from '../src/lib/clock.js';

/**
 * Scheduled exports to a folder, driven by the real scheduler with an injected clock: each run
 * writes a timestamped bundle atomically (no temporary file left), older copies beyond `keep`
 * are deleted, every bundle opens with the identity, and each run is audited.
 */
class ManualClock implements Clock {
  constructor(private ms: number) {}
  now = () => new Date(this.ms).toISOString();
  advance(minutes: number) {
    this.ms += minutes * 60_000;
  }
}

describe(`scheduled exports on ${ENGINE}`, () => {
  let v: TestVault;
  let c: Container;
  let folder: string;
  const clock = new ManualClock(Date.parse('2026-03-01T02:00:00.000Z'));
  let identity: string;
  let recipient: string;
  const contoso = Array.from({ length: 3 }, (_, i) => ({ device: `FAKE-SCHED-${i}`, keyId: randomKeyId(), password: randomRecoveryPassword() }));
  const fabrikam = [{ device: 'FAKE-SCHED-FAB', keyId: randomKeyId(), password: randomRecoveryPassword() }];

  beforeAll(async () => {
    v = await createTestVault();
    // A second container over the same database handle, with a clock the test moves.
    c = await buildContainer(v.config, { clock, database: v.container.database });
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-sched-'));
    await v.container.clients.create(owner, { name: 'Contoso' });
    await v.container.clients.create(owner, { name: 'Fabrikam' });
    await v.container.imports.importFile(owner, 'Contoso', { fileName: 'c.csv', bytes: bytes(csvOf(contoso)) });
    await v.container.imports.importFile(owner, 'Fabrikam', { fileName: 'f.csv', bytes: bytes(csvOf(fabrikam)) });
    ({ identity, recipient } = await generateIdentity(clock.now()));
  });
  afterAll(async () => {
    await c.scheduler.stop();
    await v.close();
    fs.rmSync(folder, { recursive: true, force: true });
  });

  const open = async (file: string) => parseBundle(await openBundle(fs.readFileSync(file), { kind: 'identity', identity }))!;

  it('runs daily through the scheduler, keeps the newest N copies and rotates older ones', async () => {
    const clientId = (await c.clients.getByName(owner, 'Contoso')).id;
    const s = await c.exports.addSchedule(owner, { clientId, recipient, folder: path.join(folder, 'contoso'), frequency: 'daily', keep: 3 });
    expect(s).toMatchObject({ client: { id: clientId, name: 'Contoso' }, frequency: 'daily', keep: 3, recipientFingerprint: expect.stringMatching(/^age:/) });

    const seen: string[] = [];
    for (let day = 0; day < 5; day++) {
      expect(await c.scheduler.runDue()).toBe(1);
      // Nothing more is due until a day has passed.
      expect(await c.scheduler.runDue()).toBe(0);
      const files = fs.readdirSync(path.join(folder, 'contoso')).sort();
      expect(files.filter((f) => !f.endsWith('.age'))).toEqual([]); // no temporary file left behind
      expect(files.length).toBe(Math.min(day + 1, 3));
      const newest = files.at(-1)!;
      expect(newest).toMatch(/^keywarden-export-contoso-[0-9a-f]{8}-\d{8}T\d{6}Z\.age$/);
      expect(seen).not.toContain(newest);
      seen.push(newest);
      expect(fs.statSync(path.join(folder, 'contoso', newest)).mode & 0o777).toBe(0o600);
      clock.advance(24 * 60 + 11); // a day plus the scheduler's jitter (at most 10 minutes)
    }
    // The three newest survive, the two oldest were rotated away.
    expect(fs.readdirSync(path.join(folder, 'contoso')).sort()).toEqual(seen.slice(2));
    const b = await open(path.join(folder, 'contoso', seen.at(-1)!));
    expect(b.clients.map((x) => x.name)).toEqual(['Contoso']);
    expect(b.keys.map((k) => `${k.keyId}|${k.recoveryPassword}`).sort()).toEqual(contoso.map((k) => `${k.keyId}|${k.password}`).sort());

    const [listed] = await c.exports.listSchedules(owner);
    expect(listed!.lastStatus).toMatch(/^ok: 3 keys in keywarden-export-contoso-.*, 1 older copy removed$/);
    expect(listed!.lastFile).toBe(path.join(folder, 'contoso', seen.at(-1)!));
    const runs = await c.audit.list(owner, { action: 'export.bundle', limit: 100 });
    expect(runs.filter((e) => e.details?.scheduled === true).length).toBe(5);
    expect(runs[0]).toMatchObject({ actorType: 'system', outcome: 'success', details: { keys: 3, protection: 'recipient', scheduled: true } });
  });

  it('an all-clients schedule writes one bundle holding every client; removing a schedule stops it', async () => {
    const s = await c.exports.addSchedule(owner, { clientId: null, recipient, folder: path.join(folder, 'all'), frequency: 'weekly', keep: 2 });
    expect(await c.exports.runScheduleNow(s.id)).toMatch(/^ok: 4 keys/);
    const [file] = fs.readdirSync(path.join(folder, 'all'));
    expect(file).toMatch(/^keywarden-export-all-clients-/);
    const b = await open(path.join(folder, 'all', file!));
    expect(b.clients.map((x) => x.name).sort()).toEqual(['Contoso', 'Fabrikam']);
    expect(b.keys.length).toBe(4);

    // A folder that cannot be written (here: a file is in the way) fails the run, says so and audits it.
    const blocker = path.join(folder, 'not-a-folder');
    fs.writeFileSync(blocker, 'x');
    const broken = await c.exports.addSchedule(owner, { clientId: null, recipient, folder: blocker, frequency: 'daily', keep: 2 });
    const status = await c.exports.runScheduleNow(broken.id);
    expect(status).toMatch(/^failed: /);
    expect((await c.exports.listSchedules(owner)).find((x) => x.id === broken.id)).toMatchObject({ lastStatus: status, lastFile: null });
    const errors = await c.audit.list(owner, { action: 'export.bundle', outcome: 'error' });
    expect(errors[0]).toMatchObject({ targetId: broken.id, details: { scheduled: true, problem: status } });
    // Checked before anything was decrypted: no "exported" event for the failed run.
    expect((await c.audit.list(owner, { action: 'export.bundle', outcome: 'success', targetId: broken.id })).length).toBe(0);
    expect(fs.readFileSync(blocker, 'utf8')).toBe('x');

    for (const x of await c.exports.listSchedules(owner)) await c.exports.removeSchedule(owner, x.id);
    expect(await c.exports.listSchedules(owner)).toEqual([]);
    clock.advance(8 * 24 * 60);
    expect(await c.scheduler.runDue()).toBe(0);
    const removed = await c.audit.list(owner, { action: 'export.unschedule' });
    expect(removed.length).toBe(3);
  });

  it('the CLI adds, lists and removes schedules; a recipient key is required and checked', async () => {
    const dir = path.join(folder, 'cli');
    const add = await v.cli([
      'export',
      'schedule',
      'add',
      '--client',
      'Fabrikam',
      '--recipient',
      recipient,
      '--folder',
      dir,
      '--frequency',
      'weekly',
      '--keep',
      '4',
      '--json',
    ]);
    expect(add.code).toBe(0);
    const id = JSON.parse(add.stdout).id as string;
    const list = await v.cli(['export', 'schedule', 'list']);
    expect(list.stdout).toMatch(new RegExp(`${id}\\s+Fabrikam\\s+weekly\\s+4\\s+${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const run = await v.cli(['export', 'schedule', 'run', id]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^ok: 1 keys/);
    expect(fs.readdirSync(dir).length).toBe(1);

    expect((await v.cli(['export', 'schedule', 'add', '--client', 'Fabrikam', '--recipient', 'age1bad', '--folder', dir])).code).toBe(2);
    expect((await v.cli(['export', 'schedule', 'add', '--client', 'Fabrikam', '--recipient', recipient, '--folder', dir, '--keep', '0'])).code).toBe(2);
    expect((await v.cli(['export', 'schedule', 'add', '--recipient', recipient, '--folder', dir])).code).toBe(2);
    // There is no way to give a schedule a passphrase: nothing secret is ever stored.
    expect((await v.cli(['export', 'schedule', 'add', '--client', 'Fabrikam', '--passphrase-file', 'x', '--folder', dir])).code).toBe(2);

    expect((await v.cli(['export', 'schedule', 'remove', id])).code).toBe(0);
    expect((await v.cli(['export', 'schedule', 'remove', id])).code).toBe(2);
    const scheduled = await v.container.audit.list(owner, { action: 'export.schedule' });
    expect(scheduled[0]!.details).toMatchObject({ scope: 'client', frequency: 'weekly', keep: 4, recipientFingerprint: expect.stringMatching(/^age:/) });
    expect(JSON.stringify(scheduled)).not.toContain(recipient);
  });
});
