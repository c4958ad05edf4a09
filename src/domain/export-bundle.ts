import { z } from 'zod';

/**
 * What an offline break-glass bundle holds once decrypted: a JSON document, so `age -d` alone
 * gives something a person (or jq) can read when Keywarden is not around. Pure: no I/O here.
 *
 *   {
 *     "format": "keywarden-export", "version": 1,
 *     "createdAt": "2026-…Z", "createdBy": "…",
 *     "clients": [{ "id": "…", "name": "Contoso" }],
 *     "keys": [{ "client": "Contoso", "device": "LAPTOP-01", "volume": "C: OperatingSystem",
 *                "keyId": "…", "recoveryPassword": "…", "state": "active",
 *                "createdAt": …, "firstSeenAt": …, "lastSeenAt": …, "sources": ["agent: …"] }]
 *   }
 */
export const BUNDLE_FORMAT = 'keywarden-export';
export const BUNDLE_VERSION = 1;

/** Key states that may still unlock a drive, and so belong in a break-glass copy. */
export const EXPORTABLE_STATES = ['active', 'disclosed', 'conflict'] as const;

const BundleKeySchema = z.object({
  client: z.string(),
  clientId: z.string(),
  device: z.string().nullable(),
  volume: z.string().nullable(),
  keyId: z.string().nullable(),
  recoveryPassword: z.string(),
  state: z.string(),
  createdAt: z.string().nullable(),
  firstSeenAt: z.string(),
  lastSeenAt: z.string(),
  sources: z.array(z.string()),
});
export type BundleKeyEntry = z.infer<typeof BundleKeySchema>;

const BundleSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  version: z.literal(BUNDLE_VERSION),
  createdAt: z.string(),
  createdBy: z.string(),
  clients: z.array(z.object({ id: z.string(), name: z.string() })),
  keys: z.array(BundleKeySchema),
});
export type Bundle = z.infer<typeof BundleSchema>;

export function serializeBundle(b: Bundle): string {
  return JSON.stringify(b, null, 2) + '\n';
}

/** Parses decrypted bundle text; null when it is not a bundle this version understands. */
export function parseBundle(text: string): Bundle | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const r = BundleSchema.safeParse(json);
  return r.success ? r.data : null;
}

/** The 8 groups of a recovery password, for the printed sheet (numbered 1–8 there). */
export function passwordGroups(password: string): string[] {
  const groups = password.split('-');
  return groups.length === 8 ? groups : (password.replace(/\D/g, '').match(/.{1,6}/g) ?? []);
}

/** Key entries grouped by device (keys without a device last), in a stable printable order. */
export function keysByDevice(keys: readonly BundleKeyEntry[]): { client: string; device: string | null; keys: BundleKeyEntry[] }[] {
  const groups = new Map<string, { client: string; device: string | null; keys: BundleKeyEntry[] }>();
  for (const k of keys) {
    const id = `${k.clientId}\u0000${k.device ?? ''}`;
    const g = groups.get(id) ?? groups.set(id, { client: k.client, device: k.device, keys: [] }).get(id)!;
    g.keys.push(k);
  }
  return [...groups.values()].sort(
    (a, b) => a.client.localeCompare(b.client) || Number(a.device === null) - Number(b.device === null) || (a.device ?? '').localeCompare(b.device ?? ''),
  );
}

/** A file name that sorts by time: keywarden-export-<scope>-20261126T131500Z.age */
export function bundleFileName(scope: string, at: string): string {
  const slug =
    scope
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'client';
  const stamp = at.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `keywarden-export-${slug}-${stamp}.age`;
}
