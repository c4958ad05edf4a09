import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
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

/**
 * One log line per request, written when the answer has gone out: method, route, status and time.
 * Fastify's default writes two ("incoming request" without the status, "request completed" without
 * the route); the arrival stays, at debug level, for finding a request that never finishes.
 */
export class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = { req: request, res: { statusCode: reply.statusCode }, responseTime: Math.round(reply.elapsedTime * 10) / 10 };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** pino's own fields, and the ones a readable line shows in its own place. */
const SHOWN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'reqId', 'req', 'res', 'responseTime']);

function fieldText(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]{1,200}$/.test(v) ? v : JSON.stringify(v.length > 500 ? v.slice(0, 500) + '…' : v);
  return JSON.stringify(v) ?? String(v);
}

/**
 * A pino JSON line as a person reads it on a terminal, e.g.
 * `10:47:23  POST /api/v1/keys/:id/reveal  200  12.3 ms` or `10:47:25  WARN  message  key=value`.
 * It reads only what pino already wrote (after redaction), so it shows nothing the JSON would not.
 */
export function readableLogLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : json + '\n';
  }
  const d = new Date(typeof o.time === 'number' ? o.time : Date.now());
  const time = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  const level = typeof o.level === 'number' ? (LEVELS[o.level] ?? String(o.level)) : 'INFO';
  const parts = [time];
  if (level !== 'INFO') parts.push(level);
  const req = o.req as { method?: string; url?: string } | undefined;
  const res = o.res as { statusCode?: number } | undefined;
  if (req && o.msg === 'request completed') {
    parts.push(`${req.method ?? '?'} ${req.url ?? '?'}`, String(res?.statusCode ?? '?'), `${o.responseTime ?? '?'} ms`);
  } else if (req && o.msg === 'incoming request') {
    parts.push(`→ ${req.method ?? '?'} ${req.url ?? '?'}`);
  } else {
    parts.push(String(o.msg ?? ''));
    if (req) parts.push(`(${req.method ?? '?'} ${req.url ?? '?'})`);
  }
  const extra = Object.entries(o)
    .filter(([k]) => !SHOWN.has(k))
    .map(([k, v]) => `${k}=${fieldText(v)}`);
  return [...parts, ...extra].join('  ') + '\n';
}

/** A pino destination that writes readable lines instead of JSON (for `serve` on a terminal). */
export function readableLogStream(write: (text: string) => void = (t) => void process.stdout.write(t)): { write(line: string): void } {
  return { write: (line) => write(readableLogLine(line)) };
}
