import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, type TestVault } from './helpers/vault.js';
import { ENGINE } from './helpers/engine.js';

describe(`keywarden agent commands on ${ENGINE}`, () => {
  let v: TestVault;
  beforeAll(async () => {
    v = await createTestVault();
    await v.cli(['client', 'add', 'Contoso']);
  });
  afterAll(() => v.close());

  it('creates, lists and revokes enrollment tokens; the token is printed once and listed only by prefix', async () => {
    const made = await v.cli(['agent', 'token', 'create', '--client', 'contoso', '--expires-days', '7', '--max-uses', '50', '--json']);
    expect(made.code).toBe(0);
    const t = JSON.parse(made.stdout);
    expect(t.token).toMatch(/^kwe_[A-Za-z0-9_-]{43}$/);
    expect(t).toMatchObject({ client: 'Contoso', maxUses: 50, uses: 0 });
    const list = await v.cli(['agent', 'token', 'list']);
    expect(list.stdout).toContain(t.prefix);
    expect(list.stdout).not.toContain(t.token);
    const human = await v.cli(['agent', 'token', 'create', '--client', 'Contoso']);
    expect(human.stdout).toMatch(/shown only now/);
    expect((await v.cli(['agent', 'token', 'revoke', t.id])).code).toBe(0);
    expect((await v.cli(['agent', 'token', 'list', '--json'])).stdout).toContain('"revokedAt": "20');
    const enroll = await v.container.agent
      .enroll({ enrollmentToken: t.token, device: { hostname: 'FAKE-CLI-AGENT' } }, { ip: null, userAgent: null })
      .catch((e: Error) => e);
    expect(enroll).toBeInstanceOf(Error);
    expect((await v.cli(['agent', 'token', 'create', '--client', 'Nobody'])).code).toBe(2);
  });

  it('revokes a device credential by device name', async () => {
    const t = JSON.parse((await v.cli(['agent', 'token', 'create', '--client', 'Contoso', '--json'])).stdout);
    const e = await v.container.agent.enroll({ enrollmentToken: t.token, device: { hostname: 'FAKE-CLI-AGENT' } }, { ip: null, userAgent: null });
    expect(await v.container.agent.authenticateDevice(e.credential, { ip: null, userAgent: null })).not.toBeNull();
    const r = await v.cli(['agent', 'revoke', 'fake-cli-agent', '--client', 'Contoso']);
    expect(r.stdout).toMatch(/Revoked the agent credential of FAKE-CLI-AGENT/);
    expect(await v.container.agent.authenticateDevice(e.credential, { ip: null, userAgent: null })).toBeNull();
    expect((await v.cli(['agent', 'revoke', 'nope', '--client', 'Contoso'])).code).toBe(2);
  });
});
