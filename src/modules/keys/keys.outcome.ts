import type { Executor } from '../../db/database.js';
import type { FindingsTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import { isId } from '../../db/scope.js';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { containsRecoveryPasswordLike } from '../../domain/recovery-password.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, conflict, forbidden, notFound } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { requirePermission, revealScope, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { KeysRepo } from './keys.repo.js';
import { rankCandidates, summarizeKeys } from './keys.summary.js';
import type { KeySummary } from './keys.types.js';

/** How long after a reveal its person may still say whether the key unlocked the drive. */
export const OUTCOME_WINDOW_HOURS = 24;

export type UnlockOutcomeInput = { unlocked: boolean; ticket?: string | null };
export type UnlockOutcomeResult = {
  unlocked: boolean;
  /** The key as it stands now (state, "may not unlock"). */
  key: KeySummary;
  /** Every stored record of this key ID in the key's client, ranked as a lookup ranks them. */
  candidates: KeySummary[];
  tryFirst: string | null;
  /** Other records of the key ID marked superseded (a yes on a conflict). */
  superseded: number;
  /** Findings this answer closed (key_conflict on a yes) or opened (did_not_unlock on a no). */
  resolvedFindings: number;
  openedFinding: boolean;
};

/** States a "yes" on another record of the same key ID replaces. */
const REPLACEABLE = ['active', 'conflict', 'disclosed'];

type Deps = {
  tx: Transactions;
  repo: Pick<KeysRepo, 'summaryById' | 'searchByKeyId' | 'summaryExtras' | 'openFindingsAboutKey' | 'setState'>;
  /** The agent module owns findings: the outcome files and settles them through its repo. */
  findings: {
    insertFinding(exec: Executor, row: FindingsTable): Promise<void>;
    resolveFinding(exec: Executor, clientId: string, id: string, now: string): Promise<void>;
  };
  /** Whether this actor revealed this key (successfully) since a time: read from the audit log. */
  revealedSince(exec: Executor, actorId: string, clientId: string, keyRowId: string, since: string): Promise<boolean>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  /** Runs in the same transaction after key states changed (compliance re-evaluates the devices). */
  onChanged?: (tx: Executor, clientId: string, deviceIds: string[]) => Promise<void>;
};

/**
 * "Did it unlock?" after a reveal (issue 17, item 3). Only the person who revealed the key (in the
 * last OUTCOME_WINDOW_HOURS) answers for it. Yes: this record is the key ID's password; the other
 * stored passwords of the key ID are superseded and the key_conflict findings about it resolved.
 * No: the record is marked "may not unlock" (an open did_not_unlock finding on its device) until it
 * is re-escrowed or someone later says it did unlock. Audited either way.
 */
export function createUnlockOutcome({ tx: transactions, repo, findings, revealedSince, audit, clock, onChanged }: Deps) {
  return {
    async record(actor: Actor, keyRecordId: string, input: UnlockOutcomeInput): Promise<UnlockOutcomeResult> {
      requirePermission(actor, 'key:reveal');
      if (typeof input.unlocked !== 'boolean') throw badRequest('Say whether the key unlocked the drive: unlocked true or false.', { field: 'unlocked' });
      const ticket = input.ticket?.trim() || null;
      if (ticket && containsRecoveryPasswordLike(ticket)) {
        throw badRequest('The ticket reference looks like it contains a recovery password; leave it out (the audit log must never hold one).', {
          field: 'ticket',
        });
      }
      // eslint-disable-next-line no-control-regex
      if (ticket && /[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/.test(ticket))
        throw badRequest('The ticket reference contains control characters.', { field: 'ticket' });
      if (!isId(keyRecordId)) throw notFound(`No key record with id ${keyRecordId.slice(0, 60)}.`);
      const id = keyRecordId.toLowerCase();
      const now = clock.now();

      return transactions.run(async (tx) => {
        // Tenancy in the WHERE clause: a key of a client out of reach is "not found".
        const row = await repo.summaryById(tx, revealScope(actor), id);
        if (!row) throw notFound(`No key record with id ${keyRecordId.slice(0, 60)}.`);
        requirePermission(actor, 'key:reveal', row.client_id);
        const since = new Date(Date.parse(now) - OUTCOME_WINDOW_HOURS * 3600_000).toISOString();
        if (!(await revealedSince(tx, actor.id, row.client_id, row.id, since))) {
          throw forbidden(
            `Only the person who revealed this key in the last ${OUTCOME_WINDOW_HOURS} hours can say whether it unlocked the drive. Reveal it first.`,
          );
        }
        if (row.state === 'destroyed') throw conflict('This key was destroyed; there is nothing to confirm.');

        const keyId = row.key_id;
        const siblings = keyId ? (await repo.searchByKeyId(tx, [row.client_id], { kind: 'full', keyId }, 200)).filter((r) => r.id !== row.id) : [];
        const open = await repo.openFindingsAboutKey(tx, row.client_id, keyId, [row.id, ...siblings.map((s) => s.id)]);
        const shown = keyId ? formatKeyIdForDisplay(keyId) : 'without a key ID';
        const base = { clientId: row.client_id, targetType: 'recovery_key', targetId: row.id, ticket } as const;
        const devices = new Set<string>();
        if (row.device_id) devices.add(row.device_id);
        let superseded = 0;
        let resolved = 0;
        let opened = false;

        const resolve = async (f: (typeof open)[number], why: string) => {
          await findings.resolveFinding(tx, row.client_id, f.id, now);
          await audit.record(tx, actor, {
            action: 'finding.resolve',
            outcome: 'success',
            clientId: row.client_id,
            targetType: 'finding',
            targetId: f.id,
            details: { kind: f.kind, keyId, why },
          });
          resolved++;
        };

        if (input.unlocked) {
          // This record's password opened the drive: it is the key ID's password from now on.
          if (row.state === 'conflict' || row.state === 'active') {
            // It was just revealed, so it is disclosed (due for rotation), no longer in conflict.
            await repo.setState(tx, row.client_id, row.id, 'disclosed', now);
          }
          for (const s of siblings.filter((s) => REPLACEABLE.includes(s.state))) {
            await repo.setState(tx, s.client_id, s.id, 'superseded', now);
            await audit.record(tx, actor, {
              action: 'key.superseded',
              outcome: 'success',
              clientId: s.client_id,
              targetType: 'recovery_key',
              targetId: s.id,
              details: { keyId, device: s.device_name ?? null, from: s.state, why: 'another stored password of this key ID unlocked the drive' },
            });
            if (s.device_id) devices.add(s.device_id);
            superseded++;
          }
          // The conflict is settled, and so is an earlier "did not unlock" about this record.
          for (const f of open.filter((f) => f.kind === 'key_conflict' || (f.kind === 'did_not_unlock' && f.recovery_key_id === row.id))) {
            await resolve(f, 'the revealed password unlocked the drive');
            devices.add(f.device_id);
          }
          await audit.record(tx, actor, {
            ...base,
            action: 'key.unlock_confirmed',
            outcome: 'success',
            details: { keyId, device: row.device_name ?? null, unlocked: true, superseded, resolvedFindings: resolved },
          });
        } else {
          // Filed on the key's device, so search, device page and dialog say "may not unlock".
          const already = open.some((f) => f.kind === 'did_not_unlock' && f.recovery_key_id === row.id);
          if (row.device_id && !already) {
            const findingId = newId();
            const detail = `Recovery password ${shown}${row.mount_point ? ` on ${row.mount_point}` : ''} did not unlock the drive when ${actor.name} tried it. Re-escrow the drive's real password.`;
            await findings.insertFinding(tx, {
              id: findingId,
              client_id: row.client_id,
              device_id: row.device_id,
              volume_id: null,
              recovery_key_id: row.id,
              kind: 'did_not_unlock',
              protector_id: keyId,
              detail,
              opened_at: now,
              resolved_at: null,
            });
            await audit.record(tx, actor, {
              action: 'finding.open',
              outcome: 'success',
              clientId: row.client_id,
              targetType: 'finding',
              targetId: findingId,
              details: { kind: 'did_not_unlock', keyId, device: row.device_name ?? null, detail },
            });
            opened = true;
          }
          await audit.record(tx, actor, {
            ...base,
            action: 'key.unlock_failed',
            outcome: 'success',
            details: { keyId, device: row.device_name ?? null, unlocked: false },
          });
        }
        if (onChanged && (superseded > 0 || resolved > 0 || input.unlocked) && devices.size) await onChanged(tx, row.client_id, [...devices]);

        const fresh = await repo.summaryById(tx, [row.client_id], row.id);
        const [key] = await summarizeKeys(repo, tx, [fresh!]);
        const all = keyId ? await repo.searchByKeyId(tx, [row.client_id], { kind: 'full', keyId }, 200) : [fresh!];
        const ranked = all.length > 1 ? rankCandidates(await summarizeKeys(repo, tx, all)) : { keys: [key!], tryFirst: null };
        return {
          unlocked: input.unlocked,
          key: key!,
          candidates: ranked.keys,
          tryFirst: ranked.tryFirst,
          superseded,
          resolvedFindings: resolved,
          openedFinding: opened,
        };
      });
    },
  };
}
export type UnlockOutcome = ReturnType<typeof createUnlockOutcome>;
