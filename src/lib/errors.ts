/**
 * The few error classes Keywarden uses. Every message is written for the person at the
 * keyboard, quotes what they sent (never a secret) and maps to one HTTP status and one CLI
 * exit code, so the CLI and (later) the HTTP error handler translate errors in one place.
 */
export type ErrorKind =
  | 'bad_request'
  | 'not_found'
  | 'conflict'
  | 'forbidden'
  | 'unauthenticated'
  | 'rate_limited'
  | 'step_up_required'
  | 'approval_required'
  | 'unavailable'
  | 'vault';

const STATUS: Record<ErrorKind, number> = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  step_up_required: 403,
  approval_required: 403,
  /** A service Keywarden depends on for this step (a PSA) cannot be reached now. */
  unavailable: 503,
  vault: 500,
};

export class AppError extends Error {
  readonly kind: ErrorKind;
  readonly details?: Record<string, unknown>;
  constructor(kind: ErrorKind, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'AppError';
    this.kind = kind;
    this.details = details;
  }
  get status(): number {
    return STATUS[this.kind];
  }
}

export const badRequest = (message: string, details?: Record<string, unknown>) => new AppError('bad_request', message, details);
export const notFound = (message: string) => new AppError('not_found', message);
export const conflict = (message: string) => new AppError('conflict', message);
export const forbidden = (message: string) => new AppError('forbidden', message);
export const unauthenticated = (message: string) => new AppError('unauthenticated', message);
export const rateLimited = (message: string, retryAfterSeconds: number) => new AppError('rate_limited', message, { retryAfterSeconds });
export const stepUpRequired = (action = 'reveal a recovery key') =>
  new AppError('step_up_required', `Confirm it is you: enter a current code from your authenticator app, or use your passkey (step-up), to ${action}.`);
/** A reveal that needs a second person's approval first (two-person reveal); details name the key record, nothing secret. */
export const approvalRequired = (message: string, details: { keyRecordId: string; requestId?: string | null }) =>
  new AppError('approval_required', message, details);
/** Problems with the vault itself: wrong master key, missing data key, undecryptable row. */
export const unavailable = (message: string, details?: Record<string, unknown>) => new AppError('unavailable', message, details);
export const vaultError = (message: string) => new AppError('vault', message);

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}
