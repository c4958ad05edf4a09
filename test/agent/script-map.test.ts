import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AGENT_FILE, MAIN, NOT_MODELLED, SCRIPT_FILE, agentClaims, camelCase, fixRanges, scriptFunctions } from './script-map.js';

/**
 * The test agent claims, method by method, to follow a function of agent/Keywarden-Agent.ps1
 * (`// Keywarden-Agent.ps1 <Name> <first>-<last>`). These checks keep that map from rotting: a
 * renamed, moved, added or removed script function fails here until test-agent.ts follows.
 */
describe('test/agent/test-agent.ts follows agent/Keywarden-Agent.ps1 function by function', () => {
  const script = fs.readFileSync(SCRIPT_FILE, 'utf8');
  const agent = fs.readFileSync(AGENT_FILE, 'utf8');
  const functions = scriptFunctions(script);
  const claims = agentClaims(agent);
  const byName = new Map(functions.map((f) => [f.name, f]));

  it('finds the script functions and the main block', () => {
    expect(functions.length).toBeGreaterThan(80);
    expect(byName.get(MAIN)).toBeDefined();
    expect(byName.get('Invoke-RotateJob')).toBeDefined();
  });

  it('every comment names a script function with its current line range', () => {
    const wrong = claims.flatMap((c) => {
      const f = byName.get(c.name);
      if (!f) return [`test-agent.ts:${c.line} names ${c.name}, which the script does not have`];
      if (f.start !== c.start || f.end !== c.end) return [`test-agent.ts:${c.line} says ${c.name} is at ${c.start}-${c.end}; the script has it at ${f.start}-${f.end}`];
      return [];
    });
    expect(wrong).toEqual([]);
  });

  it('each comment sits on the method of the same name in camelCase, and no function is claimed twice', () => {
    expect(claims.filter((c) => c.method !== camelCase(c.name)).map((c) => `${c.name} -> ${c.method}`)).toEqual([]);
    const names = claims.map((c) => c.name);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
  });

  it('every script function is modelled or listed as not modelled with a reason, and nothing is both', () => {
    const claimed = new Set(claims.map((c) => c.name));
    const unaccounted = functions.map((f) => f.name).filter((n) => !claimed.has(n) && !Object.hasOwn(NOT_MODELLED, n));
    expect(unaccounted).toEqual([]);
    expect(Object.keys(NOT_MODELLED).filter((n) => claimed.has(n) || !byName.has(n))).toEqual([]);
  });

  it('the range check can fail: a moved function is noticed and --fix repairs it', () => {
    const moved = agent.replace(/(\/\/ Keywarden-Agent\.ps1 Invoke-RotateJob )(\d+)-(\d+)/, (_m, lead: string, a: string, b: string) => `${lead}${Number(a) + 1}-${Number(b) + 1}`);
    const claim = agentClaims(moved).find((c) => c.name === 'Invoke-RotateJob')!;
    expect(claim.start).not.toBe(byName.get('Invoke-RotateJob')!.start);
    expect(fixRanges(moved, script)).toBe(fixRanges(agent, script));
  });
});
