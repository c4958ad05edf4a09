import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp, type RouteInfo } from '../../src/app.js';
import { systemActor, type Role } from '../../src/modules/authz/authz.js';
import { createTestVault, type TestVault } from './vault.js';

export type TestApp = TestVault & {
  app: FastifyInstance & { routeTable: RouteInfo[] };
  /** Creates a user and signs them in; returns headers for cookie requests (with CSRF). */
  signIn(email: string, password?: string): Promise<Session>;
  addUser(role: Role, clients: 'all' | string[], email?: string): Promise<{ id: string; email: string; password: string }>;
};

export type Session = {
  cookie: string;
  csrf: string;
  headers: Record<string, string>;
  userId: string;
};

export const PASSWORD = 'correct horse battery staple';

export async function createTestApp(env: NodeJS.ProcessEnv = {}, opts: Parameters<typeof createTestVault>[1] = {}): Promise<TestApp> {
  const v = await createTestVault(env, opts);
  const app = await buildApp(v.container, { logger: false });
  let n = 0;
  const closeVault = v.close;
  const t: TestApp = Object.assign(v, {
    app,
    async addUser(role: Role, clients: 'all' | string[], email = `user${++n}-${role}@example.test`) {
      const u = await v.container.identity.createUser(systemActor('test'), { email, password: PASSWORD, role, clients });
      return { id: u.id, email, password: PASSWORD };
    },
    async signIn(email: string, password = PASSWORD) {
      const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } });
      if (res.statusCode !== 200) throw new Error(`sign-in failed: ${res.statusCode} ${res.body}`);
      return sessionFrom(res);
    },
    close: async () => {
      await app.close();
      await closeVault();
    },
  });
  return t;
}

export function sessionFrom(res: LightMyRequestResponse): Session {
  // `__Host-kw_session` over https (KEYWARDEN_PUBLIC_URL), `kw_session` over plain http.
  const cookie = res.cookies.find((c) => c.name === 'kw_session' || c.name === '__Host-kw_session');
  if (!cookie) throw new Error('no session cookie');
  const body = res.json() as { csrfToken: string; user: { id: string } };
  return {
    cookie: cookie.value,
    csrf: body.csrfToken,
    headers: { cookie: `${cookie.name}=${cookie.value}`, 'x-csrf-token': body.csrfToken },
    userId: body.user.id,
  };
}
