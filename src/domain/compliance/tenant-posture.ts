/**
 * Tenant posture: two Entra ID / Intune settings of a client's tenant that decide how safe its
 * BitLocker keys are, read from Microsoft Graph at each sync (src/modules/graph/posture.ts). Pure
 * code: what Graph's documented shapes mean, and what Keywarden says about them.
 *
 * - usersCanReadOwnKeys: the authorization policy's
 *   `defaultUserRolePermissions.allowedToReadBitlockerKeysForOwnedDevice` (Entra's default: yes).
 * - intuneRequiresEscrow: whether every Intune policy that turns BitLocker on also says "do not enable
 *   BitLocker until recovery information is stored" (Endpoint protection template:
 *   `bitLockerSystemDrivePolicy.recoveryOptions.enableBitLockerAfterRecoveryInformationToStore`;
 *   settings catalog: the BitLocker CSP's OSRequireActiveDirectoryBackup under SystemDrivesRecoveryOptions).
 *   Only policies that are assigned count: an Intune policy applies to the groups (or all devices, all
 *   users) it is assigned to, and to nothing else. A requiring policy assigned to nobody (or only to
 *   excluded groups) is no assurance, so it cannot make the answer "yes"; a non-requiring policy
 *   assigned to nobody harms no device, so it does not make it "no".
 *
 * Client-level notes (not device findings: a tenant setting is no device's state, and the device
 * consequence, an unescrowed key, is already the finding recovery_key_not_escrowed) with stable codes.
 */
export type Tristate = 'yes' | 'no' | 'unknown';
/** What a policy's settings say (templatePolicy, catalogPolicy). */
export type BitLockerPolicy = { name: string; kind: 'endpoint protection profile' | 'settings catalog'; requiresEscrow: boolean };
/** What its assignments say (policyAssignments). */
export type PolicyAssignment = {
  /**
   * Whether at least one including assignment (a group, all devices, all users) makes the policy
   * apply to some device. null: not read (the assignments could not be read, or rows stored before
   * Keywarden read assignments); the rules then assume the worst for the answer (see intuneRequiresEscrow).
   */
  assigned: boolean | null;
  /** The assignments in words: "all devices", "2 groups (1 group excluded)", "no group", "only excluded groups (1)", "not read". */
  assignedTo: string;
};
export type PosturePolicy = BitLockerPolicy & PolicyAssignment;
export type TenantPosture = {
  usersCanReadOwnKeys: Tristate;
  usersCanReadOwnKeysReason: string | null;
  intuneRequiresEscrow: Tristate;
  intuneReason: string | null;
  /** The Intune policies that turn BitLocker on, and whether each requires escrow first. */
  intunePolicies: PosturePolicy[];
};

export const POSTURE_NOTE_CODES = ['entra_consent_lost', 'entra_users_read_own_keys', 'intune_escrow_not_required'] as const;
export type PostureNoteCode = (typeof POSTURE_NOTE_CODES)[number];
export type PostureNote = { code: PostureNoteCode; title: string; explanation: string; fix: string };
export type PostureLine = { question: string; answer: Tristate; text: string };

/**
 * Each note's title and fix (its explanation names the tenant's own facts: dates, policy names).
 * Shared with the PSA tickets a client's rules may open for these notes (finding-tickets.ts).
 */
export const POSTURE_NOTE_INFO: Record<PostureNoteCode, { title: string; fix: string }> = {
  entra_consent_lost: {
    title: "Keywarden's access to this Entra ID tenant was withdrawn",
    fix: "Send an administrator of the client's tenant a new consent link (Settings › Connections › Consent link), or check the client's own app registration.",
  },
  entra_users_read_own_keys: {
    title: 'End users can read their own BitLocker keys in Entra ID',
    fix: 'Entra admin centre > Devices > Device settings: "Restrict non-admin users from recovering the BitLocker key(s) for their owned devices" = Yes.',
  },
  intune_escrow_not_required: {
    title: 'Intune encrypts without requiring the recovery key escrowed first',
    fix: 'In the Intune BitLocker policy set "Store recovery information in Microsoft Entra ID before enabling BitLocker" (settings catalog: Do not enable BitLocker until recovery information is stored to AD DS for operating system drives = True).',
  },
};

