import { describe, expect, it } from 'vitest';
import { VOLUME_STATUS } from './bitlocker.js';
import { deviceEncryption, isCurrentKey, isDeviceEscrowed, isVolumeEncrypted, keysEscrowing, volumeEncryption } from './device-status.js';

describe('volume and device encryption', () => {
  it('counts a volume as encrypted when its data is encrypted or being encrypted', () => {
    const encrypted = VOLUME_STATUS.filter((s) => isVolumeEncrypted(s));
    expect(encrypted).toEqual(['FullyEncrypted', 'EncryptionInProgress', 'EncryptionSuspended', 'FullyEncryptedWipeInProgress', 'FullyEncryptedWipeSuspended']);
    expect(volumeEncryption('FullyDecrypted')).toBe('not-encrypted');
    expect(volumeEncryption('DecryptionInProgress')).toBe('not-encrypted');
    expect(volumeEncryption('DecryptionSuspended')).toBe('not-encrypted');
    expect(volumeEncryption(null)).toBe('unknown');
  });

  it('calls a device not encrypted when one volume is not, encrypted when one is, unknown otherwise', () => {
    expect(deviceEncryption([])).toBe('unknown');
    expect(deviceEncryption([null, null])).toBe('unknown');
    expect(deviceEncryption([null, 'FullyEncrypted'])).toBe('encrypted');
    expect(deviceEncryption(['FullyEncrypted', 'DecryptionInProgress'])).toBe('not-encrypted');
    expect(deviceEncryption(['FullyDecrypted', null])).toBe('not-encrypted');
  });
});

describe('key escrow', () => {
  it('knows which key states are still the current protector', () => {
    expect(['active', 'disclosed', 'conflict', 'superseded', 'rotated', 'destroyed'].filter(isCurrentKey)).toEqual(['active', 'disclosed', 'conflict']);
  });

  it('calls a device escrowed with a current key and no open escrow finding', () => {
    expect(isDeviceEscrowed({ keyStates: ['active'], openFindings: 0 })).toBe(true);
    expect(isDeviceEscrowed({ keyStates: ['superseded', 'disclosed'], openFindings: 0 })).toBe(true);
    expect(isDeviceEscrowed({ keyStates: ['active'], openFindings: 1 })).toBe(false);
    expect(isDeviceEscrowed({ keyStates: ['rotated', 'destroyed'], openFindings: 0 })).toBe(false);
    expect(isDeviceEscrowed({ keyStates: [], openFindings: 0 })).toBe(false);
  });

  it('finds the vault keys that escrow a protector by key ID', () => {
    const keys = [{ keyId: 'a' }, { keyId: null }, { keyId: 'b' }, { keyId: 'a' }];
    expect(keysEscrowing('a', keys, (k) => k.keyId)).toHaveLength(2);
    expect(keysEscrowing('c', keys, (k) => k.keyId)).toEqual([]);
  });
});
