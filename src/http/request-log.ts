import { containsRecoveryPasswordLike, redactRecoveryPasswordLike } from '../domain/recovery-password.js';

/**
 * What a request line of the log says about the request. People paste recovery passwords and
 * tokens into search boxes and address bars, in any form (spaces sent as `+`, `%2D`, dots,
 * full-width digits), so the log carries the route pattern (`/api/v1/keys/:id`) and the names of
 * the query parameters, never what was typed. Values are kept only for parameters that steer
 * paging and output, and only when short and plain.
 */
const VALUE_KEPT = new Set(['limit', 'offset', 'beforeSeq', 'afterSeq', 'page', 'pageSize', 'sort', 'order', 'dir', 'format', 'dryRun', 'outcome', 'action']);
const PLAIN_VALUE = /^[A-Za-z0-9_.:-]{1,40}$/;
const PLAIN_NAME = /^[A-Za-z][A-Za-z0-9_.[\]-]{0,40}$/;
const TOKEN = /kw[a-z]?_[A-Za-z0-9_-]{16,}/g;

function maskPath(path: string): string {
  return redactRecoveryPasswordLike(path).replace(TOKEN, 'kw_[redacted]').slice(0, 200);
}

function queryPart(search: string): string {
  if (search === '') return '';
  const parts: string[] = [];
  for (const [name, value] of new URLSearchParams(search)) {
    if (parts.length >= 20) {
      parts.push('…');
      break;
    }
    if (!PLAIN_NAME.test(name) || containsRecoveryPasswordLike(name)) {
      parts.push('[name]');
      continue;
    }
    const keep = VALUE_KEPT.has(name) && PLAIN_VALUE.test(value) && !containsRecoveryPasswordLike(value);
    parts.push(keep ? `${name}=${value}` : name);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** The `url` of a request line: the matched route (or the masked path) and the query's parameter names. */
export function loggedUrl(request: { url: string; routeOptions?: { url?: string } }): string {
  const raw = request.url ?? '';
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  const search = q === -1 ? '' : raw.slice(q + 1);
  const route = request.routeOptions?.url;
  // A wildcard route (the console's pages and assets) says little: show the path, masked.
  return (route && !route.includes('*') ? route : maskPath(path)) + queryPart(search);
}

/** pino serializers for request lines ("incoming request", errors), shared by every HTTP app. */
export const requestLogSerializers = {
  req: (req: { method: string; url: string; routeOptions?: { url?: string }; ip?: string; socket?: { remoteAddress?: string } }) => ({
    method: req.method,
    url: loggedUrl(req),
    remoteAddress: req.ip ?? req.socket?.remoteAddress,
  }),
};
