import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { REASON_CODES } from '../../domain/reason-codes.js';
import { notFound } from '../../lib/errors.js';
import { actorOf } from '../plugins/auth.js';
import { Id, KeySummarySchema, Limit, Offset, errors } from '../schemas.js';

const RevealResponse = z.union([
  z.object({
    status: z.literal('revealed'),
    key: KeySummarySchema.extend({ recoveryPassword: z.string() }),
    rotation: z
      .enum(['agent', 'intune'])
      .nullable()
      .describe("how the disclosed key will be replaced: by the device's agent at its next check-in, through Intune, or null (nothing queued)"),
  }),
  z.object({
    status: z.literal('ambiguous'),
    matches: z.number(),
    candidates: z.array(KeySummarySchema).nullable().describe('ranked: keys likely to unlock first, then agent-reported, then newest'),
    tryFirst: z.string().nullable().optional().describe('with candidates: the record id of the one to try first, or null when none is likely to unlock'),
  }),
]);

const UnlockOutcomeSchema = z.object({
  unlocked: z.boolean(),
  key: KeySummarySchema.describe('the key as it stands now'),
  candidates: z.array(KeySummarySchema).describe("every stored record of this key ID in the key's client, ranked as a lookup ranks them"),
  tryFirst: z.string().nullable().describe('the record id to try first, or null'),
  superseded: z.number().describe('other records of the key ID marked superseded (yes on a conflict)'),
  resolvedFindings: z.number().describe('findings the answer resolved (key_conflict on a yes)'),
  openedFinding: z.boolean().describe('a "did not unlock" finding was opened (no)'),
});

export const keyRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/keys',
      {
        schema: {
          tags: ['keys'],
          summary: 'Key metadata: search by key-ID prefix (8+), device name, serial or user; or list one client. Never a password.',
          querystring: z.strictObject({ q: z.string().max(100).optional(), clientId: Id.optional(), limit: Limit, offset: Offset }),
          response: { 200: z.array(KeySummarySchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => {
        const actor = actorOf(request);
        const { q, clientId, limit, offset } = request.query;
        if (q) return c.keys.search(actor, q, limit ?? 50);
        return c.keys.list(actor, { clientId, limit: limit ?? 100, offset });
      },
    );
    app.get(
      '/keys/reasons',
      {
        schema: {
          tags: ['keys'],
          summary: 'Reason codes a reveal accepts',
          response: { 200: z.array(z.object({ code: z.string(), label: z.string() })), ...errors(401) },
        },
      },
      async () => REASON_CODES.map((r) => ({ code: r.code, label: r.label })),
    );
    app.get(
      '/keys/:keyRecordId',
      {
        schema: {
          tags: ['keys'],
          summary: "One key's metadata by its record id",
          params: z.strictObject({ keyRecordId: Id }),
          response: { 200: KeySummarySchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.keys.get(actorOf(request), request.params.keyRecordId),
    );
    app.post(
      '/keys/:id/reveal',
      {
        schema: {
          tags: ['keys'],
          summary:
            'Reveal a recovery password. {id} is the key ID from the recovery screen, its first 8+ characters, or a key record id. Audited before the password is returned; marks the key disclosed.',
          params: z.strictObject({ id: z.string().min(1).max(64) }),
          body: z.strictObject({
            reason: z.string().min(1).max(40),
            ticket: z.string().max(200).optional(),
            note: z.string().max(1000).optional(),
            approvalRequestId: Id.optional().describe('two-person reveal: the id of your approved request for this key (it reveals once)'),
            breakGlassReason: z
              .string()
              .max(500)
              .optional()
              .describe('two-person reveal: an owner reveals without approval, saying why (fresh step-up; audited as key.break_glass and notified)'),
          }),
          response: { 200: RevealResponse, ...errors(400, 401, 403, 404, 409, 429) },
        },
      },
      async (request) => {
        const r = await c.keys.revealByKeyId(actorOf(request), { query: request.params.id, ...request.body });
        if (r.status === 'not_found') throw notFound(`No recovery key you can reach matches "${request.params.id.slice(0, 64)}".`);
        return r;
      },
    );
    app.post(
      '/keys/:keyRecordId/unlock-outcome',
      {
        schema: {
          tags: ['keys'],
          summary:
            'After a reveal, the person who revealed the key says whether it unlocked the drive. Yes: the other stored passwords of its key ID are superseded and its conflict resolved. No: the key is marked "may not unlock" (re-escrow it). Audited.',
          params: z.strictObject({ keyRecordId: Id }),
          body: z.strictObject({
            unlocked: z.boolean({ error: 'Say whether the key unlocked the drive: unlocked true or false.' }),
            ticket: z.string().max(200).optional(),
          }),
          response: { 200: UnlockOutcomeSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.unlockOutcome.record(actorOf(request), request.params.keyRecordId, request.body),
    );
    app.get(
      '/keys/lookup',
      {
        schema: {
          tags: ['keys'],
          summary:
            'Find the key to reveal by its key ID or first 8+ characters (for roles that may reveal, including helpdesk). One match shows its metadata; several only how many (all of them for roles that may list keys). Never a password.',
          querystring: z.strictObject({ keyId: z.string().min(1).max(64) }),
          response: {
            200: z.object({
              matches: z.number(),
              keys: z.array(KeySummarySchema).describe('several: ranked, keys likely to unlock first, then agent-reported, then newest'),
              tryFirst: z.string().nullable().describe('the record id of the key to try first when several match, or null'),
            }),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => c.keyLookup.lookup(actorOf(request), request.query.keyId),
    );
  };
