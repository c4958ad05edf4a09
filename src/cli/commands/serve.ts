import type { Command } from 'commander';
import { buildApp } from '../../app.js';
import { badRequest } from '../../lib/errors.js';
import type { CliContext } from '../program.js';

export function registerServe(program: Command, ctx: CliContext): void {
  program
    .command('serve')
    .description('run the web API (and console) until stopped; SIGTERM finishes requests in flight, then exits')
    .option('--host <host>', 'address to listen on (KEYWARDEN_HOST, default 127.0.0.1)')
    .option('--port <port>', 'port (KEYWARDEN_PORT, default 8080)')
    .action(async (opts: { host?: string; port?: string }) => {
      const c = await ctx.container();
      const host = opts.host ?? c.config.server.host;
      const port = opts.port !== undefined ? Number(opts.port) : c.config.server.port;
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw badRequest(`--port must be a number from 0 to 65535; got "${opts.port}".`);
      const app = await buildApp(c);
      const stopped = new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) return;
          stopping = true;
          app.log.info({ signal }, 'shutting down: finishing requests in flight');
          // close() stops accepting, waits for in-flight requests, then resolves. A client that
          // never lets go of its connection gets 30 s, then it is cut.
          const deadline = setTimeout(() => app.server.closeAllConnections(), 30_000);
          deadline.unref();
          app.close().then(
            () => resolve(),
            () => resolve(),
          );
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      const address = await app.listen({ host, port });
      // Scheduled work (Entra syncs, Intune rotations) runs in every server process; leases keep
      // one task in one process at a time.
      c.scheduler.start();
      if (!(await c.identity.hasUsers())) {
        ctx.err('No users yet. Create the first owner:  npx keywarden user add you@example.com');
      }
      ctx.err(`Keywarden is listening on ${c.config.server.publicUrl ?? address} (API docs at /api/docs).`);
      await stopped;
    });
}
