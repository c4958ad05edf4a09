import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { evaluateDevice, evaluationSignature, protectionOffSinceOf, type DeviceFacts, type KeyFacts, type VolumeFacts } from './evaluate.js';
import { FINDING_CODES, FINDING_INFO, type FindingCode } from './findings.js';
import { BUILTIN_POLICY, applyOverrides, effectivePolicy, methodMeets, type Policy } from './policy.js';

const NOW = '2026-11-26T12:00:00.000Z';
const at = (hoursAgo: number) => new Date(Date.parse(NOW) - hoursAgo * 3_600_000).toISOString();
const KEY_C = '11111111-2222-4333-8444-555555555555';
const KEY_D = '66666666-7777-4888-9999-aaaaaaaaaaaa';

/** A device that meets the built-in policy: C: XTS-AES 128, TPM + escrowed recovery password. */
function osVolume(patch: Partial<VolumeFacts> = {}): VolumeFacts {
  return {
    id: 'vol-c',
    mountPoint: 'C:',
    type: 'os',
    volumeStatus: 'FullyEncrypted',
    protectionStatus: 'On',
    lockStatus: 'Unlocked',
    encryptionMethod: 'XtsAes128',
    protectors: [
      { id: 'tpm-1', type: 'Tpm' },
      { id: KEY_C, type: 'RecoveryPassword' },
    ],
    protectionOffSince: null,
    ...patch,
  };
}
function dataVolume(patch: Partial<VolumeFacts> = {}): VolumeFacts {
  return {
    id: 'vol-d',
    mountPoint: 'D:',
    type: 'fixed',
    volumeStatus: 'FullyEncrypted',
    protectionStatus: 'On',
    lockStatus: 'Unlocked',
    encryptionMethod: 'XtsAes128',
    protectors: [
      { id: 'ext-1', type: 'ExternalKey' },
      { id: KEY_D, type: 'RecoveryPassword' },
    ],
    protectionOffSince: null,
    ...patch,
  };
}
const key = (keyId: string, patch: Partial<KeyFacts> = {}): KeyFacts => ({
  id: `row-${keyId.slice(0, 4)}`,
  keyId,
  volumeId: keyId === KEY_C ? 'vol-c' : 'vol-d',
  state: 'active',
  createdAt: at(24 * 10),
  sources: ['agent'],
  ...patch,
});
function device(patch: Partial<DeviceFacts> = {}): DeviceFacts {
  return {
    lastSeenAt: at(1),
    lastCheckinAt: at(1),
    volumes: [osVolume()],
    keys: [key(KEY_C)],
    mismatchedProtectors: [],
    exemptions: [],
    ...patch,
  };
}
const policy = (p: Partial<Policy> = {}): Policy => ({ ...BUILTIN_POLICY, ...p });
const codes = (d: DeviceFacts, p: Policy = BUILTIN_POLICY, now = NOW) => evaluateDevice(d, p, now).findings.map((f) => f.code);
const statusOf = (d: DeviceFacts, p: Policy = BUILTIN_POLICY, now = NOW) => evaluateDevice(d, p, now).status;

describe('the baseline', () => {
  it('a device meeting the policy is compliant with no findings', () => {
    expect(evaluateDevice(device(), BUILTIN_POLICY, NOW)).toEqual({ status: 'compliant', findings: [], exemption: null });
  });
  it('a device no agent ever reported is unknown', () => {
    expect(statusOf(device({ lastCheckinAt: null, volumes: [] }))).toBe('unknown');
    // Volumes known from an import (no state) do not make it known either.
    expect(statusOf(device({ lastCheckinAt: null, volumes: [osVolume({ volumeStatus: null, protectionStatus: null })] }))).toBe('unknown');
  });
  it('every finding code has a title, an explanation and a fix', () => {
    for (const c of FINDING_CODES) {
      expect(FINDING_INFO[c].title.length).toBeGreaterThan(5);
      expect(FINDING_INFO[c].explanation.length).toBeGreaterThan(20);
      expect(FINDING_INFO[c].fix.length).toBeGreaterThan(10);
    }
  });
});

