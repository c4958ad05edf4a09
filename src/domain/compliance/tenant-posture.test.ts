import { describe, expect, it } from 'vitest';
import {
  catalogPolicy,
  intuneNoReason,
  intuneRequiresEscrow,
  policyAssignments,
  postureLines,
  postureNotes,
  templatePolicy,
  usersCanReadOwnKeys,
  type PosturePolicy,
  type TenantPosture,
} from './tenant-posture.js';

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
    const p = (requiresEscrow: boolean): PosturePolicy => ({ name: 'x', kind: 'settings catalog', requiresEscrow, assigned: true, assignedTo: 'all devices' });
    expect(intuneRequiresEscrow([])).toBe('no');
    expect(intuneRequiresEscrow([p(true), p(true)])).toBe('yes');
    expect(intuneRequiresEscrow([p(true), p(false)])).toBe('no');
  });

  it('reads assignments in words: a group, all devices or all users include; exclusions alone and unknown targets do not', () => {
    const target = (type: string, groupId?: string) => ({ id: 'a', target: { '@odata.type': `#microsoft.graph.${type}`, ...(groupId ? { groupId } : {}) } });
    expect(policyAssignments([])).toEqual({ assigned: false, assignedTo: 'no group' });
    expect(policyAssignments([target('allDevicesAssignmentTarget')])).toEqual({ assigned: true, assignedTo: 'all devices' });
    expect(policyAssignments([target('allLicensedUsersAssignmentTarget')])).toEqual({ assigned: true, assignedTo: 'all users' });
    expect(
      policyAssignments([target('groupAssignmentTarget', 'g1'), target('groupAssignmentTarget', 'g2'), target('exclusionGroupAssignmentTarget', 'g3')]),
    ).toEqual({
      assigned: true,
      assignedTo: '2 groups (1 group excluded)',
    });
    expect(
      policyAssignments([target('allDevicesAssignmentTarget'), target('allLicensedUsersAssignmentTarget'), target('groupAssignmentTarget', 'g1')]),
    ).toEqual({
      assigned: true,
      assignedTo: 'all devices, all users and 1 group',
    });
    expect(policyAssignments([target('exclusionGroupAssignmentTarget', 'g3')])).toEqual({ assigned: false, assignedTo: 'only excluded groups (1)' });
    // Whom an unknown target reaches is not known: it makes no "yes".
    expect(policyAssignments([target('somethingNewAssignmentTarget'), { target: { '@odata.type': 'constructor' } }, null, 'x'])).toEqual({
      assigned: false,
      assignedTo: 'no group',
    });
  });

  it('only assigned policies count: an unassigned requiring policy makes no "yes", an unassigned failing one no "no"; not read counts against "yes"', () => {
    const p = (name: string, requiresEscrow: boolean, assigned: boolean | null, assignedTo = assigned ? 'all devices' : 'no group'): PosturePolicy => ({
      name,
      kind: 'endpoint protection profile',
      requiresEscrow,
      assigned,
      assignedTo,
    });
    const baseline = p('BitLocker baseline', true, false);
    expect(intuneRequiresEscrow([baseline])).toBe('no');
    expect(intuneNoReason([baseline])).toBe('"BitLocker baseline" requires it but is not assigned to any group');
    const excludedOnly = p('Laptops', true, false, 'only excluded groups (1)');
    expect(intuneRequiresEscrow([excludedOnly])).toBe('no');
    expect(intuneNoReason([excludedOnly])).toBe('"Laptops" requires it but is assigned only to excluded groups');
    expect(intuneRequiresEscrow([p('All', true, true)])).toBe('yes');
    expect(intuneNoReason([p('All', true, true)])).toBeNull();
    // An unassigned policy that does not require escrow reaches no device: it does not spoil a "yes".
    expect(intuneRequiresEscrow([p('All', true, true), p('Old kiosks', false, false)])).toBe('yes');
    // One assigned requiring policy is enough; an unassigned requiring one beside it changes nothing.
    expect(intuneRequiresEscrow([p('All', true, true), baseline])).toBe('yes');
    // Not read: may apply (a failing one says no) and is not known to apply (a requiring one gives no yes).
    expect(intuneRequiresEscrow([p('All', true, true), p('Kiosks', false, null)])).toBe('no');
    expect(intuneRequiresEscrow([p('Maybe', true, null)])).toBe('no');

    const posture = (intunePolicies: PosturePolicy[]): TenantPosture => ({
      usersCanReadOwnKeys: 'no',
      usersCanReadOwnKeysReason: null,
      intuneRequiresEscrow: intuneRequiresEscrow(intunePolicies),
      intuneReason: intuneNoReason(intunePolicies),
      intunePolicies,
    });
    const idle = posture([baseline]);
    expect(postureLines(idle)[1]).toEqual({
      question: 'Intune requires recovery information stored before BitLocker is enabled',
      answer: 'no',
      text: 'No — "BitLocker baseline" requires it but is not assigned to any group: an Intune policy applies only to the devices and users it is assigned to.',
    });
    // Intune encrypts no device, so it is no "encrypts without escrow" finding.
    expect(postureNotes(idle)).toEqual([]);
    expect(postureLines(posture([p('All', true, true), baseline]))[1]!.text).toBe('Yes ("All").');
    const kiosks = posture([p('All', true, true), p('Kiosks', false, true, '1 group'), p('Old kiosks', false, false)]);
    expect(postureLines(kiosks)[1]!.text).toBe('No ("Kiosks") — devices may encrypt without an escrowed key.');
    expect(postureNotes(kiosks).map((n) => n.explanation)).toEqual([expect.stringMatching(/^"Kiosks" turns BitLocker on/)]);
    expect(postureLines(posture([p('Old kiosks', false, false)]))[1]!.text).toMatch(/^No — no assigned Intune policy turns BitLocker on/);
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
    const failing: TenantPosture = {
      ...base,
      intunePolicies: [{ name: 'Kiosks', kind: 'settings catalog', requiresEscrow: false, assigned: true, assignedTo: 'all devices' }],
    };
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
