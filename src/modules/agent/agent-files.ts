import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAgentVersion } from '../../domain/agent-version.js';
import { notFound, vaultError } from '../../lib/errors.js';

/**
 * The rollout kit: the agent script and its deployment helpers, served to RMMs and admins exactly
 * as they are in the repository (agent/ and agent/examples/), so what runs on a device is what
 * was reviewed. Only the names below are ever served: a request names a file of this list, never
 * a path, so nothing else on disk can be reached.
 */
export const AGENT_FILES = [
  { name: 'Keywarden-Agent.ps1', path: 'agent/Keywarden-Agent.ps1' },
  { name: 'Install-KeywardenAgent.ps1', path: 'agent/examples/Install-KeywardenAgent.ps1' },
  { name: 'Detect-KeywardenCheckin.ps1', path: 'agent/examples/Detect-KeywardenCheckin.ps1' },
  { name: 'Syncro-Keywarden.ps1', path: 'agent/examples/Syncro-Keywarden.ps1' },
  { name: 'Get-KeywardenCertificatePin.ps1', path: 'agent/examples/Get-KeywardenCertificatePin.ps1' },
] as const;

/** The script whose `$AgentVersion = '…'` line is the version of the whole kit. */
const SCRIPT = AGENT_FILES[0];

/** Where a file is downloaded from on this server. */
export const agentFileUrl = (name: string) => `/agent/${name}`;

/**
 * The folder that holds agent/: src/modules/agent/ when run from source (tests, tsx), and
 * dist/modules/agent/ when built (`npm start`, bin/keywarden.js): three levels up either way.
 */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export type AgentFile = {
  name: string;
  /** Path inside the package (agent/…). */
  path: string;
  bytes: Buffer;
  /** SHA-256 of the bytes, lower-case hex. */
  sha256: string;
  size: number;
  /** Strong validator: the content hash, quoted. */
  etag: string;
};
export type AgentKit = { version: string; files: readonly AgentFile[] };
export type AgentFileManifest = { version: string; files: { name: string; sha256: string; size: number; url: string }[] };

/**
 * Does an If-None-Match header name this entity tag? `*` matches anything; the comparison is the
 * weak one (a `W/` prefix is ignored), as HTTP prescribes for If-None-Match.
 */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return ifNoneMatch.split(',').some((t) => t.trim() === '*' || bare(t) === bare(etag));
}

export function createAgentFiles(opts: { root?: string } = {}) {
  const root = opts.root ?? PACKAGE_ROOT;
  // Read and hashed on first use, then served from memory: the files change only with a new release.
  let kit: AgentKit | null = null;
  const byName = new Map<string, AgentFile>();

  function load(): AgentKit {
    const missing: string[] = [];
    const files: AgentFile[] = [];
    for (const f of AGENT_FILES) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(join(root, f.path));
      } catch {
        missing.push(f.path);
        continue;
      }
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      files.push({ name: f.name, path: f.path, bytes, sha256, size: bytes.length, etag: `"${sha256}"` });
    }
    if (missing.length) {
      throw vaultError(`This Keywarden installation lacks agent files (${missing.join(', ')}). Reinstall Keywarden, or restore the agent folder next to its package.json.`);
    }
    const version = parseAgentVersion(files[0]!.bytes.toString('utf8'));
    if (!version) throw vaultError(`${SCRIPT.path} has no line "$AgentVersion = '…'", so the agent version is unknown. Reinstall Keywarden.`);
    for (const f of files) byName.set(f.name.toLowerCase(), f);
    return { version, files };
  }
  const current = (): AgentKit => (kit ??= load());

  return {
    /** The kit as served (loaded on first use). */
    kit: current,
    /** The version of the agent script this server serves. */
    version: (): string => current().version,
    /**
     * A file of the kit by its name (Windows users may type it in any case); any other name,
     * including anything that looks like a path, is "not found".
     */
    file(name: string): AgentFile {
      current();
      const f = byName.get(name.toLowerCase());
      if (!f) {
        throw notFound(`There is no agent file "${name.slice(0, 100)}". The files are ${AGENT_FILES.map((x) => x.name).join(', ')} (list: GET /api/v1/agent/files).`);
      }
      return f;
    },
    manifest(): AgentFileManifest {
      const k = current();
      return { version: k.version, files: k.files.map((f) => ({ name: f.name, sha256: f.sha256, size: f.size, url: agentFileUrl(f.name) })) };
    },
  };
}
export type AgentFiles = ReturnType<typeof createAgentFiles>;
