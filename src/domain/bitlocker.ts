/**
 * BitLocker enums as the agent reports them: names (PowerShell 7, `-EnumsAsStrings`) or the
 * integers Windows PowerShell 5.1's ConvertTo-Json writes. Values from the BitLocker module and
 * the Win32_EncryptableVolume docs (see the domain reference, section 4.3).
 */

function mapper<T extends string>(names: readonly T[], extra: Record<string, T> = {}) {
  const byKey = new Map<string, T>();
  names.forEach((n, i) => {
    byKey.set(String(i), n);
    byKey.set(n.toLowerCase(), n);
  });
  for (const [k, v] of Object.entries(extra)) byKey.set(k.toLowerCase(), v);
  /** The canonical name, or null for a value we do not know (kept out of decisions, not an error). */
  return (v: unknown): T | null => {
    if (v === null || v === undefined) return null;
    if (typeof v !== 'string' && typeof v !== 'number') return null;
    return byKey.get(String(v).trim().toLowerCase().replace(/\s+/g, '')) ?? null;
  };
}

export const VOLUME_STATUS = [
  'FullyDecrypted',
  'FullyEncrypted',
  'EncryptionInProgress',
  'DecryptionInProgress',
  'EncryptionSuspended',
  'DecryptionSuspended',
  'FullyEncryptedWipeInProgress',
  'FullyEncryptedWipeSuspended',
] as const;
export type VolumeStatus = (typeof VOLUME_STATUS)[number];
export const parseVolumeStatus = mapper(VOLUME_STATUS);

export const PROTECTION_STATUS = ['Off', 'On', 'Unknown'] as const;
export type ProtectionStatus = (typeof PROTECTION_STATUS)[number];
export const parseProtectionStatus = mapper(PROTECTION_STATUS);

export const LOCK_STATUS = ['Unlocked', 'Locked'] as const;
export type LockStatus = (typeof LOCK_STATUS)[number];
export const parseLockStatus = mapper(LOCK_STATUS);

export const ENCRYPTION_METHOD = ['None', 'Aes128Diffuser', 'Aes256Diffuser', 'Aes128', 'Aes256', 'Hardware', 'XtsAes128', 'XtsAes256'] as const;
export type EncryptionMethod = (typeof ENCRYPTION_METHOD)[number];
export const parseEncryptionMethod = mapper(ENCRYPTION_METHOD);

export const KEY_PROTECTOR_TYPE = [
  'Unknown',
  'Tpm',
  'ExternalKey',
  'RecoveryPassword',
  'TpmPin',
  'TpmStartupKey',
  'TpmPinStartupKey',
  'PublicKey',
  'Password',
  'TpmNetworkKey',
  'AdAccountOrGroup',
] as const;
export type KeyProtectorType = (typeof KEY_PROTECTOR_TYPE)[number];
export const parseKeyProtectorType = mapper(KEY_PROTECTOR_TYPE, { numericalpassword: 'RecoveryPassword', numericpassword: 'RecoveryPassword' });

/**
 * PowerShell's VolumeType: OperatingSystem | Data. PS 5.1 writes the enum as 0 / 1 (the module
 * declares OperatingSystem first), which differs from Graph's 1/2/3: hence a mapper of its own.
 */
export const parsePsVolumeType = (v: unknown): 'os' | 'fixed' | 'unknown' => {
  const s = String(v ?? '')
    .trim()
    .toLowerCase();
  if (s === '0' || s === 'operatingsystem' || s === 'os') return 'os';
  if (s === '1' || s === 'data' || s === 'fixed') return 'fixed';
  return 'unknown';
};

/** BitLocker events the agent forwards, and what they mean to the server. */
export const BITLOCKER_EVENTS: Record<number, string> = {
  845: 'recovery information backed up to Entra ID',
  846: 'backup to Entra ID failed',
  847: 'backup to Entra ID failed (error)',
  784: 'recovery information backed up to Active Directory',
  785: 'backup to Active Directory failed',
  783: 'recovery information already in Active Directory',
  775: 'key protector created',
  776: 'key protector removed',
  773: 'protection suspended',
  774: 'protection resumed',
  24652: 'a recovery password was used to start Windows',
};
