import net from 'node:net';
import { AppError, badRequest } from '../../lib/errors.js';
import { signWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../../crypto/webhook-signature.js';
import { isUnresolved, type EgressPolicy, isEgressError } from '../../integrations/egress.js';

/**
 * The four kinds of channel: what each one's settings are (split into the part that may be shown
 * and the part that is sealed), how it is shown masked, and how one message goes out. Nothing here
 * touches the database; channel-secrets.ts seals and opens the secrets with the keyring.
 */
export const CHANNEL_KINDS = ['email', 'webhook', 'teams', 'slack'] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];

export type EmailConfig = {
  host: string;
  port: number;
  /** Implicit TLS from the first byte (usually port 465). */
  secure: boolean;
  /** Without implicit TLS: 'required' refuses to send in clear, 'opportunistic' upgrades when offered, 'ignore' never upgrades. */
  starttls: 'required' | 'opportunistic' | 'ignore';
  /** Accept a certificate no public CA signed (a self-signed relay); prefer caCert. */
  allowSelfSigned: boolean;
  /** PEM of the CA (or the self-signed certificate) that signs the server's certificate. */
  caCert: string | null;
  username: string | null;
  from: string;
  to: string[];
};
export type WebhookConfig = { url: string };
/** Teams and Slack incoming-webhook URLs are bearer secrets: only a hint (their host) is kept in clear. */
export type ChatConfig = { urlHint: string };
export type ChannelConfig = EmailConfig | WebhookConfig | ChatConfig;
export type ChannelSecrets = { password?: string; signingSecret?: string; url?: string };

export type ChannelInput = {
  kind: ChannelKind;
  // email
  host?: string;
  port?: number;
  secure?: boolean;
  starttls?: 'required' | 'opportunistic' | 'ignore';
  allowSelfSigned?: boolean;
  caCert?: string | null;
  username?: string | null;
  password?: string | null;
  from?: string;
  to?: string[];
  // webhook, teams, slack
  url?: string;
  signingSecret?: string;
};

const EMAIL = /^[^\s@<>()",;]+@[^\s@<>()",;]+\.[^\s@<>()",;]+$/;

/** https:// only, except http:// to this machine (a local relay, tests). No credentials in the URL. */
export function checkUrl(u: string | undefined, field: string): string {
  let url: URL;
  try {
    url = new URL(u ?? '');
  } catch {
    throw badRequest(`${field} must be a full https:// URL.`, { field });
  }
  const local = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local))
    throw badRequest(`${field} must be an https:// URL (http:// only for localhost).`, { field });
  if (url.username || url.password) throw badRequest(`${field} must not carry a user name or password.`, { field });
  return url.toString();
}

export function checkAddresses(list: string[] | undefined, field: string): string[] {
  const out = (list ?? []).map((a) => a.trim()).filter(Boolean);
  if (!out.length) throw badRequest(`${field} needs at least one e-mail address.`, { field });
  if (out.length > 50) throw badRequest(`${field} takes at most 50 addresses.`, { field });
  for (const a of out) if (!EMAIL.test(a)) throw badRequest(`${field}: "${a.slice(0, 80)}" is not an e-mail address.`, { field });
  return [...new Set(out)];
}

/**
 * Validates a new channel's settings (or a changed one: `previous` holds the current ones, and
 * secrets left out stay as they were). Returns what is stored in clear and what is sealed.
 */
