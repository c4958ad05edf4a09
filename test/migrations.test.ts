import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { openDatabase, type Database } from '../src/db/database.js';
import { migrateAllDown, migrateDown, migrateToLatest, migrationStatus } from '../src/db/migrate.js';
import { migrations } from '../src/db/migrations/index.js';
import { createTestDatabase, ENGINE, type TestDatabase } from './helpers/engine.js';

const TABLES = [
  'directory_connections',
  'directory_sync_runs',
  'graph_connections',
  'sync_runs',
  'scheduled_tasks',
  'enrollment_tokens',
  'agent_credentials',
  'volume_states',
  'key_agent_fingerprints',
  'device_events',
  'findings',
  'jobs',
  'users',
  'user_clients',
  'recovery_codes',
  'sessions',
  'api_tokens',
  'api_token_clients',
  'login_throttle',
  'invitations',
  'passkeys',
  'passkey_challenges',
  'settings',
  'master_keys',
  'data_keys',
  'clients',
  'devices',
  'volumes',
  'recovery_keys',
  'key_sources',
  'audit_events',
  'audit_head',
  'compliance_policies',
  'compliance_exemptions',
  'device_compliance',
  'compliance_history',
  'notification_channels',
  'notification_rules',
  'notification_rule_channels',
  'notification_outbox',
  'notification_items',
  'notification_deliveries',
  'notification_attempts',
  'report_schedules',
  'export_schedules',
  'lifecycle_approvals',
  // single sign-on (0016)
  'sso_providers',
  'sso_links',
  'sso_login_states',
  'sso_sessions',
  'reveal_policies',
  'device_tags',
  'reveal_requests',
  // tenant posture (0021)
  'tenant_posture',
  // self-service recovery (0022)
  'self_service_clients',
  'self_service_app',
  'self_service_states',
  'self_service_sessions',
  // one MSP app, consent links (0020)
  'graph_msp_app',
  'graph_consent_states',
  // the PSA connection (0024)
  'psa_connection',
  'psa_client_settings',
  'psa_members',
  // findings become PSA tickets (0026)
  'psa_ticket_rules',
  'psa_finding_tickets',
  // ticket-bound reveal: internal notes waiting for the PSA (0025)
  'psa_note_outbox',
];

async function tables(database: Database): Promise<string[]> {
  const list = await database.db.introspection.getTables();
  return list
    .map((t) => t.name)
    .filter((n) => !n.startsWith('kysely_'))
    .sort();
}

