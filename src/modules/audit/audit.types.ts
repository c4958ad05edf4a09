/** Actions recorded in the audit log. Names are stable: exports and SIEMs key off them. */
export type AuditAction =
  | 'vault.init'
  | 'client.create'
  | 'keys.import'
  | 'key.conflict'
  | 'key.reveal'
  | 'audit.verify'
  | 'audit.export'
  | 'auth.login'
  | 'auth.logout'
  | 'auth.step_up'
  | 'auth.denied'
  | 'mfa.enrol'
  | 'mfa.disable'
  | 'user.create'
  | 'user.update'
  | 'user.role'
  | 'user.password'
  | 'token.create'
  | 'token.revoke'
  | 'client.update'
  | 'settings.update'
  | 'agent.token.create'
  | 'agent.token.revoke'
  | 'agent.enroll'
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
  | 'entra.key_read'
  | 'ad.connect'
  | 'ad.sync'
  | 'ad.invalid_password';

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
};

export type VerifyResult =
  | { intact: true; events: number; headSeq: number }
  | { intact: false; events: number; firstBrokenSeq: number; problem: string };
