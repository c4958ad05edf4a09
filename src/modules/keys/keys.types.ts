import type { VolumeType } from '../../domain/volume.js';

/** Lifecycle states of a stored recovery key. */
/** 'destroyed': the password ciphertext was wiped after retention, or its client was offboarded. */
export type KeyState = 'active' | 'superseded' | 'disclosed' | 'rotated' | 'conflict' | 'destroyed';
export type SourceType = 'import' | 'agent' | 'entra' | 'ad';

/** One key as a source reports it; the same shape for files, the agent, Graph and AD. */
export type KeyReport = {
  keyId: string | null;
  /** Already normalized by src/domain (parseRecoveryPassword). */
  recoveryPassword: string;
  /** id: the device record itself, when the reporter knows it (the agent); then nothing is matched by name. */
  device?: { id?: string; name?: string; domain?: string; serial?: string; user?: string; entraDeviceId?: string };
  volume?: { mountPoint?: string; volumeType?: VolumeType };
  createdAt?: string | null;
};

export type IngestOutcome = 'imported' | 'duplicate' | 'conflict';
export type IngestResult = {
  imported: number;
  duplicates: number;
  conflicts: number;
  /** Per report, in order: what happened and which key record it is now. */
  outcomes: IngestOutcome[];
  keyRowIds: string[];
  /** The devices the reports were filed under, each once, in first-seen order (ids and names, no secret). */
  devices: { id: string; name: string }[];
  /** The devices of the key records in keyRowIds as they are now stored, each once (what compliance re-evaluates). */
  deviceIds: string[];
};

/** Key metadata as lists and searches show it. Never carries the password. */
export type KeySummary = {
  id: string;
  keyId: string | null;
  client: { id: string; name: string };
  device: { id: string; name: string } | null;
  volume: { mountPoint: string | null; type: string } | null;
  state: KeyState;
  /** The device's agent reported a different password for this key (an open mismatch finding). */
  mayNotUnlock: boolean;
  createdAt: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  /** removedAt: when that source (an Entra tenant, an AD connection) stopped listing the key; the key is kept. */
  sources: { type: string; ref: string; firstSeenAt: string; lastSeenAt: string; removedAt: string | null }[];
};

export type RevealedKey = KeySummary & { recoveryPassword: string };