describe(`migrations on ${ENGINE}`, () => {
  let tdb: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    tdb = await createTestDatabase();
    database = openDatabase(tdb.target);
  });
  afterAll(async () => {
    await database.close();
    await tdb.drop();
  });

  it('runs every migration up, all the way down, and up again', async () => {
    expect(await migrateToLatest(database.db)).toEqual(Object.keys(migrations));
    expect(await tables(database)).toEqual([...TABLES].sort());
    expect((await migrationStatus(database.db)).every((m) => m.executedAt)).toBe(true);
    expect(await migrateToLatest(database.db)).toEqual([]);

    expect(await migrateAllDown(database.db)).toEqual(Object.keys(migrations).reverse());
    expect(await tables(database)).toEqual([]);
    expect(await migrateDown(database.db)).toEqual([]);

    await migrateToLatest(database.db);
    expect(await tables(database)).toEqual([...TABLES].sort());
  });

  it('enforces the constraints the vault relies on', async () => {
    const now = new Date().toISOString();
    await database.db
      .insertInto('clients')
      .values({ id: 'c1', name: 'A', name_key: 'a', created_at: now, updated_at: now, archived_at: null, viewer_can_reveal: 0, rotate_after_disclosure: 1 })
      .execute();
    await expect(
      database.db
        .insertInto('clients')
        .values({ id: 'c2', name: 'a', name_key: 'a', created_at: now, updated_at: now, archived_at: null, viewer_can_reveal: 0, rotate_after_disclosure: 1 })
        .execute(),
    ).rejects.toThrow();
    // A device must belong to an existing client (foreign keys are on for SQLite too).
    await expect(
      database.db
        .insertInto('devices')
        .values({
          id: 'd1',
          client_id: 'nope',
          name: 'x',
          name_key: 'x',
          domain: null,
          serial: null,
          entra_device_id: null,
          ad_object_guid: null,
          ad_dn: null,
          agent_id: null,
          primary_user: null,
          first_seen_at: now,
          last_seen_at: now,
          retired_at: null,
          created_at: now,
        })
        .execute(),
    ).rejects.toThrow();
    const r = await sql<{ n: number }>`select count(*) as n from clients`.execute(database.db);
    expect(Number(r.rows[0]!.n)).toBe(1);
  });

  /** Rolls back the migrations after `name` (later ones come and go), then `name` itself. */
  const migrateDownThrough = async (name: string): Promise<string[]> => {
    for (;;) {
      const done = await migrateDown(database.db);
      if (done.length === 0 || done.includes(name)) return done;
    }
  };

  it('keeps approval requests across 0011 (up and down); a vault-wide request has no place in the older schema', async () => {
    const row = (id: string, clientId: string | null) =>
      sql`insert into lifecycle_approvals (id, action, client_id, device_id, status, reason, requested_by, requested_by_name, requested_at, expires_at)
        values (${id}, 'offboard-client', ${clientId}, null, 'pending', 'r', 'u1', 'owner', '2026-01-01T00:00:00.000Z', '2026-01-04T00:00:00.000Z')`.execute(
        database.db,
      );
    expect(await migrateDownThrough('0011_approvals')).toEqual(['0011_approvals']);
    await row('a1', 'c1');
    await expect(row('a0', null)).rejects.toThrow();
    await migrateToLatest(database.db);
    const up = await sql<{
      id: string;
      client_id: string;
      target_type: string;
      target_id: string;
      params: string | null;
    }>`select id, client_id, target_type, target_id, params from lifecycle_approvals`.execute(database.db);
    expect(up.rows).toEqual([{ id: 'a1', client_id: 'c1', target_type: 'client', target_id: 'c1', params: null }]);
    await row('a2', null);
    expect(await migrateDownThrough('0011_approvals')).toEqual(['0011_approvals']);
    const down = await sql<{ id: string }>`select id from lifecycle_approvals`.execute(database.db);
    expect(down.rows.map((r) => r.id)).toEqual(['a1']);
    await migrateToLatest(database.db);
  });

  it('keeps finding tickets across 0028 (up and down): priority taken from the rule; a ticket without a device has no place in the older schema', async () => {
    const at = '2026-01-01T00:00:00.000Z';
    const ticket = (id: string, deviceId: string | null) =>
      sql`insert into psa_finding_tickets (id, client_id, device_id, device_name, code, open_key, psa_kind, psa_ticket_id, psa_ticket_number, digest, state, title, body, opened_at, updated_at, checked_at)
        values (${id}, 'c1', ${deviceId}, ${deviceId ? 'PC-1' : null}, 'entra_consent_lost', ${id}, 'halopsa', ${id}, ${id}, 0, 'open', 't', 'b', ${at}, ${at}, ${at})`.execute(
        database.db,
      );
    expect(await migrateDownThrough('0028_psa_client_findings')).toEqual(['0028_psa_client_findings']);
    await sql`insert into psa_ticket_rules (client_id, enabled, codes, priority, queue, digest, digest_threshold, updated_at, updated_by_name)
      values ('c1', 1, '[]', '3', null, 0, 10, ${at}, 'owner')`.execute(database.db);
    await ticket('t1', 'd1');
    await expect(ticket('t0', null)).rejects.toThrow();
    await migrateToLatest(database.db);
    const up = await sql<{ id: string; priority: string | null }>`select id, priority from psa_finding_tickets`.execute(database.db);
    expect(up.rows).toEqual([{ id: 't1', priority: '3' }]);
    await ticket('t2', null);
    expect(await migrateDownThrough('0028_psa_client_findings')).toEqual(['0028_psa_client_findings']);
    const down = await sql<{ id: string }>`select id from psa_finding_tickets`.execute(database.db);
    expect(down.rows.map((r) => r.id)).toEqual(['t1']);
    await migrateToLatest(database.db);
  });
});
