import type { NotificationEventType } from './notifier.js';
import type { OutgoingMessage } from './channels.js';

/**
 * What a notification looks like in each channel: plain text and HTML e-mail, the signed webhook's
 * JSON, a Teams Adaptive Card and Slack blocks. One event or a digest of many: the same shape with
 * a list of events, so a webhook receiver handles both alike.
 */
export const EVENT_LABELS: Record<NotificationEventType, string> = {
  'device.noncompliant': 'Device became non-compliant',
  'device.compliant': 'Device is compliant again',
  'device.encryption_off': 'Encryption turned off',
  'device.protection_suspended': 'BitLocker protection suspended too long',
  'device.stale': 'Device not seen for too long',
  'device.recovery_boot': 'A recovery password was used to start Windows',
  'key.unescrowed': 'New recovery key not escrowed',
  'key.mismatch': 'Escrowed key differs from the device',
  'key.revealed': 'Recovery key revealed',
  'key.rotated': 'Recovery key rotated',
  'key.rotation_failed': 'Key rotation failed',
  'sync.failed': 'Directory sync failed',
  'audit.chain_broken': 'Audit chain broken',
  'key.reveal_requested': 'A reveal waits for a second person',
  'key.break_glass': 'Break-glass reveal (no approval)',
  'key.self_service_reveal': 'An end user revealed their own recovery key',
  'graph.consent_lost': 'Admin consent for the Keywarden app withdrawn',
  'graph.certificate_expiring': 'Entra ID app certificate expiring',
  'psa.note_failed': 'Reveal note not posted on the PSA ticket',
  'psa.ticket_sync_failed': 'Findings could not be sent to the PSA',
};

export type EventView = {
  id: string;
  type: string;
  label: string;
  clientId: string | null;
  clientName: string | null;
  deviceId: string | null;
  deviceName: string | null;
  subject: string;
  details: Record<string, unknown>;
  occurredAt: string;
};

export type MessageKind = 'event' | 'digest' | 'test' | 'report';

/** How many events a chat message lists before "and N more" (Slack allows 50 blocks, Teams cards get slow). */
const CHAT_LIST = 25;
/** How many events an e-mail lists in full; the webhook always carries all of them. */
const EMAIL_LIST = 2000;

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const slackEsc = (s: string) => s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
const fmt = (v: unknown): string => (Array.isArray(v) ? v.join(', ') : v === null || v === undefined ? '—' : String(v));
const labelOf = (type: string) => EVENT_LABELS[type as NotificationEventType] ?? type;

/** The subject line of a digest: what happened, how often, to which client when there is one. */
export function digestSubject(events: EventView[]): string {
  const counts = new Map<string, number>();
  for (const e of events) counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
  const clients = [...new Set(events.map((e) => e.clientName ?? 'MSP-wide'))];
  const where = clients.length === 1 ? ` (${clients[0]})` : ` (${clients.length} clients)`;
  if (counts.size === 1) return `${labelOf(events[0]!.type)}: ${events.length} events${where}`;
  const parts = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([t, n]) => `${n} × ${labelOf(t)}`);
  return `${events.length} notifications${where}: ${parts.slice(0, 3).join(', ')}${parts.length > 3 ? ', …' : ''}`;
}

function factsOf(e: EventView): [string, string][] {
  const facts: [string, string][] = [
    ['Event', e.label],
    ['Client', e.clientName ?? 'MSP-wide'],
  ];
  if (e.deviceName) facts.push(['Device', e.deviceName]);
  facts.push(['When', e.occurredAt]);
  for (const [k, v] of Object.entries(e.details)) facts.push([k, fmt(v)]);
  return facts;
}

