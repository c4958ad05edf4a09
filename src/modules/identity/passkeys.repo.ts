import type { Executor } from '../../db/database.js';
import type { PasskeyChallengesTable, PasskeysTable } from '../../db/schema.js';

/** Passkeys (WebAuthn credentials) and their single-use challenges. */
export function createPasskeysRepo() {
  return {
    listForUser: (exec: Executor, userId: string) => exec.selectFrom('passkeys').selectAll().where('user_id', '=', userId).orderBy('created_at').execute(),
    countForUser: async (exec: Executor, userId: string) =>
      Number(
        (
          await exec
            .selectFrom('passkeys')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('user_id', '=', userId)
            .executeTakeFirstOrThrow()
        ).n,
      ),
    find: (exec: Executor, id: string) => exec.selectFrom('passkeys').selectAll().where('id', '=', id).executeTakeFirst(),
    findByCredentialId: (exec: Executor, credentialId: string) =>
      exec.selectFrom('passkeys').selectAll().where('credential_id', '=', credentialId).executeTakeFirst(),
    async insert(exec: Executor, row: PasskeysTable): Promise<void> {
      await exec.insertInto('passkeys').values(row).execute();
    },
    async rename(exec: Executor, id: string, userId: string, name: string): Promise<boolean> {
      const r = await exec.updateTable('passkeys').set({ name }).where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async remove(exec: Executor, id: string, userId: string): Promise<boolean> {
      const r = await exec.deleteFrom('passkeys').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    },
    /** Removes every passkey of a person (an operator, for a lost or stolen device); answers how many. */
    async removeAllForUser(exec: Executor, userId: string): Promise<number> {
      const r = await exec.deleteFrom('passkeys').where('user_id', '=', userId).executeTakeFirst();
      return Number(r.numDeletedRows);
    },
    /**
     * Moves the signature counter forward, only if the new value is higher than the stored one
     * (or both are zero: authenticators that do not count). Of several answers carrying the same
     * counter, only one can change the row.
     */
    async advanceCounter(exec: Executor, id: string, counter: number, now: string, backedUp: boolean): Promise<boolean> {
      const r = await exec
        .updateTable('passkeys')
        .set({ sign_count: counter, last_used_at: now, backed_up: backedUp ? 1 : 0 })
        .where('id', '=', id)
        .where((eb) => (counter === 0 ? eb('sign_count', '=', 0) : eb('sign_count', '<', counter)))
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    // challenges
    async insertChallenge(exec: Executor, row: PasskeyChallengesTable): Promise<void> {
      await exec.insertInto('passkey_challenges').values(row).execute();
    },
    findChallenge: (exec: Executor, challengeHash: string) =>
      exec.selectFrom('passkey_challenges').selectAll().where('challenge_hash', '=', challengeHash).executeTakeFirst(),
    /** Takes a challenge: only one request can, and only while it is unused and unexpired. */
    async takeChallenge(exec: Executor, id: string, now: string): Promise<boolean> {
      const r = await exec
        .updateTable('passkey_challenges')
        .set({ used_at: now })
        .where('id', '=', id)
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** Forgets challenges that expired a day ago (kept a while so a late replay is still told "already used or expired"). */
    async pruneChallenges(exec: Executor, before: string): Promise<void> {
      await exec.deleteFrom('passkey_challenges').where('expires_at', '<', before).execute();
    },
  };
}
export type PasskeysRepo = ReturnType<typeof createPasskeysRepo>;
