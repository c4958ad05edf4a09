/**
 * A thin Microsoft Graph client for BitLocker keys: client-credentials token (cached until it
 * expires), retries that honour Retry-After (seconds or an HTTP date) on 429/503/504 and back off
 * exponentially with jitter when there is none, @odata.nextLink paging followed unchanged. No
 * business logic: the graph module decides what to read and what to store. Base URLs come from the
 * connection, so national clouds and the test simulator use the same code.
 */

export type GraphCredentials = {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** e.g. https://login.microsoftonline.com (US Gov: https://login.microsoftonline.us) */
  loginUrl: string;
  /** e.g. https://graph.microsoft.com (US Gov L4: https://graph.microsoft.us) */
  graphUrl: string;
};

export type GraphKey = { id: string; createdDateTime: string; volumeType: string | number | null; deviceId: string | null; key?: string };
export type GraphKeyReadAudit = {
  id: string;
  activityDateTime: string;
  result?: string;
  initiatedBy?: {
    user?: { userPrincipalName?: string | null; ipAddress?: string | null } | null;
    app?: { appId?: string | null; displayName?: string | null } | null;
  };
  targetResources?: { displayName?: string | null }[];
};

export type GraphDevice = {
  id: string;
  deviceId: string;
  displayName: string;
  operatingSystem?: string | null;
  operatingSystemVersion?: string | null;
  trustType?: string | null;
  approximateLastSignInDateTime?: string | null;
};

/** A Graph or login failure, with Graph's own error code and text (never a token or secret). */
export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'GraphError';
  }
}

