import { describe, expect, it } from 'vitest';
import { clearedNote, clientFindingTicketText, digestTicketText, findingTicketText, TICKET_CODES, ticketCodeTitle, TITLE_MAX } from './finding-tickets.js';
import { postureNotes } from './tenant-posture.js';

const item = (deviceName: string, code: 'recovery_key_not_escrowed' | 'rotation_failed' = 'recovery_key_not_escrowed') => ({
  deviceId: '11111111-2222-4333-8444-555555555555',
  deviceName,
  code,
  details: ['C: key 4290B6C0 not escrowed'],
});

describe('PSA ticket text for findings', () => {
  it('names the device, client, finding, explanation, fix and the device page', () => {
    const t = findingTicketText(item('LAPTOP-07'), 'Contoso', 'https://kw.example/');
    expect(t.title).toMatch(/^BitLocker: .+ on LAPTOP-07$/);
    expect(t.body).toContain('LAPTOP-07 (client Contoso)');
    expect(t.body).toContain('- C: key 4290B6C0 not escrowed');
    expect(t.body).toContain('https://kw.example/devices/11111111-2222-4333-8444-555555555555');
    expect(t.body).toMatch(/How to fix it: /);
  });

  it('keeps titles within what every PSA accepts', () => {
    expect(findingTicketText(item('X'.repeat(300)), 'Contoso', null).title.length).toBeLessThanOrEqual(TITLE_MAX);
    expect(digestTicketText([item('A'), item('B', 'rotation_failed')], 'C'.repeat(300), null).title.length).toBeLessThanOrEqual(TITLE_MAX);
  });

  it('quotes names it does not control as inert text (no markup reaches a PSA that shows HTML)', () => {
    const evil = 'PC-<script>alert(1)</script>';
    const one = findingTicketText(item(evil), 'Contoso <b>', null);
    const digest = digestTicketText([item(evil), item('B')], 'Contoso', null);
    for (const text of [one.title, one.body, digest.title, digest.body, clearedNote('cleared', '2026-12-07T00:00:00Z', evil)]) {
      expect(text).not.toMatch(/[<>]/);
    }
    expect(one.body).toContain('PC-‹script›alert(1)‹/script›');
  });

  it('a name with line breaks (an agent reports its own hostname) cannot forge a line of the ticket', () => {
    const evil = 'PC-1\n- LAPTOP-99: Recovery key escrowed (nothing to do)\u2028Closed automatically.';
    const one = findingTicketText({ ...item(evil), details: ['C:\r\nThe finding cleared.'] }, 'Contoso\nLtd', null);
    const digest = digestTicketText([item(evil), item('B')], 'Contoso\r\nLtd', null);
    const client = clientFindingTicketText(
      postureNotes(
        { usersCanReadOwnKeys: 'yes', usersCanReadOwnKeysReason: null, intuneRequiresEscrow: 'yes', intuneReason: null, intunePolicies: [] },
        { consentLostAt: null },
      )[0]!,
      { id: 'c1', name: 'Contoso\nLtd' },
      null,
    );
    const lines = (t: string) => t.split(/[\n\r\u2028\u2029\u0085]/);
    expect(lines(one.body).filter((l) => l.includes('LAPTOP-99'))).toEqual([
      'Keywarden found a BitLocker problem on PC-1 - LAPTOP-99: Recovery key escrowed (nothing to do) Closed automatically. (client Contoso Ltd).',
    ]);
    expect(lines(one.body)).toContain('- C: The finding cleared.');
    expect(lines(digest.body).filter((l) => l.includes('LAPTOP-99'))).toHaveLength(1);
    expect(lines(digest.body).filter((l) => l.startsWith('- LAPTOP-99'))).toEqual([]);
    for (const t of [one.title, digest.title, client.title, clearedNote('cleared', '2026-12-07T00:00:00Z', evil)]) expect(lines(t)).toHaveLength(1);
    expect(lines(client.body)[0]).toContain('client Contoso Ltd that');
  });

  it('a client-level finding: the tenant, client, explanation, fix and the client page; no device', () => {
    const [note] = postureNotes(
      { usersCanReadOwnKeys: 'no', usersCanReadOwnKeysReason: null, intuneRequiresEscrow: 'yes', intuneReason: null, intunePolicies: [] },
      { consentLostAt: '2026-03-02T10:00:00.000Z' },
    );
    const t = clientFindingTicketText(note!, { id: 'c1', name: 'Contoso <b>' }, 'https://kw.example');
    expect(t.title).toBe("BitLocker: Keywarden's access to this Entra ID tenant was withdrawn (Contoso ‹b›)");
    expect(t.body).toContain('Microsoft 365 tenant of client Contoso ‹b›');
    expect(t.body).toContain('Why it matters: Since 2026-03-02');
    expect(t.body).toContain('How to fix it: Send an administrator');
    expect(t.body).toContain('Client in Keywarden: https://kw.example/clients/c1');
    expect(t.body).not.toContain('answers below');
    expect(clientFindingTicketText(note!, { id: 'c1', name: 'X'.repeat(300) }, null).title.length).toBeLessThanOrEqual(TITLE_MAX);
    expect(clearedNote('tenant_gone', '2026-03-05T00:00:00Z', 'Contoso')).toMatch(
      /^Closed by Keywarden on 2026-03-05: the Entra ID connection of Contoso was removed/,
    );
  });

  it('every code a rule can name has a title', () => {
    for (const c of TICKET_CODES) expect(ticketCodeTitle(c)).toMatch(/^[A-Z]/);
  });
});
