/**
 * Tenant posture for the Graph simulator: the Entra authorization policy and Intune's BitLocker
 * device configuration, written from Microsoft's public documentation (no SDK code):
 *
 *   GET {graph}/v1.0/policies/authorizationPolicy                 → the single authorizationPolicy object
 *   GET {graph}/beta/policies/authorizationPolicy                 → a collection holding that one object
 *   GET {graph}/beta/policies/authorizationPolicy/authorizationPolicy → the object
 *       needs Policy.Read.All (or Policy.ReadWrite.Authorization); 403 Authorization_RequestDenied otherwise
 *   GET {graph}/{v}/deviceManagement/deviceConfigurations        → paged; windows10EndpointProtectionConfiguration
 *       items carry bitLockerSystemDrivePolicy.recoveryOptions (bitLockerRecoveryOptions)
 *   GET {graph}/beta/deviceManagement/configurationPolicies       → settings catalog policies (beta only)
 *   GET {graph}/beta/deviceManagement/configurationPolicies/{id}/settings → the policy's setting instances
 *   GET {graph}/{v}/deviceManagement/deviceConfigurations/{id}/assignments   → paged deviceConfigurationAssignment
 *   GET {graph}/beta/deviceManagement/configurationPolicies/{id}/assignments → paged deviceManagementConfigurationPolicyAssignment
 *       both `{id, source, sourceId, target}`; target `@odata.type` one of #microsoft.graph.groupAssignmentTarget
 *       (groupId), allDevicesAssignmentTarget, allLicensedUsersAssignmentTarget, exclusionGroupAssignmentTarget
 *       (groupId), each with deviceAndAppManagementAssignmentFilterId/-Type. Assignments are not in the
 *       policy lists (a navigation property; `$expand` is not simulated). An unknown policy id → 404.
 *       Intune routes need DeviceManagementConfiguration.Read.All (or .ReadWrite.All); 403 Forbidden otherwise
 *
 * The builders below assign to all devices unless told otherwise, so a seeded policy applies (as most
 * real ones do); `assign.*` builds the other targets, `posture.assignmentsFailure` makes only the
 * assignment reads fail (Intune RBAC scope tags can hide them from an app that lists the policies).
 *
 * simulator.ts calls `postureRoute` from its router; everything else about posture lives here.
 */
import { randomUUID } from 'node:crypto';

/** `bitLockerRecoveryOptions` (Intune device configuration, v1.0 and beta). */
export type SimBitLockerRecoveryOptions = {
  blockDataRecoveryAgent?: boolean;
  recoveryPasswordUsage?: 'blocked' | 'required' | 'allowed' | 'notConfigured';
  recoveryKeyUsage?: 'blocked' | 'required' | 'allowed' | 'notConfigured';
  hideRecoveryOptions?: boolean;
  /** "Save BitLocker recovery information to AD DS / Entra ID" */
  enableRecoveryInformationSaveToStore?: boolean;
  recoveryInformationToStore?: 'passwordAndKey' | 'passwordOnly';
  /** "Do not enable BitLocker until recovery information is stored" */
  enableBitLockerAfterRecoveryInformationToStore?: boolean;
};

/** An assignment target (deviceAndAppManagementAssignmentTarget and its subtypes). */
export type SimAssignmentTarget = {
  '@odata.type':
    | '#microsoft.graph.groupAssignmentTarget'
    | '#microsoft.graph.allDevicesAssignmentTarget'
    | '#microsoft.graph.allLicensedUsersAssignmentTarget'
    | '#microsoft.graph.exclusionGroupAssignmentTarget';
  groupId?: string;
  deviceAndAppManagementAssignmentFilterId: string | null;
  deviceAndAppManagementAssignmentFilterType: 'none' | 'include' | 'exclude';
};

const target = (type: SimAssignmentTarget['@odata.type'], groupId?: string): SimAssignmentTarget => ({
  '@odata.type': type,
  ...(groupId ? { groupId } : {}),
  deviceAndAppManagementAssignmentFilterId: null,
  deviceAndAppManagementAssignmentFilterType: 'none',
});
/** Assignment targets for the builders and for tests that change a seeded policy's `assignments`. */
export const assign = {
  allDevices: () => target('#microsoft.graph.allDevicesAssignmentTarget'),
  allUsers: () => target('#microsoft.graph.allLicensedUsersAssignmentTarget'),
  group: (groupId: string = randomUUID()) => target('#microsoft.graph.groupAssignmentTarget', groupId),
  exclude: (groupId: string = randomUUID()) => target('#microsoft.graph.exclusionGroupAssignmentTarget', groupId),
};

