import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { DatabaseTarget } from '../../src/config.js';

/**
 * The same tests run on both engines: SQLite by default, PostgreSQL when
 * KEYWARDEN_TEST_ENGINE=postgres (npm run test:pg). Each test file gets a database of its own.
 */
export const ENGINE: 'sqlite' | 'postgres' = process.env.KEYWARDEN_TEST_ENGINE === 'postgres' ? 'postgres' : 'sqlite';
export const PG_ADMIN_URL = process.env.KEYWARDEN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export type TestDatabase = { target: DatabaseTarget; url: string; dir: string; name: string; drop(): Promise<void> };

export async function createTestDatabase(): Promise<TestDatabase> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-test-'));
  if (ENGINE === 'sqlite') {
    const file = path.join(dir, 'keywarden.db');
    return {
      target: { engine: 'sqlite', file },
      url: `sqlite:${file}`,
      dir,
      name: file,
      drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `kw_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  return {
    target: { engine: 'postgres', url },
    url,
    dir,
    name,
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
