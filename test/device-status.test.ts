/**
 * "Encrypted" and "escrowed" are defined once, in src/domain/device-status.ts. The clients
 * overview and devices table compute them in SQL to filter, sort and page: this checks, on the
 * engine under test, that the SQL gives the same answer as the domain functions for every mix of
 * volume states, key states and findings.
 */
import { newDeviceRow } from '../src/modules/devices/devices.repo.js';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { deviceEncryption, isDeviceEscrowed, ENCRYPTIONS } from '../src/domain/device-status.js';
import { createDeviceTableRepo } from '../src/modules/devices/device-table.repo.js';
import { createTestDatabase, ENGINE, type TestDatabase } from './helpers/engine.js';

const VOLUME_SETS: (string | null)[][] = [
  [],
  [null],
  ['FullyEncrypted'],
  ['FullyDecrypted'],
  ['EncryptionInProgress'],
  ['EncryptionSuspended'],
  ['DecryptionInProgress'],
  ['DecryptionSuspended'],
  ['FullyEncryptedWipeInProgress'],
  [null, 'FullyEncrypted'],
  ['FullyEncrypted', 'DecryptionInProgress'],
  ['FullyEncrypted', 'FullyDecrypted'],
  [null, 'DecryptionSuspended'],
];
const KEY_SETS: string[][] = [[], ['active'], ['disclosed'], ['conflict'], ['superseded'], ['rotated', 'superseded'], ['destroyed', 'active']];
const FINDING_SETS: { open: number; resolved: number }[] = [
  { open: 0, resolved: 0 },
  { open: 1, resolved: 0 },
  { open: 0, resolved: 2 },
  { open: 2, resolved: 1 },
];

describe(`device status: the SQL agrees with src/domain/device-status.ts on ${ENGINE}`, () => {
  let tdb: TestDatabase;
  let database: Database;
  const clientId = randomUUID();
  const expected = new Map<string, { encryption: string; escrowed: boolean }>();

  beforeAll(async () => {
    tdb = await createTestDatabase();
    database = openDatabase(tdb.target);
    const db = database.db;
    await migrateToLatest(db);
    const now = new Date().toISOString();
    await db
      .insertInto('clients')
      .values({
        id: clientId,
        name: 'Contoso',
        name_key: 'contoso',
        created_at: now,
        updated_at: now,
        archived_at: null,
        viewer_can_reveal: 0,
        rotate_after_disclosure: 1,
      })
      .execute();
    let n = 0;
    for (const volumes of VOLUME_SETS) {
      for (const keys of KEY_SETS) {
        for (const findings of FINDING_SETS) {
          const id = randomUUID();
          const name = `DEV-${String(++n).padStart(4, '0')}`;
          await db.insertInto('devices').values(newDeviceRow({ id, clientId, name, now })).execute();
          for (const [i, status] of volumes.entries()) {
            await db
              .insertInto('volumes')
              .values({
                id: randomUUID(),
                client_id: clientId,
                device_id: id,
                mount_point: `${'CDE'[i]}:`,
                volume_type: 'fixed',
                volume_guid: null,
                encryption_state: status,
                last_reported_at: now,
                created_at: now,
                volume_status: status,
                protection_status: null,
                lock_status: null,
                encryption_method: null,
                encryption_percentage: null,
                protectors: null,
              })
              .execute();
          }
          for (const state of keys) {
            await db
              .insertInto('recovery_keys')
              .values({
                id: randomUUID(),
                client_id: clientId,
                device_id: id,
                volume_id: null,
                key_id: randomUUID(),
                ciphertext: 'x',
                data_key_version: 1,
                fingerprint: randomUUID(),
                state,
                source_created_at: null,
                first_seen_at: now,
                last_seen_at: now,
                state_changed_at: now,
                created_at: now,
              })
              .execute();
          }
          const finding = (resolved: boolean) => ({
            id: randomUUID(),
            client_id: clientId,
            device_id: id,
            volume_id: null,
            recovery_key_id: null,
            kind: 'unescrowed_key',
            protector_id: null,
            detail: 'test',
            opened_at: now,
            resolved_at: resolved ? now : null,
          });
          for (let i = 0; i < findings.open; i++) await db.insertInto('findings').values(finding(false)).execute();
          for (let i = 0; i < findings.resolved; i++) await db.insertInto('findings').values(finding(true)).execute();
          expected.set(id, { encryption: deviceEncryption(volumes), escrowed: isDeviceEscrowed({ keyStates: keys, openFindings: findings.open }) });
        }
      }
    }
  }, 120_000);
  afterAll(async () => {
    await database?.close();
    await tdb?.drop();
  });

  it('computes every device the way the domain does', async () => {
    const rows = await createDeviceTableRepo().all(database.db, clientId);
    expect(rows).toHaveLength(expected.size);
    const actual = new Map(rows.map((r) => [r.id, { encryption: r.encryption, escrowed: Number(r.escrowed) === 1 }]));
    expect(actual).toEqual(expected);
  });

  it('filters on the same predicates', async () => {
    const repo = createDeviceTableRepo();
    for (const encryption of ENCRYPTIONS) {
      for (const escrowed of [true, false]) {
        const want = [...expected.values()].filter((e) => e.encryption === encryption && e.escrowed === escrowed).length;
        expect(await repo.total(database.db, clientId, { encryption, escrowed })).toBe(want);
      }
    }
  });
});
