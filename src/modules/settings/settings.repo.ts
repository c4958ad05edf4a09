import type { Executor } from '../../db/database.js';

/**
 * The `settings` table: vault-wide key/value settings. The one module that writes it; other
 * modules read a setting through the helpers below (require MFA, branding) or through get/getMany.
 */

export const REQUIRE_MFA_KEY = 'require_mfa';
export const REVEAL_HIDE_SECONDS_KEY = 'reveal_hide_seconds';
export const BRANDING_NAME_KEY = 'branding.msp_name';
export const BRANDING_LOGO_KEY = 'branding.logo_png';

export function createSettingsRepo() {
  return {
    async get(exec: Executor, key: string): Promise<string | undefined> {
      return (await exec.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst())?.value;
    },
    /** The values of these keys that are set (missing keys are absent from the map). */
    async getMany(exec: Executor, keys: readonly string[]): Promise<Map<string, string>> {
      if (keys.length === 0) return new Map();
      const rows = await exec
        .selectFrom('settings')
        .select(['key', 'value'])
        .where('key', 'in', [...keys])
        .execute();
      return new Map(rows.map((r) => [r.key, r.value]));
    },
    /** Inserts or replaces one setting. */
    async set(exec: Executor, key: string, value: string, now: string): Promise<void> {
      await exec
        .insertInto('settings')
        .values({ key, value, updated_at: now })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value, updated_at: now }))
        .execute();
    },
    async remove(exec: Executor, key: string): Promise<void> {
      await exec.deleteFrom('settings').where('key', '=', key).execute();
    },
  };
}
export type SettingsRepo = ReturnType<typeof createSettingsRepo>;

const repo = createSettingsRepo();

/** Whether every person must set up an authenticator app. */
export async function requireMfa(exec: Executor): Promise<boolean> {
  return (await repo.get(exec, REQUIRE_MFA_KEY)) === 'true';
}

/** The MSP's name and logo (a PNG) as reports draw them. */
export type Branding = { mspName: string; logoPng: Buffer | null };

export async function readBranding(exec: Executor): Promise<Branding> {
  const s = await repo.getMany(exec, [BRANDING_NAME_KEY, BRANDING_LOGO_KEY]);
  const logo = s.get(BRANDING_LOGO_KEY);
  return { mspName: s.get(BRANDING_NAME_KEY) || 'Keywarden', logoPng: logo ? Buffer.from(logo, 'base64') : null };
}
