import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';

/**
 * The web console (web/, built by Vite into dist/web) served by `keywarden serve` at `/`.
 *
 * - /assets/* are Vite's content-hashed files: cached for a year, immutable.
 * - index.html (at `/` and, for the single-page app's own paths, any other GET that is not an API
 *   or asset URL) is never cached, and carries a Content-Security-Policy of its own: scripts from
 *   this origin only; styles from this origin plus `<style>` elements bearing a fresh per-response
 *   nonce. Mantine writes its CSS variables into such a `<style>` element; the page reads the nonce
 *   from a meta tag and hands it to Mantine (getStyleNonce), so no 'unsafe-inline' is needed.
 * - When the console was not built (tests run before `npm run build`), `/` answers a short page
 *   saying so and /assets/* answer 404: the same routes exist either way, so the route table (and
 *   the authorization matrix built from it) does not depend on the build.
 */

/** The repository root: this file is src/http/web.ts when run from source, dist/http/web.js when built. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_WEB_DIR = join(ROOT, 'dist', 'web');

/** The placeholder web/index.html carries; replaced per response by the nonce. */
export const NONCE_PLACEHOLDER = '__KW_STYLE_NONCE__';
/** Vite names every built asset name-hash.ext, flat in assets/. Anything else is not ours. */
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

export function consoleCsp(nonce: string): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keywarden</title></head>
<body><main><h1>Keywarden</h1>
<p>The web console is not built. Run <code>npm run build</code> (it builds the API server and the console into dist/), then restart <code>keywarden serve</code>.</p>
<p>The REST API answers under <a href="/api/docs">/api/docs</a>.</p></main></body></html>
`;

export type WebConsole = {
  /** Registers GET / and GET /assets/* (both public). */
  register(app: FastifyInstance): Promise<void>;
  /**
   * The single-page app's own paths (/clients, /devices/…, /settings/users…) are the page too.
   * Called by the app's not-found handler: true when it answered with the page; API and asset
   * URLs, non-GETs and requests that do not ask for HTML keep the JSON 404.
   */
  notFound(request: FastifyRequest, reply: FastifyReply): boolean;
};

export function createWebConsole(opts: { dir?: string } = {}): WebConsole {
  const dir = opts.dir ?? DEFAULT_WEB_DIR;
  const indexPath = join(dir, 'index.html');
  const built = existsSync(indexPath);
  // Kept in memory, read again only when a new build replaced it (its asset names change then).
  let cached: { mtimeMs: number; html: string } | null = null;
  const page = (): string | null => {
    try {
      const { mtimeMs } = statSync(indexPath);
      if (!cached || cached.mtimeMs !== mtimeMs) cached = { mtimeMs, html: readFileSync(indexPath, 'utf8') };
      return cached.html;
    } catch {
      return null;
    }
  };

  const sendIndex = (reply: FastifyReply) => {
    reply.header('cache-control', 'no-store');
    const indexHtml = page();
    if (!indexHtml) return reply.type('text/html; charset=utf-8').send(NOT_BUILT);
    const nonce = randomBytes(18).toString('base64');
    reply.header('content-security-policy', consoleCsp(nonce));
    return reply.type('text/html; charset=utf-8').send(indexHtml.replaceAll(NONCE_PLACEHOLDER, nonce));
  };

  return {
    async register(app) {
      if (built) await app.register(fastifyStatic, { root: join(dir, 'assets'), serve: false });
      app.get('/', { config: { auth: 'public' }, schema: { hide: true } }, async (_request, reply) => sendIndex(reply));
      app.get('/assets/*', { config: { auth: 'public' }, schema: { hide: true } }, async (request, reply) => {
        const name = (request.params as { '*'?: string })['*'] ?? '';
        if (!built || !ASSET_NAME.test(name) || !existsSync(join(dir, 'assets', name))) {
          return reply.status(404).send({ error: 'not_found', message: `There is no console file ${name.slice(0, 100)}.`, requestId: request.id });
        }
        // Hashed names change with their content: a year, immutable.
        return reply.sendFile(name, { maxAge: 365 * 24 * 3600 * 1000, immutable: true });
      });
    },
    notFound(request, reply) {
      const path = request.url.split('?')[0] ?? '';
      const wantsHtml = (request.headers.accept ?? '').includes('text/html');
      if ((request.method !== 'GET' && request.method !== 'HEAD') || !wantsHtml || path.startsWith('/api/') || path.startsWith('/assets/')) return false;
      void sendIndex(reply);
      return true;
    },
  };
}
