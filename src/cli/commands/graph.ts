import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { badRequest } from '../../lib/errors.js';
import { readNewPassword } from '../prompt.js';
import { CliExit, EXIT, table } from '../io.js';
import type { CliContext } from '../program.js';
import { CONSENT_CALLBACK_PATH } from '../../modules/graph/consent-path.js';

type CredentialOptions = { secretFile?: string; certFile?: string; keyFile?: string; generateCert?: boolean };

export function registerGraph(program: Command, ctx: CliContext): void {
  const readFile = (file: string, what: string) => {
    try {
      return fs.readFileSync(path.resolve(ctx.io.cwd, file), 'utf8');
    } catch {
      throw badRequest(`Cannot read the ${what} file ${file}.`);
    }
  };
  /** A secret (file or masked prompt), an uploaded certificate with its key, or "generate one". */
  const credentialFrom = async (o: CredentialOptions, askSecret: boolean) => {
    if (o.generateCert) return { generateCertificate: true };
    if (o.certFile || o.keyFile) {
      if (!o.certFile || !o.keyFile) throw badRequest('Give both --cert-file and --key-file.');
      return { certificatePem: readFile(o.certFile, 'certificate'), privateKeyPem: readFile(o.keyFile, 'private key') };
    }
    if (o.secretFile) return { clientSecret: await readNewPassword(ctx.io, o.secretFile, 'Client secret') };
    return askSecret ? { clientSecret: await readNewPassword(ctx.io, undefined, 'Client secret value') } : {};
  };
  const printCertificate = (pem: string, thumbprint: string) => {
    ctx.out(`Upload this certificate to the app registration (Certificates & secrets > Certificates), thumbprint ${thumbprint}:`);
    ctx.out(pem.trimEnd());
  };
  const graph = program.command('graph').description("Microsoft Entra ID (Graph): sync each client tenant's BitLocker keys");
  graph
    .command('connect')
    .description("link a client to its Entra tenant's app registration (secret asked for, masked, or from a file)")
    .requiredOption('--client <name>', 'the client')
    .requiredOption('--tenant <guid>', 'Directory (tenant) ID')
    .requiredOption('--app <guid>', 'Application (client) ID of the app registration')
    .option('--secret-file <file>', 'file holding the client secret value')
    .option('--cert-file <file>', "the app's certificate (PEM) instead of a secret; with --key-file")
    .option('--key-file <file>', "the certificate's private key (PEM, without a passphrase)")
    .option('--generate-cert', 'let Keywarden make a certificate; upload the printed public certificate to the app registration')
    .option('--login-url <url>', 'sign-in host (national clouds)', 'https://login.microsoftonline.com')
    .option('--graph-url <url>', 'Graph host (national clouds)', 'https://graph.microsoft.com')
    .option('--interval <minutes>', 'sync every N minutes', '60')
    .action(
      async (
        o: {
          client: string;
          tenant: string;
          app: string;
          secretFile?: string;
          certFile?: string;
          keyFile?: string;
          generateCert?: boolean;
          loginUrl: string;
          graphUrl: string;
          interval: string;
        } & CredentialOptions,
      ) => {
        const c = await ctx.container();
        const client = await c.clients.getByName(ctx.actor, o.client);
        const conn = await c.graph.createConnection(ctx.actor, {
          clientId: client.id,
          tenantId: o.tenant,
          appClientId: o.app,
          ...(await credentialFrom(o, true)),
          loginUrl: o.loginUrl,
          graphUrl: o.graphUrl,
          syncIntervalMinutes: Number(o.interval),
        });
        if (conn.certificatePem) printCertificate(conn.certificatePem, conn.certificate!.thumbprint);
        ctx.out(`Connected ${client.name} to tenant ${conn.tenantId}. Check it with: npx keywarden graph test --client "${client.name}"`);
      },
    );
  graph
    .command('list')
    .description('connections and their last sync')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const c = await ctx.container();
      const list = await c.graph.listConnections(ctx.actor);
      if (o.json) return ctx.json(list);
      const names = new Map((await c.clients.list(ctx.actor)).map((x) => [x.id, x.name]));
      ctx.out(
        table(
          list.map((x) => [
            names.get(x.clientId) ?? x.clientId,
            x.tenantId,
            x.lastSyncAt?.slice(0, 16).replace('T', ' ') ?? 'never',
            x.lastStatus ?? '',
            x.lastError ?? '',
          ]),
          ['CLIENT', 'TENANT', 'LAST SYNC (UTC)', 'STATUS', 'ERROR'],
        ),
      );
    });
  // ------------------------------------------------------------ the MSP's one multi-tenant app
  const mspApp = graph.command('app').description("the MSP's one multi-tenant Entra ID app, which each client's administrator consents to");
  mspApp
    .command('set')
    .description('set the application ID and a credential (a certificate, preferred, or a client secret)')
    .requiredOption('--app <guid>', 'Application (client) ID of the multi-tenant app registration')
    .option('--generate-cert', 'let Keywarden make a certificate (RSA 3072, 2 years); upload the printed public certificate')
    .option('--cert-file <file>', 'an existing certificate (PEM); with --key-file')
    .option('--key-file <file>', "the certificate's private key (PEM, without a passphrase)")
    .option('--secret-file <file>', 'file holding a client secret value instead of a certificate')
    .option('--login-url <url>', 'sign-in host (national clouds)')
    .option('--graph-url <url>', 'Graph host (national clouds)')
    .option('--json', 'machine-readable output')
    .action(async (o: { app: string; loginUrl?: string; graphUrl?: string; json?: boolean } & CredentialOptions) => {
      const c = await ctx.container();
      const r = await c.mspApp.set(ctx.actor, { appClientId: o.app, loginUrl: o.loginUrl, graphUrl: o.graphUrl, ...(await credentialFrom(o, false)) });
      if (o.json) return ctx.json(r);
      if (r.certificatePem) printCertificate(r.certificatePem, r.certificate!.thumbprint);
      ctx.out(
        `The MSP app ${r.appClientId} signs in with a ${r.credentialKind}. Make a client's consent link with: npx keywarden graph consent-link --client NAME`,
      );
    });
  mspApp
    .command('show')
    .description('the MSP app: application ID, credential kind, certificate thumbprint and expiry')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const c = await ctx.container();
      const r = await c.mspApp.get(ctx.actor);
      if (o.json) return ctx.json(r);
      if (!r) return ctx.out('The MSP app is not configured. Set it with: npx keywarden graph app set --app GUID --generate-cert');
      ctx.out(`Application ID: ${r.appClientId}\nCredential:     ${r.credentialKind}\nSign-in URL:    ${r.loginUrl}\nGraph URL:      ${r.graphUrl}`);
      if (r.certificate)
        ctx.out(
          `Certificate:    ${r.certificate.thumbprint}, valid until ${r.certificate.notAfter.slice(0, 10)}${r.certificate.expiringSoon ? ` — EXPIRES IN ${r.certificate.daysLeft} DAYS: set a new one` : ''}`,
        );
    });
  mspApp
    .command('cert')
    .description("print the MSP app's public certificate (PEM) to upload to the app registration")
    .action(async () => {
      const c = await ctx.container();
      ctx.out((await c.mspApp.certificate(ctx.actor)).certificatePem.trimEnd());
    });
  graph
    .command('consent-link')
    .description("a one-time admin-consent link (7 days) to send to a client's administrator")
    .requiredOption('--client <name>', 'the client')
    .option('--tenant <guid>', "the client's tenant ID, when you know it (the link then works for that tenant only)")
    .action(async (o: { client: string; tenant?: string }) => {
      const c = await ctx.container();
      const client = await c.clients.getByName(ctx.actor, o.client);
      const base = c.config.server.publicUrl;
      if (!base) throw badRequest('Set KEYWARDEN_PUBLIC_URL (the address clients reach Keywarden at): the consent link sends the administrator back there.');
      const r = await c.mspApp.createConsentLink(ctx.actor, { clientId: client.id, tenantId: o.tenant }, `${base.replace(/\/$/, '')}${CONSENT_CALLBACK_PATH}`);
      ctx.out(r.url);
      ctx.io.stderr(
        `Send this link to an administrator of ${client.name}'s Microsoft 365 tenant. It works once, until ${r.expiresAt.slice(0, 16).replace('T', ' ')} UTC.\n`,
      );
    });

  const pick = async (clientName: string | undefined) => {
    const c = await ctx.container();
    const list = await c.graph.listConnections(ctx.actor);
    if (!clientName) return { c, list };
    const client = await c.clients.getByName(ctx.actor, clientName);
    const one = list.filter((x) => x.clientId === client.id);
    if (!one.length) throw badRequest(`${client.name} has no Graph connection. Add one with: npx keywarden graph connect --client "${client.name}" …`);
    return { c, list: one };
  };
  graph
    .command('test')
    .description('check sign-in and each permission')
    .requiredOption('--client <name>', 'the client')
    .option('--json', 'machine-readable output')
    .action(async (o: { client: string; json?: boolean }) => {
      const { c, list } = await pick(o.client);
      const r = await c.graph.testConnection(ctx.actor, list[0]!.id);
      if (o.json) {
        ctx.json(r);
        if (!r.ok) throw new CliExit(EXIT.partial);
        return;
      }
      for (const x of r.checks) ctx.out(`${x.ok ? 'ok  ' : 'FAIL'}  ${x.check}: ${x.detail}`);
      // Scripts and monitoring read the exit code: a failed check is a problem.
      if (!r.ok) throw new CliExit(EXIT.partial);
    });
  graph
    .command('sync')
    .description('sync now (every connection, or one client)')
    .option('--client <name>', 'only this client')
    .option('--json', 'machine-readable output')
    .action(async (o: { client?: string; json?: boolean }) => {
      const { c, list } = await pick(o.client);
      const names = new Map((await c.clients.list(ctx.actor)).map((x) => [x.id, x.name]));
      const results = [];
      for (const conn of list) {
        if (!o.json) ctx.io.stderr(`${names.get(conn.clientId)}: syncing…\n`);
        const r = await c.graph.syncNow(ctx.actor, conn.id);
        results.push({ client: names.get(conn.clientId), ...r });
        if (!o.json) {
          ctx.out(
            r.status === 'succeeded'
              ? `${names.get(conn.clientId)}: ${r.keysListed} keys in Entra, ${r.newKeys} new, ${r.unchanged} already held, ${r.removed} removed at source, ${r.newDevices} new devices, ${r.keyReads} key reads, ${(r.durationMs! / 1000).toFixed(1)} s`
              : `${names.get(conn.clientId)}: FAILED — ${r.errorText}`,
          );
          if (r.status === 'succeeded' && r.warnings) ctx.out(`${names.get(conn.clientId)}: succeeded with warnings — ${r.warnings}`);
        }
      }
      if (o.json) ctx.json(results);
    });
}
