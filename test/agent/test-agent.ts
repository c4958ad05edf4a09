import { createHmac, randomBytes, randomUUID } from 'node:crypto';

/**
 * A TypeScript stand-in for agent/Keywarden-Agent.ps1: the same protocol (docs/agent-protocol.md),
 * driven against a simulated Windows machine. Tests use it to run the whole loop (enroll → check in
 * → upload on request → reveal → rotate → confirm) without Windows.
 */

export type Transport = (req: { method: 'POST'; url: string; body: unknown; headers?: Record<string, string> }) => Promise<{ status: number; json: any }>;

export type SimProtector = { id: string; type: 'Tpm' | 'RecoveryPassword' | 'ExternalKey' | 'TpmPin'; password?: string };
export type SimVolume = {
  mountPoint: string;
  os: boolean;
  status: 'FullyEncrypted' | 'FullyDecrypted' | 'EncryptionInProgress';
  protection: 'On' | 'Off';
  locked: boolean;
  method: 'XtsAes128' | 'XtsAes256' | 'None';
  percentage: number;
  protectors: SimProtector[];
};

const ENUMS = {
  volumeStatus: ['FullyDecrypted', 'FullyEncrypted', 'EncryptionInProgress', 'DecryptionInProgress', 'EncryptionSuspended', 'DecryptionSuspended'],
  protection: ['Off', 'On', 'Unknown'],
  lock: ['Unlocked', 'Locked'],
  method: ['None', 'Aes128Diffuser', 'Aes256Diffuser', 'Aes128', 'Aes256', 'Hardware', 'XtsAes128', 'XtsAes256'],
  protector: ['Unknown', 'Tpm', 'ExternalKey', 'RecoveryPassword', 'TpmPin'],
};

export function newRecoveryPassword(): string {
  const b = randomBytes(16);
  return Array.from({ length: 8 }, (_, i) => String(b.readUInt16LE(i * 2) * 11).padStart(6, '0')).join('-');
}
const guid = () => `{${randomUUID().toUpperCase()}}`;

/** A Windows machine as far as BitLocker goes: volumes, protectors and an event log. */
export class SimMachine {
  volumes: SimVolume[];
  events: { id: number; time: string; protectorId?: string; volume?: string }[] = [];
  /** dsregcmd's DeviceId, or null when the machine is not Entra joined. */
  entraDeviceId: string | null = null;
  constructor(
    readonly hostname: string,
    readonly serial = `FAKE-SN-${randomBytes(4).toString('hex').toUpperCase()}`,
    readonly smbiosUuid = randomUUID().toUpperCase(),
  ) {
    this.volumes = [
      {
        mountPoint: 'C:',
        os: true,
        status: 'FullyEncrypted',
        protection: 'On',
        locked: false,
        method: 'XtsAes128',
        percentage: 100,
        protectors: [
          { id: guid(), type: 'Tpm' },
          { id: guid(), type: 'RecoveryPassword', password: newRecoveryPassword() },
        ],
      },
    ];
  }
  volume(mp: string): SimVolume {
    const v = this.volumes.find((x) => x.mountPoint.toUpperCase() === mp.toUpperCase());
    if (!v) throw new Error(`no volume ${mp}`);
    return v;
  }
  recoveryPasswords(mp: string): SimProtector[] {
    return this.volume(mp).protectors.filter((p) => p.type === 'RecoveryPassword');
  }
  /** Add-BitLockerKeyProtector -RecoveryPasswordProtector */
  addRecoveryPassword(mp: string): SimProtector {
    const p: SimProtector = { id: guid(), type: 'RecoveryPassword', password: newRecoveryPassword() };
    this.volume(mp).protectors.push(p);
    this.events.push({ id: 775, time: new Date().toISOString(), protectorId: p.id, volume: mp });
    return p;
  }
  /** Remove-BitLockerKeyProtector: refuses to remove the last recovery password, like the real agent must. */
  removeProtector(mp: string, id: string): void {
    const v = this.volume(mp);
    const target = v.protectors.find((p) => sameGuid(p.id, id));
    if (!target) return;
    if (target.type === 'RecoveryPassword' && this.recoveryPasswords(mp).length <= 1) throw new Error('would leave the volume without a recovery password');
    v.protectors = v.protectors.filter((p) => p !== target);
    this.events.push({ id: 776, time: new Date().toISOString(), protectorId: target.id, volume: mp });
  }
}

