import { describe, expect, it } from 'vitest';
import { MAX_PRIMARY_USER_LENGTH, parsePrimaryUser } from './primary-user.js';

describe('parsePrimaryUser', () => {
  it.each([
    ['ann@contoso.example', 'ann@contoso.example'],
    ['  Ann.Lee@Contoso.onmicrosoft.com ', 'Ann.Lee@Contoso.onmicrosoft.com'],
    ["o'brien+it@contoso.example", "o'brien+it@contoso.example"],
    // A person whose name merely starts like a placeholder is still a person.
    ['foouser2@contoso.example', 'foouser2@contoso.example'],
    ['packager@contoso.example', 'packager@contoso.example'],
  ])('accepts %j', (input, value) => {
    expect(parsePrimaryUser(input)).toEqual({ ok: true, value });
  });

  it.each([
    ['', 'empty'],
    ['   ', 'empty'],
    ['CONTOSO\\ann', 'not a user principal name'],
    ['ann', 'not a user principal name'],
    ['ann@', 'not a user principal name'],
    ['@contoso.example', 'not a user principal name'],
    ['ann@b@contoso.example', 'not a user principal name'],
    ['ann lee@contoso.example', 'whitespace'],
    ['ann@contoso.example\u0000', 'control characters'],
    ['ann\u001b[31m@contoso.example', 'control characters'],
    ['fooUser@contoso.example', 'placeholder'],
    ['FOOUSER@contoso.onmicrosoft.com', 'placeholder'],
    ['package_0b3c5a2e-1f4d-4c1b-9a57-3c2f1e0d9b8a@contoso.onmicrosoft.com', 'placeholder'],
    [`${'a'.repeat(MAX_PRIMARY_USER_LENGTH)}@contoso.example`, 'at most 256'],
  ])('refuses %j', (input, reason) => {
    const r = parsePrimaryUser(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  it('accepts exactly the longest allowed value and quotes at most 40 characters in a reason', () => {
    const longest = `${'a'.repeat(MAX_PRIMARY_USER_LENGTH - 'x@contoso.example'.length + 1)}@contoso.example`;
    expect(longest.length).toBe(MAX_PRIMARY_USER_LENGTH);
    expect(parsePrimaryUser(longest).ok).toBe(true);
    const r = parsePrimaryUser(`${'b'.repeat(100)} c@contoso.example`);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).not.toContain('b'.repeat(41));
  });
});
