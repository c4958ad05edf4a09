import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { owner } from './helpers/vault.js';

/**
 * GET /api/v1/reports: the reports a reader may download, with what each holds and its formats
 * (the console's Reports screen is built from it), and the tightened policy view (typed overrides
 * and sources).
 */
describe('report catalog and policy view', () => {
  let t: TestApp;
  let clientId: string;

  beforeAll(async () => {
    t = await createTestApp();
    clientId = (await t.container.clients.create(owner, { name: 'Contoso' })).id;
  });
  afterAll(async () => t?.close());

  const catalogOf = async (role: 'owner' | 'technician' | 'helpdesk' | 'client-viewer') => {
    const u = await t.addUser(role, role === 'client-viewer' ? [clientId] : 'all');
    const s = await t.signIn(u.email);
    const r = await t.app.inject({ method: 'GET', url: '/api/v1/reports', headers: s.headers });
    expect(r.statusCode).toBe(200);
    return r.json() as { report: string; title: string; description: string; formats: string[] }[];
  };

  it('lists every report for the owner, with titles, descriptions and formats', async () => {
    const list = await catalogOf('owner');
    expect(list.map((r) => r.report)).toEqual(['compliance-summary', 'devices', 'escrow-coverage', 'recovery-audit', 'recovery-boots']);
    expect(list.find((r) => r.report === 'compliance-summary')).toMatchObject({ title: 'BitLocker compliance summary', formats: ['csv', 'pdf'] });
    expect(list.find((r) => r.report === 'devices')!.formats).toEqual(['csv']);
    for (const r of list) expect(r.description.length).toBeGreaterThan(20);
  });

  it('leaves out what the reader may not download', async () => {
    expect((await catalogOf('technician')).map((r) => r.report)).not.toContain('recovery-audit');
    expect((await catalogOf('client-viewer')).map((r) => r.report)).toContain('recovery-audit');
    expect(await catalogOf('helpdesk')).toEqual([]);
  });

  it('answers 401 without a session', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/reports' })).statusCode).toBe(401);
  });

  it('the policy view names the source of every field', async () => {
    await t.container.compliance.updatePolicy(owner, clientId, { set: { staleAfterDays: 14 } });
    const v = await t.container.compliance.getPolicy(owner, clientId);
    expect(v.overrides).toEqual({ staleAfterDays: 14 });
    expect(v.sources.staleAfterDays).toBe('client');
    expect(v.sources.protectOs).toBe('builtin');
    const u = await t.addUser('owner', 'all');
    const s = await t.signIn(u.email);
    const r = await t.app.inject({ method: 'GET', url: `/api/v1/clients/${clientId}/compliance/policy`, headers: s.headers });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ scope: 'client', overrides: { staleAfterDays: 14 }, sources: { staleAfterDays: 'client', protectOs: 'builtin' } });
  });
});
