import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransport,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { isIP } from 'node:net';
import type { Executor } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import type { UsersTable } from '../../db/schema.js';
import type { Policy } from '../../config.js';
import { burnPasswordCheck, verifyPassword } from '../../crypto/passwords.js';
import { newSecret, sha256Hex } from '../../crypto/tokens.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, conflict, forbidden, notFound, rateLimited, unauthenticated } from '../../lib/errors.js';
import { normalizeName } from '../../domain/names.js';
import { requireFreshSecondFactor, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { IdentityRepo } from './identity.repo.js';
import type { IdentityService } from './identity.service.js';
import type { LoginResult } from './identity.types.js';
import type { PasskeysRepo } from './passkeys.repo.js';

/** How long a registration, sign-in or step-up may take between the options and the answer. */
export const CHALLENGE_MINUTES = 5;
const MAX_PASSKEYS = 20;

export type PasskeyView = {
  id: string;
  name: string;
  transports: string[];
  backedUp: boolean;
  createdAt: string;
  lastUsedAt: string | null;
};

/** Options for the browser (PublicKeyCredentialCreationOptionsJSON / …RequestOptionsJSON), as plain JSON. */
export type PasskeyOptions = { challenge: string } & Record<string, unknown>;
const asJson = (o: PublicKeyCredentialCreationOptionsJSON | PublicKeyCredentialRequestOptionsJSON): PasskeyOptions => o as unknown as PasskeyOptions;

type Purpose = 'register' | 'sign-in' | 'step-up';

type Deps = {
  tx: Transactions;
  repo: PasskeysRepo;
  users: Pick<IdentityRepo, 'findUser' | 'findUserByEmail' | 'updateUser' | 'updateSession' | 'clearThrottle' | 'revokeUserSessions'>;
  identity: Pick<IdentityService, 'signInParts' | 'getUser'>;
  /** Whether the owner requires every person to have a second factor (settings module). */
  requireMfa: (exec: Executor) => Promise<boolean>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  policy: Policy;
  /** KEYWARDEN_PUBLIC_URL: the relying party is its host name, the only accepted origin its origin. */
  publicUrl: string | null;
};

/** The relying party (this Keywarden), from the public URL; null with the reason when it cannot be one. */
export function relyingParty(publicUrl: string | null): { id: string; origin: string } | { problem: string } {
  if (!publicUrl)
    return {
      problem: 'Passkeys need the address people use to reach Keywarden: set KEYWARDEN_PUBLIC_URL (for example https://keywarden.example.com) and restart.',
    };
  const u = new URL(publicUrl);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host))
    return {
      problem: `Passkeys need a host name, not an IP address: KEYWARDEN_PUBLIC_URL is ${u.origin}. Use the DNS name people type (or localhost for a lab).`,
    };
  return { id: host, origin: u.origin };
}

/** The challenge as the bytes the browser signs (its base64url form is the challenge string itself). */
const bytesOf = (challenge: string) => new Uint8Array(Buffer.from(challenge, 'base64url'));
const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** The challenge a browser's answer was made for (from clientDataJSON), or null when it is not readable. */
function challengeOf(clientDataJSON: string): string | null {
  try {
    const parsed = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')) as { challenge?: unknown };
    return typeof parsed.challenge === 'string' && parsed.challenge.length > 0 && parsed.challenge.length <= 200 ? parsed.challenge : null;
  } catch {
    return null;
  }
}

/** The library's reasons, in product words (its own messages quote the challenge: never shown). */
function problemOf(e: unknown): string {
  const m = e instanceof Error ? e.message : '';
  if (/origin/i.test(m)) return 'the answer was made for another web address than this Keywarden';
  if (/RP ID/i.test(m)) return 'the answer was made for another site than this Keywarden';
  if (/verification/i.test(m)) return 'the authenticator did not verify you (PIN, fingerprint or face)';
  if (/not present/i.test(m)) return 'the authenticator did not see you touch it';
  if (/algorithm|alg/i.test(m)) return 'the authenticator uses a signature algorithm Keywarden does not accept';
  return 'the answer could not be verified';
}

const PURPOSE_WORDS: Record<Purpose, string> = { register: 'passkey set-up', 'sign-in': 'passkey sign-in', 'step-up': 'passkey confirmation' };