export type GraphClientOptions = {
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  maxRetries?: number;
  userAgent?: string;
  /** Called for every wait, so runs can report how long throttling cost. */
  onWait?: (ms: number, reason: string) => void;
};

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Retry-After is either delta-seconds or an HTTP date. */
export function retryAfterMs(header: string | null, now: number): number | null {
  if (!header) return null;
  const secs = Number(header);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

export function createGraphClient(creds: GraphCredentials, opts: GraphClientOptions = {}) {
  const sleep = opts.sleep ?? defaultSleep;
  const now = opts.now ?? Date.now;
  const maxRetries = opts.maxRetries ?? 8;
  const graph = creds.graphUrl.replace(/\/+$/, '');
  let token: { value: string; expiresAt: number } | null = null;
  // Graph throttles per app and tenant: when one request is told to wait, every request of this
  // client waits until then, instead of the other workers running into the limit again.
  let notBefore = 0;
  const pause = async () => {
    for (let left = notBefore - now(); left > 0; left = notBefore - now()) await sleep(left);
  };

  async function getToken(force = false): Promise<string> {
    if (!force && token && token.expiresAt - 60_000 > now()) return token.value;
    const url = `${creds.loginUrl.replace(/\/+$/, '')}/${encodeURIComponent(creds.tenantId)}/oauth2/v2.0/token`;
    const scope = graph.startsWith('https://') ? `${new URL(graph).origin}/.default` : 'https://graph.microsoft.com/.default';
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': opts.userAgent ?? 'Keywarden' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: creds.clientId, client_secret: creds.clientSecret, scope }),
      });
    } catch (e) {
      throw new GraphError(0, 'unreachable', `Cannot reach the sign-in service at ${new URL(url).host}: ${(e as Error).message}`);
    }
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string; error_description?: string };
    if (!res.ok || !body.access_token) {
      // error_description is Microsoft's text (AADSTS codes); it never contains the secret.
      throw new GraphError(res.status, body.error ?? 'token_error', body.error_description?.split('\r\n')[0] ?? `Sign-in failed with HTTP ${res.status}`);
    }
    token = { value: body.access_token, expiresAt: now() + (body.expires_in ?? 3600) * 1000 };
    return token.value;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Graph's JSON differs per endpoint; each caller narrows it to its documented shape
  async function call(method: string, pathOrUrl: string): Promise<{ status: number; json: any }> {
    const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${graph}${pathOrUrl}`;
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      await pause();
      const bearer = await getToken();
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${bearer}`,
            accept: 'application/json',
            'user-agent': opts.userAgent ?? 'Keywarden',
            'ocp-client-name': 'Keywarden',
            'ocp-client-version': '1',
          },
        });
      } catch (e) {
        if (attempt >= maxRetries) throw new GraphError(0, 'unreachable', `Cannot reach Microsoft Graph: ${(e as Error).message}`);
        await wait(backoff(attempt), 'network error');
        continue;
      }
      if (res.status === 401 && !refreshed) {
        // An expired token mid-run: get a fresh one once, then try again.
        refreshed = true;
        await res.arrayBuffer().catch(() => undefined);
        await getToken(true);
        continue;
      }
      if ((res.status === 429 || res.status === 503 || res.status === 504) && attempt < maxRetries) {
        const hinted = retryAfterMs(res.headers.get('retry-after'), now());
        await res.arrayBuffer().catch(() => undefined);
        const ms = hinted ?? backoff(attempt);
        notBefore = Math.max(notBefore, now() + ms);
        opts.onWait?.(ms, `HTTP ${res.status}`);
        continue;
      }
      const text = await res.text();
      const json = text ? safeJson(text) : null;
      if (!res.ok) {
        const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
        throw new GraphError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? `Microsoft Graph answered HTTP ${res.status}`);
      }
      return { status: res.status, json };
    }
  }

  async function wait(ms: number, reason: string) {
    opts.onWait?.(ms, reason);
    await sleep(ms);
  }

  return {
    getToken,

    /** Every key's metadata (never the password), page by page. */
    async *listRecoveryKeys(): AsyncGenerator<GraphKey[]> {
      let next: string | undefined = '/v1.0/informationProtection/bitlocker/recoveryKeys';
      while (next) {
        const { json } = await call('GET', next);
        yield (json?.value ?? []) as GraphKey[];
        next = json?.['@odata.nextLink'];
      }
    },

    /** One key with its password. Each call is an audited key read in the tenant: call it once per key. */
    async getRecoveryKey(id: string): Promise<GraphKey> {
      return (await call('GET', `/v1.0/informationProtection/bitlocker/recoveryKeys/${encodeURIComponent(id)}?$select=key`)).json as GraphKey;
    },

    async findDevice(deviceId: string): Promise<GraphDevice | null> {
      const filter = encodeURIComponent(`deviceId eq '${deviceId}'`);
      const select = 'id,deviceId,displayName,operatingSystem,operatingSystemVersion,trustType,approximateLastSignInDateTime';
      const { json } = await call('GET', `/v1.0/devices?$filter=${filter}&$select=${select}`);
      return (json?.value?.[0] as GraphDevice | undefined) ?? null;
    },

    async findManagedDevice(azureAdDeviceId: string): Promise<{ id: string } | null> {
      const filter = encodeURIComponent(`azureADDeviceId eq '${azureAdDeviceId}'`);
      const { json } = await call('GET', `/beta/deviceManagement/managedDevices?$filter=${filter}&$select=id,azureADDeviceId,deviceName`);
      return (json?.value?.[0] as { id: string } | undefined) ?? null;
    },

    async rotateBitLockerKeys(managedDeviceId: string): Promise<void> {
      await call('POST', `/beta/deviceManagement/managedDevices/${encodeURIComponent(managedDeviceId)}/rotateBitLockerKeys`);
    },

    /** "Read BitLocker key" audit events (category KeyManagement), newer than `since` when given. */
    async *listKeyReadAudits(since?: string | null): AsyncGenerator<GraphKeyReadAudit[]> {
      const filter = `activityDisplayName eq 'Read BitLocker key'${since ? ` and activityDateTime gt ${since}` : ''}`;
      let next: string | undefined = `/v1.0/auditLogs/directoryAudits?$filter=${encodeURIComponent(filter)}`;
      while (next) {
        const { json } = await call('GET', next);
        yield json?.value ?? [];
        next = json?.['@odata.nextLink'];
      }
    },
  };
}
export type GraphClient = ReturnType<typeof createGraphClient>;

/** Exponential backoff with full jitter: 1 s, 2 s, 4 s … capped at 60 s. */
function backoff(attempt: number): number {
  return Math.round(Math.random() * Math.min(60_000, 1000 * 2 ** attempt));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
