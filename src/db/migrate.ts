import { Migrator, type MigrationResultSet } from 'kysely';
import type { Db } from './database.js';
import { migrations } from './migrations/index.js';
import { vaultError } from '../lib/errors.js';

export function migrator(db: Db): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => migrations } });
}

function check(result: MigrationResultSet, what: string): string[] {
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    // The driver's own message stays out of the error text: it can quote SQL.
    throw vaultError(`Database ${what} failed at migration ${failed}. The database was left at the last good step.`);
  }
  return (result.results ?? []).map((r) => r.migrationName);
}

export async function migrateToLatest(db: Db): Promise<string[]> {
  return check(await migrator(db).migrateToLatest(), 'migration');
}

export async function migrateDown(db: Db): Promise<string[]> {
  return check(await migrator(db).migrateDown(), 'rollback');
}

export async function migrateAllDown(db: Db): Promise<string[]> {
  const m = migrator(db);
  const done: string[] = [];
  for (;;) {
    const names = check(await m.migrateDown(), 'rollback');
    if (names.length === 0) return done;
    done.push(...names);
  }
}

export async function migrationStatus(db: Db): Promise<{ name: string; executedAt: Date | null }[]> {
  const list = await migrator(db).getMigrations();
  return list.map((m) => ({ name: m.name, executedAt: m.executedAt ?? null }));
}
