import { conflict, forbidden } from '../../lib/errors.js';
import { systemActor } from '../authz/authz.js';
import type { IdentityService } from './identity.service.js';

/**
 * First-run setup from the browser: the first owner, while the vault has no user at all, and only
 * from this machine (loopback). On a server, the first owner is made with `keywarden user add`.
 */

const LOOPBACK = ['127.0.0.1', '::1', '::ffff:127.0.0.1'];

export function createSetupService({ identity }: { identity: Pick<IdentityService, 'hasUsers' | 'createUser'> }) {
  /** Only one first-run setup at a time in this process: two racing browsers make one owner. */
  let running: Promise<unknown> = Promise.resolve();

  return {
    async status(): Promise<{ needed: boolean }> {
      return { needed: !(await identity.hasUsers()) };
    },

    async createOwner(input: { email: string; password: string; ip: string | null }): Promise<void> {
      if (!input.ip || !LOOPBACK.includes(input.ip)) {
        throw forbidden(
          'First-run setup from the browser works only on the server itself (http://127.0.0.1). On a remote server, create the first owner with "keywarden user add you@example.com".',
        );
      }
      const run = running.then(async () => {
        if (await identity.hasUsers()) throw conflict('Keywarden already has an owner. Sign in instead.');
        await identity.createUser(systemActor('first-run setup'), { email: input.email, password: input.password, role: 'owner', clients: 'all' });
      });
      running = run.catch(() => undefined);
      await run;
    },
  };
}
export type SetupService = ReturnType<typeof createSetupService>;