/**
 * For every code: the device states that raise it and the state that clears it. Each case starts
 * from the compliant baseline, so the code in question is the only finding.
 */
type Case = { why: string; d: DeviceFacts; p?: Policy; now?: string };
const TRIGGERS: Record<FindingCode, { raise: Case[]; clear: Case[] }> = {
  os_volume_unprotected: {
    raise: [
      {
        why: 'OS drive fully decrypted',
        d: device({ volumes: [osVolume({ volumeStatus: 'FullyDecrypted', protectionStatus: 'Off', encryptionMethod: 'None', protectors: [] })], keys: [] }),
      },
      { why: 'OS drive being decrypted', d: device({ volumes: [osVolume({ volumeStatus: 'DecryptionInProgress', protectionStatus: 'Off' })] }) },
      { why: 'OS drive decryption paused', d: device({ volumes: [osVolume({ volumeStatus: 'DecryptionSuspended', protectionStatus: 'Off' })] }) },
    ],
    clear: [
      { why: 'encrypted again', d: device() },
      {
        why: 'the policy does not require the OS drive',
        d: device({ volumes: [osVolume({ volumeStatus: 'FullyDecrypted', protectionStatus: 'Off', encryptionMethod: 'None', protectors: [] })], keys: [] }),
        p: policy({ protectOs: false }),
      },
    ],
  },
  data_volume_unprotected: {
    raise: [
      {
        why: 'fixed D: decrypted',
        d: device({ volumes: [osVolume(), dataVolume({ volumeStatus: 'FullyDecrypted', protectionStatus: 'Off', encryptionMethod: 'None', protectors: [] })] }),
      },
    ],
    clear: [
      { why: 'D: encrypted', d: device({ volumes: [osVolume(), dataVolume()], keys: [key(KEY_C), key(KEY_D)] }) },
      {
        why: 'fixed drives not required',
        d: device({ volumes: [osVolume(), dataVolume({ volumeStatus: 'FullyDecrypted', protectionStatus: 'Off', encryptionMethod: 'None', protectors: [] })] }),
        p: policy({ protectFixed: false }),
      },
    ],
  },
  removable_volume_unprotected: {
    raise: [
      {
        why: 'USB stick decrypted, policy requires removable',
        d: device({
          volumes: [
            osVolume(),
            dataVolume({
              id: 'vol-e',
              mountPoint: 'E:',
              type: 'removable',
              volumeStatus: 'FullyDecrypted',
              protectionStatus: 'Off',
              encryptionMethod: 'None',
              protectors: [],
            }),
          ],
        }),
        p: policy({ protectRemovable: true }),
      },
    ],
    clear: [
      {
        why: 'removable not required (the built-in default)',
        d: device({
          volumes: [
            osVolume(),
            dataVolume({
              id: 'vol-e',
              mountPoint: 'E:',
              type: 'removable',
              volumeStatus: 'FullyDecrypted',
              protectionStatus: 'Off',
              encryptionMethod: 'None',
              protectors: [],
            }),
          ],
        }),
      },
    ],
  },
  encryption_in_progress: {
    raise: [
      { why: 'encrypting', d: device({ volumes: [osVolume({ volumeStatus: 'EncryptionInProgress', protectionStatus: 'Off' })] }) },
      { why: 'encryption paused', d: device({ volumes: [osVolume({ volumeStatus: 'EncryptionSuspended', protectionStatus: 'Off' })] }) },
    ],
    clear: [{ why: 'fully encrypted and on', d: device() }],
  },
  encryption_method_mismatch: {
    raise: [
      { why: 'AES-CBC 128 under an XTS-AES 128 minimum', d: device({ volumes: [osVolume({ encryptionMethod: 'Aes128' })] }) },
      { why: 'XTS-AES 128 under an XTS-AES 256 minimum', d: device(), p: policy({ minMethodOs: 'xts_aes_256' }) },
      {
        why: 'hardware encryption under any minimum',
        d: device({ volumes: [osVolume({ encryptionMethod: 'Hardware' })] }),
        p: policy({ minMethodOs: 'aes_cbc_128' }),
      },
    ],
    clear: [
      { why: 'XTS-AES 256 meets XTS-AES 128', d: device({ volumes: [osVolume({ encryptionMethod: 'XtsAes256' })] }) },
      { why: 'minimum lowered to AES-CBC 128', d: device({ volumes: [osVolume({ encryptionMethod: 'Aes128' })] }), p: policy({ minMethodOs: 'aes_cbc_128' }) },
      { why: '"any" accepts hardware', d: device({ volumes: [osVolume({ encryptionMethod: 'Hardware' })] }), p: policy({ minMethodOs: 'any' }) },
    ],
  },
  tpm_required: {
    raise: [
      {
        why: 'OS drive with only a password protector',
        d: device({
          volumes: [
            osVolume({
              protectors: [
                { id: 'pw', type: 'Password' },
                { id: KEY_C, type: 'RecoveryPassword' },
              ],
            }),
          ],
        }),
      },
    ],
    clear: [
      { why: 'TPM protector present', d: device() },
      {
        why: 'TPM+PIN counts as TPM',
        d: device({
          volumes: [
            osVolume({
              protectors: [
                { id: 'tp', type: 'TpmPin' },
                { id: KEY_C, type: 'RecoveryPassword' },
              ],
            }),
          ],
        }),
      },
      {
        why: 'policy does not require a TPM',
        d: device({ volumes: [osVolume({ protectors: [{ id: KEY_C, type: 'RecoveryPassword' }] })] }),
        p: policy({ osProtector: 'any' }),
      },
    ],
  },
  tpm_pin_required: {
    raise: [{ why: 'TPM alone where TPM+PIN is required', d: device(), p: policy({ osProtector: 'tpm_pin' }) }],
    clear: [
      {
        why: 'TPM+PIN protector added',
        d: device({
          volumes: [
            osVolume({
              protectors: [
                { id: 'tp', type: 'TpmPin' },
                { id: KEY_C, type: 'RecoveryPassword' },
              ],
            }),
          ],
        }),
        p: policy({ osProtector: 'tpm_pin' }),
      },
      {
        why: 'TPM+PIN+startup key also has a PIN',
        d: device({
          volumes: [
            osVolume({
              protectors: [
                { id: 'tp', type: 'TpmPinStartupKey' },
                { id: KEY_C, type: 'RecoveryPassword' },
              ],
            }),
          ],
        }),
        p: policy({ osProtector: 'tpm_pin' }),
      },
    ],
  },
  protection_suspended: {
    raise: [
      { why: 'suspended 25 hours with a 24-hour grace', d: device({ volumes: [osVolume({ protectionStatus: 'Off', protectionOffSince: at(25) })] }) },
      {
        why: 'suspended with no grace at all',
        d: device({ volumes: [osVolume({ protectionStatus: 'Off', protectionOffSince: at(0.1) })] }),
        p: policy({ suspendedGraceHours: 0 }),
      },
      { why: 'suspended since an unknown time', d: device({ volumes: [osVolume({ protectionStatus: 'Off', protectionOffSince: null })] }) },
    ],
    clear: [
      {
        why: 'suspended a few minutes for an update (within grace)',
        d: device({ volumes: [osVolume({ protectionStatus: 'Off', protectionOffSince: at(0.1) })] }),
      },
      { why: 'suspended exactly the grace period', d: device({ volumes: [osVolume({ protectionStatus: 'Off', protectionOffSince: at(24) })] }) },
      { why: 'resumed', d: device() },
    ],
  },
  waiting_for_activation: {
    raise: [
      {
        why: 'encrypted, protection off, no protectors (clear key)',
        d: device({ volumes: [osVolume({ protectionStatus: 'Off', protectors: [], protectionOffSince: at(0.1) })], keys: [] }),
      },
    ],
    clear: [{ why: 'protectors added and protection on', d: device() }],
  },
  recovery_password_missing: {
    raise: [
      { why: 'OS drive with TPM only', d: device({ volumes: [osVolume({ protectors: [{ id: 'tpm-1', type: 'Tpm' }] })], keys: [] }) },
      {
        why: 'an encrypted removable drive without one, even when not required',
        d: device({ volumes: [osVolume(), dataVolume({ id: 'vol-e', mountPoint: 'E:', type: 'removable', protectors: [{ id: 'pw', type: 'Password' }] })] }),
      },
    ],
    clear: [
      { why: 'recovery password added and escrowed', d: device() },
      {
        why: 'policy does not require one',
        d: device({ volumes: [osVolume({ protectors: [{ id: 'tpm-1', type: 'Tpm' }] })], keys: [] }),
        p: policy({ requireRecoveryPassword: false }),
      },
    ],
  },
  recovery_key_not_escrowed: {
    raise: [{ why: 'the device has a password the vault does not', d: device({ keys: [] }) }],
    clear: [
      { why: 'uploaded by the agent', d: device() },
      { why: 'imported from a file (any source counts)', d: device({ keys: [key(KEY_C, { sources: ['import'] })] }) },
    ],
  },
  escrowed_key_mismatch: {
    raise: [
      { why: 'the agent saw a different password under the same key ID', d: device({ mismatchedProtectors: [{ volumeId: 'vol-c', protectorId: KEY_C }] }) },
    ],
    clear: [{ why: 'the agent uploaded the current password (finding resolved)', d: device({ mismatchedProtectors: [] }) }],
  },
  key_conflict: {
    raise: [{ why: 'two sources disagree about the password', d: device({ keys: [key(KEY_C, { state: 'conflict' })] }) }],
    clear: [{ why: 'superseded after rotation', d: device({ keys: [key(KEY_C, { state: 'superseded', id: 'old' }), key(KEY_C, { id: 'new' })] }) }],
  },
  not_in_directory: {
    raise: [
      { why: 'Entra required, only the agent has it', d: device(), p: policy({ requireDirectoryEscrow: 'entra' }) },
      {
        why: 'AD required, only Entra has it',
        d: device({ keys: [key(KEY_C, { sources: ['agent', 'entra'] })] }),
        p: policy({ requireDirectoryEscrow: 'ad' }),
      },
    ],
    clear: [
      { why: 'the Entra sync found it', d: device({ keys: [key(KEY_C, { sources: ['agent', 'entra'] })] }), p: policy({ requireDirectoryEscrow: 'entra' }) },
      { why: 'either directory will do', d: device({ keys: [key(KEY_C, { sources: ['ad'] })] }), p: policy({ requireDirectoryEscrow: 'ad_or_entra' }) },
      { why: 'not required', d: device() },
    ],
  },
  key_rotation_due: {
    raise: [
      { why: 'older than the maximum age', d: device({ keys: [key(KEY_C, { createdAt: at(24 * 91) })] }), p: policy({ maxKeyAgeDays: 90 }) },
      { why: 'revealed and not rotated', d: device({ keys: [key(KEY_C, { state: 'disclosed' })] }) },
    ],
    clear: [
      { why: 'younger than the maximum', d: device({ keys: [key(KEY_C, { createdAt: at(24 * 89) })] }), p: policy({ maxKeyAgeDays: 90 }) },
      { why: 'no maximum', d: device({ keys: [key(KEY_C, { createdAt: at(24 * 2000) })] }) },
      {
        why: 'rotated: the old key is no longer on the device',
        d: device({ keys: [key(KEY_C, { id: 'new' }), key('99999999-2222-4333-8444-555555555555', { state: 'rotated' })] }),
      },
    ],
  },
  stale: {
    raise: [{ why: 'not seen for 31 days', d: device({ lastSeenAt: at(24 * 31), lastCheckinAt: at(24 * 31) }) }],
    clear: [
      { why: 'seen 29 days ago', d: device({ lastSeenAt: at(24 * 29), lastCheckinAt: at(24 * 29) }) },
      { why: 'a longer allowance', d: device({ lastSeenAt: at(24 * 31), lastCheckinAt: at(24 * 31) }), p: policy({ staleAfterDays: 60 }) },
    ],
  },
};

