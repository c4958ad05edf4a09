import * as oidc from 'openid-client';
import type { EgressPolicy } from '../../integrations/egress.js';
import { isEgressError } from '../../integrations/egress.js';
import type { Clock } from '../../lib/clock.js';
import { AppError, badRequest } from '../../lib/errors.js';

/**
 * openid-client 6 behind the egress policy: discovery, the JWKS, the token endpoint and userinfo
 * all go through `egress.fetch` (customFetch), so an issuer the operator has not allowed is refused
 * like any other outbound connection. ID tokens are checked against Keywarden's clock (clockSkew is
 * the clock's offset) with CLOCK_SKEW_SECONDS of tolerance for exp, nbf and iat.
 */
export const CLOCK_SKEW_SECONDS = 60;
const DISCOVERY_CACHE_MS = 10 * 60_000;

export type ProviderConnection = { id: string; name: string; issuer: string; clientId: string; clientSecret: string | null; version: string };

/** Why a sign-in answer was refused: the audit reason, and the product words the person sees. */
export class SsoRefusal extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const isLoopback = (u: URL) => ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);

export function createOidc(deps: { egress: EgressPolicy; clock: Clock }) {
  const cache = new Map<string, { at: number; config: oidc.Configuration }>();
  const offsetSeconds = () => Math.round((Date.parse(deps.clock.now()) - Date.now()) / 1000);

  const fetchFor =
    (name: string): oidc.CustomFetch =>
    async (url, options) =>
      (await deps.egress.fetch(
        url,
        { method: options.method, headers: options.headers as Record<string, string>, body: options.body as string | undefined, signal: options.signal },
        'internet',
        `the sign-in provider ${name}`,
      )) as unknown as Response;

  async function configFor(p: ProviderConnection): Promise<oidc.Configuration> {
    const key = `${p.id}|${p.version}`;
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < DISCOVERY_CACHE_MS) return hit.config;
    let issuer: URL;
    try {
      issuer = new URL(p.issuer);
    } catch {
      throw badRequest(`The issuer URL of ${p.name} is not a URL.`, { field: 'issuer' });
    }
    // Plain http only for an issuer on this machine (a lab); anything else must be https.
    if (issuer.protocol !== 'https:' && !(issuer.protocol === 'http:' && isLoopback(issuer)))
      throw badRequest(`The issuer URL of ${p.name} must start with https://.`, { field: 'issuer' });
    try {
      const config = await oidc.discovery(
        issuer,
        p.clientId,
        { client_secret: p.clientSecret ?? undefined, [oidc.clockTolerance]: CLOCK_SKEW_SECONDS, [oidc.clockSkew]: offsetSeconds() },
        p.clientSecret ? oidc.ClientSecretBasic(p.clientSecret) : oidc.None(),
        { [oidc.customFetch]: fetchFor(p.name), execute: issuer.protocol === 'http:' ? [oidc.allowInsecureRequests] : [], timeout: 15 },
      );
      config[oidc.customFetch] = fetchFor(p.name);
      for (const k of cache.keys()) if (k.startsWith(`${p.id}|`)) cache.delete(k);
      cache.set(key, { at: Date.now(), config });
      return config;
    } catch (e) {
      throw discoveryError(p, e);
    }
  }

  return {
    configFor,
    forget: (id: string) => {
      for (const k of cache.keys()) if (k.startsWith(`${id}|`)) cache.delete(k);
    },
    buildAuthorizationUrl: (config: oidc.Configuration, params: Record<string, string>) => oidc.buildAuthorizationUrl(config, params),
    async exchange(
      config: oidc.Configuration,
      callbackUrl: URL,
      checks: { state: string; nonce: string; verifier: string; maxAge?: number },
      want: { accessToken?: boolean } = {},
    ): Promise<{ claims: Record<string, unknown>; refreshToken: string | null; accessToken?: string | null }> {
      try {
        const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          pkceCodeVerifier: checks.verifier,
          idTokenExpected: true,
          ...(checks.maxAge !== undefined ? { maxAge: checks.maxAge } : {}),
        });
        const claims = tokens.claims() as Record<string, unknown> | undefined;
        if (!claims) throw new SsoRefusal('no ID token', 'The sign-in provider did not send an ID token.');
        checkTimes(claims, Date.parse(deps.clock.now()) / 1000);
        // The access token only to a caller that asks for it (self-service: Graph /me with the
        // person's delegated User.Read), to be used at once and dropped: never stored, never logged.
        return { claims, refreshToken: tokens.refresh_token ?? null, ...(want.accessToken ? { accessToken: tokens.access_token || null } : {}) };
      } catch (e) {
        throw refusalOf(e);
      }
    },
    /** A new ID token's claims through the refresh token (or userinfo when the answer has no ID token). */
    async refresh(config: oidc.Configuration, refreshToken: string, subject: string): Promise<{ claims: Record<string, unknown>; refreshToken: string }> {
      try {
        const tokens = await oidc.refreshTokenGrant(config, refreshToken);
        let claims = tokens.claims() as Record<string, unknown> | undefined;
        if (!claims) claims = (await oidc.fetchUserInfo(config, tokens.access_token, subject)) as Record<string, unknown>;
        if (claims.sub !== subject) throw new SsoRefusal('subject changed', 'The sign-in provider answered for another person.');
        return { claims, refreshToken: tokens.refresh_token ?? refreshToken };
      } catch (e) {
        throw refusalOf(e);
      }
    },
  };
}
export type Oidc = ReturnType<typeof createOidc>;

