import type { Executor } from '../../db/database.js';
import type { PsaNoteOutboxTable } from '../../db/schema.js';

/** The ticket-bound reveal's outbox of internal notes (psa_note_outbox). Never a secret in a row. */
export function createPsaNotesRepo() {
  return {
    async insert(exec: Executor, row: PsaNoteOutboxTable): Promise<void> {
      await exec.insertInto('psa_note_outbox').values(row).execute();
    },

    get: (exec: Executor, id: string): Promise<PsaNoteOutboxTable | undefined> =>
      exec.selectFrom('psa_note_outbox').selectAll().where('id', '=', id).executeTakeFirst(),

    /** Pending notes whose next attempt is due, oldest first. */
    due: (exec: Executor, now: string, limit: number): Promise<PsaNoteOutboxTable[]> =>
      exec
        .selectFrom('psa_note_outbox')
        .selectAll()
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .orderBy('created_at')
        .limit(limit)
        .execute(),

    /**
     * Takes a pending note for one delivery attempt by moving its next attempt to `until` (a
     * lease): of two processes (or the after-commit delivery and the retry task) only the one whose
     * conditional update matched posts it.
     */
    async claim(exec: Executor, id: string, seenNextAttemptAt: string, until: string): Promise<boolean> {
      const r = await exec
        .updateTable('psa_note_outbox')
        .set({ next_attempt_at: until })
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .where('next_attempt_at', '=', seenNextAttemptAt)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    async finish(
      exec: Executor,
      id: string,
      change: Pick<PsaNoteOutboxTable, 'status' | 'attempts' | 'next_attempt_at' | 'last_problem' | 'done_at'> & { ticket_id?: string | null },
    ): Promise<void> {
      await exec.updateTable('psa_note_outbox').set(change).where('id', '=', id).execute();
    },

    /** Every note about one key record, oldest first (tests, support). */
    forKey: (exec: Executor, recoveryKeyId: string): Promise<PsaNoteOutboxTable[]> =>
      exec.selectFrom('psa_note_outbox').selectAll().where('recovery_key_id', '=', recoveryKeyId).orderBy('created_at').execute(),
  };
}
export type PsaNotesRepo = ReturnType<typeof createPsaNotesRepo>;
