import type { Executor } from '../../db/database.js';
import type { ApiTokensTable, LoginThrottleTable, SessionsTable, UsersTable } from '../../db/schema.js';

/** Users, sessions, API tokens, recovery codes, login throttling and settings. */
export function createIdentityRepo() {
  return {
    // users
    findUserByEmail: (exec: Executor, email: string) => exec.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst(),
    findUser: (exec: Executor, id: string) => exec.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst(),
    listUsers: (exec: Executor) => exec.selectFrom('users').selectAll().orderBy('email').execute(),
    /** Active owners of every client: the people who can manage the whole vault. */
    countOwners: async (exec: Executor) =>
      Number(
        (
          await exec
            .selectFrom('users')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('role', '=', 'owner')
            .where('all_clients', '=', 1)
            .where('status', '=', 'active')
            .executeTakeFirstOrThrow()
        ).n,
      ),
    async insertUser(exec: Executor, row: UsersTable): Promise<void> {
      await exec.insertInto('users').values(row).execute();
    },
    /**
     * Takes a TOTP time step for this user if it is newer than the last one taken. Only one of
     * several concurrent requests with the same code can change the row: that one wins.
     */
    async takeTotpStep(exec: Executor, id: string, step: number): Promise<boolean> {
      const r = await exec
        .updateTable('users')
        .set({ totp_last_step: step })
        .where('id', '=', id)
        .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async updateUser(exec: Executor, id: string, patch: Partial<Omit<UsersTable, 'id'>>): Promise<void> {
      await exec.updateTable('users').set(patch).where('id', '=', id).execute();
    },
    userClients: async (exec: Executor, userId: string) =>
      (await exec.selectFrom('user_clients').select('client_id').where('user_id', '=', userId).execute()).map((r) => r.client_id),
    async setUserClients(exec: Executor, userId: string, clientIds: readonly string[]): Promise<void> {
      await exec.deleteFrom('user_clients').where('user_id', '=', userId).execute();
      if (clientIds.length)
        await exec
          .insertInto('user_clients')
          .values(clientIds.map((client_id) => ({ user_id: userId, client_id })))
          .execute();
    },
    /** Of these clients, the ones whose owner lets their own staff reveal keys. */
    revealableClients: async (exec: Executor, clientIds: readonly string[]) =>
      clientIds.length === 0
        ? []
        : (
            await exec
              .selectFrom('clients')
              .select('id')
              .where('id', 'in', clientIds as string[])
              .where('viewer_can_reveal', '=', 1)
              .execute()
          ).map((r) => r.id),
    existingClientIds: async (exec: Executor, ids: readonly string[]) =>
      ids.length === 0
        ? []
        : (
            await exec
              .selectFrom('clients')
              .select('id')
              .where('id', 'in', ids as string[])
              .execute()
          ).map((r) => r.id),

    // recovery codes
    async replaceRecoveryCodes(exec: Executor, userId: string, rows: { id: string; code_hash: string; created_at: string }[]): Promise<void> {
      await exec.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
      if (rows.length)
        await exec
          .insertInto('recovery_codes')
          .values(rows.map((r) => ({ ...r, user_id: userId, used_at: null })))
          .execute();
    },
    unusedRecoveryCodes: (exec: Executor, userId: string) =>
      exec.selectFrom('recovery_codes').select(['id', 'code_hash']).where('user_id', '=', userId).where('used_at', 'is', null).execute(),
    async useRecoveryCode(exec: Executor, id: string, now: string): Promise<boolean> {
      const r = await exec.updateTable('recovery_codes').set({ used_at: now }).where('id', '=', id).where('used_at', 'is', null).executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    // sessions
    async insertSession(exec: Executor, row: SessionsTable): Promise<void> {
      await exec.insertInto('sessions').values(row).execute();
    },
    findSessionByHash: (exec: Executor, tokenHash: string) => exec.selectFrom('sessions').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst(),
    async updateSession(exec: Executor, id: string, patch: Partial<Pick<SessionsTable, 'last_seen_at' | 'mfa_at' | 'revoked_at'>>): Promise<void> {
      await exec.updateTable('sessions').set(patch).where('id', '=', id).execute();
    },
    async revokeUserSessions(exec: Executor, userId: string, now: string): Promise<void> {
      await exec.updateTable('sessions').set({ revoked_at: now }).where('user_id', '=', userId).where('revoked_at', 'is', null).execute();
    },

    // API tokens
    async insertToken(exec: Executor, row: ApiTokensTable, clientIds: readonly string[]): Promise<void> {
      await exec.insertInto('api_tokens').values(row).execute();
      if (clientIds.length)
        await exec
          .insertInto('api_token_clients')
          .values(clientIds.map((client_id) => ({ token_id: row.id, client_id })))
          .execute();
    },
    findTokenByHash: (exec: Executor, tokenHash: string) => exec.selectFrom('api_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst(),
    findToken: (exec: Executor, id: string) => exec.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst(),
    listTokens: (exec: Executor, createdBy: string | null) => {
      let q = exec.selectFrom('api_tokens').selectAll().orderBy('created_at', 'desc');
      if (createdBy) q = q.where('created_by', '=', createdBy);
      return q.execute();
    },
    tokenClients: async (exec: Executor, tokenId: string) =>
      (await exec.selectFrom('api_token_clients').select('client_id').where('token_id', '=', tokenId).execute()).map((r) => r.client_id),
    async updateToken(exec: Executor, id: string, patch: Partial<Pick<ApiTokensTable, 'last_used_at' | 'revoked_at'>>): Promise<void> {
      await exec.updateTable('api_tokens').set(patch).where('id', '=', id).execute();
    },

    // login throttling
    throttle: (exec: Executor, key: string) => exec.selectFrom('login_throttle').selectAll().where('key', '=', key).executeTakeFirst(),
    async saveThrottle(exec: Executor, row: LoginThrottleTable): Promise<void> {
      await exec
        .insertInto('login_throttle')
        .values(row)
        .onConflict((oc) =>
          oc.column('key').doUpdateSet({
            failures: row.failures,
            window_started_at: row.window_started_at,
            lockouts: row.lockouts,
            locked_until: row.locked_until,
          }),
        )
        .execute();
    },
    /**
     * The throttle row for a key, created when missing and locked for the rest of the transaction
     * (PostgreSQL holds the row lock taken by the upsert; SQLite transactions are serialised by
     * BEGIN IMMEDIATE), so concurrent attempts are counted one after the other.
     */
    lockThrottle: (exec: Executor, key: string, now: string) =>
      exec
        .insertInto('login_throttle')
        .values({ key, failures: 0, window_started_at: now, lockouts: 0, locked_until: null })
        .onConflict((oc) => oc.column('key').doUpdateSet((eb) => ({ failures: eb.ref('login_throttle.failures') })))
        .returningAll()
        .executeTakeFirstOrThrow(),
    /** Gives one reserved attempt back (never below zero). */
    async refundThrottle(exec: Executor, key: string): Promise<void> {
      await exec
        .updateTable('login_throttle')
        .set((eb) => ({ failures: eb('failures', '-', 1) }))
        .where('key', '=', key)
        .where('failures', '>', 0)
        .execute();
    },
    async clearThrottle(exec: Executor, key: string): Promise<void> {
      await exec.deleteFrom('login_throttle').where('key', '=', key).execute();
    },
  };
}
export type IdentityRepo = ReturnType<typeof createIdentityRepo>;
