/**
 * Versions of the Windows agent: the script states its own in one line
 * (`$AgentVersion = '1.1.0'`), sends it with every check-in, and the server compares what devices
 * run with the script it serves. Pure.
 */

/** The line of agent/Keywarden-Agent.ps1 that states its version. */
export const AGENT_VERSION_LINE = /^\$AgentVersion\s*=\s*'([^']+)'/m;

/** The version a script text states, or null when it has no `$AgentVersion = '…'` line. */
export function parseAgentVersion(scriptText: string): string | null {
  return AGENT_VERSION_LINE.exec(scriptText)?.[1]?.trim() || null;
}

type Parsed = { parts: number[]; preRelease: boolean };

/** `1.1.0`, `1.1`, `v1.1.0.4`, `1.2.0-beta1`; anything else (e.g. `test-1.0`) is not a version. */
function parse(v: string): Parsed | null {
  const m = /^v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?(-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.exec(v.trim());
  if (!m) return null;
  return { parts: [m[1], m[2], m[3], m[4]].map((x) => (x === undefined ? 0 : Number(x))), preRelease: m[5] !== undefined };
}

/**
 * Compares two versions number by number (so 1.10.0 is newer than 1.9.0; missing parts are 0, and
 * a pre-release such as 1.1.0-beta comes before 1.1.0). Negative when a is older, 0 when equal,
 * positive when newer; null when either is not a version.
 */
export function compareAgentVersions(a: string, b: string): number | null {
  const x = parse(a);
  const y = parse(b);
  if (!x || !y) return null;
  for (let i = 0; i < 4; i++) if (x.parts[i] !== y.parts[i]) return x.parts[i]! - y.parts[i]!;
  return Number(y.preRelease) - Number(x.preRelease);
}

/**
 * An agent is outdated when it runs an older version than the current script, or when its version
 * is unknown (not reported, or not a version): nothing shows it is the current one.
 */
export function isAgentOutdated(version: string | null, current: string): boolean {
  if (version === null) return true;
  const c = compareAgentVersions(version, current);
  return c === null || c < 0;
}
