import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { REASON_CODES } from '../../domain/reason-codes.js';
import { ID_PATTERN } from '../../db/scope.js';
import type { AuditAction } from './audit.types.js';

/**
 * What an auditor reads instead of codes and JSON: the action, reason and actor in words, and the
 * facts in an event's details (device, key ID, the rest as labelled fields). Derived when an event
 * is read, never stored: the hash chain covers the stored row, and labels may improve later.
 */

const ACTION_LABELS: Record<AuditAction, string> = {
  'vault.init': 'Vault created',
  'client.create': 'Client added',
  'keys.import': 'Keys imported',
  'key.conflict': 'Conflicting key stored',
  'key.reveal': 'Key revealed',
  'key.self_service_reveal': 'Key revealed to its user (self-service)',
  'self_service.app': 'Self-service sign-in app changed',
  'self_service.client': 'Self-service recovery switched',
  'self_service.sign_in': 'End-user sign-in (self-service)',
  'key.unlock_confirmed': 'Key unlocked the drive',
  'key.unlock_failed': 'Key did not unlock the drive',
  'audit.verify': 'Audit chain verified',
  'audit.export': 'Audit log exported',
  'auth.login': 'Sign-in',
  'auth.logout': 'Sign-out',
  'auth.step_up': 'Second factor confirmed',
  'auth.denied': 'Access denied',
  'sso.provider.create': 'Sign-in provider added',
  'sso.provider.update': 'Sign-in provider changed',
  'sso.provider.delete': 'Sign-in provider removed',
  'sso.link': 'Account linked to a sign-in provider',
  'auth.session_revoked': 'Sessions ended',
  'mfa.enrol': 'Authenticator app set up',
  'mfa.disable': 'Authenticator app removed',
  'passkey.register': 'Passkey added',
  'passkey.rename': 'Passkey renamed',
  'passkey.remove': 'Passkey removed',
  'user.create': 'User added',
  'user.update': 'User changed',
  'user.role': 'User role changed',
  'user.password': 'Password changed',
  'user.invited': 'User invited',
  'invitation.resent': 'Invitation sent again',
  'invitation.revoked': 'Invitation revoked',
  'invitation.approved': 'Invitation approved',
  'invitation.accepted': 'Invitation accepted',
  'token.create': 'API token created',
  'token.revoke': 'API token revoked',
  'client.update': 'Client changed',
  'settings.update': 'Settings changed',
  'agent.token.create': 'Enrollment token created',
  'agent.token.revoke': 'Enrollment token revoked',
  'agent.enroll': 'Agent enrolled',
  'agent.enroll.pending': 'Agent enrollment waiting',
  'agent.link.approve': 'Agent link approved',
  'agent.revoke': 'Agent revoked',
  'agent.upload': 'Agent report received',
  'key.superseded': 'Key superseded',
  'key.rotated': 'Key rotated',
  'key.used': 'Key used at boot',
  'finding.open': 'Finding opened',
  'finding.resolve': 'Finding resolved',
  'job.create': 'Agent job queued',
  'job.update': 'Agent job updated',
  'graph.connect': 'Entra ID connected',
  'graph.disconnect': 'Entra ID disconnected',
  'graph.sync': 'Entra ID sync',
  'graph.posture_changed': 'Tenant posture changed',
  'graph.msp_app': 'MSP Entra ID app changed',
  'psa.connection': 'PSA connection changed',
  'psa.test': 'PSA connection tested',
  'psa.client': 'PSA company or ticket policy of a client changed',
  'psa.member': 'PSA member of a person linked',
  'graph.consent_link': 'Admin-consent link created',
  'graph.consent': 'Admin consent recorded',
  'graph.consent_lost': 'Admin consent withdrawn in a tenant',
  'graph.certificate_expiring': 'Entra ID app certificate expiring',
  'entra.key_read': 'Key read in Entra ID',
  'ad.connect': 'Active Directory connected',
  'ad.update': 'Active Directory connection changed',
  'ad.disconnect': 'Active Directory disconnected',
  'ad.sync': 'Active Directory sync',
  'ad.invalid_password': 'Invalid password in Active Directory',
  'device.retire': 'Device retired',
  'device.reinstate': 'Device reinstated',
  'device.keys_destroyed': "Device's keys destroyed",
  'key.destroyed': 'Key destroyed',
  'legal_hold.set': 'Legal hold set',
  'legal_hold.clear': 'Legal hold cleared',
  'client.retention': 'Retention changed',
  'client.offboard': 'Client offboarded',
  'retention.run': 'Retention run',
  'lifecycle.settings': 'Lifecycle settings changed',
  'lifecycle.request': 'Approval requested',
  'lifecycle.approve': 'Request approved',
  'lifecycle.cancel': 'Request cancelled',
  'lifecycle.expire': 'Request expired',
  'vault.rotate_master': 'Master key rotated',
  'compliance.policy': 'Compliance policy changed',
  'compliance.exemption': 'Compliance exemption granted',
  'compliance.exemption_revoke': 'Compliance exemption revoked',
  'report.export': 'Report exported',
  'notification.channel.create': 'Notification channel added',
  'notification.channel.update': 'Notification channel changed',
  'notification.channel.delete': 'Notification channel removed',
  'notification.channel.test': 'Notification test sent',
  'notification.rule.create': 'Notification rule added',
  'notification.rule.update': 'Notification rule changed',
  'notification.rule.delete': 'Notification rule removed',
  'report_schedule.create': 'Report schedule added',
  'report_schedule.update': 'Report schedule changed',
  'report_schedule.delete': 'Report schedule removed',
  'report_schedule.run': 'Scheduled report sent',
  'export.bundle': 'Break-glass export',
  'export.sheet': 'Break-glass sheet printed',
  'export.schedule': 'Break-glass export scheduled',
  'export.unschedule': 'Break-glass schedule removed',
  'vault.backup': 'Vault backed up',
  'reveal_request.create': 'Reveal approval requested',
  'reveal_request.approve': 'Reveal approved by a second person',
  'reveal_request.deny': 'Reveal denied by a second person',
  'reveal_request.cancel': 'Reveal request cancelled',
  'key.break_glass': 'BREAK-GLASS: key revealed without approval',
  'reveal_policy.update': 'Reveal approval policy changed',
  'psa.ticket_rules': 'PSA ticket rules changed',
  'psa.ticket_opened': 'PSA ticket opened for a finding',
  'psa.ticket_updated': 'PSA ticket updated for a finding',
  'psa.ticket_closed': 'PSA ticket for a finding closed',
  'psa.ticket_sync_failed': 'PSA ticket run failed',
  'device.tags': 'Device tags changed',
  'device.primary_user': 'Primary user of a device changed',
  'psa.note_posted': 'Reveal note posted on the PSA ticket',
  'psa.note_failed': 'Reveal note could not be posted on the PSA ticket',
};

