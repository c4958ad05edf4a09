import type { ColumnType } from 'kysely';

/**
 * Table types for Kysely. Timestamps are ISO-8601 UTC strings; ciphertexts are base64 text so the
 * same column type works on SQLite and PostgreSQL. Only src/crypto can make sense of them.
 */
export interface MasterKeysTable {
  version: number;
  /** Non-secret identifier derived from the KEK, shown when the wrong master key is supplied. */
  key_id: string;
  /** A constant sealed under this KEK: decrypting it proves the supplied master key is right. */
  verifier: string;
  created_at: string;
  retired_at: string | null;
}

export interface DataKeysTable {
  id: string;
  /** 'client' (one per client, seals recovery passwords), 'audit' (chain MAC), 'fingerprint'. */
  purpose: string;
  /** The client id for purpose 'client', 'global' otherwise. */
  scope: string;
  version: number;
  kek_version: number;
  wrapped_key: string;
  created_at: string;
  retired_at: string | null;
}

export interface ClientsTable {
  id: string;
  name: string;
  /** Lower-cased name, unique: "Contoso" and "contoso" are the same client. */
  name_key: string;
  created_at: string;
  updated_at: string;
  archived_at: string | null;
  /** 1 when this client's own IT staff (client-viewer role) may reveal its keys. */
  viewer_can_reveal: number;
  /** 1 (default) queues a rotate job for the device when one of its keys is revealed. */
  rotate_after_disclosure: number;
  // lifecycle, migration 0008: optional here because the database fills the defaults.
  /** Days a retired device's keys are kept before destruction (default 365); 0 keeps them forever. */
  retention_days?: number;
  legal_hold_at?: string | null;
  legal_hold_reason?: string | null;
  legal_hold_by?: string | null;
  /** Set when the client was offboarded: its data key was destroyed (crypto-shred). */
  offboarded_at?: string | null;
  offboarded_by?: string | null;
}

export interface DevicesTable {
  id: string;
  client_id: string;
  name: string;
  name_key: string;
  domain: string | null;
  serial: string | null;
  entra_device_id: string | null;
  ad_object_guid: string | null;
  ad_dn: string | null;
  agent_id: string | null;
  primary_user: string | null;
  /** JSON of what the agent last reported (OS, TPM, Secure Boot, Entra join, model…). */
  facts: string | null;
  smbios_uuid: string | null;
  last_checkin_at: string | null;
  first_seen_at: string;
  last_seen_at: string;
  retired_at: string | null;
  created_at: string;
  // lifecycle, migration 0008
  retired_by?: string | null;
  retire_reason?: string | null;
  legal_hold_at?: string | null;
  legal_hold_reason?: string | null;
  legal_hold_by?: string | null;
  /** When the retention job (or an approved destroy) wiped this device's key material. */
  keys_destroyed_at?: string | null;
  /** migration 0029: 'agent' when the device's agent reported primary_user (and keeps it current); null: an import or Graph set it, or nobody. */
  primary_user_source?: 'agent' | null;
}

export interface VolumesTable {
  id: string;
  client_id: string;
  device_id: string;
  mount_point: string | null;
  volume_type: string;
  volume_guid: string | null;
  encryption_state: string | null;
  last_reported_at: string | null;
  created_at: string;
  volume_status: string | null;
  protection_status: string | null;
  lock_status: string | null;
  encryption_method: string | null;
  encryption_percentage: number | null;
  /** JSON list of {id, type} of the volume's key protectors as last reported. */
  protectors: string | null;
}

export interface RecoveryKeysTable {
  id: string;
  client_id: string;
  device_id: string | null;
  volume_id: string | null;
  /** Normalized lower-case GUID without braces; null when the source carried only the 48 digits. */
  key_id: string | null;
  ciphertext: string;
  data_key_version: number;
  /** HMAC of the normalized password (keyed, client-bound): duplicate detection without decrypting. */
  fingerprint: string;
  state: string;
  source_created_at: string | null;
  first_seen_at: string;
  last_seen_at: string;
  state_changed_at: string;
  created_at: string;
  // lifecycle, migration 0008: set when the ciphertext was wiped (state 'destroyed').
  destroyed_at?: string | null;
  destroyed_reason?: string | null;
}

