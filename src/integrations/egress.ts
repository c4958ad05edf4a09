import dns from 'node:dns/promises';
import net from 'node:net';
import type { Agent, RequestInit as UndiciRequestInit, Response as UndiciResponse } from 'undici';
import { AppError } from '../lib/errors.js';

/**
 * The one egress policy: every outbound connection Keywarden makes (Microsoft Graph and its token
 * endpoint, webhooks, Teams, Slack, SMTP, LDAP) asks it first. It resolves the name once, checks
 * every address, and the connection goes to the checked address (no second resolution, so a name
 * that answers differently a moment later — DNS rebinding — cannot slip through).
 *
 * Refused unless the operator allows them (KEYWARDEN_EGRESS_ALLOW): loopback, link-local (cloud
 * metadata lives there), unspecified, multicast, reserved and carrier-grade NAT addresses, and cloud
 * metadata names. Private ranges (RFC 1918, fc00::/7) are refused for internet services (Graph,
 * webhooks, Teams, Slack) but allowed for SMTP relays and domain controllers, which live there.
 */
export type EgressKind = 'internet' | 'local';

/** One KEYWARDEN_EGRESS_ALLOW entry: a host name, an address or a CIDR, optionally with a port. */
export type EgressAllowEntry = { host: string; port: number | null } | { cidr: [string, number]; family: 'ipv4' | 'ipv6'; port: number | null };

export type EgressPolicy = {
  /**
   * The address to connect to for `host:port`, after checking every address the name resolves to.
   * `what` names the service in the refusal ("the webhook", "Microsoft Graph").
   */
  resolve(host: string, port: number, kind: EgressKind, what: string): Promise<{ address: string; family: 4 | 6 }>;
  /**
   * fetch() through the policy: the connection goes only to the checked address (TLS still checks the
   * certificate against the host name), and redirects are never followed (a 3xx is returned as is).
   */
  fetch(url: string | URL, init: UndiciRequestInit, kind: EgressKind, what: string): Promise<UndiciResponse>;
};

/** A refusal in product words; it never contains anything the remote side said. */
export const egressRefused = (message: string, reason: 'refused' | 'unresolved' = 'refused') => new AppError('bad_request', message, { egress: reason });

/** True for any refusal by the egress policy (an address it does not allow, or a name it could not resolve). */
export const isEgressError = (e: unknown): e is AppError => e instanceof AppError && (e.details?.egress === 'refused' || e.details?.egress === 'unresolved');

/** True when the policy could not resolve the name (worth retrying later), rather than refusing the address. */
export const isUnresolved = (e: unknown): boolean => e instanceof AppError && e.details?.egress === 'unresolved';

const METADATA_NAMES = new Set(['metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal']);