export const POSTURE_PERMISSION = { policy: 'Policy.Read.All', intune: 'DeviceManagementConfiguration.Read.All' } as const;

const SETTING = {
  recoveryOptions: 'device_vendor_msft_bitlocker_systemdrivesrecoveryoptions',
  requireBackup: 'device_vendor_msft_bitlocker_systemdrivesrecoveryoptions_osrequireactivedirectorybackup_name',
  bitlockerPrefix: 'device_vendor_msft_bitlocker_',
} as const;

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null);
const text = (v: unknown, max = 200) => (typeof v === 'string' ? v.slice(0, max) : '');

/**
 * `allowedToReadBitlockerKeysForOwnedDevice` from GET policies/authorizationPolicy: the v1.0 answer
 * is the object; beta's plain path answers a collection holding it. Absent → unknown.
 */
export function usersCanReadOwnKeys(answer: unknown): Tristate {
  const a = obj(answer);
  const policy = a && Array.isArray(a.value) ? obj(a.value[0]) : a;
  const v = obj(policy?.defaultUserRolePermissions)?.allowedToReadBitlockerKeysForOwnedDevice;
  return v === true ? 'yes' : v === false ? 'no' : 'unknown';
}

/** An Endpoint protection profile that turns BitLocker on or sets OS drive recovery options; else null. */
export function templatePolicy(config: unknown): BitLockerPolicy | null {
  const c = obj(config);
  if (!c || c['@odata.type'] !== '#microsoft.graph.windows10EndpointProtectionConfiguration') return null;
  const recovery = obj(obj(c.bitLockerSystemDrivePolicy)?.recoveryOptions);
  if (c.bitLockerEncryptDevice !== true && !recovery) return null;
  return {
    name: text(c.displayName) || 'unnamed profile',
    kind: 'endpoint protection profile',
    requiresEscrow: recovery?.enableBitLockerAfterRecoveryInformationToStore === true,
  };
}

type Instance = { settingDefinitionId?: unknown; choiceSettingValue?: { value?: unknown; children?: unknown } };
function* instances(list: unknown): Generator<Instance> {
  if (!Array.isArray(list)) return;
  for (const item of list) {
    const i = obj(item) as Instance | null;
    if (!i) continue;
    yield i;
    yield* instances(obj(i.choiceSettingValue)?.children);
  }
}
const enabled = (i: Instance) => {
  const v = text(obj(i.choiceSettingValue)?.value, 300);
  return v === `${String(i.settingDefinitionId)}_1`;
};

/**
 * A settings catalog policy with BitLocker CSP settings (its GET …/settings items, each
 * `{settingInstance}`); null when it sets nothing of BitLocker.
 */
export function catalogPolicy(name: string, settings: unknown[]): BitLockerPolicy | null {
  const all = [...instances(settings.map((s) => obj(s)?.settingInstance))];
  const ids = all.map((i) => text(i.settingDefinitionId, 300).toLowerCase());
  if (!ids.some((id) => id.startsWith(SETTING.bitlockerPrefix))) return null;
  const options = all.find((i) => text(i.settingDefinitionId, 300).toLowerCase() === SETTING.recoveryOptions);
  const requireBackup = options
    ? [...instances(obj(options.choiceSettingValue)?.children)].find((i) => text(i.settingDefinitionId, 300).toLowerCase() === SETTING.requireBackup)
    : undefined;
  return {
    name: name.slice(0, 200) || 'unnamed policy',
    kind: 'settings catalog',
    requiresEscrow: !!options && enabled(options) && !!requireBackup && enabled(requireBackup),
  };
}