export function buildChannel(
  input: ChannelInput,
  previous?: { config: ChannelConfig; secrets: ChannelSecrets },
): { config: ChannelConfig; secrets: ChannelSecrets } {
  if (input.kind === 'email') {
    const prev = previous?.config as EmailConfig | undefined;
    const host = (input.host ?? prev?.host ?? '').trim();
    if (!host || host.length > 255 || /[\s/]/.test(host)) throw badRequest('host must be the SMTP server name or address.', { field: 'host' });
    const secure = input.secure ?? prev?.secure ?? false;
    const port = input.port ?? prev?.port ?? (secure ? 465 : 587);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw badRequest('port must be 1 to 65535.', { field: 'port' });
    const from = (input.from ?? prev?.from ?? '').trim();
    if (!EMAIL.test(from.replace(/^.*<([^>]+)>\s*$/, '$1')))
      throw badRequest('from must be an e-mail address (optionally "Name <address>").', { field: 'from' });
    const caCert = input.caCert === undefined ? (prev?.caCert ?? null) : input.caCert?.trim() || null;
    if (caCert && !caCert.includes('-----BEGIN CERTIFICATE-----'))
      throw badRequest('caCert must be a PEM certificate (-----BEGIN CERTIFICATE-----).', { field: 'caCert' });
    const username = input.username === undefined ? (prev?.username ?? null) : input.username?.trim() || null;
    const secrets: ChannelSecrets = { ...previous?.secrets };
    if (input.password !== undefined) {
      if (input.password) secrets.password = input.password;
      else delete secrets.password;
    }
    if (secrets.password && !username) throw badRequest('A password needs a username.', { field: 'username' });
    const config: EmailConfig = {
      host,
      port,
      secure,
      starttls: input.starttls ?? prev?.starttls ?? 'required',
      allowSelfSigned: input.allowSelfSigned ?? prev?.allowSelfSigned ?? false,
      caCert,
      username,
      from,
      to: input.to !== undefined || !prev ? checkAddresses(input.to, 'to') : prev.to,
    };
    if (config.secure && config.starttls === 'ignore') config.starttls = 'required';
    return { config, secrets };
  }
  if (input.kind === 'webhook') {
    const prev = previous?.config as WebhookConfig | undefined;
    const url = input.url !== undefined || !prev ? checkUrl(input.url, 'url') : prev.url;
    const signingSecret = input.signingSecret ?? previous?.secrets.signingSecret;
    if (!signingSecret || signingSecret.length < 16)
      throw badRequest('signingSecret must be at least 16 characters (leave it out to have one generated).', { field: 'signingSecret' });
    return { config: { url }, secrets: { signingSecret } };
  }
  const url = input.url !== undefined || !previous ? checkUrl(input.url, 'url') : previous.secrets.url!;
  return { config: { urlHint: `${new URL(url).origin}/…` }, secrets: { url } };
}

const DOTS = '••••••••';
/** What list and get answer for the sealed part: that it is set, never what it is. */
export function maskSecrets(kind: ChannelKind, config: ChannelConfig, hasSecrets: ChannelSecrets | null): Record<string, string> {
  if (kind === 'email') return (config as EmailConfig).username ? { password: hasSecrets?.password ? DOTS : '(none)' } : {};
  if (kind === 'webhook') return { signingSecret: DOTS };
  return { url: (config as ChatConfig).urlHint };
}

/** What each kind of channel is called in an egress refusal. */
const TARGET_WORDS: Record<ChannelKind, string> = { email: 'the SMTP relay', webhook: 'the webhook', teams: 'Microsoft Teams', slack: 'Slack' };

const urlPort = (u: URL) => (u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80);

/**
 * Checks where a channel would connect against the egress policy, so that a forbidden target is
 * refused when the channel is saved, not only when something is sent. Throws the policy's refusal
 * (a 400 in product words).
 */
export async function checkChannelTarget(egress: EgressPolicy, kind: ChannelKind, built: { config: ChannelConfig; secrets: ChannelSecrets }): Promise<void> {
  if (kind === 'email') {
    const c = built.config as EmailConfig;
    await egress.resolve(c.host, c.port, 'local', TARGET_WORDS.email);
    return;
  }
  const u = new URL(kind === 'webhook' ? (built.config as WebhookConfig).url : (built.secrets.url ?? ''));
  await egress.resolve(u.hostname, urlPort(u), 'internet', TARGET_WORDS[kind]);
}

/** An egress refusal is in product words and names no secret (never a URL's path). */
const isEgressRefusal = isEgressError;
/** A name that did not resolve may resolve later; a forbidden address stays forbidden. */
const refusalIsTransient = (e: AppError) => isUnresolved(e);

// ------------------------------------------------------------------------------------ sending

export type OutgoingMessage = {
  /** The delivery id: the same on every retry, so a receiver can drop a repeat. */
  id: string;
  subject: string;
  text: string;
  html: string;
  /** The JSON body for signed webhooks. */
  webhook: unknown;
  teams: unknown;
  slack: unknown;
  /** Report e-mails: recipients other than the channel's list, and files. */
  to?: string[];
  attachments?: { filename: string; contentType: string; content: Buffer }[];
};

export type SendResult = {
  ok: boolean;
  /** HTTP status or SMTP reply code. */
  code: string | null;
  /** Short, secret-free: "HTTP 200", "250 2.0.0 queued". */
  summary: string;
  /** In product words; null when sent. */
  error: string | null;
  /** false when trying again cannot help (HTTP 4xx, SMTP 5xx, authentication refused). */
  retryable: boolean;
};

