import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac, randomUUID } from 'node:crypto';
import { buildApp } from '../src/app.js';
import { buildContainer, type Container } from '../src/container.js';
import { openDatabase } from '../src/db/database.js';
import { systemActor } from '../src/modules/authz/authz.js';
import { ENGINE } from './helpers/engine.js';
import { createTestVault, type TestVault } from './helpers/vault.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';

/**
 * What one agent check-in costs the database (issue 18), and that the short path loses nothing.
 * PostgreSQL: a routine check-in (nothing changed) is two statements, authentication and one that
 * claims the sequence number and reads everything; a check-in with something to write runs again
 * in a transaction and writes it. SQLite: one transaction of a handful of prepared statements.
 */
describe(`agent check-in statements on ${ENGINE}`, () => {
  let v: TestVault;
  let c: Container;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let agent: TestAgent;
  const log: string[] = [];

  beforeAll(async () => {
    v = await createTestVault();
    await v.container.close();
    const database = openDatabase(v.config.database, {
      log: (e) => {
        if (e.level === 'query') log.push(e.query.sql.replace(/\s+/g, ' ').toLowerCase());
      },
    });
    c = await buildContainer(v.config, { database });
    app = await buildApp(c, { logger: false });
    const client = await c.clients.create(systemActor('test'), { name: 'Statements' });
    const { token } = await c.agent.createEnrollmentToken(systemActor('test'), { clientId: client.id });
    agent = new TestAgent(injectTransport(app), new SimMachine('FAKE-STMT-01'));
    expect((await agent.enroll(token)).status).toBe(200);
    expect((await agent.run()).exitCode).toBe(0); // escrows its keys
    expect((await agent.run()).exitCode).toBe(0);
  });
  afterAll(async () => {
    await app?.close();
    await c?.close();
    await v?.db.drop();
  });

  /** The statements of one check-in: those logged while it ran, minus the "last seen" write-behind flush. */
  const during = async (f: () => Promise<unknown>) => {
    log.length = 0;
    await f();
    const out = [...log];
    // The write-behind flush (its own transaction, 100 ms later) may land in the window: drop it.
    const flush = out.findIndex((s) => s.includes('last_seen_at'));
    if (flush >= 0) {
      out.splice(flush, 1);
      if (out[flush - 1] === 'begin') out.splice(flush - 1, 1);
      const commit = out.indexOf('commit', flush - 1);
      if (ENGINE === 'postgres' && commit >= 0) out.splice(commit, 1);
    }
    return out;
  };

  it('a routine check-in: two statements on PostgreSQL, one short transaction on SQLite', async () => {
    const statements = await during(async () => expect((await agent.post('/api/v1/agent/checkin', agent.checkinBody())).json.requestPasswords).toEqual([]));
    expect(statements[0]).toContain('from "agent_credentials" as "a"'); // authentication
    if (ENGINE === 'postgres') {
      expect(statements).toHaveLength(2);
      expect(statements[1]).toMatch(/^with "claim" as \(update "agent_credentials"/);
      expect(statements[1]).toContain("set_config('synchronous_commit', 'off', true)");
    } else {
      expect(statements[1]).toBe('begin immediate');
      expect(statements.at(-1)).toBe('commit');
      expect(statements.length).toBeLessThanOrEqual(10);
    }
  });

  it('a check-in that reports a new recovery password opens its finding and asks for the upload; its replay is refused and changes nothing', async () => {
    const body = agent.checkinBody();
    const vol = body.volumes[0]!;
    const protectorId = randomUUID().toUpperCase();
    vol.keyProtectors = [
      ...vol.keyProtectors,
      {
        id: `{${protectorId}}`,
        type: typeof vol.keyProtectors[0]!.type === 'number' ? 3 : 'RecoveryPassword',
        fingerprint: createHmac('sha256', Buffer.from(agent.salt!, 'base64'))
          .update('111111-222222-333333-444444-555555-666666-777777-888888', 'utf8')
          .digest('hex'),
      },
    ];
    const statements = await during(async () => {
      const r = await agent.post('/api/v1/agent/checkin', body);
      expect(r.status).toBe(200);
      expect(r.json.requestPasswords).toEqual([expect.objectContaining({ protectorId: `{${protectorId}}` })]);
    });
    // PostgreSQL: the probe found work to do, so the check-in ran again in a transaction.
    if (ENGINE === 'postgres') expect(statements).toContain('begin');
    expect(statements.some((s) => s.startsWith('insert into "findings"'))).toBe(true);
    const open = await c.database.db.selectFrom('findings').select(['kind', 'protector_id']).where('resolved_at', 'is', null).execute();
    expect(open).toEqual([{ kind: 'unescrowed_key', protector_id: protectorId.toLowerCase() }]);

    const before = await c.database.db.selectFrom('findings').selectAll().execute();
    const replay = await agent.post('/api/v1/agent/checkin', body);
    expect(replay.status).toBe(409);
    expect(await c.database.db.selectFrom('findings').selectAll().execute()).toEqual(before);
  });

  it('the next routine check-in after that is routine again, and the finding stays open while the password is not escrowed', async () => {
    const body = agent.checkinBody();
    const statements = await during(async () => expect((await agent.post('/api/v1/agent/checkin', body)).status).toBe(200));
    // The extra protector is gone from this report: the finding resolves (a write, so a transaction).
    expect(statements.some((s) => s.startsWith('update "findings" set "resolved_at"'))).toBe(true);
    expect(await c.database.db.selectFrom('findings').select('id').where('resolved_at', 'is', null).execute()).toHaveLength(0);
    const again = await during(async () => expect((await agent.post('/api/v1/agent/checkin', agent.checkinBody())).status).toBe(200));
    if (ENGINE === 'postgres') expect(again).toHaveLength(2);
  });
});
