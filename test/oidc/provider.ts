/**
 * A real OpenID provider for tests: the `oidc-provider` package (8.8.1) listening on 127.0.0.1 on a
 * random port, with its own small login page (a form: username and password; no consent screen),
 * users whose claims a test may change at any time (groups removed, amr…), refresh tokens with
 * offline_access, and a `tamper` hook that rewrites the claims of the next ID tokens the token
 * endpoint issues and signs them again with the provider's own key, so a test can send a token
 * with a wrong issuer, audience, nonce, or times, exactly as a misbehaving provider would.
 *
 *   const idp = await startOidcProvider({ users: { alice: { sub: 'u1', email: 'alice@example.test', groups: ['kw-admins'] } } });
 *   const callback = await idp.signIn(authorizationUrl, 'alice');   // the redirect back to Keywarden
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

export type IdpUser = {
  sub: string;
  password?: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  groups?: string[];
  /** Authentication methods reported in the ID token (default ['pwd']). */
  amr?: string[];
  acr?: string;
  /** Any further claims (tid, hd, roles…). */
  extra?: Record<string, unknown>;
  /** Scopes this person's access tokens do not carry even when asked (e.g. ['User.Read']: not consented), as `accessToken()` reports them. */
  withholdScopes?: string[];
};

export type TamperFn = (claims: Record<string, unknown>) => Record<string, unknown>;

export type TestIdp = {
  issuer: string;
  clientId: string;
  clientSecret: string;
  users: Record<string, IdpUser>;
  /** Rewrites (and re-signs) the ID tokens the token endpoint issues until cleared with null. */
  tamper(fn: TamperFn | null): void;
  /** Follows an authorization URL through the login page as this user; returns the redirect back (the callback URL). */
  signIn(authorizationUrl: string, login: string, password?: string): Promise<URL>;
  /** How many token requests the provider answered (refresh included). */
  tokenRequests(): number;
  /**
   * An access token this provider issued and still holds (oidc-provider's AccessToken.find): whose
   * (the user's claims) and its scopes; null for a token it does not know or that expired.
   */
  accessToken(value: string): Promise<{ user: IdpUser; scopes: string[] } | null>;
  close(): Promise<void>;
};

