import { sql } from 'kysely';
import type { Db } from './database.js';
import { migrationStatus } from './migrate.js';

export type Readiness = { status: 'ready' } | { status: 'migrations pending'; pending: string[] } | { status: 'database unreachable' };

/** What /readyz answers: the database answers a query and every migration has run. */
export async function databaseReadiness(db: Db): Promise<Readiness> {
  try {
    await sql`select 1`.execute(db);
    const pending = (await migrationStatus(db)).filter((m) => !m.executedAt).map((m) => m.name);
    return pending.length ? { status: 'migrations pending', pending } : { status: 'ready' };
  } catch {
    return { status: 'database unreachable' };
  }
}
