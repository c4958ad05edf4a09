import type { DB } from './schema.js';

/**
 * Every table has one owning module. Only that module's repo (src/modules/<module>/*.repo.ts)
 * inserts, updates or deletes its rows; other modules reach it through that repo.
 * test/architecture.test.ts enforces this map; docs/architecture.md shows it.
 */
export type TableName = keyof DB;
export type ModuleName =
  | 'vault'
  | 'audit'
  | 'clients'
  | 'devices'
  | 'keys'
  | 'identity'
  | 'settings'
  | 'agent'
  | 'graph'
  | 'directory'
  | 'jobs'
  | 'compliance'
  | 'notifications'
  | 'lifecycle'
  | 'exports'
  | 'sso'
  | 'reveal-approvals'
  | 'self-service'
  | 'psa'
  // Modules that own no table and only read: reports, backup (doctor), metrics, demo.
  | 'reports'
  | 'backup'
  | 'metrics'
  | 'demo';

export const TABLE_OWNERS: Record<TableName, ModuleName> = {
  master_keys: 'vault',
  data_keys: 'vault',
  audit_events: 'audit',
  audit_head: 'audit',
  clients: 'clients',
  devices: 'devices',
  volumes: 'devices',
  recovery_keys: 'keys',
  key_sources: 'keys',
  users: 'identity',
  user_clients: 'identity',
  recovery_codes: 'identity',
  sessions: 'identity',
  api_tokens: 'identity',
  api_token_clients: 'identity',
  login_throttle: 'identity',
  invitations: 'identity',
  passkeys: 'identity',
  passkey_challenges: 'identity',
  settings: 'settings',
  enrollment_tokens: 'agent',
  agent_credentials: 'agent',
  volume_states: 'agent',
  key_agent_fingerprints: 'agent',
  device_events: 'agent',
  findings: 'agent',
  jobs: 'agent',
  graph_connections: 'graph',
  graph_msp_app: 'graph',
  graph_consent_states: 'graph',
  sync_runs: 'graph',
  tenant_posture: 'graph',
  psa_connection: 'psa',
  psa_client_settings: 'psa',
  psa_members: 'psa',
  directory_connections: 'directory',
  directory_sync_runs: 'directory',
  scheduled_tasks: 'jobs',
  compliance_policies: 'compliance',
  compliance_exemptions: 'compliance',
  device_compliance: 'compliance',
  compliance_history: 'compliance',
  notification_channels: 'notifications',
  notification_rules: 'notifications',
  notification_rule_channels: 'notifications',
  notification_outbox: 'notifications',
  notification_items: 'notifications',
  notification_deliveries: 'notifications',
  notification_attempts: 'notifications',
  report_schedules: 'notifications',
  lifecycle_approvals: 'lifecycle',
  export_schedules: 'exports',
  sso_providers: 'sso',
  sso_links: 'sso',
  sso_login_states: 'sso',
  sso_sessions: 'sso',
  device_tags: 'devices',
  reveal_policies: 'reveal-approvals',
  reveal_requests: 'reveal-approvals',
  self_service_clients: 'self-service',
  self_service_app: 'self-service',
  self_service_states: 'self-service',
  self_service_sessions: 'self-service',
  psa_note_outbox: 'psa',
  psa_ticket_rules: 'psa',
  psa_finding_tickets: 'psa',
};

/**
 * Tables a module's repos may read (select or join) although another module owns them: names and
 * counts for display, and joins a report needs in one query. Never written.
 */
export const TABLE_READS: Partial<Record<ModuleName, readonly TableName[]>> = {
  clients: ['devices', 'recovery_keys'],
  devices: ['clients', 'recovery_keys', 'key_sources', 'findings', 'volume_states', 'device_compliance'],
  // keys: open mismatch findings mark a key "may not unlock" in search, device page and reveal.
  keys: ['clients', 'devices', 'volumes', 'findings'],
  // agent: a check-in reads the device's keys with everything else it compares (claimAndSnapshot).
  agent: ['clients', 'devices', 'volumes', 'recovery_keys'],
  compliance: ['clients', 'devices', 'volumes', 'recovery_keys', 'key_sources', 'findings', 'volume_states'],
  reports: ['devices', 'device_compliance', 'compliance_history', 'audit_events', 'recovery_keys', 'key_sources', 'device_events'],
  backup: ['clients', 'devices', 'recovery_keys', 'audit_events'],
  metrics: ['scheduled_tasks', 'jobs', 'notification_outbox', 'notification_deliveries'],
  demo: ['clients', 'users', 'recovery_keys', 'devices', 'findings'],
  lifecycle: ['clients', 'devices', 'volumes', 'recovery_keys', 'key_sources', 'audit_events', 'users'],
  exports: ['clients', 'devices', 'volumes', 'recovery_keys', 'key_sources'],
  notifications: ['clients', 'devices'],
  // Which of a person's clients let client staff reveal.
  identity: ['clients'],
  // sso: the re-validation job reads which SSO sessions are still open.
  sso: ['sessions'],
  // Two-person reveal: names of clients, devices and keys in requests; a device's tags decide a tagged policy.
  'reveal-approvals': ['clients', 'devices', 'recovery_keys', 'device_tags'],
  // Self-service: the client's devices an end user owns or primarily uses (Entra device id, primary user).
  'self-service': ['clients', 'devices'],
  // Findings → PSA tickets: each device's current findings and name, and its latest rotate job (failed rotations).
  // psa: client and user names beside their PSA company and member; findings and rotate jobs become tickets.
  psa: ['clients', 'devices', 'device_compliance', 'jobs', 'users'],
};
