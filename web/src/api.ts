/**
 * The one way the console talks to the server: the public /api/v1, with the session cookie (sent
 * by the browser, httpOnly) and the CSRF token from sign-in on every change. The CSRF token is
 * kept in sessionStorage so a reload keeps working; it is useless without the cookie, and no
 * recovery password or API token is ever stored anywhere but component state.
 */
const CSRF_KEY = 'kw.csrf';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  readonly fields: { field: string; message: string }[] | undefined;
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>, fields?: { field: string; message: string }[]) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.fields = fields;
  }
}

export const csrf = {
  get: () => sessionStorage.getItem(CSRF_KEY),
  set: (token: string) => sessionStorage.setItem(CSRF_KEY, token),
  clear: () => sessionStorage.removeItem(CSRF_KEY),
};

/** Called when any request answers 401: the app goes back to sign-in. */
let onUnauthenticated: () => void = () => {};
export function setUnauthenticatedHandler(fn: () => void): void {
  onUnauthenticated = fn;
}

async function request<T>(method: string, path: string, body?: unknown, opts: { raw?: boolean; quiet401?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') {
    const token = csrf.get();
    if (token) headers['x-csrf-token'] = token;
  }
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'The Keywarden server cannot be reached. Check your connection, then try again.');
  }
  if (opts.raw && res.ok) return res as unknown as T;
  const text = await res.text();
  const json = text ? safeJson(text) : undefined;
  if (!res.ok) {
    const b = (json ?? {}) as { error?: string; message?: string; details?: Record<string, unknown>; fields?: { field: string; message: string }[] };
    if (res.status === 401 && !opts.quiet401) onUnauthenticated();
    throw new ApiError(res.status, b.error ?? 'error', b.message ?? `The server answered ${res.status}.`, b.details, b.fields);
  }
  return json as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, body),
  del: <T>(path: string, body?: unknown) => request<T>('DELETE', path, body),
  /** Sign-in and setup answer 401 as part of their flow: no redirect. */
  postQuiet: <T>(path: string, body: unknown) => request<T>('POST', path, body, { quiet401: true }),
  getQuiet: <T>(path: string) => request<T>('GET', path, undefined, { quiet401: true }),
  /** A file download (CSV): fetched with the cookie, then saved through a temporary link. */
  async download(path: string, fallbackName: string): Promise<void> {
    const res = await request<Response>('GET', path, undefined, { raw: true });
    const blob = await res.blob();
    const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? fallbackName;
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  },
};

export const qs = (params: Record<string, string | number | boolean | undefined | null>) => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
};

// ------------------------------------------------------------------ shapes the API answers
export type Role = 'owner' | 'admin' | 'technician' | 'helpdesk' | 'auditor' | 'client-viewer';
export type User = {
  id: string;
  email: string;
  name: string;
  role: Role;
  clients: 'all' | string[];
  status: 'active' | 'disabled';
  mfaEnabled: boolean;
  lastLoginAt: string | null;
  createdAt: string;
};
export type Me = {
  actor: { type: string; id: string; name: string; role: Role; clients: 'all' | string[] };
  /** What this person may do now, from the server's permission table. */
  permissions: string[];
  /** The clients whose keys this person may reveal. */
  revealClients: 'all' | string[];
  user: User | null;
  mfaEnrolmentRequired: boolean;
  stepUpValidUntil: string | null;
};
export type KeySummary = {
  id: string;
  keyId: string | null;
  client: { id: string; name: string };
  device: { id: string; name: string } | null;
  volume: { mountPoint: string | null; type: string } | null;
  state: string;
  /** The device's agent reported a different password for this key: it may not unlock. */
  mayNotUnlock: boolean;
  createdAt: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  sources: { type: string; ref: string; firstSeenAt: string; lastSeenAt: string }[];
};
export type Client = { id: string; name: string; createdAt: string; viewerCanReveal: boolean; devices: number; keys: number };
export type AuditEvent = {
  seq: number;
  id: string;
  occurredAt: string;
  actorType: string;
  actorId: string;
  actorName: string;
  action: string;
  clientId: string | null;
  targetType: string | null;
  targetId: string | null;
  reasonCode: string | null;
  ticket: string | null;
  outcome: string;
  ip: string | null;
  userAgent: string | null;
  details: Record<string, unknown> | null;
  /** Derived by the server: the actor, action and reason in words; device and key ID from the details. */
  actor: string;
  actionLabel: string;
  reasonLabel: string | null;
  device: string | null;
  keyId: string | null;
  detailFields: { label: string; value: string; internal: boolean }[];
};

// ------------------------------------------------------------------ the Windows agent: jobs, health, rollout kit
/** What the agent can be asked to do on a device (docs/agent-protocol.md). */
export type JobKind =
  'rotate' | 'backup' | 'backup-to-ad' | 'backup-to-entra' | 'enable-encryption' | 'resume-protection' | 'add-recovery-password' | 're-escrow';
/** The encryption method enable-encryption asks Windows for; 'default' leaves it to Windows. */
export type EncryptionMethodChoice = 'default' | 'XtsAes128' | 'XtsAes256' | 'Aes128' | 'Aes256';
export type Job = {
  id: string;
  kind: string;
  state: string;
  mountPoint: string | null;
  protectorId: string | null;
  attempts: number;
  maxAttempts: number;
  detail: string | null;
  createdAt: string;
  expiresAt: string;
  finishedAt: string | null;
  /** enable-encryption: the method asked for (null: Windows' default) and whether only used space is encrypted. */
  encryptionMethod: string | null;
  usedSpaceOnly: boolean | null;
  /** The recovery password the job escrowed (rotate: the new one); null until one was. */
  newProtectorId: string | null;
  /** Who asked: manual | bulk | policy | disclosure | rotation (null for old jobs). */
  origin: string | null;
  sentAt: string | null;
};
/** A job in a client's list: the same, with its device. */
export type ClientJob = Job & { device: { id: string; name: string } };
/** POST /clients/{id}/agent-jobs: what was (or, with dryRun, would be) queued, and why the rest was not. */
export type BulkQueueResult = {
  queued: number;
  dryRun: boolean;
  /** The jobs queued (dry run: that would be, jobId null). */
  jobs: { jobId: string | null; deviceId: string; device: string; kind: JobKind; mountPoint: string | null; protectorId: string | null }[];
  skipped: { deviceId: string; device: string | null; why: string }[];
};
export type AgentHealth = {
  /** The agent version this server ships (agent/Keywarden-Agent.ps1). */
  current: string;
  /** version null: agents that did not report one. */
  versions: { version: string | null; devices: number }[];
  devices: {
    id: string;
    name: string;
    client: { id: string; name: string };
    agentVersion: string | null;
    lastCheckinAt: string | null;
    stale: boolean;
    outdated: boolean;
    failingJobs: number;
  }[];
  /** Jobs that failed or expired in the last 7 days. */
  failingJobs: { id: string; kind: string; state: 'failed' | 'expired'; device: { id: string; name: string }; detail: string | null; finishedAt: string }[];
};
/** GET /agent/files (public): the rollout kit the server serves, byte for byte the repository's files. */
export type AgentFiles = { version: string; files: { name: string; sha256: string; size: number; url: string }[] };
