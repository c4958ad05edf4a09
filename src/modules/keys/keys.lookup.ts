import { parseSpokenKeyIdQuery } from '../../domain/key-id.js';
import { isRecoveryPasswordShaped } from '../../domain/recovery-password.js';
import type { Transactions } from '../../db/transactions.js';
import { badRequest } from '../../lib/errors.js';
import { mayListCandidates, requirePermission, revealScope, type Actor } from '../authz/authz.js';
import type { KeysRepo } from './keys.repo.js';
import type { KeysService } from './keys.service.js';
import { rankCandidates, summarizeKeys } from './keys.summary.js';
import type { KeySummary } from './keys.types.js';

/**
 * Key-ID lookup for people who may reveal but not browse (helpdesk, a client's own staff): only a
 * key ID or its first 8+ characters, only keys they may reveal. A single match shows its metadata
 * (to confirm device and user on the phone); several show only how many, unless the full key ID
 * was typed (then each record is listed with its client). Roles that may list keys get the same
 * candidates their search box shows them.
 */
/** Several keys: in the order to try them; a single one is simply it. */
const ranked = (found: KeySummary[]) => (found.length > 1 ? rankCandidates(found) : { keys: found, tryFirst: null });

export function createKeyLookup({
  tx,
  repo,
  keys,
}: {
  tx: Transactions;
  repo: Pick<KeysRepo, 'searchByKeyId' | 'summaryExtras'>;
  keys: Pick<KeysService, 'search'>;
}) {
  return {
    /** keys: ranked when several (see rankCandidates); tryFirst: the record id to read out first, or null. */
    async lookup(actor: Actor, text: string): Promise<{ matches: number; keys: KeySummary[]; tryFirst: string | null }> {
      requirePermission(actor, 'key:lookup');
      if (isRecoveryPasswordShaped(text)) throw badRequest('That looks like a recovery password, not a key ID. Type the key ID shown on the recovery screen.');
      const q = parseSpokenKeyIdQuery(text);
      if (!q.ok) throw badRequest(`Type the key ID shown on the recovery screen, at least its first 8 characters (${q.reason}).`, { field: 'keyId' });
      if (mayListCandidates(actor)) {
        const found = await keys.search(actor, text, 51);
        return { matches: found.length, ...ranked(found.slice(0, 50)) };
      }
      const rows = await repo.searchByKeyId(tx.reader, revealScope(actor), q.value, 51);
      // A full key ID held by several records (in several clients, or in conflict) lists them, each
      // with its client: they are all keys this person may reveal, and no prefix was browsed.
      if (rows.length > 1 && q.value.kind === 'full') return { matches: rows.length, ...ranked(await summarizeKeys(repo, tx.reader, rows.slice(0, 50))) };
      if (rows.length !== 1) return { matches: rows.length, keys: [], tryFirst: null };
      return { matches: 1, keys: await summarizeKeys(repo, tx.reader, rows), tryFirst: null };
    },
  };
}
export type KeyLookup = ReturnType<typeof createKeyLookup>;