describe('every finding code: what raises it and what clears it', () => {
  for (const code of FINDING_CODES) {
    describe(code, () => {
      const { raise, clear } = TRIGGERS[code];
      it('has cases', () => {
        expect(raise.length).toBeGreaterThan(0);
        expect(clear.length).toBeGreaterThan(0);
      });
      for (const c of raise) {
        it(`raised: ${c.why}`, () => {
          const e = evaluateDevice(c.d, c.p ?? BUILTIN_POLICY, c.now ?? NOW);
          expect(e.findings.map((f) => f.code)).toContain(code);
          expect(e.status).toBe('non-compliant');
          const f = e.findings.find((x) => x.code === code)!;
          expect(f.detail.length).toBeGreaterThan(10);
          expect(f.detail).not.toMatch(/\d{6}-\d{6}/);
        });
      }
      for (const c of clear) {
        it(`cleared: ${c.why}`, () => expect(codes(c.d, c.p ?? BUILTIN_POLICY, c.now ?? NOW)).not.toContain(code));
      }
    });
  }
});

describe('exact findings for the interesting states', () => {
  it('suspended for a few minutes during an update: nothing; after the grace: one finding on C:', () => {
    const suspendedAt = '2026-11-26T11:55:00.000Z';
    const d = device({ volumes: [osVolume({ protectionStatus: 'Off', protectionOffSince: suspendedAt })] });
    expect(evaluateDevice(d, BUILTIN_POLICY, '2026-11-26T12:00:00.000Z')).toEqual({ status: 'compliant', findings: [], exemption: null });
    expect(evaluateDevice(d, BUILTIN_POLICY, '2026-11-27T11:55:00.000Z').status).toBe('compliant');
    const late = evaluateDevice(d, BUILTIN_POLICY, '2026-11-27T11:55:00.001Z');
    expect(late.status).toBe('non-compliant');
    expect(late.findings).toEqual([
      { code: 'protection_suspended', volumeId: 'vol-c', mountPoint: 'C:', protectorId: null, detail: expect.stringContaining('since 2026-11-26 11:55 UTC') },
    ]);
  });
  it('a clear-key drive is waiting for activation, not "suspended", and gets no protector findings', () => {
    expect(codes(device({ volumes: [osVolume({ protectionStatus: 'Off', protectors: [], protectionOffSince: at(100) })], keys: [] }))).toEqual([
      'waiting_for_activation',
    ]);
  });
  it('a decrypted OS drive gives only os_volume_unprotected (no protector or escrow noise)', () => {
    expect(
      codes(device({ volumes: [osVolume({ volumeStatus: 'FullyDecrypted', protectionStatus: 'Off', encryptionMethod: 'None', protectors: [] })], keys: [] })),
    ).toEqual(['os_volume_unprotected']);
  });
  it('an unescrowed password names its key ID in braces and the drive', () => {
    const f = evaluateDevice(device({ keys: [] }), BUILTIN_POLICY, NOW).findings;
    expect(f).toEqual([
      {
        code: 'recovery_key_not_escrowed',
        volumeId: 'vol-c',
        mountPoint: 'C:',
        protectorId: KEY_C,
        detail: `Recovery password {${KEY_C.toUpperCase()}} on C: is not in Keywarden.`,
      },
    ]);
  });
  it('a locked data drive is not judged (its state is hidden) and does not fail the device', () => {
    expect(
      statusOf(
        device({
          volumes: [osVolume(), dataVolume({ lockStatus: 'Locked', volumeStatus: null, protectionStatus: null, encryptionMethod: null, protectors: [] })],
        }),
      ),
    ).toBe('compliant');
  });
  it('a volume of unknown type is held to the fixed-drive rules', () => {
    expect(
      codes(device({ volumes: [osVolume(), dataVolume({ type: 'unknown', volumeStatus: 'FullyDecrypted', protectionStatus: 'Off', protectors: [] })] })),
    ).toEqual(['data_volume_unprotected']);
  });
  it('findings of a device known only from a sync: key findings and stale, status unknown', () => {
    const d = device({ lastCheckinAt: null, volumes: [], lastSeenAt: at(24 * 40), keys: [key(KEY_C, { state: 'conflict' })] });
    const e = evaluateDevice(d, policy({ requireDirectoryEscrow: 'entra' }), NOW);
    expect(e.status).toBe('unknown');
    expect(e.findings.map((f) => f.code)).toEqual(['key_conflict', 'not_in_directory', 'stale']);
  });
});

