import type { Executor } from '../../db/database.js';
import type { SsoLinksTable, SsoLoginStatesTable, SsoProvidersTable, SsoSessionsTable } from '../../db/schema.js';

/** Single sign-on: providers, links (provider + subject -> user), single-use login states, SSO sessions. */
export function createSsoRepo() {
  return {
    // providers
    listProviders: (exec: Executor) => exec.selectFrom('sso_providers').selectAll().orderBy('name').execute(),
    findProvider: (exec: Executor, id: string) => exec.selectFrom('sso_providers').selectAll().where('id', '=', id).executeTakeFirst(),
    async insertProvider(exec: Executor, row: SsoProvidersTable): Promise<void> {
      await exec.insertInto('sso_providers').values(row).execute();
    },
    async updateProvider(exec: Executor, id: string, patch: Partial<Omit<SsoProvidersTable, 'id'>>): Promise<void> {
      await exec.updateTable('sso_providers').set(patch).where('id', '=', id).execute();
    },
    /** Removes a provider with its links, its pending sign-ins and its session records. */
    async deleteProvider(exec: Executor, id: string): Promise<void> {
      await exec.deleteFrom('sso_sessions').where('provider_id', '=', id).execute();
      await exec.deleteFrom('sso_login_states').where('provider_id', '=', id).execute();
      await exec.deleteFrom('sso_links').where('provider_id', '=', id).execute();
      await exec.deleteFrom('sso_providers').where('id', '=', id).execute();
    },

    // links
    findLink: (exec: Executor, providerId: string, subject: string) =>
      exec.selectFrom('sso_links').selectAll().where('provider_id', '=', providerId).where('subject', '=', subject).executeTakeFirst(),
    findLinkById: (exec: Executor, id: string) => exec.selectFrom('sso_links').selectAll().where('id', '=', id).executeTakeFirst(),
    linksOfUser: (exec: Executor, userId: string) => exec.selectFrom('sso_links').selectAll().where('user_id', '=', userId).execute(),
    async insertLink(exec: Executor, row: SsoLinksTable): Promise<void> {
      await exec.insertInto('sso_links').values(row).execute();
    },
    async touchLink(exec: Executor, id: string, patch: Pick<SsoLinksTable, 'last_login_at' | 'email'>): Promise<void> {
      await exec.updateTable('sso_links').set(patch).where('id', '=', id).execute();
    },
    /** Whether this user is linked to an enabled provider whose multi-factor proof counts as their second factor. */
    hasIdpMfaLink: async (exec: Executor, userId: string) =>
      !!(await exec
        .selectFrom('sso_links')
        .innerJoin('sso_providers', 'sso_providers.id', 'sso_links.provider_id')
        .select('sso_links.id')
        .where('sso_links.user_id', '=', userId)
        .where('sso_providers.enabled', '=', 1)
        .where('sso_providers.idp_mfa', '=', 1)
        .executeTakeFirst()),

    // login states
    async insertState(exec: Executor, row: SsoLoginStatesTable): Promise<void> {
      await exec.insertInto('sso_login_states').values(row).execute();
    },
    /**
     * Takes a login state for this answer: only one request can change the row (the condition on
     * used_at), so a replayed or parallel callback finds nothing.
     */
    takeState: (exec: Executor, stateHash: string, now: string) =>
      exec
        .updateTable('sso_login_states')
        .set({ used_at: now })
        .where('state_hash', '=', stateHash)
        .where('used_at', 'is', null)
        .returningAll()
        .executeTakeFirst(),
    async deleteStatesBefore(exec: Executor, before: string): Promise<number> {
      const r = await exec.deleteFrom('sso_login_states').where('expires_at', '<', before).executeTakeFirst();
      return Number(r.numDeletedRows);
    },

    /** A console session that is still open (not revoked, not expired): the target of an SSO step-up. */
    openSession: (exec: Executor, id: string, now: string) =>
      exec
        .selectFrom('sessions')
        .select(['id', 'user_id'])
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst(),

    // SSO sessions
    async insertSsoSession(exec: Executor, row: SsoSessionsTable): Promise<void> {
      await exec.insertInto('sso_sessions').values(row).execute();
    },
    findSsoSession: (exec: Executor, sessionId: string) => exec.selectFrom('sso_sessions').selectAll().where('session_id', '=', sessionId).executeTakeFirst(),
    async updateSsoSession(
      exec: Executor,
      sessionId: string,
      patch: Partial<Pick<SsoSessionsTable, 'refresh_token' | 'validated_at' | 'ended_at' | 'idp_mfa'>>,
    ): Promise<void> {
      await exec.updateTable('sso_sessions').set(patch).where('session_id', '=', sessionId).execute();
    },
    /** Marks every SSO session record of a user ended (their console sessions were revoked). */
    async endUserSsoSessions(exec: Executor, userId: string, now: string): Promise<void> {
      await exec.updateTable('sso_sessions').set({ ended_at: now }).where('user_id', '=', userId).where('ended_at', 'is', null).execute();
    },
    /** SSO sessions still open (their console session neither revoked nor expired), oldest confirmation first. */
    openSsoSessions: (exec: Executor, now: string, limit: number) =>
      exec
        .selectFrom('sso_sessions')
        .innerJoin('sessions', 'sessions.id', 'sso_sessions.session_id')
        .selectAll('sso_sessions')
        .where('sso_sessions.ended_at', 'is', null)
        .where('sessions.revoked_at', 'is', null)
        .where('sessions.expires_at', '>', now)
        .orderBy('sso_sessions.validated_at')
        .limit(limit)
        .execute(),
    /** Records of sessions that ended on their own (signed out, expired): closed so the job skips them. */
    async closeEndedSsoSessions(exec: Executor, now: string): Promise<number> {
      const ended = await exec
        .selectFrom('sso_sessions')
        .innerJoin('sessions', 'sessions.id', 'sso_sessions.session_id')
        .select('sso_sessions.session_id')
        .where('sso_sessions.ended_at', 'is', null)
        .where((eb) => eb.or([eb('sessions.revoked_at', 'is not', null), eb('sessions.expires_at', '<=', now)]))
        .limit(1000)
        .execute();
      if (!ended.length) return 0;
      await exec
        .updateTable('sso_sessions')
        .set({ ended_at: now, refresh_token: null })
        .where(
          'session_id',
          'in',
          ended.map((e) => e.session_id),
        )
        .execute();
      return ended.length;
    },
  };
}
export type SsoRepo = ReturnType<typeof createSsoRepo>;
