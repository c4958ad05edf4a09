import type { Executor } from '../../db/database.js';
import type { InvitationsTable } from '../../db/schema.js';

/**
 * invitations: who was invited, with which role and clients, by whom, until when. Only the
 * SHA-256 of the link's token is stored. Using, resending and revoking are conditional updates:
 * of two requests at once, only one changes the row.
 */
export function createInvitationsRepo() {
  return {
    async insert(exec: Executor, row: InvitationsTable): Promise<void> {
      await exec.insertInto('invitations').values(row).execute();
    },
    find: (exec: Executor, id: string) => exec.selectFrom('invitations').selectAll().where('id', '=', id).executeTakeFirst(),
    findByHash: (exec: Executor, tokenHash: string) => exec.selectFrom('invitations').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst(),
    /** Invitations not accepted and not revoked (expired ones too: the list shows them as expired). */
    listOpen: (exec: Executor) =>
      exec.selectFrom('invitations').selectAll().where('accepted_at', 'is', null).where('revoked_at', 'is', null).orderBy('created_at', 'desc').execute(),
    /** The open, unexpired invitations for this e-mail, newest first. */
    openFor: (exec: Executor, email: string, now: string) =>
      exec
        .selectFrom('invitations')
        .selectAll()
        .where('email', '=', email)
        .where('accepted_at', 'is', null)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .orderBy('created_at', 'desc')
        .execute(),
    /** Uses the invitation up; true only for the one request whose update changed the row. */
    async claim(exec: Executor, id: string, tokenHash: string, now: string): Promise<boolean> {
      const r = await exec
        .updateTable('invitations')
        .set({ accepted_at: now })
        .where('id', '=', id)
        .where('token_hash', '=', tokenHash)
        .where('accepted_at', 'is', null)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async setAcceptedUser(exec: Executor, id: string, userId: string): Promise<void> {
      await exec.updateTable('invitations').set({ accepted_user_id: userId }).where('id', '=', id).execute();
    },
    /** A new token (the old one stops working) and expiry, while the invitation is still open. */
    async replaceToken(exec: Executor, id: string, oldHash: string, next: { token_hash: string; expires_at: string; created_at?: string }): Promise<boolean> {
      const r = await exec
        .updateTable('invitations')
        .set({ token_hash: next.token_hash, expires_at: next.expires_at, sent_at: null, mail_status: null })
        .where('id', '=', id)
        .where('token_hash', '=', oldHash)
        .where('accepted_at', 'is', null)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async revoke(exec: Executor, id: string, now: string): Promise<boolean> {
      const r = await exec
        .updateTable('invitations')
        .set({ revoked_at: now })
        .where('id', '=', id)
        .where('accepted_at', 'is', null)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async approve(exec: Executor, id: string, now: string): Promise<boolean> {
      const r = await exec
        .updateTable('invitations')
        .set({ approved_at: now })
        .where('id', '=', id)
        .where('approved_at', 'is', null)
        .where('accepted_at', 'is', null)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async setMailStatus(exec: Executor, id: string, tokenHash: string, status: { sent_at: string | null; mail_status: string }): Promise<void> {
      await exec.updateTable('invitations').set(status).where('id', '=', id).where('token_hash', '=', tokenHash).execute();
    },
    /** Client names for what the invitee is shown. */
    clientNames: async (exec: Executor, ids: readonly string[]) =>
      ids.length
        ? exec
            .selectFrom('clients')
            .select(['id', 'name'])
            .where('id', 'in', [...ids])
            .orderBy('name')
            .execute()
        : [],
  };
}
export type InvitationsRepo = ReturnType<typeof createInvitationsRepo>;