describe('exemptions', () => {
  const broken = device({ keys: [] });
  it('an exemption in force makes the status exempt and keeps the findings visible', () => {
    const e = evaluateDevice({ ...broken, exemptions: [{ id: 'x', reason: 'lab machine', expiresAt: at(-24) }] }, BUILTIN_POLICY, NOW);
    expect(e.status).toBe('exempt');
    expect(e.exemption).toEqual({ id: 'x', reason: 'lab machine', expiresAt: at(-24) });
    expect(e.findings.map((f) => f.code)).toEqual(['recovery_key_not_escrowed']);
  });
  it('an exemption without an expiry holds until revoked', () => {
    expect(statusOf({ ...broken, exemptions: [{ id: 'x', reason: 'kiosk', expiresAt: null }] }, BUILTIN_POLICY, '2099-01-01T00:00:00.000Z')).toBe('exempt');
  });
  it('an exemption expiring: exempt before, non-compliant at and after the expiry', () => {
    const d = { ...broken, exemptions: [{ id: 'x', reason: 'waiting for a new disk', expiresAt: '2026-11-30T00:00:00.000Z' }] };
    expect(statusOf(d, BUILTIN_POLICY, '2026-11-29T23:59:59.999Z')).toBe('exempt');
    expect(statusOf(d, BUILTIN_POLICY, '2026-11-30T00:00:00.000Z')).toBe('non-compliant');
  });
  it('an exempt device with no findings is still exempt; an unknown one too', () => {
    expect(statusOf(device({ exemptions: [{ id: 'x', reason: 'r', expiresAt: null }] }))).toBe('exempt');
    expect(statusOf(device({ lastCheckinAt: null, volumes: [], exemptions: [{ id: 'x', reason: 'r', expiresAt: null }] }))).toBe('exempt');
  });
});

