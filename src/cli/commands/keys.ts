import type { Command } from 'commander';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { table } from '../io.js';
import type { CliContext } from '../program.js';

/** Source types, each marked when every source of that type removed the key (e.g. entra (removed at source 2026-01-05)). */
function sourceSummary(sources: readonly { type: string; removedAt: string | null }[]): string {
  const types = sources.map((s) => s.type).filter((t, i, a) => a.indexOf(t) === i);
  return types
    .map((t) => {
      const of = sources.filter((s) => s.type === t);
      if (of.some((s) => s.removedAt === null)) return t;
      const last = of.map((s) => s.removedAt!).sort()[of.length - 1]!;
      return `${t} (removed at source ${last.slice(0, 10)})`;
    })
    .join(',');
}

export function registerKeys(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('recovery-key metadata (never the passwords)');
  keys
    .command('list')
    .description('list keys with client, device, volume, state and sources (and whether a source removed the key)')
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
            // Per source: whether it stopped listing the key (deleted in Entra or AD); the key is kept.
            sources: k.sources.map((src) => ({ ...src, removedAtSource: src.removedAt !== null })),
          })),
        );
      }
      if (list.length === 0) return ctx.out('No keys yet. Import some with: npx keywarden import FILE --client NAME');
      ctx.out(
        table(
          list.map((k) => [
            k.keyId ? formatKeyIdForDisplay(k.keyId) : '(no key ID)',
            k.client.name,
            k.device?.name ?? '',
            k.volume?.mountPoint ?? k.volume?.type ?? '',
            k.state,
            (k.createdAt ?? k.firstSeenAt).slice(0, 10),
            sourceSummary(k.sources),
          ]),
          ['KEY ID', 'CLIENT', 'DEVICE', 'VOLUME', 'STATE', 'CREATED', 'SOURCES'],
        ),
      );
    });
}
