import { z } from 'zod';
import type { EncryptionMethod } from '../bitlocker.js';

/**
 * A compliance policy: what every device of a client must look like. The MSP sets a default;
 * each client inherits it and may override any single field (field by field, not all or nothing).
 */

/**
 * Minimum encryption strength, weakest to strongest. XTS (Windows 10 1511+) ranks above every
 * AES-CBC variant: CBC without the diffuser is malleable, which is why Microsoft made XTS-AES the
 * default. Hardware (self-encrypting drives, eDrive) ranks below everything: Windows stopped
 * trusting drive firmware by default in 2019 after published flaws, so any minimum rejects it.
 */
export const METHOD_LEVELS = ['any', 'aes_cbc_128', 'aes_cbc_256', 'xts_aes_128', 'xts_aes_256'] as const;
export type MethodLevel = (typeof METHOD_LEVELS)[number];

const METHOD_RANK: Record<EncryptionMethod, number> = {
  None: -1,
  Hardware: 0,
  Aes128Diffuser: 1,
  Aes128: 1,
  Aes256Diffuser: 2,
  Aes256: 2,
  XtsAes128: 3,
  XtsAes256: 4,
};
const LEVEL_RANK: Record<MethodLevel, number> = { any: 0, aes_cbc_128: 1, aes_cbc_256: 2, xts_aes_128: 3, xts_aes_256: 4 };

/** Does a volume's method meet the minimum? 'any' accepts every method that encrypts (hardware too). */
export function methodMeets(method: EncryptionMethod, min: MethodLevel): boolean {
  if (min === 'any') return method !== 'None';
  return METHOD_RANK[method] >= LEVEL_RANK[min];
}

export const METHOD_WORDS: Record<EncryptionMethod | MethodLevel, string> = {
  None: 'none',
  Hardware: 'hardware (drive firmware)',
  Aes128Diffuser: 'AES-CBC 128 with diffuser',
  Aes256Diffuser: 'AES-CBC 256 with diffuser',
  Aes128: 'AES-CBC 128',
  Aes256: 'AES-CBC 256',
  XtsAes128: 'XTS-AES 128',
  XtsAes256: 'XTS-AES 256',
  any: 'any',
  aes_cbc_128: 'AES-CBC 128',
  aes_cbc_256: 'AES-CBC 256',
  xts_aes_128: 'XTS-AES 128',
  xts_aes_256: 'XTS-AES 256',
};

/** Required OS-volume protectors: 'tpm' = any TPM-based protector; 'tpm_pin' = TPM plus a PIN at startup. */
export const OS_PROTECTORS = ['any', 'tpm', 'tpm_pin'] as const;
export type OsProtector = (typeof OS_PROTECTORS)[number];

/** Where, besides Keywarden, a recovery password must also be escrowed. */
export const DIRECTORY_ESCROW = ['none', 'ad', 'entra', 'ad_or_entra'] as const;
export type DirectoryEscrow = (typeof DIRECTORY_ESCROW)[number];

/** The method an enable-encryption job asks for; 'default' lets Windows choose (XTS-AES 128 since 1511). */
export const ENFORCED_METHODS = ['default', 'XtsAes128', 'XtsAes256', 'Aes128', 'Aes256'] as const;
export type EnforcedMethod = (typeof ENFORCED_METHODS)[number];

