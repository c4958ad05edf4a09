import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { Container } from '../../container.js';
import { badRequest } from '../../lib/errors.js';
import { actorOf, sessionCookieName } from '../plugins/auth.js';
import { Id, Ok, UserSchema, errors } from '../schemas.js';

const B64 = z
  .string()
  .min(1)
  .max(20_000)
  .regex(/^[A-Za-z0-9_-]*={0,2}$/, 'must be base64url');
const Transports = z.array(z.enum(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'])).max(10);
const Extensions = z.record(z.string().max(100), z.unknown()).describe('clientExtensionResults, as the browser gave them');

/** navigator.credentials.create()'s answer, as @simplewebauthn/browser's startRegistration returns it. */
const RegistrationResponse = z.strictObject({
  id: B64.max(1400),
  rawId: B64.max(1400),
  type: z.literal('public-key'),
  response: z.strictObject({
    clientDataJSON: B64,
    attestationObject: B64,
    authenticatorData: B64.optional(),
    transports: Transports.optional(),
    publicKeyAlgorithm: z.number().int().optional(),
    publicKey: B64.optional(),
  }),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults: Extensions,
});

/** navigator.credentials.get()'s answer, as @simplewebauthn/browser's startAuthentication returns it. */
const AuthenticationResponse = z.strictObject({
  id: B64.max(1400),
  rawId: B64.max(1400),
  type: z.literal('public-key'),
  response: z.strictObject({
    clientDataJSON: B64,
    authenticatorData: B64,
    signature: B64,
    userHandle: B64.max(200).optional(),
  }),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults: Extensions,
});

const CreationOptions = z
  .looseObject({ challenge: z.string() })
  .describe('PublicKeyCredentialCreationOptionsJSON: hand it to startRegistration({ optionsJSON }) of @simplewebauthn/browser');
const RequestOptions = z
  .looseObject({ challenge: z.string() })
  .describe('PublicKeyCredentialRequestOptionsJSON: hand it to startAuthentication({ optionsJSON }) of @simplewebauthn/browser');

const PasskeySchema = z.object({
  id: z.string(),
  name: z.string(),
  transports: z.array(z.string()),
  backedUp: z.boolean().describe('synced by its provider (for example iCloud Keychain or Google Password Manager)'),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
});
const PasskeyName = z.string().min(1).max(100);

/** Passkeys (WebAuthn): your own passkeys, signing in with one, and step-up with one. */
export const passkeyRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    const cookieOptions = { path: '/', httpOnly: true, sameSite: 'strict' as const, secure: c.config.server.secure };
    const cookieName = sessionCookieName(c.config.server.secure);

    app.get(
      '/me/passkeys',
      {
        config: { auth: 'enrolment' },
        schema: { tags: ['me'], summary: 'Your passkeys', response: { 200: z.array(PasskeySchema), ...errors(401, 403) } },
      },
      async (request) => c.passkeys.list(actorOf(request)),
    );

    app.post(
      '/me/passkeys/options',
      {
        config: { auth: 'enrolment' },
        schema: {
          tags: ['me'],
          summary: 'Start adding a passkey: options for the browser (needs a fresh step-up when you already have a second factor)',
          response: { 200: CreationOptions, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.passkeys.registrationOptions(actorOf(request)),
    );

    app.post(
      '/me/passkeys',
      {
        config: { auth: 'enrolment' },
        schema: {
          tags: ['me'],
          summary: "Add a passkey: the browser's answer to the options, and a name you choose",
          body: z.strictObject({ name: PasskeyName.optional(), response: RegistrationResponse }),
          response: { 200: PasskeySchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.passkeys.register(actorOf(request), { name: request.body.name, response: request.body.response as RegistrationResponseJSON }),
    );

    app.patch(
      '/me/passkeys/:passkeyId',
      {
        schema: {
          tags: ['me'],
          summary: 'Rename one of your passkeys',
          params: z.strictObject({ passkeyId: Id }),
          body: z.strictObject({ name: PasskeyName }),
          response: { 200: PasskeySchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.passkeys.rename(actorOf(request), request.params.passkeyId, request.body.name),
    );

    app.delete(
      '/me/passkeys/:passkeyId',
      {
        schema: {
          tags: ['me'],
          summary: 'Remove one of your passkeys (fresh step-up; your last second factor stays while one is required for everyone)',
          params: z.strictObject({ passkeyId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.passkeys.remove(actorOf(request), request.params.passkeyId);
        return { ok: true as const };
      },
    );

    app.post(
      '/auth/passkey/options',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['auth'],
          summary:
            'Start signing in with a passkey: without a body (or an empty one) for a password-less sign-in; with e-mail and password when sign-in answered mfaRequired',
          security: [],
          body: z
            .strictObject({ email: z.string().min(1).max(254), password: z.string().min(1).max(256) })
            .partial()
            .optional(),
          response: { 200: RequestOptions, ...errors(400, 401, 429) },
        },
      },
      async (request) => {
        const b = request.body ?? {};
        if (b.email !== undefined || b.password !== undefined) {
          if (b.email === undefined || b.password === undefined) throw badRequest('Send both the e-mail address and the password, or neither (password-less).');
          return c.passkeys.secondFactorOptions({
            email: b.email,
            password: b.password,
            ip: request.ip ?? null,
            userAgent: request.headers['user-agent'] ?? null,
          });
        }
        return c.passkeys.signInOptions(request.ip ?? null);
      },
    );

    app.post(
      '/auth/passkey',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['auth'],
          summary: "Sign in with a passkey: the browser's answer to the options",
          security: [],
          body: z.strictObject({ response: AuthenticationResponse }),
          response: { 200: z.object({ user: UserSchema, csrfToken: z.string(), mfaEnrolmentRequired: z.boolean() }), ...errors(400, 401, 429) },
        },
      },
      async (request, reply) => {
        const r = await c.passkeys.signIn({
          response: request.body.response as AuthenticationResponseJSON,
          ip: request.ip ?? null,
          userAgent: request.headers['user-agent'] ?? null,
        });
        reply.setCookie(cookieName, r.sessionToken, { ...cookieOptions, maxAge: c.config.policy.sessionMaxHours * 3600 });
        return { user: r.user, csrfToken: r.csrfToken, mfaEnrolmentRequired: r.mfaEnrolmentRequired };
      },
    );

    app.post(
      '/auth/step-up/passkey/options',
      {
        schema: {
          tags: ['auth'],
          summary: 'Start confirming it is you with one of your passkeys (step-up)',
          response: { 200: RequestOptions, ...errors(400, 401, 403) },
        },
      },
      async (request) => c.passkeys.stepUpOptions(actorOf(request)),
    );

    app.post(
      '/auth/step-up/passkey',
      {
        schema: {
          tags: ['auth'],
          summary: "Confirm it is you with a passkey (step-up): the browser's answer to the options",
          body: z.strictObject({ response: AuthenticationResponse }),
          response: { 200: z.object({ mfaAt: z.string() }), ...errors(400, 401, 403, 429) },
        },
      },
      async (request) => c.passkeys.stepUp(actorOf(request), request.body.response as AuthenticationResponseJSON),
    );
  };
