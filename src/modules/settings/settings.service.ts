import type { Policy } from '../../config.js';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest } from '../../lib/errors.js';
import { clientScope, requireFreshSecondFactor, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { ClientsRepo } from '../clients/clients.repo.js';
import { checkLogo } from '../reports/branding.js';
import {
  BRANDING_LOGO_KEY,
  BRANDING_NAME_KEY,
  readBranding,
  REQUIRE_MFA_KEY,
  REVEAL_HIDE_SECONDS_KEY,
  type Branding,
  type SettingsRepo,
} from './settings.repo.js';

/**
 * Vault-wide settings: MFA required for everyone, how long a revealed password stays on screen,
 * rotate after disclosure per client, and the MSP's branding on reports. Reading them for the
 * settings pages and changing them needs `settings:manage`, which only principals for all
 * clients hold; changing them also needs a fresh second factor.
 */

export const DEFAULT_HIDE_SECONDS = 60;

export type VaultSettings = { requireMfa: boolean };
export type SecuritySettings = {
  requireMfa: boolean;
  revealHideSeconds: number;
  stepUpMinutes: number;
  revealLimitPerHour: number;
  sessionIdleMinutes: number;
  sessionMaxHours: number;
  clients: { id: string; name: string; rotateAfterDisclosure: boolean; viewerCanReveal: boolean }[];
};
export type SecurityPatch = { requireMfa?: boolean; revealHideSeconds?: number; clients?: { id: string; rotateAfterDisclosure: boolean }[] };
export type BrandingView = { mspName: string; hasLogo: boolean; logoBytes: number | null };

type Deps = {
  tx: Transactions;
  repo: SettingsRepo;
  clients: Pick<ClientsRepo, 'listSecurity' | 'findVisible' | 'setRotateAfterDisclosure'>;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
  policy: Policy;
};

export function createSettingsService({ tx, repo, clients, audit, clock, policy }: Deps) {
  const hideSeconds = (v: string | undefined) => Number(v ?? DEFAULT_HIDE_SECONDS);

  /** Who may change settings: `settings:manage` and a second factor proved within the step-up window. */
  const mayChange = (actor: Actor) => {
    requirePermission(actor, 'settings:manage');
    requireFreshSecondFactor(actor, 'change security settings', clock.now(), policy.stepUpMinutes);
  };

  const settingsOf = async (): Promise<VaultSettings> => ({ requireMfa: (await repo.get(tx.reader, REQUIRE_MFA_KEY)) === 'true' });

  const security = async (actor: Actor): Promise<SecuritySettings> => {
    const s = await repo.getMany(tx.reader, [REQUIRE_MFA_KEY, REVEAL_HIDE_SECONDS_KEY]);
    const rows = await clients.listSecurity(tx.reader, clientScope(actor));
    return {
      requireMfa: s.get(REQUIRE_MFA_KEY) === 'true',
      revealHideSeconds: hideSeconds(s.get(REVEAL_HIDE_SECONDS_KEY)),
      stepUpMinutes: policy.stepUpMinutes,
      revealLimitPerHour: policy.revealLimitPerHour,
      sessionIdleMinutes: policy.sessionIdleMinutes,
      sessionMaxHours: policy.sessionMaxHours,
      clients: rows.map((c) => ({
        id: c.id,
        name: c.name,
        rotateAfterDisclosure: c.rotate_after_disclosure === 1,
        viewerCanReveal: c.viewer_can_reveal === 1,
      })),
    };
  };

  const brandingView = (b: Branding): BrandingView => ({ mspName: b.mspName, hasLogo: !!b.logoPng, logoBytes: b.logoPng?.length ?? null });

  return {
    // ---------------------------------------------------------------- vault settings
    async get(actor: Actor): Promise<VaultSettings> {
      requirePermission(actor, 'settings:manage');
      return settingsOf();
    },

    /** requireMfa makes every person set up an authenticator app. */
    async update(actor: Actor, patch: Partial<VaultSettings>): Promise<VaultSettings> {
      mayChange(actor);
      await tx.run(async (t) => {
        if (patch.requireMfa !== undefined) await repo.set(t, REQUIRE_MFA_KEY, String(patch.requireMfa), clock.now());
        await audit.record(t, actor, { action: 'settings.update', outcome: 'success', details: patch });
      });
      return settingsOf();
    },

    // ---------------------------------------------------------------- what every console needs
    /** For every signed-in person (no secrets): how long a revealed password stays on screen, the step-up window. */
    async console(actor: Actor): Promise<{ revealHideSeconds: number; stepUpMinutes: number }> {
      void actor;
      return { revealHideSeconds: hideSeconds(await repo.get(tx.reader, REVEAL_HIDE_SECONDS_KEY)), stepUpMinutes: policy.stepUpMinutes };
    },

    // ---------------------------------------------------------------- security
    async getSecurity(actor: Actor): Promise<SecuritySettings> {
      requirePermission(actor, 'settings:manage');
      return security(actor);
    },

    /** MFA required, how long a revealed password stays on screen, rotate after disclosure per client. */
    async updateSecurity(actor: Actor, patch: SecurityPatch): Promise<SecuritySettings> {
      mayChange(actor);
      if (
        patch.revealHideSeconds !== undefined &&
        (!Number.isInteger(patch.revealHideSeconds) || patch.revealHideSeconds < 10 || patch.revealHideSeconds > 600)
      ) {
        throw badRequest('A revealed password stays on screen from 10 to 600 seconds.', { field: 'revealHideSeconds' });
      }
      await tx.run(async (t) => {
        const now = clock.now();
        if (patch.requireMfa !== undefined) await repo.set(t, REQUIRE_MFA_KEY, String(patch.requireMfa), now);
        if (patch.revealHideSeconds !== undefined) await repo.set(t, REVEAL_HIDE_SECONDS_KEY, String(patch.revealHideSeconds), now);
        for (const c of patch.clients ?? []) {
          const row = await clients.findVisible(t, c.id, clientScope(actor));
          if (!row) throw badRequest(`No such client: ${c.id.slice(0, 60)}.`, { field: 'clients' });
          await clients.setRotateAfterDisclosure(t, row.id, c.rotateAfterDisclosure, now);
          await audit.record(t, actor, {
            action: 'client.update',
            outcome: 'success',
            clientId: row.id,
            targetType: 'client',
            targetId: row.id,
            details: { rotateAfterDisclosure: c.rotateAfterDisclosure },
          });
        }
        const { clients: _clients, ...rest } = patch;
        if (Object.keys(rest).length) await audit.record(t, actor, { action: 'settings.update', outcome: 'success', details: rest });
      });
      return security(actor);
    },

    // ---------------------------------------------------------------- branding on reports
    async getBranding(actor: Actor): Promise<BrandingView> {
      requirePermission(actor, 'settings:manage');
      return brandingView(await readBranding(tx.reader));
    },

    /** A name (1-100 characters) and a PNG logo (null removes it). */
    async updateBranding(actor: Actor, input: { mspName?: string; logoPngBase64?: string | null }): Promise<BrandingView> {
      mayChange(actor);
      const name = input.mspName?.trim();
      if (input.mspName !== undefined && (!name || name.length > 100)) throw badRequest('The MSP name must be 1 to 100 characters.', { field: 'mspName' });
      let logo: Buffer | null | undefined;
      if (input.logoPngBase64 === null) logo = null;
      else if (input.logoPngBase64 !== undefined) {
        logo = Buffer.from(input.logoPngBase64, 'base64');
        await checkLogo(logo);
      }
      const now = clock.now();
      await tx.run(async (t) => {
        if (name) await repo.set(t, BRANDING_NAME_KEY, name, now);
        if (logo) await repo.set(t, BRANDING_LOGO_KEY, logo.toString('base64'), now);
        if (logo === null) await repo.remove(t, BRANDING_LOGO_KEY);
        await audit.record(t, actor, {
          action: 'settings.update',
          outcome: 'success',
          details: { branding: { ...(name ? { mspName: name } : {}), ...(logo ? { logoBytes: logo.length } : logo === null ? { logo: 'removed' } : {}) } },
        });
      });
      return brandingView(await readBranding(tx.reader));
    },
  };
}
export type SettingsService = ReturnType<typeof createSettingsService>;