/** Every action with its label, in the order above (the console's action filter). */
export const AUDIT_ACTIONS: readonly { action: AuditAction; label: string }[] = Object.entries(ACTION_LABELS).map(([action, label]) => ({
  action: action as AuditAction,
  label,
}));

export const actionLabel = (action: string): string => (ACTION_LABELS as Record<string, string>)[action] ?? action;

const REASONS: ReadonlyMap<string, string> = new Map(REASON_CODES.map((r) => [r.code, r.label]));
export const reasonLabel = (code: string | null): string | null => (code === null ? null : (REASONS.get(code) ?? code));

/**
 * The actor in words. Names are stored as they were when the event happened (a renamed user keeps
 * the old name in old events, as a paper log would). System actors carry an internal id in their
 * name in older events ("Entra sync (<tenant GUID>)"); the GUID is dropped, it tells an auditor nothing.
 */
export function actorLabel(actorType: string, actorId: string, actorName: string): string {
  if (actorType === 'system' && actorId.startsWith('system:graph:')) return 'Entra sync';
  if (actorType === 'system' && actorId.startsWith('system:ad:')) return 'Active Directory sync';
  if (actorType === 'agent') return actorName.replace(/^agent on /, 'Agent on ');
  return actorName.replace(/\s*\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)$/i, '') || actorName;
}

const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v : null);

/** The key an event is about, as the recovery screen shows it ({4290B6C0-…}). */
export function keyIdOf(details: Record<string, unknown> | null): string | null {
  const v = str(details?.keyId) ?? str(details?.protectorId);
  return v ? formatKeyIdForDisplay(v) : null;
}

/** The device an event is about, by name. */
export function deviceOf(details: Record<string, unknown> | null): string | null {
  return str(details?.device) ?? str(details?.computer);
}

/** Labels for the detail keys events use; any other key is spelled out from its camelCase. */
const FIELD_LABELS: Record<string, string> = {
  query: 'Searched for',
  note: 'Note',
  problem: 'Problem',
  matches: 'Matching keys',
  newKeyId: 'New key ID',
  protectorId: 'Protector ID',
  mountPoint: 'Drive',
  email: 'Email',
  role: 'Role',
  clients: 'Clients',
  why: 'Why',
  kind: 'Kind',
  from: 'From',
  to: 'To',
  by: 'By',
  tenantId: 'Tenant ID',
  appClientId: 'App (client) ID',
  dc: 'Domain controller',
  expiresAt: 'Expires',
  maxUses: 'Uses allowed',
  imported: 'Imported',
  duplicates: 'Duplicates',
  conflicts: 'Conflicts',
  rejected: 'Rejected',
  keysListed: 'Keys listed',
  newKeys: 'New keys',
  mfa: 'Second factor',
  filter: 'Filter',
};

/** Keys whose GUID value is a real-world ID (a key ID, an Entra tenant), not one of ours. */
const EXTERNAL_IDS = new Set(['keyId', 'protectorId', 'newKeyId', 'tenantId', 'appClientId', 'entraEventId', 'query']);

export type DetailField = { label: string; value: string; internal: boolean };

function spellOut(key: string): string {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_.]+/g, ' ')
    .toLowerCase()
    .replace(/\bid\b/g, 'ID');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function valueText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.map(valueText).join(', ');
  return Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== null && x !== undefined)
    .map(([k, x]) => `${FIELD_LABELS[k] ?? spellOut(k)}: ${valueText(x)}`)
    .join('; ');
}

/**
 * The details as labelled fields, without the device and key ID (they have columns of their own).
 * Internal record IDs are marked so the console can keep them out of the table; a search by record
 * (what the console sends) is dropped, since it repeats the event's target.
 */
export function detailFields(details: Record<string, unknown> | null, targetId: string | null): DetailField[] {
  if (!details) return [];
  const out: DetailField[] = [];
  for (const [k, v] of Object.entries(details)) {
    if (v === null || v === undefined || v === '') continue;
    if (k === 'device' || k === 'computer' || k === 'keyId') continue;
    if (k === 'protectorId' && !('keyId' in details)) continue;
    if (k === 'query' && (v === targetId || (typeof v === 'string' && v === details.keyId))) continue;
    const value = k.endsWith('KeyId') || k === 'protectorId' ? formatKeyIdForDisplay(String(v)) : valueText(v);
    const internal = !EXTERNAL_IDS.has(k) && typeof v === 'string' && ID_PATTERN.test(v);
    out.push({ label: FIELD_LABELS[k] ?? spellOut(k), value, internal });
  }
  return out;
}