export type SendOptions = {
  timeoutMs: number;
  now: () => Date;
  /** Every connection goes to an address this policy checked. */
  egress: EgressPolicy;
};

/** Turns a network failure into words, without the URL (a Slack or Teams URL is a secret). */
function networkError(e: unknown, timeoutMs: number): string {
  const err = e as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  const code = err.cause?.code ?? err.code;
  if (
    err.name === 'TimeoutError' ||
    err.name === 'AbortError' ||
    err.cause?.name === 'TimeoutError' ||
    code === 'ETIMEDOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT'
  ) {
    return `no answer within ${Math.round(timeoutMs / 100) / 10} s (timed out)`;
  }
  if ((err.cause as { message?: string } | undefined)?.message === 'bad port')
    return 'that port is on the list of ports web clients refuse (e.g. 25, 9, 6000); use another port';
  if (code === 'ECONNREFUSED') return 'connection refused (nothing listens at that address and port)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host name not found (DNS)';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'the connection was closed by the other side';
  if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) return `the server's TLS certificate is not trusted (${code})`;
  return `could not connect${code ? ` (${code})` : ''}`;
}

async function postJson(
  kind: Exclude<ChannelKind, 'email'>,
  url: string,
  body: string,
  headers: Record<string, string>,
  opts: SendOptions,
): Promise<SendResult> {
  let res: Awaited<ReturnType<EgressPolicy['fetch']>>;
  try {
    res = await opts.egress.fetch(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'Keywarden-Notifications/1', ...headers },
        body,
        signal: AbortSignal.timeout(opts.timeoutMs),
      },
      'internet',
      TARGET_WORDS[kind],
    );
  } catch (e) {
    if (isEgressRefusal(e)) return { ok: false, code: null, summary: 'not sent', error: e.message, retryable: refusalIsTransient(e) };
    return { ok: false, code: null, summary: 'no response', error: networkError(e, opts.timeoutMs), retryable: true };
  }
  // The answer's body is never read: what a receiver (or whatever listens at that address) says is
  // neither shown nor stored, only its status.
  await res.body?.cancel().catch(() => undefined);
  const summary = `HTTP ${res.status}`;
  if (res.status >= 200 && res.status < 300) return { ok: true, code: String(res.status), summary, error: null, retryable: false };
  if (res.status >= 300 && res.status < 400) {
    // A redirect could carry the payload somewhere the admin did not configure: never followed.
    return {
      ok: false,
      code: String(res.status),
      summary,
      error: `the endpoint answered with a redirect (HTTP ${res.status}), which Keywarden does not follow; configure the final URL`,
      retryable: false,
    };
  }
  const retryable = res.status >= 500 || [408, 425, 429].includes(res.status);
  const error = `the endpoint refused the message (HTTP ${res.status})${retryable ? '' : '; check the URL and the receiver — retrying will not help'}`;
  return { ok: false, code: String(res.status), summary, error, retryable };
}

/** The reply code of an SMTP answer (and its enhanced status code), never the server's own words. */
const smtpCode = (reply: string | undefined) => /^\d{3}(?:[ -][245]\.\d{1,3}\.\d{1,3}(?=\s|$))?/.exec(reply ?? '')?.[0]?.replace('-', ' ') ?? null;

/**
 * Every way an SMTP attempt fails, in product words. What the remote side said is never passed on:
 * "send test" must not read banners or tell an open port from a closed one.
 */
function smtpFailure(e: unknown): SendResult {
  const err = e as {
    code?: string;
    originalCode?: string;
    responseCode?: number;
    response?: string;
    message?: string;
    command?: string;
    cause?: { code?: string };
  };
  const code = err.responseCode ? String(err.responseCode) : null;
  const system = `${err.originalCode ?? ''} ${err.cause?.code ?? ''} ${err.code ?? ''}`;
  const unreachable: SendResult = {
    ok: false,
    code: null,
    summary: 'no SMTP answer',
    error: 'the SMTP relay could not be reached (no SMTP server answered at that address and port)',
    retryable: true,
  };
  if (err.code === 'EAUTH')
    return {
      ok: false,
      code,
      summary: code ? `${code} authentication refused` : 'authentication refused',
      error: 'the SMTP relay refused the user name or password',
      retryable: false,
    };
  // Node's certificate errors name the check that failed; the text is Node's, not the server's.
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME/.test(system) || (!err.response && /certificate|self.signed/i.test(err.message ?? ''))) {
    return { ok: false, code: null, summary: 'TLS failed', error: "the SMTP relay's TLS certificate is not trusted", retryable: false };
  }
  if (err.code === 'ETLS' || (err.command !== 'CONN' && !err.response && /STARTTLS/i.test(err.message ?? ''))) {
    return {
      ok: false,
      code,
      summary: 'TLS failed',
      error: 'the SMTP relay did not complete TLS (it does not offer STARTTLS, which this channel requires, or the handshake failed)',
      retryable: false,
    };
  }
  // Anything before a proper SMTP greeting (refused, timed out, closed, a service that is not SMTP)
  // looks the same from here.
  if (err.command === 'CONN' || err.code === 'EPROTOCOL' || !err.responseCode) return unreachable;
  const permanent = err.responseCode >= 500;
  return {
    ok: false,
    code,
    summary: smtpCode(err.response) ?? code ?? 'refused',
    error: `the SMTP relay refused the message (${err.responseCode})${permanent ? '; retrying will not help' : ''}`,
    retryable: !permanent,
  };
}

