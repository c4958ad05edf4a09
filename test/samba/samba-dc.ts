/**
 * A throwaway Samba AD domain controller for integration tests (see README.md next to this file).
 *
 * Everything (config, databases, TLS material, logs, pid/lock/state/cache dirs) lives in one temp
 * directory; /etc/samba, /var/lib/samba and /run/samba are never read or written. The DC listens on
 * one loopback address only (389, 636, 3268, 3269) and runs just the `ldap` service.
 *
 * Samba's LDAP ports are fixed, so two DCs (e.g. two vitest workers) cannot share an address. Each
 * DC therefore takes the first free address of 127.0.0.1 … 127.0.0.32 (all of 127/8 is loopback on
 * Linux), claimed atomically with a lock directory in $TMPDIR/keywarden-dc-address-locks/. Always use
 * `dc.ldapsUrl` / `dc.ldapUrl`, never a hard-coded 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Attribute, Client, Control } from 'ldapts';

export type SambaDc = {
  realm: string;
  domain: string;
  baseDn: string;
  ldapsUrl: string;
  ldapUrl: string;
  /** CA that signed the DC's LDAPS/StartTLS certificate (`<private>/tls/ca.pem`). */
  caCertPem: string;
  /**
   * Name in the server certificate. With the harness-generated certificate (default, needs the
   * `openssl` CLI) the DC's address is in the SAN, so `{ ca: [caCertPem] }` alone verifies. If openssl is
   * missing, Samba's own auto-generated certificate is used: it has no SAN and CN=DC1.test.lan, so a
   * client must pass `servername: tlsServerName` to verify it.
   */
  tlsServerName: string;
  admin: { bindDn: string; upn: string; password: string };
  reader: { bindDn: string; upn: string; password: string };
  /** The temp directory (smb.conf in etc/, sam.ldb in private/, logs in log/). */
  dir: string;
  /** Timings of startSambaDc in milliseconds. */
  timings: { provisionMs: number; readerMs: number; startMs: number; totalMs: number };
  stop(): Promise<void>;
};

export type SeedKey = { id: string; password: string; volumeGuid?: string; created: Date; tzOffsetMinutes?: number };
export type SeedComputer = { name: string; os?: string; keys: SeedKey[] };
export type SeedSpec = { ou: string; computers: SeedComputer[] };

const REALM = 'TEST.LAN';
const DOMAIN = 'TEST';
const DNS_DOMAIN = 'test.lan';
const BASE_DN = 'DC=test,DC=lan';
const HOST = 'DC1';
const LDAP_PORTS = [389, 636, 3268, 3269];
const MAX_ADDRESSES = 32;
// Deliberately not matching the keywarden-samba-* temp dirs.
const LOCK_ROOT = path.join(os.tmpdir(), 'keywarden-dc-address-locks');
const RECOVERY_CLASS = 'msFVE-RecoveryInformation';
const TREE_DELETE_OID = '1.2.840.113556.1.4.805';
/** WORKSTATION_TRUST_ACCOUNT, as on a domain-joined Windows computer. */
const UAC_WORKSTATION = 4096;

// ---------------------------------------------------------------------------------------------
// GUID helpers
// ---------------------------------------------------------------------------------------------

const GUID_RE = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