/** iat is not checked by openid-client: a token issued in the future (beyond the allowance) is refused here. */
function checkTimes(claims: Record<string, unknown>, nowSeconds: number) {
  if (typeof claims.iat === 'number' && claims.iat > nowSeconds + CLOCK_SKEW_SECONDS)
    throw new SsoRefusal(
      'token not yet valid',
      'The sign-in answer is not valid yet (issued in the future): check the clocks of Keywarden and the sign-in provider.',
    );
}

/** The error and its causes (openid-client wraps oauth4webapi's errors, which carry the claim at fault). */
function chain(e: unknown): unknown[] {
  const out: unknown[] = [];
  for (let x = e, i = 0; x && typeof x === 'object' && i < 5; x = (x as { cause?: unknown }).cause, i++) out.push(x);
  return out;
}

function discoveryError(p: ProviderConnection, e: unknown): AppError {
  const refused = chain(e).find((x) => x instanceof AppError);
  if (refused) e = refused;
  if (e instanceof AppError) return isEgressError(e) ? badRequest(e.message, { field: 'issuer', egress: e.details?.egress }) : e;
  const code = (e as { code?: string }).code ?? '';
  if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED' || /issuer/i.test((e as Error).message ?? ''))
    return badRequest(`${p.name}: the discovery document at ${p.issuer.slice(0, 200)} names another issuer.`, { field: 'issuer', reason: 'wrong issuer' });
  return badRequest(`${p.name}: no OpenID Connect discovery document could be read at ${p.issuer.slice(0, 200)}.`, { field: 'issuer' });
}

/** Maps openid-client's errors to a reason for the audit log and words for the person; never echoes what the provider sent. */
export function refusalOf(e: unknown): Error {
  if (e instanceof SsoRefusal || e instanceof AppError) return e;
  if (e instanceof oidc.AuthorizationResponseError)
    return new SsoRefusal('provider refused', 'The sign-in provider did not sign you in (refused or cancelled).');
  if (e instanceof oidc.ResponseBodyError)
    return new SsoRefusal(e.error === 'invalid_grant' ? 'provider refused grant' : 'provider error', 'The sign-in provider refused the sign-in.');
  const inner = chain(e);
  const refused = inner.find((x) => x instanceof AppError);
  if (refused) return new SsoRefusal('provider unreachable', (refused as AppError).message);
  const messages = inner.map((x) => String((x as { message?: unknown }).message ?? '')).join(' | ');
  const claim =
    inner.map((x) => (x as { claim?: unknown }).claim).find((c) => typeof c === 'string') ?? /JWT "(\w+)" \([^)]*\) claim missing/.exec(messages)?.[1];
  switch (claim) {
    case 'iss':
      return new SsoRefusal('wrong issuer', 'The sign-in answer comes from another issuer than the one configured.');
    case 'aud':
      return new SsoRefusal('wrong audience', 'The sign-in answer was made for another application.');
    case 'nonce':
      return new SsoRefusal('nonce mismatch', 'The sign-in answer does not belong to this sign-in (nonce).');
    case 'exp':
      return new SsoRefusal('token expired', 'The sign-in answer has expired: sign in again.');
    case 'nbf':
      return new SsoRefusal('token not yet valid', 'The sign-in answer is not valid yet: check the clocks of Keywarden and the sign-in provider.');
    case 'auth_time':
      return new SsoRefusal('authentication too old', 'The sign-in provider did not ask you to sign in again.');
    default:
  }
  if (/"state"/i.test(messages)) return new SsoRefusal('state mismatch', 'The sign-in answer does not belong to this sign-in (state).');
  if (/signature/i.test(messages)) return new SsoRefusal('bad signature', 'The sign-in answer is not signed by the sign-in provider.');
  return new SsoRefusal('invalid answer', 'The sign-in provider sent an answer Keywarden cannot accept.');
}
