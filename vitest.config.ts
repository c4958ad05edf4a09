import { defineConfig } from 'vitest/config';

/**
 * Projects: `unit` is pure code (domain parsing, crypto primitives); `db` touches a real
 * database and runs on SQLite by default or PostgreSQL with KEYWARDEN_TEST_ENGINE=postgres;
 * `browser` drives the web console in Chromium (test/browser).
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
          exclude: ['test/browser/**'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // The web console in Debian's Chromium against a real server (issue 7). The global setup
        // builds dist/web when it is missing or older than web/. SQLite by default; the same tests
        // run on PostgreSQL with KEYWARDEN_TEST_ENGINE=postgres.
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          globalSetup: ['test/browser/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          // One Chromium at a time on a 2-core machine.
          fileParallelism: false,
        },
      },
    ],
  },
});
