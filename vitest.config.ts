import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` is pure code (domain parsing, crypto primitives); `db` touches a real
 * database and runs on SQLite by default or PostgreSQL with KEYWARDEN_TEST_ENGINE=postgres.
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/domain/**/*.test.ts', 'src/crypto/**/*.test.ts', 'src/lib/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'db',
          include: ['test/**/*.test.ts', 'src/modules/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
