import type { EncryptionMethod, KeyProtectorType, LockStatus, ProtectionStatus, VolumeStatus } from '../bitlocker.js';
import { isCurrentKey, isVolumeEncrypted, keysEscrowing } from '../device-status.js';
import { formatKeyIdForDisplay } from '../key-id.js';
import { FINDING_CODES, type FindingCode } from './findings.js';
import { METHOD_WORDS, methodMeets, type Policy } from './policy.js';

/**
 * Compliance evaluation: what the vault knows about one device, a policy and the time in, a status
 * and findings out. Pure: no I/O, the clock is a parameter, so every case is a unit test.
 */

export type ComplianceStatus = 'compliant' | 'non-compliant' | 'exempt' | 'unknown';
export const COMPLIANCE_STATUSES: readonly ComplianceStatus[] = ['compliant', 'non-compliant', 'exempt', 'unknown'];

export type VolumeFacts = {
  id: string;
  mountPoint: string | null;
  /** 'unknown' (the agent could not tell) is treated as a fixed data volume. */
  type: 'os' | 'fixed' | 'removable' | 'unknown';
  volumeStatus: VolumeStatus | null;
  protectionStatus: ProtectionStatus | null;
  lockStatus: LockStatus | null;
  encryptionMethod: EncryptionMethod | null;
  /** Protector ids are normalized key IDs (lower case, no braces). */
  protectors: { id: string | null; type: KeyProtectorType | null }[];
  /** When the current stretch of "protection off" began, if the history knows (null otherwise). */
  protectionOffSince: string | null;
};

export type KeyFacts = {
  id: string;
  keyId: string | null;
  volumeId: string | null;
  state: 'active' | 'superseded' | 'disclosed' | 'rotated' | 'conflict' | string;
  /** When the password was created (source date), or when Keywarden first saw it. */
  createdAt: string;
  /** Where the key is known, without the sources that stopped reporting it. */
  sources: ('import' | 'agent' | 'entra' | 'ad' | string)[];
};

export type DeviceFacts = {
  lastSeenAt: string;
  /** The last agent check-in; null when no agent ever reported this device's volumes. */
  lastCheckinAt: string | null;
  volumes: VolumeFacts[];
  keys: KeyFacts[];
  /** Open findings the agent raised at check-in that only it can know (a password that differs). */
  mismatchedProtectors: { volumeId: string | null; protectorId: string }[];
  /** Exemptions not revoked (expired ones may be included: the evaluation checks the time). */
  exemptions: { id: string; reason: string; expiresAt: string | null }[];
};

export type Finding = {
  code: FindingCode;
  volumeId: string | null;
  mountPoint: string | null;
  /** A key ID (normalized) when the finding is about one recovery password. */
  protectorId: string | null;
  /** The specific fact, in product words; never a password. */
  detail: string;
};

export type Evaluation = {
  status: ComplianceStatus;
  findings: Finding[];
  /** The exemption in force, when status is exempt. */
  exemption: { id: string; reason: string; expiresAt: string | null } | null;
};

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TPM_PROTECTORS: readonly KeyProtectorType[] = ['Tpm', 'TpmPin', 'TpmStartupKey', 'TpmPinStartupKey', 'TpmNetworkKey'];
const PIN_PROTECTORS: readonly KeyProtectorType[] = ['TpmPin', 'TpmPinStartupKey'];
const UNPROTECTED_CODE = { os: 'os_volume_unprotected', fixed: 'data_volume_unprotected', removable: 'removable_volume_unprotected' } as const;

const ms = (iso: string) => Date.parse(iso);
const days = (n: number) => `${n} day${n === 1 ? '' : 's'}`;
const hours = (n: number) => `${n} hour${n === 1 ? '' : 's'}`;