describe('policies', () => {
  it('a client inherits the MSP default and overrides field by field', () => {
    const { policy: p, sources } = effectivePolicy({ staleAfterDays: 14, osProtector: 'tpm_pin' }, { osProtector: 'tpm' });
    expect(p).toEqual({ ...BUILTIN_POLICY, staleAfterDays: 14, osProtector: 'tpm' });
    expect(sources.staleAfterDays).toBe('default');
    expect(sources.osProtector).toBe('client');
    expect(sources.protectOs).toBe('builtin');
  });
  it('applyOverrides sets, keeps and removes fields, and refuses nonsense', () => {
    expect(applyOverrides({ staleAfterDays: 14 }, { maxKeyAgeDays: 90 })).toEqual({ staleAfterDays: 14, maxKeyAgeDays: 90 });
    expect(applyOverrides({ staleAfterDays: 14, maxKeyAgeDays: 90 }, {}, ['staleAfterDays'])).toEqual({ maxKeyAgeDays: 90 });
    expect(() => applyOverrides({}, { staleAfterDays: 0 })).toThrow();
    expect(() => applyOverrides({}, { colour: 'blue' })).toThrow();
  });
  it('encryption methods rank XTS above CBC and hardware below everything', () => {
    expect(methodMeets('XtsAes128', 'aes_cbc_256')).toBe(true);
    expect(methodMeets('Aes256', 'xts_aes_128')).toBe(false);
    expect(methodMeets('Aes256Diffuser', 'aes_cbc_256')).toBe(true);
    expect(methodMeets('Hardware', 'aes_cbc_128')).toBe(false);
    expect(methodMeets('Hardware', 'any')).toBe(true);
    expect(methodMeets('None', 'any')).toBe(false);
  });
});

