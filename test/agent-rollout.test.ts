/**
 * The rollout kit: GET /agent/<file> serves the repository's agent script and deployment helpers
 * byte for byte (with version, SHA-256 and ETag headers) to anyone, and nothing else; the manifest
 * GET /api/v1/agent/files lists exactly those files.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { PACKAGE_ROOT, createAgentFiles } from '../src/modules/agent/agent-files.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Written out by hand: the kit's files and where they live in the repository. */
const KIT = [
  ['Keywarden-Agent.ps1', 'agent/Keywarden-Agent.ps1'],
  ['Install-KeywardenAgent.ps1', 'agent/examples/Install-KeywardenAgent.ps1'],
  ['Detect-KeywardenCheckin.ps1', 'agent/examples/Detect-KeywardenCheckin.ps1'],
  ['Syncro-Keywarden.ps1', 'agent/examples/Syncro-Keywarden.ps1'],
  ['Get-KeywardenCertificatePin.ps1', 'agent/examples/Get-KeywardenCertificatePin.ps1'],
] as const;

/** Not a download and not the repository's package.json. */
function expectNotAFile(res: LightMyRequestResponse, label: string) {
  expect(res.body.includes('"devDependencies"'), label).toBe(false);
  expect(res.headers['content-disposition'], label).toBeUndefined();
  expect(res.headers['x-content-sha256'], label).toBeUndefined();
}

/** One GET with the request target exactly as given (no URL normalisation), answered in full. */
function rawGet(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
  });
}

const repoBytes = (rel: string) => fs.readFileSync(path.join(REPO, rel));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** The version line as the brief states it; read from the file on disk, not from the server's code. */
const scriptVersion = () => /^\$AgentVersion\s*=\s*'([^']+)'/m.exec(repoBytes('agent/Keywarden-Agent.ps1').toString('utf8'))![1]!;

