import { describe, expect, it } from 'vitest';
import { catalogPolicy, intuneRequiresEscrow, postureLines, postureNotes, templatePolicy, usersCanReadOwnKeys, type TenantPosture } from './tenant-posture.js';

const BL = 'device_vendor_msft_bitlocker_';
const choice = (id: string, value: 0 | 1, children: unknown[] = []) => ({
  settingInstance: {
    '@odata.type': '#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance',
    settingDefinitionId: id,
    choiceSettingValue: { value: `${id}_${value}`, children: children.map((c) => (c as { settingInstance: unknown }).settingInstance) },
  },
});
const recovery = (require: 0 | 1, options: 0 | 1 = 1) =>
  choice(`${BL}systemdrivesrecoveryoptions`, options, [
    choice(`${BL}systemdrivesrecoveryoptions_osactivedirectorybackup_name`, 1),
    choice(`${BL}systemdrivesrecoveryoptions_osrequireactivedirectorybackup_name`, require),
  ]);

describe('tenant posture rules', () => {
  it('reads allowedToReadBitlockerKeysForOwnedDevice from the v1.0 object and from a beta collection; anything else is unknown', () => {
    expect(usersCanReadOwnKeys({ defaultUserRolePermissions: { allowedToReadBitlockerKeysForOwnedDevice: true } })).toBe('yes');
    expect(usersCanReadOwnKeys({ value: [{ defaultUserRolePermissions: { allowedToReadBitlockerKeysForOwnedDevice: false } }] })).toBe('no');
    expect(usersCanReadOwnKeys({ defaultUserRolePermissions: { allowedToCreateApps: true } })).toBe('unknown');
    expect(usersCanReadOwnKeys({ defaultUserRolePermissions: { allowedToReadBitlockerKeysForOwnedDevice: 'true' } })).toBe('unknown');
    expect(usersCanReadOwnKeys(null)).toBe('unknown');
  });

  it('an Endpoint protection profile counts only when it sets BitLocker; it requires escrow only with enableBitLockerAfterRecoveryInformationToStore', () => {
    const type = '#microsoft.graph.windows10EndpointProtectionConfiguration';
    expect(templatePolicy({ '@odata.type': type, displayName: 'Firewall only' })).toBeNull();
    expect(templatePolicy({ '@odata.type': '#microsoft.graph.windows10GeneralConfiguration', bitLockerEncryptDevice: true })).toBeNull();
    expect(templatePolicy({ '@odata.type': type, displayName: 'BL', bitLockerEncryptDevice: true })).toEqual({
      name: 'BL',
      kind: 'endpoint protection profile',
      requiresEscrow: false,
    });
    expect(
      templatePolicy({
        '@odata.type': type,
        displayName: 'BL',
        bitLockerSystemDrivePolicy: { recoveryOptions: { enableRecoveryInformationSaveToStore: true, enableBitLockerAfterRecoveryInformationToStore: true } },
      }),
    ).toMatchObject({ requiresEscrow: true });
  });

  it('a settings catalog policy requires escrow only when the recovery options are on and OSRequireActiveDirectoryBackup is 1', () => {
    expect(catalogPolicy('Edge', [choice('device_vendor_msft_policy_config_browser_x', 1)])).toBeNull();
    expect(catalogPolicy('P', [choice(`${BL}requiredeviceencryption`, 1)])).toEqual({ name: 'P', kind: 'settings catalog', requiresEscrow: false });
    expect(catalogPolicy('P', [recovery(1)])).toMatchObject({ requiresEscrow: true });
    expect(catalogPolicy('P', [recovery(0)])).toMatchObject({ requiresEscrow: false });
    expect(catalogPolicy('P', [recovery(1, 0)])).toMatchObject({ requiresEscrow: false });
  });

  it('Intune requires escrow only when some policy turns BitLocker on and every one requires it', () => {
    const p = (requiresEscrow: boolean) => ({ name: 'x', kind: 'settings catalog' as const, requiresEscrow });
    expect(intuneRequiresEscrow([])).toBe('no');
    expect(intuneRequiresEscrow([p(true), p(true)])).toBe('yes');
    expect(intuneRequiresEscrow([p(true), p(false)])).toBe('no');
  });

  it('says it in product words; Intune without escrow is a client-level finding only when Intune does turn BitLocker on', () => {
    const base: TenantPosture = {
      usersCanReadOwnKeys: 'no',
      usersCanReadOwnKeysReason: null,
      intuneRequiresEscrow: 'no',
      intuneReason: null,
      intunePolicies: [],
    };
    expect(postureNotes(base)).toEqual([]);
    const failing: TenantPosture = { ...base, intunePolicies: [{ name: 'Kiosks', kind: 'settings catalog', requiresEscrow: false }] };
    expect(postureNotes(failing).map((n) => n.code)).toEqual(['intune_escrow_not_required']);
    expect(postureLines(failing)[1]!.text).toBe('No ("Kiosks") — devices may encrypt without an escrowed key.');
    const unknown: TenantPosture = { ...base, usersCanReadOwnKeys: 'unknown', intuneRequiresEscrow: 'unknown' };
    expect(postureLines(unknown).map((l) => l.text)).toEqual([
      'Unknown — grant Policy.Read.All to the app registration.',
      'Unknown — grant DeviceManagementConfiguration.Read.All to the app registration.',
    ]);
    expect(postureNotes({ ...base, usersCanReadOwnKeys: 'yes' }).map((n) => n.code)).toEqual(['entra_users_read_own_keys']);
    // Consent lost comes first: every other answer is stale until it is given again.
    const lost = postureNotes({ ...base, usersCanReadOwnKeys: 'yes' }, { consentLostAt: '2026-12-01T10:00:00.000Z' });
    expect(lost.map((n) => n.code)).toEqual(['entra_consent_lost', 'entra_users_read_own_keys']);
    expect(lost[0]!.explanation).toContain('Since 2026-12-01');
  });
});
