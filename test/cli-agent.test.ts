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

  it('lists an agent that enrolled as a known machine without its credential, and approves the link', async () => {
    const t = JSON.parse((await v.cli(['agent', 'token', 'create', '--client', 'Contoso', '--json'])).stdout);
    const device = { hostname: 'FAKE-CLI-TWIN', serialNumber: 'FAKE-SN-TWIN', smbiosUuid: '6f1c1a52-9c1e-4d55-a1f0-3b1e2f6a7b01' };
    const ctx = { ip: null, userAgent: null };
    const real = await v.container.agent.enroll({ enrollmentToken: t.token, device }, ctx);
    const twin = await v.container.agent.enroll({ enrollmentToken: t.token, device: { ...device, hostname: 'FAKE-CLI-TWIN-2' } }, ctx);
    expect(twin.pendingApproval).toBe(true);
    const pending = JSON.parse((await v.cli(['agent', 'pending', '--client', 'Contoso', '--json'])).stdout);
    expect(pending).toEqual([
      expect.objectContaining({
        device: { id: twin.deviceId, name: 'FAKE-CLI-TWIN-2' },
        claims: { id: real.deviceId, name: 'FAKE-CLI-TWIN' },
        matchedOn: 'hardware',
      }),
    ]);
    expect((await v.cli(['agent', 'pending'])).stdout).toContain(twin.deviceId);
    const r = await v.cli(['agent', 'approve', twin.deviceId]);
    expect(r.stdout).toMatch(/Linked: the agent now reports for FAKE-CLI-TWIN/);
    expect(await v.container.agent.authenticateDevice(real.credential, ctx)).toBeNull();
    expect((await v.container.agent.authenticateDevice(twin.credential, ctx))?.device?.id).toBe(real.deviceId);
    expect((await v.cli(['agent', 'approve', '--all'])).stdout).toMatch(/No agent is waiting/);
  });
});