describe(`rollout kit downloads on ${ENGINE}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t?.close();
  });

  it.each(KIT)('GET /agent/%s is the repository file, byte for byte, with its headers and no sign-in', async (name, rel) => {
    const want = repoBytes(rel);
    const res = await t.app.inject({ method: 'GET', url: `/agent/${name}` });
    expect(res.statusCode).toBe(200);
    expect(Buffer.compare(res.rawPayload, want)).toBe(0);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="${name}"`);
    expect(res.headers['x-content-sha256']).toBe(sha256(want));
    expect(sha256(res.rawPayload)).toBe(res.headers['x-content-sha256']);
    expect(res.headers['x-keywarden-agent-version']).toBe(scriptVersion());
    expect(res.headers['etag']).toMatch(/^"[^"]+"$/);
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    // Served under the app's helmet settings like every other answer.
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(Number(res.headers['content-length'])).toBe(want.length);
  });

  it('answers If-None-Match with the ETag with 304 and no body; another tag gets the file', async () => {
    const url = '/agent/Keywarden-Agent.ps1';
    const first = await t.app.inject({ method: 'GET', url });
    const etag = String(first.headers.etag);
    for (const inm of [etag, `W/${etag}`, `"something-else", ${etag}`, '*']) {
      const r = await t.app.inject({ method: 'GET', url, headers: { 'if-none-match': inm } });
      expect(r.statusCode, inm).toBe(304);
      expect(r.rawPayload.length, inm).toBe(0);
      expect(r.headers.etag).toBe(etag);
    }
    const other = await t.app.inject({ method: 'GET', url, headers: { 'if-none-match': '"0000"' } });
    expect(other.statusCode).toBe(200);
    expect(Buffer.compare(other.rawPayload, repoBytes('agent/Keywarden-Agent.ps1'))).toBe(0);
    // Each file has its own tag: one file's tag does not make another 304.
    const installer = await t.app.inject({ method: 'GET', url: '/agent/Install-KeywardenAgent.ps1', headers: { 'if-none-match': etag } });
    expect(installer.statusCode).toBe(200);
    expect(installer.headers.etag).not.toBe(etag);
  });

  it('answers HEAD with the headers only, and accepts the name in any case', async () => {
    const head = await t.app.inject({ method: 'HEAD', url: '/agent/Syncro-Keywarden.ps1' });
    expect(head.statusCode).toBe(200);
    expect(head.rawPayload.length).toBe(0);
    expect(head.headers['x-content-sha256']).toBe(sha256(repoBytes('agent/examples/Syncro-Keywarden.ps1')));
    const lower = await t.app.inject({ method: 'GET', url: '/agent/keywarden-agent.ps1' });
    expect(lower.statusCode).toBe(200);
    expect(lower.headers['content-disposition']).toBe('attachment; filename="Keywarden-Agent.ps1"');
    expect(Buffer.compare(lower.rawPayload, repoBytes('agent/Keywarden-Agent.ps1'))).toBe(0);
  });

  it('is a download even when a browser asks for HTML (the console page never answers /agent/…)', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/agent/Install-KeywardenAgent.ps1', headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(Buffer.compare(res.rawPayload, repoBytes('agent/examples/Install-KeywardenAgent.ps1'))).toBe(0);
  });

  it('serves no other file: names with paths, traversal and encoded tricks are 404, never the file they point at', async () => {
    const attempts = [
      '/agent/..%2Fpackage.json',
      '/agent/..%2fpackage.json',
      '/agent/%2e%2e%2fpackage.json',
      '/agent/%2E%2E%2Fpackage.json',
      '/agent/..%5Cpackage.json',
      '/agent/..%255Cpackage.json',
      '/agent/..%252Fpackage.json',
      '/agent/....//package.json',
      '/agent//etc/passwd',
      '/agent/%2Fetc%2Fpasswd',
      '/agent/examples/Install-KeywardenAgent.ps1',
      '/agent/examples%2FInstall-KeywardenAgent.ps1',
      '/agent/Keywarden-Agent.ps1/',
      '/agent/Keywarden-Agent.ps1/..',
      '/agent/Keywarden-Agent.ps1%20',
      '/agent/Keywarden-Agent.ps1.bak',
      '/agent/README.md',
      '/agent/constructor',
      '/agent/__proto__',
      '/agent/hasOwnProperty',
      '/agent/',
    ];
    for (const url of attempts) {
      for (const accept of ['*/*', 'text/html']) {
        const res = await t.app.inject({ method: 'GET', url, headers: { accept } });
        expect(res.statusCode, `${url} (${accept})`).toBe(404);
        expect(res.headers['content-type'], url).toMatch(/^application\/json/);
        expect(res.json().error, url).toBe('not_found');
        expectNotAFile(res, url);
      }
    }
    // Overlong UTF-8 dots are not even a URL; a NUL byte is refused at the door, like everywhere else.
    for (const url of ['/agent/%C0%AE%C0%AEpackage.json', '/agent/Keywarden-Agent.ps1%00.txt']) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(400);
      expectNotAFile(res, url);
    }
  });

  it('dot segments sent as they are (no client normalising them) reach the allow-list and are 404', async () => {
    // inject() and browsers resolve "/agent/../x" to "/x" before sending; a raw request line does not.
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    for (const target of [
      '/agent/../package.json',
      '/agent/../../package.json',
      '/agent/%2e%2e/%2e%2e/package.json',
      '/agent/..\\package.json',
      '/agent/./../package.json',
    ]) {
      const raw = await rawGet(port, target);
      expect(raw.split('\r\n')[0], target).toBe('HTTP/1.1 404 Not Found');
      expect(raw, target).toContain('"error":"not_found"');
      expect(raw, target).not.toContain('"devDependencies"');
      expect(raw.toLowerCase(), target).not.toContain('content-disposition');
    }
  });

  it('names the files in the 404 message', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/agent/Keywarden.ps1' });
    expect(res.statusCode).toBe(404);
    expect(res.json().message).toContain('"Keywarden.ps1"');
    for (const [name] of KIT) expect(res.json().message).toContain(name);
  });

  it('GET /api/v1/agent/files lists the kit with sizes and hashes matching the downloads', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/agent/files' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const m = res.json() as { version: string; files: { name: string; sha256: string; size: number; url: string }[] };
    expect(m.version).toBe(scriptVersion());
    expect(m.files.map((f) => f.name)).toEqual(KIT.map(([n]) => n));
    for (const [name, rel] of KIT) {
      const f = m.files.find((x) => x.name === name)!;
      const want = repoBytes(rel);
      expect(f).toEqual({ name, sha256: sha256(want), size: want.length, url: `/agent/${name}` });
      const dl = await t.app.inject({ method: 'GET', url: f.url });
      expect(sha256(dl.rawPayload)).toBe(f.sha256);
    }
  });

  it('the downloads and the manifest need no credentials, and a bad one does not stop them', async () => {
    for (const url of ['/agent/Detect-KeywardenCheckin.ps1', '/api/v1/agent/files']) {
      const res = await t.app.inject({ method: 'GET', url, headers: { authorization: 'Bearer kw_not-a-real-token', cookie: 'kw_session=nonsense' } });
      expect(res.statusCode, url).toBe(200);
    }
    const doc = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json() as { paths: Record<string, Record<string, { security?: unknown[] }>> };
    expect(doc.paths['/api/v1/agent/files']?.get?.security).toEqual([]);
    expect(Object.keys(doc.paths).filter((p) => !p.startsWith('/api/'))).toEqual([]);
    const route = t.app.routeTable.filter((r) => r.url === '/agent/*' || r.url === '/api/v1/agent/files');
    expect(route.map((r) => `${r.method} ${r.url} ${r.auth}`).sort()).toEqual(['GET /agent/* public', 'GET /api/v1/agent/files public']);
  });
});

