import type { Executor } from '../../db/database.js';
import type { TenantPostureTable } from '../../db/schema.js';
import type { ClientScope } from '../../db/scope.js';
import type { Clock } from '../../lib/clock.js';
import {
  catalogPolicy,
  intuneNoReason,
  intuneRequiresEscrow,
  NOT_READ,
  policyAssignments,
  POSTURE_PERMISSION,
  postureLines,
  postureNotes,
  templatePolicy,
  usersCanReadOwnKeys,
  type BitLockerPolicy,
  type PostureLine,
  type PostureNote,
  type PosturePolicy,
  type TenantPosture,
  type Tristate,
} from '../../domain/compliance/tenant-posture.js';
import { GraphError, type GraphClient } from '../../integrations/graph-client.js';
import type { Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { PostureRepo } from './posture.repo.js';

/**
 * Tenant posture, read at the end of every Entra sync (after the keys): an optional step. A
 * permission the app registration lacks makes that answer "unknown" with what to grant, and a
 * warning on a succeeded sync; nothing here fails a sync. Stored per client (posture.repo.ts), a
 * change audited as graph.posture_changed; compliance and reports read it through `list`.
 */

export type PostureView = TenantPosture & {
  clientId: string;
  tenantId: string;
  checkedAt: string;
  changedAt: string;
  lines: PostureLine[];
  notes: PostureNote[];
};

/** Settings catalog policies whose settings are read (a tenant with more is read in part, said so). */
const MAX_CATALOG_POLICIES = 200;
/**
 * BitLocker policies whose assignments are read, one call each (a tenant with more is read in part,
 * said so; the rest count as "not read", which can only turn a "yes" into a "no").
 */
const MAX_ASSIGNMENT_READS = 100;
/** Graph object ids Keywarden puts in a path (Intune policy ids are GUIDs). */
const SAFE_ID = /^[0-9a-zA-Z-]{1,64}$/;

function why(e: unknown, permission: string, what: string): string {
  if (e instanceof GraphError && e.status === 403) return `grant ${permission} to the app registration (and admin consent) so Keywarden can read ${what}`;
  if (e instanceof GraphError)
    return `${e.status ? `Microsoft Graph answered HTTP ${e.status}` : 'Microsoft Graph could not be reached'} when Keywarden read ${what}`;
  return `an unexpected error stopped reading ${what}`;
}

/** A part that could not be read for a reason other than a refused permission (throttled, down): the last answer stands. */
export type PostureGaps = { users: boolean; intune: boolean };
const transient = (e: unknown) => !(e instanceof GraphError && e.status === 403);

/** Reads both answers from Graph. Never throws; `warnings` says what could not be read and why. */
export async function readTenantPosture(
  graph: Pick<GraphClient, 'getObject' | 'listPages'>,
): Promise<{ posture: TenantPosture; warnings: string[]; gaps: PostureGaps }> {
  const warnings: string[] = [];
  const gaps: PostureGaps = { users: false, intune: false };
  const posture: TenantPosture = {
    usersCanReadOwnKeys: 'unknown',
    usersCanReadOwnKeysReason: null,
    intuneRequiresEscrow: 'unknown',
    intuneReason: null,
    intunePolicies: [],
  };
  try {
    posture.usersCanReadOwnKeys = usersCanReadOwnKeys(await graph.getObject('/v1.0/policies/authorizationPolicy'));
    if (posture.usersCanReadOwnKeys === 'unknown') posture.usersCanReadOwnKeysReason = 'the authorization policy does not say';
  } catch (e) {
    posture.usersCanReadOwnKeysReason = why(e, POSTURE_PERMISSION.policy, 'the authorization policy');
    gaps.users = transient(e);
    warnings.push(`Whether end users can read their own BitLocker keys is unknown: ${posture.usersCanReadOwnKeysReason}.`);
  }
  // The Intune policies that turn BitLocker on, each with the path of its assignments.
  let found: { policy: BitLockerPolicy; assignments: string | null }[] | null = null;
  try {
    found = [];
    for await (const page of graph.listPages('/v1.0/deviceManagement/deviceConfigurations')) {
      for (const c of page) {
        const p = templatePolicy(c);
        const id = (c as { id?: unknown }).id;
        const path = typeof id === 'string' && SAFE_ID.test(id) ? `/v1.0/deviceManagement/deviceConfigurations/${encodeURIComponent(id)}/assignments` : null;
        if (p) found.push({ policy: p, assignments: path });
      }
    }
    const catalog: { id: string; name: string }[] = [];
    for await (const page of graph.listPages('/beta/deviceManagement/configurationPolicies')) {
      for (const raw of page) {
        const p = raw as { id?: unknown; name?: unknown; platforms?: unknown };
        if (typeof p.id !== 'string' || !SAFE_ID.test(p.id)) continue;
        if (typeof p.platforms === 'string' && !p.platforms.toLowerCase().includes('windows10')) continue;
        catalog.push({ id: p.id, name: typeof p.name === 'string' ? p.name : '' });
      }
    }
    for (const c of catalog.slice(0, MAX_CATALOG_POLICIES)) {
      const settings: unknown[] = [];
      for await (const page of graph.listPages(`/beta/deviceManagement/configurationPolicies/${encodeURIComponent(c.id)}/settings`)) settings.push(...page);
      const p = catalogPolicy(c.name, settings);
      if (p) found.push({ policy: p, assignments: `/beta/deviceManagement/configurationPolicies/${encodeURIComponent(c.id)}/assignments` });
    }
    if (catalog.length > MAX_CATALOG_POLICIES)
      warnings.push(`Only the first ${MAX_CATALOG_POLICIES} Intune settings catalog policies were read for the tenant posture.`);
  } catch (e) {
    found = null;
    posture.intuneReason = why(e, POSTURE_PERMISSION.intune, 'the Intune BitLocker policies');
    gaps.intune = transient(e);
    warnings.push(`Whether Intune requires recovery information stored before BitLocker is enabled is unknown: ${posture.intuneReason}.`);
  }
  if (found) {
    // Assignments, one call per BitLocker policy: an unassigned policy applies to no device. The
    // policies that require escrow are read first (only they can make the answer "yes"); then the
    // others, so that a "no" names only policies that do reach devices, and the card says of each
    // whom it reaches. Same permission as the policies themselves.
    const policies: PosturePolicy[] = found.map((f) => ({ ...f.policy, ...NOT_READ }));
    const order = found.map((_, i) => i).sort((a, b) => Number(found[b]!.policy.requiresEscrow) - Number(found[a]!.policy.requiresEscrow));
    try {
      for (const i of order.slice(0, MAX_ASSIGNMENT_READS)) {
        const path = found[i]!.assignments;
        if (!path) continue;
        const list: unknown[] = [];
        for await (const page of graph.listPages(path)) list.push(...page);
        policies[i] = { ...found[i]!.policy, ...policyAssignments(list) };
      }
      if (found.length > MAX_ASSIGNMENT_READS)
        warnings.push(`Only the assignments of the first ${MAX_ASSIGNMENT_READS} Intune BitLocker policies were read for the tenant posture.`);
      posture.intunePolicies = policies.slice(0, 100);
      posture.intuneRequiresEscrow = intuneRequiresEscrow(policies);
      posture.intuneReason = intuneNoReason(policies);
    } catch (e) {
      // Unknown, not "no": Keywarden did not see whether the policies reach any device, and the fix
      // is a permission (said here), not an assignment; a "no" would send the MSP looking for an
      // unassigned policy that may well be assigned. The policies are still listed, "not read".
      posture.intunePolicies = policies.map((p) => ({ ...p, ...NOT_READ })).slice(0, 100);
      posture.intuneRequiresEscrow = 'unknown';
      posture.intuneReason = why(e, POSTURE_PERMISSION.intune, 'the assignments of the Intune BitLocker policies');
      gaps.intune = transient(e);
      warnings.push(`Whether Intune requires recovery information stored before BitLocker is enabled is unknown: ${posture.intuneReason}.`);
    }
  }
  return { posture, warnings, gaps };
}

const asTristate = (s: string): Tristate => (s === 'yes' || s === 'no' ? s : 'unknown');
export function postureView(r: TenantPostureTable & { consent_lost_at?: string | null }): PostureView {
  const p: TenantPosture = {
    usersCanReadOwnKeys: asTristate(r.users_read_own_keys),
    usersCanReadOwnKeysReason: r.users_read_own_keys_reason,
    intuneRequiresEscrow: asTristate(r.intune_requires_escrow),
    intuneReason: r.intune_reason,
    // Rows stored before Keywarden read assignments have none: "not read" until the next sync.
    intunePolicies: (JSON.parse(r.intune_policies) as Partial<PosturePolicy>[]).map((x) => ({
      ...(x as PosturePolicy),
      assigned: x.assigned ?? null,
      assignedTo: x.assignedTo ?? NOT_READ.assignedTo,
    })),
  };
  return {
    clientId: r.client_id,
    tenantId: r.tenant_id,
    checkedAt: r.checked_at,
    changedAt: r.changed_at,
    ...p,
    lines: postureLines(p),
    notes: postureNotes(p, { consentLostAt: r.consent_lost_at ?? null }),
  };
}

type Deps = { repo: PostureRepo; audit: Pick<AuditService, 'record'>; clock: Clock };

export function createTenantPosture({ repo, audit, clock }: Deps) {
  return {
    /** In the caller's transaction: stores what a sync read; a change of an answer is audited. */
    async record(
      exec: Executor,
      actor: Actor,
      conn: { id: string; client_id: string; tenant_id: string },
      posture: TenantPosture,
      gaps: PostureGaps = { users: false, intune: false },
    ): Promise<void> {
      const now = clock.now();
      const before = await repo.find(exec, conn.client_id);
      // Graph throttled or down for a part: its last answer stands (a refused permission does replace it).
      if (before && before.tenant_id === conn.tenant_id) {
        const last = postureView(before);
        if (gaps.users) posture = { ...posture, usersCanReadOwnKeys: last.usersCanReadOwnKeys, usersCanReadOwnKeysReason: last.usersCanReadOwnKeysReason };
        if (gaps.intune)
          posture = { ...posture, intuneRequiresEscrow: last.intuneRequiresEscrow, intuneReason: last.intuneReason, intunePolicies: last.intunePolicies };
      }
      const row: TenantPostureTable = {
        client_id: conn.client_id,
        tenant_id: conn.tenant_id,
        users_read_own_keys: posture.usersCanReadOwnKeys,
        users_read_own_keys_reason: posture.usersCanReadOwnKeysReason,
        intune_requires_escrow: posture.intuneRequiresEscrow,
        intune_reason: posture.intuneReason,
        intune_policies: JSON.stringify(posture.intunePolicies),
        checked_at: now,
        changed_at: now,
      };
      const changed =
        !before ||
        before.users_read_own_keys !== row.users_read_own_keys ||
        before.intune_requires_escrow !== row.intune_requires_escrow ||
        before.intune_policies !== row.intune_policies;
      if (before && !changed) row.changed_at = before.changed_at;
      await repo.upsert(exec, row);
      if (changed)
        await audit.record(exec, actor, {
          action: 'graph.posture_changed',
          outcome: 'success',
          clientId: conn.client_id,
          targetType: 'graph_connection',
          targetId: conn.id,
          details: {
            tenantId: conn.tenant_id,
            usersCanReadOwnKeys: row.users_read_own_keys,
            intuneRequiresEscrow: row.intune_requires_escrow,
            previous: before ? { usersCanReadOwnKeys: before.users_read_own_keys, intuneRequiresEscrow: before.intune_requires_escrow } : null,
          },
        });
    },

    /** With the Entra ID connection: without one, Keywarden no longer knows the tenant's posture. */
    remove: (exec: Executor, clientId: string) => repo.remove(exec, clientId),

    /** The posture of the clients in scope, for compliance and reports (the caller authorizes). */
    async list(exec: Executor, scope: ClientScope, clientId?: string | null): Promise<PostureView[]> {
      return (await repo.list(exec, scope, clientId)).map(postureView);
    },
  };
}
export type TenantPostureStore = ReturnType<typeof createTenantPosture>;
