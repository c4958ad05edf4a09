import { z } from 'zod';

/**
 * The agent protocol (docs/agent-protocol.md) as zod schemas: bounded, strict (unknown fields are
 * refused), shared by the routes (validation, OpenAPI) and the service (types).
 */
const Str = (max: number) => z.string().max(max);
const Guidish = z.string().min(32).max(40).regex(/^\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?$/, 'must be a GUID');
const EnumValue = z.union([z.string().max(60), z.number().int().min(0).max(1000)]).nullable().optional();
const Time = z.iso.datetime({ offset: true });

export const DeviceIdentity = z.strictObject({
  hostname: Str(255).min(1),
  domain: Str(255).nullable().optional(),
  domainJoined: z.boolean().nullable().optional(),
  serialNumber: Str(128).nullable().optional(),
  manufacturer: Str(128).nullable().optional(),
  model: Str(128).nullable().optional(),
  smbiosUuid: Str(64).nullable().optional(),
  entraDeviceId: Guidish.nullable().optional(),
});

export const EnrollRequest = z.strictObject({
  enrollmentToken: Str(200).min(1),
  agentVersion: Str(40).optional(),
  device: DeviceIdentity,
  /**
   * The device credential (kwd_…) the agent held before this enrollment, if any: proof that it is
   * the machine it says it is, so it gets its device record back without an admin's approval.
   */
  previousCredential: Str(200).nullable().optional(),
});
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z.object({
  deviceId: z.string(),
  credential: z.string(),
  fingerprintSalt: z.string(),
  checkinIntervalSeconds: z.number(),
  /**
   * true: the device matched a device the vault already knows, without proof. The agent works
   * under a device record of its own until an admin links it (POST /devices/{deviceId}/approve-agent-link).
   */
  pendingApproval: z.boolean(),
});

export const DeviceFacts = DeviceIdentity.extend({
  os: z.strictObject({ caption: Str(200).nullable().optional(), version: Str(60).nullable().optional(), build: Str(60).nullable().optional() }).nullable().optional(),
  entra: z
    .strictObject({
      joinType: z.enum(['AzureAdJoined', 'HybridJoined', 'WorkplaceJoined', 'NotJoined']).nullable().optional(),
      deviceId: Guidish.nullable().optional(),
      tenantId: Guidish.nullable().optional(),
    })
    .nullable()
    .optional(),
  /**
   * Agent 1.2.0 and later: the UPN of the account that joined the device to Entra ID (null when
   * Windows knows none that is a person); older agents leave it out, which changes nothing. The
   * bound here is loose on purpose: a value that is no UPN (src/domain/primary-user.ts) is ignored
   * with a warning in the device's facts and never fails the check-in.
   */
  primaryUser: Str(1000).nullable().optional(),
  adComputerName: Str(255).nullable().optional(),
  tpm: z
    .strictObject({
      present: z.boolean().nullable().optional(),
      ready: z.boolean().nullable().optional(),
      enabled: z.boolean().nullable().optional(),
      activated: z.boolean().nullable().optional(),
      specVersion: Str(60).nullable().optional(),
      manufacturer: Str(60).nullable().optional(),
    })
    .nullable()
    .optional(),
  secureBoot: z.boolean().nullable().optional(),
}).strict();

export const Protector = z.strictObject({
  id: Guidish,
  type: EnumValue,
  fingerprint: z.string().regex(/^[0-9a-f]{64}$/i, 'must be 64 hex characters').nullable().optional(),
});

export const Volume = z.strictObject({
  mountPoint: Str(260).min(1),
  volumeType: EnumValue,
  volumeStatus: EnumValue,
  protectionStatus: EnumValue,
  lockStatus: EnumValue,
  encryptionMethod: EnumValue,
  encryptionPercentage: z.number().min(0).max(100).nullable().optional(),
  keyProtectors: z.array(Protector).max(32).nullable().optional(),
});

