import { isUtf8 } from 'node:buffer';
import type { FastifyInstance } from 'fastify';
import { badRequest } from '../../lib/errors.js';

/**
 * JSON request bodies are read strictly: bytes that are not valid UTF-8, and text holding half
 * of a UTF-16 surrogate pair (`"\ud800"`), are refused with a 400 instead of being stored with
 * replacement characters that nobody typed. Parsing itself stays Fastify's own (with its
 * prototype-poisoning checks).
 */
export function registerStrictJson(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) {
      done(badRequest('The request body is not valid UTF-8 text. Send JSON encoded as UTF-8.'), undefined);
      return;
    }
    parseJson(request, bytes.toString('utf8'), (err, value) => {
      if (err) return done(err, undefined);
      if (!wellFormed(value))
        return done(badRequest('The request body holds an incomplete character (a lone \\ud800-\\udfff escape). Send whole characters only.'), undefined);
      done(null, value);
    });
  });
}

/** In `u` mode a surrogate pair is one code point, so this matches only an unpaired half. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Every string (property names included) is well-formed UTF-16. Iterative: nesting cannot overflow the stack. */
function wellFormed(root: unknown): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return false;
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if (LONE_SURROGATE.test(k)) return false;
        stack.push(x);
      }
    }
  }
  return true;
}
