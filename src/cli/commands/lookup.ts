import type { Command } from 'commander';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { REASON_CODES } from '../../domain/reason-codes.js';
import type { KeySummary } from '../../modules/keys/keys.types.js';
import { CliExit, EXIT, table } from '../io.js';
import type { CliContext } from '../program.js';

type Opts = { reason: string; ticket?: string; note?: string; json?: boolean };

const idText = (k: { keyId: string | null }) => (k.keyId ? formatKeyIdForDisplay(k.keyId) : '(no key ID)');
const volumeText = (k: KeySummary) => (k.volume ? [k.volume.mountPoint, k.volume.type].filter(Boolean).join(' ') : '');

export function registerLookup(program: Command, ctx: CliContext): void {
  program
    .command('lookup')
    .description('find a recovery key by its key ID (or the first 8+ characters) and reveal it; audited')
    .argument('<keyid>', 'key ID as shown on the recovery screen, or its first 8+ characters')
    .requiredOption('--reason <code>', `why the key is needed: ${REASON_CODES.map((r) => r.code).join(', ')}`)
    .option('--ticket <ref>', 'ticket or case reference (required with --reason other)')
    .option('--note <text>', 'free-text note for the audit log')
    .option('--json', 'machine-readable output')
    .action(async (keyid: string, opts: Opts) => {
      const c = await ctx.container();
      const r = await c.keys.revealByKeyId(ctx.actor, { query: keyid, reason: opts.reason, ticket: opts.ticket, note: opts.note });
      if (r.status === 'not_found') {
        if (opts.json) ctx.json({ matches: 0 });
        else ctx.err(`No recovery key matches "${keyid.trim()}". Check the ID on the recovery screen, or import the device's keys.`);
        throw new CliExit(EXIT.notFound);
      }
      if (r.status === 'ambiguous') {
        const candidates = (r.candidates ?? []).map((k) => ({
          keyId: k.keyId,
          client: k.client.name,
          device: k.device?.name ?? null,
          createdAt: k.createdAt ?? k.firstSeenAt,
          state: k.state,
        }));
        if (opts.json) ctx.json({ matches: r.matches, candidates });
        else {
          ctx.err(`${r.matches} keys match "${keyid.trim()}"; type more of the key ID (the full ID picks exactly one).`);
          ctx.out(
            table(
              candidates.map((k) => [k.keyId ? formatKeyIdForDisplay(k.keyId) : '(no key ID)', k.client, k.device ?? '', k.createdAt.slice(0, 10), k.state]),
              ['KEY ID', 'CLIENT', 'DEVICE', 'DATE', 'STATE'],
            ),
          );
        }
        throw new CliExit(EXIT.ambiguous);
      }
      const k = r.key;
      if (opts.json) {
        return ctx.json({
          keyId: k.keyId,
          recoveryPassword: k.recoveryPassword,
          client: k.client.name,
          device: k.device?.name ?? null,
          volume: k.volume,
          state: k.state,
          sources: k.sources,
        });
      }
      ctx.out(
        [
          `Key ID:     ${idText(k)}`,
          `Client:     ${k.client.name}`,
          `Device:     ${k.device?.name ?? '(unknown)'}${volumeText(k) ? `  (${volumeText(k)})` : ''}`,
          `State:      ${k.state}${k.state === 'disclosed' ? ' (rotate this key once the device is back up)' : ''}`,
          `Sources:    ${k.sources.map((s) => `${s.type}: ${s.ref}`).join('; ') || '(none)'}`,
          '',
          'Recovery password:',
          `  ${k.recoveryPassword}`,
        ].join('\n'),
      );
    });

  program
    .command('reasons')
    .description('list the reason codes accepted by lookup')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) => {
      if (opts.json) return ctx.json(REASON_CODES);
      ctx.out(
        table(
          REASON_CODES.map((r) => [r.code, r.label]),
          ['CODE', 'MEANING'],
        ),
      );
    });
}
