import type { Command } from 'commander';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { table } from '../io.js';
import type { CliContext } from '../program.js';

export function registerKeys(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('recovery-key metadata (never the passwords)');
  keys
    .command('list')
    .description('list keys with client, device, volume, state and sources')
    .option('--client <name>', 'only this client')
    .option('--json', 'machine-readable output')
    .action(async (opts: { client?: string; json?: boolean }) => {
      const c = await ctx.container();
      const clientId = opts.client ? (await c.clients.getByName(ctx.actor, opts.client)).id : undefined;
      const list = await c.keys.list(ctx.actor, { clientId, limit: 100_000 });
      if (opts.json) {
        return ctx.json(
          list.map((k) => ({
            id: k.id,
            keyId: k.keyId,
            client: k.client.name,
            device: k.device?.name ?? null,
            volume: k.volume,
            state: k.state,
            createdAt: k.createdAt,
            firstSeenAt: k.firstSeenAt,
            lastSeenAt: k.lastSeenAt,
            sources: k.sources,
          })),
        );
      }
      if (list.length === 0) return ctx.out('No keys yet. Import some with: keywarden import FILE --client NAME');
      ctx.out(
        table(
          list.map((k) => [
            k.keyId ? formatKeyIdForDisplay(k.keyId) : '(no key ID)',
            k.client.name,
            k.device?.name ?? '',
            k.volume?.mountPoint ?? k.volume?.type ?? '',
            k.state,
            (k.createdAt ?? k.firstSeenAt).slice(0, 10),
            k.sources
              .map((s) => s.type)
              .filter((t, i, a) => a.indexOf(t) === i)
              .join(','),
          ]),
          ['KEY ID', 'CLIENT', 'DEVICE', 'VOLUME', 'STATE', 'CREATED', 'SOURCES'],
        ),
      );
    });
}