describe('properties', () => {
  const volumeArb = fc.record({
    id: fc.constantFrom('v1', 'v2', 'v3'),
    mountPoint: fc.constantFrom('C:', 'D:', 'E:', null),
    type: fc.constantFrom('os', 'fixed', 'removable', 'unknown' as const),
    volumeStatus: fc.constantFrom(
      'FullyDecrypted',
      'FullyEncrypted',
      'EncryptionInProgress',
      'DecryptionInProgress',
      'EncryptionSuspended',
      'DecryptionSuspended',
      null,
    ),
    protectionStatus: fc.constantFrom('On', 'Off', 'Unknown', null),
    lockStatus: fc.constantFrom('Unlocked', 'Locked', null),
    encryptionMethod: fc.constantFrom('None', 'Aes128', 'Aes256', 'XtsAes128', 'XtsAes256', 'Hardware', null),
    protectors: fc.array(
      fc.record({ id: fc.constantFrom(KEY_C, KEY_D, 'x'), type: fc.constantFrom('Tpm', 'TpmPin', 'RecoveryPassword', 'ExternalKey', null) }),
      { maxLength: 4 },
    ),
    protectionOffSince: fc.option(fc.integer({ min: 0, max: 24 * 60 }).map((h) => at(h))),
  }) as fc.Arbitrary<VolumeFacts>;
  const deviceArb = fc.record({
    lastSeenAt: fc.integer({ min: 0, max: 24 * 90 }).map((h) => at(h)),
    lastCheckinAt: fc.option(fc.integer({ min: 0, max: 24 * 90 }).map((h) => at(h))),
    volumes: fc.array(volumeArb, { maxLength: 3 }),
    keys: fc.array(
      fc.record({
        id: fc.uuid(),
        keyId: fc.constantFrom(KEY_C, KEY_D, null),
        volumeId: fc.constantFrom('v1', 'v2', null),
        state: fc.constantFrom('active', 'superseded', 'disclosed', 'rotated', 'conflict'),
        createdAt: fc.integer({ min: 0, max: 24 * 400 }).map((h) => at(h)),
        sources: fc.subarray(['agent', 'entra', 'ad', 'import']),
      }),
      { maxLength: 3 },
    ),
    mismatchedProtectors: fc.constant([]),
    exemptions: fc.array(fc.record({ id: fc.uuid(), reason: fc.constant('r'), expiresAt: fc.option(fc.integer({ min: -100, max: 100 }).map((h) => at(h))) }), {
      maxLength: 1,
    }),
  }) as fc.Arbitrary<DeviceFacts>;
  const policyArb = fc.record({
    protectOs: fc.boolean(),
    protectFixed: fc.boolean(),
    protectRemovable: fc.boolean(),
    minMethodOs: fc.constantFrom('any', 'aes_cbc_128', 'xts_aes_256' as const),
    minMethodFixed: fc.constantFrom('any', 'xts_aes_128' as const),
    minMethodRemovable: fc.constantFrom('any', 'aes_cbc_128' as const),
    osProtector: fc.constantFrom('any', 'tpm', 'tpm_pin' as const),
    suspendedGraceHours: fc.integer({ min: 0, max: 72 }),
    requireRecoveryPassword: fc.boolean(),
    requireDirectoryEscrow: fc.constantFrom('none', 'ad', 'entra', 'ad_or_entra' as const),
    maxKeyAgeDays: fc.option(fc.integer({ min: 1, max: 365 })),
    staleAfterDays: fc.integer({ min: 1, max: 60 }),
  }) as fc.Arbitrary<Policy>;

  it('the status follows from the findings, and is deterministic', () => {
    fc.assert(
      fc.property(deviceArb, policyArb, (d, p) => {
        const e = evaluateDevice(d, p, NOW);
        expect(evaluateDevice(d, p, NOW)).toEqual(e);
        if (e.status === 'compliant') expect(e.findings).toEqual([]);
        if (e.status === 'non-compliant') expect(e.findings.length).toBeGreaterThan(0);
        if (e.status === 'exempt') expect(e.exemption).not.toBeNull();
        for (const f of e.findings) expect(FINDING_CODES).toContain(f.code);
        // No duplicate finding for the same code, volume and key.
        const sigs = e.findings.map((f) => `${f.code}|${f.volumeId}|${f.protectorId}`);
        expect(new Set(sigs).size).toBe(sigs.length);
      }),
      { numRuns: 500 },
    );
  });
  it('a more lenient grace never adds a finding; a more lenient stale allowance never adds "stale"', () => {
    fc.assert(
      fc.property(deviceArb, policyArb, fc.integer({ min: 0, max: 48 }), (d, p, extra) => {
        const strict = codes(d, p);
        const lenient = codes(d, { ...p, suspendedGraceHours: p.suspendedGraceHours + extra, staleAfterDays: p.staleAfterDays + extra });
        for (const c of lenient) expect(strict).toContain(c);
      }),
      { numRuns: 300 },
    );
  });
  it('the signature changes exactly when status or findings change', () => {
    fc.assert(
      fc.property(deviceArb, deviceArb, policyArb, (a, b, p) => {
        const ea = evaluateDevice(a, p, NOW);
        const eb = evaluateDevice(b, p, NOW);
        const same =
          ea.status === eb.status &&
          JSON.stringify(ea.findings.map((f) => [f.code, f.volumeId, f.protectorId])) ===
            JSON.stringify(eb.findings.map((f) => [f.code, f.volumeId, f.protectorId]));
        expect(evaluationSignature(ea) === evaluationSignature(eb)).toBe(same);
      }),
      { numRuns: 300 },
    );
  });
});

