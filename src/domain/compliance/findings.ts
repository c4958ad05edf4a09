/**
 * Finding codes: stable names (exports, webhooks and SIEM rules key off them), modelled on
 * Intune's encryption status details (osVolumeUnprotected, osVolumeEncryptionMethodMismatch,
 * osVolumeTpmRequired, osVolumeTpmPinRequired, fixedDriveNotEncrypted, recoveryKeyBackupFailed…)
 * and MBAM's compliance report (per-drive protection state, cipher strength, key escrowed).
 * Each has a plain-language explanation and the fix, shown in reports and the console.
 */
export const FINDING_CODES = [
  'os_volume_unprotected',
  'data_volume_unprotected',
  'removable_volume_unprotected',
  'encryption_in_progress',
  'encryption_method_mismatch',
  'tpm_required',
  'tpm_pin_required',
  'protection_suspended',
  'waiting_for_activation',
  'recovery_password_missing',
  'recovery_key_not_escrowed',
  'escrowed_key_mismatch',
  'key_conflict',
  'not_in_directory',
  'key_rotation_due',
  'stale',
] as const;
export type FindingCode = (typeof FINDING_CODES)[number];

export type FindingInfo = { title: string; explanation: string; fix: string };

export const FINDING_INFO: Record<FindingCode, FindingInfo> = {
  os_volume_unprotected: {
    title: 'Operating-system drive not encrypted',
    explanation: 'The Windows drive is not encrypted with BitLocker (or is being decrypted): anyone holding the device can read its data.',
    fix: 'Turn BitLocker on for the OS drive (Intune disk encryption policy, GPO, or manage-bde -on C:), with a recovery password.',
  },
  data_volume_unprotected: {
    title: 'Fixed data drive not encrypted',
    explanation: 'A fixed data drive is not encrypted (or is being decrypted), although the policy requires it.',
    fix: 'Turn BitLocker on for the drive and enable auto-unlock, or exempt the device if the drive holds no data.',
  },
  removable_volume_unprotected: {
    title: 'Removable drive not encrypted',
    explanation: 'A removable drive attached to the device is not encrypted, although the policy requires it.',
    fix: 'Encrypt the drive with BitLocker To Go, or remove it from the device.',
  },
  encryption_in_progress: {
    title: 'Encryption not finished',
    explanation: 'BitLocker is encrypting the drive (or encryption is paused); until it finishes, part of the data is readable.',
    fix: 'Keep the device on and connected until encryption completes; resume it if it is paused (manage-bde -resume).',
  },
  encryption_method_mismatch: {
    title: 'Encryption method weaker than required',
    explanation: 'The drive is encrypted with a weaker method than the policy requires (hardware encryption counts as weakest).',
    fix: 'The method cannot be changed in place: decrypt and re-encrypt the drive with the required method (set it in the BitLocker policy first).',
  },
  tpm_required: {
    title: 'TPM protector missing',
    explanation: 'The OS drive is not protected by the TPM, so it does not check that the boot chain is untouched.',
    fix: 'Add a TPM protector (manage-bde -protectors -add C: -tpm); check that the TPM is enabled in the firmware.',
  },
  tpm_pin_required: {
    title: 'Startup PIN missing',
    explanation: 'The policy requires a PIN at startup in addition to the TPM, but the OS drive unlocks with the TPM alone.',
    fix: 'Add a TPM+PIN protector (manage-bde -protectors -add C: -tpmandpin) and tell the user their PIN.',
  },
  protection_suspended: {
    title: 'Protection suspended too long',
    explanation:
      'BitLocker protection on the drive has been suspended longer than the grace period allowed for updates: the key sits in the clear on the disk.',
    fix: 'Resume protection (Resume-BitLocker -MountPoint C: or manage-bde -protectors -enable C:) and find what suspended it.',
  },
  waiting_for_activation: {
    title: 'Waiting for activation (clear key)',
    explanation:
      'The drive is encrypted but has no protectors yet (device encryption "waiting for activation"): the key sits in the clear and nothing protects the data.',
    fix: 'Add protectors to activate BitLocker (a TPM and a recovery password, escrowed), e.g. through the Intune policy or manage-bde -on.',
  },
  recovery_password_missing: {
    title: 'No recovery password',
    explanation: 'The encrypted drive has no recovery password protector: after a TPM reset or firmware change nobody could unlock it.',
    fix: 'Add one (manage-bde -protectors -add C: -recoverypassword); the Keywarden agent escrows it at its next check-in.',
  },
  recovery_key_not_escrowed: {
    title: 'Recovery password not escrowed',
    explanation: 'The drive has a recovery password that is not in Keywarden: if the user is locked out, the helpdesk has nothing to read out.',
    fix: 'Let the Keywarden agent check in (it uploads the password), or import it from AD, Entra ID or a file.',
  },
  escrowed_key_mismatch: {
    title: 'Escrowed password differs from the device',
    explanation: 'The device reports a recovery password under a key ID whose password in Keywarden is different: the stored one would not unlock the drive.',
    fix: 'Let the agent upload the current password (it is requested automatically), or rotate the recovery password.',
  },
  key_conflict: {
    title: 'Conflicting recovery passwords',
    explanation: 'Two sources gave different recovery passwords under the same key ID; Keywarden kept both and cannot tell which is right.',
    fix: 'Check which password is on the device (the agent does this at check-in), then rotate the recovery password to end the doubt.',
  },
  not_in_directory: {
    title: 'Not escrowed in the directory',
    explanation: 'The policy requires the recovery password to be backed up to Active Directory or Entra ID as well, and no sync has seen it there.',
    fix: 'Back it up (BackupToAAD-BitLockerKeyProtector or Backup-BitLockerKeyProtector) and let the next sync pick it up.',
  },
  key_rotation_due: {
    title: 'Recovery password due for rotation',
    explanation: 'The recovery password is older than the policy allows, or it was revealed (or used to start Windows) and has not been replaced yet.',
    fix: 'Rotate it: queue a rotate job for the Keywarden agent, or use Intune\'s "BitLocker key rotation" action.',
  },
  stale: {
    title: 'Device not seen recently',
    explanation:
      'Keywarden has not heard from the device (agent check-in or a directory sync) for longer than the policy allows; its status may be out of date.',
    fix: 'Check the device is still in use and the agent runs (scheduled task "Keywarden Agent"); retire it in Keywarden if it is gone.',
  },
};
