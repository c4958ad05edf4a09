import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecoveryPassword } from '../src/domain/recovery-password.js';
import { systemActor } from '../src/modules/authz/authz.js';
import { generateDevices, DEMO_CLIENTS } from '../src/modules/demo/demo.data.js';
import { createRng } from '../src/modules/demo/demo.random.js';
import { seedBulkKeys, seedDemo, type DemoSummary } from '../src/modules/demo/demo.seed.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { startCommands } from '../src/cli/commands/demo.js';
import { cliRun, createTestVault, type TestVault } from './helpers/vault.js';
import { createTestDatabase, ENGINE } from './helpers/engine.js';

const REPO = path.resolve(import.meta.dirname, '..');

/** `keywarden demo`: a living MSP in an empty vault, built through the real services. */
describe('demo data', () => {
  let v: TestVault;
  let demo: DemoSummary;
  const actor = systemActor('test');
  beforeAll(async () => {
    v = await createTestVault();
    demo = await seedDemo(v.container, { seed: 7, password: 'demo-password-for-tests' });
  });
  afterAll(async () => v?.close());

  it('fills the vault with several clients, a few hundred devices and users of every role', async () => {
    expect(demo.clients.map((c) => c.name)).toEqual(DEMO_CLIENTS.map((c) => c.name));
    expect(demo.devices).toBeGreaterThanOrEqual(250);
    expect(demo.keys).toBeGreaterThanOrEqual(400);
    const users = await v.container.identity.listUsers(actor);
    expect(users.map((u) => u.role).sort()).toEqual(['admin', 'auditor', 'client-viewer', 'helpdesk', 'owner', 'technician']);
    expect(users.find((u) => u.role === 'client-viewer')!.clients).toEqual([demo.viewerClient.id]);
  });

  it('has keys from every source, volumes of every kind, and the findings an MSP meets', async () => {
    const db = v.container.database.db;
    const sources = (await db.selectFrom('key_sources').select('source_type').distinct().execute()).map((r) => r.source_type).sort();
    expect(sources).toEqual(['ad', 'agent', 'entra', 'import']);
    // Keys seen by more than one source (Entra + agent, AD + agent, TXT + agent).
    const multi = await db
      .selectFrom('key_sources')
      .select('recovery_key_id')
      .groupBy('recovery_key_id')
      .having((eb) => eb.fn.count('source_type'), '>', 1)
      .execute();
    expect(multi.length).toBeGreaterThan(20);
    const volumeTypes = (await db.selectFrom('volumes').select('volume_type').distinct().execute()).map((r) => r.volume_type).sort();
    expect(volumeTypes).toEqual(['fixed', 'os', 'removable']);
    const findings = (await db.selectFrom('findings').select('kind').where('resolved_at', 'is', null).distinct().execute()).map((r) => r.kind).sort();
    expect(findings).toEqual(['mismatch', 'no_recovery_password', 'unescrowed_key']);
    const states = (await db.selectFrom('recovery_keys').select('state').distinct().execute()).map((r) => r.state).sort();
    expect(states).toEqual(['active', 'conflict', 'disclosed', 'rotated']);
    // Suspended protection and an unencrypted data drive, as the agent reported them.
    expect(
      await db.selectFrom('volumes').select('id').where('protection_status', '=', 'Off').where('volume_status', '=', 'FullyEncrypted').execute(),
    ).not.toHaveLength(0);
    expect(await db.selectFrom('volumes').select('id').where('volume_status', '=', 'FullyDecrypted').execute()).not.toHaveLength(0);
    const jobs = (await db.selectFrom('jobs').select(['kind', 'state']).execute()).map((j) => `${j.kind}:${j.state}`);
    expect(jobs).toContain('rotate:succeeded');
    expect(jobs).toContain('rotate:pending');
  });

  it('records reveals with reasons in an intact audit chain', async () => {
    const reveals = await v.container.audit.list(actor, { action: 'key.reveal', limit: 100 });
    const outcomes = reveals.filter((e) => e.action === 'key.reveal').map((e) => e.outcome);
    expect(outcomes.filter((o) => o === 'success').length).toBe(demo.reveals);
    expect(outcomes).toContain('ambiguous');
    expect(outcomes).toContain('not_found');
    expect(await v.container.audit.verify(actor)).toMatchObject({ intact: true });
  });

  it('gives prefixes that find one key, and one prefix that finds two (the "several keys match" case)', async () => {
    for (const s of demo.samplePrefixes) {
      const found = await v.container.keys.searchByKeyId(actor, s.prefix);
      expect(found, s.prefix).toHaveLength(1);
      expect(found[0]!.device?.name).toBe(s.device);
      expect(found[0]!.client.name).toBe(s.client);
    }
    const both = await v.container.keys.searchByKeyId(actor, demo.ambiguousPrefix);
    expect(both).toHaveLength(2);
    expect(new Set(both.map((k) => k.client.name)).size).toBe(2);
  });

  it('stores checksum-valid recovery passwords that can be revealed', async () => {
    const r = await v.container.keys.revealByKeyId(actor, { query: demo.samplePrefixes[2]!.prefix, reason: 'bios-changed', ticket: 'T-1' });
    expect(r.status).toBe('revealed');
    if (r.status !== 'revealed') return;
    expect(parseRecoveryPassword(r.key.recoveryPassword)).toEqual({ ok: true, value: r.key.recoveryPassword });
  });

  it('shows the Entra ID and Active Directory connections its syncs came from, switched off and never scheduled, and the MSP branding', async () => {
    const entra = await v.container.graph.listConnections(actor);
    const ad = await v.container.directory.listConnections(actor);
    const names = (ids: string[]) => demo.clients.filter((c) => ids.includes(c.id)).map((c) => c.name);
    expect(names(entra.map((c) => c.clientId))).toEqual(demo.clients.filter((c) => c.sources.includes('entra')).map((c) => c.name));
    expect(names(ad.map((c) => c.clientId))).toEqual(demo.clients.filter((c) => c.sources.includes('ad')).map((c) => c.name));
    for (const c of entra) expect(c.enabled).toBe(false);
    const db = v.container.database.db;
    const adRows = await db.selectFrom('directory_connections').select(['enabled', 'client_id']).execute();
    expect(adRows.map((r) => Number(r.enabled))).toEqual(ad.map(() => 0));
    // The keys' Entra source names the same tenant as the connection.
    const tenants = (await db.selectFrom('key_sources').select('source_ref').where('source_type', '=', 'entra').distinct().execute()).map((r) => r.source_ref);
    expect(tenants.map((t) => t.toLowerCase()).sort()).toEqual(entra.map((c) => c.tenantId.toLowerCase()).sort());
    for (const c of ad) expect(c.hosts[0]).toMatch(/^dc01\.[a-z-]+\.example$/);
    const tasks = await db.selectFrom('scheduled_tasks').select('kind').where('kind', 'in', ['graph-sync', 'ad-sync']).execute();
    expect(tasks).toEqual([]);
    expect(await v.container.settings.getBranding(actor)).toMatchObject({ mspName: 'Northwind IT Services' });
  });

  it('refuses a vault that already has data', async () => {
    await expect(seedDemo(v.container)).rejects.toThrow(/already has clients, users or keys/);
  });

  it('adds bulk keys through the real ingest, findable by prefix', async () => {
    const r = await seedBulkKeys(v.container, 1200, { clients: 2, batch: 500 });
    expect(r.keys).toBe(1200);
    expect(r.clients).toEqual(['Bulk Client 01', 'Bulk Client 02']);
    const found = await v.container.keys.searchByKeyId(actor, r.sampleKeyIds[3]!);
    expect(found.map((k) => k.keyId)).toEqual([r.sampleKeyIds[3]]);
    const total = await v.container.database.db
      .selectFrom('recovery_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(total.n)).toBe(demo.keys + 1200);
  });

  it('is deterministic: the same seed gives the same devices and keys', () => {
    const a = generateDevices(createRng(42), DEMO_CLIENTS[0]!);
    const b = generateDevices(createRng(42), DEMO_CLIENTS[0]!);
    const c = generateDevices(createRng(43), DEMO_CLIENTS[0]!);
    expect(a).toEqual(b);
    expect(a.map((d) => d.volumes[0]!.keys[0]?.keyId)).not.toEqual(c.map((d) => d.volumes[0]!.keys[0]?.keyId));
    for (const d of a) for (const vol of d.volumes) for (const k of vol.keys) expect(parseRecoveryPassword(k.password).ok).toBe(true);
  });
});

describe('keywarden demo (CLI)', () => {
  let v: TestVault;
  beforeAll(async () => {
    v = await createTestVault();
  });
  afterAll(async () => v?.close());

  it('fills an empty vault, prints the demo credentials once, and refuses to run twice', async () => {
    const r = await v.cli(['demo', '--seed', '3']);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/DEMO ONLY/);
    expect(r.stdout).toMatch(/Password: demo-\S{12}/);
    expect(r.stdout).toMatch(/owner@northwind-msp\.example\s+owner/);
    expect(r.stdout).toMatch(/several keys match/);
    expect(r.stdout).toMatch(/sign in as helpdesk@northwind-msp\.example/);
    // The test vault is in ./data with its database named by KEYWARDEN_DATABASE_URL: both must be given again.
    expect(r.stdout).toContain('npx keywarden serve --data-dir ./data --database-url …');
    const again = await v.cli(['demo']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already has clients, users or keys/);
  });

  it('prints the command that serves the folder it filled, and that command (KEYWARDEN_DATA_DIR) opens the demo vault', { timeout: 120_000 }, async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-demo-'));
    const tdb = await createTestDatabase();
    const env: NodeJS.ProcessEnv = ENGINE === 'postgres' ? { KEYWARDEN_DATABASE_URL: tdb.url } : {};
    try {
      const r = await cliRun(['demo', '--data-dir', 'keywarden-demo'], env, cwd);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(/npm start {3}\(or/);
      if (ENGINE === 'sqlite') {
        expect(r.stdout).toContain('Start the console on this data folder:  npx keywarden serve --data-dir ./keywarden-demo\n');
        expect(r.stdout).toContain('(or: KEYWARDEN_DATA_DIR=./keywarden-demo npm start), then open http://127.0.0.1:8080');
      } else {
        expect(r.stdout).toContain('npx keywarden serve --data-dir ./keywarden-demo --database-url …');
        expect(r.stdout).toContain('(or: KEYWARDEN_DATA_DIR=./keywarden-demo KEYWARDEN_DATABASE_URL=… npm start)');
      }
      // What `npm start` runs (init, then serve) reads the folder from KEYWARDEN_DATA_DIR: the demo vault, its users.
      const start = { ...env, KEYWARDEN_DATA_DIR: './keywarden-demo' };
      expect((await cliRun(['init'], start, cwd)).stdout).toMatch(/keywarden-demo; nothing changed/);
      const users = JSON.parse((await cliRun(['user', 'list', '--json'], start, cwd)).stdout) as { email: string }[];
      expect(users.map((u) => u.email)).toContain('helpdesk@northwind-msp.example');
      // A new vault requires a second factor; the demo vault (one shared password) switches that off, audited, and says so.
      expect(r.stdout).toContain('A second factor is not required in this demo vault');
      const changes = JSON.parse((await cliRun(['audit', 'list', '--action', 'settings.update', '--json'], start, cwd)).stdout) as { details: unknown }[];
      expect(changes.map((e) => e.details)).toContainEqual({ requireMfa: false });
      // The folder holds the master key: git must not pick it up.
      expect(fs.readFileSync(path.join(REPO, '.gitignore'), 'utf8').split('\n')).toContain('keywarden-demo/');
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
      await tdb.drop();
    }
  });

  it('on the default folder it says `npm start`; elsewhere the folder, quoted when needed', () => {
    const cwd = '/srv/kw';
    expect(startCommands(cwd, loadConfig({}, {}, cwd))).toEqual(['Start the console:  npm start   (or: npx keywarden serve), then open http://127.0.0.1:8080']);
    const odd = startCommands(cwd, loadConfig({ KEYWARDEN_PORT: '9090' }, { dataDir: "/mnt/my demo's" }, cwd));
    expect(odd[0]).toBe(`Start the console on this data folder:  npx keywarden serve --data-dir '/mnt/my demo'\\''s'`);
    expect(odd[1]).toContain('then open http://127.0.0.1:9090');
  });

  it('rejects a bad --keys value', async () => {
    const r = await v.cli(['demo', '--keys', 'lots']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--keys must be a whole number/);
  });
});
