import type { Executor, Tx } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, conflict, forbidden, notFound } from '../../lib/errors.js';
import { scopeIncludes } from '../../db/scope.js';
import { clientScope, requireFreshSecondFactor, requirePermission, systemActor, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { SettingsRepo } from '../settings/settings.repo.js';
import type { ApprovalRow, LifecycleRepo } from './lifecycle.repo.js';

/**
 * Two-owner approval: while it is switched on, an action registered here runs only once a second
 * owner approves it. The second owner is someone other than the requester whose account existed
 * before the request was made (an owner account created to approve one's own request counts for
 * nothing). Other modules register their own guarded actions by name and request them; nothing
 * secret is ever stored in a request (its parameters are shown to whoever may approve it).
 */
export const APPROVAL_HOURS = 72;
export const SETTING_TWO_OWNER = 'lifecycle.two_owner_approval';

export type ApprovalView = {
  id: string;
  action: string;
  /** null for a vault-wide request. */
  client: { id: string; name: string } | null;
  device: { id: string; name: string } | null;
  target: { type: string; id: string | null } | null;
  params: Record<string, unknown>;
  status: string;
  reason: string | null;
  requestedBy: string;
  requestedAt: string;
  expiresAt: string;
  approvedBy: string | null;
  approvedAt: string | null;
  closedAt: string | null;
  result: Record<string, unknown> | null;
};
export type ApprovalOutcome = { status: 'executed'; action: string; result: Record<string, unknown> };
export type ApprovalExecutor = (tx: Tx, approver: Actor, params: Record<string, unknown>) => Promise<unknown>;
export type ApprovalRequest = {
  action: string;
  clientId: string | null;
  targetType: string;
  targetId: string | null;
  reason?: string | null;
  params: Record<string, unknown>;
};

const addHours = (iso: string, h: number) => new Date(Date.parse(iso) + h * 3_600_000).toISOString();
/** Parameter names that would mean a secret is being stored. */
const SECRET_NAME = /pass(word|phrase)|secret|totp|private|credential|ciphertext/i;
const MAX_PARAMS = 4000;

function parseObject(text: string | null): Record<string, unknown> | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : { value: v };
  } catch {
    return null;
  }
}

/** A client's requests are for those who have that client; vault-wide ones for those who have every client. */
const inReach = (actor: Actor, clientId: string | null) => (clientId === null ? clientScope(actor) === null : scopeIncludes(clientScope(actor), clientId));

function checkParams(params: Record<string, unknown>): string {
  const walk = (v: unknown): void => {
    if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (SECRET_NAME.test(k)) throw new Error(`approval parameters must not hold a secret (${k})`);
        walk(x);
      }
    }
  };
  walk(params);
  const text = JSON.stringify(params);
  if (text.length > MAX_PARAMS) throw new Error('approval parameters are too large');
  return text;
}

type Deps = {
  tx: Transactions;
  repo: LifecycleRepo;
  settings: Pick<SettingsRepo, 'get'>;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
  stepUpMinutes: number;
};