/** An Intune device configuration profile (only what posture reads; other types are listed as-is). */
export type SimDeviceConfiguration = {
  id: string;
  '@odata.type': string;
  displayName: string;
  lastModifiedDateTime?: string;
  bitLockerEncryptDevice?: boolean;
  bitLockerSystemDrivePolicy?: { encryptionMethod?: string | null; recoveryOptions?: SimBitLockerRecoveryOptions | null } | null;
  /** Served by …/{id}/assignments only, never in the list; absent = assigned to nobody. */
  assignments?: SimAssignmentTarget[];
  [k: string]: unknown;
};

/** A settings catalog setting instance: a choice with children, as deviceManagementConfigurationChoiceSettingInstance. */
export type SimSettingInstance = {
  '@odata.type': '#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance';
  settingDefinitionId: string;
  choiceSettingValue: { value: string; children: SimSettingInstance[] };
};

/** A settings catalog policy (deviceManagementConfigurationPolicy) with its settings. */
export type SimConfigurationPolicy = {
  id: string;
  name: string;
  platforms: string;
  technologies: string;
  settings: SimSettingInstance[];
  /** Served by …/{id}/assignments only; absent = assigned to nobody. */
  assignments?: SimAssignmentTarget[];
};

export type SimPosture = {
  /** `defaultUserRolePermissions.allowedToReadBitlockerKeysForOwnedDevice` (Entra's default: true). */
  usersCanReadOwnKeys: boolean;
  deviceConfigurations: SimDeviceConfiguration[];
  configurationPolicies: SimConfigurationPolicy[];
  /** deviceConfigurations page size (default 25). */
  pageSize?: number;
  /** Every posture route answers this error instead (the rest of Graph works): Graph down for this step. */
  failure?: { status: number; code: string; message: string };
  /** Only the …/assignments routes answer this error (the policies are listed): e.g. a 403 for an Intune scope the app is outside of. */
  assignmentsFailure?: { status: number; code: string; message: string };
};

export const POSTURE_PERMISSIONS = ['Policy.Read.All', 'DeviceManagementConfiguration.Read.All'] as const;

const PERM = {
  policy: ['Policy.Read.All', 'Policy.ReadWrite.Authorization'],
  intune: ['DeviceManagementConfiguration.Read.All', 'DeviceManagementConfiguration.ReadWrite.All'],
};

/** Setting definition ids of the BitLocker CSP in the settings catalog. */
export const BITLOCKER_SETTING = {
  requireDeviceEncryption: 'device_vendor_msft_bitlocker_requiredeviceencryption',
  systemDrivesRecoveryOptions: 'device_vendor_msft_bitlocker_systemdrivesrecoveryoptions',
  osActiveDirectoryBackup: 'device_vendor_msft_bitlocker_systemdrivesrecoveryoptions_osactivedirectorybackup_name',
  osRequireActiveDirectoryBackup: 'device_vendor_msft_bitlocker_systemdrivesrecoveryoptions_osrequireactivedirectorybackup_name',
} as const;

const choice = (id: string, on: boolean, children: SimSettingInstance[] = []): SimSettingInstance => ({
  '@odata.type': '#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance',
  settingDefinitionId: id,
  choiceSettingValue: { value: `${id}_${on ? 1 : 0}`, children },
});

/** An Endpoint protection profile (template) that turns BitLocker on, requiring escrow first or not; assigned to all devices unless told. */
export function endpointProtectionProfile(
  displayName: string,
  requireEscrow: boolean,
  assignments: SimAssignmentTarget[] = [assign.allDevices()],
): SimDeviceConfiguration {
  return {
    assignments,
    id: randomUUID(),
    '@odata.type': '#microsoft.graph.windows10EndpointProtectionConfiguration',
    displayName,
    lastModifiedDateTime: '2026-01-05T10:00:00Z',
    bitLockerEncryptDevice: true,
    bitLockerSystemDrivePolicy: {
      encryptionMethod: 'xtsAes256',
      recoveryOptions: {
        blockDataRecoveryAgent: true,
        recoveryPasswordUsage: 'required',
        recoveryKeyUsage: 'blocked',
        hideRecoveryOptions: true,
        enableRecoveryInformationSaveToStore: true,
        recoveryInformationToStore: 'passwordAndKey',
        enableBitLockerAfterRecoveryInformationToStore: requireEscrow,
      },
    },
  };
}

