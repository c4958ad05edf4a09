import type { Response } from 'undici';
import { containsRecoveryPasswordLike } from '../../domain/recovery-password.js';
import { isEgressError } from '../egress.js';
import { PsaError, type PsaClientDeps } from './types.js';

/**
 * The transport the three PSA clients share: every request through the egress policy with a
 * timeout, no redirect followed, the vendor's retry hint (Retry-After) honoured with a bounded
 * number of retries and an injectable sleep, and failures reported in Keywarden's words. The remote
 * answer's text is never repeated (it may echo what was sent), and no header value is ever logged.
 */

export type PsaHttpRequest = {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT';
  url: string;
  headers?: Record<string, string>;
  /** JSON body. */
  json?: unknown;
  /** Form body (token requests). */
  form?: URLSearchParams;
  /** Statuses handed back to the caller instead of being turned into a PsaError (e.g. 404 → null). */
  accept?: number[];
  /** Whether a network error may be retried (reads only: a write may have arrived). Default: GET. */
  retryNetwork?: boolean;
  /** What this request is about, for messages ("the ticket", "the token endpoint"). */
  what?: string;
};

export type PsaHttpAnswer = { status: number; json: unknown; headers: Response['headers'] };

const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Retry-After is either delta-seconds or an HTTP date. */
export function retryAfterMs(header: string | null, now: number): number | null {
  if (!header) return null;
  const secs = Number(header);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** An address a PSA connection may use: https, or http to this machine only (tests, a local proxy). */
export function validPsaUrl(u: string, name: string, field: string): string {
  try {
    const url = new URL(u);
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw new Error();
    if (url.username || url.password || url.search || url.hash) throw new Error();
    return u.replace(/\/+$/, '');
  } catch {
    throw new PsaError(0, 'bad_request', `The ${field} of ${name} must be an https:// address without user, query or fragment (http:// only for localhost).`);
  }
}

function words(name: string, status: number): { code: string; message: string } {
  if (status === 400) return { code: 'bad_request', message: `${name} refused the request as invalid (HTTP 400).` };
  if (status === 401) return { code: 'auth_failed', message: `${name} did not accept the API credentials: check them in the PSA connection.` };
  if (status === 403) return { code: 'forbidden', message: `${name} denied access: the API user lacks a permission this step needs.` };
  if (status === 404) return { code: 'not_found', message: `${name} did not find the requested item.` };
  if (status === 429) return { code: 'throttled', message: `${name} kept asking Keywarden to slow down: try again in a few minutes.` };
  if (status === 502 || status === 503 || status === 504) return { code: 'unreachable', message: `${name} is unavailable (HTTP ${status}): try again later.` };
  return { code: `http_${status}`, message: `${name} answered HTTP ${status}.` };
}

async function readText(res: Response): Promise<string | null> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Exponential backoff with jitter: about 0.5, 1, 2 … s, capped at 10 s. */
function backoff(attempt: number): number {
  const cap = Math.min(10_000, 500 * 2 ** attempt);
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

export type PsaTransport = ReturnType<typeof createTransport>;

export function createTransport(name: string, deps: PsaClientDeps) {
  const sleep = deps.sleep ?? defaultSleep;
  const now = deps.now ?? Date.now;
  const timeoutMs = deps.timeoutMs ?? 15_000;
  const maxRetries = deps.maxRetries ?? 3;
  const maxWaitMs = deps.maxWaitMs ?? 10_000;
  // A PSA throttles per integration: once one request is told to wait, every request of this client waits.
  let notBefore = 0;

  async function wait(ms: number, reason: string) {
    deps.onWait?.(ms, reason);
    await sleep(ms);
  }

  async function send(req: PsaHttpRequest): Promise<PsaHttpAnswer> {
    const u = new URL(req.url);
    const host = u.host;
    const retryNetwork = req.retryNetwork ?? req.method === 'GET';
    for (let attempt = 0; ; attempt++) {
      for (let left = notBefore - now(); left > 0; left = notBefore - now()) await wait(left, 'retry hint');
      const headers: Record<string, string> = { accept: 'application/json', 'user-agent': deps.userAgent ?? 'Keywarden', ...req.headers };
      let body: string | undefined;
      if (req.form) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        body = req.form.toString();
      } else if (req.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(req.json);
      }
      const signal = AbortSignal.timeout(timeoutMs);
      let res: Response;
      let text: string | null;
      try {
        res = await deps.egress.fetch(u, { method: req.method, headers, body, signal }, 'internet', name);
        if (res.status >= 300 && res.status < 400) {
          await res.body?.cancel().catch(() => undefined);
          throw new PsaError(
            res.status,
            'redirect',
            `${name} answered with a redirect, which Keywarden does not follow: check the addresses of the PSA connection.`,
          );
        }
        text = await readText(res);
      } catch (e) {
        if (e instanceof PsaError) throw e;
        if (isEgressError(e)) throw new PsaError(0, 'refused', e.message);
        if (signal.aborted)
          throw new PsaError(
            0,
            'unreachable',
            `${name} at ${host} did not answer within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} seconds`}.`,
          );
        const cause = (e as { cause?: { code?: unknown } } | null)?.cause;
        const code = typeof cause?.code === 'string' && /^[A-Z0-9_]{2,40}$/.test(cause.code) ? ` (${cause.code})` : '';
        if (retryNetwork && attempt < maxRetries) {
          await wait(backoff(attempt), 'network error');
          continue;
        }
        throw new PsaError(0, 'unreachable', `Cannot reach ${name} at ${host}${code}.`);
      }
      if ((res.status === 429 || res.status === 502 || res.status === 503 || res.status === 504) && !req.accept?.includes(res.status)) {
        const hinted = retryAfterMs(res.headers.get('retry-after'), now());
        const ms = hinted ?? backoff(attempt);
        if (attempt < maxRetries && ms <= maxWaitMs) {
          notBefore = Math.max(notBefore, now() + ms);
          continue;
        }
        const w = words(name, res.status);
        throw new PsaError(res.status, w.code, w.message);
      }
      if (text === null) throw new PsaError(res.status, 'too_large', `${name} sent an answer larger than Keywarden reads (HTTP ${res.status}).`);
      const json = text ? safeJson(text) : undefined;
      if (res.ok || req.accept?.includes(res.status)) return { status: res.status, json, headers: res.headers };
      const w = words(name, res.status);
      throw new PsaError(res.status, w.code, w.message);
    }
  }

  return { send, name };
}

/** A JSON object from an answer, or a PsaError saying the answer was not what the PSA documents. */
export function obj(name: string, v: unknown, what: string): Record<string, unknown> {
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  throw new PsaError(200, 'bad_answer', `${name} answered ${what} in a form Keywarden does not understand.`);
}

export const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : '');
export const idOf = (v: unknown): string | null =>
  typeof v === 'number' && Number.isInteger(v) ? String(v) : typeof v === 'string' && /^\d{1,18}$/.test(v) ? v : null;

/** A PSA record id typed by a person or stored by Keywarden: digits only, or a PsaError. */
export function numericId(name: string, id: string, what = 'ticket'): number {
  const t = id.trim().replace(/^#/, '');
  if (!/^\d{1,15}$/.test(t)) throw new PsaError(0, 'bad_request', `A ${name} ${what} id is a number (got something else).`);
  return Number(t);
}

/** A PSA priority or queue id given as text: digits only. */
export function optionalNumber(name: string, v: string | undefined, field: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,15}$/.test(v.trim())) throw new PsaError(0, 'bad_request', `The ${field} for ${name} must be a number.`);
  return Number(v.trim());
}

/**
 * Last line of defence: text Keywarden sends to a PSA (notes, ticket titles and descriptions) never
 * holds anything shaped like a recovery password. Checked before anything is sent.
 */
export function guardText(name: string, ...texts: (string | undefined)[]): void {
  for (const t of texts)
    if (t !== undefined && containsRecoveryPasswordLike(t))
      throw new PsaError(0, 'bad_request', `Keywarden does not send text that looks like a recovery password to ${name}.`);
}
