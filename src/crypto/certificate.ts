import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { badRequest } from '../lib/errors.js';

/**
 * Certificate credentials for Entra ID app registrations (the MSP's one app and per-client apps):
 * a self-signed certificate Keywarden generates (the public part is uploaded to the app
 * registration, the private key never leaves the vault), or a certificate and private key an
 * operator uploads. This file only builds and reads certificates; the private key it returns is
 * sealed by the caller with the keyring at once, and opened only to sign a client assertion.
 */

export type CertificateFacts = {
  /** The public certificate, PEM. */
  certificatePem: string;
  /** SHA-1 thumbprint, upper-case hex: what the Entra admin centre shows under "Certificates & secrets". */
  thumbprint: string;
  /** base64url SHA-1 (the JWT header `x5t`) and SHA-256 (`x5t#S256`) of the certificate's DER. */
  x5t: string;
  x5tS256: string;
  subject: string;
  notBefore: string;
  notAfter: string;
};

export type CertificateCredential = CertificateFacts & {
  /** PKCS#8 PEM. Seal it at once; never log, return or store it in clear. */
  privateKeyPem: string;
};

// ------------------------------------------------------------------------------------- DER
const len = (n: number): Buffer => {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
};
const tlv = (tag: number, content: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), len(content.length), content]);
const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const oid = (dotted: string): Buffer => {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const stack: number[] = [p & 0x7f];
    for (let v = p >> 7; v > 0; v >>= 7) stack.unshift((v & 0x7f) | 0x80);
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
};
const NULL = Buffer.from([0x05, 0x00]);
const integer = (b: Buffer): Buffer => tlv(0x02, b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const time = (d: Date): Buffer => {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${iso}Z`));
};
const name = (cn: string) => seq(tlv(0x31, seq(oid('2.5.4.3'), utf8(cn))));
const SHA256_RSA = seq(oid('1.2.840.113549.1.1.11'), NULL);

/** A self-signed RSA certificate for signing client assertions (sha256WithRSAEncryption). */
export function generateSelfSignedCertificate(opts: { commonName: string; days: number; bits: 2048 | 3072; now: Date }): CertificateCredential {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: opts.bits });
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const notBefore = new Date(opts.now.getTime() - 5 * 60_000);
  const notAfter = new Date(opts.now.getTime() + opts.days * 86_400_000);
  const extensions = tlv(
    0xa3,
    seq(
      // basicConstraints: not a CA (critical)
      seq(oid('2.5.29.19'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq())),
      // keyUsage: digitalSignature (critical)
      seq(oid('2.5.29.15'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, tlv(0x03, Buffer.from([0x07, 0x80])))),
    ),
  );
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))),
    integer(serial),
    SHA256_RSA,
    name(opts.commonName),
    seq(time(notBefore), time(notAfter)),
    name(opts.commonName),
    publicKey.export({ type: 'spki', format: 'der' }),
    extensions,
  );
  const signature = sign('sha256', tbs, privateKey);
  const der = seq(tbs, SHA256_RSA, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const certificatePem = `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END CERTIFICATE-----\n`;
  return { ...inspect(certificatePem, privateKey), privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

function inspect(certificatePem: string, privateKey?: KeyObject): CertificateFacts {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificatePem);
  } catch {
    throw badRequest('The certificate is not a readable X.509 certificate (PEM, "-----BEGIN CERTIFICATE-----").', { field: 'certificate' });
  }
  if (cert.publicKey.asymmetricKeyType !== 'rsa')
    throw badRequest('The certificate must have an RSA key (Entra ID signs and checks client assertions with RS256 or PS256).', { field: 'certificate' });
  const bits = cert.publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048) throw badRequest(`The certificate's RSA key has ${bits} bits; Entra ID needs at least 2048.`, { field: 'certificate' });
  if (privateKey && !cert.checkPrivateKey(privateKey)) throw badRequest('The private key does not belong to this certificate.', { field: 'privateKey' });
  return {
    certificatePem: cert.toString(),
    thumbprint: cert.fingerprint.replace(/:/g, '').toUpperCase(),
    x5t: createHash('sha1').update(cert.raw).digest('base64url'),
    x5tS256: createHash('sha256').update(cert.raw).digest('base64url'),
    subject: cert.subject.replace(/\n/g, ', ').slice(0, 200),
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
  };
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----/g;

/**
 * An uploaded certificate and its private key (PEM; both may be in one text). The key must be
 * unencrypted RSA and belong to the certificate; it comes back as PKCS#8 PEM. Errors never quote
 * the key.
 */
export function readUploadedCertificate(certificateText: string, privateKeyText?: string): CertificateCredential {
  const blocks = [...`${certificateText}\n${privateKeyText ?? ''}`.matchAll(PEM_BLOCK)].map((m) => ({ kind: m[1]!, text: m[0] }));
  const certs = blocks.filter((b) => b.kind === 'CERTIFICATE');
  const keys = blocks.filter((b) => /PRIVATE KEY$/.test(b.kind));
  if (certs.length !== 1) throw badRequest('Upload exactly one certificate (PEM, "-----BEGIN CERTIFICATE-----").', { field: 'certificate' });
  if (keys.length !== 1) throw badRequest('Upload the certificate\'s private key too (PEM, "-----BEGIN PRIVATE KEY-----").', { field: 'privateKey' });
  if (keys[0]!.kind === 'ENCRYPTED PRIVATE KEY')
    throw badRequest('The private key is protected by a passphrase: upload it without one (it is sealed in the vault).', { field: 'privateKey' });
  let key: KeyObject;
  try {
    key = createPrivateKey(keys[0]!.text);
  } catch {
    throw badRequest('The private key is not a readable PEM private key.', { field: 'privateKey' });
  }
  if (key.asymmetricKeyType !== 'rsa') throw badRequest('The private key must be an RSA key.', { field: 'privateKey' });
  return { ...inspect(certs[0]!.text, key), privateKeyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** The facts of a stored public certificate (no private key involved). */
export function certificateFacts(certificatePem: string): CertificateFacts {
  return inspect(certificatePem);
}