export interface KeySourcesTable {
  id: string;
  client_id: string;
  recovery_key_id: string;
  /** 'import' | 'agent' | 'entra' | 'ad' */
  source_type: string;
  /** Which import file, agent, tenant or domain controller. */
  source_ref: string;
  source_created_at: string | null;
  first_seen_at: string;
  last_seen_at: string;
  /** Set when the source stopped reporting this key (e.g. deleted in Entra); the key is kept. */
  removed_at?: string | null;
}

export interface AuditEventsTable {
  seq: number;
  id: string;
  occurred_at: string;
  actor_type: string;
  actor_id: string;
  actor_name: string;
  action: string;
  client_id: string | null;
  target_type: string | null;
  target_id: string | null;
  reason_code: string | null;
  ticket: string | null;
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  /** JSON object with action-specific facts; never a secret. */
  details: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface UsersTable {
  id: string;
  email: string;
  name: string;
  password_hash: string;
  role: string;
  all_clients: number;
  status: string;
  totp_secret: string | null;
  totp_confirmed_at: string | null;
  totp_last_step: number | null;
  failed_logins: number;
  lockouts: number;
  locked_until: string | null;
  last_login_at: string | null;
  password_changed_at: string;
  created_at: string;
  updated_at: string;
  /** 1: the person signs in only through single sign-on (migration 0016; default 0). */
  sso_only: number;
}

export interface UserClientsTable {
  user_id: string;
  client_id: string;
}

export interface RecoveryCodesTable {
  id: string;
  user_id: string;
  code_hash: string;
  used_at: string | null;
  created_at: string;
}

export interface SessionsTable {
  id: string;
  token_hash: string;
  csrf_hash: string;
  user_id: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  mfa_at: string | null;
  revoked_at: string | null;
  ip: string | null;
  user_agent: string | null;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  token_hash: string;
  token_prefix: string;
  role: string;
  all_clients: number;
  created_by: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface ApiTokenClientsTable {
  token_id: string;
  client_id: string;
}

/** An invitation by e-mail (issue 19): only the SHA-256 of its one-time token is kept. */
export interface InvitationsTable {
  id: string;
  email: string;
  role: string;
  all_clients: number;
  client_ids: string;
  token_hash: string;
  invited_by: string;
  invited_by_name: string;
  created_at: string;
  expires_at: string;
  sent_at: string | null;
  mail_status: string | null;
  approval_id: string | null;
  approved_at: string | null;
  accepted_at: string | null;
  accepted_user_id: string | null;
  revoked_at: string | null;
}

export interface LoginThrottleTable {
  key: string;
  failures: number;
  window_started_at: string;
  lockouts: number;
  locked_until: string | null;
}

export interface SettingsTable {
  key: string;
  value: string;
  updated_at: string;
}

export interface EnrollmentTokensTable {
  id: string;
  client_id: string;
  token_hash: string;
  token_prefix: string;
  created_by: string;
  created_at: string;
  expires_at: string;
  max_uses: number | null;
  uses: number;
  revoked_at: string | null;
}

export interface AgentCredentialsTable {
  id: string;
  client_id: string;
  device_id: string;
  credential_hash: string;
  fingerprint_salt: string;
  last_seq: number;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  /** Set while the agent waits for an admin to link it to this existing device (it enrolled as that machine without its credential). */
  link_device_id?: string | null;
  /** What matched that device: 'entra', 'hardware' (serial + SMBIOS UUID) or 'name'. */
  link_match?: string | null;
}

export interface VolumeStatesTable {
  id: string;
  client_id: string;
  volume_id: string;
  recorded_at: string;
  volume_status: string | null;
  protection_status: string | null;
  lock_status: string | null;
  encryption_method: string | null;
  encryption_percentage: number | null;
  protectors: string | null;
}

export interface KeyAgentFingerprintsTable {
  recovery_key_id: string;
  device_id: string;
  client_id: string;
  fingerprint: string;
  created_at: string;
}

export interface DeviceEventsTable {
  id: string;
  client_id: string;
  device_id: string;
  event_id: number;
  occurred_at: string;
  protector_id: string | null;
  mount_point: string | null;
  received_at: string;
}

export interface FindingsTable {
  id: string;
  client_id: string;
  device_id: string;
  volume_id: string | null;
  recovery_key_id: string | null;
  kind: string;
  protector_id: string | null;
  detail: string;
  opened_at: string;
  resolved_at: string | null;
}

export interface JobsTable {
  id: string;
  client_id: string;
  device_id: string;
  kind: string;
  mount_point: string | null;
  protector_id: string | null;
  recovery_key_id: string | null;
  state: string;
  attempts: number;
  max_attempts: number;
  new_key_id: string | null;
  detail: string | null;
  created_by: string;
  created_at: string;
  expires_at: string;
  sent_at: string | null;
  finished_at: string | null;
  // migration 0014
  /** JSON of kind-specific options (enable-encryption: encryptionMethod, usedSpaceOnly). */
  options?: string | null;
  /** Who asked for it: manual | bulk | policy | disclosure | rotation (null: before 0014, or another producer). */
  origin?: string | null;
}

export interface GraphConnectionsTable {
  id: string;
  client_id: string;
  tenant_id: string;
  app_client_id: string;
  secret_ciphertext: string;
  secret_data_key_version: number;
  login_url: string;
  graph_url: string;
  sync_interval_minutes: number;
  enabled: number;
  created_at: string;
  updated_at: string;
  last_sync_at: string | null;
  last_status: string | null;
  last_error: string | null;
  audit_cursor: string | null;
  /** How the connection signs in: its own app's secret or certificate, or the MSP's one app (migration 0020). */
  credential_kind: 'secret' | 'certificate' | 'msp_app';
  /** A per-client app's public certificate (PEM), its SHA-1 thumbprint (hex) and expiry; the private key is sealed in secret_ciphertext. */
  certificate_pem: string | null;
  certificate_thumbprint: string | null;
  certificate_expires_at: string | null;
  /** When a sync found admin consent withdrawn (or the app gone) in the tenant; cleared by the next good sync. */
  consent_lost_at: string | null;
  /** The last certificate expiry warning sent: `<thumbprint>:<stage>` (migration 0027). */
  certificate_warned?: string | null;
}

/** The vault's one PSA connection (at most one row, id 'psa'). */
export interface PsaConnectionTable {
  id: string;
  kind: 'halopsa' | 'connectwise' | 'autotask';
  /** JSON: the settings that are not secret (addresses, client id, public key, user name, status ids). */
  settings: string;
  /** JSON of the secrets, sealed with the vault's `secrets` key. */
  secret_ciphertext: string;
  status: 'untested' | 'ok' | 'failing';
  last_checked_at: string | null;
  /** Keywarden's words for the last failed test or call (never the PSA's text, never a secret). */
  last_error: string | null;
  created_at: string;
  updated_at: string;
  updated_by_name: string;
}

/** Per client: its PSA company and ticket policy for reveals. */
export interface PsaClientSettingsTable {
  client_id: string;
  company_id: string | null;
  company_name: string | null;
  ticket_policy: 'off' | 'validate' | 'required';
  require_assignee: number;
  updated_at: string;
  updated_by_name: string;
}

/** Per user: the PSA identity (id, login or name) an owner linked, for "assigned to the technician". */
export interface PsaMembersTable {
  user_id: string;
  member: string;
  updated_at: string;
  updated_by_name: string;
}

/** The MSP's one multi-tenant Entra ID app (at most one row, id 'msp'). */
export interface GraphMspAppTable {
  id: string;
  app_client_id: string;
  credential_kind: 'secret' | 'certificate';
  /** The client secret or the certificate's private key (PEM), sealed with the vault's `secrets` key. */
  secret_ciphertext: string;
  certificate_pem: string | null;
  certificate_thumbprint: string | null;
  certificate_expires_at: string | null;
  login_url: string;
  graph_url: string;
  created_at: string;
  updated_at: string;
  updated_by_name: string;
  /** The last certificate expiry warning sent: `<thumbprint>:<stage>` (migration 0027). */
  certificate_warned?: string | null;
}

/** A one-time admin-consent link: the state is kept as its SHA-256 only. */
export interface GraphConsentStatesTable {
  id: string;
  client_id: string;
  state_hash: string;
  expected_tenant_id: string | null;
  created_by_name: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  used_tenant_id: string | null;
}

export interface SyncRunsTable {
  id: string;
  client_id: string;
  connection_id: string;
  started_at: string;
  finished_at: string | null;
  status: string;
  keys_listed: number;
  new_keys: number;
  new_devices: number;
  unchanged: number;
  removed: number;
  key_reads: number;
  errors: number;
  error_text: string | null;
  /** A succeeded run whose optional step failed: which one, in product words (never remote text). */
  warnings?: string | null;
  duration_ms: number | null;
}

export interface ScheduledTasksTable {
  id: string;
  kind: string;
  client_id: string | null;
  target_id: string | null;
  next_run_at: string;
  interval_minutes: number | null;
  locked_by: string | null;
  locked_until: string | null;
  last_run_at: string | null;
  last_status: string | null;
}

export interface DirectoryConnectionsTable {
  id: string;
  client_id: string;
  hosts: string;
  port: number;
  tls_mode: string;
  ca_cert: string | null;
  pinned_sha256: string | null;
  allow_untrusted: number;
  bind_dn: string;
  password_ciphertext: string;
  password_data_key_version: number;
  base_dns: string;
  sync_interval_minutes: number;
  enabled: number;
  last_dc: string | null;
  last_usn: string | null;
  created_at: string;
  updated_at: string;
  last_sync_at: string | null;
  last_status: string | null;
  last_error: string | null;
}

export interface DirectorySyncRunsTable {
  id: string;
  client_id: string;
  connection_id: string;
  started_at: string;
  finished_at: string | null;
  status: string;
  mode: string;
  dc: string | null;
  objects_read: number;
  new_keys: number;
  new_devices: number;
  unchanged: number;
  removed: number;
  invalid: number;
  error_text: string | null;
  duration_ms: number | null;
}

export interface CompliancePoliciesTable {
  /** 'default' (MSP-wide) or a client id. */
  scope: string;
  client_id: string | null;
  /** JSON of the policy fields set at this level; the rest is inherited. */
  settings: string;
  updated_at: string;
  updated_by: string;
}

export interface ComplianceExemptionsTable {
  id: string;
  client_id: string;
  device_id: string;
  reason: string;
  expires_at: string | null;
  created_by: string;
  created_at: string;
  revoked_at: string | null;
  revoked_by: string | null;
}

export interface DeviceComplianceTable {
  device_id: string;
  client_id: string;
  status: string;
  findings: string;
  signature: string;
  status_since: string;
  changed_at: string;
  evaluated_at: string;
}

export interface ComplianceHistoryTable {
  id: string;
  client_id: string;
  device_id: string;
  recorded_at: string;
  status: string;
  previous_status: string | null;
  codes: string;
}

/** Notifications: see migrations/0007_notifications.ts. */
export interface NotificationChannelsTable {
  id: string;
  client_id: string | null;
  name: string;
  kind: string;
  config: string;
  secret_ciphertext: string | null;
  secret_data_key_version: number | null;
  enabled: number;
  created_by: string;
  created_at: string;
  updated_at: string;
}
export interface NotificationRulesTable {
  id: string;
  client_id: string | null;
  name: string;
  event_types: string;
  digest: string;
  enabled: number;
  created_by: string;
  created_at: string;
  updated_at: string;
}
export interface NotificationRuleChannelsTable {
  rule_id: string;
  channel_id: string;
}
export interface NotificationOutboxTable {
  id: string;
  client_id: string | null;
  event_type: string;
  device_id: string | null;
  subject: string;
  details: string;
  dedup_key: string | null;
  occurred_at: string;
  created_at: string;
  state: string;
  routed_at: string | null;
}
export interface NotificationItemsTable {
  id: string;
  outbox_id: string;
  rule_id: string;
  channel_id: string;
  client_id: string | null;
  due_at: string;
  delivery_id: string | null;
  created_at: string;
}
export interface NotificationDeliveriesTable {
  id: string;
  channel_id: string;
  channel_name: string;
  channel_kind: string;
  client_id: string | null;
  rule_id: string | null;
  kind: string;
  subject: string;
  payload: string;
  event_count: number;
  status: string;
  attempts: number;
  max_attempts: number;
  next_attempt_at: string | null;
  locked_by: string | null;
  locked_until: string | null;
  last_error: string | null;
  created_at: string;
  sent_at: string | null;
}
export interface NotificationAttemptsTable {
  id: string;
  delivery_id: string;
  attempt: number;
  at: string;
  outcome: string;
  response_code: string | null;
  summary: string | null;
  error: string | null;
  duration_ms: number;
}
export interface ReportSchedulesTable {
  id: string;
  client_id: string;
  name: string;
  channel_id: string;
  recipients: string;
  reports: string;
  frequency: string;
  day: number | null;
  hour: number;
  minute: number;
  enabled: number;
  next_run_at: string;
  last_run_at: string | null;
  last_delivery_id: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
}

export interface ExportSchedulesTable {
  id: string;
  /** null = all clients in one bundle. */
  client_id: string | null;
  /** age X25519 recipient public key (age1…); no passphrase is ever stored. */
  recipient: string;
  folder: string;
  /** 'daily' | 'weekly' */
  frequency: string;
  keep: number;
  created_by: string;
  created_at: string;
  last_run_at: string | null;
  last_status: string | null;
  last_file: string | null;
}

/** An optional column: reads may be null, inserts may leave it out. */
type Optional<T> = ColumnType<T | null, T | null | undefined, T | null>;

/** An action waiting for a second owner: a destructive one, or a change of who may do them. */
export interface LifecycleApprovalsTable {
  id: string;
  action: string;
  /** null for a vault-wide request (e.g. switching two-owner approval off). */
  client_id: string | null;
  device_id: string | null;
  /** What the request is about, for display ('device', 'client', 'setting', 'user', ...). */
  target_type: Optional<string>;
  target_id: Optional<string>;
  /** JSON object the approved action runs with; never a secret. */
  params: Optional<string>;
  status: string;
  reason: string | null;
  requested_by: string;
  requested_by_name: string;
  requested_at: string;
  expires_at: string;
  approved_by: string | null;
  approved_by_name: string | null;
  approved_at: string | null;
  closed_at: string | null;
  result: string | null;
}

/** A person's passkey (WebAuthn credential); several per person. */
export interface PasskeysTable {
  id: string;
  user_id: string;
  credential_id: string;
  public_key: string;
  sign_count: number;
  /** JSON list of transports. */
  transports: string;
  name: string;
  backed_up: number;
  created_at: string;
  last_used_at: string | null;
}

/** A single-use WebAuthn challenge (stored by its SHA-256). purpose: register | sign-in | step-up. */
export interface PasskeyChallengesTable {
  id: string;
  challenge_hash: string;
  purpose: string;
  user_id: string | null;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

/** Single sign-on (migration 0016): an OpenID Connect provider an owner configured. */
export interface SsoProvidersTable {
  id: string;
  kind: string;
  name: string;
  issuer: string;
  /** JSON array of Entra tenant ids allowed for a multi-tenant app, or null. */
  allowed_tenants: string | null;
  client_id: string;
  /** Sealed with the vault's secrets key (AAD sso-provider=<id>); never returned. */
  client_secret: string | null;
  scopes: string;
  enabled: number;
  jit: number;
  idp_mfa: number;
  /** JSON array of acr values that count as multi-factor, or null. */
  mfa_acr: string | null;
  mapping_mode: string;
  /** JSON array of mapping rules. */
  mappings: string;
  revalidate_minutes: number;
  created_at: string;
  updated_at: string;
}

export interface SsoLinksTable {
  id: string;
  provider_id: string;
  subject: string;
  user_id: string;
  email: string | null;
  created_at: string;
  last_login_at: string | null;
}

export interface SsoLoginStatesTable {
  id: string;
  state_hash: string;
  browser_hash: string;
  provider_id: string;
  purpose: string;
  session_id: string | null;
  /** Nonce and PKCE verifier, sealed with the secrets key (AAD sso-state=<id>). */
  sealed: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

export interface SsoSessionsTable {
  session_id: string;
  provider_id: string;
  link_id: string;
  user_id: string;
  /** Sealed with the secrets key (AAD sso-session=<session id>), when the provider issued one. */
  refresh_token: string | null;
  idp_mfa: number;
  validated_at: string;
  ended_at: string | null;
}

/** Two-person approval for reveal, per client (no row: off). */
export interface RevealPoliciesTable {
  client_id: string;
  /** 'off' | 'required' | 'tagged' (required for devices with one of `tags`). */
  mode: string;
  /** JSON array of tag names. */
  tags: string;
  approval_minutes: number;
  request_hours: number;
  updated_at: string;
  updated_by_name: string;
}

/** Labels on devices ("server", "executive"), named by a tagged reveal policy. */
export interface DeviceTagsTable {
  device_id: string;
  client_id: string;
  tag: string;
  created_at: string;
  created_by_name: string;
}

/** A request to reveal one key record, approved or denied by a second person; never a secret. */
export interface RevealRequestsTable {
  id: string;
  client_id: string;
  recovery_key_id: string;
  device_id: string | null;
  reason: string;
  ticket: string | null;
  note: string | null;
  /** 'user' | 'token': who asked, and the person behind it (a token's creator). */
  requester_type: string;
  requester_id: string;
  requester_person_id: string;
  requester_name: string;
  /** 'pending' | 'approved' | 'denied' | 'cancelled' | 'used'; expiry is read from the times. */
  status: string;
  requested_at: string;
  expires_at: string;
  decided_by_id: string | null;
  decided_by_name: string | null;
  decided_at: string | null;
  decision_note: string | null;
  approval_expires_at: string | null;
  used_at: string | null;
}

/** What the last Entra sync read about a client's tenant (migration 0021); answers are yes / no / unknown. */
export interface TenantPostureTable {
  client_id: string;
  tenant_id: string;
  users_read_own_keys: string;
  users_read_own_keys_reason: string | null;
  intune_requires_escrow: string;
  intune_reason: string | null;
  /** JSON: [{ name, kind, requiresEscrow }] */
  intune_policies: string;
  checked_at: string;
  changed_at: string;
}

/** Self-service recovery (issue 20): a client's switch; no row = off. */
export interface SelfServiceClientsTable {
  client_id: string;
  enabled: number;
  updated_at: string;
  updated_by_name: string;
}

/** The vault-wide self-service sign-in app (one row, id 'app'). client_secret sealed (secrets key, AAD self-service-app). */
export interface SelfServiceAppTable {
  id: string;
  issuer: string;
  client_id: string;
  client_secret: string | null;
  /** 'secret' today; a certificate credential may follow (the MSP app's). */
  credential_kind: string;
  enabled: number;
  updated_at: string;
}

/** A started end-user sign-in: used once. */
export interface SelfServiceStatesTable {
  id: string;
  state_hash: string;
  browser_hash: string;
  sealed: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

/** An end user's short self-service session (never a console session). */
export interface SelfServiceSessionsTable {
  id: string;
  token_hash: string;
  csrf_hash: string;
  client_id: string;
  tenant_id: string;
  object_id: string;
  upn: string;
  name: string | null;
  created_at: string;
  expires_at: string;
  ended_at: string | null;
  /** JSON array of the Entra device ids Graph /me named at sign-in (0023); null: Graph could not be read. */
  entra_device_ids: string | null;
}

/** Ticket-bound reveal (0025): internal notes waiting to be posted on a PSA ticket. Never a secret. */
export interface PsaNoteOutboxTable {
  id: string;
  client_id: string;
  recovery_key_id: string;
  psa_kind: string;
  /** The ticket as typed (normalised): what getTicket is asked for when ticket_id is unknown. */
  ticket_ref: string;
  /** The PSA's ticket id once known (a validated reveal knows it). */
  ticket_id: string | null;
  /** The client's linked PSA company at reveal time: a note is posted only on a ticket of it. */
  company_id: string;
  /** 1: the ticket was checked at reveal time; 0: the PSA could not be asked then. */
  validated: number;
  text: string;
  /** pending | posted | failed */
  status: string;
  attempts: number;
  next_attempt_at: string;
  last_problem: string | null;
  created_at: string;
  done_at: string | null;
}

/** Findings → PSA tickets (0026): a client's rules, with its run lease and the last failed run. codes: JSON array. */
export interface PsaTicketRulesTable {
  client_id: string;
  enabled: number;
  codes: string;
  priority: string | null;
  queue: string | null;
  digest: number;
  digest_threshold: number;
  updated_at: string;
  updated_by_name: string;
  run_owner: string | null;
  run_until: string | null;
  last_run_at: string | null;
  failing_since: string | null;
  last_error: string | null;
}

/** One (client, device, finding code) Keywarden opened a PSA ticket for (0026); digest rows share a PSA ticket. */
export interface PsaFindingTicketsTable {
  id: string;
  client_id: string;
  /** NULL for a client-level finding (about the client's Microsoft 365 tenant). */
  device_id: string | null;
  device_name: string | null;
  code: string;
  /** `device|code` (`client|code` for a client-level finding) while open (unique per client), NULL once closed. */
  open_key: string | null;
  psa_kind: string;
  psa_ticket_id: string;
  psa_ticket_number: string;
  digest: number;
  /** open | closed (the finding cleared) | closed_in_psa (someone closed the ticket while the finding persisted). */
  state: string;
  title: string;
  body: string;
  opened_at: string;
  updated_at: string;
  checked_at: string;
  closed_at: string | null;
  closed_reason: string | null;
  /** The PSA priority last written to the ticket (NULL: none given, the PSA's default). */
  priority: string | null;
}

export interface DB {
  psa_note_outbox: PsaNoteOutboxTable;
  tenant_posture: TenantPostureTable;
  self_service_clients: SelfServiceClientsTable;
  self_service_app: SelfServiceAppTable;
  self_service_states: SelfServiceStatesTable;
  self_service_sessions: SelfServiceSessionsTable;
  psa_ticket_rules: PsaTicketRulesTable;
  psa_finding_tickets: PsaFindingTicketsTable;
  passkeys: PasskeysTable;
  passkey_challenges: PasskeyChallengesTable;
  sso_providers: SsoProvidersTable;
  sso_links: SsoLinksTable;
  sso_login_states: SsoLoginStatesTable;
  sso_sessions: SsoSessionsTable;
  reveal_policies: RevealPoliciesTable;
  device_tags: DeviceTagsTable;
  reveal_requests: RevealRequestsTable;
  lifecycle_approvals: LifecycleApprovalsTable;
  export_schedules: ExportSchedulesTable;
  notification_channels: NotificationChannelsTable;
  notification_rules: NotificationRulesTable;
  notification_rule_channels: NotificationRuleChannelsTable;
  notification_outbox: NotificationOutboxTable;
  notification_items: NotificationItemsTable;
  notification_deliveries: NotificationDeliveriesTable;
  notification_attempts: NotificationAttemptsTable;
  report_schedules: ReportSchedulesTable;
  compliance_policies: CompliancePoliciesTable;
  compliance_exemptions: ComplianceExemptionsTable;
  device_compliance: DeviceComplianceTable;
  compliance_history: ComplianceHistoryTable;
  directory_connections: DirectoryConnectionsTable;
  directory_sync_runs: DirectorySyncRunsTable;
  graph_connections: GraphConnectionsTable;
  graph_msp_app: GraphMspAppTable;
  psa_connection: PsaConnectionTable;
  psa_client_settings: PsaClientSettingsTable;
  psa_members: PsaMembersTable;
  graph_consent_states: GraphConsentStatesTable;
  sync_runs: SyncRunsTable;
  scheduled_tasks: ScheduledTasksTable;
  enrollment_tokens: EnrollmentTokensTable;
  agent_credentials: AgentCredentialsTable;
  volume_states: VolumeStatesTable;
  key_agent_fingerprints: KeyAgentFingerprintsTable;
  device_events: DeviceEventsTable;
  findings: FindingsTable;
  jobs: JobsTable;
  users: UsersTable;
  user_clients: UserClientsTable;
  recovery_codes: RecoveryCodesTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  api_token_clients: ApiTokenClientsTable;
  login_throttle: LoginThrottleTable;
  invitations: InvitationsTable;
  settings: SettingsTable;
  master_keys: MasterKeysTable;
  data_keys: DataKeysTable;
  clients: ClientsTable;
  devices: DevicesTable;
  volumes: VolumesTable;
  recovery_keys: RecoveryKeysTable;
  key_sources: KeySourcesTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
}