export const sameGuid = (a: string, b: string) => a.replace(/[{}]/g, '').toLowerCase() === b.replace(/[{}]/g, '').toLowerCase();

export type FailPoint = 'after-add-protector' | 'before-remove-protector' | null;

export class TestAgent {
  deviceId?: string;
  credential?: string;
  salt?: string;
  /** The server's answer at enrollment: this device waits for an admin to link it to a known device. */
  pendingApproval = false;
  seq = 0;
  /** The last body sent, for replay tests. */
  lastBody?: { url: string; body: any };
  failPoint: FailPoint = null;
  log: string[] = [];

  constructor(
    private readonly send: Transport,
    readonly machine: SimMachine,
    readonly style: 'ps51' | 'ps7' = 'ps7',
  ) {}

  private auth() {
    return { authorization: `Bearer ${this.credential}` };
  }

  fingerprint(password: string): string {
    return createHmac('sha256', Buffer.from(this.salt!, 'base64')).update(password, 'utf8').digest('hex');
  }

  private enumValue(kind: keyof typeof ENUMS, name: string): string | number {
    return this.style === 'ps51' ? ENUMS[kind].indexOf(name) : name;
  }

  /** Like Invoke-Enrollment: the credential it holds (agent.json) goes along as proof of the machine. */
  async enroll(token: string): Promise<{ status: number; json: any }> {
    const r = await this.send({
      method: 'POST',
      url: '/api/v1/agent/enroll',
      body: {
        enrollmentToken: token,
        agentVersion: 'test-1.0',
        device: {
          hostname: this.machine.hostname,
          domain: 'WORKGROUP',
          domainJoined: false,
          serialNumber: this.machine.serial,
          manufacturer: 'FAKE',
          model: 'Simulator',
          smbiosUuid: this.machine.smbiosUuid,
          entraDeviceId: this.machine.entraDeviceId,
        },
        ...(this.credential ? { previousCredential: this.credential } : {}),
      },
    });
    if (r.status === 200) {
      this.deviceId = r.json.deviceId;
      this.credential = r.json.credential;
      this.salt = r.json.fingerprintSalt;
      this.pendingApproval = r.json.pendingApproval === true;
      this.seq = 0;
    }
    return r;
  }

  checkinBody(jobResults: unknown[] = []) {
    const m = this.machine;
    return {
      seq: ++this.seq,
      sentAt: new Date().toISOString(),
      agentVersion: 'test-1.0',
      device: {
        hostname: m.hostname,
        domain: 'WORKGROUP',
        domainJoined: false,
        serialNumber: m.serial,
        manufacturer: 'FAKE',
        model: 'Simulator',
        smbiosUuid: m.smbiosUuid,
        os: { caption: 'Microsoft Windows 11 Pro', version: '10.0.22631', build: '22631' },
        entra: m.entraDeviceId ? { joinType: 'AzureAdJoined', deviceId: m.entraDeviceId, tenantId: null } : { joinType: 'NotJoined', deviceId: null, tenantId: null },
        adComputerName: null,
        tpm: { present: true, ready: true, enabled: true, activated: true, specVersion: '2.0, 0, 1.59', manufacturer: 'FAKE' },
        secureBoot: true,
      },
      volumes: m.volumes.map((v) => ({
        mountPoint: v.mountPoint,
        volumeType: this.style === 'ps51' ? (v.os ? 0 : 1) : v.os ? 'OperatingSystem' : 'Data',
        volumeStatus: v.locked ? null : this.enumValue('volumeStatus', v.status),
        protectionStatus: this.enumValue('protection', v.protection),
        lockStatus: this.enumValue('lock', v.locked ? 'Locked' : 'Unlocked'),
        encryptionMethod: this.enumValue('method', v.method),
        encryptionPercentage: v.locked ? null : v.percentage,
        keyProtectors: v.protectors.map((p) => ({
          id: p.id,
          type: this.enumValue('protector', p.type),
          ...(p.type === 'RecoveryPassword' && !v.locked ? { fingerprint: this.fingerprint(p.password!) } : {}),
        })),
      })),
      manageBde: null,
      events: m.events.splice(0),
      jobResults,
    };
  }

