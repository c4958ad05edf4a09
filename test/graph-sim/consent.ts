/**
 * The simulator's app registrations beyond each tenant's own single-tenant app: multi-tenant apps
 * (one application id used in many tenants, a service principal per tenant that exists only after
 * an administrator consented), their credentials (client secrets and uploaded certificates), the
 * admin-consent redirect, and certificate credentials (signed client assertions, RFC 7523) for
 * both kinds of app.
 *
 * Written from the public Microsoft identity platform documentation ("Admin consent on the
 * Microsoft identity platform", "Certificate credentials", the AADSTS error reference). No SDK code
 * was consulted. The token endpoint in simulator.ts asks `authenticate` before its own secret check.
 */
import { constants, createHash, verify as verifySignature, X509Certificate } from 'node:crypto';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export type SimApp = {
  appId: string;
  displayName: string;
  /** Redirect URIs registered on the app (the admin-consent redirect must match one exactly). */
  redirectUris: string[];
  /** Client secret values. */
  secrets: string[];
  /** Uploaded public certificates (PEM). Edit the array any time. */
  certificates: string[];
  /** Deleted from its home tenant: every tenant answers AADSTS700016 for it. */
  deleted: boolean;
};

export type TokenFailure = { status: number; error: string; code: number; description: string };
/** null: not this module's business (a tenant's own app with a client secret). */
export type ClientAuth = { ok: true; clientId: string } | { ok: false; failure: TokenFailure } | null;

export type ConsentOutcome = { as: 'admin' } | { refuse: true };

type AppsOptions = {
  now: () => number;
  /** The tenant's canonical id when the simulator has it. */
  tenantId: (idOrName: string) => string | null;
};

const CONSENT_PATH = /^\/login\/([^/]+)\/(v2\.0\/)?adminconsent\/?$/;

export class SimApps {
  private readonly apps = new Map<string, SimApp>();
  /** tenant (lower-case) → app ids (lower-case) with a service principal there. */
  private readonly principals = new Map<string, Set<string>>();
  /** tenant (lower-case) → certificates uploaded to that tenant's own app. */
  private readonly tenantCerts = new Map<string, string[]>();
  private readonly usedJti = new Map<string, number>();
  /** Every admin-consent the simulator answered, oldest first. */
  readonly consents: { tenantId: string; appId: string; outcome: 'granted' | 'refused' | 'error'; redirect: string }[] = [];

  constructor(private readonly opts: AppsOptions) {}

  register(app: Partial<SimApp> & { appId: string; redirectUris: string[] }): SimApp {
    const a: SimApp = {
      displayName: app.displayName ?? 'Multi-tenant app',
      secrets: app.secrets ?? [],
      certificates: app.certificates ?? [],
      deleted: false,
      ...app,
    };
    this.apps.set(a.appId.toLowerCase(), a);
    return a;
  }

  app(appId: string): SimApp {
    const a = this.apps.get(appId.toLowerCase());
    if (!a) throw new Error(`unknown simulated app ${appId}`);
    return a;
  }

  /** Certificates uploaded to a tenant's own (single-tenant) app registration. */
  setTenantCertificates(tenantId: string, pems: string[]): void {
    this.tenantCerts.set(tenantId.toLowerCase(), pems);
  }

  hasConsent(tenantId: string, appId: string): boolean {
    return this.principals.get(tenantId.toLowerCase())?.has(appId.toLowerCase()) ?? false;
  }

  /** The tenant's admin deletes the app's service principal (Enterprise applications > Delete): consent is gone. */
  revokeConsent(tenantId: string, appId: string): void {
    this.principals.get(tenantId.toLowerCase())?.delete(appId.toLowerCase());
  }

  /** The app registration is deleted in its home tenant: no tenant knows it any more. */
  deleteApp(appId: string): void {
    this.app(appId).deleted = true;
  }

  /**
   * An administrator of `tenantId` opens the admin-consent URL and approves (or refuses). Returns
   * where the browser is sent next (302 Location). Mistakes that Entra shows on its own error page
   * (unknown app, redirect URI not registered, another tenant in the URL) throw instead: there is
   * no redirect in those cases.
   */
  consent(url: string, who: { tenantId: string } & ({ refuse?: false } | { refuse: true })): { status: 302; location: string } {
    const u = new URL(url);
    const m = CONSENT_PATH.exec(u.pathname);
    if (!m) throw new Error(`not an admin-consent URL: ${u.pathname}`);
    const v2 = !!m[2];
    const tenant = this.opts.tenantId(who.tenantId);
    if (!tenant) throw new Error(`AADSTS90002: Tenant '${who.tenantId}' not found.`);
    const inUrl = decodeURIComponent(m[1]!).toLowerCase();
    if (inUrl !== tenant.toLowerCase() && inUrl !== 'organizations' && inUrl !== 'common')
      throw new Error(`AADSTS50020: the administrator of ${tenant} cannot consent in tenant '${inUrl}'.`);
    const clientId = u.searchParams.get('client_id') ?? '';
    const app = this.apps.get(clientId.toLowerCase());
    if (!app || app.deleted) throw new Error(`AADSTS700016: Application with identifier '${clientId}' was not found in the directory.`);
    const redirect = u.searchParams.get('redirect_uri') ?? '';
    if (!app.redirectUris.includes(redirect))
      throw new Error(`AADSTS50011: The redirect URI '${redirect}' specified in the request does not match the redirect URIs configured for the application.`);
    const state = u.searchParams.get('state');
    const back = new URL(redirect);
    const answer = (outcome: 'granted' | 'refused' | 'error') => {
      if (state !== null) back.searchParams.set('state', state);
      this.consents.push({ tenantId: tenant, appId: app.appId, outcome, redirect: back.href });
      return { status: 302 as const, location: back.href };
    };
    if (v2 && !u.searchParams.get('scope')) {
      back.searchParams.set('error', 'invalid_request');
      back.searchParams.set('error_description', "AADSTS900144: The request body must contain the following parameter: 'scope'.");
      return answer('error');
    }
    if (who.refuse) {
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('error_description', 'AADSTS65004: User declined to consent to access the app.');
      return answer('refused');
    }
    const set = this.principals.get(tenant.toLowerCase()) ?? new Set<string>();
    set.add(app.appId.toLowerCase());
    this.principals.set(tenant.toLowerCase(), set);
    back.searchParams.set('admin_consent', 'True');
    back.searchParams.set('tenant', tenant);
    if (v2) back.searchParams.set('scope', u.searchParams.get('scope')!);
    return answer('granted');
  }

