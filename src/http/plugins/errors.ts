import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { isAppError } from '../../lib/errors.js';
import type { AuditService } from '../../modules/audit/audit.service.js';

/**
 * The one error handler. AppErrors keep their product-words message; validation errors list
 * each field; anything else is "something went wrong" with the request id, and its details go
 * to the log only (never a stack trace, SQL or driver text in a response). Permission denials
 * are audited here, so every route gets it without remembering to.
 */
export function registerErrorHandler(
  app: FastifyInstance,
  audit: Pick<AuditService, 'recordNow'>,
  opts: { notFound?: (request: FastifyRequest, reply: FastifyReply) => boolean } = {},
): void {
  app.setErrorHandler(async (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const requestId = request.id;
    if (hasZodFastifySchemaValidationErrors(error)) {
      const fields = error.validation.map((v) => {
        const path = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
        const unknown = /^Unrecognized keys?: (.+)$/.exec(v.message ?? '');
        if (unknown) return { field: [path, unknown[1]!.replace(/"/g, '')].filter(Boolean).join('.'), message: 'is not a known field' };
        return { field: path || (error.validationContext ?? 'body'), message: fieldMessage(v.message ?? 'is not valid') };
      });
      return reply.status(400).send({
        error: 'bad_request',
        message: `The request ${error.validationContext ?? 'body'} is not valid: ${fields.map((f) => `${f.field} ${f.message}`).join('; ')}.`,
        fields,
        requestId,
      });
    }
    if (isAppError(error)) {
      if ((error.kind === 'forbidden' || error.kind === 'step_up_required') && request.actor) {
        await audit
          .recordNow(request.actor, {
            action: 'auth.denied',
            outcome: 'denied',
            details: { route: `${request.method} ${request.routeOptions.url ?? ''}`, message: error.message },
          })
          .catch((e) => request.log.error({ err: e }, 'could not audit a denial'));
      }
      if (error.kind === 'rate_limited' && typeof error.details?.retryAfterSeconds === 'number') {
        reply.header('retry-after', String(Math.max(1, Math.ceil(error.details.retryAfterSeconds))));
      }
      if (error.kind === 'vault') request.log.error({ kind: error.kind, msg: error.message }, 'vault error');
      const { retryAfterSeconds: _r, field, ...rest } = error.details ?? {};
      return reply.status(error.status).send({
        error: error.kind,
        message: error.message,
        requestId,
        ...(typeof field === 'string' ? { fields: [{ field, message: error.message }] } : {}),
        ...(Object.keys(rest).length ? { details: rest } : {}),
      });
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || error.statusCode === 413) {
      return reply.status(413).send({ error: 'too_large', message: 'The request body is too large.', requestId });
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || error.statusCode === 415) {
      return reply
        .status(415)
        .send({ error: 'unsupported_media_type', message: 'Send JSON (application/json), or multipart/form-data for uploads.', requestId });
    }
    if (
      error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
      error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
      (error.statusCode === 400 && error.name === 'SyntaxError')
    ) {
      return reply.status(400).send({ error: 'bad_request', message: 'The request body is not valid JSON.', requestId });
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500 && !isResponseSerializationError(error)) {
      // Framework-level client errors (malformed multipart, bad content length, …): their text is safe.
      return reply.status(error.statusCode).send({ error: 'bad_request', message: error.message.slice(0, 300), requestId });
    }
    request.log.error({ err: { type: error.name, code: error.code, stack: error.stack } }, 'unexpected error');
    return reply
      .status(500)
      .send({ error: 'internal', message: `Something went wrong on our side. Quote request id ${requestId} to your administrator.`, requestId });
  });

  app.setNotFoundHandler((request, reply) => {
    // The web console answers its own paths (a browser GET of /clients…) with its page.
    if (opts.notFound?.(request, reply)) return;
    reply
      .status(404)
      .send({ error: 'not_found', message: `There is no ${request.method} ${request.url.split('?')[0]?.slice(0, 200)}.`, requestId: request.id });
  });
}

/** Zod's wording, turned into short product sentences ("must be a number"). */
function fieldMessage(message: string): string {
  const m = message.replace(/^Invalid input: /, '');
  const expected = /^expected (\w+), received (\w+)$/.exec(m);
  if (expected) return expected[2] === 'undefined' ? 'is required' : `must be ${/^[aeiou]/.test(expected[1]!) ? 'an' : 'a'} ${expected[1]}`;
  if (m === 'Invalid GUID') return 'must be an id (a GUID such as 4290b6c0-b17a-497a-8552-272cc30e80d4)';
  const option = /^Invalid option: expected one of (.+)$/.exec(m);
  if (option) return `must be one of ${option[1]!.replace(/"/g, '').split('|').join(', ')}`;
  const tooSmall = /^Too small: expected string to have >=(\d+) characters?$/.exec(m);
  if (tooSmall) return tooSmall[1] === '1' ? 'cannot be empty' : `needs at least ${tooSmall[1]} characters`;
  const tooBig = /^Too big: expected string to have <=(\d+) characters?$/.exec(m);
  if (tooBig) return `can be at most ${tooBig[1]} characters`;
  return m;
}
