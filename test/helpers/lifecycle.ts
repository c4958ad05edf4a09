import type { FastifyInstance } from 'fastify';
import { buildApp, type RouteInfo } from '../../src/app.js';
import { buildContainer, type Container } from '../../src/container.js';
import { systemActor, type Role } from '../../src/modules/authz/authz.js';
import { createTestVault, type TestVault } from './vault.js';
import { PASSWORD, sessionFrom, type Session } from './app.js';

/** A clock the test moves: retention periods pass in a line of code, not in a year. */
export class TestClock {
  t: number;
  constructor(start: string) {
    this.t = Date.parse(start);
  }
  now = () => new Date(this.t).toISOString();
  advanceDays(d: number) {
    this.t += d * 86_400_000;
  }
  advanceHours(h: number) {
    this.t += h * 3_600_000;
  }
}

export type LifecycleApp = {
  v: TestVault;
  c: Container;
  app: FastifyInstance & { routeTable: RouteInfo[] };
  clock: TestClock;
  addUser(role: Role, clients: 'all' | string[]): Promise<{ id: string; email: string }>;
  signIn(email: string): Promise<Session>;
  close(): Promise<void>;
};

let n = 0;
/** A test vault opened a second time with an injected clock (the vault's own container stays for setup). */
export async function createLifecycleApp(start = '2026-01-05T09:00:00.000Z', env: NodeJS.ProcessEnv = {}): Promise<LifecycleApp> {
  const v = await createTestVault({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '10000', ...env });
  const clock = new TestClock(start);
  const c = await buildContainer(v.config, { clock });
  const app = await buildApp(c, { logger: false });
  return {
    v,
    c,
    app,
    clock,
    async addUser(role, clients) {
      const email = `lc${++n}-${role}@example.test`;
      const u = await c.identity.createUser(systemActor('test'), { email, password: PASSWORD, role, clients });
      return { id: u.id, email };
    },
    async signIn(email) {
      const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: PASSWORD } });
      if (res.statusCode !== 200) throw new Error(`sign-in failed: ${res.statusCode} ${res.body}`);
      return sessionFrom(res);
    },
    async close() {
      await app.close();
      await c.close();
      await v.close();
    },
  };
}
