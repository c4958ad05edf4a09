/**
 * Shared types for the key-file importers.
 *
 * An import never stops at the first bad row: every usable key becomes an
 * ImportRecord and every unusable row/block becomes an ImportRejection with
 * its line number and a reason, so an admin can fix and re-import just the
 * rejected lines. Only a file that cannot be read at all (unknown format,
 * invalid JSON, CSV without a password column) throws ImportFormatError.
 *
 * SECURITY: rejection reasons and ImportFormatError messages never contain a
 * recovery password, its digits, or other file content: they are fixed
 * wording plus line/column numbers and counts.
 */
import type { VolumeType } from '../volume.js';

export type ImportFormat = 'txt' | 'manage-bde' | 'csv' | 'json';

export const IMPORT_FORMATS: readonly ImportFormat[] = ['txt', 'manage-bde', 'csv', 'json'];

export interface ImportRecord {
  /** 1-based line in the file where this key's data is (JSON: where the object starts). */
  line: number;
  /** Canonical key ID (see parseKeyId), or null when the source has none (RMM exports). */
  keyId: string | null;
  /** Canonical recovery password (see parseRecoveryPassword). */
  recoveryPassword: string;
  deviceName?: string;
  domain?: string;
  serial?: string;
  user?: string;
  /** Entra / Graph `deviceId`, canonical lower-case GUID. */
  entraDeviceId?: string;
  /** See normalizeMountPoint. */
  mountPoint?: string;
  volumeType?: VolumeType;
  /** ISO-8601 UTC (`toISOString()` form). */
  createdAt?: string;
}

export interface ImportRejection {
  line: number;
  /** Product wording; NEVER contains a password or its digits. */
  reason: string;
}

export interface ParsedImport {
  format: ImportFormat;
  records: ImportRecord[];
  rejected: ImportRejection[];
}

/** The whole file is unusable. The message is product wording without secrets. */
export class ImportFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImportFormatError';
  }
}

/** What each format parser returns; `parseImport` adds the format. */
export interface ParsedRows {
  records: ImportRecord[];
  rejected: ImportRejection[];
}
