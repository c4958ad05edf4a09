/**
 * Where the functions of agent/Keywarden-Agent.ps1 are, and which TypeScript method of
 * test-agent.ts claims to follow each one (`// Keywarden-Agent.ps1 <Name> <first>-<last>`).
 * Used by script-map.test.ts; `node --import tsx test/agent/script-map.ts --fix` rewrites the
 * ranges in test-agent.ts after the script changed (then read the diff: a moved range is fine, a
 * changed function needs its TypeScript twin changed too).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SCRIPT_FILE = path.resolve(HERE, '../../agent/Keywarden-Agent.ps1');
export const AGENT_FILE = path.resolve(HERE, 'test-agent.ts');
/** The script's main block (not a function): test-agent.ts's run(). */
export const MAIN = '(main)';

/** Script functions the test agent does not model, and why (README.md has the same list). */
export const NOT_MODELLED: Record<string, string> = {
  'Initialize-AgentLog': 'log-file rotation at 1 MB: the test agent keeps its log in memory',
  'Get-ExceptionData': '.NET exception data: AgentStop carries its data as a field',
  'Get-ExceptionText': '.NET inner exceptions: JavaScript errors have one message',
  'Test-ExceptionIs': '.NET exception types',
  'Get-ResponseItems': 'PowerShell turns a JSON array of one into a scalar and $null into an item; JavaScript arrays need no unwrapping',
  'Resolve-InputPath': 'relative paths on the command line: the simulated file system has full paths only',
  'ConvertFrom-AgentJson': 'JavaScriptSerializer for agent.json: JSON.parse',
  'Get-SystemToolPath': 'System32 vs SysNative for a 32-bit host: the simulated machine has one manage-bde',
  'ConvertTo-ProcessArgument': 'quoting for a Windows command line: the simulated manage-bde gets an argument array',
  'Exit-AgentLock': 'closing the lock file: the simulated lock has nothing to close',
  'Get-TrustedOwnerSids': 'file ownership and ACLs are not simulated',
  'Test-TrustedOwner': 'file ownership and ACLs are not simulated',
  'Get-OwnerSid': 'file ownership and ACLs are not simulated',
  'Set-ProtectedAcl': 'file ownership and ACLs are not simulated',
  'Initialize-StateDirectory': 'file ownership, ACLs and junctions are not simulated',
  'Remove-StaleFiles': 'relaunch copies and old pinning helpers are not simulated',
  'New-RelaunchScript': 'the 32-bit relaunch is not simulated',
  'Get-ProxySettings': 'no proxy between the test agent and the server',
  'ConvertTo-PinList': 'TLS and certificate pinning are not simulated (the tests use plain http on 127.0.0.1)',
  'Get-PinHelperPath': 'TLS and certificate pinning are not simulated',
  'Initialize-PinHelper': 'TLS and certificate pinning are not simulated',
  'Initialize-Tls': 'TLS and certificate pinning are not simulated',
};

export type Range = { name: string; start: number; end: number };

/** Every top-level `function Name {` of the script with its line range (1-based, through the closing `}` at column 0). */
export function scriptFunctions(text: string): Range[] {
  const lines = text.split(/\r?\n/);
  const out: Range[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^function\s+([A-Za-z]+-[A-Za-z0-9]+)\s*\{\s*$/.exec(lines[i]!);
    if (!m) continue;
    let end = i + 1;
    while (end < lines.length && lines[end] !== '}') end++;
    if (end >= lines.length) throw new Error(`function ${m[1]} at line ${i + 1} has no closing brace at column 0`);
    out.push({ name: m[1]!, start: i + 1, end: end + 1 });
  }
  const main = mainBlock(lines);
  if (main) out.push(main);
  return out;
}

/** The main block: from the `try {` whose body runs Invoke-AgentRun to the final `exit $script:ExitCode`. */
function mainBlock(lines: string[]): Range | null {
  const start = lines.findIndex((l, i) => l === 'try {' && /^\s+\$null = Invoke-AgentRun\s*$/.test(lines[i + 1] ?? ''));
  let end = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/^exit \$script:ExitCode\s*$/.test(lines[i]!)) {
      end = i;
      break;
    }
  }
  return start >= 0 && end > start ? { name: MAIN, start: start + 1, end: end + 1 } : null;
}

export type Claim = { name: string; start: number; end: number; line: number; method: string | null };

/** The `// Keywarden-Agent.ps1 <Name> <a>-<b>` comments of test-agent.ts and the method each one precedes. */
export function agentClaims(text: string): Claim[] {
  const lines = text.split(/\r?\n/);
  const out: Claim[] = [];
  lines.forEach((l, i) => {
    const m = /^\s*\/\/ Keywarden-Agent\.ps1 (\S+) (\d+)-(\d+)\s*$/.exec(l);
    if (!m) return;
    let method: string | null = null;
    for (let j = i + 1; j < Math.min(lines.length, i + 12); j++) {
      const d = /^\s*(?:(?:private|protected|public)\s+)?(?:async\s+)?([a-zA-Z0-9_]+)\(/.exec(lines[j]!);
      if (d) {
        method = d[1]!;
        break;
      }
    }
    out.push({ name: m[1]!, start: Number(m[2]), end: Number(m[3]), line: i + 1, method });
  });
  return out;
}

/** Add-RecoveryPasswordProtector -> addRecoveryPasswordProtector; the main block -> run. */
export function camelCase(name: string): string {
  if (name === MAIN) return 'run';
  const joined = name.replace(/-/g, '');
  return joined.charAt(0).toLowerCase() + joined.slice(1);
}

/** test-agent.ts with every claimed range set to the script's current one. */
export function fixRanges(agentText: string, scriptText: string): string {
  const ranges = new Map(scriptFunctions(scriptText).map((r) => [r.name, r]));
  return agentText.replace(/^(\s*\/\/ Keywarden-Agent\.ps1 )(\S+) \d+-\d+(\s*)$/gm, (all, lead: string, name: string, tail: string) => {
    const r = ranges.get(name);
    return r ? `${lead}${name} ${r.start}-${r.end}${tail}` : all;
  });
}

if (process.argv.includes('--fix')) {
  const fixed = fixRanges(fs.readFileSync(AGENT_FILE, 'utf8'), fs.readFileSync(SCRIPT_FILE, 'utf8'));
  fs.writeFileSync(AGENT_FILE, fixed);
  console.log('ranges updated in', AGENT_FILE);
}
