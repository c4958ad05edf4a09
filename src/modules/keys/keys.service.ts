import type { Db, Executor } from '../../db/database.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, vaultError, isAppError } from '../../lib/errors.js';
import { parseKeyIdQuery, type KeyIdQuery } from '../../domain/key-id.js';
import { isRecoveryPasswordShaped } from '../../domain/recovery-password.js';
import { parseRevealReason } from '../../domain/reason-codes.js';
import { can, clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { KeySummaryRow, KeysRepo } from './keys.repo.js';
import type { KeyState, KeySummary, RevealedKey } from './keys.types.js';

type Deps = {
  db: Db;
  repo: KeysRepo;
  keyring: Pick<Keyring<Executor>, 'clientCipher'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
};

export type RevealInput = { query: string; reason: string; ticket?: string | null; note?: string | null };
export type RevealResult =
  | { status: 'revealed'; key: RevealedKey }
  | { status: 'ambiguous'; matches: number; candidates: KeySummary[] | null }
  | { status: 'not_found' };

/** More matches than this for one prefix are not listed; the caller must type more of the ID. */
const MAX_CANDIDATES = 50;

/**
 * Parses what a technician typed as a key ID. A pasted recovery password is refused without
 * being echoed: error messages never carry one, not even back to the person who typed it.
 */
function parseQuery(input: string) {
  if (isRecoveryPasswordShaped(input)) {
    throw badRequest('That looks like a recovery password, not a key ID. Type the key ID shown on the recovery screen.');
  }
  const q = parseKeyIdQuery(input);
  if (!q.ok) throw badRequest(`Key ID "${input.trim().slice(0, 60)}": ${q.reason}.`);
  return q.value;
}
const queryText = (q: KeyIdQuery) => (q.kind === 'full' ? q.keyId : q.prefix);
const NOTE_MAX = 1000;

export function createKeysService({ db, repo, keyring, audit, clock }: Deps) {
  const summarize = async (exec: Executor, rows: KeySummaryRow[]): Promise<KeySummary[]> => {
    const sources = await repo.sourcesOf(exec, rows.map((r) => r.id));
    const byKey = new Map<string, KeySummary['sources']>();
    for (const s of sources) {
      (byKey.get(s.recovery_key_id) ?? byKey.set(s.recovery_key_id, []).get(s.recovery_key_id)!).push({
        type: s.source_type,
        ref: s.source_ref,
        firstSeenAt: s.first_seen_at,
        lastSeenAt: s.last_seen_at,
      });
    }
    return rows.map((r) => ({
      id: r.id,
      keyId: r.key_id,
      client: { id: r.client_id, name: r.client_name },
      device: r.device_id ? { id: r.device_id, name: r.device_name ?? '' } : null,
      volume: r.mount_point || r.volume_type ? { mountPoint: r.mount_point ?? null, type: r.volume_type ?? 'unknown' } : null,
      state: r.state as KeyState,
      createdAt: r.source_created_at,
      firstSeenAt: r.first_seen_at,
      lastSeenAt: r.last_seen_at,
      sources: byKey.get(r.id) ?? [],
    }));
  };

  return {
    /** Metadata of keys the actor may see. Never a password. */
    async list(actor: Actor, filter: { clientId?: string; limit?: number; offset?: number } = {}): Promise<KeySummary[]> {
      requirePermission(actor, 'key:list', filter.clientId);
      const rows = await repo.list(db, clientScope(actor), {
        clientId: filter.clientId,
        limit: Math.min(Math.max(filter.limit ?? 1000, 1), 100_000),
        offset: Math.max(filter.offset ?? 0, 0),
      });
      return summarize(db, rows);
    },

    /** Search by key-ID prefix or full ID (metadata only). */
    async searchByKeyId(actor: Actor, query: string): Promise<KeySummary[]> {
      requirePermission(actor, 'key:list');
      return summarize(db, await repo.searchByKeyId(db, clientScope(actor), parseQuery(query), MAX_CANDIDATES));
    },

    /**
     * The helpdesk call: find the one key matching a key ID (or 8+ digit prefix) and reveal it.
     * The audit event, successful or not, is committed before the password leaves this function.
     */
    async revealByKeyId(actor: Actor, input: RevealInput): Promise<RevealResult> {
      if (!can(actor, 'key:lookup')) {
        // A denied reveal is a fact worth keeping: record it before refusing.
        const q = parseKeyIdQuery(input.query);
        await audit.recordNow(actor, { action: 'key.reveal', outcome: 'denied', details: { query: q.ok ? queryText(q.value) : null } });
        requirePermission(actor, 'key:lookup');
      }
      const reason = parseRevealReason({ reason: input.reason, ticket: input.ticket ?? undefined });
      if (!reason.ok) throw badRequest(reason.reason);
      const parsed = parseQuery(input.query);
      const note = input.note?.trim() || null;
      if (note && note.length > NOTE_MAX) throw badRequest(`A note can be at most ${NOTE_MAX} characters.`);
      const query = queryText(parsed);
      const base = { action: 'key.reveal' as const, reasonCode: reason.value.reason, ticket: reason.value.ticket };

      let plaintext: string | undefined;
      let failure: unknown;
      const outcome = await db.transaction().execute(async (tx): Promise<RevealResult> => {
        const rows = await repo.searchByKeyId(tx, clientScope(actor), parsed, MAX_CANDIDATES + 1);
        if (rows.length === 0) {
          await audit.record(tx, actor, { ...base, outcome: 'not_found', details: { query } });
          return { status: 'not_found' };
        }
        if (rows.length > 1) {
          await audit.record(tx, actor, { ...base, outcome: 'ambiguous', details: { query, matches: rows.length } });
          // Seeing the list of candidates is browsing: only roles that may list keys get it.
          const mayList = can(actor, 'key:list');
          return { status: 'ambiguous', matches: rows.length, candidates: mayList ? await summarize(tx, rows.slice(0, MAX_CANDIDATES)) : null };
        }
        const row = rows[0]!;
        const sealed = await repo.sealedPassword(tx, row.client_id, row.id);
        try {
          if (!sealed) throw vaultError('The key disappeared while it was being revealed.');
          const cipher = await keyring.clientCipher(tx, row.client_id);
          plaintext = cipher.openRecoveryPassword(row.id, { ciphertext: sealed.ciphertext, dataKeyVersion: sealed.data_key_version });
        } catch (e) {
          failure = e;
        }
        await audit.record(tx, actor, {
          ...base,
          outcome: failure ? 'error' : 'success',
          clientId: row.client_id,
          targetType: 'recovery_key',
          targetId: row.id,
          details: { keyId: row.key_id, query, device: row.device_name ?? null, ...(note ? { note } : {}) },
        });
        // A disclosed key should be rotated; the state says so until a new key arrives.
        if (!failure && row.state === 'active') {
          await repo.setState(tx, row.client_id, row.id, 'disclosed', clock.now());
          row.state = 'disclosed';
        }
        const [summary] = await summarize(tx, [row]);
        return { status: 'revealed', key: { ...summary!, recoveryPassword: '' } };
      });
      if (failure) throw isAppError(failure) ? failure : vaultError('The recovery password could not be decrypted.');
      if (outcome.status === 'revealed') outcome.key.recoveryPassword = plaintext!;
      return outcome;
    },
  };
}
export type KeysService = ReturnType<typeof createKeysService>;