const always = new net.BlockList();
for (const [a, p] of [
  ['0.0.0.0', 8],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['100.64.0.0', 10],
  ['192.0.0.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  always.addSubnet(a, p, 'ipv4');
for (const [a, p] of [
  ['::', 128],
  ['::1', 128],
  ['fe80::', 10],
  ['ff00::', 8],
  // The AWS instance metadata service over IPv6 (inside the private fc00::/7 range).
  ['fd00:ec2::254', 128],
] as const)
  always.addSubnet(a, p, 'ipv6');

const privateRanges = new net.BlockList();
for (const [a, p] of [
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const)
  privateRanges.addSubnet(a, p, 'ipv4');
privateRanges.addSubnet('fc00::', 7, 'ipv6');

/** The eight 16-bit groups of an IPv6 address (with or without a dotted IPv4 tail), or null. */
function hextets(address: string): number[] | null {
  if (!net.isIPv6(address)) return null;
  let text = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, dotted.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.length === 8 ? groups.map((g) => parseInt(g, 16)) : null;
}

/**
 * The IPv4 address an IPv6 address carries to the wire, if any: IPv4-mapped (::ffff:127.0.0.1, or
 * ::ffff:7f00:1 as URLs write it), IPv4-compatible (::127.0.0.1) and NAT64 (64:ff9b::127.0.0.1) all
 * reach the embedded IPv4 address, so that address is the one checked.
 */
function unmapped(address: string): { address: string; type: 'ipv4' | 'ipv6' } {
  if (net.isIPv4(address)) return { address, type: 'ipv4' };
  const g = hextets(address);
  if (g) {
    const top = g.slice(0, 6);
    const mapped = top.slice(0, 5).every((x) => x === 0) && top[5] === 0xffff;
    const compatible = top.every((x) => x === 0) && (g[6]! !== 0 || g[7]! > 1);
    const nat64 = g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0);
    if (mapped || compatible || nat64) {
      return { address: `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`, type: 'ipv4' };
    }
  }
  return { address, type: 'ipv6' };
}

/** Why an address is refused for this kind of service, or null when it is fine. */
export function egressProblem(address: string, kind: EgressKind): string | null {
  const a = unmapped(address);
  if (always.check(a.address, a.type)) {
    if (a.type === 'ipv4' ? a.address.startsWith('127.') : a.address === '::1') return 'a loopback address';
    if (a.type === 'ipv4' ? a.address.startsWith('169.254.') : /^fe[89ab]/i.test(a.address))
      return 'a link-local address, where cloud metadata services answer';
    if (a.address === 'fd00:ec2::254') return 'a cloud metadata address';
    if (a.type === 'ipv4' && /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./.test(a.address)) return 'a carrier-grade NAT address';
    return 'an unspecified, multicast or reserved address';
  }
  if (kind === 'internet' && privateRanges.check(a.address, a.type)) return 'a private network address';
  return null;
}

/** Parses KEYWARDEN_EGRESS_ALLOW: comma-separated hosts, addresses or CIDRs, each with an optional `:port`. */
export function parseEgressAllow(text: string | undefined): EgressAllowEntry[] {
  if (!text?.trim()) return [];
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((raw): EgressAllowEntry => {
      let rest = raw;
      let port: number | null = null;
      const bracket = /^\[([^\]]+)\](?::(\d+))?(?:\/(\d+))?$/.exec(rest);
      if (bracket) {
        rest = bracket[1]! + (bracket[3] ? `/${bracket[3]}` : '');
        port = bracket[2] ? Number(bracket[2]) : null;
      } else if (!rest.includes('::') && (rest.match(/:/g) ?? []).length === 1) {
        const [h, p] = rest.split(':');
        if (!/^\d+$/.test(p!)) throw new Error(`KEYWARDEN_EGRESS_ALLOW: "${raw}" has a port that is not a number.`);
        rest = h!;
        port = Number(p);
      }
      if (port !== null && (port < 1 || port > 65535)) throw new Error(`KEYWARDEN_EGRESS_ALLOW: "${raw}" has a port outside 1-65535.`);
      const [addr, prefix] = rest.split('/');
      const family = net.isIPv4(addr!) ? 'ipv4' : net.isIPv6(addr!) ? 'ipv6' : null;
      if (family) {
        const bits = prefix === undefined ? (family === 'ipv4' ? 32 : 128) : Number(prefix);
        if (!Number.isInteger(bits) || bits < 0 || bits > (family === 'ipv4' ? 32 : 128))
          throw new Error(`KEYWARDEN_EGRESS_ALLOW: "${raw}" has a bad prefix length.`);
        return { cidr: [addr!, bits], family, port };
      }
      if (prefix !== undefined || !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i.test(addr!)) {
        throw new Error(`KEYWARDEN_EGRESS_ALLOW: "${raw}" is not a host name, an address or a CIDR.`);
      }
      return { host: addr!.toLowerCase().replace(/\.$/, ''), port };
    });
}

/** Open connection pools kept for reuse (one per origin and checked address). */
const MAX_POOLS = 32;

type Lookup = (host: string) => Promise<{ address: string; family: number }[]>;
const systemLookup: Lookup = (host) => dns.lookup(host, { all: true, verbatim: true });

/** undici loads on the first outbound request: the CLI's commands that never connect out do not pay for it. */
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = () => (undici ??= import('undici'));

export function createEgressPolicy(opts: { allow: readonly EgressAllowEntry[]; lookup?: Lookup }): EgressPolicy {
  const lookup = opts.lookup ?? systemLookup;
  const allowedByName = (host: string, port: number) => opts.allow.some((e) => 'host' in e && e.host === host && (e.port === null || e.port === port));
  const allowedAddress = (address: string, port: number) => {
    const a = unmapped(address);
    return opts.allow.some((e) => {
      if (!('cidr' in e) || (e.port !== null && e.port !== port)) return false;
      const list = new net.BlockList();
      list.addSubnet(e.cidr[0], e.cidr[1], e.family);
      return list.check(a.address, a.type);
    });
  };

  const policy: EgressPolicy = {
    async resolve(rawHost, port, kind, what) {
      const host = rawHost
        .replace(/^\[|\]$/g, '')
        .toLowerCase()
        .replace(/\.$/, '');
      const hint = 'An operator can allow it with KEYWARDEN_EGRESS_ALLOW.';
      if (!host) throw egressRefused(`${what} has no host name.`);
      const literal = net.isIP(host);
      if (!literal && METADATA_NAMES.has(host) && !allowedByName(host, port)) {
        throw egressRefused(`Keywarden does not connect to ${host} (a cloud metadata name) for ${what}. ${hint}`);
      }
      let addresses: { address: string; family: number }[];
      if (literal) addresses = [{ address: host, family: literal }];
      else {
        try {
          addresses = await lookup(host);
        } catch {
          throw egressRefused(`The name ${host} of ${what} could not be resolved.`, 'unresolved');
        }
        if (!addresses.length) throw egressRefused(`The name ${host} of ${what} could not be resolved.`, 'unresolved');
      }
      const byName = !literal && allowedByName(host, port);
      for (const a of addresses) {
        if (byName || allowedAddress(a.address, port)) continue;
        const problem = egressProblem(a.address, kind);
        // Every address must pass: a name that also points inside cannot be used to reach inside.
        if (problem) throw egressRefused(`Keywarden does not connect to ${host}${literal ? '' : ` (${a.address})`}, ${problem}, for ${what}. ${hint}`);
      }
      const first = addresses[0]!;
      return { address: first.address, family: first.family === 6 ? 6 : 4 };
    },

    async fetch(url, init, kind, what) {
      const u = new URL(url);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw egressRefused(`${what} must be an http(s) address.`);
      const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
      const target = await policy.resolve(u.hostname, port, kind, what);
      const { Agent, fetch: undiciFetch } = await loadUndici();
      return undiciFetch(u, { ...init, redirect: 'manual', dispatcher: pinnedAgent(Agent, `${u.protocol}//${u.hostname}:${port}`, target) });
    },
  };

  /**
   * A connection pool whose every connection goes to one checked address (TLS still checks the
   * certificate against the host name). Pools are kept per origin and address, so a sync's
   * thousands of requests reuse their connections; a name that now resolves elsewhere gets a new
   * pool only after the new address has passed the check.
   */
  const pools = new Map<string, Agent>();
  function pinnedAgent(AgentClass: typeof Agent, origin: string, target: { address: string; family: 4 | 6 }): Agent {
    const key = `${origin} ${target.address}`;
    let agent = pools.get(key);
    if (agent) {
      pools.delete(key);
      pools.set(key, agent);
      return agent;
    }
    agent = new AgentClass({
      keepAliveTimeout: 10_000,
      connect: {
        lookup: ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
          if (options?.all) callback(null, [{ address: target.address, family: target.family }]);
          else callback(null, target.address, target.family);
        }) as unknown as net.LookupFunction,
      },
    });
    pools.set(key, agent);
    // The least recently used pool goes once it has finished its requests.
    for (const [k, old] of pools) {
      if (pools.size <= MAX_POOLS) break;
      pools.delete(k);
      void old.close().catch(() => undefined);
    }
    return agent;
  }
  return policy;
}
