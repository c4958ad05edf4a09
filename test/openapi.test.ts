import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Validator } from '@seriousme/openapi-schema-validator';
import { createTestApp, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';

/**
 * The OpenAPI document tells the truth about the routes, is valid OpenAPI 3.0, and the API
 * explorer is served from this server (no CDN), so it works offline and under our CSP.
 */

type OpenApiDoc = {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, { summary?: string; responses?: Record<string, unknown>; security?: unknown[] }>>;
  components?: { securitySchemes?: Record<string, unknown> };
};

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

describe(`OpenAPI document and API explorer on ${ENGINE}`, () => {
  let t: TestApp;
  let doc: OpenApiDoc;

  beforeAll(async () => {
    t = await createTestApp();
    const r = await t.app.inject({ method: 'GET', url: '/api/openapi.json' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    doc = r.json();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is public and validates as OpenAPI 3.0', async () => {
    expect(doc.openapi).toMatch(/^3\.0\.\d+$/);
    expect(doc.info.title).toBe('Keywarden API');
    const result = await new Validator().validate(doc as unknown as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    // The validator does catch a broken document (so the check above means something).
    const broken = structuredClone(doc) as unknown as { paths: Record<string, Record<string, unknown>> };
    broken.paths['/api/v1/clients']!.get = { responses: 'none' };
    expect((await new Validator().validate(broken as unknown as Parameters<Validator['validate']>[0])).valid).toBe(false);
    expect(Object.keys(doc.components?.securitySchemes ?? {}).sort()).toEqual(['bearer', 'session']);
  });

  it('lists every /api/v1 route with its method, and no path that is not a route', () => {
    const toOpenApi = (url: string) => url.replace(/:(\w+)/g, '{$1}');
    const routes = new Set(t.app.routeTable.filter((r) => r.url.startsWith('/api/v1/')).map((r) => `${r.method.toLowerCase()} ${toOpenApi(r.url)}`));
    expect(routes.size).toBeGreaterThan(30);
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([p, ops]) =>
        Object.keys(ops)
          .filter((m) => HTTP_METHODS.includes(m))
          .map((m) => `${m} ${p}`),
      ),
    );
    const missing = [...routes].filter((r) => !documented.has(r)).sort();
    const extra = [...documented].filter((d) => !routes.has(d)).sort();
    expect(missing, 'routes missing from the OpenAPI document').toEqual([]);
    expect(extra, 'documented operations that are not routes').toEqual([]);
    // Every path is a route path (no stray /healthz, /readyz, docs or internal paths).
    const routePaths = new Set([...routes].map((r) => r.slice(r.indexOf(' ') + 1)));
    expect(Object.keys(doc.paths).filter((p) => !routePaths.has(p))).toEqual([]);
  });

  it('documents a summary and its responses for every operation, and the path parameters', () => {
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [m, op] of Object.entries(ops)) {
        if (!HTTP_METHODS.includes(m)) continue;
        expect(op.summary, `${m} ${p}`).toBeTruthy();
        expect(Object.keys(op.responses ?? {}).length, `${m} ${p}`).toBeGreaterThan(0);
        const params = [...p.matchAll(/\{(\w+)\}/g)].map((x) => x[1]);
        const declared = ((op as { parameters?: { in: string; name: string }[] }).parameters ?? []).filter((x) => x.in === 'path').map((x) => x.name);
        expect(declared.sort(), `${m} ${p}`).toEqual(params.sort());
      }
    }
    // Sign-in is the one operation that needs no credentials.
    expect(doc.paths['/api/v1/auth/login']?.post?.security).toEqual([]);
  });

  it('serves the Swagger UI from this server, with no CDN', async () => {
    let res = await t.app.inject({ method: 'GET', url: '/api/docs' });
    const seen = ['/api/docs'];
    for (let hops = 0; res.statusCode >= 300 && res.statusCode < 400 && hops < 5; hops++) {
      const next = new URL(String(res.headers.location), 'http://localhost/api/docs').pathname;
      seen.push(next);
      res = await t.app.inject({ method: 'GET', url: next });
    }
    expect(res.statusCode, seen.join(' → ')).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    const html = res.body;
    expect(html).toMatch(/swagger-ui/i);
    expect(html).not.toMatch(/\b(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i);
    // No inline script: our CSP (script-src 'self') would block it.
    const inline = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)].filter(([, attrs, body]) => !/\bsrc=/.test(attrs!) && body!.trim());
    expect(inline).toEqual([]);

    const base = new URL(seen.at(-1)!, 'http://localhost');
    const assets = [...html.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"/gi)].map((m) => m[1]!);
    expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
    expect(assets.some((a) => a.endsWith('.css'))).toBe(true);
    for (const a of assets) {
      const u = new URL(a, base);
      expect(u.host, a).toBe('localhost');
      const r = await t.app.inject({ method: 'GET', url: u.pathname });
      expect(r.statusCode, u.pathname).toBe(200);
      expect(r.body.length, u.pathname).toBeGreaterThan(0);
      if (a.endsWith('.js')) expect(r.headers['content-type'], u.pathname).toMatch(/javascript/);
      if (a.endsWith('.css')) expect(r.headers['content-type'], u.pathname).toMatch(/text\/css/);
    }
    // The explorer loads the same document from this server too.
    const served = await t.app.inject({ method: 'GET', url: '/api/docs/json' });
    expect(served.statusCode).toBe(200);
    expect(Object.keys(served.json().paths).sort()).toEqual(Object.keys(doc.paths).sort());
  });
});
