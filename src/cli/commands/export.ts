import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import type { BundleKey, BundleOpenError } from '../../crypto/bundle.js';
import { passphraseProblem, recipientFingerprint } from '../../crypto/bundle-checks.js';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { badRequest } from '../../lib/errors.js';
import { FREQUENCIES, type Frequency } from '../../modules/exports/frequencies.js';
import { CliExit, EXIT, table, type CliIo } from '../io.js';
import type { CliContext } from '../program.js';

/**
 * `keywarden export …`: offline break-glass copies.
 *
 * `export open` and `export keygen` work with nothing but the file they are given: they never call
 * ctx.config() or ctx.container(), so they run on a laptop without a server, data folder,
 * configuration or database (the whole point of a break-glass copy).
 *
 * The age code (crypto/bundle.ts), the bundle schema and the prompt load when a command needs them, not for --help.
 */
const bundleCode = () => import('../../crypto/bundle.js');

const resolve = (io: CliIo, file: string) => path.resolve(io.cwd, file);

function readSecretFile(io: CliIo, file: string, what: string): string {
  try {
    return fs.readFileSync(resolve(io, file), 'utf8').replace(/\r?\n$/, '');
  } catch {
    throw badRequest(`Cannot read the ${what} file ${file}.`);
  }
}

/** A passphrase from a file (scripts) or a masked prompt (people); never from an argument. */
async function askPassphrase(io: CliIo, confirm: boolean): Promise<string> {
  if (!process.stdin.isTTY || io.env.CI) throw badRequest('Give the passphrase with --passphrase-file FILE (there is no terminal to ask on).');
  const { isCancel, password } = await import('@clack/prompts');
  const first = await password({ message: confirm ? 'Passphrase for the bundle (four or more random words)' : 'Passphrase of the bundle' });
  if (isCancel(first)) throw badRequest('Cancelled.');
  if (!confirm) return first;
  const problem = passphraseProblem(first);
  if (problem) throw badRequest(problem);
  const again = await password({ message: 'Once more, to be sure' });
  if (isCancel(again)) throw badRequest('Cancelled.');
  if (first !== again) throw badRequest('The two passphrases differ.');
  return first;
}

/** Opens a file for writing that must not exist yet (an export never overwrites), mode 0600. */
function writeNew(io: CliIo, file: string, data: string | Buffer): string {
  const full = resolve(io, file);
  let fd: number;
  try {
    fd = fs.openSync(full, 'wx', 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw badRequest(
      code === 'EEXIST' ? `${file} already exists; choose another name (an export never overwrites a file).` : `Cannot create ${file} (${code ?? 'error'}).`,
    );
  }
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  } finally {
    fs.closeSync(fd);
  }
  return full;
}

function ensureFree(io: CliIo, file: string | undefined): void {
  if (file && fs.existsSync(resolve(io, file))) throw badRequest(`${file} already exists; choose another name (an export never overwrites a file).`);
}

type ExportOpts = { client?: string; out?: string; passphraseFile?: string; recipient?: string; sheet?: string; json?: boolean };

