/**
 * A tiny success-or-failure value used across the domain layer.
 *
 * Why not exceptions: validation failures here are expected, ordinary
 * outcomes (a technician mistyped a digit, a CSV row is broken). Returning a
 * value forces every caller to handle the failure path and keeps the
 * human-readable `reason` next to the data it describes.
 *
 * `reason` is product wording meant to be shown to a user. By convention in
 * this codebase a reason NEVER echoes secret input (recovery-password digits).
 */
export type Result<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Build a success value. */
export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

/** Build a failure value. `reason` must not contain secret input. */
export function fail<T = never>(reason: string): Result<T> {
  return { ok: false, reason };
}
