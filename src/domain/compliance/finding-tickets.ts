import { FINDING_CODES, FINDING_INFO, type FindingCode, type FindingInfo } from './findings.js';
import { inertPsaText } from '../psa/psa-text.js';

/**
 * What Keywarden writes into a PSA ticket about a finding: titles and bodies in product words
 * (device, client, finding title, explanation, fix, a link to the device page). Pure code. The
 * texts never carry a recovery password or key material: only device names, drive letters and
 * the findings' own detail lines (which name key IDs at most).
 */

/** Codes a ticket rule can name: the device findings plus a failed key rotation. */
export const TICKET_CODES = [...FINDING_CODES, 'rotation_failed'] as const;
export type TicketCode = (typeof TICKET_CODES)[number];

export const ROTATION_FAILED_INFO: FindingInfo = {
  title: 'Recovery password rotation failed',
  explanation:
    'Keywarden asked the agent to replace a recovery password that was revealed (or due), and the rotation failed or was not done in time: the old password still unlocks the drive.',
  fix: 'Check that the device is on and the Keywarden agent runs, then queue the rotation again (or rotate the password with Intune). The ticket closes once a rotation succeeds.',
};

export const ticketCodeInfo = (code: TicketCode): FindingInfo => (code === 'rotation_failed' ? ROTATION_FAILED_INFO : FINDING_INFO[code as FindingCode]);

/** The codes a new rule starts with: a drive left readable, a password Keywarden does not hold or that would not work, and failed rotations. */
export const DEFAULT_TICKET_CODES: readonly TicketCode[] = [
  'os_volume_unprotected',
  'recovery_password_missing',
  'recovery_key_not_escrowed',
  'escrowed_key_mismatch',
  'protection_suspended',
  'rotation_failed',
];

/** One device's finding of one code, with the specific facts (one line each: a drive, a key ID). */
export type TicketItem = { deviceId: string; deviceName: string; code: TicketCode; details: string[] };

/** ConnectWise limits a ticket summary to 100 characters; the others allow more. Keep every PSA happy. */
export const TITLE_MAX = 100;
const clip = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

export const devicePageUrl = (publicUrl: string | null, deviceId: string): string | null =>
  publicUrl ? `${publicUrl.replace(/\/+$/, '')}/devices/${deviceId}` : null;

const FOOTER = 'Opened by Keywarden. It is updated when the finding changes and closed automatically once the finding clears.';

/** A ticket about one device's finding of one code. */
export function findingTicketText(item: TicketItem, clientName: string, publicUrl: string | null): { title: string; body: string } {
  const info = ticketCodeInfo(item.code);
  const link = devicePageUrl(publicUrl, item.deviceId);
  const lines = [
    `Keywarden found a BitLocker problem on ${item.deviceName} (client ${clientName}).`,
    '',
    `Finding: ${info.title}`,
    ...item.details.map((d) => `- ${d}`),
    '',
    `Why it matters: ${info.explanation}`,
    `How to fix it: ${info.fix}`,
    ...(link ? ['', `Device in Keywarden: ${link}`] : []),
    '',
    FOOTER,
  ];
  return { title: inertPsaText(clip(`BitLocker: ${info.title} on ${item.deviceName}`, TITLE_MAX)), body: inertPsaText(lines.join('\n')) };
}

/** One ticket listing several devices' findings (digest mode, or a burst above the threshold). */
export function digestTicketText(items: readonly TicketItem[], clientName: string, publicUrl: string | null): { title: string; body: string } {
  const devices = new Set(items.map((i) => i.deviceId)).size;
  const sorted = [...items].sort((a, b) => a.deviceName.localeCompare(b.deviceName) || TICKET_CODES.indexOf(a.code) - TICKET_CODES.indexOf(b.code));
  const lines = [
    `Keywarden found ${items.length} BitLocker problem${items.length === 1 ? '' : 's'} on ${devices} device${devices === 1 ? '' : 's'} of ${clientName}.`,
    '',
  ];
  for (const i of sorted) {
    const link = devicePageUrl(publicUrl, i.deviceId);
    lines.push(`- ${i.deviceName}: ${ticketCodeInfo(i.code).title}${i.details.length ? ` (${i.details.join('; ')})` : ''}${link ? ` ${link}` : ''}`);
  }
  lines.push('', 'What each finding means and how to fix it:');
  for (const code of TICKET_CODES.filter((c) => items.some((i) => i.code === c))) {
    const info = ticketCodeInfo(code);
    lines.push(`- ${info.title}: ${info.explanation} Fix: ${info.fix}`);
  }
  lines.push('', 'Opened by Keywarden. The list is updated as findings clear; the ticket is closed automatically once all of them have cleared.');
  const title = clip(
    `BitLocker: ${items.length} finding${items.length === 1 ? '' : 's'} on ${devices} device${devices === 1 ? '' : 's'} (${clientName})`,
    TITLE_MAX,
  );
  return { title: inertPsaText(title), body: inertPsaText(lines.join('\n')) };
}

export type ClearedWhy = 'cleared' | 'device_gone' | 'rule_off';

/** The note a closing ticket gets. */
export function clearedNote(why: ClearedWhy, at: string, what: string): string {
  return inertPsaText(clearedNoteText(why, at, what));
}

function clearedNoteText(why: ClearedWhy, at: string, what: string): string {
  const day = at.slice(0, 10);
  switch (why) {
    case 'cleared':
      return `Cleared in Keywarden on ${day}: ${what} no longer has this finding. Closed automatically.`;
    case 'device_gone':
      return `Cleared in Keywarden on ${day}: ${what} was retired or removed from Keywarden. Closed automatically.`;
    case 'rule_off':
      return `Closed by Keywarden on ${day}: the client's ticket rules no longer cover this finding (${what}).`;
  }
}