  async post(url: string, body: any) {
    this.lastBody = { url, body };
    return this.send({ method: 'POST', url, body, headers: this.auth() });
  }

  async upload(keys: { mountPoint: string; protector: SimProtector }[], jobId: string | null = null) {
    const body = {
      seq: ++this.seq,
      sentAt: new Date().toISOString(),
      jobId,
      keys: keys.map((k) => ({ mountPoint: k.mountPoint, protectorId: k.protector.id, recoveryPassword: k.protector.password!, volumeType: this.machine.volume(k.mountPoint).os ? 'OperatingSystem' : 'Data' })),
    };
    return this.post('/api/v1/agent/keys', body);
  }

  /**
   * One scheduled run of the agent: check in, upload what was asked for, run the jobs, and check
   * in again to report their results. Throws at a fail point, like a killed process.
   */
  async run(): Promise<{ status: number; checkin: any; jobResults: any[] }> {
    const r = await this.post('/api/v1/agent/checkin', this.checkinBody());
    if (r.status !== 200) return { status: r.status, checkin: r.json, jobResults: [] };
    const requested = r.json.requestPasswords as { mountPoint: string; protectorId: string }[];
    if (requested.length) {
      const keys = requested.map((q) => ({ mountPoint: q.mountPoint, protector: this.machine.recoveryPasswords(q.mountPoint).find((p) => sameGuid(p.id, q.protectorId))! })).filter((k) => k.protector);
      if (keys.length) {
        const up = await this.upload(keys);
        this.log.push(`uploaded ${keys.length}: ${up.status}`);
      }
    }
    const results: any[] = [];
    for (const job of r.json.jobs as { id: string; kind: string; mountPoint: string; protectorId: string }[]) {
      results.push(await this.runJob(job));
    }
    if (results.length) {
      const again = await this.post('/api/v1/agent/checkin', this.checkinBody(results));
      return { status: again.status, checkin: again.json, jobResults: results };
    }
    return { status: r.status, checkin: r.json, jobResults: results };
  }

  private async runJob(job: { id: string; kind: string; mountPoint: string; protectorId: string }) {
    if (job.kind === 'rotate') {
      const old = job.protectorId;
      // A spare from an interrupted earlier attempt is used instead of adding yet another one.
      let spare = this.machine.recoveryPasswords(job.mountPoint).find((p) => !sameGuid(p.id, old));
      if (!spare) {
        spare = this.machine.addRecoveryPassword(job.mountPoint);
        if (this.failPoint === 'after-add-protector') throw new Error('agent killed after adding a protector');
      }
      const up = await this.upload([{ mountPoint: job.mountPoint, protector: spare }], job.id);
      const status = up.json?.stored?.[0]?.status;
      if (up.status !== 200 || !['stored', 'duplicate'].includes(status)) {
        return { jobId: job.id, status: 'failed', detail: `the server did not confirm the new key (${up.status} ${status ?? ''})` };
      }
      if (this.failPoint === 'before-remove-protector') throw new Error('agent killed before removing the old protector');
      this.machine.removeProtector(job.mountPoint, old);
      return { jobId: job.id, status: 'succeeded', newProtectorId: spare.id, removedProtectorId: old };
    }
    if (job.kind === 'backup') {
      const p = this.machine.recoveryPasswords(job.mountPoint).find((x) => sameGuid(x.id, job.protectorId));
      if (!p) return { jobId: job.id, status: 'failed', detail: 'no such protector' };
      const up = await this.upload([{ mountPoint: job.mountPoint, protector: p }], job.id);
      return { jobId: job.id, status: up.status === 200 ? 'succeeded' : 'failed' };
    }
    return { jobId: job.id, status: 'succeeded', detail: `${job.kind} simulated` };
  }
}

/** A transport over Fastify's inject(), for tests that drive the app in-process. */
export const injectTransport =
  (app: { inject(opts: { method: 'POST'; url: string; payload: object; headers?: Record<string, string> }): Promise<{ statusCode: number; body: string; json(): unknown }> }): Transport =>
  async ({ method, url, body, headers }) => {
    const r = await app.inject({ method, url, payload: body as object, headers });
    let json: unknown;
    try {
      json = r.json();
    } catch {
      json = r.body;
    }
    return { status: r.statusCode, json };
  };
