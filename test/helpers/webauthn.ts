import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

/**
 * A software authenticator for the HTTP tests: it answers the server's WebAuthn options the way a
 * browser and a platform authenticator would, written from the WebAuthn Level 2 specification
 * (not with the server library): ES256 keys from node:crypto, a COSE public key and an
 * attestation object in CBOR (format "none"), authenticatorData with its flags and signature
 * counter, clientDataJSON with the challenge and origin, and a DER ECDSA signature over
 * authenticatorData ‖ SHA-256(clientDataJSON).
 */

// ------------------------------------------------------------------------------- a little CBOR

type Cbor = number | string | Uint8Array | Cbor[] | Map<number | string, Cbor>;

function head(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

export function cbor(v: Cbor): Buffer {
  if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    return Buffer.concat([head(3, b.length), b]);
  }
  if (v instanceof Uint8Array) return Buffer.concat([head(2, v.length), Buffer.from(v)]);
  if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map(cbor)]);
  const parts: Buffer[] = [head(5, v.size)];
  for (const [k, val] of v) parts.push(cbor(k), cbor(val));
  return Buffer.concat(parts);
}

// ------------------------------------------------------------------------------- the authenticator

const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_BE = 0x08;
const FLAG_BS = 0x10;
const FLAG_AT = 0x40;

const b64u = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest();

export type SoftCredential = {
  id: string;
  privateKey: KeyObject;
  cose: Buffer;
  rpId: string;
  /** The user handle the server gave at registration (base64url). */
  userHandle: string;
  counter: number;
};

type CreationOptions = { challenge: string; rp: { id?: string }; user: { id: string } };
type RequestOptions = { challenge: string; rpId?: string; allowCredentials?: { id: string }[] };

export type Answer = {
  /** The page's origin, as the browser would put it in clientDataJSON. */
  origin: string;
  /** The RP ID the authenticator scopes the credential to (default: the options' RP ID). */
  rpId?: string;
  /** User verification performed (PIN, biometrics). Default true. */
  uv?: boolean;
  /** The counter to sign with instead of the next one (a cloned authenticator). */
  counter?: number;
  /** Which credential to answer with (default: the first allowed, or the first for the RP ID). */
  credential?: SoftCredential;
};

export class SoftAuthenticator {
  readonly credentials: SoftCredential[] = [];
  private readonly aaguid = Buffer.alloc(16);

  /** navigator.credentials.create(): a new ES256 credential, answered with attestation "none". */
  create(options: CreationOptions, a: Answer): Record<string, unknown> {
    const rpId = a.rpId ?? options.rp.id!;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const cose = cbor(
      new Map<number, Cbor>([
        [1, 2], // kty: EC2
        [3, -7], // alg: ES256
        [-1, 1], // crv: P-256
        [-2, Buffer.from(jwk.x!, 'base64url')],
        [-3, Buffer.from(jwk.y!, 'base64url')],
      ]),
    );
    const credId = randomBytes(32);
    const cred: SoftCredential = { id: b64u(credId), privateKey, cose, rpId, userHandle: options.user.id, counter: 0 };
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(credId.length);
    const authData = Buffer.concat([
      this.authDataHead(rpId, FLAG_UP | (a.uv === false ? 0 : FLAG_UV) | FLAG_BE | FLAG_BS | FLAG_AT, 0),
      this.aaguid,
      idLen,
      credId,
      cose,
    ]);
    const attestationObject = cbor(
      new Map<string, Cbor>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]),
    );
    const clientDataJSON = JSON.stringify({ type: 'webauthn.create', challenge: options.challenge, origin: a.origin, crossOrigin: false });
    this.credentials.push(cred);
    return {
      id: cred.id,
      rawId: cred.id,
      type: 'public-key',
      response: { clientDataJSON: b64u(clientDataJSON), attestationObject: b64u(attestationObject), transports: ['internal'] },
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
    };
  }

  /** navigator.credentials.get(): a signed assertion; the counter moves forward unless `counter` says otherwise. */
  get(options: RequestOptions, a: Answer): Record<string, unknown> {
    const rpId = a.rpId ?? options.rpId!;
    const allowed = options.allowCredentials?.map((c) => c.id) ?? [];
    const cred = a.credential ?? this.credentials.find((c) => (allowed.length ? allowed.includes(c.id) : c.rpId === rpId)) ?? this.credentials[0];
    if (!cred) throw new Error('the soft authenticator has no credential');
    const counter = a.counter ?? ++cred.counter;
    const authData = this.authDataHead(rpId, FLAG_UP | (a.uv === false ? 0 : FLAG_UV) | FLAG_BE | FLAG_BS, counter);
    const clientDataJSON = JSON.stringify({ type: 'webauthn.get', challenge: options.challenge, origin: a.origin, crossOrigin: false });
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), cred.privateKey);
    return {
      id: cred.id,
      rawId: cred.id,
      type: 'public-key',
      response: { clientDataJSON: b64u(clientDataJSON), authenticatorData: b64u(authData), signature: b64u(signature), userHandle: cred.userHandle },
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
    };
  }

  private authDataHead(rpId: string, flags: number, counter: number): Buffer {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter >>> 0);
    return Buffer.concat([sha256(rpId), Buffer.from([flags]), c]);
  }
}
