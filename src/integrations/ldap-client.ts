import { createHash } from 'node:crypto';
import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import { isUnresolved, type EgressPolicy, isEgressError } from './egress.js';

/**
 * A thin LDAP client for Active Directory over LDAPS or StartTLS (AD refuses simple binds without
 * TLS). Certificates are verified against the configured CA, or matched to a pinned SHA-256
 * fingerprint; accepting any certificate is possible only when asked for explicitly. Hosts are
 * tried in order (failover), each at the address the egress policy checked (the name is not
 * resolved again; TLS still presents and checks the host name). Errors come back as one of five
 * product-level kinds.
 */
export type LdapTarget = {
  hosts: string[];
  port: number;
  tlsMode: 'ldaps' | 'starttls';
  caCert: string | null;
  pinnedSha256: string | null;
  allowUntrusted: boolean;
  bindDn: string;
  password: string;
};

export type LdapErrorKind = 'unreachable' | 'not_allowed' | 'untrusted_certificate' | 'wrong_credentials' | 'ldap_error';

export class LdapError extends Error {
  constructor(
    readonly kind: LdapErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'LdapError';
  }
}

export type LdapEntry = Record<string, string | string[] | Buffer | Buffer[]> & { dn: string };

const normalizeFingerprint = (s: string) => s.replace(/[^0-9a-f]/gi, '').toLowerCase();

/** SNI carries a name, never an address. */
const serverName = (host: string) => (net.isIP(host.replace(/^\[|\]$/g, '')) ? undefined : host);

function tlsOptions(t: LdapTarget, host: string): ConnectionOptions {
  const base: ConnectionOptions = { servername: serverName(host), minVersion: 'TLSv1.2' };
  // A pinned certificate replaces CA validation; openLdap checks the pin before it connects.
  if (t.pinnedSha256) return { ...base, rejectUnauthorized: false, checkServerIdentity: () => undefined };
  if (t.allowUntrusted) return { ...base, rejectUnauthorized: false, checkServerIdentity: () => undefined };
  return { ...base, ca: t.caCert ? [t.caCert] : undefined, rejectUnauthorized: true, checkServerIdentity: () => undefined };
}

/** ldapts loads with the first connection, not with the container: the CLI's lookup never needs it. */
let ldapts: typeof import('ldapts') | undefined;

function classify(e: unknown, host: string): LdapError {
  if (e instanceof LdapError) return e;
  if (ldapts && e instanceof ldapts.InvalidCredentialsError)
    return new LdapError('wrong_credentials', `The domain controller ${host} refused the bind: wrong user name or password (LDAP 49).`);
  const err = e as { code?: string; message?: string };
  const code = err.code ?? '';
  const msg = err.message ?? String(e);
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|unable to verify|self.signed|certificate|pinned/i.test(code + ' ' + msg)) {
    return new LdapError(
      'untrusted_certificate',
      `The certificate of ${host} is not trusted (${code || msg.slice(0, 120)}). Add the domain's CA certificate or pin the certificate's SHA-256.`,
    );
  }
  if (/ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|ECONNRESET|EAI_AGAIN|timeout/i.test(code + ' ' + msg)) {
    return new LdapError('unreachable', `Cannot reach ${host} (${code || msg.slice(0, 80)}).`);
  }
  return new LdapError('ldap_error', `LDAP error from ${host}: ${msg.slice(0, 200)}`);
}

export type LdapSession = {
  host: string;
  search(base: string, filter: string, attributes: string[], opts?: { scope?: 'base' | 'one' | 'sub'; buffers?: string[] }): Promise<LdapEntry[]>;
  close(): Promise<void>;
};

/**
 * Checks the pinned SHA-256 against the certificate the host presents, with a TLS handshake of
 * its own (Node ignores identity-check errors once rejectUnauthorized is off, so the pin cannot be
 * checked inside the LDAP connection's handshake).
 */
