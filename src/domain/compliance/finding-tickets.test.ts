import { describe, expect, it } from 'vitest';
import { clearedNote, digestTicketText, findingTicketText, TITLE_MAX } from './finding-tickets.js';

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
});
