/** Actions recorded in the audit log. Names are stable: exports and SIEMs key off them. */
export type AuditAction =
  | 'vault.init'
  | 'client.create'
  | 'keys.import'
  | 'key.conflict'
  | 'key.reveal'
  // after a reveal: did the password unlock the drive?
  | 'key.unlock_confirmed'
  | 'key.unlock_failed'
  | 'audit.verify'
  | 'audit.export'
  | 'auth.login'
  | 'auth.logout'
  | 'auth.step_up'
  | 'auth.denied'
  | 'mfa.enrol'
  | 'mfa.disable'
  // passkeys (WebAuthn); signing in and step-up with one are auth.login / auth.step_up
  | 'passkey.register'
  | 'passkey.rename'
  | 'passkey.remove'
  | 'user.create'
  | 'user.update'
  | 'user.role'
  | 'user.password'
  // Invitations (issue 19)
  | 'user.invited'
  | 'invitation.resent'
  | 'invitation.revoked'
  | 'invitation.approved'
  | 'invitation.accepted'
  | 'token.create'
  | 'token.revoke'
  | 'client.update'
  | 'settings.update'
  | 'agent.token.create'
  | 'agent.token.revoke'
  | 'agent.enroll'
  | 'agent.enroll.pending'
  | 'agent.link.approve'
  | 'agent.revoke'
  | 'agent.upload'
  | 'key.superseded'
  | 'key.rotated'
  | 'key.used'
  | 'finding.open'
  | 'finding.resolve'
  | 'job.create'
  | 'job.update'
  | 'graph.connect'
  | 'graph.disconnect'
  | 'graph.sync'
  | 'graph.posture_changed'
  | 'graph.msp_app'
  | 'psa.connection'
  | 'psa.test'
  | 'psa.client'
  | 'psa.member'
  | 'graph.consent_link'
  | 'graph.consent'
  | 'graph.consent_lost'
  | 'graph.certificate_expiring'
  | 'entra.key_read'
  | 'ad.connect'
  | 'ad.update'
  | 'ad.disconnect'
  | 'ad.sync'
  | 'ad.invalid_password'
  // lifecycle
  | 'device.retire'
  | 'device.reinstate'
  | 'device.keys_destroyed'
  | 'key.destroyed'
  | 'legal_hold.set'
  | 'legal_hold.clear'
  | 'client.retention'
  | 'client.offboard'
  | 'retention.run'
  | 'lifecycle.settings'
  | 'lifecycle.request'
  | 'lifecycle.approve'
  | 'lifecycle.cancel'
  | 'lifecycle.expire'
  | 'vault.rotate_master'
  | 'compliance.policy'
  | 'compliance.exemption'
  | 'compliance.exemption_revoke'
  | 'report.export'
  // notifications
  | 'notification.channel.create'
  | 'notification.channel.update'
  | 'notification.channel.delete'
  | 'notification.channel.test'
  | 'notification.rule.create'
  | 'notification.rule.update'
  | 'notification.rule.delete'
  | 'report_schedule.create'
  | 'report_schedule.update'
  | 'report_schedule.delete'
  | 'report_schedule.run'
  // export, backup
  | 'export.bundle'
  | 'export.sheet'
  | 'export.schedule'
  | 'export.unschedule'
  | 'vault.backup'
  // single sign-on
  | 'sso.provider.create'
  | 'sso.provider.update'
  | 'sso.provider.delete'
  | 'sso.link'
  | 'auth.session_revoked'
  // two-person reveal
  | 'reveal_request.create'
  | 'reveal_request.approve'
  | 'reveal_request.deny'
  | 'reveal_request.cancel'
  | 'key.break_glass'
  | 'reveal_policy.update'
  | 'device.tags'
  | 'device.primary_user'
  // self-service recovery for end users (issue 20)
  | 'self_service.app'
  | 'self_service.client'
  | 'self_service.sign_in'
  | 'key.self_service_reveal'
  // ticket-bound reveal (issue 21): the internal note on the reveal's PSA ticket
  | 'psa.note_posted'
  | 'psa.note_failed'
  // findings become PSA tickets (issue 21)
  | 'psa.ticket_rules'
  | 'psa.ticket_opened'
  | 'psa.ticket_updated'
  | 'psa.ticket_closed'
  | 'psa.ticket_sync_failed';

export type AuditOutcome = 'success' | 'failure' | 'denied' | 'not_found' | 'ambiguous' | 'error' | 'rate_limited' | 'locked';

export type AuditEventInput = {
  action: AuditAction;
  outcome: AuditOutcome;
  clientId?: string | null;
  targetType?: string | null;
  targetId?: string | null;
  reasonCode?: string | null;
  ticket?: string | null;
  /** Action-specific facts. Never a recovery password, key or token. */
  details?: Record<string, unknown> | null;
};

export type AuditEvent = {
  seq: number;
  id: string;
  occurredAt: string;
  actorType: string;
  actorId: string;
  actorName: string;
  action: string;
  clientId: string | null;
  targetType: string | null;
  targetId: string | null;
  reasonCode: string | null;
  ticket: string | null;
  outcome: string;
  ip: string | null;
  userAgent: string | null;
  details: Record<string, unknown> | null;
  /** Derived when read (audit.labels.ts), never stored: the actor, action and reason in words. */
  actor: string;
  actionLabel: string;
  reasonLabel: string | null;
  /** The device (by name) and the key ID ({4290B6C0-…}) the event is about, from its details. */
  device: string | null;
  keyId: string | null;
  /** The other details as labelled fields; `internal` marks one of Keywarden's own record IDs. */
  detailFields: { label: string; value: string; internal: boolean }[];
};

export type VerifyResult = { intact: true; events: number; headSeq: number } | { intact: false; events: number; firstBrokenSeq: number; problem: string };