export function createApprovals({ tx, repo, settings, audit, clock, stepUpMinutes }: Deps) {
  const executors = new Map<string, ApprovalExecutor>();

  const view = async (exec: Executor, r: ApprovalRow): Promise<ApprovalView> => {
    const clientName = r.client_id ? await repo.clientName(exec, r.client_id) : undefined;
    const deviceName = r.client_id && r.device_id ? await repo.deviceName(exec, r.client_id, r.device_id) : undefined;
    const params = parseObject(r.params) ?? {};
    return {
      id: r.id,
      action: r.action,
      client: r.client_id ? { id: r.client_id, name: clientName ?? '' } : null,
      device: r.device_id && deviceName !== undefined ? { id: r.device_id, name: deviceName } : null,
      target: r.target_type
        ? { type: r.target_type, id: r.target_id }
        : r.device_id
          ? { type: 'device', id: r.device_id }
          : r.client_id
            ? { type: 'client', id: r.client_id }
            : null,
      params,
      status: r.status,
      reason: r.reason,
      requestedBy: r.requested_by_name,
      requestedAt: r.requested_at,
      expiresAt: r.expires_at,
      approvedBy: r.approved_by_name,
      approvedAt: r.approved_at,
      closedAt: r.closed_at,
      result: parseObject(r.result),
    };
  };

  /** The request this actor may see, else 404 (a client-limited owner never learns of others' requests). */
  async function visible(exec: Executor, actor: Actor, id: string): Promise<ApprovalRow> {
    const a = await repo.approval(exec, id);
    if (!a || !inReach(actor, a.client_id)) throw notFound(`No approval request with id ${id.slice(0, 60)}.`);
    return a;
  }

  /** Pending requests past their expiry become 'expired' (audited), so they can never be approved. */
  async function expire(): Promise<void> {
    const now = clock.now();
    for (const a of await repo.staleApprovals(tx.reader, now)) {
      await tx.run(async (t) => {
        if (await repo.closeApproval(t, a.id, { status: 'expired', closed_at: now })) {
          await audit.record(t, systemActor('approvals'), {
            action: 'lifecycle.expire',
            outcome: 'success',
            clientId: a.client_id,
            targetType: 'approval',
            targetId: a.id,
            details: { action: a.action },
          });
        }
      });
    }
  }

  const approvals = {
    /** Whether guarded actions need a second owner now. */
    async twoOwnerRequired(exec: Executor): Promise<boolean> {
      return (await settings.get(exec, SETTING_TWO_OWNER)) === 'true';
    },

    /** Names an action a second owner may approve; approving runs `executor` as the approver. */
    register(action: string, executor: ApprovalExecutor): void {
      if (executors.has(action)) throw new Error(`approval action ${action} is registered twice`);
      executors.set(action, executor);
    },

    /**
     * Records a pending request (inside the caller's transaction) and audits it. The caller decides
     * that approval is needed (usually: `twoOwnerRequired`) and has already checked the requester's
     * own permission for the action.
     */
    async request(t: Tx, actor: Actor, req: ApprovalRequest): Promise<ApprovalView> {
      if (!executors.has(req.action)) throw new Error(`approval action ${req.action} is not registered`);
      const now = clock.now();
      const row = {
        id: newId(),
        action: req.action,
        client_id: req.clientId,
        device_id: req.targetType === 'device' ? req.targetId : null,
        target_type: req.targetType,
        target_id: req.targetId,
        params: checkParams(req.params),
        status: 'pending',
        reason: req.reason ?? null,
        requested_by: actor.id,
        requested_by_name: actor.name,
        requested_at: now,
        expires_at: addHours(now, APPROVAL_HOURS),
        approved_by: null,
        approved_by_name: null,
        approved_at: null,
        closed_at: null,
        result: null,
      };
      await repo.insertApproval(t, row);
      await audit.record(t, actor, {
        action: 'lifecycle.request',
        outcome: 'success',
        clientId: req.clientId,
        targetType: 'approval',
        targetId: row.id,
        details: { action: req.action, target: req.targetType, targetId: req.targetId, deviceId: row.device_id, reason: row.reason, expiresAt: row.expires_at },
      });
      return view(t, row);
    },

    /** Requests in the actor's reach: its clients' ones; vault-wide ones only for "all clients". */
    async list(actor: Actor, filter: { status?: string; clientId?: string } = {}): Promise<ApprovalView[]> {
      requirePermission(actor, 'lifecycle:approve');
      await expire();
      const rows = await repo.listApprovals(tx.reader, clientScope(actor), { ...filter, limit: 200 });
      return Promise.all(rows.map((r) => view(tx.reader, r)));
    },

    /**
     * A second owner approves (typing the client's name again when the request concerns a client);
     * the action runs at once, in the same transaction, as the approver.
     */
    async approve(actor: Actor, approvalId: string, input: { confirm?: string }): Promise<ApprovalOutcome> {
      requirePermission(actor, 'lifecycle:approve');
      requireFreshSecondFactor(actor, 'approve a destructive action', clock.now(), stepUpMinutes);
      await expire();
      return tx.run(async (t) => {
        const a = await visible(t, actor, approvalId);
        if (a.status !== 'pending') throw conflict(`That request is ${a.status}; only a pending request can be approved.`);
        if (a.requested_by === actor.id) throw forbidden('A second owner must approve: the owner who asked cannot approve their own request.');
        if (actor.type === 'user') {
          // An account made after the request (perhaps by the requester) is not a second owner.
          const created = await repo.accountCreatedAt(t, actor.id);
          if (!created || created > a.requested_at)
            throw forbidden('A second owner must approve: an owner account created after the request cannot approve it.');
        } else if (actor.type !== 'cli') {
          throw forbidden('Only an owner signed in as a person can approve a request.');
        }
        if (a.client_id) {
          const name = (await repo.clientName(t, a.client_id)) ?? '';
          if ((input.confirm ?? '').trim() !== name) throw badRequest(`To confirm, type the client's name exactly as shown: "${name}".`, { field: 'confirm' });
        }
        const run = executors.get(a.action);
        if (!run) throw conflict(`This version of Keywarden cannot run "${a.action.slice(0, 60)}" requests; cancel it.`);
        const now = clock.now();
        // Claimed before it runs: of two approvers at once, one runs it and the other gets a conflict.
        const claimed = await repo.closeApproval(t, a.id, {
          status: 'executed',
          approved_by: actor.id,
          approved_by_name: actor.name,
          approved_at: now,
          closed_at: now,
        });
        if (!claimed) throw conflict('That request was closed by someone else meanwhile.');
        await audit.record(t, actor, {
          action: 'lifecycle.approve',
          outcome: 'success',
          clientId: a.client_id,
          targetType: 'approval',
          targetId: a.id,
          details: { action: a.action, requestedBy: a.requested_by_name },
        });
        // Requests made before parameters were stored name their device and client in columns.
        const params = parseObject(a.params) ?? { clientId: a.client_id, deviceId: a.device_id, reason: a.reason };
        const out = await run(t, actor, params);
        const result = out && typeof out === 'object' && !Array.isArray(out) ? (out as Record<string, unknown>) : out === undefined ? {} : { value: out };
        await repo.setApprovalResult(t, a.id, JSON.stringify(result));
        return { status: 'executed' as const, action: a.action, result };
      });
    },

    async cancel(actor: Actor, approvalId: string): Promise<ApprovalView> {
      requirePermission(actor, 'lifecycle:approve');
      return tx.run(async (t) => {
        const a = await visible(t, actor, approvalId);
        if (a.status !== 'pending') throw conflict(`That request is ${a.status}; only a pending request can be cancelled.`);
        const now = clock.now();
        await repo.closeApproval(t, a.id, { status: 'cancelled', closed_at: now });
        await audit.record(t, actor, {
          action: 'lifecycle.cancel',
          outcome: 'success',
          clientId: a.client_id,
          targetType: 'approval',
          targetId: a.id,
          details: { action: a.action },
        });
        return view(t, { ...a, status: 'cancelled', closed_at: now });
      });
    },

    /** Pending requests of one client, for its lifecycle page. */
    async pendingFor(exec: Executor, clientId: string): Promise<ApprovalView[]> {
      const rows = await repo.listApprovals(exec, null, { status: 'pending', clientId, limit: 200 });
      return Promise.all(rows.reverse().map((r) => view(exec, r)));
    },

    expire,
  };
  return approvals;
}
export type Approvals = ReturnType<typeof createApprovals>;
