import { createHmac, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { randomRecoveryPassword } from './keys.js';

/**
 * Hand-built agent protocol bodies over real HTTP, for server tests that must not depend on the
 * TypeScript test agent's decisions: every request is written out here the way
 * agent/Keywarden-Agent.ps1 sends it (enum names, 7-digit UTC times, Bearer credential,
 * User-Agent, UTF-8 JSON), and the test decides what the "device" does with each answer.
 */

export const AGENT_VERSION = '1.2.0';

/** Starts the app on a loopback port (the app is built ready, never listening); returns its base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return address.replace('localhost', '127.0.0.1');
}

export type WireResponse = { status: number; json: any; body: string };

/** One HTTP request with JSON in and out. */
export async function request(
  base: string,
  method: string,
  url: string,
  opts: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<WireResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  let payload: Uint8Array<ArrayBuffer> | undefined;
  if (opts.body !== undefined) {
    payload = new TextEncoder().encode(JSON.stringify(opts.body));
    headers['content-type'] ??= 'application/json; charset=utf-8';
  }
  const res = await fetch(`${base}${url}`, { method, headers, body: payload });
  const body = await res.text();
  let json: unknown;
  try {
    json = body ? JSON.parse(body) : null;
  } catch {
    json = null;
  }
  return { status: res.status, json, body };
}

/** `ToString('o')` of a UTC DateTime: seven fractional digits and Z. */
export const psTime = (d = new Date()): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$10000Z');

/** A protector as the device has it; passwords never leave the device but in an upload. */
export type WireProtector = { id: string; type: string; password?: string };
export type WireVolume = {
  mountPoint: string;
  volumeType: 'OperatingSystem' | 'Data';
  volumeStatus: string;
  protectionStatus: string;
  lockStatus: string;
  encryptionMethod: string;
  encryptionPercentage: number;
  protectors: WireProtector[];
};

export const braced = (id: string) => `{${id.replace(/[{}]/g, '').toUpperCase()}}`;
export const newProtector = (type = 'RecoveryPassword'): WireProtector =>
  type === 'RecoveryPassword' ? { id: braced(randomUUID()), type, password: randomRecoveryPassword() } : { id: braced(randomUUID()), type };

export function volume(mountPoint: string, over: Partial<WireVolume> = {}): WireVolume {
  return {
    mountPoint,
    volumeType: mountPoint === 'C:' ? 'OperatingSystem' : 'Data',
    volumeStatus: 'FullyEncrypted',
    protectionStatus: 'On',
    lockStatus: 'Unlocked',
    encryptionMethod: 'XtsAes128',
    encryptionPercentage: 100,
    protectors: mountPoint === 'C:' ? [newProtector('Tpm'), newProtector()] : [newProtector(), newProtector('ExternalKey')],
    ...over,
  };
}

/** A simulated Windows device speaking the agent protocol by hand. */
export class WireDevice {
  seq = 0;
  credential: string | null = null;
  deviceId: string | null = null;
  salt: string | null = null;
  domainJoined: boolean | null = false;
  entraJoinType: string | null = null;
  readonly serial = `FAKE-SN-${randomUUID().slice(0, 8)}`;
  readonly smbiosUuid = randomUUID();

  constructor(
    readonly base: string,
    readonly hostname: string,
    public volumes: WireVolume[] = [volume('C:')],
  ) {}

  private headers(): Record<string, string> {
    return {
      ...(this.credential ? { authorization: `Bearer ${this.credential}` } : {}),
      'user-agent': `Keywarden-Agent/${AGENT_VERSION}`,
    };
  }

  async enroll(token: string): Promise<WireResponse> {
    const r = await request(this.base, 'POST', '/api/v1/agent/enroll', {
      headers: this.headers(),
      body: {
        enrollmentToken: token,
        agentVersion: AGENT_VERSION,
        device: {
          hostname: this.hostname,
          domain: null,
          domainJoined: this.domainJoined,
          serialNumber: this.serial,
          manufacturer: 'FAKE',
          model: 'FAKE-1',
          smbiosUuid: this.smbiosUuid,
        },
        previousCredential: this.credential,
      },
    });
    if (r.status === 200) {
      this.credential = r.json.credential;
      this.deviceId = r.json.deviceId;
      this.salt = r.json.fingerprintSalt;
    }
    return r;
  }

  fingerprint(password: string): string {
    return createHmac('sha256', Buffer.from(this.salt!, 'base64')).update(password, 'utf8').digest('hex');
  }

  volume(mountPoint: string): WireVolume {
    const v = this.volumes.find((x) => x.mountPoint === mountPoint);
    if (!v) throw new Error(`no volume ${mountPoint}`);
    return v;
  }

  recoveryPasswords(mountPoint: string): WireProtector[] {
    return this.volume(mountPoint).protectors.filter((p) => p.type === 'RecoveryPassword');
  }

  deviceFacts() {
    return {
      hostname: this.hostname,
      domain: this.domainJoined ? 'fake.example' : null,
      domainJoined: this.domainJoined,
      serialNumber: this.serial,
      manufacturer: 'FAKE',
      model: 'FAKE-1',
      smbiosUuid: this.smbiosUuid,
      os: { caption: 'Microsoft Windows 11 Pro', version: '10.0.22631', build: '22631' },
      entra: this.entraJoinType ? { joinType: this.entraJoinType, deviceId: null, tenantId: null } : null,
      tpm: { present: true, ready: true, enabled: true, activated: true, specVersion: '2.0', manufacturer: 'FAKE' },
      secureBoot: true,
    };
  }

  volumesBody() {
    return this.volumes.map((v) => ({
      mountPoint: v.mountPoint,
      volumeType: v.volumeType,
      volumeStatus: v.volumeStatus,
      protectionStatus: v.protectionStatus,
      lockStatus: v.lockStatus,
      encryptionMethod: v.encryptionMethod,
      encryptionPercentage: v.encryptionPercentage,
      keyProtectors: v.protectors.map((p) => ({ id: p.id, type: p.type, ...(p.password ? { fingerprint: this.fingerprint(p.password) } : {}) })),
    }));
  }

  /** A check-in: the volumes as they are now unless a body part is given. */
  async checkin(
    parts: { jobResults?: unknown[]; volumes?: unknown[] | null; manageBde?: { status: string; protectors: string } | null } = {},
  ): Promise<WireResponse> {
    const body = {
      seq: ++this.seq,
      sentAt: psTime(),
      agentVersion: AGENT_VERSION,
      device: this.deviceFacts(),
      volumes: parts.volumes === undefined ? this.volumesBody() : parts.volumes,
      manageBde: parts.manageBde ?? null,
      events: [],
      ...(parts.jobResults ? { jobResults: parts.jobResults } : {}),
    };
    return request(this.base, 'POST', '/api/v1/agent/checkin', { headers: this.headers(), body });
  }

  /** Uploads passwords (at most 32 a request, as the agent batches them). */
  async upload(keys: { mountPoint: string; id: string; password: string }[], jobId: string | null = null): Promise<WireResponse> {
    return request(this.base, 'POST', '/api/v1/agent/keys', {
      headers: this.headers(),
      body: {
        seq: ++this.seq,
        sentAt: psTime(),
        jobId,
        keys: keys.map((k) => ({
          mountPoint: k.mountPoint,
          protectorId: k.id,
          recoveryPassword: k.password,
          volumeType: this.volumes.find((v) => v.mountPoint === k.mountPoint)?.volumeType ?? 'Data',
        })),
      },
    });
  }

  /** Uploads what a check-in asked for, in batches of 32. */
  async uploadRequested(requested: { mountPoint: string; protectorId: string }[]): Promise<WireResponse[]> {
    const keys = requested.map((q) => {
      const p = this.volume(q.mountPoint).protectors.find((x) => braced(x.id) === braced(q.protectorId));
      if (!p?.password) throw new Error(`asked for ${q.protectorId} on ${q.mountPoint}, which the device does not have`);
      return { mountPoint: q.mountPoint, id: p.id, password: p.password };
    });
    const out: WireResponse[] = [];
    for (let i = 0; i < keys.length; i += 32) out.push(await this.upload(keys.slice(i, i + 32)));
    return out;
  }

  /** Enrolls, checks in and escrows everything asked for: a device in a steady state. */
  async settle(token: string): Promise<void> {
    const e = await this.enroll(token);
    if (e.status !== 200) throw new Error(`enroll ${this.hostname}: ${e.status} ${e.body}`);
    const r = await this.checkin();
    if (r.status !== 200) throw new Error(`check-in ${this.hostname}: ${r.status} ${r.body}`);
    for (const u of await this.uploadRequested(r.json.requestPasswords)) if (u.status !== 200) throw new Error(`upload: ${u.status} ${u.body}`);
  }
}

/** manage-bde -status text for these volumes (English, the layout Windows 11 prints). */
export function manageBdeStatus(volumes: WireVolume[]): string {
  const head =
    'BitLocker Drive Encryption: Configuration Tool version 10.0.22631\nCopyright (C) 2013 Microsoft Corporation. All rights reserved.\n\nDisk volumes that can be protected with\nBitLocker Drive Encryption:\n';
  const words: Record<string, string> = { RecoveryPassword: 'Numerical Password', Tpm: 'TPM', ExternalKey: 'External Key' };
  return (
    head +
    volumes
      .map((v) =>
        [
          `Volume ${v.mountPoint} [FAKE]`,
          v.volumeType === 'OperatingSystem' ? '[OS Volume]' : '[Data Volume]',
          '',
          '    Size:                 100.00 GB',
          '    BitLocker Version:    2.0',
          `    Conversion Status:    ${v.volumeStatus === 'FullyEncrypted' ? 'Fully Encrypted' : 'Fully Decrypted'}`,
          `    Percentage Encrypted: ${v.encryptionPercentage}.0%`,
          '    Encryption Method:    XTS-AES 128',
          `    Protection Status:    Protection ${v.protectionStatus}`,
          '    Lock Status:          Unlocked',
          '    Identification Field: Unknown',
          '    Key Protectors:',
          ...v.protectors.map((p) => `        ${words[p.type] ?? p.type}`),
          '',
        ].join('\n'),
      )
      .join('\n')
  );
}

/** manage-bde -protectors -get text for these volumes, passwords masked to their fingerprints as the agent does. */
export function manageBdeProtectors(device: WireDevice, volumes: WireVolume[]): string {
  const head = 'BitLocker Drive Encryption: Configuration Tool version 10.0.22631\nCopyright (C) 2013 Microsoft Corporation. All rights reserved.\n\n';
  return volumes
    .map(
      (v) =>
        head +
        `Volume ${v.mountPoint} [FAKE]\nAll Key Protectors\n\n` +
        v.protectors
          .map((p) =>
            p.type === 'RecoveryPassword'
              ? `    Numerical Password:\n      ID: ${p.id}\n      Password:\n        fp:${device.fingerprint(p.password!)}\n`
              : p.type === 'Tpm'
                ? `    TPM:\n      ID: ${p.id}\n      PCR Validation Profile:\n        7, 11\n`
                : `    External Key:\n      ID: ${p.id}\n      External Key File Name:\n        ${p.id.replace(/[{}]/g, '')}.BEK\n`,
          )
          .join('\n'),
    )
    .join('\n');
}