/** A settings catalog policy with the BitLocker CSP's OS drive recovery options; assigned to all devices unless told. */
export function settingsCatalogBitLocker(
  name: string,
  requireEscrow: boolean,
  assignments: SimAssignmentTarget[] = [assign.allDevices()],
): SimConfigurationPolicy {
  return {
    assignments,
    id: randomUUID(),
    name,
    platforms: 'windows10',
    technologies: 'mdm',
    settings: [
      choice(BITLOCKER_SETTING.requireDeviceEncryption, true),
      choice(BITLOCKER_SETTING.systemDrivesRecoveryOptions, true, [
        choice(BITLOCKER_SETTING.osActiveDirectoryBackup, true),
        choice(BITLOCKER_SETTING.osRequireActiveDirectoryBackup, requireEscrow),
      ]),
    ],
  };
}

export function defaultPosture(): SimPosture {
  return { usersCanReadOwnKeys: true, deviceConfigurations: [], configurationPolicies: [] };
}

/** What simulator.ts hands over for one request. */
export type PostureRequest = {
  posture: SimPosture;
  permissions: Set<string>;
  version: 'v1.0' | 'beta';
  method: string;
  lower: string[];
  segs: string[];
  graphUrl: string;
  /** The simulator's own paging ($skiptoken bound to the query). */
  page: (kind: string, total: number, size: number) => { offset: number; end: number; nextLink?: string };
};
export type PostureReply = { status: number; body: Record<string, unknown> } | { status: number; error: { code: string; message: string } };

const denied = (): PostureReply => ({
  status: 403,
  error: { code: 'Authorization_RequestDenied', message: 'Insufficient privileges to complete the operation.' },
});
const intuneDenied = (): PostureReply => ({
  status: 403,
  error: {
    code: 'Forbidden',
    message: `Application is not authorized to perform this operation. Application must have one of the following scopes: ${PERM.intune.join(', ')}`,
  },
});
const has = (perms: Set<string>, anyOf: string[]) => anyOf.some((p) => perms.has(p));

function authorizationPolicy(p: SimPosture): Record<string, unknown> {
  return {
    id: 'authorizationPolicy',
    displayName: 'Authorization Policy',
    description: 'Used to manage authorization related settings across the company.',
    allowInvitesFrom: 'everyone',
    allowedToUseSSPR: true,
    allowEmailVerifiedUsersToJoinOrganization: false,
    blockMsolPowerShell: false,
    defaultUserRolePermissions: {
      allowedToCreateApps: true,
      allowedToCreateSecurityGroups: true,
      allowedToCreateTenants: true,
      allowedToReadBitlockerKeysForOwnedDevice: p.usersCanReadOwnKeys,
      allowedToReadOtherUsers: true,
    },
  };
}

/** Answers a posture route, or null when the path is not one of them. */
export function postureRoute(r: PostureRequest): PostureReply | null {
  const reply = route(r);
  const f = r.posture.failure ?? (r.lower.at(-1) === 'assignments' ? r.posture.assignmentsFailure : undefined);
  return reply && f ? { status: f.status, error: { code: f.code, message: f.message } } : reply;
}

/** Well-known ids Intune gives the virtual "all devices" / "all users" groups in assignment ids. */
const VIRTUAL_GROUP = {
  '#microsoft.graph.allDevicesAssignmentTarget': 'adadadad-808e-44e2-905a-0b7873a8a531',
  '#microsoft.graph.allLicensedUsersAssignmentTarget': 'acacacac-9df4-4c7d-9d50-4ef0226f57a9',
} as const;

/** GET …/{policy}/assignments: a paged collection; `withIntent` for deviceConfigurationAssignment (it has `intent`). */
function assignments(r: PostureRequest, kind: string, policyId: string, list: SimAssignmentTarget[], withIntent: boolean, context: string): PostureReply {
  const page = r.page(`${kind}Assignments:${policyId}`, list.length, r.posture.pageSize ?? 25);
  const body: Record<string, unknown> = { '@odata.context': `${r.graphUrl}/${r.version}/$metadata#${context}` };
  if (page.nextLink) body['@odata.nextLink'] = page.nextLink;
  body.value = list.slice(page.offset, page.end).map((t) => {
    const group = t.groupId ?? VIRTUAL_GROUP[t['@odata.type'] as keyof typeof VIRTUAL_GROUP] ?? randomUUID();
    return {
      id: `${policyId}_${group}`,
      source: 'direct',
      sourceId: policyId,
      ...(withIntent ? { intent: 'apply' } : {}),
      target: t,
    };
  });
  return { status: 200, body };
}

