/**
 * Makes docs/report-sample.png: the first page of a compliance summary PDF for a fictitious client
 * with 60 devices whose compliance improves over three weeks (evaluated with a clock that moves a
 * day at a time), branded with docs/logo-sample.png. Needs pdftoppm (poppler-utils).
 *
 *   npx tsx bench/report-sample.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { buildContainer } from '../src/container.js';
import { initVault } from '../src/modules/vault/vault.service.js';
import { cliActor } from '../src/modules/authz/authz.js';
import { systemClock } from '../src/lib/clock.js';
import { nullNotifier } from '../src/modules/notifications/notifier.js';

const repo = path.resolve(import.meta.dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-sample-'));
const owner = cliActor('sample');
const config = loadConfig({ KEYWARDEN_DATA_DIR: path.join(dir, 'data'), KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64') });
const init = openDatabase(config.database);
await initVault(config, init, owner, systemClock);
await init.close();
const clock = { at: Date.now() - 21 * 86_400_000, now: () => new Date(clock.at).toISOString() };
const c = await buildContainer(config, { notifier: nullNotifier, clock });
const db = c.database.db;
const client = await c.clients.create(owner, { name: 'Contoso Ltd' });
await c.settings.updateBranding(owner, {
  mspName: 'Northwind IT Services',
  logoPngBase64: fs.readFileSync(path.join(repo, 'docs/logo-sample.png')).toString('base64'),
});

const N = 60;
const devices = Array.from({ length: N }, (_, i) => ({
  id: randomUUID(),
  vol: randomUUID(),
  keyId: randomUUID(),
  name: `CONTOSO-${i < 40 ? 'LT' : 'WS'}-${String(i + 1).padStart(3, '0')}`,
}));
const iso = () => clock.now();
await db
  .insertInto('devices')
  .values(
    devices.map((d) => ({
      id: d.id,
      client_id: client.id,
      name: d.name,
      name_key: d.name.toLowerCase(),
      domain: 'CONTOSO',
      serial: null,
      entra_device_id: null,
      ad_object_guid: null,
      ad_dn: null,
      agent_id: null,
      primary_user: null,
      facts: null,
      smbios_uuid: null,
      last_checkin_at: iso(),
      first_seen_at: iso(),
      last_seen_at: iso(),
      retired_at: null,
      created_at: iso(),
    })),
  )
  .execute();
/** Day by day, more devices get encrypted and escrowed; a few stay broken for the report. */
const broken = (i: number, day: number) => (i % 3 === 0 && i > day * 3) || i === 7 || i === 44;
for (let day = 0; day <= 21; day++) {
  await db.deleteFrom('key_sources').where('client_id', '=', client.id).execute();
  await db.deleteFrom('recovery_keys').where('client_id', '=', client.id).execute();
  await db.deleteFrom('volumes').where('client_id', '=', client.id).execute();
  for (const [i, d] of devices.entries()) {
    const bad = broken(i, day);
    const decrypted = bad && i % 2 === 0;
    await db
      .insertInto('volumes')
      .values({
        id: d.vol,
        client_id: client.id,
        device_id: d.id,
        mount_point: 'C:',
        volume_type: 'os',
        volume_guid: null,
        encryption_state: null,
        last_reported_at: iso(),
        created_at: iso(),
        volume_status: decrypted ? 'FullyDecrypted' : 'FullyEncrypted',
        protection_status: decrypted ? 'Off' : 'On',
        lock_status: 'Unlocked',
        encryption_method: decrypted ? 'None' : i === 44 ? 'Aes128' : 'XtsAes128',
        encryption_percentage: decrypted ? 0 : 100,
        protectors: decrypted
          ? '[]'
          : JSON.stringify([
              { id: randomUUID(), type: 'Tpm' },
              { id: d.keyId, type: 'RecoveryPassword' },
            ]),
      })
      .execute();
    if (!bad || i === 44) {
      const kid = randomUUID();
      await db
        .insertInto('recovery_keys')
        .values({
          id: kid,
          client_id: client.id,
          device_id: d.id,
          volume_id: d.vol,
          key_id: d.keyId,
          ciphertext: 'sample',
          data_key_version: 1,
          fingerprint: `sample-${i}-${day}`,
          state: 'active',
          source_created_at: iso(),
          first_seen_at: iso(),
          last_seen_at: iso(),
          state_changed_at: iso(),
          created_at: iso(),
        })
        .execute();
      await db
        .insertInto('key_sources')
        .values({
          id: randomUUID(),
          client_id: client.id,
          recovery_key_id: kid,
          source_type: 'agent',
          source_ref: d.id,
          source_created_at: null,
          first_seen_at: iso(),
          last_seen_at: iso(),
          removed_at: null,
        })
        .execute();
    }
  }
  await db.updateTable('devices').set({ last_seen_at: iso(), last_checkin_at: iso() }).where('client_id', '=', client.id).execute();
  await c.compliance.evaluate(owner, { clientId: client.id });
  if (day < 21) clock.at += 86_400_000;
}
const pdf = path.join(dir, 'sample.pdf');
await c.reports.render(owner, { report: 'compliance-summary', clientId: client.id, format: 'pdf' }, fs.createWriteStream(pdf));
execFileSync('pdftoppm', ['-png', '-r', '60', '-f', '1', '-l', '1', '-singlefile', pdf, path.join(repo, 'docs', 'report-sample')]);
console.log(`wrote docs/report-sample.png (${fs.statSync(path.join(repo, 'docs', 'report-sample.png')).size} bytes) from ${pdf}`);
await c.close();