function checkPin(host: string, address: string, port: number, pinned: string, timeoutMs: number): Promise<void> {
  const want = normalizeFingerprint(pinned);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: address, port, rejectUnauthorized: false, servername: serverName(host), timeout: timeoutMs }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      const got = cert?.raw ? createHash('sha256').update(cert.raw).digest('hex') : '';
      if (got === want) resolve();
      else reject(new LdapError('untrusted_certificate', `The certificate of ${host} has SHA-256 ${got || '(none)'}, not the pinned ${want}.`));
    });
    socket.on('timeout', () => socket.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    socket.on('error', (e) => reject(classify(e, host)));
  });
}

/** Connects and binds to the first host that answers; wrong credentials or an untrusted certificate stop at once. */
export async function openLdap(t: LdapTarget, egress: EgressPolicy, timeoutMs = 10_000): Promise<LdapSession> {
  if (t.pinnedSha256 && t.tlsMode === 'starttls') {
    throw new LdapError('untrusted_certificate', 'A pinned certificate needs LDAPS (636); with StartTLS give the domain CA certificate instead.');
  }
  const { Client } = (ldapts ??= await import('ldapts'));
  let last: LdapError | undefined;
  for (const host of t.hosts) {
    let address: string;
    try {
      ({ address } = await egress.resolve(host, t.port, 'local', 'the domain controller'));
    } catch (e) {
      if (!isEgressError(e)) throw e;
      // A name that does not resolve is unreachable; a forbidden address is reported as such. Either
      // way the next DC may do, and a refusal is the more useful thing to report if none does.
      const err = new LdapError(isUnresolved(e) ? 'unreachable' : 'not_allowed', e.message);
      if (last?.kind !== 'not_allowed' || err.kind === 'not_allowed') last = err;
      continue;
    }
    const url = `${t.tlsMode === 'ldaps' ? 'ldaps' : 'ldap'}://${net.isIPv6(address) ? `[${address}]` : address}:${t.port}`;
    const client = new Client({ url, timeout: timeoutMs, connectTimeout: timeoutMs, ...(t.tlsMode === 'ldaps' ? { tlsOptions: tlsOptions(t, host) } : {}) });
    try {
      if (t.pinnedSha256) await checkPin(host, address, t.port, t.pinnedSha256, timeoutMs);
      if (t.tlsMode === 'starttls') await client.startTLS(tlsOptions(t, host));
      await client.bind(t.bindDn, t.password);
      return {
        host,
        async search(base, filter, attributes, opts = {}) {
          try {
            const r = await client.search(base, {
              scope: opts.scope ?? 'sub',
              filter,
              attributes,
              paged: opts.scope === 'base' ? false : { pageSize: 500 },
              explicitBufferAttributes: opts.buffers ?? [],
            });
            return r.searchEntries as unknown as LdapEntry[];
          } catch (e) {
            throw classify(e, host);
          }
        },
        close: () => client.unbind().catch(() => undefined),
      };
    } catch (e) {
      await client.unbind().catch(() => undefined);
      const err = classify(e, host);
      if (err.kind !== 'unreachable') throw err; // a refusal is an answer: do not try the next DC
      if (last?.kind !== 'not_allowed') last = err;
    }
  }
  throw last ?? new LdapError('unreachable', 'No domain controller host is configured.');
}

/** Windows stores GUIDs with the first three fields little-endian. */
export function windowsGuid(bytes: Buffer): string | null {
  if (!Buffer.isBuffer(bytes) || bytes.length !== 16) return null;
  const h = (b: Buffer) => b.toString('hex');
  const rev = (s: number, e: number) => Buffer.from(bytes.subarray(s, e)).reverse();
  return `${h(rev(0, 4))}-${h(rev(4, 6))}-${h(rev(6, 8))}-${h(bytes.subarray(8, 10))}-${h(bytes.subarray(10, 16))}`;
}
