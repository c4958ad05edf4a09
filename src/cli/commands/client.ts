import type { Command } from 'commander';
import type { CliContext } from '../program.js';
import { table } from '../io.js';

export function registerClient(program: Command, ctx: CliContext): void {
  const client = program.command('client').description('manage clients (the MSP customers keys belong to)');
  client
    .command('add')
    .argument('<name>', 'client name, e.g. "Contoso Ltd"')
    .description('add a client (it gets its own data key)')
    .option('--json', 'machine-readable output')
    .action(async (name: string, opts: { json?: boolean }) => {
      const c = await (await ctx.container()).clients.create(ctx.actor, { name });
      if (opts.json) return ctx.json(c);
      ctx.out(`Added client "${c.name}".`);
    });
  client
    .command('list')
    .description('list clients with their device and key counts')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const list = await (await ctx.container()).clients.list(ctx.actor);
      if (opts.json) return ctx.json(list);
      if (list.length === 0) return ctx.out('No clients yet. Add one with: npx keywarden client add "Contoso"');
      ctx.out(
        table(
          list.map((c) => [c.name, String(c.devices), String(c.keys), c.createdAt.slice(0, 10)]),
          ['CLIENT', 'DEVICES', 'KEYS', 'CREATED'],
        ),
      );
    });
}
