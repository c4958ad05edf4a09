import { FINDING_CODES, FINDING_INFO, type FindingInfo } from './findings.js';
import { POSTURE_NOTE_CODES, POSTURE_NOTE_INFO, type PostureNote, type PostureNoteCode } from './tenant-posture.js';
import { inertPsaText, psaLine } from '../psa/psa-text.js';

/**
 * What Keywarden writes into a PSA ticket about a finding: titles and bodies in product words
 * (device, client, finding title, explanation, fix, a link to the device page). Pure code. The
 * texts never carry a recovery password or key material: only device names, drive letters and
 * the findings' own detail lines (which name key IDs at most).
 */

/** Codes about one device: the device findings plus a failed key rotation. */
export const DEVICE_TICKET_CODES = [...FINDING_CODES, 'rotation_failed'] as const;
export type DeviceTicketCode = (typeof DEVICE_TICKET_CODES)[number];

/** Codes about the client's Microsoft 365 tenant as a whole (tenant-posture.ts): a ticket each, with no device. */
export const CLIENT_TICKET_CODES = POSTURE_NOTE_CODES;
export type ClientTicketCode = PostureNoteCode;

/** Codes a ticket rule can name. */
export const TICKET_CODES = [...DEVICE_TICKET_CODES, ...CLIENT_TICKET_CODES] as const;
export type TicketCode = (typeof TICKET_CODES)[number];

export const isClientTicketCode = (code: string): code is ClientTicketCode => (CLIENT_TICKET_CODES as readonly string[]).includes(code);

export const ROTATION_FAILED_INFO: FindingInfo = {
  title: 'Recovery password rotation failed',
  explanation:
    'Keywarden asked the agent to replace a recovery password that was revealed (or due), and the rotation failed or was not done in time: the old password still unlocks the drive.',
  fix: 'Check that the device is on and the Keywarden agent runs, then queue the rotation again (or rotate the password with Intune). The ticket closes once a rotation succeeds.',
};

export const ticketCodeInfo = (code: DeviceTicketCode): FindingInfo => (code === 'rotation_failed' ? ROTATION_FAILED_INFO : FINDING_INFO[code]);

/** The title of any code a rule can name (the ticket list shows it). */
export const ticketCodeTitle = (code: TicketCode): string => (isClientTicketCode(code) ? POSTURE_NOTE_INFO[code].title : ticketCodeInfo(code).title);

/**
 * The codes a new rule starts with: a drive left readable, a password Keywarden does not hold or that
 * would not work, failed rotations, and Keywarden no longer collecting the client's Entra ID keys.
 */
export const DEFAULT_TICKET_CODES: readonly TicketCode[] = [
  'os_volume_unprotected',
  'recovery_password_missing',
  'recovery_key_not_escrowed',
  'escrowed_key_mismatch',
  'protection_suspended',
  'rotation_failed',
  'entra_consent_lost',
];

/** One device's finding of one code, with the specific facts (one line each: a drive, a key ID). */
export type TicketItem = { deviceId: string; deviceName: string; code: DeviceTicketCode; details: string[] };

/** ConnectWise limits a ticket summary to 100 characters; the others allow more. Keep every PSA happy. */
export const TITLE_MAX = 100;
const clip = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

export const devicePageUrl = (publicUrl: string | null, deviceId: string): string | null =>
  publicUrl ? `${publicUrl.replace(/\/+$/, '')}/devices/${deviceId}` : null;

const FOOTER = 'Opened by Keywarden. It is updated when the finding changes and closed automatically once the finding clears.';

/** Names and facts reported by devices stay on their line: a hostname with a line break cannot forge a line of the ticket. */
const oneLineItem = (i: TicketItem): TicketItem => ({ ...i, deviceName: psaLine(i.deviceName), details: i.details.map(psaLine) });

/** A ticket about one device's finding of one code. */
export function findingTicketText(raw: TicketItem, clientName: string, publicUrl: string | null): { title: string; body: string } {
  const item = oneLineItem(raw);
  clientName = psaLine(clientName);
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
export function digestTicketText(raw: readonly TicketItem[], clientName: string, publicUrl: string | null): { title: string; body: string } {
  const items = raw.map(oneLineItem);
  clientName = psaLine(clientName);
  const devices = new Set(items.map((i) => i.deviceId)).size;
  const sorted = [...items].sort(
    (a, b) => a.deviceName.localeCompare(b.deviceName) || DEVICE_TICKET_CODES.indexOf(a.code) - DEVICE_TICKET_CODES.indexOf(b.code),
  );
  const lines = [
    `Keywarden found ${items.length} BitLocker problem${items.length === 1 ? '' : 's'} on ${devices} device${devices === 1 ? '' : 's'} of ${clientName}.`,
    '',
  ];
  for (const i of sorted) {
    const link = devicePageUrl(publicUrl, i.deviceId);
    lines.push(`- ${i.deviceName}: ${ticketCodeInfo(i.code).title}${i.details.length ? ` (${i.details.join('; ')})` : ''}${link ? ` ${link}` : ''}`);
  }
  lines.push('', 'What each finding means and how to fix it:');
  for (const code of DEVICE_TICKET_CODES.filter((c) => items.some((i) => i.code === c))) {
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

export const clientPageUrl = (publicUrl: string | null, clientId: string): string | null =>
  publicUrl ? `${publicUrl.replace(/\/+$/, '')}/clients/${clientId}` : null;

/**
 * A ticket about a client-level finding (a setting of the client's Microsoft 365 tenant, or
 * Keywarden's access to it): one per client and code, never part of a digest (a digest lists devices).
 */
export function clientFindingTicketText(note: PostureNote, rawClient: { id: string; name: string }, publicUrl: string | null): { title: string; body: string } {
  const client = { ...rawClient, name: psaLine(rawClient.name) };
  const link = clientPageUrl(publicUrl, client.id);
  const lines = [
    `Keywarden found a problem with the Microsoft 365 tenant of client ${client.name} that puts its BitLocker recovery keys at risk.`,
    '',
    `Finding: ${note.title}`,
    '',
    `Why it matters: ${note.explanation}`,
    `How to fix it: ${note.fix}`,
    ...(link ? ['', `Client in Keywarden: ${link}`] : []),
    '',
    FOOTER,
  ];
  return { title: inertPsaText(clip(`BitLocker: ${note.title} (${client.name})`, TITLE_MAX)), body: inertPsaText(lines.join('\n')) };
}

/** cleared / rule_off as for devices; tenant_gone: the client's Entra ID connection was removed, so Keywarden no longer knows. */
export type ClearedWhy = 'cleared' | 'device_gone' | 'rule_off' | 'tenant_gone';

/** The note a closing ticket gets. */
export function clearedNote(why: ClearedWhy, at: string, what: string): string {
  return inertPsaText(clearedNoteText(why, at, psaLine(what)));
}

function clearedNoteText(why: ClearedWhy, at: string, what: string): string {
  const day = at.slice(0, 10);
  switch (why) {
    case 'cleared':
      return `Cleared in Keywarden on ${day}: ${what} no longer has this finding. Closed automatically.`;
    case 'device_gone':
      return `Cleared in Keywarden on ${day}: ${what} was retired or removed from Keywarden. Closed automatically.`;
    case 'tenant_gone':
      return `Closed by Keywarden on ${day}: the Entra ID connection of ${what} was removed, so Keywarden no longer reads this tenant's settings.`;
    case 'rule_off':
      return `Closed by Keywarden on ${day}: the client's ticket rules no longer cover this finding (${what}).`;
  }
}
