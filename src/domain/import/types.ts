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

export interface ParsedImport extends ParsedRows {
  format: ImportFormat;
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
  /** The first MAX_REPORTED_REJECTIONS rejections, in line order. */
  rejected: ImportRejection[];
  /** All rejections, including those not listed. */
  rejectedCount: number;
}

/**
 * How many rejections are kept with their line and reason. A file of a million bad rows must
 * cost a count, not a million objects in memory and in the answer.
 */
export const MAX_REPORTED_REJECTIONS = 100;

/**
 * The longest line the text formats read (64 KiB). No key file has lines anywhere near this; a
 * longer line is one rejected row, and no pattern ever runs over it.
 */
export const MAX_LINE_CHARS = 64 * 1024;
export const LONG_LINE_REASON = 'this line is longer than 64 KB and was not read';

/** Collects rejections: counts all of them, keeps the first MAX_REPORTED_REJECTIONS. */
export class Rejections {
  readonly list: ImportRejection[] = [];
  count = 0;

  add(line: number, reason: string): void {
    this.count++;
    if (this.list.length < MAX_REPORTED_REJECTIONS) this.list.push({ line, reason });
  }

  rows(records: ImportRecord[]): ParsedRows {
    return { records, rejected: this.list, rejectedCount: this.count };
  }
}