/** `4290b6c0-b17a-…` → bytes `c0 b6 90 42 7a b1 7a 49 …`: the Windows GUID memory layout (first three fields little-endian). */
export function guidToWindowsBytes(guid: string): Buffer {
  const m = GUID_RE.exec(guid.trim());
  if (!m) throw new Error(`not a GUID: ${guid}`);
  const hex = m.slice(1).join('');
  const b = Buffer.from(hex, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** Inverse of guidToWindowsBytes; returns the lower-case form without braces. */
export function windowsBytesToGuid(buf: Uint8Array): string {
  if (buf.length !== 16) throw new Error(`a GUID is 16 bytes, got ${buf.length}`);
  const b = Buffer.from(buf);
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function normalizeGuid(guid: string): string {
  const m = GUID_RE.exec(guid.trim());
  if (!m) throw new Error(`not a GUID: ${guid}`);
  return m.slice(1).join('-').toLowerCase();
}

/** `2024-03-01T09:30:00+01:00` for created = 08:30Z and offset +60. */
export function formatCreated(created: Date, tzOffsetMinutes = 0): string {
  if (!Number.isInteger(tzOffsetMinutes) || Math.abs(tzOffsetMinutes) > 14 * 60) throw new Error(`bad tz offset ${tzOffsetMinutes}`);
  const local = new Date(Math.floor(created.getTime() / 1000) * 1000 + tzOffsetMinutes * 60_000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const abs = Math.abs(tzOffsetMinutes);
  const sign = tzOffsetMinutes < 0 ? '-' : '+';
  return (
    `${p(local.getUTCFullYear(), 4)}-${p(local.getUTCMonth() + 1)}-${p(local.getUTCDate())}` +
    `T${p(local.getUTCHours())}:${p(local.getUTCMinutes())}:${p(local.getUTCSeconds())}` +
    `${sign}${p(Math.floor(abs / 60))}:${p(abs % 60)}`
  );
}

/** The 63-character CN Windows gives a recovery object: `<created with offset>{<GUID UPPER>}`. */
export function recoveryObjectCn(keyId: string, created: Date, tzOffsetMinutes = 0): string {
  const cn = `${formatCreated(created, tzOffsetMinutes)}{${normalizeGuid(keyId).toUpperCase()}}`;
  if (cn.length !== 63) throw new Error(`recovery CN must be 63 characters, got ${cn.length}: ${cn}`);
  return cn;
}

/** RFC 4514 escaping of one RDN value (the `+` of a positive UTC offset must become `\+`). */
export function escapeRdnValue(v: string): string {
  let out = v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`);
  if (out.startsWith('#') || out.startsWith(' ')) out = `\\${out}`;
  if (out.endsWith(' ')) out = `${out.slice(0, -1)}\\ `;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function which(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH_PATH];
  for (const d of dirs) {
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else
        reject(
          new Error(
            `${path.basename(cmd)} ${args
              .filter((a) => !a.includes('pass'))
              .slice(0, 3)
              .join(' ')} failed (${signal ?? code}):\n${out.slice(-3000)}`,
          ),
        );
    });
  });
}

function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

// ---------------------------------------------------------------------------------------------
// Availability
// ---------------------------------------------------------------------------------------------

export async function sambaAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (process.env.KEYWARDEN_SAMBA_DISABLE === '1') return { ok: false, reason: 'disabled by KEYWARDEN_SAMBA_DISABLE=1' };
  if (process.platform !== 'linux') return { ok: false, reason: `Samba AD DC harness needs Linux (platform ${process.platform})` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'Samba AD DC harness must run as root' };
  const missing: string[] = [];
  if (!which('samba')) missing.push('samba (apt: samba-ad-dc)');
  if (!which('samba-tool')) missing.push('samba-tool (apt: samba-ad-dc)');
  if (!fs.existsSync('/usr/share/samba/setup/ad-schema')) missing.push('AD schema files (apt: samba-ad-provision)');
  if (missing.length) return { ok: false, reason: `missing ${missing.join(', ')}; see test/samba/README.md` };
  for (let n = 1; n <= MAX_ADDRESSES; n++) {
    const ip = `127.0.0.${n}`;
    if (lockHolder(ip) === undefined && (await addressFree(ip))) return { ok: true };
  }
  return { ok: false, reason: `ports ${LDAP_PORTS.join('/')} are in use on 127.0.0.1 … 127.0.0.${MAX_ADDRESSES} (other LDAP servers/Samba DCs running?)` };
}

async function addressFree(ip: string): Promise<boolean> {
  for (const port of LDAP_PORTS) if (!(await portFree(port, ip))) return false;
  return true;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** pid of the live process holding the lock of `ip`, or undefined (a stale lock is removed). */
function lockHolder(ip: string): number | undefined {
  const dir = path.join(LOCK_ROOT, ip);
  let pid: number;
  try {
    pid = Number(fs.readFileSync(path.join(dir, 'pid'), 'utf8'));
  } catch {
    if (!fs.existsSync(dir)) return undefined;
    // Being created right now (pid not written yet) unless it is old.
    try {
      if (Date.now() - fs.statSync(dir).mtimeMs < 10_000) return -1;
    } catch {
      return undefined;
    }
    pid = 0;
  }
  if (pid > 0 && pidAlive(pid)) return pid;
  fs.rmSync(dir, { recursive: true, force: true });
  return undefined;
}

/** Claims the first loopback address with no other harness DC and free LDAP ports. */
async function acquireAddress(): Promise<{ ip: string; release(): void }> {
  fs.mkdirSync(LOCK_ROOT, { recursive: true });
  for (let n = 1; n <= MAX_ADDRESSES; n++) {
    const ip = `127.0.0.${n}`;
    const dir = path.join(LOCK_ROOT, ip);
    if (lockHolder(ip) !== undefined) continue;
    try {
      fs.mkdirSync(dir); // atomic: exactly one process wins
    } catch {
      continue;
    }
    fs.writeFileSync(path.join(dir, 'pid'), String(process.pid));
    const release = () => fs.rmSync(dir, { recursive: true, force: true });
    if (await addressFree(ip)) {
      heldLocks.add(dir);
      return {
        ip,
        release: () => {
          heldLocks.delete(dir);
          release();
        },
      };
    }
    release(); // someone outside the harness listens there
  }
  throw new Error(`no free loopback address for a Samba DC (127.0.0.1 … 127.0.0.${MAX_ADDRESSES} all busy)`);
}

// ---------------------------------------------------------------------------------------------
// Start / stop
// ---------------------------------------------------------------------------------------------

const live = new Set<ChildProcess>();
const heldLocks = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if a test run dies without calling stop(): kill the process groups we started.
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.pid) process.kill(-c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const dir of heldLocks) fs.rmSync(dir, { recursive: true, force: true });
  });
}

/** Generates a CA and a server certificate with the DC's IP, localhost and dc1.test.lan in the SAN. */
async function writeTlsMaterial(tlsDir: string, openssl: string, ip: string): Promise<void> {
  fs.mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  const f = (n: string) => path.join(tlsDir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(openssl, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca-key.pem'),
    '-out',
    f('ca.pem'),
    '-days',
    '30',
    '-subj',
    '/O=Keywarden tests/CN=Keywarden test Samba CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run(openssl, [
    'req',
    '-new',
    ...ec,
    '-keyout',
    f('key.pem'),
    '-out',
    f('server.csr'),
    '-subj',
    `/O=Keywarden tests/CN=${HOST.toLowerCase()}.${DNS_DOMAIN}`,
  ]);
  fs.writeFileSync(
    f('server.ext'),
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n` +
      `subjectAltName=DNS:${HOST.toLowerCase()}.${DNS_DOMAIN},DNS:localhost,IP:${ip}\n`,
  );
  await run(openssl, [
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca-key.pem'),
    '-CAcreateserial',
    '-out',
    f('cert.pem'),
    '-days',
    '30',
    '-extfile',
    f('server.ext'),
  ]);
  // Samba refuses a private key that is not 0600 and owned by the server's uid.
  fs.chmodSync(f('key.pem'), 0o600);
  fs.chmodSync(f('ca-key.pem'), 0o600);
}

export async function startSambaDc(opts: { dir?: string; keepDir?: boolean; maxRuntimeSeconds?: number } = {}): Promise<SambaDc> {
  const t0 = Date.now();
  const samba = which('samba');
  const sambaTool = which('samba-tool');
  if (!samba || !sambaTool) throw new Error('samba / samba-tool not installed (see test/samba/README.md)');
  installExitHook();

  let dir: string;
  if (opts.dir) {
    fs.mkdirSync(opts.dir, { recursive: true });
    if (fs.readdirSync(opts.dir).length) throw new Error(`startSambaDc: ${opts.dir} must be empty (stop() deletes it)`);
    dir = opts.dir;
  } else {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-samba-'));
  }
  const keepDir = opts.keepDir ?? process.env.KEYWARDEN_SAMBA_KEEP === '1';
  const conf = path.join(dir, 'etc', 'smb.conf');
  const priv = path.join(dir, 'private');
  const logDir = path.join(dir, 'log');
  fs.mkdirSync(path.join(logDir, 'cores'), { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.join(dir, 'run'), { recursive: true });
  // Keep every Samba tool away from /etc/krb5.conf and any system smb.conf.
  const env: NodeJS.ProcessEnv = { ...process.env, KRB5_CONFIG: path.join(priv, 'krb5.conf'), LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };

  const suffix = randomBytes(6).toString('hex');
  const adminPassword = `Kw-Adm1n-${suffix}!`;
  const readerPassword = `Kw-Read3r-${suffix}!`;
  let child: ChildProcess | undefined;
  const address = await acquireAddress();
  const ip = address.ip;

  const cleanupOnError = async () => {
    if (child?.pid) await killGroup(child);
    address.release();
    if (!keepDir) fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const options: Record<string, string> = {
      // One explicit loopback address (IPv4 only); `lo` would take 127.0.0.1 and ::1.
      interfaces: `${ip}/8`,
      'bind interfaces only': 'yes',
      'log file': path.join(logDir, 'samba.log'),
      'log level': '1',
      'pid directory': path.join(dir, 'run'),
      'lock directory': path.join(dir, 'lock'),
      'state directory': path.join(dir, 'state'),
      'cache directory': path.join(dir, 'cache'),
      // Only the LDAP server: no smbd (445/139), nbt (137/138), kdc (88), rpc (135), winbindd, ...
      'server services': 'ldap',
      // Test data: skip fsync on every ldb transaction (Samba's own selftest does the same).
      'ldb:nosync': 'true',
    };
    const tp = Date.now();
    await run(
      sambaTool,
      [
        'domain',
        'provision',
        `--realm=${REALM}`,
        `--domain=${DOMAIN}`,
        `--host-name=${HOST}`,
        `--host-ip=${ip}`,
        `--adminpass=${adminPassword}`,
        '--server-role=dc',
        '--dns-backend=NONE',
        '--use-rfc2307',
        `--targetdir=${dir}`,
        ...Object.entries(options).map(([k, v]) => `--option=${k}=${v}`),
      ],
      { env, cwd: dir, timeoutMs: 120_000 },
    );
    const provisionMs = Date.now() - tp;

    // TLS: pre-create tls/{ca,cert,key}.pem so Samba uses them instead of auto-generating a
    // SAN-less certificate for DC1.test.lan (which fails hostname verification against an IP).
    const tlsDir = path.join(priv, 'tls');
    const openssl = which('openssl');
    if (openssl) await writeTlsMaterial(tlsDir, openssl, ip);

    const tr = Date.now();
    // No --given-name/--surname: they would make the CN "Given Surname" instead of "reader".
    await run(sambaTool, ['user', 'create', 'reader', readerPassword, `--configfile=${conf}`], { env, cwd: dir });
    const readerMs = Date.now() - tr;

    const ts = Date.now();
    const out = fs.openSync(path.join(logDir, 'samba.stdout'), 'a');
    // --maximum-runtime: samba exits by itself even if this process is SIGKILLed before stop().
    child = spawn(samba, ['-F', '--no-process-group', `--maximum-runtime=${opts.maxRuntimeSeconds ?? 3600}`, `--configfile=${conf}`, '--debug-stdout'], {
      cwd: dir,
      env,
      detached: true, // own process group: stop() signals the whole group (master + prefork workers)
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    live.add(child);
    let exited: string | undefined;
    child.once('exit', (code, sig) => {
      exited = `samba exited early (${sig ?? code})`;
      live.delete(child!);
    });

    const caFile = path.join(tlsDir, 'ca.pem');
    const tlsServerName = `${HOST.toLowerCase()}.${DNS_DOMAIN}`;
    const deadline = Date.now() + 60_000;
    let lastErr = '';
    let caCertPem = '';
    for (;;) {
      if (exited) throw new Error(`${exited}\n${tail(path.join(logDir, 'samba.stdout'))}`);
      if (Date.now() > deadline) throw new Error(`LDAPS did not answer within 60 s: ${lastErr}\n${tail(path.join(logDir, 'samba.stdout'))}`);
      if (fs.existsSync(caFile)) {
        caCertPem = fs.readFileSync(caFile, 'utf8');
        const c = new Client({
          url: `ldaps://${ip}:636`,
          timeout: 5000,
          connectTimeout: 2000,
          tlsOptions: { ca: [caCertPem], servername: openssl ? undefined : tlsServerName },
        });
        try {
          await c.bind(`Administrator@${DNS_DOMAIN}`, adminPassword);
          break;
        } catch (e) {
          lastErr = (e as Error).message;
        } finally {
          await c.unbind().catch(() => undefined);
        }
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    const startMs = Date.now() - ts;

    const started = child;
    let stopped = false;
    return {
      realm: REALM,
      domain: DOMAIN,
      baseDn: BASE_DN,
      ldapsUrl: `ldaps://${ip}:636`,
      ldapUrl: `ldap://${ip}:389`,
      caCertPem,
      tlsServerName,
      admin: { bindDn: `CN=Administrator,CN=Users,${BASE_DN}`, upn: `Administrator@${DNS_DOMAIN}`, password: adminPassword },
      reader: { bindDn: `CN=reader,CN=Users,${BASE_DN}`, upn: `reader@${DNS_DOMAIN}`, password: readerPassword },
      dir,
      timings: { provisionMs, readerMs, startMs, totalMs: Date.now() - t0 },
      async stop() {
        if (stopped) return;
        stopped = true;
        await killGroup(started);
        address.release();
        if (!keepDir) fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await cleanupOnError();
    throw e;
  }
}

function tail(file: string, n = 40): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** SIGTERM to the samba process group, SIGKILL after 5 s. */
async function killGroup(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (!pid) return;
  const alive = () => {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-pid, s);
    } catch {
      /* already gone */
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + 5000;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive()) {
    signal('SIGKILL');
    const d2 = Date.now() + 5000;
    while (alive() && Date.now() < d2) await new Promise((r) => setTimeout(r, 50));
  }
  live.delete(child);
}

// ---------------------------------------------------------------------------------------------
// Directory content
// ---------------------------------------------------------------------------------------------

/** An admin connection over LDAPS. */
export async function adminClient(dc: SambaDc): Promise<Client> {
  const c = new Client({ url: dc.ldapsUrl, timeout: 30_000, connectTimeout: 5000, tlsOptions: { ca: [dc.caCertPem], servername: dc.tlsServerName } });
  await c.bind(dc.admin.bindDn, dc.admin.password);
  return c;
}

function isAlreadyExists(e: unknown): boolean {
  return (e as { code?: number }).code === 68;
}

function splitDn(dn: string): string[] {
  return dn
    .split(/(?<!\\),/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Creates `ou` (relative to baseDn, or absolute) and its parents; returns the absolute DN. */
async function ensureOu(client: Client, dc: SambaDc, ou: string): Promise<string> {
  const rel = ou.toLowerCase().endsWith(dc.baseDn.toLowerCase()) ? splitDn(ou).slice(0, -splitDn(dc.baseDn).length) : splitDn(ou);
  let parent = dc.baseDn;
  for (const rdn of rel.reverse()) {
    const dn = `${rdn},${parent}`;
    const objectClass = rdn.toUpperCase().startsWith('OU=') ? 'organizationalUnit' : 'container';
    const attrs: Record<string, string> = { objectClass };
    try {
      await client.add(dn, attrs);
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
    parent = dn;
  }
  return parent;
}

function computerAttributes(c: SeedComputer): Attribute[] {
  const name = c.name.toUpperCase();
  if (!/^[A-Z0-9-]{1,15}$/.test(name)) throw new Error(`computer name must be a NetBIOS name (1-15 of A-Z 0-9 -): ${c.name}`);
  return [
    new Attribute({ type: 'objectClass', values: ['computer'] }),
    new Attribute({ type: 'cn', values: [name] }),
    new Attribute({ type: 'sAMAccountName', values: [`${name}$`] }),
    new Attribute({ type: 'userAccountControl', values: [String(UAC_WORKSTATION)] }),
    new Attribute({ type: 'dNSHostName', values: [`${name.toLowerCase()}.${DNS_DOMAIN}`] }),
    new Attribute({ type: 'operatingSystem', values: [c.os ?? 'Windows 11 Enterprise'] }),
  ];
}

function recoveryAttributes(key: SeedKey, cn: string): Attribute[] {
  const attrs = [
    new Attribute({ type: 'objectClass', values: [RECOVERY_CLASS] }),
    new Attribute({ type: 'cn', values: [cn] }),
    new Attribute({ type: 'msFVE-RecoveryGuid', values: [guidToWindowsBytes(key.id)] }),
    new Attribute({ type: 'msFVE-RecoveryPassword', values: [key.password] }),
  ];
  if (key.volumeGuid) attrs.push(new Attribute({ type: 'msFVE-VolumeGuid', values: [guidToWindowsBytes(key.volumeGuid)] }));
  return attrs;
}

async function addKey(client: Client, computerDn: string, key: SeedKey): Promise<string> {
  const cn = recoveryObjectCn(key.id, key.created, key.tzOffsetMinutes ?? 0);
  const dn = `CN=${escapeRdnValue(cn)},${computerDn}`;
  await client.add(dn, recoveryAttributes(key, cn));
  return dn;
}

/**
 * Writes computers and their BitLocker recovery objects the way Windows does: ldapts `add` over
 * LDAPS as Administrator, computer first, then its recovery objects as children, `concurrency`
 * connections (default 4 = Samba's prefork worker count; Samba serialises writes, so more do not
 * help). ~190 adds/s at 6,000 objects on 2 cores, slowing as the directory grows; see README.md.
 */
export async function seedDirectory(dc: SambaDc, spec: SeedSpec, opts: { concurrency?: number } = {}): Promise<{ computerDns: Map<string, string> }> {
  const first = await adminClient(dc);
  const computerDns = new Map<string, string>();
  try {
    const ouDn = await ensureOu(first, dc, spec.ou);
    for (const c of spec.computers) {
      if (computerDns.has(c.name)) throw new Error(`duplicate computer ${c.name}`);
      computerDns.set(c.name, `CN=${escapeRdnValue(c.name.toUpperCase())},${ouDn}`);
    }
    const workers = Math.max(1, Math.min(opts.concurrency ?? 4, spec.computers.length));
    const clients = [first];
    for (let i = 1; i < workers; i++) clients.push(await adminClient(dc));
    let next = 0;
    try {
      await Promise.all(
        clients.map(async (client) => {
          while (next < spec.computers.length) {
            const c = spec.computers[next++]!;
            const dn = computerDns.get(c.name)!;
            await client.add(dn, computerAttributes(c));
            for (const k of c.keys) await addKey(client, dn, k);
          }
        }),
      );
    } finally {
      await Promise.all(clients.slice(1).map((c) => c.unbind().catch(() => undefined)));
    }
  } finally {
    await first.unbind().catch(() => undefined);
  }
  return { computerDns };
}

/** Adds one recovery object under an existing computer (default UTC offset +00:00); returns its DN (with `\+` escaped). */
export async function addRecoveryObject(dc: SambaDc, computerDn: string, key: SeedKey): Promise<string> {
  const client = await adminClient(dc);
  try {
    return await addKey(client, computerDn, key);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** Deletes a computer and its recovery objects (LDAP tree-delete control). */
export async function deleteComputer(dc: SambaDc, computerDn: string): Promise<void> {
  const client = await adminClient(dc);
  try {
    await client.del(computerDn, new Control(TREE_DELETE_OID, { critical: true }));
  } finally {
    await client.unbind().catch(() => undefined);
  }
}