  /**
   * Client authentication at the token endpoint, for multi-tenant apps (secret or assertion) and
   * for a tenant's own app when it sends a client assertion.
   */
  authenticate(tenant: { tenantId: string; clientId: string }, clientId: string, form: URLSearchParams, tokenUrl: string, at: number): ClientAuth {
    const multi = this.apps.get(clientId.toLowerCase());
    const hasAssertion = form.has('client_assertion') || form.has('client_assertion_type');
    if (!multi) {
      if (clientId.toLowerCase() !== tenant.clientId.toLowerCase() || !hasAssertion) return null;
      const r = this.checkAssertion(form, this.tenantCerts.get(tenant.tenantId.toLowerCase()) ?? [], clientId, tokenUrl, at);
      return r ?? { ok: true, clientId: tenant.clientId };
    }
    if (multi.deleted)
      return fail(
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant.tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`,
      );
    if (!this.hasConsent(tenant.tenantId, multi.appId))
      return fail(401, 'invalid_client', 7000229, `The client application ${multi.appId} is missing service principal in the tenant ${tenant.tenantId}.`);
    if (hasAssertion) return this.checkAssertion(form, multi.certificates, multi.appId, tokenUrl, at) ?? { ok: true, clientId: multi.appId };
    const secret = form.get('client_secret');
    if (!secret) return fail(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    if (!multi.secrets.includes(secret))
      return fail(
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${multi.appId}'.`,
      );
    return { ok: true, clientId: multi.appId };
  }

  /** RFC 7523 client assertion checks, in the order the identity platform documents them; null when good. */
  private checkAssertion(form: URLSearchParams, certificates: string[], clientId: string, tokenUrl: string, at: number): ClientAuth {
    const malformed = (why: string) => fail(401, 'invalid_client', 50027, `JWT token is invalid or malformed (${why}).`);
    if (form.get('client_assertion_type') !== JWT_BEARER)
      return fail(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_assertion_type'.");
    if (form.has('client_secret')) return fail(400, 'invalid_request', 90015, 'Requested query string is too long (a client secret and an assertion).');
    const parts = (form.get('client_assertion') ?? '').split('.');
    if (parts.length !== 3) return malformed('not a compact JWS');
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return malformed('header or payload is not JSON');
    }
    if (header.alg !== 'RS256' && header.alg !== 'PS256') return malformed(`alg ${String(header.alg)}`);
    const s256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : null;
    const s1 = typeof header.x5t === 'string' ? header.x5t : null;
    if (!s256 && !s1) return malformed('no x5t or x5t#S256 header');
    const cert = certificates
      .map((pem) => new X509Certificate(pem))
      .find(
        (c) => (s256 && createHash('sha256').update(c.raw).digest('base64url') === s256) || (s1 && createHash('sha1').update(c.raw).digest('base64url') === s1),
      );
    if (!cert) {
      const shown = s1 ? Buffer.from(s1, 'base64url').toString('hex').toUpperCase() : s256;
      return fail(
        401,
        'invalid_client',
        700027,
        `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${shown}']`,
      );
    }
    if (Date.parse(cert.validTo) <= at) return fail(401, 'invalid_client', 700027, 'The certificate used to sign the client assertion has expired.');
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2]!, 'base64url');
    const good =
      header.alg === 'PS256'
        ? verifySignature('sha256', signed, { key: cert.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig)
        : verifySignature('sha256', signed, cert.publicKey, sig);
    if (!good) return fail(401, 'invalid_client', 700027, 'Client assertion contains an invalid signature.');
    if (claims.iss !== clientId || claims.sub !== clientId)
      return fail(401, 'invalid_client', 700021, "Client assertion application identifier doesn't match 'client_id' parameter.");
    if (claims.aud !== tokenUrl) return fail(401, 'invalid_client', 700023, 'Client assertion audience claim does not match Realm issuer.');
    const exp = typeof claims.exp === 'number' ? claims.exp * 1000 : NaN;
    const nbf = typeof claims.nbf === 'number' ? claims.nbf * 1000 : typeof claims.iat === 'number' ? claims.iat * 1000 : -Infinity;
    if (!(exp > at) || nbf > at + 5 * 60_000)
      return fail(
        401,
        'invalid_client',
        700024,
        `Client assertion is not within its valid time range. Current time: ${new Date(at).toISOString()}, expiry time of assertion ${Number.isNaN(exp) ? 'missing' : new Date(exp).toISOString()}.`,
      );
    if (typeof claims.jti !== 'string' || !claims.jti) return malformed('no jti');
    for (const [k, until] of this.usedJti) if (until <= at) this.usedJti.delete(k);
    const key = `${clientId.toLowerCase()}|${claims.jti}`;
    if (this.usedJti.has(key)) return malformed('the assertion was already used (jti replay)');
    this.usedJti.set(key, exp);
    return null;
  }
}

function fail(status: number, error: string, code: number, description: string): ClientAuth {
  return { ok: false, failure: { status, error, code, description } };
}
