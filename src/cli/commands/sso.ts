import type { Command } from 'commander';
import { ROLES, type Role } from '../../modules/authz/authz.js';
import { badRequest } from '../../lib/errors.js';
import type { Container } from '../../container.js';
import type { MappingRule } from '../../modules/sso/sso.mapping.js';
import type { SsoKind } from '../../modules/sso/sso.service.js';
import { readNewPassword } from '../prompt.js';
import { table } from '../io.js';
import type { CliContext } from '../program.js';

const KINDS = ['entra', 'google', 'okta', 'oidc'];

/** --map "groups=<value>:<role>:<clients>", clients "all" or client names separated by "+". */
async function parseRule(c: Container, ctx: CliContext, spec: string): Promise<MappingRule> {
  const m = /^([^=]+)=(.+):([a-z-]+):(.+)$/.exec(spec);
  if (!m) throw badRequest(`--map "${spec.slice(0, 100)}" is not claim=value:role:clients (e.g. groups=0a1b…:technician:Contoso+Fabrikam).`);
  const role = m[3] as Role;
  if (!ROLES.includes(role)) throw badRequest(`--map: unknown role "${role}". Roles: ${ROLES.join(', ')}.`);
  const clients =
    m[4]!.trim().toLowerCase() === 'all'
      ? ('all' as const)
      : await Promise.all(
          m[4]!
            .split('+')
            .map((n) => n.trim())
            .filter(Boolean)
            .map(async (n) => (await c.clients.getByName(ctx.actor, n)).id),
        );
  return { claim: m[1]!.trim(), value: m[2]!.trim(), role, clients };
}

async function findProvider(c: Container, ctx: CliContext, nameOrId: string) {
  const list = await c.sso.listProviders(ctx.actor);
  const p = list.find((x) => x.id === nameOrId || x.name.toLowerCase() === nameOrId.toLowerCase());
  if (!p) throw badRequest(`No sign-in provider named "${nameOrId.slice(0, 100)}". See: keywarden sso list`);
  return p;
}

/** Single sign-on providers (OpenID Connect): Entra ID, Google Workspace, Okta, any OIDC provider. */
export function registerSso(program: Command, ctx: CliContext): void {
  const sso = program.command('sso').description('single sign-on providers (OpenID Connect: Entra ID, Google, Okta, …)');
  sso
    .command('list')
    .description('list sign-in providers (client secrets are never shown)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const c = await ctx.container();
      const list = await c.sso.listProviders(ctx.actor);
      if (opts.json) return ctx.json(list);
      if (!list.length) return ctx.out('No sign-in providers. Add one with: npx keywarden sso add --kind entra --name "Contoso" --issuer … --client-id …');
      ctx.out(
        table(
          list.map((p) => [
            p.name,
            p.kind,
            p.issuer,
            p.enabled ? 'yes' : 'no',
            p.jit ? 'yes' : 'no',
            String(p.mappings.length),
            p.hasClientSecret ? 'stored' : 'none',
          ]),
          ['NAME', 'KIND', 'ISSUER', 'ENABLED', 'JIT', 'RULES', 'SECRET'],
        ),
      );
    });
  sso
    .command('add')
    .description('add a sign-in provider (the client secret is asked for, masked, or read from a file)')
    .requiredOption('--kind <kind>', KINDS.join(' | '))
    .requiredOption('--name <name>', 'name on the "Sign in with …" button')
    .requiredOption('--issuer <url>', 'issuer URL, e.g. https://login.microsoftonline.com/<tenant id>/v2.0')
    .requiredOption('--client-id <id>', 'client (application) id registered at the provider')
    .option('--client-secret-file <file>', 'file holding the client secret')
    .option('--no-client-secret', 'a public client without a secret')
    .option('--allowed-tenants <ids>', 'multi-tenant Entra ID app: allowed tenant ids, comma-separated')
    .option('--scopes <scopes>', 'space-separated scopes (default: the usual ones for the kind)')
    .option('--jit', 'add new people on their first sign-in when a rule grants access')
    .option('--idp-mfa', "the provider's multi-factor sign-in satisfies step-up")
    .option('--mode <mode>', 'first | most: which matching rule wins', 'first')
    .option('--map <rule...>', 'mapping rule claim=value:role:clients (clients "all" or names joined by +); repeatable')
    .option('--json', 'machine-readable output')
    .action(
      async (o: {
        kind: string;
        name: string;
        issuer: string;
        clientId: string;
        clientSecretFile?: string;
        clientSecret?: boolean;
        allowedTenants?: string;
        scopes?: string;
        jit?: boolean;
        idpMfa?: boolean;
        mode: string;
        map?: string[];
        json?: boolean;
      }) => {
        if (!KINDS.includes(o.kind)) throw badRequest(`--kind must be one of ${KINDS.join(', ')}.`);
        if (o.mode !== 'first' && o.mode !== 'most') throw badRequest('--mode must be first or most.');
        const c = await ctx.container();
        const mappings = await Promise.all((o.map ?? []).map((m) => parseRule(c, ctx, m)));
        const secret = o.clientSecret === false ? null : await readNewPassword(ctx.io, o.clientSecretFile, 'Client secret');
        const p = await c.sso.createProvider(ctx.actor, {
          kind: o.kind as SsoKind,
          name: o.name,
          issuer: o.issuer,
          clientId: o.clientId,
          clientSecret: secret,
          allowedTenants: o.allowedTenants ? o.allowedTenants.split(',').map((t) => t.trim()) : null,
          scopes: o.scopes ? o.scopes.split(/\s+/).filter(Boolean) : undefined,
          jit: !!o.jit,
          idpMfa: !!o.idpMfa,
          mappingMode: o.mode,
          mappings,
        });
        if (o.json) return ctx.json(p);
        ctx.out(`Added ${p.name} (${p.kind}). Register this redirect URI at the provider: <your Keywarden URL>/api/v1/auth/sso/callback`);
      },
    );
  sso
    .command('remove')
    .argument('<name>', 'the provider name (or id)')
    .description('remove a sign-in provider: its links go and every session opened through it ends')
    .action(async (name: string) => {
      const c = await ctx.container();
      const p = await findProvider(c, ctx, name);
      await c.sso.deleteProvider(ctx.actor, p.id);
      ctx.out(`Removed ${p.name}.`);
    });
}
