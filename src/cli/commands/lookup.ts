import type { Command } from 'commander';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { REASON_CODES } from '../../domain/reason-codes.js';
import type { KeySummary } from '../../modules/keys/keys.types.js';
import { CliExit, EXIT, table } from '../io.js';
import type { CliContext } from '../program.js';

type Opts = { reason: string; ticket?: string; note?: string; json?: boolean; candidate?: string; key?: string };

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
    .option('--candidate <n>', 'when several keys match: reveal the n-th of the ranked list lookup printed (1 = try this one first)')
    .option('--key <record-id>', 'when several keys match: reveal the key record with this id (the RECORD column)')
    .option('--json', 'machine-readable output')
    .action(async (keyid: string, opts: Opts) => {
      const c = await ctx.container();
      if (opts.candidate !== undefined && opts.key !== undefined) {
        ctx.err('Use either --candidate or --key, not both.');
        throw new CliExit(EXIT.usage);
      }
      let query = keyid;
      if (opts.candidate !== undefined) {
        const n = Number(opts.candidate);
        if (!/^\d+$/.test(opts.candidate.trim()) || n < 1) {
          ctx.err(`--candidate takes the number of a candidate in the list (1, 2, ...), not "${opts.candidate.slice(0, 20)}".`);
          throw new CliExit(EXIT.usage);
        }
        // The same ranked list the ambiguous answer printed (no password, not a reveal).
        const found = await c.keyLookup.lookup(ctx.actor, keyid);
        const pick = found.keys[n - 1];
        if (!pick) {
          ctx.err(
            found.matches === 0
              ? `No recovery key matches "${keyid.trim()}".`
              : `There are ${found.keys.length} candidates for "${keyid.trim()}"; pick 1 to ${found.keys.length}.`,
          );
          throw new CliExit(found.matches === 0 ? EXIT.notFound : EXIT.usage);
        }
        query = pick.id;
      } else if (opts.key !== undefined) {
        const found = await c.keyLookup.lookup(ctx.actor, keyid);
        const pick = found.keys.find((k) => k.id === opts.key!.trim().toLowerCase());
        if (!pick) {
          ctx.err(`Key record "${opts.key.trim().slice(0, 40)}" is not one of the keys matching "${keyid.trim()}". Run lookup without --key to see them.`);
          throw new CliExit(EXIT.notFound);
        }
        query = pick.id;
      }
      const r = await c.keys.revealByKeyId(ctx.actor, { query, reason: opts.reason, ticket: opts.ticket, note: opts.note });
      if (r.status === 'not_found') {
        if (opts.json) ctx.json({ matches: 0 });
        else ctx.err(`No recovery key matches "${keyid.trim()}". Check the ID on the recovery screen, or import the device's keys.`);
        throw new CliExit(EXIT.notFound);
      }
      if (r.status === 'ambiguous') {
        const candidates = (r.candidates ?? []).map((k, i) => ({
          candidate: i + 1,
          record: k.id,
          tryFirst: 'tryFirst' in r && k.id === r.tryFirst,
          mayNotUnlock: k.mayNotUnlock,
          sources: [...new Set(k.sources.map((s) => s.type))],
          keyId: k.keyId,
          client: k.client.name,
          device: k.device?.name ?? null,
          createdAt: k.createdAt ?? k.firstSeenAt,
          state: k.state,
        }));
        if (opts.json) ctx.json({ matches: r.matches, candidates });
        else {
          const full = candidates.length > 0 && candidates.every((k) => k.keyId === candidates[0]!.keyId);
          ctx.err(
            candidates.length === 0
              ? `${r.matches} keys match "${keyid.trim()}"; type more of the key ID.`
              : full
                ? `${r.matches} stored keys have this key ID (a conflict, or several clients). Reveal one with --candidate <n> (1 = try this one first) or --key <record>.`
                : `${r.matches} keys match "${keyid.trim()}"; type more of the key ID, or pick one with --candidate <n> or --key <record>.`,
          );
          ctx.out(
            table(
              candidates.map((k) => [
                String(k.candidate),
                k.keyId ? formatKeyIdForDisplay(k.keyId) : '(no key ID)',
                k.client,
                k.device ?? '',
                k.sources.join(', '),
                k.createdAt.slice(0, 10),
                k.state + (k.mayNotUnlock ? ' (may not unlock)' : ''),
                k.tryFirst ? 'try this one first' : '',
                k.record,
              ]),
              ['#', 'KEY ID', 'CLIENT', 'DEVICE', 'SOURCE', 'DATE', 'STATE', '', 'RECORD'],
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
          // Only when it applies: a warning, and scripts that read the documented shape stay as they were.
          ...(k.mayNotUnlock ? { mayNotUnlock: true } : {}),
          sources: k.sources,
        });
      }
      ctx.out(
        [
          `Key ID:     ${idText(k)}`,
          `Client:     ${k.client.name}`,
          `Device:     ${k.device?.name ?? '(unknown)'}${volumeText(k) ? `  (${volumeText(k)})` : ''}`,
          `State:      ${k.state}${k.state === 'disclosed' ? ' (rotate this key once the device is back up)' : ''}`,
          ...(k.mayNotUnlock
            ? ["Warning:    may not unlock: the device's agent reported a different password for this key. Queue a re-escrow for the device."]
            : []),
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