export function createPasskeysService({ tx: transactions, repo, users, identity, requireMfa, audit, clock, policy, publicUrl }: Deps) {
  const db = transactions.reader;
  const parts = () => identity.signInParts;
  const addMinutes = (iso: string, minutes: number) => new Date(Date.parse(iso) + minutes * 60_000).toISOString();

  const rp = () => {
    const r = relyingParty(publicUrl);
    if ('problem' in r) throw badRequest(r.problem);
    return r;
  };

  const person = (actor: Actor, what: string) => {
    if (actor.type !== 'user' || !actor.session) throw forbidden(`Only a signed-in person can ${what}; API tokens cannot.`);
    return actor.session;
  };

  const viewOf = (p: Awaited<ReturnType<PasskeysRepo['find']>> & object): PasskeyView => ({
    id: p.id,
    name: p.name,
    transports: JSON.parse(p.transports) as string[],
    backedUp: !!p.backed_up,
    createdAt: p.created_at,
    lastUsedAt: p.last_used_at,
  });

  const passkeyName = (raw: string | undefined, fallback: string) => {
    const r = normalizeName(raw ?? '', 'A passkey name');
    if (!r.ok) throw badRequest(r.reason, { field: 'name' });
    const name = r.value.slice(0, 100);
    return name || fallback;
  };

  /** A new single-use challenge, stored by its hash; the challenge itself goes to the browser only. */
  const newChallenge = async (purpose: Purpose, userId: string | null): Promise<string> => {
    const challenge = newSecret();
    const now = clock.now();
    await transactions.run(async (tx) => {
      await repo.pruneChallenges(tx, addMinutes(now, -24 * 60));
      await repo.insertChallenge(tx, {
        id: newId(),
        challenge_hash: sha256Hex(challenge),
        purpose,
        user_id: userId,
        created_at: now,
        expires_at: addMinutes(now, CHALLENGE_MINUTES),
        used_at: null,
      });
    });
    return challenge;
  };

  class Refused extends Error {
    constructor(
      readonly problem: string,
      readonly outcome: 'failure' | 'denied' = 'failure',
    ) {
      super(problem);
    }
  }

  /**
   * Finds the challenge an answer was made for and takes it: unknown, made for something else,
   * for another person, already used (also by a parallel request) or expired are refused.
   */
  const takeChallenge = async (clientDataJSON: string, purpose: Purpose, userId: string | null | 'any') => {
    const challenge = challengeOf(clientDataJSON);
    const row = challenge ? await repo.findChallenge(db, sha256Hex(challenge)) : undefined;
    if (!challenge || !row || row.purpose !== purpose) throw new Refused(`the answer is not for a ${PURPOSE_WORDS[purpose]} Keywarden started`);
    if (userId !== 'any' && row.user_id !== userId) throw new Refused(`the answer is for a ${PURPOSE_WORDS[purpose]} of another person`, 'denied');
    if (row.used_at) throw new Refused('this passkey answer was already used (a replay)', 'denied');
    const now = clock.now();
    if (Date.parse(row.expires_at) <= Date.parse(now)) throw new Refused(`the ${PURPOSE_WORDS[purpose]} expired (after ${CHALLENGE_MINUTES} minutes)`);
    if (!(await repo.takeChallenge(db, row.id, now))) throw new Refused('this passkey answer was already used (a replay)', 'denied');
    return { challenge, row };
  };

  /**
   * Checks a signed answer of one of this person's passkeys (or, password-less, of anyone's):
   * the challenge, the credential's owner, origin, RP ID, signature, user verification and the
   * signature counter. Returns the passkey and its owner.
   */
  const checkAssertion = async (
    response: AuthenticationResponseJSON,
    purpose: Purpose,
    expectedUser: string | null,
    requireUserVerification: boolean,
  ): Promise<{ passkey: NonNullable<Awaited<ReturnType<PasskeysRepo['find']>>>; user: UsersTable }> => {
    const r = rp();
    const { challenge, row } = await takeChallenge(response.response.clientDataJSON, purpose, purpose === 'sign-in' ? 'any' : expectedUser);
    const owner = purpose === 'sign-in' ? row.user_id : expectedUser;
    const passkey = await repo.findByCredentialId(db, response.id);
    if (!passkey) throw new Refused('this passkey is not registered with Keywarden (it may have been removed)');
    if (owner && passkey.user_id !== owner) throw new Refused('this passkey belongs to another person', 'denied');
    // Password-less: the authenticator names the account (user handle); it must be the passkey's owner.
    if (!owner && response.response.userHandle !== b64url(passkey.user_id)) throw new Refused('the passkey named another account than its own', 'denied');
    let verified;
    try {
      verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: r.origin,
        expectedRPID: r.id,
        requireUserVerification,
        // The counter is checked below by a conditional update (one answer per counter value).
        credential: {
          id: passkey.credential_id,
          publicKey: new Uint8Array(Buffer.from(passkey.public_key, 'base64url')),
          counter: 0,
          transports: JSON.parse(passkey.transports) as AuthenticatorTransport[],
        },
      });
    } catch (e) {
      throw new Refused(problemOf(e));
    }
    if (!verified.verified) throw new Refused('the signature does not match the passkey');
    const counter = verified.authenticationInfo.newCounter;
    if (!(await repo.advanceCounter(db, passkey.id, counter, clock.now(), verified.authenticationInfo.credentialBackedUp))) {
      throw new Refused(
        `the passkey's signature counter went backwards (${counter} after ${passkey.sign_count}): the authenticator may have been copied, so this passkey is refused`,
        'denied',
      );
    }
    const user = await users.findUser(db, passkey.user_id);
    if (!user || user.status !== 'active') throw new Refused('the account of this passkey is disabled');
    return { passkey, user };
  };

  const service = {
    /** The signed-in person's passkeys (no key material, no credential id). */
    async list(actor: Actor): Promise<PasskeyView[]> {
      person(actor, 'have passkeys');
      return (await repo.listForUser(db, actor.id)).map(viewOf);
    },

    /** Options for the browser's navigator.credentials.create(): a discoverable passkey with user verification. */
    async registrationOptions(actor: Actor): Promise<PasskeyOptions> {
      person(actor, 'add a passkey');
      requireFreshSecondFactor(actor, 'add a passkey', clock.now(), policy.stepUpMinutes);
      const r = rp();
      const u = await users.findUser(db, actor.id);
      if (!u) throw notFound('No such user.');
      const existing = await repo.listForUser(db, u.id);
      if (existing.length >= MAX_PASSKEYS) throw badRequest(`You have ${MAX_PASSKEYS} passkeys, the most Keywarden keeps; remove one first.`);
      const challenge = await newChallenge('register', u.id);
      return asJson(
        await generateRegistrationOptions({
          rpName: 'Keywarden',
          rpID: r.id,
          userName: u.email,
          userDisplayName: u.name,
          userID: new TextEncoder().encode(u.id),
          challenge: bytesOf(challenge),
          timeout: CHALLENGE_MINUTES * 60_000,
          attestationType: 'none',
          excludeCredentials: existing.map((p) => ({ id: p.credential_id, transports: JSON.parse(p.transports) as AuthenticatorTransport[] })),
          authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
          // ES256 and RS256: what platform authenticators and security keys sign with.
          supportedAlgorithmIDs: [-7, -257],
        }),
      );
    },

    /** Checks the browser's answer and keeps the passkey. The first second factor also counts as proven now. */
    async register(actor: Actor, input: { name?: string; response: RegistrationResponseJSON }): Promise<PasskeyView> {
      const session = person(actor, 'add a passkey');
      requireFreshSecondFactor(actor, 'add a passkey', clock.now(), policy.stepUpMinutes);
      const r = rp();
      const u = await users.findUser(db, actor.id);
      if (!u) throw notFound('No such user.');
      const name = passkeyName(input.name, `Passkey ${new Date(Date.parse(clock.now())).toISOString().slice(0, 10)}`);
      const fail = async (problem: string, outcome: 'failure' | 'denied' = 'failure') => {
        await audit.recordNow(actor, { action: 'passkey.register', outcome, targetType: 'user', targetId: u.id, details: { problem } });
        return badRequest(`The passkey was not added: ${problem}.`);
      };
      let verified;
      try {
        const { challenge } = await takeChallenge(input.response.response.clientDataJSON, 'register', u.id);
        verified = await verifyRegistrationResponse({
          response: input.response,
          expectedChallenge: challenge,
          expectedOrigin: r.origin,
          expectedRPID: r.id,
          requireUserVerification: true,
          supportedAlgorithmIDs: [-7, -257],
        });
      } catch (e) {
        throw e instanceof Refused ? await fail(e.problem, e.outcome) : await fail(problemOf(e));
      }
      if (!verified.verified || !verified.registrationInfo) throw await fail('the answer could not be verified');
      const info = verified.registrationInfo;
      const now = clock.now();
      const hadSecondFactor = session.mfaEnrolled;
      const row = {
        id: newId(),
        user_id: u.id,
        credential_id: info.credential.id,
        public_key: Buffer.from(info.credential.publicKey).toString('base64url'),
        sign_count: info.credential.counter,
        transports: JSON.stringify((input.response.response.transports ?? []).slice(0, 10).map((t) => String(t).slice(0, 20))),
        name,
        backed_up: info.credentialBackedUp ? 1 : 0,
        created_at: now,
        last_used_at: null,
      };
      if (await repo.findByCredentialId(db, row.credential_id)) throw conflict('This passkey is already registered with Keywarden.');
      try {
        await transactions.run(async (tx) => {
          await repo.insert(tx, row);
          // A first second factor, proven just now with user verification: like confirming an authenticator app.
          if (!hadSecondFactor) await users.updateSession(tx, session.id, { mfa_at: now });
          await audit.record(tx, actor, {
            action: 'passkey.register',
            outcome: 'success',
            targetType: 'user',
            targetId: u.id,
            details: { passkeyId: row.id, name, backedUp: !!row.backed_up },
          });
        });
      } catch (e) {
        // Two answers for the same new credential at once: the unique credential id lets one in.
        if (await repo.findByCredentialId(db, row.credential_id)) throw conflict('This passkey is already registered with Keywarden.');
        throw e;
      }
      if (!hadSecondFactor) {
        session.mfaAt = now;
        session.mfaEnrolled = true;
        session.mfaEnrolmentRequired = false;
      }
      return viewOf(row);
    },

    async rename(actor: Actor, id: string, name: string): Promise<PasskeyView> {
      person(actor, 'rename a passkey');
      const clean = passkeyName(name, '');
      if (!clean) throw badRequest('A passkey needs a name of 1 to 100 characters.', { field: 'name' });
      return transactions.run(async (tx) => {
        if (!(await repo.rename(tx, id, actor.id, clean))) throw notFound(`You have no passkey with id ${id.slice(0, 60)}.`);
        await audit.record(tx, actor, {
          action: 'passkey.rename',
          outcome: 'success',
          targetType: 'user',
          targetId: actor.id,
          details: { passkeyId: id, name: clean },
        });
        return viewOf((await repo.find(tx, id))!);
      });
    },

    /**
     * Removes one of your passkeys (fresh step-up). While the owner requires a second factor for
     * everyone, your last one stays: the user row is locked first, so two removals at once cannot
     * both take the last two.
     */
    async remove(actor: Actor, id: string): Promise<void> {
      person(actor, 'remove a passkey');
      requireFreshSecondFactor(actor, 'remove a passkey', clock.now(), policy.stepUpMinutes);
      await transactions.run(async (tx) => {
        const now = clock.now();
        await users.updateUser(tx, actor.id, { updated_at: now });
        const p = await repo.find(tx, id);
        if (!p || p.user_id !== actor.id) throw notFound(`You have no passkey with id ${id.slice(0, 60)}.`);
        const u = await users.findUser(tx, actor.id);
        const others = (await repo.countForUser(tx, actor.id)) - 1 + (u?.totp_confirmed_at ? 1 : 0);
        if (others === 0 && (await requireMfa(tx)))
          throw badRequest('This is your last second factor and a second factor is required for everyone: add another passkey or an authenticator app first.');
        await repo.remove(tx, id, actor.id);
        await audit.record(tx, actor, {
          action: 'passkey.remove',
          outcome: 'success',
          targetType: 'user',
          targetId: actor.id,
          details: { passkeyId: id, name: p.name },
        });
      });
    },

    // ---------------------------------------------------------------- operators
    /** Someone else's passkeys, for people who manage that user (user:manage, within reach). */
    async listFor(actor: Actor, userId: string): Promise<PasskeyView[]> {
      const u = await identity.getUser(actor, userId);
      return (await repo.listForUser(db, u.id)).map(viewOf);
    },

    /**
     * Removes every passkey of a user (a lost or stolen device) and ends their sessions. Needs
     * user:manage within reach and a fresh step-up; while a second factor is required for everyone,
     * the user sets up a new one at their next sign-in.
     */
    async removeAllFor(actor: Actor, userId: string): Promise<{ removed: number }> {
      const u = await identity.getUser(actor, userId);
      requireFreshSecondFactor(actor, 'manage users', clock.now(), policy.stepUpMinutes);
      return transactions.run(async (tx) => {
        const now = clock.now();
        const removed = await repo.removeAllForUser(tx, u.id);
        await users.revokeUserSessions(tx, u.id, now);
        await audit.record(tx, actor, {
          action: 'passkey.remove',
          outcome: 'success',
          targetType: 'user',
          targetId: u.id,
          details: { email: u.email, by: 'operator', removed },
        });
        return { removed };
      });
    },

    // ---------------------------------------------------------------- sign-in
    /** Password-less: any passkey of this Keywarden (discoverable), with user verification. */
    async signInOptions(ip: string | null): Promise<PasskeyOptions> {
      const r = rp();
      const started = await parts().reserveStart(ip);
      if (!started.ok) throw rateLimited(started.message, started.wait);
      const challenge = await newChallenge('sign-in', null);
      return asJson(
        await generateAuthenticationOptions({ rpID: r.id, challenge: bytesOf(challenge), userVerification: 'required', timeout: CHALLENGE_MINUTES * 60_000 }),
      );
    },

    /**
     * The passkey as second factor: the e-mail and password are checked again here (throttled like
     * sign-in), and the challenge is bound to that person, so the answer proves both.
     */
    async secondFactorOptions(input: { email: string; password: string; ip: string | null; userAgent: string | null }): Promise<PasskeyOptions> {
      const r = rp();
      const { reserve, refund, lockedMessage, claimant } = parts();
      const email = input.email.trim().toLowerCase().slice(0, 254);
      const acctKey = `acct:${email}`;
      const ipKey = input.ip ? `ip:${input.ip}` : null;
      const reserved = await reserve([{ key: acctKey, max: policy.loginMaxFailures }, ...(ipKey ? [{ key: ipKey, max: policy.loginMaxFailuresPerIp }] : [])]);
      if (!reserved.ok) {
        await audit.recordNow(claimant(email, input.ip, input.userAgent), { action: 'auth.login', outcome: 'locked', details: { email, method: 'passkey' } });
        throw rateLimited(lockedMessage('sign-ins', reserved.wait), reserved.wait);
      }
      const user = await users.findUserByEmail(db, email);
      const ok = user ? await verifyPassword(user.password_hash, input.password) : (await burnPasswordCheck(input.password), false);
      if (!user || !ok || user.status !== 'active') {
        await audit.recordNow(claimant(email, input.ip, input.userAgent, user?.id), {
          action: 'auth.login',
          outcome: 'failure',
          details: { email, method: 'passkey', reason: !user ? 'unknown account' : !ok ? 'wrong password' : 'account disabled' },
        });
        throw unauthenticated('The e-mail address or password is not right.');
      }
      const keys = await repo.listForUser(db, user.id);
      // Right password: not a failure, the attempt is given back (the passkey step is counted on its own).
      await transactions.run(async (tx) => {
        await refund(tx, acctKey);
        if (ipKey) await refund(tx, ipKey);
      });
      if (!keys.length) throw badRequest('This account has no passkey; enter the code from your authenticator app instead.');
      const challenge = await newChallenge('sign-in', user.id);
      return asJson(
        await generateAuthenticationOptions({
          rpID: r.id,
          challenge: bytesOf(challenge),
          userVerification: 'preferred',
          timeout: CHALLENGE_MINUTES * 60_000,
          allowCredentials: keys.map((p) => ({ id: p.credential_id, transports: JSON.parse(p.transports) as AuthenticatorTransport[] })),
        }),
      );
    },

    /**
     * Signs in with a passkey's answer: password-less (the passkey names the account; user
     * verification required), or as the second factor after the password (secondFactorOptions).
     * Throttled per address, and per account once the account is known.
     */
    async signIn(input: { response: AuthenticationResponseJSON; ip: string | null; userAgent: string | null }): Promise<LoginResult> {
      rp();
      const { reserve, refund, lockedMessage, claimant, openSession, view, settingsOf, hasSecondFactor } = parts();
      const challenge = challengeOf(input.response.response.clientDataJSON);
      const row = challenge ? await repo.findChallenge(db, sha256Hex(challenge)) : undefined;
      const bound = row?.purpose === 'sign-in' ? row.user_id : null;
      const boundUser = bound ? await users.findUser(db, bound) : undefined;
      const ipKey = input.ip ? `ip:${input.ip}` : null;
      const keys = [
        ...(bound ? [{ key: `mfa:${bound}`, max: policy.loginMaxFailures }] : []),
        ...(ipKey ? [{ key: ipKey, max: policy.loginMaxFailuresPerIp }] : []),
      ];
      const who = (u?: UsersTable) => claimant(u?.email ?? boundUser?.email ?? 'passkey', input.ip, input.userAgent, u?.id ?? boundUser?.id);
      const reserved = await reserve(keys);
      if (!reserved.ok) {
        await audit.recordNow(who(), { action: 'auth.login', outcome: 'locked', details: { method: 'passkey' } });
        throw rateLimited(lockedMessage('passkey sign-ins', reserved.wait), reserved.wait);
      }
      let checked;
      try {
        checked = await checkAssertion(input.response, 'sign-in', null, !bound);
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        const p = await repo.findByCredentialId(db, input.response.id);
        const u = p ? await users.findUser(db, p.user_id) : undefined;
        await audit.recordNow(who(u), {
          action: 'auth.login',
          outcome: e.outcome,
          details: { method: 'passkey', passwordless: !bound, problem: e.problem, ...(p ? { passkeyId: p.id } : {}) },
        });
        throw unauthenticated(`The passkey sign-in was refused: ${e.problem}.`);
      }
      const { passkey, user } = checked;
      const settings = await settingsOf(db);
      const { sessionToken, csrfToken } = await openSession(user, {
        mfa: true,
        method: 'passkey',
        ip: input.ip,
        userAgent: input.userAgent,
        audit: (tx) =>
          audit.record(tx, claimant(user.email, input.ip, input.userAgent, user.id), {
            action: 'auth.login',
            outcome: 'success',
            details: { email: user.email, mfa: true, method: 'passkey', passwordless: !bound, passkeyId: passkey.id },
          }),
        afterInsert: async (tx) => {
          await users.clearThrottle(tx, `mfa:${user.id}`);
          if (ipKey) await refund(tx, ipKey);
        },
      });
      const enrolled = await hasSecondFactor(db, user);
      return { sessionToken, csrfToken, user: await view(db, user), mfaEnrolmentRequired: settings.requireMfa && !enrolled };
    },

    // ---------------------------------------------------------------- step-up
    async stepUpOptions(actor: Actor): Promise<PasskeyOptions> {
      person(actor, 'confirm with a passkey');
      const r = rp();
      const keys = await repo.listForUser(db, actor.id);
      if (!keys.length) throw badRequest('You have no passkey; add one on your Account page, or use your authenticator app.');
      const challenge = await newChallenge('step-up', actor.id);
      return asJson(
        await generateAuthenticationOptions({
          rpID: r.id,
          challenge: bytesOf(challenge),
          userVerification: 'preferred',
          timeout: CHALLENGE_MINUTES * 60_000,
          allowCredentials: keys.map((p) => ({ id: p.credential_id, transports: JSON.parse(p.transports) as AuthenticatorTransport[] })),
        }),
      );
    },

    /** Proves the second factor again with a passkey (sets the session's mfa_at). Throttled like step-up with a code. */
    async stepUp(actor: Actor, response: AuthenticationResponseJSON): Promise<{ mfaAt: string }> {
      const session = person(actor, 'confirm with a passkey');
      rp();
      const { reserve, refund, lockedMessage, stepUpKeys } = parts();
      const keys = stepUpKeys(actor.id, actor.ip);
      const reserved = await reserve(keys);
      if (!reserved.ok) {
        await audit.recordNow(actor, { action: 'auth.step_up', outcome: 'locked', details: { method: 'passkey' } });
        throw rateLimited(lockedMessage('second-factor checks', reserved.wait), reserved.wait);
      }
      let checked;
      try {
        checked = await checkAssertion(response, 'step-up', actor.id, false);
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        await audit.recordNow(actor, { action: 'auth.step_up', outcome: e.outcome, details: { method: 'passkey', problem: e.problem } });
        throw badRequest(`The passkey confirmation was refused: ${e.problem}.`);
      }
      const now = clock.now();
      await transactions.run(async (tx) => {
        await users.updateSession(tx, session.id, { mfa_at: now });
        await users.clearThrottle(tx, keys[0]!.key);
        if (keys[1]) await refund(tx, keys[1].key);
        await audit.record(tx, actor, { action: 'auth.step_up', outcome: 'success', details: { method: 'passkey', passkeyId: checked.passkey.id } });
      });
      session.mfaAt = now;
      return { mfaAt: now };
    },
  };
  return service;
}
export type PasskeysService = ReturnType<typeof createPasskeysService>;
