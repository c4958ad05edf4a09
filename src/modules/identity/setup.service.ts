import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { conflict, forbidden } from '../../lib/errors.js';
import { newSecret, sameHash, sha256Hex } from '../../crypto/tokens.js';
import { systemActor, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { SettingsRepo } from '../settings/settings.repo.js';
import type { IdentityService } from './identity.service.js';

/**
 * First-run setup from the browser: the first owner, while the vault has no user at all, made by
 * whoever holds the one-time setup token that `keywarden init` or `keywarden serve` printed on the
 * server's terminal. The peer address proves nothing behind a proxy, so it is never the test.
 * Only the token's SHA-256 is stored; it stops working once an owner exists.
 */

export const SETUP_TOKEN_KEY = 'setup.token_sha256';

const NO_TOKEN =
  'First-run setup needs the setup token that "keywarden serve" (or "keywarden init") printed in the server\'s terminal. Restart "npx keywarden serve" to print a new one, or create the first owner on the server with "npx keywarden user add you@example.com".';

type Deps = {
  tx: Transactions;
  settings: Pick<SettingsRepo, 'get' | 'set' | 'remove'>;
  identity: Pick<IdentityService, 'hasUsers' | 'createUser'>;
  audit: Pick<AuditService, 'recordNow'>;
  clock: Clock;
};

export function createSetupService({ tx, settings, identity, audit, clock }: Deps) {
  /** Only one first-run setup at a time in this process: two racing browsers make one owner. */
  let running: Promise<unknown> = Promise.resolve();

  return {
    async status(): Promise<{ needed: boolean }> {
      return { needed: !(await identity.hasUsers()) };
    },

    /**
     * While the vault has no user: a new setup token (replacing any earlier one), for the caller to
     * print on the terminal. Once a user exists: null, and a leftover token is forgotten.
     */
    async issueToken(): Promise<string | null> {
      if (await identity.hasUsers()) {
        await tx.run((t) => settings.remove(t, SETUP_TOKEN_KEY));
        return null;
      }
      const token = newSecret('kws_');
      await tx.run((t) => settings.set(t, SETUP_TOKEN_KEY, sha256Hex(token), clock.now()));
      return token;
    },

    async createOwner(input: { email: string; password: string; setupToken?: string; ip: string | null; userAgent?: string | null }): Promise<void> {
      const run = running.then(async () => {
        if (await identity.hasUsers()) throw conflict('Keywarden already has an owner. Sign in instead.');
        const stored = await settings.get(tx.reader, SETUP_TOKEN_KEY);
        const presented = input.setupToken?.trim() ?? '';
        if (!stored || !presented || !sameHash(sha256Hex(presented), stored)) {
          // Recorded as who they claimed to be, like a failed sign-in: nobody is signed in here.
          const email = input.email.slice(0, 200);
          const actor: Actor = {
            type: 'user',
            id: `setup:${email}`,
            name: email,
            role: 'client-viewer',
            clients: [],
            ip: input.ip,
            userAgent: input.userAgent ?? null,
          };
          await audit.recordNow(actor, {
            action: 'auth.denied',
            outcome: 'denied',
            targetType: 'setup',
            details: { email, why: presented ? 'wrong setup token' : 'no setup token' },
          });
          throw forbidden(NO_TOKEN);
        }
        await identity.createUser(systemActor('first-run setup'), { email: input.email, password: input.password, role: 'owner', clients: 'all' });
        await tx.run((t) => settings.remove(t, SETUP_TOKEN_KEY));
      });
      running = run.catch(() => undefined);
      await run;
    },
  };
}
export type SetupService = ReturnType<typeof createSetupService>;