export const policySchema = z.strictObject({
  /** The operating-system volume must be protected. */
  protectOs: z.boolean(),
  /** Fixed data volumes (and volumes whose type the agent could not tell) must be protected. */
  protectFixed: z.boolean(),
  /** Removable data volumes must be protected. */
  protectRemovable: z.boolean(),
  minMethodOs: z.enum(METHOD_LEVELS),
  minMethodFixed: z.enum(METHOD_LEVELS),
  minMethodRemovable: z.enum(METHOD_LEVELS),
  osProtector: z.enum(OS_PROTECTORS),
  /** Protection may be suspended this long (Windows updates suspend it for a reboot) before it counts. */
  suspendedGraceHours: z
    .number()
    .int()
    .min(0)
    .max(24 * 30),
  /** Every encrypted volume needs a recovery password, escrowed in Keywarden. */
  requireRecoveryPassword: z.boolean(),
  /** And also escrowed in AD or Entra ID (seen there by a sync). */
  requireDirectoryEscrow: z.enum(DIRECTORY_ESCROW),
  /** Rotate a recovery password older than this many days; null: no maximum age. */
  maxKeyAgeDays: z.number().int().min(1).max(3650).nullable(),
  /** A device not seen (agent check-in or a sync) for this many days is stale. */
  staleAfterDays: z.number().int().min(1).max(3650),
  /**
   * Act on escrow findings through the agent: add a recovery password where a drive has none,
   * upload again one the vault does not hold.
   */
  enforceEscrow: z.boolean(),
  /** Act on encryption findings through the agent: encrypt unencrypted OS and fixed drives, resume suspended protection. */
  enforceEncryption: z.boolean(),
  /** Act on recovery passwords older than maxKeyAgeDays through the agent: rotate them. */
  enforceKeyAge: z.boolean(),
  /** The method the agent encrypts with when it enforces encryption. */
  encryptionMethod: z.enum(ENFORCED_METHODS),
  /** After the agent rotated a recovery password, back the new one up to AD or Entra ID when the device is joined there. */
  directoryBackupAfterRotation: z.boolean(),
});
export type Policy = z.infer<typeof policySchema>;
/** The fields set at one level (MSP default or client); the rest is inherited. */
export const policyOverridesSchema = policySchema.partial();
export type PolicyOverrides = z.infer<typeof policyOverridesSchema>;
export const POLICY_FIELDS = Object.keys(policySchema.shape) as (keyof Policy)[];

/**
 * What Keywarden assumes before the MSP says anything: Windows' own defaults (XTS-AES 128, TPM)
 * for OS and fixed volumes, removable drives optional, a day of suspension for updates. The agent
 * changes nothing on its own (every enforce field off) except backing a rotated password up to the
 * directory the device is joined to.
 */
export const BUILTIN_POLICY: Policy = {
  protectOs: true,
  protectFixed: true,
  protectRemovable: false,
  minMethodOs: 'xts_aes_128',
  minMethodFixed: 'xts_aes_128',
  minMethodRemovable: 'aes_cbc_128',
  osProtector: 'tpm',
  suspendedGraceHours: 24,
  requireRecoveryPassword: true,
  requireDirectoryEscrow: 'none',
  maxKeyAgeDays: null,
  staleAfterDays: 30,
  enforceEscrow: false,
  enforceEncryption: false,
  enforceKeyAge: false,
  encryptionMethod: 'default',
  directoryBackupAfterRotation: true,
};

/** Whether the policy asks the agent to act on any finding. */
export const enforcesAnything = (p: Pick<Policy, 'enforceEscrow' | 'enforceEncryption' | 'enforceKeyAge'>): boolean =>
  p.enforceEscrow || p.enforceEncryption || p.enforceKeyAge;

export type PolicySource = 'builtin' | 'default' | 'client';

/** The policy in force: built-in, then the MSP default, then the client's own fields; and where each came from. */
export function effectivePolicy(mspDefault: PolicyOverrides, client: PolicyOverrides = {}): { policy: Policy; sources: Record<keyof Policy, PolicySource> } {
  const policy = { ...BUILTIN_POLICY } as Record<string, unknown>;
  const sources = {} as Record<keyof Policy, PolicySource>;
  for (const f of POLICY_FIELDS) {
    sources[f] = 'builtin';
    if (mspDefault[f] !== undefined) {
      policy[f] = mspDefault[f];
      sources[f] = 'default';
    }
    if (client[f] !== undefined) {
      policy[f] = client[f];
      sources[f] = 'client';
    }
  }
  return { policy: policy as Policy, sources };
}

/**
 * Applies a change to the fields stored at one level: a value sets the field, null on a field that
 * cannot be null (or on maxKeyAgeDays with `inherit`) removes the override so the field inherits again.
 */
export function applyOverrides(current: PolicyOverrides, patch: Record<string, unknown>, inherit: readonly string[] = []): PolicyOverrides {
  const next: Record<string, unknown> = { ...current };
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) next[k] = v;
  for (const k of inherit) delete next[k];
  return policyOverridesSchema.parse(next);
}
