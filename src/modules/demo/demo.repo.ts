import type { Executor } from '../../db/database.js';

/**
 * What the demo seeder reads: whether the vault is empty, and the figures of its summary. The demo
 * writes nothing itself: its data goes in through the services and the owning modules' repos.
 */
export function createDemoRepo() {
  return {
    /** True when the table has at least one row. */
    async any(exec: Executor, t: 'clients' | 'users' | 'recovery_keys'): Promise<boolean> {
      return (await exec.selectFrom(t).select('id').limit(1).execute()).length > 0;
    },
    async count(exec: Executor, t: 'devices' | 'recovery_keys'): Promise<number> {
      return Number(
        (
          await exec
            .selectFrom(t)
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    },
    async openFindings(exec: Executor): Promise<number> {
      return Number(
        (
          await exec
            .selectFrom('findings')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('resolved_at', 'is', null)
            .executeTakeFirstOrThrow()
        ).n,
      );
    },
    /** Name keys of every client (archived ones too: a name is never reused). */
    async clientNameKeys(exec: Executor): Promise<Set<string>> {
      return new Set((await exec.selectFrom('clients').select('name_key').execute()).map((r) => r.name_key));
    },
  };
}
