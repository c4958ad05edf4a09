/**
 * Compliance at scale: one client with N devices (default 100,000), seeded with batched inserts
 * (deterministic: the same devices, volumes and keys every run), then
 *   1. evaluateAll over every device (first evaluation: every device gets a status and a history row),
 *   2. evaluateAll again (nothing changed: the routine hourly run),
 *   3. the devices report as CSV (every device, streamed),
 *   4. the compliance summary as PDF,
 *   5. the compliance summary as CSV.
 * Each phase prints wall time and the peak RSS sampled every 10 ms during the phase (and the RSS
 * before it), so "memory bounded" can be read off: a report that held every row would grow with N.
 *
 *   npx tsx bench/compliance-report.ts [--devices N] [--engine sqlite|postgres|both]
 *
 * PostgreSQL: KEYWARDEN_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); a
 * throwaway database is created and dropped. The seeded recovery keys carry fake ciphertexts: this
 * measures evaluation and reporting, which never decrypt a key.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { buildContainer } from '../src/container.js';
import { initVault } from '../src/modules/vault/vault.service.js';
import { cliActor } from '../src/modules/authz/authz.js';
import { systemClock } from '../src/lib/clock.js';
import { nullNotifier } from '../src/modules/notifications/notifier.js';
import { sql } from 'kysely';
import { throwawayPostgres } from './lib.js';
import type { DevicesTable, KeySourcesTable, RecoveryKeysTable, VolumesTable } from '../src/db/schema.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const N = Number(arg('devices', '100000'));
const engines = arg('engine', 'both') === 'both' ? ['sqlite', 'postgres'] : [arg('engine', 'sqlite')];
const pgAdmin = process.env.KEYWARDEN_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const owner = cliActor('bench');
const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MB`;

/** A deterministic UUID from a number (xorshift), so every run seeds the same ids. */
function uuidOf(kind: number, i: number): string {
  let x = (i + 1) * 2654435761 + kind * 40503;
  const hex: string[] = [];
  for (let k = 0; k < 4; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    hex.push((x >>> 0).toString(16).padStart(8, '0'));
  }
  const h = hex.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Wall time, this process's CPU time (user + system: what the work costs even on a busy machine), peak RSS. */
async function phase<T>(name: string, fn: () => Promise<T>): Promise<{ ms: number; cpuMs: number; peak: number; before: number; result: T }> {
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const result = await fn();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  console.log(
    `  ${name.padEnd(36)} ${(ms / 1000).toFixed(2).padStart(7)} s (CPU ${(cpuMs / 1000).toFixed(2)} s)   RSS before ${mb(before).padStart(7)}, peak ${mb(peak).padStart(7)}`,
  );
  return { ms, cpuMs, peak, before, result };
}

const rows: Record<string, string>[] = [];
for (const engine of engines) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-bench-compliance-'));
  let drop: (() => Promise<void>) | undefined;
  const env: NodeJS.ProcessEnv = { KEYWARDEN_DATA_DIR: path.join(dir, 'data'), KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64') };
  if (engine === 'postgres') {
    const pg = await throwawayPostgres(pgAdmin, `kw_bench_compliance_${process.pid}`);
    env.KEYWARDEN_DATABASE_URL = pg.url;
    drop = pg.drop;
  }
  const config = loadConfig(env);
  const init = openDatabase(config.database);
  await initVault(config, init, owner, systemClock);
  await init.close();
  const c = await buildContainer(config, { notifier: nullNotifier });
  const db = c.database.db;
  const client = await c.clients.create(owner, { name: 'Bench Corp' });
  console.log(`\n== ${engine}: ${N.toLocaleString('en-US')} devices`);

  // ------------------------------------------------------------------ seed
  await phase('seed (batched inserts)', async () => {
    const now = new Date();
    const iso = (daysAgo: number) => new Date(now.getTime() - daysAgo * 86_400_000).toISOString();
    const B = 500;
    for (let start = 0; start < N; start += B) {
      const devices: DevicesTable[] = [];
      const volumes: VolumesTable[] = [];
      const keys: RecoveryKeysTable[] = [];
      const sources: KeySourcesTable[] = [];
      for (let i = start; i < Math.min(N, start + B); i++) {
        const id = uuidOf(1, i);
        const vol = uuidOf(2, i);
        const keyId = uuidOf(3, i);
        const name = `BENCH-PC-${String(i).padStart(6, '0')}`;
        // About 8% not compliant, in ways that exercise different rules: decrypted, not escrowed, stale.
        const decrypted = i % 50 === 7;
        const unescrowed = i % 50 === 13;
        const stale = i % 50 === 29;
        const seen = stale ? iso(45) : iso(i % 3);
        devices.push({
          id,
          client_id: client.id,
          name,
          name_key: name.toLowerCase(),
          domain: 'BENCH',
          serial: `SN${i}`,
          entra_device_id: null,
          ad_object_guid: null,
          ad_dn: null,
          agent_id: null,
          primary_user: null,
          facts: null,
          smbios_uuid: null,
          last_checkin_at: seen,
          first_seen_at: iso(200),
          last_seen_at: seen,
          retired_at: null,
          created_at: iso(200),
        });
        volumes.push({
          id: vol,
          client_id: client.id,
          device_id: id,
          mount_point: 'C:',
          volume_type: 'os',
          volume_guid: null,
          encryption_state: decrypted ? 'FullyDecrypted' : 'FullyEncrypted',
          last_reported_at: seen,
          created_at: iso(200),
          volume_status: decrypted ? 'FullyDecrypted' : 'FullyEncrypted',
          protection_status: decrypted ? 'Off' : 'On',
          lock_status: 'Unlocked',
          encryption_method: decrypted ? 'None' : 'XtsAes128',
          encryption_percentage: decrypted ? 0 : 100,
          protectors: decrypted
            ? '[]'
            : JSON.stringify([
                { id: uuidOf(4, i), type: 'Tpm' },
                { id: keyId, type: 'RecoveryPassword' },
              ]),
        });
        if (!decrypted && !unescrowed) {
          const kid = uuidOf(5, i);
          keys.push({
            id: kid,
            client_id: client.id,
            device_id: id,
            volume_id: vol,
            key_id: keyId,
            ciphertext: 'bench-not-a-real-ciphertext',
            data_key_version: 1,
            fingerprint: `bench-${i}`,
            state: 'active',
            source_created_at: iso(100),
            first_seen_at: iso(100),
            last_seen_at: seen,
            state_changed_at: iso(100),
            created_at: iso(100),
          });
          sources.push({
            id: uuidOf(6, i),
            client_id: client.id,
            recovery_key_id: kid,
            source_type: 'agent',
            source_ref: id,
            source_created_at: null,
            first_seen_at: iso(100),
            last_seen_at: seen,
            removed_at: null,
          });
        }
      }
      await db.transaction().execute(async (tx) => {
        await tx.insertInto('devices').values(devices).execute();
        await tx.insertInto('volumes').values(volumes).execute();
        if (keys.length) await tx.insertInto('recovery_keys').values(keys).execute();
        if (sources.length) await tx.insertInto('key_sources').values(sources).execute();
      });
    }
  });

  // A bulk load leaves PostgreSQL without statistics until autovacuum gets to it; a real vault has
  // them. (SQLite has none unless someone runs ANALYZE: the indexes are chosen to work without.)
  if (engine === 'postgres') await sql`analyze`.execute(db);

  // ------------------------------------------------------------------ evaluate
  const first = await phase('evaluateAll (first, all change)', () => c.compliance.evaluateAll());
  const again = await phase('evaluateAll (again, nothing changes)', () => c.compliance.evaluateAll());
  console.log(
    `    first: ${first.result.evaluated.toLocaleString('en-US')} devices, ${first.result.changed.toLocaleString('en-US')} changed = ${Math.round(first.result.evaluated / (first.ms / 1000)).toLocaleString('en-US')} devices/s; again: ${Math.round(again.result.evaluated / (again.ms / 1000)).toLocaleString('en-US')} devices/s`,
  );

  // ------------------------------------------------------------------ reports
  const toFile = (file: string) => fs.createWriteStream(path.join(dir, file));
  const csv = await phase('devices report, CSV', () =>
    c.reports.render(owner, { report: 'devices', clientId: client.id, format: 'csv' }, toFile('devices.csv')),
  );
  const pdf = await phase('compliance summary, PDF', () =>
    c.reports.render(owner, { report: 'compliance-summary', clientId: client.id, format: 'pdf' }, toFile('summary.pdf')),
  );
  const sumCsv = await phase('compliance summary, CSV', () =>
    c.reports.render(owner, { report: 'compliance-summary', clientId: client.id, format: 'csv' }, toFile('summary.csv')),
  );
  const lines = fs.readFileSync(path.join(dir, 'devices.csv'), 'utf8').split('\n').length - 2;
  console.log(
    `    devices.csv ${lines.toLocaleString('en-US')} rows, ${(fs.statSync(path.join(dir, 'devices.csv')).size / 1e6).toFixed(1)} MB; summary.pdf ${(fs.statSync(path.join(dir, 'summary.pdf')).size / 1e3).toFixed(0)} kB`,
  );

  rows.push({
    engine,
    devices: N.toLocaleString('en-US'),
    evalFirst: `${(first.ms / 1000).toFixed(1)} s (${Math.round(first.result.evaluated / (first.ms / 1000)).toLocaleString('en-US')}/s)`,
    evalAgain: `${(again.ms / 1000).toFixed(1)} s (${Math.round(again.result.evaluated / (again.ms / 1000)).toLocaleString('en-US')}/s)`,
    csv: `${(csv.ms / 1000).toFixed(2)} s (CPU ${(csv.cpuMs / 1000).toFixed(2)} s), peak ${mb(csv.peak)} (before ${mb(csv.before)})`,
    pdf: `${(pdf.ms / 1000).toFixed(2)} s (CPU ${(pdf.cpuMs / 1000).toFixed(2)} s), peak ${mb(pdf.peak)} (before ${mb(pdf.before)})`,
    sumCsv: `${(sumCsv.ms / 1000).toFixed(2)} s`,
  });
  await c.close();
  await drop?.();
  if (args.includes('--keep')) {
    // A throwaway vault: its master key is kept next to it so the data can be inspected.
    fs.writeFileSync(path.join(dir, 'master-key'), env.KEYWARDEN_MASTER_KEY!, { mode: 0o600 });
    console.log(`    kept ${dir}`);
  } else fs.rmSync(dir, { recursive: true, force: true });
}
console.log('\n| engine | devices | evaluateAll (first) | evaluateAll (unchanged) | devices CSV | summary PDF | summary CSV |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.engine} | ${r.devices} | ${r.evalFirst} | ${r.evalAgain} | ${r.csv} | ${r.pdf} | ${r.sumCsv} |`);
console.log(`\nprocess maxRSS (high-water mark, whole run): ${mb(process.resourceUsage().maxRSS * 1024)}`);