export function evaluateDevice(device: DeviceFacts, policy: Policy, now: string): Evaluation {
  const t = ms(now);
  const findings: Finding[] = [];
  const add = (code: FindingCode, v: VolumeFacts | null, detail: string, protectorId: string | null = null) => {
    // One finding per code, volume and protector: a key on two lists is reported once.
    if (findings.some((f) => f.code === code && f.volumeId === (v?.id ?? null) && f.protectorId === protectorId)) return;
    findings.push({ code, volumeId: v?.id ?? null, mountPoint: v?.mountPoint ?? null, protectorId, detail });
  };
  const drive = (v: VolumeFacts) => v.mountPoint ?? 'a volume';
  const reported = device.lastCheckinAt !== null && device.volumes.some((v) => v.volumeStatus !== null || v.lockStatus === 'Locked');

  // Keys that belong to what the device has now: the ones on its protectors (reported devices),
  // or every key still in use (devices only known from a sync or an import).
  const currentKeys = new Map<string, KeyFacts>();

  for (const v of reported ? device.volumes : []) {
    // A locked data volume is encrypted and protected by definition; its details are hidden.
    if (v.lockStatus === 'Locked' || v.volumeStatus === null) continue;
    const kind = v.type === 'unknown' ? 'fixed' : v.type;
    const required = kind === 'os' ? policy.protectOs : kind === 'fixed' ? policy.protectFixed : policy.protectRemovable;
    const min = kind === 'os' ? policy.minMethodOs : kind === 'fixed' ? policy.minMethodFixed : policy.minMethodRemovable;
    const types = v.protectors.map((p) => p.type);
    const decrypting = !isVolumeEncrypted(v.volumeStatus);
    const encrypting = v.volumeStatus === 'EncryptionInProgress' || v.volumeStatus === 'EncryptionSuspended';
    // Clear key: encrypted, protection off and not a single protector (device encryption before activation).
    const clearKey = !decrypting && v.protectionStatus === 'Off' && v.protectors.length === 0;

    if (required) {
      if (decrypting) {
        add(UNPROTECTED_CODE[kind], v, v.volumeStatus === 'FullyDecrypted' ? `${drive(v)} is not encrypted.` : `${drive(v)} is being decrypted.`);
        continue;
      }
      if (encrypting) add('encryption_in_progress', v, `${drive(v)} is still being encrypted${v.volumeStatus === 'EncryptionSuspended' ? ' (paused)' : ''}.`);
      if (clearKey) add('waiting_for_activation', v, `${drive(v)} is encrypted but has no protectors: the key is stored in the clear.`);
      else if (!encrypting && v.protectionStatus === 'Off') {
        const since = v.protectionOffSince;
        const over = since === null || t - ms(since) > policy.suspendedGraceHours * HOUR;
        if (over)
          add(
            'protection_suspended',
            v,
            since
              ? `Protection on ${drive(v)} has been suspended since ${since.slice(0, 16).replace('T', ' ')} UTC (allowed: ${hours(policy.suspendedGraceHours)}).`
              : `Protection on ${drive(v)} is suspended.`,
          );
      }
      if (v.encryptionMethod && v.encryptionMethod !== 'None' && !methodMeets(v.encryptionMethod, min)) {
        add('encryption_method_mismatch', v, `${drive(v)} uses ${METHOD_WORDS[v.encryptionMethod]}; the policy requires ${METHOD_WORDS[min]} or stronger.`);
      }
      if (kind === 'os' && !clearKey) {
        if (policy.osProtector === 'tpm' && !types.some((x) => x && TPM_PROTECTORS.includes(x))) add('tpm_required', v, `${drive(v)} has no TPM protector.`);
        if (policy.osProtector === 'tpm_pin' && !types.some((x) => x && PIN_PROTECTORS.includes(x)))
          add('tpm_pin_required', v, `${drive(v)} has no TPM+PIN protector.`);
      }
    }
    if (decrypting || clearKey || !policy.requireRecoveryPassword) continue;

    // Every encrypted volume (required or not) needs an escrowed recovery password.
    const passwords = v.protectors.filter((p) => p.type === 'RecoveryPassword' && p.id);
    if (passwords.length === 0) add('recovery_password_missing', v, `${drive(v)} is encrypted but has no recovery password.`);
    for (const p of passwords) {
      const matching = keysEscrowing(p.id!, device.keys, (k) => k.keyId);
      if (matching.length === 0) {
        add('recovery_key_not_escrowed', v, `Recovery password ${formatKeyIdForDisplay(p.id!)} on ${drive(v)} is not in Keywarden.`, p.id);
        continue;
      }
      for (const k of matching) currentKeys.set(k.id, { ...k, volumeId: v.id });
    }
  }
  if (!reported) for (const k of device.keys) if (isCurrentKey(k.state)) currentKeys.set(k.id, k);

  const volumeOf = (id: string | null) => device.volumes.find((v) => v.id === id) ?? null;
  for (const m of device.mismatchedProtectors) {
    const v = volumeOf(m.volumeId);
    add(
      'escrowed_key_mismatch',
      v,
      `Recovery password ${formatKeyIdForDisplay(m.protectorId)}${v ? ` on ${drive(v)}` : ''} differs from the one in Keywarden.`,
      m.protectorId,
    );
  }
  for (const k of device.keys) {
    if (k.state !== 'conflict') continue;
    const v = volumeOf(k.volumeId);
    add('key_conflict', v, `Key ID ${k.keyId ? formatKeyIdForDisplay(k.keyId) : '(none)'} has conflicting recovery passwords from different sources.`, k.keyId);
  }
  if (policy.requireRecoveryPassword) {
    for (const k of currentKeys.values()) {
      const v = volumeOf(k.volumeId);
      const label = k.keyId ? formatKeyIdForDisplay(k.keyId) : 'without a key ID';
      const want = policy.requireDirectoryEscrow;
      if (want !== 'none') {
        const inAd = k.sources.includes('ad');
        const inEntra = k.sources.includes('entra');
        const okDir = want === 'ad' ? inAd : want === 'entra' ? inEntra : inAd || inEntra;
        if (!okDir)
          add(
            'not_in_directory',
            v,
            `Recovery password ${label} is not escrowed in ${want === 'ad' ? 'Active Directory' : want === 'entra' ? 'Entra ID' : 'Active Directory or Entra ID'}.`,
            k.keyId,
          );
      }
      if (k.state === 'disclosed') add('key_rotation_due', v, `Recovery password ${label} was revealed or used and has not been replaced.`, k.keyId);
      else if (policy.maxKeyAgeDays !== null && t - ms(k.createdAt) > policy.maxKeyAgeDays * DAY) {
        add(
          'key_rotation_due',
          v,
          `Recovery password ${label} is ${Math.floor((t - ms(k.createdAt)) / DAY)} days old (maximum ${days(policy.maxKeyAgeDays)}).`,
          k.keyId,
        );
      }
    }
  }
  if (t - ms(device.lastSeenAt) > policy.staleAfterDays * DAY) {
    add('stale', null, `Last seen ${device.lastSeenAt.slice(0, 10)}, more than ${days(policy.staleAfterDays)} ago.`);
  }

  findings.sort(compareFindings);
  const exemption = device.exemptions.find((e) => e.expiresAt === null || ms(e.expiresAt) > t) ?? null;
  const status: ComplianceStatus = exemption ? 'exempt' : !reported ? 'unknown' : findings.length ? 'non-compliant' : 'compliant';
  return { status, findings, exemption };
}