export async function startOidcProvider(opts: {
  users: Record<string, IdpUser>;
  redirectUris: string[];
  clientId?: string;
  clientSecret?: string;
  idTokenTtlSeconds?: number;
}): Promise<TestIdp> {
  const users = opts.users;
  const clientId = opts.clientId ?? 'keywarden-test';
  const clientSecret = opts.clientSecret ?? randomBytes(24).toString('base64url');
  let handler: http.RequestListener = (_req, res) => res.end();
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
  const bySub = (sub: string) => Object.values(users).find((u) => u.sub === sub);

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: opts.redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    claims: {
      sid: null,
      openid: ['sub', 'auth_time', 'amr', 'acr'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'oid', 'tid'],
      groups: ['groups'],
      tenant: ['tid', 'hd', 'roles'],
    },
    // User.Read: Entra's delegated Graph permission, asked for by the self-service sign-in.
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'tenant', 'User.Read'],
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    ttl: {
      IdToken: opts.idTokenTtlSeconds ?? 3600,
      AccessToken: 3600,
      AuthorizationCode: 60,
      Session: 3600,
      Interaction: 600,
      Grant: 3600,
      RefreshToken: 86400,
    },
    rotateRefreshToken: true,
    async findAccount(_ctx: unknown, sub: string) {
      const u = bySub(sub);
      if (!u) return undefined;
      return {
        accountId: sub,
        async claims() {
          const now = bySub(sub)!;
          return {
            sub,
            ...(now.email !== undefined ? { email: now.email, email_verified: now.email_verified ?? true } : {}),
            ...(now.name ? { name: now.name } : {}),
            ...(now.groups ? { groups: now.groups } : {}),
            ...(now.extra ?? {}),
          };
        },
      };
    },
  } as ConstructorParameters<typeof Provider>[1]);
  provider.on('server_error', (_ctx: unknown, err: Error) => process.stderr.write(`oidc-provider: ${err.stack}\n`));

  let tamper: TamperFn | null = null;
  let tokens = 0;
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token' || ctx.method !== 'POST') return;
    tokens++;
    const body = ctx.body as { id_token?: string } | undefined;
    if (tamper && body?.id_token) {
      const claims = tamper({ ...decodeJwt(body.id_token) });
      body.id_token = await new SignJWT(claims as Record<string, unknown>).setProtectedHeader({ alg: 'RS256', kid: 'test-key' }).sign(privateKey);
    }
  });

  const page = (uid: string, error = '') => `<!doctype html><html><head><title>Test IdP sign-in</title></head><body>
<h1>Test IdP</h1>${error ? `<p role="alert">${error}</p>` : ''}
<form method="post" action="/interaction/${uid}/login">
<label>Username <input name="login" autocomplete="username"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Sign in at the IdP</button>
</form></body></html>`;

  const readForm = (req: http.IncomingMessage) =>
    new Promise<URLSearchParams>((resolve) => {
      let b = '';
      req.on('data', (d) => (b += d));
      req.on('end', () => resolve(new URLSearchParams(b)));
    });

  const callback = provider.callback();
  handler = async (req, res) => {
    const m = /^\/interaction\/([^/?]+)(\/login)?/.exec(req.url ?? '');
    if (!m) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (!m[2]) {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        return res.end(page(details.uid));
      }
      const form = await readForm(req);
      const login = form.get('login') ?? '';
      const u = users[login];
      if (!u || (u.password !== undefined && u.password !== form.get('password'))) {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        return res.end(page(details.uid, 'Wrong username or password.'));
      }
      const params = details.params as { client_id: string; scope: string };
      const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId: u.sub, clientId: params.client_id });
      grant!.addOIDCScope(params.scope);
      const grantId = await grant!.save();
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: u.sub, amr: u.amr ?? ['pwd'], ...(u.acr ? { acr: u.acr } : {}) }, consent: { grantId } },
        { mergeWithLastSubmission: false },
      );
    } catch (e) {
      res.statusCode = 400;
      res.end(`interaction failed: ${(e as Error).message}`);
    }
  };

  const redirectBase = opts.redirectUris.map((u) => new URL(u));
  return {
    issuer,
    clientId,
    clientSecret,
    users,
    tamper: (fn) => void (tamper = fn),
    tokenRequests: () => tokens,
    async accessToken(value) {
      const at = await provider.AccessToken.find(value);
      if (!at || at.isExpired) return null;
      const user = at.accountId ? bySub(at.accountId) : undefined;
      const withheld = new Set(user?.withholdScopes ?? []);
      return user
        ? {
            user,
            scopes: String(at.scope ?? '')
              .split(' ')
              .filter((x) => x && !withheld.has(x)),
          }
        : null;
    },
    async signIn(authorizationUrl, login, password) {
      const jar = new Map<string, string>();
      let url = new URL(authorizationUrl);
      for (let hops = 0; hops < 20; hops++) {
        if (redirectBase.some((b) => b.origin === url.origin && b.pathname === url.pathname)) return url;
        let res: Response;
        const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
        if (/^\/interaction\/[^/]+$/.test(url.pathname)) {
          res = await fetch(new URL(`${url.pathname}/login`, url), {
            method: 'POST',
            redirect: 'manual',
            headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ login, password: password ?? users[login]?.password ?? '' }).toString(),
          });
        } else res = await fetch(url, { redirect: 'manual', headers: { cookie } });
        for (const c of res.headers.getSetCookie()) {
          const [pair] = c.split(';');
          const i = pair!.indexOf('=');
          jar.set(pair!.slice(0, i), pair!.slice(i + 1));
        }
        const location = res.headers.get('location');
        if (!location) throw new Error(`the test IdP stopped at ${url.pathname} with ${res.status}: ${(await res.text()).slice(0, 300)}`);
        url = new URL(location, url);
      }
      throw new Error('too many redirects at the test IdP');
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
