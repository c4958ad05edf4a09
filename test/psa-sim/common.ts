/**
 * Shared plumbing of the PSA simulators (HaloPSA, ConnectWise PSA, Autotask PSA): one real HTTP
 * server on 127.0.0.1 (random port) per simulator, a request log, and the failure switches every
 * connector test needs (unreachable, auth failure, throttling every Nth request).
 *
 * Test fixture only: it lives in test/ and nothing in src/ imports it. See README.md next to
 * this file for what each simulator covers and from which public documentation.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';

/** One request as the simulator saw it. Secrets are never logged: only which auth headers were present. */
export type PsaRequest = {
  method: string;
  /** URL path as received (no query). */
  path: string;
  /** Decoded query string without `?`. */
  query: string;
  status: number;
  /** Arrival time (simulator clock, ms). */
  at: number;
  /** Parsed JSON body (or form fields for a token request, with secrets replaced by `***`). */
  body?: unknown;
  /** How the request ended when no status was written: `reset` (socket closed) or `hang`. */
  outcome?: 'answered' | 'reset' | 'hang';
};

/**
 * How an unreachable PSA behaves:
 * - `reset`: the socket is destroyed as soon as the request arrives (the client sees ECONNRESET / "fetch failed");
 * - `503`: the vendor's front door answers 503 Service Unavailable (maintenance page);
 * - `hang`: the request is read but never answered (the client's own timeout must fire; `stop()` closes it).
 */
export type UnreachableMode = false | 'reset' | '503' | 'hang';

/** An API call sent before the previous throttle's Retry-After elapsed. */
export type PsaViolation = { at: number; method: string; path: string; throttledAt: number; until: number };

/** Slack allowed when checking that a client waited for Retry-After. */
export const RETRY_AFTER_SLACK_MS = 50;

export type Reply = {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Raw text body instead of JSON. */
  text?: string;
  contentType?: string;
};

export type PsaSimOptions = {
  /** Clock for timestamps and token expiry (default Date.now). */
  now?: () => number;
  /** Delay before each answer (default 0); lets tests hold requests in flight (Autotask thread limit). */
  latencyMs?: number;
};

export class HttpError extends Error {
  constructor(readonly reply: Reply) {
    super(`HTTP ${reply.status}`);
  }
}

/**
 * Base class: HTTP server, request log, switches. Subclasses implement `route` and the vendor's
 * own auth-failure and throttle answers.
 */
export abstract class PsaSimBase {
  /** Live switch: make the PSA unreachable (see UnreachableMode). */
  unreachable: UnreachableMode = false;
  /** Live switch: every authenticated call is refused as the vendor refuses bad credentials (the token endpoint too). */
  authFailure = false;
  /** Live switch: every Nth API request (counted since start/reset, token and zone lookups excluded) is throttled. */
  throttleEvery: number | undefined;
  /** Seconds in the vendor's retry hint on a throttled answer (default 1). */
  retryAfterSeconds = 1;
  /**
   * Live switch: a vendor fault on one input, e.g. an internal error (500) or a gateway timeout (504)
   * for one ticket id while every other request is answered normally. Returns the answer to give, or
   * undefined to route the request as usual.
   */
  faultFor: ((req: { method: string; path: string }) => Reply | undefined) | null = null;
  private answerGate: { arrived: () => void; released: Promise<void> } | null = null;

  protected readonly now: () => number;
  protected readonly latencyMs: number;
  protected log: PsaRequest[] = [];
  protected apiCount = 0;
  private early: PsaViolation[] = [];
  private window: { from: number; until: number } | null = null;
  private readonly serverErrors: Error[] = [];
  private server: http.Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly hanging = new Set<http.ServerResponse>();
  protected base = '';

  constructor(opts: PsaSimOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.latencyMs = opts.latencyMs ?? 0;
  }

  /**
   * Holds every answer until `release()` (tests that need a request provably in flight, e.g. a run
   * that holds its lease while a second one starts). `arrived` settles when the first held request
   * has been answered by the route and is waiting.
   */
  holdAnswers(): { arrived: Promise<void>; release: () => void } {
    let arrived!: () => void;
    let release!: () => void;
    const arrivedP = new Promise<void>((r) => (arrived = r));
    const released = new Promise<void>((r) => (release = r));
    this.answerGate = { arrived, released };
    return {
      arrived: arrivedP,
      release: () => {
        this.answerGate = null;
        release();
      },
    };
  }

  /** `http://127.0.0.1:PORT` */
  get url(): string {
    if (!this.base) throw new Error(`${this.constructor.name} not started`);
    return this.base;
  }