export function registerExport(program: Command, ctx: CliContext): void {
  const exp = program
    .command('export')
    .description("offline break-glass copies: an encrypted bundle (age format) of a client's keys, a printable recovery sheet; audited");
  // "export --client …" runs this default subcommand. The options live here, not on "export"
  // itself, so "export open FILE --passphrase-file F" hands --passphrase-file to "open".
  exp
    .command('bundle', { isDefault: true })
    .description('write an encrypted bundle of a client\'s active keys and/or the printable recovery sheet (the default: "keywarden export --client NAME …")')
    .option('--client <name>', 'the client whose keys to export')
    .option('--out <file>', 'write the encrypted bundle here (never overwrites)')
    .addOption(
      new Option('--passphrase-file <file>', 'protect the bundle with the passphrase in this file (otherwise asked for, masked)').conflicts('recipient'),
    )
    .option('--recipient <age1…>', 'encrypt to this age X25519 public key instead of a passphrase (see "export keygen")')
    .option('--sheet <file.pdf>', 'also write the printable recovery sheet (plaintext on paper: one page per device)')
    .option('--json', 'machine-readable output')
    .action(async (opts: ExportOpts) => {
      if (!opts.client)
        throw badRequest('Name the client: npx keywarden export --client NAME --out FILE (or: export open FILE, export keygen, export schedule).');
      if (!opts.out && !opts.sheet) throw badRequest('Say where to write: --out FILE for the encrypted bundle and/or --sheet FILE.pdf for the printed sheet.');
      if (!opts.out && (opts.passphraseFile || opts.recipient)) throw badRequest('--passphrase-file and --recipient protect the bundle: give --out FILE too.');
      ensureFree(ctx.io, opts.out);
      ensureFree(ctx.io, opts.sheet);
      const c = await ctx.container();
      const client = await c.clients.getByName(ctx.actor, opts.client);
      const protection = !opts.out
        ? undefined
        : opts.recipient
          ? { kind: 'recipient' as const, recipient: opts.recipient }
          : {
              kind: 'passphrase' as const,
              passphrase: opts.passphraseFile ? readSecretFile(ctx.io, opts.passphraseFile, 'passphrase') : await askPassphrase(ctx.io, true),
            };
      const r = await c.exports.exportClient(ctx.actor, { clientId: client.id, protection, sheet: Boolean(opts.sheet) });
      const out = opts.out && r.bundle !== null ? writeNew(ctx.io, opts.out, r.bundle) : null;
      const sheet = opts.sheet && r.sheet ? writeNew(ctx.io, opts.sheet, r.sheet) : null;
      const how = protection?.kind === 'recipient' ? `recipient ${recipientFingerprint(protection.recipient)}` : protection ? 'passphrase' : null;
      if (opts.json) return ctx.json({ client: r.client.name, keys: r.keys, devices: r.devices, out, sheet, protection: how });
      if (out) {
        ctx.out(`Wrote ${r.keys} recovery keys (${r.devices} devices) of ${r.client.name} to ${out}, encrypted to ${how}.`);
        ctx.out('It is an age file: open it with "npx keywarden export open FILE" on any machine, or with the age / rage tools.');
      }
      if (sheet) ctx.out(`Wrote the recovery sheet (${r.devices} pages) to ${sheet}. It is plaintext: print it, put it in the safe, delete the file.`);
      if (r.keys === 0) ctx.err(`Note: ${r.client.name} has no active keys to export.`);
    });

  exp
    .command('open')
    .description('decrypt a bundle OFFLINE (no server, data folder or database needed) and print client, device, key ID and password')
    .argument('<file>', 'the bundle (.age, armored or binary)')
    .addOption(new Option('--passphrase-file <file>', 'the passphrase, from a file (otherwise asked for, masked)').conflicts('identity'))
    .option('--identity <file>', 'the age identity file (AGE-SECRET-KEY-1…) for a bundle made to a recipient key')
    .option('--json', 'machine-readable output (the whole bundle)')
    .action(async (file: string, opts: { passphraseFile?: string; identity?: string; json?: boolean }) => {
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(resolve(ctx.io, file));
      } catch {
        throw badRequest(`Cannot read the bundle ${file}.`);
      }
      const [{ BundleOpenError, bundleProtection, openBundle, parseIdentityFile }, { parseBundle }] = await Promise.all([
        bundleCode(),
        import('../../domain/export-bundle.js'),
      ]);
      let key: BundleKey;
      try {
        if (opts.identity) key = { kind: 'identity', identity: parseIdentityFile(readSecretFile(ctx.io, opts.identity, 'identity')) };
        else if (opts.passphraseFile) key = { kind: 'passphrase', passphrase: readSecretFile(ctx.io, opts.passphraseFile, 'passphrase') };
        else if (bundleProtection(bytes) === 'recipient') throw badRequest('This bundle was made for a recipient key: open it with --identity FILE.');
        else key = { kind: 'passphrase', passphrase: await askPassphrase(ctx.io, false) };
      } catch (e) {
        if (e instanceof BundleOpenError) return fail(e);
        throw e;
      }
      let text: string;
      try {
        text = await openBundle(bytes, key);
      } catch (e) {
        if (e instanceof BundleOpenError) return fail(e);
        throw e;
      }
      const bundle = parseBundle(text);
      if (!bundle) {
        ctx.err('Error: the file decrypts, but it is not a Keywarden export bundle this version understands.');
        throw new CliExit(EXIT.partial);
      }
      if (opts.json) return ctx.json(bundle);
      ctx.out(
        `Keywarden export of ${bundle.clients.map((c) => c.name).join(', ') || '(no clients)'}, made ${bundle.createdAt.replace('T', ' ').slice(0, 16)} UTC by ${bundle.createdBy}: ${bundle.keys.length} keys.\n`,
      );
      if (bundle.keys.length === 0) return;
      ctx.out(
        table(
          bundle.keys.map((k) => [
            k.client,
            k.device ?? '(no device)',
            k.volume ?? '',
            k.keyId ? formatKeyIdForDisplay(k.keyId) : '(no key ID)',
            k.recoveryPassword,
          ]),
          ['CLIENT', 'DEVICE', 'VOLUME', 'KEY ID', 'RECOVERY PASSWORD'],
        ),
      );
    });

  function fail(e: BundleOpenError): never {
    ctx.err(`Error: ${e.message}`);
    throw new CliExit(EXIT.partial);
  }

  exp
    .command('keygen')
    .description('make an age X25519 identity for automated exports: writes the secret identity file and prints its public recipient key')
    .requiredOption('--out <file>', 'where to write the identity (mode 0600; never overwrites)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { out: string; json?: boolean }) => {
      ensureFree(ctx.io, opts.out);
      const { generateIdentity } = await bundleCode();
      const g = await generateIdentity(new Date().toISOString());
      const file = writeNew(ctx.io, opts.out, g.fileText);
      if (opts.json) return ctx.json({ identityFile: file, recipient: g.recipient, fingerprint: recipientFingerprint(g.recipient) });
      ctx.out(`Identity written to ${file} (keep it secret and offline: it opens every bundle made for it).`);
      ctx.out(
        `Recipient (public, give this to "export --recipient" or "export schedule add --recipient"):\n  ${g.recipient}\n  fingerprint ${recipientFingerprint(g.recipient)}`,
      );
    });

  const schedule = exp
    .command('schedule')
    .description('scheduled exports to a folder for your own backup system (encrypted to a recipient key; no passphrase is stored)');
  schedule
    .command('add')
    .description('export one client (or all clients) daily or weekly to a folder, keeping the newest N bundles')
    .addOption(new Option('--client <name>', 'the client to export').conflicts('allClients'))
    .option('--all-clients', 'every client that is not archived, in one bundle')
    .requiredOption('--recipient <age1…>', 'age X25519 public key the bundles are encrypted to')
    .requiredOption('--folder <dir>', 'where to write the bundles (created with mode 0700 if missing)')
    .addOption(new Option('--frequency <f>', 'how often').choices(Object.keys(FREQUENCIES)).default('daily'))
    .option('--keep <n>', 'how many bundles to keep; older ones are deleted', '7')
    .option('--json', 'machine-readable output')
    .action(async (opts: { client?: string; allClients?: boolean; recipient: string; folder: string; frequency: Frequency; keep: string; json?: boolean }) => {
      if (!opts.client && !opts.allClients) throw badRequest('Say which client: --client NAME, or --all-clients.');
      const keep = Number.parseInt(opts.keep, 10);
      const c = await ctx.container();
      const clientId = opts.client ? (await c.clients.getByName(ctx.actor, opts.client)).id : null;
      const s = await c.exports.addSchedule(ctx.actor, {
        clientId,
        recipient: opts.recipient,
        folder: resolve(ctx.io, opts.folder),
        frequency: opts.frequency,
        keep: Number.isFinite(keep) ? keep : NaN,
      });
      if (opts.json) return ctx.json(s);
      ctx.out(
        `Scheduled a ${s.frequency} export of ${s.client?.name ?? 'all clients'} to ${s.folder}, keeping ${s.keep} copies (schedule ${s.id}). ` +
          'The server (npx keywarden serve) runs it; the first run is due now.',
      );
    });
  schedule
    .command('list')
    .description('export schedules with their last run')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const list = await (await ctx.container()).exports.listSchedules(ctx.actor);
      if (opts.json) return ctx.json(list);
      if (list.length === 0)
        return ctx.out('No export schedules. Add one with: npx keywarden export schedule add --client NAME --recipient age1… --folder DIR');
      ctx.out(
        table(
          list.map((s) => [
            s.id,
            s.client?.name ?? '(all clients)',
            s.frequency,
            String(s.keep),
            s.folder,
            s.recipientFingerprint,
            s.lastRunAt?.slice(0, 16) ?? '',
            s.lastStatus ?? '',
          ]),
          ['ID', 'CLIENT', 'EVERY', 'KEEP', 'FOLDER', 'RECIPIENT', 'LAST RUN', 'STATUS'],
        ),
      );
    });
  schedule
    .command('remove')
    .description('stop a scheduled export (bundles already written stay in the folder)')
    .argument('<id>', 'schedule id (from "export schedule list")')
    .action(async (id: string) => {
      await (await ctx.container()).exports.removeSchedule(ctx.actor, id);
      ctx.out(`Removed export schedule ${id}. Bundles already written stay in the folder.`);
    });
  schedule
    .command('run')
    .description('run a scheduled export now (as the server would)')
    .argument('<id>', 'schedule id')
    .action(async (id: string) => {
      const status = await (await ctx.container()).exports.runScheduleNow(id);
      ctx.out(status);
      if (!status.startsWith('ok')) throw new CliExit(EXIT.partial);
    });
}