function route(r: PostureRequest): PostureReply | null {
  const { lower, version } = r;
  const ctx = (path: string) => `${r.graphUrl}/${version}/$metadata#${path}`;
  if (lower[0] === 'policies' && lower[1] === 'authorizationpolicy') {
    const single = lower.length === 2 && version === 'v1.0';
    const named = lower.length === 3 && lower[2] === 'authorizationpolicy';
    const list = lower.length === 2 && version === 'beta';
    if (!single && !named && !list) return null;
    if (r.method !== 'GET')
      return { status: 405, error: { code: 'Request_BadRequest', message: 'Specified HTTP method is not allowed for the request target.' } };
    if (!has(r.permissions, PERM.policy)) return denied();
    const obj = authorizationPolicy(r.posture);
    if (list) return { status: 200, body: { '@odata.context': ctx('policies/authorizationPolicy'), value: [obj] } };
    return { status: 200, body: { '@odata.context': ctx('policies/authorizationPolicy/$entity'), ...obj } };
  }
  if (lower[0] === 'devicemanagement' && lower[1] === 'deviceconfigurations' && lower.length === 2) {
    if (r.method !== 'GET') return null;
    if (!has(r.permissions, PERM.intune)) return intuneDenied();
    const all = r.posture.deviceConfigurations;
    const page = r.page('deviceConfigurations', all.length, r.posture.pageSize ?? 25);
    const body: Record<string, unknown> = { '@odata.context': ctx('deviceManagement/deviceConfigurations') };
    if (page.nextLink) body['@odata.nextLink'] = page.nextLink;
    body.value = all.slice(page.offset, page.end).map(({ assignments: _, ...c }) => c); // assignments: a navigation property, not listed
    return { status: 200, body };
  }
  if (lower[0] === 'devicemanagement' && lower[1] === 'deviceconfigurations' && lower.length === 4 && lower[3] === 'assignments') {
    if (r.method !== 'GET') return null;
    if (!has(r.permissions, PERM.intune)) return intuneDenied();
    const config = r.posture.deviceConfigurations.find((c) => c.id.toLowerCase() === lower[2]);
    if (!config) return { status: 404, error: { code: 'ResourceNotFound', message: `Resource not found: deviceConfiguration '${r.segs[2]}'.` } };
    return assignments(
      r,
      'deviceConfiguration',
      config.id,
      config.assignments ?? [],
      true,
      `deviceManagement/deviceConfigurations('${config.id}')/assignments`,
    );
  }
  if (lower[0] === 'devicemanagement' && lower[1] === 'configurationpolicies') {
    if (version !== 'beta') return { status: 400, error: { code: 'BadRequest', message: `Resource not found for the segment 'configurationPolicies'.` } };
    if (r.method !== 'GET') return null;
    if (!has(r.permissions, PERM.intune)) return intuneDenied();
    const all = r.posture.configurationPolicies;
    if (lower.length === 2) {
      const page = r.page('configurationPolicies', all.length, r.posture.pageSize ?? 25);
      const body: Record<string, unknown> = { '@odata.context': ctx('deviceManagement/configurationPolicies') };
      if (page.nextLink) body['@odata.nextLink'] = page.nextLink;
      body.value = all.slice(page.offset, page.end).map(({ settings, assignments: _, ...p }) => ({ ...p, settingCount: settings.length }));
      return { status: 200, body };
    }
    if (lower.length === 4 && lower[3] === 'assignments') {
      const policy = all.find((p) => p.id.toLowerCase() === lower[2]);
      if (!policy) return { status: 404, error: { code: 'ResourceNotFound', message: `Resource not found: configurationPolicy '${r.segs[2]}'.` } };
      return assignments(
        r,
        'configurationPolicy',
        policy.id,
        policy.assignments ?? [],
        false,
        `deviceManagement/configurationPolicies('${policy.id}')/assignments`,
      );
    }
    if (lower.length === 4 && lower[3] === 'settings') {
      const policy = all.find((p) => p.id.toLowerCase() === lower[2]);
      if (!policy) return { status: 404, error: { code: 'ResourceNotFound', message: `Resource not found: configurationPolicy '${r.segs[2]}'.` } };
      const page = r.page(`configurationPolicySettings:${policy.id}`, policy.settings.length, r.posture.pageSize ?? 25);
      const body: Record<string, unknown> = { '@odata.context': ctx(`deviceManagement/configurationPolicies('${policy.id}')/settings`) };
      if (page.nextLink) body['@odata.nextLink'] = page.nextLink;
      body.value = policy.settings.slice(page.offset, page.end).map((s, i) => ({ id: String(page.offset + i), settingInstance: s }));
      return { status: 200, body };
    }
  }
  return null;
}
