import { describe, expect, it } from 'vitest';
import { checkTicket, isAssignedTo, normaliseTicketText, type TicketCheckInput, type TicketFacts } from './ticket-check.js';

const open: TicketFacts = {
  id: '1234',
  number: '1234',
  open: true,
  statusName: 'In Progress',
  companyId: '17',
  companyName: 'Contoso Ltd',
  assigneeIds: ['42'],
  assigneeNames: ['Ada Tech'],
  assigneeLogins: ['atech'],
};
const input = (over: Partial<TicketCheckInput> = {}): TicketCheckInput => ({
  ticketText: '1234',
  ticket: open,
  psaName: 'HaloPSA',
  companyId: '17',
  companyLabel: 'Contoso Ltd',
  otherCompanyName: null,
  ...over,
});

describe('normaliseTicketText', () => {
  it('accepts numbers, "#" numbers and Autotask numbers, trimmed', () => {
    expect(normaliseTicketText(' 1234 ')).toEqual({ ok: true, value: '1234' });
    expect(normaliseTicketText('#1234')).toEqual({ ok: true, value: '1234' });
    expect(normaliseTicketText('# 1234')).toEqual({ ok: true, value: '1234' });
    expect(normaliseTicketText('T20250301.0001')).toEqual({ ok: true, value: 'T20250301.0001' });
  });
  it.each([
    '',
    '   ',
    '#',
    '12 34',
    '1234/../5',
    '1234?x=1',
    'ticket\u202e1',
    '.1234',
    'a'.repeat(41),
    '12;drop',
    '１２３４',
    '١٢٣٤',
    '12\n34',
    '-1',
    '%2e%2e',
    '123#',
    '123?x=1',
    '123/../../Company/1',
    '\u00a0',
  ])('refuses %j', (t) => {
    expect(normaliseTicketText(t).ok).toBe(false);
  });
});

describe('checkTicket', () => {
  it('passes an open ticket of the linked company', () => {
    expect(checkTicket(input())).toEqual({ ok: true });
  });
  it('names an unknown ticket and the PSA', () => {
    expect(checkTicket(input({ ticket: null }))).toEqual({
      ok: false,
      problem: 'ticket unknown',
      message: expect.stringContaining('Ticket 1234 does not exist in HaloPSA'),
    });
  });
  it('names a closed ticket with its status', () => {
    const r = checkTicket(input({ ticket: { ...open, open: false, statusName: 'Resolved' } }));
    expect(r).toEqual({
      ok: false,
      problem: 'ticket closed',
      message: expect.stringContaining('Ticket 1234 is closed (Resolved) in HaloPSA: reopen it or use an open ticket'),
    });
  });
  it('says "another company" unless the technician may see it', () => {
    const other = { ...open, companyId: '18', companyName: 'Fabrikam, Inc.' };
    const hidden = checkTicket(input({ ticket: other }));
    expect(hidden).toMatchObject({ ok: false, problem: 'ticket of another company' });
    expect(!hidden.ok && hidden.message).toContain('belongs to another company in HaloPSA, not to Contoso Ltd');
    expect(!hidden.ok && hidden.message).not.toContain('Fabrikam');
    const named = checkTicket(input({ ticket: other, otherCompanyName: 'Fabrikam, Inc.' }));
    expect(!named.ok && named.message).toContain('Ticket 1234 belongs to Fabrikam, Inc. in HaloPSA, not to Contoso Ltd');
  });
  it('checks the assignee by id, login or name, case-insensitively', () => {
    expect(checkTicket(input({ assignee: { member: '42', who: 'Ada' } })).ok).toBe(true);
    expect(checkTicket(input({ assignee: { member: 'ATECH', who: 'Ada' } })).ok).toBe(true);
    expect(checkTicket(input({ assignee: { member: ' ada tech ', who: 'Ada' } })).ok).toBe(true);
    expect(checkTicket(input({ assignee: { member: 'Bob Tech', who: 'Bob' } }))).toMatchObject({ ok: false, problem: 'ticket not assigned' });
    expect(checkTicket(input({ assignee: { member: null, who: 'Bob' } }))).toMatchObject({
      ok: false,
      problem: 'PSA member not linked',
      message: expect.stringContaining('ask an owner to link your PSA member'),
    });
  });
  it("reports the first failure: a closed ticket of another company is another company's, its status untold", () => {
    const r = checkTicket(input({ ticket: { ...open, open: false, statusName: 'Closed - Breach at Fabrikam', companyId: '99' } }));
    expect(r).toMatchObject({ problem: 'ticket of another company' });
    expect(!r.ok && r.message).not.toMatch(/closed|Breach/i);
  });
  it('an empty member never matches an unassigned ticket', () => {
    expect(isAssignedTo({ ...open, assigneeIds: [''], assigneeNames: [], assigneeLogins: [] }, '')).toBe(false);
  });
});