  async start(): Promise<string> {
    if (this.server) throw new Error(`${this.constructor.name} already started`);
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.serverErrors.push(err instanceof Error ? err : new Error(String(err)));
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
          res.end(JSON.stringify({ message: 'Simulator error.' }));
        } else res.destroy();
      });
    });
    server.keepAliveTimeout = 120_000;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.base;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      for (const s of this.sockets) s.destroy();
    });
  }

  /** Every request, oldest first. */
  requests(): PsaRequest[] {
    return [...this.log];
  }

  /** Unexpected exceptions inside the simulator (tests should assert this is empty). */
  errors(): Error[] {
    return [...this.serverErrors];
  }

  /** Clears the request log and the Nth-request counter. Data stays. */
  resetLog(): void {
    this.log = [];
    this.apiCount = 0;
    this.early = [];
    this.window = null;
  }

  /**
   * API calls that arrived before the Retry-After of the last `throttleEvery` answer elapsed
   * (simulator clock, minus RETRY_AFTER_SLACK_MS). A client that honours the hint has none.
   */
  violations(): PsaViolation[] {
    return [...this.early];
  }

  /** Number of throttled answers in the log. */
  throttled(): PsaRequest[] {
    return this.log.filter((r) => r.status === 429);
  }

  // --- to implement ----------------------------------------------------------------------------

  /** Answers one request. `counted` says whether it counts as an API call for throttling. */
  protected abstract route(req: IncomingRequest): Promise<Reply> | Reply;
  /** Whether this request is counted for `throttleEvery` (token endpoints and zone lookups are not). */
  protected abstract isApiCall(path: string): boolean;
  /** The vendor's throttle answer. */
  protected abstract throttleReply(): Reply;
  /** The vendor's answer to a malformed request. */
  protected abstract badRequestReply(message: string): Reply;
  /** The vendor's maintenance / unavailable answer. */
  protected unavailableReply(): Reply {
    return { status: 503, text: '<html><body><h1>503 Service Unavailable</h1></body></html>', contentType: 'text/html', headers: { 'retry-after': '30' } };
  }
  /** Strips secrets from a logged body. */
  protected redact(_path: string, body: unknown): unknown {
    return body;
  }

  // --- plumbing --------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const at = this.now();
    const rawUrl = req.url ?? '/';
    const u = new URL(rawUrl, 'http://sim.invalid');
    const method = req.method ?? 'GET';
    const entry: PsaRequest = { method, path: u.pathname, query: safeDecode(u.search.replace(/^\?/, '')), status: 0, at };
    this.log.push(entry);

    if (this.unreachable === 'reset') {
      entry.outcome = 'reset';
      req.socket.destroy();
      return;
    }
    const raw = await readBody(req);
    if (this.unreachable === 'hang') {
      entry.outcome = 'hang';
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    let reply: Reply;
    const incoming: IncomingRequest = { method, path: u.pathname, query: u.searchParams, headers: req.headers, raw, json: undefined, at };
    try {
      incoming.json = parseJsonBody(req.headers['content-type'], raw);
      entry.body = this.redact(u.pathname, incoming.json ?? (raw ? Object.fromEntries(new URLSearchParams(raw)) : undefined));
      if (this.unreachable === '503') reply = this.unavailableReply();
      else {
        const api = this.isApiCall(u.pathname);
        if (api && this.window && at < this.window.until - RETRY_AFTER_SLACK_MS)
          this.early.push({ at, method, path: u.pathname, throttledAt: this.window.from, until: this.window.until });
        if (api && this.throttleEvery && ++this.apiCount % this.throttleEvery === 0) {
          reply = this.throttleReply();
          this.window = { from: at, until: at + this.retryAfterSeconds * 1000 };
        } else reply = this.faultFor?.({ method, path: u.pathname }) ?? (await this.route(incoming));
      }
    } catch (err) {
      if (err instanceof HttpError) reply = err.reply;
      else if (err instanceof BadJson) reply = this.badRequestReply('The request body is not valid JSON.');
      else throw err;
    }
    if (this.latencyMs > 0) await sleep(this.latencyMs);
    const gate = this.answerGate;
    if (gate) {
      gate.arrived();
      await gate.released;
    }
    await this.afterRoute(incoming);
    entry.status = reply.status;
    entry.outcome = 'answered';
    write(res, reply);
  }

  /** Hook after an answer is computed and the latency elapsed (Autotask releases its thread slot here). */
  protected afterRoute(_req: IncomingRequest): Promise<void> | void {}
}

export type IncomingRequest = {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  raw: string;
  /** Parsed JSON body (undefined when there is none or it is a form). */
  json: unknown;
  at: number;
};

function write(res: http.ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { ...(reply.headers ?? {}) };
  let payload = '';
  if (reply.text !== undefined) {
    payload = reply.text;
    headers['content-type'] = reply.contentType ?? 'text/plain; charset=utf-8';
  } else if (reply.body !== undefined) {
    payload = JSON.stringify(reply.body);
    headers['content-type'] = reply.contentType ?? 'application/json; charset=utf-8';
  }
  res.writeHead(reply.status, headers);
  res.end(payload);
}

/** Thrown bodies that are not JSON where JSON was announced answer 400 in each vendor's shape via `badJson`. */
export class BadJson extends Error {}

function parseJsonBody(contentType: string | undefined, raw: string): unknown {
  if (!raw) return undefined;
  if (contentType && /x-www-form-urlencoded/i.test(contentType)) return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw new BadJson('request body is not valid JSON');
  }
}

export function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1 << 20) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** `2025-03-01T08:00:00Z` (whole seconds, as the three PSAs print dates). */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Positive integer from a path segment or query value, or null. */
export function intParam(s: string | null | undefined): number | null {
  if (s === null || s === undefined || !/^\d{1,9}$/.test(s)) return null;
  return Number(s);
}

/** Company / client names used by the seeders (clearly fake, with a few near-duplicates for "suggest by name"). */
export const FAKE_COMPANY_NAMES = [
  'Contoso Ltd',
  'Fabrikam, Inc.',
  'Northwind Traders',
  'Tailspin Toys',
  'Wide World Importers',
  'Adventure Works Cycles',
  'Litware Inc',
  'Proseware, Inc.',
  'Woodgrove Bank',
  'Coho Winery',
  'Contoso Pharmaceuticals',
  'Fourth Coffee',
];
