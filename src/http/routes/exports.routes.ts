import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { badRequest } from '../../lib/errors.js';
import { actorOf } from '../plugins/auth.js';
import { Id } from '../schemas.js';

/**
 * Offline break-glass bundle from the console: `key:export` (an owner with every client), signed
 * in with a fresh step-up, never an API token. The passphrase travels in the POST body (never a URL) and is not
 * logged (app.ts redacts it); the answer is the age file itself.
 */
export const exportRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/clients/:clientId/export',
      {
        schema: {
          tags: ['export'],
          summary:
            "Download an encrypted bundle (age format) of a client's active recovery keys, to a recipient public key (age1…) or a passphrase. Owner only, fresh step-up required; audited.",
          params: z.strictObject({ clientId: Id }),
          body: z.strictObject({
            recipient: z.string().max(100).optional(),
            passphrase: z.string().max(1024).optional(),
          }),
          produces: ['application/octet-stream'],
        },
      },
      async (request, reply) => {
        const { recipient, passphrase } = request.body;
        if ((recipient === undefined) === (passphrase === undefined)) {
          throw badRequest('Give either a recipient public key (age1…) or a passphrase, not both and not neither.');
        }
        const r = await c.exports.exportClient(actorOf(request), {
          clientId: request.params.clientId,
          protection: recipient !== undefined ? { kind: 'recipient', recipient } : { kind: 'passphrase', passphrase: passphrase! },
        });
        reply.header('content-disposition', `attachment; filename="${r.fileName}"`);
        reply.header('x-keywarden-keys', String(r.keys));
        reply.type('application/octet-stream');
        return reply.send(Buffer.from(r.bundle!, 'utf8'));
      },
    );
  };
