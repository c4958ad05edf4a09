import { parseEncryptionMethod, parseKeyProtectorType, parseLockStatus, parseProtectionStatus, parsePsVolumeType, parseVolumeStatus } from './bitlocker.js';
import { parseKeyId } from './key-id.js';
import { normalizeMountPoint } from './volume.js';
import { parseManageBdeReport, type ReportedProtector, type ReportedVolume } from './manage-bde-report.js';

export type { ReportedProtector, ReportedVolume };

/** What a check-in's `volumes` entries look like once validated (names or PS 5.1 integers). */
export type RawVolume = {
  mountPoint: string;
  volumeType?: string | number | null;
  volumeStatus?: string | number | null;
  protectionStatus?: string | number | null;
  lockStatus?: string | number | null;
  encryptionMethod?: string | number | null;
  encryptionPercentage?: number | null;
  keyProtectors?: { id: string; type?: string | number | null; fingerprint?: string | null }[] | null;
};

/**
 * Turns a check-in's volumes (or its manage-bde fallback text) into one canonical shape. Unknown
 * enum values become null rather than errors: a newer Windows must not break check-ins.
 */
export function normalizeReport(input: { volumes?: RawVolume[] | null; manageBde?: { status: string; protectors: string } | null }): {
  volumes: ReportedVolume[];
  problems: string[];
} {
  const problems: string[] = [];
  let volumes: ReportedVolume[] = [];
  if (input.volumes?.length) {
    for (const v of input.volumes) {
      const mountPoint = normalizeMountPoint(v.mountPoint);
      if (!mountPoint) {
        problems.push('a volume without a mount point was skipped');
        continue;
      }
      const protectors: ReportedProtector[] = [];
      for (const p of v.keyProtectors ?? []) {
        const id = parseKeyId(p.id);
        if (!id.ok) {
          problems.push(`a key protector of ${mountPoint} has an unreadable id`);
          continue;
        }
        protectors.push({ id: id.value, type: parseKeyProtectorType(p.type), fingerprint: p.fingerprint ? p.fingerprint.toLowerCase() : null });
      }
      volumes.push({
        mountPoint,
        volumeType: parsePsVolumeType(v.volumeType),
        volumeStatus: parseVolumeStatus(v.volumeStatus),
        protectionStatus: parseProtectionStatus(v.protectionStatus),
        lockStatus: parseLockStatus(v.lockStatus),
        encryptionMethod: parseEncryptionMethod(v.encryptionMethod),
        encryptionPercentage: typeof v.encryptionPercentage === 'number' ? v.encryptionPercentage : null,
        protectors,
      });
    }
  } else if (input.manageBde) {
    const parsed = parseManageBdeReport(input.manageBde.status, input.manageBde.protectors);
    volumes = parsed.volumes;
    problems.push(...parsed.problems);
  }
  // One entry per mount point: the last report of a volume wins.
  const byMount = new Map(volumes.map((v) => [v.mountPoint, v]));
  return { volumes: [...byMount.values()], problems };
}