export const CheckinRequest = z.strictObject({
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  sentAt: Time,
  agentVersion: Str(40).optional(),
  device: DeviceFacts,
  volumes: z.array(Volume).max(64).nullable().optional(),
  manageBde: z.strictObject({ status: Str(200_000), protectors: Str(200_000) }).nullable().optional(),
  events: z
    .array(
      z.strictObject({
        id: z.number().int().min(0).max(100_000),
        time: Time,
        protectorId: Guidish.nullable().optional(),
        volume: Str(260).nullable().optional(),
      }),
    )
    .max(500)
    .nullable()
    .optional(),
  jobResults: z
    .array(
      z.strictObject({
        jobId: z.guid(),
        status: z.enum(['succeeded', 'failed']),
        detail: Str(2000).nullable().optional(),
        newProtectorId: Guidish.nullable().optional(),
        removedProtectorId: Guidish.nullable().optional(),
      }),
    )
    .max(50)
    .nullable()
    .optional(),
});
export type CheckinRequest = z.infer<typeof CheckinRequest>;

/**
 * What an agent can be asked to do. An agent fails a kind it does not know ("unsupported job kind").
 * rotate, enable-encryption, resume-protection and add-recovery-password escrow a recovery password
 * of the volume first (the server refuses their "done" until it answered stored or duplicate).
 */
export const AGENT_JOB_KINDS = [
  'rotate',
  'backup',
  'backup-to-ad',
  'backup-to-entra',
  'enable-encryption',
  'resume-protection',
  'add-recovery-password',
  're-escrow',
] as const;
export type AgentJobKind = (typeof AGENT_JOB_KINDS)[number];
/** The methods enable-encryption may ask for (BitLocker module names); null in an offer: Windows' default. */
export const JOB_ENCRYPTION_METHODS = ['XtsAes128', 'XtsAes256', 'Aes128', 'Aes256'] as const;
export type JobEncryptionMethod = (typeof JOB_ENCRYPTION_METHODS)[number];
/** At most this many passwords are requested per check-in (the rest at the next one); uploads carry at most 32. */
export const MAX_REQUESTED_PASSWORDS = 128;

export const JobOffer = z.object({
  id: z.string(),
  kind: z.enum(AGENT_JOB_KINDS),
  mountPoint: z.string().nullable(),
  protectorId: z.string().nullable(),
  /** enable-encryption only (null otherwise): the method to encrypt with; null = Windows' default. */
  encryptionMethod: z.enum(JOB_ENCRYPTION_METHODS).nullable(),
  /** enable-encryption only (null otherwise): encrypt used space only. */
  usedSpaceOnly: z.boolean().nullable(),
});
export type JobOffer = z.infer<typeof JobOffer>;

export const CheckinResponse = z.object({
  /** At most MAX_REQUESTED_PASSWORDS entries. */
  requestPasswords: z.array(z.object({ mountPoint: z.string(), protectorId: z.string() })).max(MAX_REQUESTED_PASSWORDS),
  /** Empty in a check-in that carries jobResults: the agent runs jobs only from its first check-in of a run. */
  jobs: z.array(JobOffer),
  nextCheckinSeconds: z.number(),
});
export type CheckinResponse = z.infer<typeof CheckinResponse>;

export const UploadRequest = z.strictObject({
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  sentAt: Time,
  jobId: z.guid().nullable().optional(),
  keys: z
    .array(
      z.strictObject({
        mountPoint: Str(260).min(1),
        protectorId: Guidish,
        recoveryPassword: Str(100).min(1),
        volumeType: EnumValue,
      }),
    )
    .min(1)
    .max(32),
});
export type UploadRequest = z.infer<typeof UploadRequest>;

export const UploadResponse = z.object({
  stored: z.array(z.object({ protectorId: z.string(), status: z.enum(['stored', 'duplicate', 'conflict', 'rejected']), reason: z.string().optional() })),
});
export type UploadResponse = z.infer<typeof UploadResponse>;
