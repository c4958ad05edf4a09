import type { Migration } from 'kysely';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_identity.js';
import * as m0003 from './0003_agent.js';
import * as m0004 from './0004_graph.js';
import * as m0005 from './0005_directory.js';
import * as m0006 from './0006_compliance.js';
import * as m0007 from './0007_notifications.js';
import * as m0008 from './0008_lifecycle.js';
import * as m0009 from './0009_scale.js';
import * as m0010 from './0010_exports.js';
import * as m0011 from './0011_approvals.js';
import * as m0012 from './0012_agent_links.js';
import * as m0013 from './0013_sync_warnings.js';
import * as m0014 from './0014_agent_jobs.js';
import * as m0015 from './0015_checkin_indexes.js';
import * as m0016 from './0016_sso.js';
import * as m0017 from './0017_passkeys.js';
import * as m0018 from './0018_invitations.js';
import * as m0019 from './0019_reveal_approvals.js';
import * as m0020 from './0020_msp_app.js';
import * as m0021 from './0021_tenant_posture.js';
import * as m0022 from './0022_self_service.js';
import * as m0023 from './0023_self_service_devices.js';
import * as m0024 from './0024_psa.js';
import * as m0025 from './0025_psa_notes.js';
import * as m0026 from './0026_psa_ticket_rules.js';
import * as m0027 from './0027_certificate_warnings.js';
import * as m0028 from './0028_psa_client_findings.js';
import * as m0029 from './0029_primary_user_source.js';

/**
 * A static map instead of FileMigrationProvider: it works from src (vitest, tsx) and from dist
 * alike, and a migration cannot go missing from a build. Add new ones in order.
 */
export const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_identity': m0002,
  '0003_agent': m0003,
  '0004_graph': m0004,
  '0005_directory': m0005,
  '0006_compliance': m0006,
  '0007_notifications': m0007,
  '0008_lifecycle': m0008,
  '0009_scale': m0009,
  '0010_exports': m0010,
  '0011_approvals': m0011,
  '0012_agent_links': m0012,
  '0013_sync_warnings': m0013,
  '0014_agent_jobs': m0014,
  '0015_checkin_indexes': m0015,
  '0016_sso': m0016,
  '0017_passkeys': m0017,
  '0018_invitations': m0018,
  '0019_reveal_approvals': m0019,
  '0020_msp_app': m0020,
  '0021_tenant_posture': m0021,
  '0022_self_service': m0022,
  '0023_self_service_devices': m0023,
  '0024_psa': m0024,
  '0025_psa_notes': m0025,
  '0026_psa_ticket_rules': m0026,
  '0027_certificate_warnings': m0027,
  '0028_psa_client_findings': m0028,
  '0029_primary_user_source': m0029,
};