export async function sendEmail(config: EmailConfig, secrets: ChannelSecrets, msg: OutgoingMessage, opts: SendOptions): Promise<SendResult> {
  let target: { address: string };
  try {
    target = await opts.egress.resolve(config.host, config.port, 'local', TARGET_WORDS.email);
  } catch (e) {
    if (isEgressRefusal(e)) return { ok: false, code: null, summary: 'not sent', error: e.message, retryable: refusalIsTransient(e) };
    throw e;
  }
  // nodemailer loads with the first e-mail, not with the container: the CLI's lookup never needs it.
  const { default: nodemailer } = await import('nodemailer');
  const transport = nodemailer.createTransport({
    // The checked address, so the relay's name is not resolved a second time; TLS still checks
    // the certificate against the configured name.
    host: target.address,
    port: config.port,
    secure: config.secure,
    requireTLS: !config.secure && config.starttls === 'required',
    ignoreTLS: !config.secure && config.starttls === 'ignore',
    tls: {
      ...(net.isIP(config.host) ? {} : { servername: config.host }),
      rejectUnauthorized: !config.allowSelfSigned,
      ...(config.caCert ? { ca: config.caCert } : {}),
    },
    auth: config.username ? { user: config.username, pass: secrets.password ?? '' } : undefined,
    connectionTimeout: opts.timeoutMs,
    greetingTimeout: opts.timeoutMs,
    socketTimeout: opts.timeoutMs * 3,
    // One message per connection: nothing is kept open between deliveries.
    pool: false,
  });
  try {
    const info = await transport.sendMail({
      from: config.from,
      to: msg.to ?? config.to,
      subject: msg.subject,
      text: msg.text,
      html: msg.html,
      messageId: `<${msg.id}@keywarden>`,
      headers: { 'X-Keywarden-Delivery': msg.id },
      attachments: msg.attachments?.map((a) => ({ filename: a.filename, contentType: a.contentType, content: a.content })),
    });
    const code = /^\d{3}/.exec(info.response ?? '')?.[0] ?? null;
    return { ok: true, code, summary: `${smtpCode(info.response) ?? code ?? '250'} accepted`, error: null, retryable: false };
  } catch (e) {
    return smtpFailure(e);
  } finally {
    transport.close();
  }
}

/** One message out through one channel. Never throws: every outcome is a SendResult. */
export async function sendThrough(
  kind: ChannelKind,
  config: ChannelConfig,
  secrets: ChannelSecrets,
  msg: OutgoingMessage,
  opts: SendOptions,
): Promise<SendResult> {
  try {
    if (kind === 'email') return await sendEmail(config as EmailConfig, secrets, msg, opts);
    if (kind === 'webhook') {
      const body = JSON.stringify(msg.webhook);
      const timestamp = String(Math.floor(opts.now().getTime() / 1000));
      return await postJson(
        'webhook',
        (config as WebhookConfig).url,
        body,
        {
          [TIMESTAMP_HEADER]: timestamp,
          [SIGNATURE_HEADER]: signWebhook(secrets.signingSecret ?? '', timestamp, body),
          'X-Keywarden-Delivery': msg.id,
        },
        opts,
      );
    }
    return await postJson(kind, secrets.url ?? '', JSON.stringify(kind === 'teams' ? msg.teams : msg.slack), {}, opts);
  } catch {
    return { ok: false, code: null, summary: 'not sent', error: 'an unexpected error stopped the delivery', retryable: true };
  }
}
