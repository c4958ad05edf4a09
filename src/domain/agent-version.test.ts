import { describe, expect, it } from 'vitest';
import { compareAgentVersions, isAgentOutdated, parseAgentVersion } from './agent-version.js';

describe('parseAgentVersion', () => {
  it('reads the version line of the script', () => {
    expect(parseAgentVersion("param()\r\n$ErrorActionPreference = 'Stop'\r\n$AgentVersion = '1.1.0'\r\n")).toBe('1.1.0');
    expect(parseAgentVersion("$AgentVersion='2.0.1-beta'\n")).toBe('2.0.1-beta');
  });
  it('ignores mentions that are not the assignment at the start of a line', () => {
    expect(parseAgentVersion("Write-Host $AgentVersion\n    $AgentVersion = '9.9.9'\n")).toBeNull();
    expect(parseAgentVersion("# $AgentVersion = '9.9.9' is set below\n$AgentVersion = '1.2.3'")).toBe('1.2.3');
    expect(parseAgentVersion('no version here')).toBeNull();
  });
});

describe('compareAgentVersions', () => {
  it.each([
    ['1.0.0', '1.1.0', -1],
    ['1.1.0', '1.1.0', 0],
    ['1.10.0', '1.9.0', 1],
    ['1.1', '1.1.0', 0],
    ['v1.1.0', '1.1.0', 0],
    ['2.0.0', '10.0.0', -1],
    ['1.1.0-beta', '1.1.0', -1],
    ['1.1.0', '1.1.0-beta', 1],
    ['1.1.0.1', '1.1.0', 1],
  ])('%s vs %s', (a, b, sign) => {
    expect(Math.sign(compareAgentVersions(a, b)!)).toBe(sign);
  });
  it('is null for text that is not a version', () => {
    expect(compareAgentVersions('test-1.0', '1.1.0')).toBeNull();
    expect(compareAgentVersions('1.1.0', '')).toBeNull();
    expect(compareAgentVersions('1.1.0; drop', '1.1.0')).toBeNull();
  });
});

describe('isAgentOutdated', () => {
  it('is outdated when older, unknown or not a version; current or newer is not', () => {
    expect(isAgentOutdated('1.0.0', '1.1.0')).toBe(true);
    expect(isAgentOutdated(null, '1.1.0')).toBe(true);
    expect(isAgentOutdated('test-1.0', '1.1.0')).toBe(true);
    expect(isAgentOutdated('1.1.0', '1.1.0')).toBe(false);
    expect(isAgentOutdated('1.2.0', '1.1.0')).toBe(false);
  });
});