const ORDER = new Map(FINDING_CODES.map((c, i) => [c, i]));
function compareFindings(a: Finding, b: Finding): number {
  return (
    ORDER.get(a.code)! - ORDER.get(b.code)! ||
    (a.mountPoint ?? '').localeCompare(b.mountPoint ?? '') ||
    (a.protectorId ?? '').localeCompare(b.protectorId ?? '')
  );
}

/**
 * When the current stretch of "protection off" began, from a volume's reported protection states
 * (newest first): the oldest "Off" of the run that reaches the newest report, but only when an
 * earlier report shows protection on. A volume first seen suspended (the run reaches the first
 * report, or nothing was recorded) has an unknown start: null, which the evaluation treats as
 * "over the grace at once" (docs/compliance.md), rather than the time Keywarden happened to see it.
 */
export function protectionOffSinceOf(history: readonly { recordedAt: string; protectionStatus: string | null }[]): string | null {
  let since: string | null = null;
  for (const h of history) {
    if (h.protectionStatus !== 'Off') return since;
    since = h.recordedAt;
  }
  return null;
}

/** A stable text of status and findings: the stored status changes exactly when this does. */
export function evaluationSignature(e: Pick<Evaluation, 'status' | 'findings'>): string {
  return [e.status, ...e.findings.map((f) => `${f.code}|${f.volumeId ?? ''}|${f.protectorId ?? ''}`)].join(';');
}