describe('rollout kit files on disk', () => {
  it('are found next to package.json from source and from dist/ alike', () => {
    // src/modules/agent/ and dist/modules/agent/ are equally deep (tsconfig.build.json: rootDir src, outDir dist).
    expect(PACKAGE_ROOT).toBe(REPO);
    const build = JSON.parse(fs.readFileSync(path.join(REPO, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { rootDir: string; outDir: string } };
    expect([build.compilerOptions.rootDir, build.compilerOptions.outDir]).toEqual(['src', 'dist']);
    // The package ships agent/ (no "files" list leaves it out; no .npmignore drops it).
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { files?: string[] };
    if (pkg.files) expect(pkg.files.some((f) => f === 'agent' || f === 'agent/' || f.startsWith('agent/'))).toBe(true);
    if (fs.existsSync(path.join(REPO, '.npmignore'))) expect(fs.readFileSync(path.join(REPO, '.npmignore'), 'utf8')).not.toMatch(/^\/?agent\/?$/m);
  });

  it('are read once from the folder given, and a missing file is a clear error, not an empty download', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-kit-'));
    try {
      fs.mkdirSync(path.join(root, 'agent', 'examples'), { recursive: true });
      for (const [, rel] of KIT) fs.writeFileSync(path.join(root, rel), rel === 'agent/Keywarden-Agent.ps1' ? "$AgentVersion = '7.7.7'\r\n" : `# ${rel}\r\n`);
      const files = createAgentFiles({ root });
      expect(files.version()).toBe('7.7.7');
      expect(files.file('Syncro-Keywarden.ps1').bytes.toString()).toBe('# agent/examples/Syncro-Keywarden.ps1\r\n');
      // Read at first use and kept: a later change on disk is not served until restart.
      fs.writeFileSync(path.join(root, 'agent/examples/Syncro-Keywarden.ps1'), 'changed');
      expect(files.file('Syncro-Keywarden.ps1').bytes.toString()).toBe('# agent/examples/Syncro-Keywarden.ps1\r\n');

      fs.rmSync(path.join(root, 'agent/examples/Detect-KeywardenCheckin.ps1'));
      expect(() => createAgentFiles({ root }).manifest()).toThrow(/lacks agent files \(agent\/examples\/Detect-KeywardenCheckin\.ps1\)/);
      fs.writeFileSync(path.join(root, 'agent/examples/Detect-KeywardenCheckin.ps1'), '');
      fs.writeFileSync(path.join(root, 'agent/Keywarden-Agent.ps1'), '# no version line\r\n');
      expect(() => createAgentFiles({ root }).version()).toThrow(/has no line "\$AgentVersion = '…'"/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
