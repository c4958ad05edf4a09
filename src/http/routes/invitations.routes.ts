import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf, sessionCookieName } from '../plugins/auth.js';
import { ClientIds, Id, Ok, RoleName, UserSchema, errors } from '../schemas.js';
import { MAX_INVITATION_HOURS } from '../../modules/identity/invitations.service.js';

const InvitationSchema = z.object({
  id: z.string(),
  email: z.string(),
  role: RoleName,
  clients: z.union([z.literal('all'), z.array(z.string())]),
  invitedBy: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  status: z.enum(['pending', 'expired', 'awaiting-approval']),
  mail: z.string().nullable().describe("'sent', or why the e-mail did not go out"),
});

const IssuedSchema = z.object({
  invitation: InvitationSchema,
  token: z.string().describe('The one-time token, shown only now; the link is <console>/#/invitation/<token>'),
  link: z.string().nullable().describe('The full link when KEYWARDEN_PUBLIC_URL is set'),
  mail: z.object({ sent: z.boolean(), reason: z.string().nullable() }),
  pendingApprovalId: z.string().optional().describe('Set when the invitation waits for a second owner (two-owner approval is on)'),
});

const Token = z.string().min(1).max(200);
const Hours = z.number().int().min(1).max(MAX_INVITATION_HOURS).optional();

/** Invitations by e-mail (issue 19): invite, list, send again, withdraw; the invitee's preview and acceptance. */
export const invitationRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    const cookieOptions = { path: '/', httpOnly: true, sameSite: 'strict' as const, secure: c.config.server.secure };
    const cookieName = sessionCookieName(c.config.server.secure);
    const ctx = (request: { ip?: string; headers: Record<string, unknown> }) => ({
      ip: request.ip ?? null,
      userAgent: typeof request.headers['user-agent'] === 'string' ? request.headers['user-agent'] : null,
    });

    app.get(
      '/invitations',
      {
        schema: {
          tags: ['users'],
          summary: 'Open invitations (not accepted, not withdrawn) inside your reach; never a token (owner)',
          response: { 200: z.array(InvitationSchema), ...errors(401, 403) },
        },
      },
      async (request) => c.invitations.list(actorOf(request)),
    );
    app.post(
      '/invitations',
      {
        schema: {
          tags: ['users'],
          summary: 'Invite someone by e-mail with a role and clients; the link is e-mailed and returned once (owner, fresh step-up)',
          body: z.strictObject({ email: z.string().min(3).max(254), role: RoleName, clients: ClientIds, expiresInHours: Hours }),
          response: { 201: IssuedSchema, ...errors(400, 401, 403, 409) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.invitations.create(actorOf(request), request.body)),
    );
    app.post(
      '/invitations/:invitationId/resend',
      {
        schema: {
          tags: ['users'],
          summary: 'Send an invitation again with a new link (the old link stops working) (owner, fresh step-up)',
          params: z.strictObject({ invitationId: Id }),
          body: z.strictObject({ expiresInHours: Hours }).optional(),
          response: { 200: IssuedSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.invitations.resend(actorOf(request), request.params.invitationId, request.body ?? {}),
    );
    app.delete(
      '/invitations/:invitationId',
      {
        schema: {
          tags: ['users'],
          summary: 'Withdraw an invitation: its link stops working (owner)',
          params: z.strictObject({ invitationId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        await c.invitations.revoke(actorOf(request), request.params.invitationId);
        return { ok: true as const };
      },
    );

    app.post(
      '/invitations/preview',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['auth'],
          summary: 'What an invitation link offers: who invited you, the role and clients (the token in the body, never the URL)',
          security: [],
          body: z.strictObject({ token: Token }),
          response: {
            200: z.object({
              email: z.string(),
              role: RoleName,
              clients: z.union([z.literal('all'), z.array(z.object({ id: z.string(), name: z.string() }))]),
              invitedBy: z.string(),
              expiresAt: z.string(),
              awaitingApproval: z.boolean(),
            }),
            ...errors(400, 429),
          },
        },
      },
      async (request) => c.invitations.preview(request.body.token, ctx(request)),
    );
    app.post(
      '/invitations/accept',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['auth'],
          summary: 'Accept an invitation: choose your name and password; signs you in (set up a second factor next when the vault requires one)',
          security: [],
          body: z.strictObject({ token: Token, name: z.string().max(200).optional(), password: z.string().min(1).max(256) }),
          response: { 200: z.object({ user: UserSchema, csrfToken: z.string(), mfaEnrolmentRequired: z.boolean() }), ...errors(400, 409, 429) },
        },
      },
      async (request, reply) => {
        const r = await c.invitations.accept(request.body.token, { name: request.body.name, password: request.body.password, ...ctx(request) });
        reply.setCookie(cookieName, r.sessionToken, { ...cookieOptions, maxAge: c.config.policy.sessionMaxHours * 3600 });
        return { user: r.user, csrfToken: r.csrfToken, mfaEnrolmentRequired: r.mfaEnrolmentRequired };
      },
    );
  };