/** Assignment targets (Graph's deviceAndAppManagementAssignmentTarget subtypes) that make a policy apply. */
const INCLUDING = {
  '#microsoft.graph.allDevicesAssignmentTarget': 'allDevices',
  '#microsoft.graph.allLicensedUsersAssignmentTarget': 'allUsers',
  '#microsoft.graph.groupAssignmentTarget': 'group',
  '#microsoft.graph.configurationManagerCollectionAssignmentTarget': 'collection',
} as const;
const EXCLUDING = '#microsoft.graph.exclusionGroupAssignmentTarget';
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
const and = (parts: string[]) => (parts.length < 2 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`);

/**
 * A policy's assignments (GET …/{id}/assignments items, each `{target: {'@odata.type', groupId?}}`),
 * the same shape for Endpoint protection profiles (v1.0 deviceConfigurationAssignment) and the settings
 * catalog (beta deviceManagementConfigurationPolicyAssignment). A target type Keywarden does not know
 * is not counted as including: it cannot tell whom it reaches, and a "yes" must not rest on a guess.
 */
export function policyAssignments(list: unknown[]): Omit<PolicyAssignment, 'assigned'> & { assigned: boolean } {
  const n = { allDevices: 0, allUsers: 0, group: 0, collection: 0, excluded: 0 };
  for (const item of list) {
    const type = text(obj(obj(item)?.target)?.['@odata.type'], 100);
    if (type === EXCLUDING) n.excluded++;
    else if (Object.hasOwn(INCLUDING, type)) n[INCLUDING[type as keyof typeof INCLUDING]]++;
  }
  const parts = [
    ...(n.allDevices ? ['all devices'] : []),
    ...(n.allUsers ? ['all users'] : []),
    ...(n.group ? [count(n.group, 'group')] : []),
    ...(n.collection ? [count(n.collection, 'Configuration Manager collection')] : []),
  ];
  if (parts.length) return { assigned: true, assignedTo: and(parts) + (n.excluded ? ` (${count(n.excluded, 'group')} excluded)` : '') };
  return { assigned: false, assignedTo: n.excluded ? `only excluded groups (${n.excluded})` : 'no group' };
}

/** The assignment of a policy whose assignments Keywarden did not read. */
export const NOT_READ: PolicyAssignment = { assigned: null, assignedTo: 'not read' };

/** Policies that may apply to some device: assigned, or not known to be unassigned. */
const mayApply = (ps: PosturePolicy[]) => ps.filter((p) => p.assigned !== false);
/** Policies that require escrow but apply to no device. */
const unassignedRequiring = (ps: PosturePolicy[]) => ps.filter((p) => p.requiresEscrow && p.assigned === false);

/**
 * Yes when some assigned policy requires escrow first and no policy that may apply does not; no
 * otherwise. A policy whose assignments were not read counts against a "yes" either way: it may
 * apply (so if it does not require escrow, the answer is no) and it is not known to apply (so it
 * cannot be what makes the answer yes).
 */
export function intuneRequiresEscrow(policies: PosturePolicy[]): Tristate {
  const applying = mayApply(policies);
  return applying.some((p) => p.requiresEscrow && p.assigned === true) && applying.every((p) => p.requiresEscrow) ? 'yes' : 'no';
}

/**
 * Why a "no" is a no although a policy requires escrow: the requiring policies are assigned to
 * nobody. Null when no such policy exists (a plain "no", said by postureLines).
 */
export function intuneNoReason(policies: PosturePolicy[]): string | null {
  if (intuneRequiresEscrow(policies) !== 'no') return null;
  const idle = unassignedRequiring(policies);
  if (!idle.length) return null;
  return (
    idle
      .slice(0, 5)
      .map(
        (p) =>
          `"${p.name}" requires it but ${p.assignedTo.startsWith('only excluded') ? 'is assigned only to excluded groups' : 'is not assigned to any group'}`,
      )
      .join('; ') + (idle.length > 5 ? `; and ${idle.length - 5} more` : '')
  );
}

const names = (ps: PosturePolicy[]) =>
  ps
    .slice(0, 5)
    .map((p) => `"${p.name}"`)
    .join(', ') + (ps.length > 5 ? ` and ${ps.length - 5} more` : '');

/** Whom a policy reaches, in words, as the compliance card and the report say it per policy. */
export function assignmentText(p: PolicyAssignment): string {
  if (p.assigned === null) return 'assignments not read';
  if (p.assigned) return `assigned to ${p.assignedTo}`;
  return `${p.assignedTo.startsWith('only excluded') ? `assigned ${p.assignedTo}` : 'not assigned to any group'} — applies to no device`;
}

/** One Intune policy in words, for the report: what it says and whom it reaches. */
export function policyText(p: PosturePolicy): string {
  return `"${p.name}" (${p.kind}): ${p.requiresEscrow ? 'requires' : 'does not require'} recovery information stored first; ${assignmentText(p)}`;
}

/** The two answers in product words, as the compliance page and the report show them. */
export function postureLines(p: TenantPosture): PostureLine[] {
  const q1 = 'End users can read their own BitLocker keys in Entra ID';
  const q2 = 'Intune requires recovery information stored before BitLocker is enabled';
  const l1: PostureLine =
    p.usersCanReadOwnKeys === 'yes'
      ? {
          question: q1,
          answer: 'yes',
          text: 'Yes — consider turning this off if you use Keywarden self-service (Entra admin centre > Devices > Device settings).',
        }
      : p.usersCanReadOwnKeys === 'no'
        ? { question: q1, answer: 'no', text: 'No — only administrators read recovery keys in Entra ID.' }
        : {
            question: q1,
            answer: 'unknown',
            text: `Unknown — ${p.usersCanReadOwnKeysReason ?? `grant ${POSTURE_PERMISSION.policy} to the app registration`}.`,
          };
  // Only policies that may apply count (see intuneRequiresEscrow); unassigned ones are named in the "no" that they explain.
  const applying = mayApply(p.intunePolicies);
  const failing = applying.filter((x) => !x.requiresEscrow);
  const idle = intuneNoReason(p.intunePolicies);
  const l2: PostureLine =
    p.intuneRequiresEscrow === 'yes'
      ? { question: q2, answer: 'yes', text: `Yes (${names(applying)}).` }
      : p.intuneRequiresEscrow === 'unknown'
        ? { question: q2, answer: 'unknown', text: `Unknown — ${p.intuneReason ?? `grant ${POSTURE_PERMISSION.intune} to the app registration`}.` }
        : failing.length
          ? { question: q2, answer: 'no', text: `No (${names(failing)}) — devices may encrypt without an escrowed key.` }
          : idle
            ? { question: q2, answer: 'no', text: `No — ${idle}: an Intune policy applies only to the devices and users it is assigned to.` }
            : p.intunePolicies.length
              ? {
                  question: q2,
                  answer: 'no',
                  text: 'No — no assigned Intune policy turns BitLocker on; devices are encrypted some other way (agent, GPO) or not at all.',
                }
              : {
                  question: q2,
                  answer: 'no',
                  text: 'No — no Intune policy turns BitLocker on; devices are encrypted some other way (agent, GPO) or not at all.',
                };
  return [l1, l2];
}

/**
 * Client-level notes. Consent lost (the connection's `consent_lost_at`) comes first: every other
 * answer is stale until it is given again. "Intune does not require escrow" is one only when Intune does turn BitLocker
 * on without it (a client whose devices Intune does not encrypt is not at fault).
 */
export function postureNotes(p: TenantPosture, connection: { consentLostAt: string | null } = { consentLostAt: null }): PostureNote[] {
  const out: PostureNote[] = [];
  if (connection.consentLostAt)
    out.push({
      code: 'entra_consent_lost',
      ...POSTURE_NOTE_INFO.entra_consent_lost,
      explanation: `Since ${connection.consentLostAt.slice(0, 10)} the app Keywarden signs in with has no consent in this tenant (withdrawn, or the app was deleted): new and changed keys in Entra ID are no longer collected. The keys already in the vault are kept. The tenant's other answers are from the last sync that worked.`,
    });
  if (p.usersCanReadOwnKeys === 'yes')
    out.push({
      code: 'entra_users_read_own_keys',
      ...POSTURE_NOTE_INFO.entra_users_read_own_keys,
      explanation:
        'Any user (or anyone who takes over a user account) can read the recovery key of the devices they own, outside Keywarden and its reasons, limits and rotation.',
    });
  // A policy assigned to nobody encrypts no device: it is not this note's fault (the line names it).
  const failing = mayApply(p.intunePolicies).filter((x) => !x.requiresEscrow);
  if (p.intuneRequiresEscrow === 'no' && failing.length)
    out.push({
      code: 'intune_escrow_not_required',
      ...POSTURE_NOTE_INFO.intune_escrow_not_required,
      explanation: `${names(failing)} turn${failing.length === 1 ? 's' : ''} BitLocker on without "Do not enable BitLocker until recovery information is stored": a device that cannot reach Entra ID encrypts with a key nobody holds.`,
    });
  return out;
}
