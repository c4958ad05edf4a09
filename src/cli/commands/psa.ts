import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { badRequest, notFound } from '../../lib/errors.js';
import { CliExit, EXIT, table } from '../io.js';
import type { CliContext } from '../program.js';
import type { PsaConnectionInput, PsaConnectionView } from '../../modules/psa/psa.service.js';

/**
 * `keywarden psa …`: the vault's one PSA connection (HaloPSA, ConnectWise PSA, Autotask), each
 * client's PSA company and ticket policy, and each person's PSA member. Secrets come from a file
 * (or stdin with `-`), never from an argument: arguments sit in shell history and the process list.
 * The CLI acts as the local owner (whoever runs it holds the master key), so no step-up is asked.
 */

const KINDS = ['halopsa', 'connectwise', 'autotask'] as const;
const POLICIES = ['off', 'validate', 'required'] as const;

type SetOptions = {
  kind: string;
  url?: string;
  authUrl?: string;
  apiUrl?: string;
  clientId?: string;
  secretFile?: string;
  tenant?: string;
  closedStatuses?: string;
  companyId?: string;
  publicKey?: string;
  privateKeyFile?: string;
  zoneLookupUrl?: string;
  userName?: string;
  integrationCodeFile?: string;
  json?: boolean;
};

export function registerPsa(program: Command, ctx: CliContext): void {
  /** A secret from a file, or from stdin when the file is `-`; one trailing newline is dropped. */
  const secretFrom = (file: string | undefined, what: string): string | undefined => {
    if (file === undefined) return undefined;
    let text: string;
    try {
      text = file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(path.resolve(ctx.io.cwd, file), 'utf8');
    } catch {
      throw badRequest(`Cannot read the ${what} from ${file === '-' ? 'standard input' : `the file ${file}`}.`);
    }
    const value = text.replace(/\r?\n$/, '');
    if (!value) throw badRequest(`The ${what} ${file === '-' ? 'on standard input' : `file ${file}`} is empty.`);
    return value;
  };
  const statusIds = (s: string | undefined): number[] | undefined => {
    if (s === undefined) return undefined;
    const ids = s.split(',').map((x) => x.trim());
    if (!ids.every((x) => /^\d{1,6}$/.test(x)))
      throw badRequest(`--closed-statuses must be the PSA's status numbers, comma-separated (got "${s.slice(0, 60)}").`);
    return ids.map(Number);
  };
  const need = (v: string | undefined, option: string, kind: string): string => {
    if (!v) throw badRequest(`${option} is required for --kind ${kind}.`);
    return v;
  };
  const inputOf = (o: SetOptions): PsaConnectionInput => {
    switch (o.kind) {
      case 'halopsa':
        return {
          kind: 'halopsa',
          url: need(o.url, '--url', o.kind),
          authUrl: o.authUrl,
          apiUrl: o.apiUrl,
          clientId: need(o.clientId, '--client-id', o.kind),
          clientSecret: secretFrom(o.secretFile, 'client secret'),
          tenant: o.tenant ?? null,
          closedStatusIds: statusIds(o.closedStatuses),
        };
      case 'connectwise':
        return {
          kind: 'connectwise',
          apiUrl: need(o.apiUrl ?? o.url, '--api-url', o.kind),
          companyId: need(o.companyId, '--company-id', o.kind),
          publicKey: need(o.publicKey, '--public-key', o.kind),
          privateKey: secretFrom(o.privateKeyFile ?? o.secretFile, 'private key'),
          clientId: need(o.clientId, '--client-id', o.kind),
        };
      case 'autotask':
        return {
          kind: 'autotask',
          zoneLookupUrl: o.zoneLookupUrl ?? null,
          userName: need(o.userName, '--user-name', o.kind),
          secret: secretFrom(o.secretFile, 'API user secret'),
          integrationCode: secretFrom(o.integrationCodeFile, 'integration code'),
          closedStatusIds: statusIds(o.closedStatuses),
        };
      default:
        throw badRequest(`--kind must be one of ${KINDS.join(', ')} (got "${o.kind.slice(0, 40)}").`);
    }
  };
  const printConnection = (v: PsaConnectionView) => {
    ctx.out(`PSA:      ${v.name}`);
    for (const [k, val] of Object.entries(v.settings)) {
      if (val === null) continue;
      ctx.out(`${`${k}:`.padEnd(10)}${Array.isArray(val) ? val.join(', ') : String(val)}`);
    }
    ctx.out(`Secrets:  ${v.secretsSet.join(', ')} (stored, never shown)`);
    ctx.out(`Status:   ${v.status}${v.lastCheckedAt ? ` (checked ${v.lastCheckedAt.slice(0, 16).replace('T', ' ')} UTC)` : ''}`);
    if (v.lastError) ctx.out(`Problem:  ${v.lastError}`);
  };
  const clientNamed = async (name: string) => {
    const c = await ctx.container();
    return { c, client: await c.clients.getByName(ctx.actor, name) };
  };

  const psa = program.command('psa').description('the PSA (HaloPSA, ConnectWise PSA, Autotask): tickets for reveals and findings, client companies, members');
  psa
    .command('show')
    .description('the PSA connection and its status (secrets are never shown)')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const c = await ctx.container();
      const v = await c.psa.connection(ctx.actor);
      if (o.json) return ctx.json({ connection: v });
      if (!v) return ctx.out('No PSA is connected. Connect one with: npx keywarden psa set --kind halopsa|connectwise|autotask …');
      printConnection(v);
    });
  psa
    .command('set')
    .description('connect the PSA (or change it) and test it; secrets from files, or - for stdin')
    .requiredOption('--kind <kind>', KINDS.join(' | '))
    .option('--url <url>', 'HaloPSA: its address, e.g. https://yourmsp.halopsa.com')
    .option('--auth-url <url>', 'HaloPSA: authorisation server (default URL/auth)')
    .option('--api-url <url>', 'HaloPSA: resource server (default URL/api); ConnectWise: site and codebase …/v4_6_release/apis/3.0')
    .option('--client-id <id>', "HaloPSA: the API application's client ID; ConnectWise: the integration's clientId")
    .option('--secret-file <file>', 'HaloPSA client secret, ConnectWise private key or Autotask API user secret (- = stdin)')
    .option('--tenant <name>', 'HaloPSA hosted: the tenant')
    .option('--closed-statuses <ids>', 'HaloPSA/Autotask: status numbers that count as closed, comma-separated')
    .option('--company-id <id>', 'ConnectWise: the company ID you sign in with')
    .option('--public-key <key>', "ConnectWise: the API member's public key")
    .option('--private-key-file <file>', "ConnectWise: file holding the API member's private key (- = stdin)")
    .option('--user-name <name>', "Autotask: the API user's user name")
    .option('--integration-code-file <file>', 'Autotask: file holding the API tracking identifier (- = stdin)')
    .option('--zone-lookup-url <url>', 'Autotask: zone lookup (default https://webservices.autotask.net/atservicesrest)')
    .option('--json', 'machine-readable output')
    .action(async (o: SetOptions) => {
      const input = inputOf(o);
      const c = await ctx.container();
      const v = await c.psa.setConnection(ctx.actor, input);
      if (o.json) return ctx.json(v);
      printConnection(v);
      // Scripts read the exit code: saved but not working is a problem to look at.
      if (v.status !== 'ok') throw new CliExit(EXIT.partial);
    });
  psa
    .command('test')
    .description('test the PSA connection again')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const c = await ctx.container();
      const v = await c.psa.test(ctx.actor);
      if (o.json) ctx.json(v);
      else ctx.out(v.status === 'ok' ? `${v.name} answers: the connection works.` : `FAIL  ${v.name}: ${v.lastError ?? 'the test failed.'}`);
      if (v.status !== 'ok') throw new CliExit(EXIT.partial);
    });
  psa
    .command('remove')
    .description("remove the PSA connection; clients' company links and ticket policies turn off")
    .option('--yes', 'confirm')
    .action(async (o: { yes?: boolean }) => {
      if (!o.yes) throw badRequest("Removing the PSA turns every client's ticket policy off. Add --yes to confirm.");
      const c = await ctx.container();
      const r = await c.psa.removeConnection(ctx.actor);
      ctx.out(
        r.removed
          ? `The PSA connection is removed; ${r.policiesTurnedOff} ticket polic${r.policiesTurnedOff === 1 ? 'y' : 'ies'} turned off.`
          : 'No PSA was connected.',
      );
    });
  psa
    .command('companies')
    .description("the PSA's companies, and each client's link or suggested company")
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const c = await ctx.container();
      const r = await c.psa.companies(ctx.actor);
      if (o.json) return ctx.json(r);
      ctx.out(
        table(
          r.clients.map((x) => [
            x.clientName,
            x.companyId ? `${x.companyName} (${x.companyId})` : 'not linked',
            x.suggestion ? `${x.suggestion.name} (${x.suggestion.id})` : '',
          ]),
          ['CLIENT', 'COMPANY', 'SUGGESTION'],
        ),
      );
      ctx.out(
        `${r.companies.length} active compan${r.companies.length === 1 ? 'y' : 'ies'} in ${r.psa}. Link one with: npx keywarden psa link CLIENT COMPANY_ID`,
      );
    });
  psa
    .command('link')
    .description('link a client to its PSA company (COMPANY_ID as `psa companies` lists it; "none" unlinks)')
    .argument('<client>', 'the client')
    .argument('<companyId>', 'the PSA company id, or none')
    .action(async (clientName: string, companyId: string) => {
      const { c, client } = await clientNamed(clientName);
      const r = await c.psa.setClientSettings(ctx.actor, client.id, { companyId: companyId === 'none' ? null : companyId });
      ctx.out(r.companyId ? `${r.clientName} is linked to ${r.companyName} (${r.companyId}).` : `${r.clientName} is not linked to a PSA company.`);
    });
  psa
    .command('policy')
    .description("a client's ticket policy for reveals: off | validate (a ticket given is checked) | required")
    .argument('<client>', 'the client')
    .argument('<policy>', POLICIES.join(' | '))
    .option('--assignee', 'the ticket must also be assigned to the revealing person')
    .option('--no-assignee', 'any technician may use the ticket')
    .action(async (clientName: string, policy: string, o: { assignee?: boolean }) => {
      if (!(POLICIES as readonly string[]).includes(policy))
        throw badRequest(`The policy must be one of ${POLICIES.join(', ')} (got "${policy.slice(0, 40)}").`);
      const { c, client } = await clientNamed(clientName);
      const r = await c.psa.setClientSettings(ctx.actor, client.id, {
        ticketPolicy: policy as (typeof POLICIES)[number],
        ...(o.assignee !== undefined ? { requireAssignee: o.assignee } : {}),
      });
      ctx.out(`${r.clientName}: ticket policy ${r.ticketPolicy}${r.ticketPolicy !== 'off' && r.requireAssignee ? ', assigned to the revealing person' : ''}.`);
    });
  psa
    .command('member')
    .description('link a person to their PSA member (agent id, member identifier, resource id or name); --clear unlinks')
    .argument('<email>', "the person's email")
    .argument('[member]', 'their identity in the PSA')
    .option('--clear', 'unlink')
    .action(async (email: string, member: string | undefined, o: { clear?: boolean }) => {
      if (!o.clear && !member) throw badRequest('Give the PSA member, or --clear to unlink.');
      if (o.clear && member) throw badRequest('Give either the PSA member or --clear, not both.');
      const c = await ctx.container();
      const who = (await c.psa.members(ctx.actor)).find((m) => m.email.toLowerCase() === email.trim().toLowerCase());
      if (!who) throw notFound(`No user has the email ${email.slice(0, 200)}.`);
      const r = await c.psa.setMember(ctx.actor, who.userId, o.clear ? null : member!);
      ctx.out(r.member ? `${r.email} is ${r.member} in the PSA.` : `${r.email} is not linked to a PSA member.`);
    });
}
