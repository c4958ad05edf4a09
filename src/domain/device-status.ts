/**
 * When a volume or a device counts as encrypted, and when a device's recovery key counts as
 * escrowed: one definition for the clients overview and devices table, the compliance rules and
 * the agent's findings. Pure. Where SQL has to aggregate over many devices, it computes these same
 * predicates from the constants below (src/modules/devices/device-table.repo.ts), and
 * test/device-status.test.ts checks that both agree.
 */

export type Encryption = 'encrypted' | 'not-encrypted' | 'unknown';
export const ENCRYPTIONS: readonly Encryption[] = ['encrypted', 'not-encrypted', 'unknown'];

/** Key states that are still the device's current protector (not replaced, not rotated away, not destroyed). */
export const CURRENT_KEY_STATES = ['active', 'disclosed', 'conflict'] as const;

/** Volume statuses whose data is clear or becoming clear: such a volume is not encrypted. */
export const NOT_ENCRYPTED_STATUSES = ['FullyDecrypted', 'DecryptionInProgress', 'DecryptionSuspended'] as const;

export const isCurrentKey = (state: string): boolean => (CURRENT_KEY_STATES as readonly string[]).includes(state);

/**
 * A volume is encrypted when its status is known and its data is encrypted or being encrypted
 * (a paused encryption included). null means the status was never reported.
 */
export function volumeEncryption(status: string | null): Encryption {
  if (status === null) return 'unknown';
  return (NOT_ENCRYPTED_STATUSES as readonly string[]).includes(status) ? 'not-encrypted' : 'encrypted';
}

export const isVolumeEncrypted = (status: string | null): boolean => volumeEncryption(status) === 'encrypted';

/** A device is not encrypted when one of its volumes is not; encrypted when at least one is and none is not; unknown otherwise. */
export function deviceEncryption(volumeStatuses: readonly (string | null)[]): Encryption {
  const each = volumeStatuses.map(volumeEncryption);
  if (each.includes('not-encrypted')) return 'not-encrypted';
  return each.includes('encrypted') ? 'encrypted' : 'unknown';
}

/**
 * A device's key is escrowed when the vault holds at least one current key for it and no escrow
 * finding of the agent is open (a recovery password the vault lacks or holds differently, an
 * encrypted volume without a recovery password).
 */
export function isDeviceEscrowed(device: { keyStates: readonly string[]; openFindings: number }): boolean {
  return device.keyStates.some(isCurrentKey) && device.openFindings === 0;
}

/** The keys of the vault that escrow a recovery-password protector: same key ID (normalized). */
export function keysEscrowing<K>(protectorId: string, keys: readonly K[], keyIdOf: (k: K) => string | null): K[] {
  return keys.filter((k) => keyIdOf(k) === protectorId);
}

/**
 * When a device was last seen, in the client page's four bands: within 24 hours, 7 days, 30 days,
 * or longer ago. The chart counts with `lastSeenBand` and the devices table filters with
 * `lastSeenBounds`, so a bar and its filtered list always agree.
 */
export type LastSeenBand = 'day' | 'week' | 'month' | 'older';
export const LAST_SEEN_BANDS: readonly LastSeenBand[] = ['day', 'week', 'month', 'older'];
const BAND_DAYS: Record<Exclude<LastSeenBand, 'older'>, number> = { day: 1, week: 7, month: 30 };

export function lastSeenBand(lastSeenAt: string, now: number): LastSeenBand {
  const age = (now - Date.parse(lastSeenAt)) / 86_400_000;
  if (age <= BAND_DAYS.day) return 'day';
  if (age <= BAND_DAYS.week) return 'week';
  if (age <= BAND_DAYS.month) return 'month';
  return 'older';
}

/** The band as ISO-time bounds on last_seen_at: seen at or after `from`, and before `before`. */
export function lastSeenBounds(band: LastSeenBand, now: number): { from?: string; before?: string } {
  const ago = (days: number) => new Date(now - days * 86_400_000).toISOString();
  switch (band) {
    case 'day':
      return { from: ago(BAND_DAYS.day) };
    case 'week':
      return { from: ago(BAND_DAYS.week), before: ago(BAND_DAYS.day) };
    case 'month':
      return { from: ago(BAND_DAYS.month), before: ago(BAND_DAYS.week) };
    case 'older':
      return { before: ago(BAND_DAYS.month) };
  }
}