describe('a device first seen with protection suspended (docs/compliance.md: unknown start = at once)', () => {
  const history = (...rows: [number, 'On' | 'Off' | null][]) => rows.map(([h, p]) => ({ recordedAt: at(h), protectionStatus: p }));

  it('the start of "off" is unknown when no earlier report shows protection on', () => {
    expect(protectionOffSinceOf(history([0.1, 'Off']))).toBeNull();
    expect(protectionOffSinceOf(history([0.1, 'Off'], [2, 'Off']))).toBeNull();
    expect(protectionOffSinceOf([])).toBeNull();
  });

  it('the start is the first "Off" after protection was last seen on', () => {
    expect(protectionOffSinceOf(history([0.1, 'Off'], [2, 'Off'], [5, 'On'], [9, 'Off']))).toBe(at(2));
    expect(protectionOffSinceOf(history([1, 'On'], [2, 'Off']))).toBeNull();
  });

  it('is protection_suspended at once, not compliant for the grace period', () => {
    const since = protectionOffSinceOf(history([0.1, 'Off']));
    const e = evaluateDevice(device({ volumes: [osVolume({ protectionStatus: 'Off', protectionOffSince: since })] }), BUILTIN_POLICY, NOW);
    expect(e.status).toBe('non-compliant');
    expect(e.findings.map((f) => f.code)).toEqual(['protection_suspended']);
  });

  it('suspended a few minutes after being seen on: still within the grace', () => {
    const since = protectionOffSinceOf(history([0.1, 'Off'], [3, 'On']));
    expect(evaluateDevice(device({ volumes: [osVolume({ protectionStatus: 'Off', protectionOffSince: since })] }), BUILTIN_POLICY, NOW).status).toBe(
      'compliant',
    );
  });
});
