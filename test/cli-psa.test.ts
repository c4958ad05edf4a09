/**
 * `keywarden psa …` against the HaloPSA and Autotask simulators: set (secrets from a file, never an
 * argument), show (no secret), test, companies with the suggestion, link, policy, member, remove.
 * Runs the real CLI in-process on SQLite and PostgreSQL.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, owner, type TestVault } from './helpers/vault.js';
import { ENGINE } from './helpers/engine.js';
import { HaloPsaSimulator } from './psa-sim/halopsa.js';
import { AutotaskSimulator } from './psa-sim/autotask.js';

describe(`keywarden psa commands on ${ENGINE}`, () => {
  let v: TestVault;
  const halo = new HaloPsaSimulator();
  const at = new AutotaskSimulator();
  let contoso: string;
  const file = (name: string, text: string) => {
    fs.writeFileSync(path.join(v.db.dir, name), text + '\n');
    return name;
  };
  const secrets = () => [halo.clientSecret, at.secret, at.integrationCode];
  /** Runs the CLI; nothing it prints may hold a secret. */
  const cli = async (args: string[]) => {
    const r = await v.cli(args);
    for (const s of secrets()) {
      expect(r.stdout.includes(s), `stdout of ${args.join(' ')} holds a secret`).toBe(false);
      expect(r.stderr.includes(s), `stderr of ${args.join(' ')} holds a secret`).toBe(false);
    }
    return r;
  };

  beforeAll(async () => {
    await Promise.all([halo.start(), at.start()]);
    halo.seed();
    at.seed();
    v = await createTestVault();
    contoso = (await v.container.clients.create(owner, { name: 'Contoso' })).id;
    await v.container.clients.create(owner, { name: 'Fabrikam' });
    await v.container.identity.createUser(owner, { email: 'tech@example.test', password: 'tech password 1234', role: 'technician', clients: 'all' });
  });
  afterAll(async () => {
    await v?.close();
    await Promise.all([halo.stop(), at.stop()]);
  });

  it('set reads the secret from a file, show never prints it, test checks again', async () => {
    const none = await cli(['psa', 'show']);
    expect(none.code).toBe(0);
    expect(none.stdout).toMatch(/No PSA is connected/);
    // A secret is never an argument: there is no option that takes one.
    const asArg = await cli(['psa', 'set', '--kind', 'halopsa', '--url', halo.url, '--client-id', halo.clientId, '--client-secret', 'x']);
    expect(asArg.code).toBe(2);

    const set = await cli([
      'psa',
      'set',
      '--kind',
      'halopsa',
      '--url',
      halo.url,
      '--client-id',
      halo.clientId,
      '--secret-file',
      file('halo.txt', halo.clientSecret),
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/PSA: +HaloPSA/);
    expect(set.stdout).toMatch(/Status: +ok/);
    const show = await cli(['psa', 'show', '--json']);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout).connection).toMatchObject({ kind: 'halopsa', status: 'ok', secretsSet: ['clientSecret'] });
    const row = await v.container.database.db.selectFrom('psa_connection').select('secret_ciphertext').executeTakeFirstOrThrow();
    expect(row.secret_ciphertext.includes(halo.clientSecret)).toBe(false);

    expect((await cli(['psa', 'test'])).stdout).toMatch(/HaloPSA answers/);
    halo.authFailure = true;
    try {
      const failed = await cli(['psa', 'test']);
      expect(failed.code).toBe(1);
      expect(failed.stdout).toMatch(/FAIL +HaloPSA/);
    } finally {
      halo.authFailure = false;
    }
  });

  it('companies suggest by name; link and policy; a policy without a company is refused', async () => {
    const refused = await cli(['psa', 'policy', 'Contoso', 'required']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/Link the client to its PSA company/);

    const list = await cli(['psa', 'companies', '--json']);
    expect(list.code).toBe(0);
    const suggestion = (JSON.parse(list.stdout) as { clients: { clientId: string; suggestion: { id: string; name: string } | null }[] }).clients.find(
      (c) => c.clientId === contoso,
    )!.suggestion!;
    expect(suggestion.name).toBe('Contoso Ltd');
    expect((await cli(['psa', 'companies'])).stdout).toMatch(new RegExp(`Contoso +not linked +Contoso Ltd \\(${suggestion.id}\\)`));

    const link = await cli(['psa', 'link', 'Contoso', suggestion.id]);
    expect(link.code, link.stderr).toBe(0);
    expect(link.stdout).toMatch(`Contoso is linked to Contoso Ltd (${suggestion.id}).`);
    const twice = await cli(['psa', 'link', 'Fabrikam', suggestion.id]);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/already linked to client Contoso/);

    const policy = await cli(['psa', 'policy', 'Contoso', 'required', '--assignee']);
    expect(policy.code, policy.stderr).toBe(0);
    expect(policy.stdout).toMatch(/ticket policy required, assigned to the revealing person/);
    const stored = await v.container.psa.clientSettings(owner, contoso);
    expect(stored).toMatchObject({ companyId: suggestion.id, ticketPolicy: 'required', requireAssignee: true });
    expect((await cli(['psa', 'policy', 'Contoso', 'sometimes'])).code).toBe(2);
  });

  it('member links a person by email; --clear unlinks', async () => {
    const linked = await cli(['psa', 'member', 'tech@example.test', 'Ada Tech']);
    expect(linked.code, linked.stderr).toBe(0);
    expect((await v.container.psa.members(owner)).find((m) => m.email === 'tech@example.test')!.member).toBe('Ada Tech');
    expect((await cli(['psa', 'member', 'nobody@example.test', 'X'])).stderr).toMatch(/No user has the email nobody@example.test/);
    expect((await cli(['psa', 'member', 'tech@example.test', '--clear'])).stdout).toMatch(/not linked/);
  });

  it('Autotask with both secrets from files replaces HaloPSA (links cleared); remove needs --yes and turns policies off', async () => {
    const set = await cli([
      'psa',
      'set',
      '--kind',
      'autotask',
      '--zone-lookup-url',
      `${at.url}/atservicesrest`,
      '--user-name',
      at.userName,
      '--secret-file',
      file('at.txt', at.secret),
      '--integration-code-file',
      file('code.txt', at.integrationCode),
    ]);
    expect(set.code, set.stdout + set.stderr).toBe(0);
    expect(set.stdout).toMatch(/PSA: +Autotask/);
    expect(await v.container.psa.clientSettings(owner, contoso)).toMatchObject({ companyId: null });

    const noYes = await cli(['psa', 'remove']);
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toMatch(/--yes/);
    const removed = await cli(['psa', 'remove', '--yes']);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toMatch(/1 ticket policy turned off/);
    expect(await v.container.psa.clientSettings(owner, contoso)).toMatchObject({ ticketPolicy: 'off' });
  });
});