export function renderMessage(input: {
  id: string;
  kind: MessageKind;
  events: EventView[];
  sentAt: string;
  subject?: string;
  intro?: string;
}): OutgoingMessage {
  const { id, kind, events, sentAt } = input;
  const single = events.length === 1 && kind !== 'digest';
  const subject = input.subject ?? (single ? events[0]!.subject : digestSubject(events));
  const webhook = {
    id,
    kind,
    sentAt,
    subject,
    events: events.map((e) => ({
      id: e.id,
      type: e.type,
      clientId: e.clientId,
      clientName: e.clientName,
      deviceId: e.deviceId,
      deviceName: e.deviceName,
      subject: e.subject,
      details: e.details,
      occurredAt: e.occurredAt,
    })),
  };

  // ---- e-mail
  const text: string[] = ['Keywarden notification', '', subject, ''];
  const html: string[] = [`<p style="font:14px sans-serif;color:#555">Keywarden notification</p><h2 style="font:bold 18px sans-serif">${esc(subject)}</h2>`];
  if (input.intro) {
    text.push(input.intro, '');
    html.push(`<p style="font:14px sans-serif">${esc(input.intro)}</p>`);
  }
  if (single) {
    const facts = factsOf(events[0]!);
    const w = Math.max(...facts.map(([k]) => k.length)) + 2;
    for (const [k, v] of facts) text.push(`${`${k}:`.padEnd(w)}${v}`);
    html.push(
      `<table style="font:14px sans-serif;border-collapse:collapse">${facts.map(([k, v]) => `<tr><th style="text-align:left;padding:2px 12px 2px 0">${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>`,
    );
  } else if (events.length) {
    text.push(`${events.length} events:`, '');
    const shown = events.slice(0, EMAIL_LIST);
    for (const e of shown) {
      const extra = Object.entries(e.details)
        .map(([k, v]) => `${k}: ${fmt(v)}`)
        .join('; ');
      text.push(`- ${e.occurredAt}  ${e.subject}${extra ? `  [${extra}]` : ''}`);
    }
    if (events.length > shown.length) text.push(`… and ${events.length - shown.length} more (the webhook and the delivery log carry all of them).`);
    html.push(
      `<table style="font:13px sans-serif;border-collapse:collapse"><tr><th style="text-align:left">When</th><th style="text-align:left">Client</th><th style="text-align:left">Event</th></tr>${shown
        .map(
          (e) =>
            `<tr><td style="padding:2px 10px 2px 0;white-space:nowrap">${esc(e.occurredAt)}</td><td style="padding:2px 10px 2px 0">${esc(e.clientName ?? 'MSP-wide')}</td><td>${esc(e.subject)}</td></tr>`,
        )
        .join('')}</table>`,
    );
    if (events.length > shown.length) html.push(`<p>… and ${events.length - shown.length} more.</p>`);
  }
  text.push('', '—', 'Sent by Keywarden. Change what you receive under Notifications (rules and channels).');
  html.push('<p style="font:12px sans-serif;color:#777">Sent by Keywarden. Change what you receive under Notifications (rules and channels).</p>');

  // ---- chat
  const chatLines = events.slice(0, CHAT_LIST).map((e) => e.subject);
  const more = events.length > CHAT_LIST ? `… and ${events.length - CHAT_LIST} more` : null;
  const facts = single ? factsOf(events[0]!) : [];
  const teams = {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body: [
            { type: 'TextBlock', size: 'Medium', weight: 'Bolder', text: subject, wrap: true },
            ...(single ? [{ type: 'FactSet', facts: facts.map(([title, value]) => ({ title, value })) }] : []),
            ...(!single ? chatLines.map((l) => ({ type: 'TextBlock', text: `• ${l}`, wrap: true, spacing: 'None' })) : []),
            ...(more ? [{ type: 'TextBlock', text: more, isSubtle: true, wrap: true }] : []),
            ...(input.intro ? [{ type: 'TextBlock', text: input.intro, wrap: true }] : []),
          ],
        },
      },
    ],
  };
  const slackBody = single
    ? facts.map(([k, v]) => `*${slackEsc(k)}:* ${slackEsc(v)}`).join('\n')
    : [...chatLines.map((l) => `• ${slackEsc(l)}`), ...(more ? [more] : [])].join('\n');
  const slack = {
    text: subject,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: subject.slice(0, 150), emoji: false } },
      ...(input.intro ? [{ type: 'section', text: { type: 'mrkdwn', text: slackEsc(input.intro).slice(0, 2900) } }] : []),
      ...(slackBody ? [{ type: 'section', text: { type: 'mrkdwn', text: slackBody.slice(0, 2900) } }] : []),
      { type: 'context', elements: [{ type: 'mrkdwn', text: `Keywarden · ${kind === 'digest' ? `digest of ${events.length}` : kind}` }] },
    ],
  };
  return { id, subject: `[Keywarden] ${subject}`, text: text.join('\n'), html: html.join('\n'), webhook, teams, slack };
}
