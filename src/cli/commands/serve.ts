import type { Command } from 'commander';
import { badRequest } from '../../lib/errors.js';
import type { CliContext } from '../program.js';

export const SERVE_ROLES = ['all', 'api', 'worker'] as const;
export type ServeRole = (typeof SERVE_ROLES)[number];

/** Why the socket could not be opened, in words with the fix; undefined for anything else. */
function listenProblem(e: unknown, host: string, port: number): Error | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const other = port === 65535 ? 8081 : port + 1;
  if (code === 'EADDRINUSE')
    return badRequest(
      `Port ${port} is in use by another program on ${host}: stop it, or start Keywarden on another port with --port ${other} (or KEYWARDEN_PORT=${other}).`,
    );
  if (code === 'EACCES')
    return badRequest(
      `Keywarden may not listen on port ${port} (ports below 1024 need extra rights): use --port 8080 (or KEYWARDEN_PORT=8080) behind a reverse proxy.`,
    );
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
    return badRequest(`This machine has no address ${host} to listen on: use --host 127.0.0.1 (or KEYWARDEN_HOST), or one of its own addresses.`);
  return undefined;
}

export function registerServe(program: Command, ctx: CliContext): void {
  program
    .command('serve')
    .description('run the web API (and console) until stopped; SIGTERM finishes requests in flight, then exits')
    .option('--host <host>', 'address to listen on (KEYWARDEN_HOST, default 127.0.0.1)')
    .option('--port <port>', 'port (KEYWARDEN_PORT, default 8080)')
    .option(
      '--role <role>',
      'api: web API and agents only, no background work; worker: background tasks (syncs, rotations) with only /healthz, /readyz and /metrics over HTTP; all: both (default)',
      'all',
    )
    .action(async (opts: { host?: string; port?: string; role: string }) => {
      if (!(SERVE_ROLES as readonly string[]).includes(opts.role)) throw badRequest(`--role must be one of ${SERVE_ROLES.join(', ')}; got "${opts.role}".`);
      const role = opts.role as ServeRole;
      const c = await ctx.container();
      // A server commits all day: its SQLite checkpoints run on a worker thread, not in requests.
      c.database.backgroundCheckpoints?.((message) => process.stderr.write(`SQLite checkpoint failed: ${message}\n`));
      const host = opts.host ?? c.config.server.host;
      const port = opts.port !== undefined ? Number(opts.port) : c.config.server.port;
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw badRequest(`--port must be a number from 0 to 65535; got "${opts.port}".`);
      c.metrics.registry.setDefaultLabels({ role });
      // Fastify and the routes load here, when the server starts: no other command needs them.
      const [{ buildApp }, { buildWorkerApp }, { readableLogStream }] = await Promise.all([
        import('../../app.js'),
        import('../../http/worker-app.js'),
        import('../../http/request-log.js'),
      ]);
      // A person watching a terminal reads one line per request; a service manager or log
      // collector (stdout not a terminal) gets pino's JSON lines.
      const logger = process.stdout.isTTY ? { stream: readableLogStream() } : {};
      const app = role === 'worker' ? await buildWorkerApp(c, { logger }) : await buildApp(c, { logger });
      // Before the first request: with no user yet, the browser's first-run setup needs this token.
      const setupToken = role === 'worker' ? null : await c.setup.issueToken();
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
      let address: string;
      try {
        address = await app.listen({ host, port });
      } catch (e) {
        await app.close().catch(() => undefined);
        throw listenProblem(e, host, port) ?? e;
      }
      // Scheduled syncs and rotations in the same log as the requests, one line each.
      c.scheduler.onRun((task, status, ms) =>
        app.log.info(
          { task: task.kind, client: task.client_id ?? undefined, status, ms: Math.round(ms) },
          status.startsWith('failed') ? 'task failed' : 'task finished',
        ),
      );
      // Scheduled work (Entra syncs, Intune rotations) runs in every process of role all or worker;
      // leases keep one task in one process at a time. An api process never starts it.
      // The first poll comes a few seconds after start (or one poll interval, if shorter), so that
      // work due at start does not hold up readiness.
      if (role !== 'api') c.scheduler.start(c.config.scale.schedulerPollMs, Math.min(c.config.scale.schedulerPollMs, 5_000));
      if (setupToken) {
        // The terminal only, never the log: whoever holds it can make themselves the vault's owner.
        ctx.err(
          `No users yet. Create the first owner in the browser (${c.config.server.publicUrl ?? address}/setup) with this one-time setup token:\n\n    ${setupToken}\n\n` +
            'It replaces any setup token printed before and stops working once the owner exists. Or, on this server:  npx keywarden user add you@example.com',
        );
      }
      ctx.err(
        role === 'worker'
          ? `Keywarden worker is listening on ${address} (role worker: background tasks; /healthz, /readyz, /metrics only).`
          : `Keywarden is listening on ${c.config.server.publicUrl ?? address} (role ${role}; API docs at /api/docs).`,
      );
      await stopped;
    });
}
