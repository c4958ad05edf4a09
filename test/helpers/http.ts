import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { totpCodeAt } from '../../src/crypto/totp.js';
import { sha256Hex } from '../../src/crypto/tokens.js';
import type { AuditEvent } from '../../src/modules/audit/audit.types.js';
import type { TestApp } from './app.js';
import { owner } from './vault.js';

/**
 * Helpers for the HTTP tests: multipart bodies, audit look-ups, TOTP codes, moving timestamps
 * in the database instead of waiting, capturing logs, and checking that a response leaks nothing.
 */

export type UploadFile = { name: string; content: string | Uint8Array; type?: string };

/** A multipart/form-data body built by the platform's own FormData encoder (fields first, then files). */
export async function multipart(fields: Record<string, string>, files: UploadFile[]): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  for (const f of files) {
    const part = typeof f.content === 'string' ? f.content : new Uint8Array(f.content);
    form.append('file', new Blob([part], { type: f.type ?? 'application/octet-stream' }), f.name);
  }
  const res = new Response(form);
  const type = res.headers.get('content-type');
  if (!type) throw new Error('FormData did not give a content type');
  return { payload: Buffer.from(await res.arrayBuffer()), headers: { 'content-type': type } };
}

/** Audit events as an owner reads them, newest first. */
export function auditEvents(
  t: TestApp,
  filter: { action?: string; outcome?: string; actorId?: string; targetId?: string; clientId?: string } = {},
): Promise<AuditEvent[]> {
  return t.container.audit.list(owner, { ...filter, limit: 1000 });
}

/** The current code of an authenticator app. */
export const totpNow = (secret: string): string => totpCodeAt(secret, Date.now());

/** A six-digit code that is not valid now nor in the neighbouring time steps. */
export function wrongTotp(secret: string, at = Date.now()): string {
  const near = new Set([-3, -2, -1, 0, 1, 2, 3].map((i) => totpCodeAt(secret, at + i * 30_000)));
  for (let n = 0; ; n++) {
    const c = String((123_456 + n * 7_919) % 1_000_000).padStart(6, '0');
    if (!near.has(c)) return c;
  }
}

export const minutesAgo = (m: number): string => new Date(Date.now() - m * 60_000).toISOString();
export const minutesAhead = (m: number): string => new Date(Date.now() + m * 60_000).toISOString();

/** Changes the stored session behind a cookie (to age it instead of waiting). */
export async function updateSession(
  t: TestApp,
  cookie: string,
  patch: Partial<{ mfa_at: string | null; last_seen_at: string; expires_at: string; revoked_at: string | null }>,
): Promise<void> {
  const r = await t.container.database.db.updateTable('sessions').set(patch).where('token_hash', '=', sha256Hex(cookie)).executeTakeFirst();
  if (Number(r.numUpdatedRows) !== 1) throw new Error('no such session');
}

export async function sessionRow(t: TestApp, cookie: string) {
  return t.container.database.db.selectFrom('sessions').selectAll().where('token_hash', '=', sha256Hex(cookie)).executeTakeFirst();
}

export async function throttleRow(t: TestApp, key: string) {
  return t.container.database.db.selectFrom('login_throttle').selectAll().where('key', '=', key).executeTakeFirst();
}

/** A pino destination that keeps every line. */
export function logCapture(): { stream: { write(s: string): void }; text(): string; lines(): Record<string, unknown>[] } {
  const chunks: string[] = [];
  return {
    stream: { write: (s: string) => void chunks.push(s) },
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const STACK = [/\n\s+at\s/, /\bat\s+\S+\s+\(.*:\d+:\d+\)/, /\bat\s+(file:\/\/|\/|node:)\S+:\d+/, /\.ts:\d+/, /\.ts['":]/, /\.js:\d+:\d+/, /node_modules/];
const SQL = [
  /\bselect\s+[\s\S]*\bfrom\b/i,
  /\binsert\s+into\b/i,
  /\bupdate\s+"?\w+"?\s+set\b/i,
  /\bdelete\s+from\b/i,
  /SQLITE_[A-Z]/,
  /\bsyntax error at or near\b/i,
  /\bviolates\b.*\bconstraint\b/i,
  /\bpg_\w+/,
];

/** Fails when a response body carries a stack trace, SQL or driver text, or one of the secrets. */
export function expectNoLeak(res: LightMyRequestResponse | string, secrets: readonly string[] = [], label = ''): void {
  const body = typeof res === 'string' ? res : res.body;
  const where = label || (typeof res === 'string' ? 'body' : `${res.statusCode} response`);
  for (const re of STACK) expect(body, `${where} looks like a stack trace (${re})`).not.toMatch(re);
  for (const re of SQL) expect(body, `${where} looks like SQL or driver text (${re})`).not.toMatch(re);
  for (const s of secrets) expect(body.includes(s), `${where} contains a secret`).toBe(false);
}

/** The message of an error body with one id blanked out, to compare "shapes". */
export function shapeOf(res: LightMyRequestResponse, ...ids: string[]): { status: number; error: unknown; message: string; keys: string[] } {
  const b = res.json() as Record<string, unknown>;
  let message = String(b.message ?? '');
  for (const id of ids) message = message.split(id).join('<id>');
  return { status: res.statusCode, error: b.error, message, keys: Object.keys(b).sort() };
}

/**
 * A code the server has not accepted yet. Each code works once (replay protection), so a test that
 * signs in, steps up and confirms in one 30-second window needs the next step's code, and past
 * that the stored "last step" is cleared (these tests are about other rules than replay).
 */
const usedSteps = new Map<string, number>();
export async function freshTotp(t: TestApp, secret: string): Promise<string> {
  const now = Math.floor(Date.now() / 30_000);
  let step = Math.max(now, (usedSteps.get(secret) ?? now - 1) + 1);
  if (step > now + 1) {
    await t.container.database.db.updateTable('users').set({ totp_last_step: null }).execute();
    step = now;
  }
  usedSteps.set(secret, step);
  return totpCodeAt(secret, step * 30_000 + 1_000);
}
