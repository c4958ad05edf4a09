import type { Executor } from '../../db/database.js';
import type { GraphMspAppTable } from '../../db/schema.js';
import type { Keyring } from '../../crypto/keyring.js';
import { certificateFacts, generateSelfSignedCertificate, readUploadedCertificate, type CertificateCredential } from '../../crypto/certificate.js';
import { badRequest } from '../../lib/errors.js';
import { GraphError, type GraphCredentials } from '../../integrations/graph-client.js';

/**
 * How an Entra ID app proves itself to the sign-in endpoint, for per-client apps and the MSP's one
 * app alike: a client secret, a certificate the operator uploads (certificate + private key), or a
 * certificate Keywarden generates. Private keys and secrets are sealed by the caller at once and
 * opened only to sign in; answers carry the public certificate's facts, never the key.
 */

/** What a person may send: exactly one of a secret, an uploaded certificate with its key, or "generate one". */
export type CredentialInput = {
  clientSecret?: string;
  certificatePem?: string;
  privateKeyPem?: string;
  generateCertificate?: boolean;
};

export type NewCredential = { kind: 'secret'; secret: string } | { kind: 'certificate'; cert: CertificateCredential };

/** A certificate is shown as expiring this many days before its end. */
export const CERT_WARN_DAYS = 30;
/** Generated certificates: two years (Entra accepts up to the certificate's own validity). */
const GENERATED_DAYS = 730;

export function newCredential(input: CredentialInput, opts: { now: Date; commonName: string; required: boolean }): NewCredential | null {
  const chosen = [!!input.clientSecret, !!(input.certificatePem || input.privateKeyPem), !!input.generateCertificate].filter(Boolean).length;
  if (chosen > 1)
    throw badRequest('Choose one credential: a client secret, an uploaded certificate with its private key, or a generated certificate.', {
      field: 'credential',
    });
  if (chosen === 0) {
    if (opts.required)
      throw badRequest('A credential is required: a client secret, a certificate with its private key, or generateCertificate: true.', {
        field: 'credential',
      });
    return null;
  }
  if (input.clientSecret) {
    if (input.clientSecret.length > 500) throw badRequest('clientSecret is too long (the secret value, not its ID).', { field: 'clientSecret' });
    return { kind: 'secret', secret: input.clientSecret };
  }
  if (input.generateCertificate) {
    return { kind: 'certificate', cert: generateSelfSignedCertificate({ commonName: opts.commonName, days: GENERATED_DAYS, bits: 3072, now: opts.now }) };
  }
  if (!input.certificatePem) throw badRequest('Upload the certificate (PEM) with its private key.', { field: 'certificatePem' });
  return { kind: 'certificate', cert: readUploadedCertificate(input.certificatePem, input.privateKeyPem) };
}

export type CertificateView = {
  thumbprint: string;
  subject: string;
  notAfter: string;
  /** Days left (negative once expired). */
  daysLeft: number;
  /** Within CERT_WARN_DAYS of its end, or past it: upload a new certificate to the app registration. */
  expiringSoon: boolean;
};

export function certificateView(pem: string | null, now: string): CertificateView | null {
  if (!pem) return null;
  const f = certificateFacts(pem);
  const daysLeft = Math.floor((Date.parse(f.notAfter) - Date.parse(now)) / 86_400_000);
  return { thumbprint: f.thumbprint, subject: f.subject, notAfter: f.notAfter, daysLeft, expiringSoon: daysLeft < CERT_WARN_DAYS };
}

/** The sealing context of the MSP app's secret or private key (AAD of the vault's `secrets` key). */
export const MSP_SECRET_CONTEXT = 'graph-msp-app=msp';

/** Sign-in credentials of the MSP app in one tenant. */
export async function mspCredentials(
  exec: Executor,
  keyring: Pick<Keyring<Executor>, 'secretCipher'>,
  app: GraphMspAppTable | undefined,
  tenantId: string,
): Promise<GraphCredentials> {
  if (!app)
    throw new GraphError(
      0,
      'msp_app_missing',
      'This client is linked through the MSP app, which is not configured: set it up in Settings › Connections › Entra ID app for all clients.',
    );
  const opened = (await keyring.secretCipher(exec)).open(MSP_SECRET_CONTEXT, app.secret_ciphertext);
  return {
    tenantId,
    clientId: app.app_client_id,
    credential:
      app.credential_kind === 'secret'
        ? { kind: 'secret', clientSecret: opened }
        : { kind: 'certificate', privateKeyPem: opened, x5tS256: certificateFacts(app.certificate_pem!).x5tS256 },
    loginUrl: app.login_url,
    graphUrl: app.graph_url,
  };
}

/** AADSTS numbers that mean the app has no standing in the tenant any more. */
export function consentLost(e: unknown, viaMspApp: boolean): boolean {
  if (!(e instanceof GraphError) || e.aadsts === null) return false;
  // A per-client app with an unknown id (700016) is a typing mistake more often than a deletion.
  return e.aadsts === 7000229 || e.aadsts === 65001 || (viaMspApp && e.aadsts === 700016);
}
