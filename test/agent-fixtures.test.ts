import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';

const DIR = path.resolve(import.meta.dirname, 'fixtures', 'agent');
const API = '/api/v1';

/**
 * Recorded check-in bodies in the shapes Windows produces (PowerShell 5.1 integers, PowerShell 7
 * names, a locked volume, the manage-bde fallback in English and German) go through the real
 * endpoint; the server must read each into the same canonical volume state. These are the shapes
 * of agents before 1.1.0 (BitLocker module and ConvertTo-Json), which stay in the field until
 * they update; the current script's own bytes are tested below.
 */
describe(`recorded agent check-ins on ${ENGINE}`, () => {
  let t: TestApp;
  let owner: Session;
  let token: string;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    const clientId = (await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: owner.headers, payload: { name: 'Contoso' } })).json().id;
    token = (await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId } })).json().token;
  });
  afterAll(() => t.close());

  async function checkIn(file: string) {
    const body = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'));
    const enrolled = await t.app.inject({
      method: 'POST',
      url: `${API}/agent/enroll`,
      payload: {
        enrollmentToken: token,
        device: { hostname: body.device.hostname, serialNumber: body.device.serialNumber, smbiosUuid: body.device.smbiosUuid },
      },
    });
    expect(enrolled.statusCode).toBe(200);
    const { credential, deviceId } = enrolled.json();
    // Fresh sequence and clock; everything else exactly as recorded.
    const res = await t.app.inject({
      method: 'POST',
      url: `${API}/agent/checkin`,
      headers: { authorization: `Bearer ${credential}` },
      payload: { ...body, seq: 1, sentAt: new Date().toISOString(), jobResults: [] },
    });
    expect(res.statusCode, res.body).toBe(200);
    const device = (await t.app.inject({ method: 'GET', url: `${API}/devices/${deviceId}`, headers: owner.headers })).json();
    const volumes = await t.container.database.db.selectFrom('volumes').selectAll().where('device_id', '=', deviceId).orderBy('mount_point').execute();
    const findings = (await t.app.inject({ method: 'GET', url: `${API}/findings?deviceId=${deviceId}&open=true`, headers: owner.headers })).json();
    return { res: res.json(), device, volumes, findings: findings.map((f: { kind: string; mountPoint: string }) => `${f.kind}:${f.mountPoint}`).sort() };
  }

  it('PowerShell 5.1 integers and PowerShell 7 names give the same state', async () => {
    const a = await checkIn('checkin-ps51-integers.json');
    const b = await checkIn('checkin-ps7-names.json');
    const state = (v: {
      mount_point: string | null;
      volume_type: string;
      volume_status: string | null;
      protection_status: string | null;
      lock_status: string | null;
      encryption_method: string | null;
      encryption_percentage: number | null;
    }) => [v.mount_point, v.volume_type, v.volume_status, v.protection_status, v.lock_status, v.encryption_method, v.encryption_percentage].join('|');
    expect(a.volumes.map(state)).toEqual(b.volumes.map(state));
    expect(a.volumes.map(state)[0]).toBe('C:|os|FullyEncrypted|On|Unlocked|XtsAes128|100');
    expect(a.volumes.map(state)[1]).toMatch(/^D:\|fixed\|FullyEncrypted\|On\|Unlocked\|/);
    // Both recovery passwords are unknown to the vault: asked for, and open as findings until uploaded.
    expect(a.res.requestPasswords.map((r: { mountPoint: string }) => r.mountPoint).sort()).toEqual(['C:', 'D:']);
    expect(a.findings).toEqual(['unescrowed_key:C:', 'unescrowed_key:D:']);
    // The facts the agent reported are kept and shown with the device.
    expect(a.device.facts).toMatchObject({ os: { caption: 'Microsoft Windows 11 Enterprise' }, tpm: { present: true }, secureBoot: true });
    expect(a.device.lastCheckinAt).toEqual(expect.any(String));
  });

  it('a locked volume is recorded without asking for passwords it cannot show', async () => {
    const r = await checkIn('checkin-locked-volume.json');
    const locked = r.volumes.find((v) => v.lock_status === 'Locked')!;
    expect(locked).toMatchObject({ volume_status: null, protection_status: 'Unknown', encryption_percentage: null });
    expect(r.res.requestPasswords.every((q: { mountPoint: string }) => q.mountPoint !== locked.mount_point)).toBe(true);
  });

  it('an encrypted volume without a recovery password is a finding; an unencrypted one is not', async () => {
    const r = await checkIn('checkin-unprotected.json');
    expect(r.res.requestPasswords).toEqual([]);
    expect(r.findings).toEqual(['no_recovery_password:C:']);
  });

  it.each(['checkin-manage-bde.json', 'checkin-manage-bde-de.json'])('the manage-bde fallback (%s) is read by structure', async (file) => {
    const r = await checkIn(file);
    expect(r.volumes.length).toBeGreaterThan(0);
    const c = r.volumes.find((v) => v.mount_point === 'C:')!;
    expect(c).toMatchObject({ volume_type: 'os', volume_status: 'FullyEncrypted', protection_status: 'On', lock_status: 'Unlocked' });
    expect(r.res.requestPasswords.some((q: { mountPoint: string }) => q.mountPoint === 'C:')).toBe(true);
  });

  it('recorded events are accepted and stored once', async () => {
    const events = JSON.parse(fs.readFileSync(path.join(DIR, 'events-sample.json'), 'utf8'));
    const body = JSON.parse(fs.readFileSync(path.join(DIR, 'checkin-ps7-names.json'), 'utf8'));
    const enrolled = (
      await t.app.inject({ method: 'POST', url: `${API}/agent/enroll`, payload: { enrollmentToken: token, device: { hostname: 'FAKE-EVENTS' } } })
    ).json();
    const send = (seq: number) =>
      t.app.inject({
        method: 'POST',
        url: `${API}/agent/checkin`,
        headers: { authorization: `Bearer ${enrolled.credential}` },
        payload: { ...body, device: { ...body.device, hostname: 'FAKE-EVENTS' }, seq, sentAt: new Date().toISOString(), events, jobResults: [] },
      });
    expect((await send(1)).statusCode).toBe(200);
    expect((await send(2)).statusCode).toBe(200);
    const stored = await t.container.database.db.selectFrom('device_events').select('event_id').where('device_id', '=', enrolled.deviceId).execute();
    expect(stored.map((e) => e.event_id).sort()).toEqual(events.map((e: { id: number }) => e.id).sort());
  });
});

const WIRE = path.join(DIR, 'wire');
/** The salt the recording was made with (make-wire-fixtures.mjs SALT; agent/README.md's test vector). */
const WIRE_SALT = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const C_RP = '{7A5E2C91-0D3B-4F68-B2A4-91C0E6D8F302}';
const D_RP = '{B84D17F0-5C2A-4E93-8D61-3F7A0C9E2B03}';
const NO_LETTER = '\\\\?\\Volume{6d0f3b2a-94c1-4e7d-8a35-0b9e2f71c605}\\';

/** `Get-SentAt`'s format: UTC, 7 fractional digits, Z. */
const roundTripNow = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$10000Z');

/**
 * A fixture's bytes with exactly one JSON member's value replaced (seq, sentAt, the enrollment
 * token): every other byte goes to the server as the script wrote it.
 */
function withMember(bytes: Buffer, name: string, value: string | number): Buffer {
  const text = bytes.toString('utf8');
  const pattern = new RegExp(`"${name}":("[^"]*"|\\d+)`, 'g');
  expect(text.match(pattern), `${name} occurs once`).toHaveLength(1);
  return Buffer.from(text.replace(pattern, `"${name}":${JSON.stringify(value)}`), 'utf8');
}

/**
 * The current script's own wire format (test/fixtures/agent/wire/, see its README): the bytes
 * ConvertTo-AgentJson writes for an enrollment, a check-in and a key upload, sent over HTTP with
 * the script's headers, then what the vault stored.
 */
describe(`the current script's wire format through the real endpoints on ${ENGINE}`, () => {
  let t: TestApp;
  let owner: Session;
  let base: string;
  let token: string;

  beforeAll(async () => {
    t = await createTestApp({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '1000' });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    const clientId = (await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: owner.headers, payload: { name: 'Contoso' } })).json().id;
    token = (await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId } })).json().token;
  });
  afterAll(() => t.close());

  const fixture = (name: string) => fs.readFileSync(path.join(WIRE, name));

  /** What Invoke-AgentApi sends: a byte body, its Content-Type and User-Agent, the bearer credential. */
  async function post(url: string, body: Buffer, credential?: string) {
    const res = await fetch(`${base}${API}${url}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'user-agent': 'Keywarden-Agent/1.2.0',
        ...(credential ? { authorization: `Bearer ${credential}` } : {}),
      },
      body: new Uint8Array(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: () => JSON.parse(text) };
  }

  async function openFindings(deviceId: string) {
    const findings = (await t.app.inject({ method: 'GET', url: `${API}/findings?deviceId=${deviceId}&open=true`, headers: owner.headers })).json();
    return findings.map((f: { kind: string; mountPoint: string | null }) => `${f.kind}:${f.mountPoint}`).sort();
  }

  it("the fixtures are the script serializer's output: compact ASCII JSON, names not numbers, 7-digit UTC times", () => {
    for (const name of ['enroll-ps51.json', 'checkin-ps51-names.json', 'keys-ps51.json']) {
      const bytes = fixture(name);
      expect(
        [...bytes].every((b) => b >= 0x20 && b <= 0x7e),
        `${name} is printable ASCII`,
      ).toBe(true);
      const text = bytes.toString('utf8');
      // ConvertTo-AgentJson writes no whitespace between tokens.
      expect(JSON.stringify(JSON.parse(text)), name).toBe(text);
    }
    const checkin = JSON.parse(fixture('checkin-ps51-names.json').toString('utf8'));
    const enumFields = ['volumeType', 'volumeStatus', 'protectionStatus', 'lockStatus', 'encryptionMethod'];
    for (const v of checkin.volumes) {
      for (const f of enumFields) expect(typeof v[f], `${v.mountPoint} ${f}`).toBe('string');
      for (const p of v.keyProtectors) {
        expect(typeof p.type).toBe('string');
        expect(p.id).toMatch(/^\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$/);
      }
    }
    for (const time of [checkin.sentAt, ...checkin.events.map((e: { time: string }) => e.time)])
      expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/);
  });

  it('the fixtures follow the script: member order, enum vocabularies, version and headers (re-generate them when this fails)', () => {
    const script = fs.readFileSync(path.resolve(import.meta.dirname, '..', 'agent', 'Keywarden-Agent.ps1'), 'utf8');
    const json = (name: string) => JSON.parse(fixture(name).toString('utf8'));
    const enroll = json('enroll-ps51.json');
    const checkin = json('checkin-ps51-names.json');
    const keys = json('keys-ps51.json');
    const [c, d] = checkin.volumes;

    const version = /^\$AgentVersion\s*=\s*'([^']+)'/m.exec(script)?.[1];
    expect(version).toBe('1.2.0');
    for (const body of [enroll, checkin]) expect(body.agentVersion).toBe(version);
    const api = functionText(script, 'Invoke-AgentApi');
    expect(api).toContain('$json = ConvertTo-AgentJson $Body');
    expect(api).toContain('Body            = [System.Text.Encoding]::UTF8.GetBytes($json)');
    expect(api).toContain("ContentType     = 'application/json; charset=utf-8'");
    expect(api).toContain("UserAgent       = 'Keywarden-Agent/' + $AgentVersion");

    expect(Object.keys(enroll)).toEqual(orderedKeys(script, 'Invoke-Enrollment', 0));
    expect(Object.keys(enroll.device)).toEqual(orderedKeys(script, 'Invoke-Enrollment', 1));
    expect(Object.keys(checkin)).toEqual(orderedKeys(script, 'Send-Checkin', 0));
    expect(Object.keys(checkin.device)).toEqual(orderedKeys(script, 'Get-CheckinDevice', 0));
    expect(Object.keys(checkin.device.os)).toEqual(orderedKeys(script, 'Get-OsFacts', 0));
    expect(Object.keys(checkin.device.entra)).toEqual(orderedKeys(script, 'Get-EntraFacts', 0));
    expect(Object.keys(checkin.device.tpm)).toEqual(orderedKeys(script, 'Get-TpmFacts', 0));
    expect(Object.keys(c)).toEqual(orderedKeys(script, 'ConvertTo-VolumePayload', 1));
    // Protectors: [ordered]@{ id; type }, and $item['fingerprint'] for a readable recovery password.
    expect(orderedKeys(script, 'ConvertTo-VolumePayload', 0)).toEqual(['id', 'type']);
    expect(functionText(script, 'ConvertTo-VolumePayload')).toContain("$item['fingerprint'] = $fingerprint");
    for (const p of [...c.keyProtectors, ...d.keyProtectors]) {
      expect(Object.keys(p)).toEqual(p.type === 'RecoveryPassword' ? ['id', 'type', 'fingerprint'] : ['id', 'type']);
    }
    for (const e of checkin.events) expect(Object.keys(e)).toEqual(orderedKeys(script, 'ConvertTo-EventPayload', 1));
    expect(Object.keys(keys)).toEqual(orderedKeys(script, 'Send-Keys', 0));
    for (const k of keys.keys) expect(Object.keys(k)).toEqual(orderedKeys(script, 'New-KeyItem', 0));

    // Every enum value is one of the names the script maps Win32_EncryptableVolume's numbers to.
    const names = (variable: string) => {
      const m = new RegExp(`^\\$script:${variable}\\s*=\\s*@\\(([^)]*)\\)`, 'm').exec(script);
      expect(m, variable).not.toBeNull();
      return [...m![1]!.matchAll(/'([^']+)'/g)].map((x) => x[1]);
    };
    for (const v of checkin.volumes) {
      expect(['OperatingSystem', 'Data']).toContain(v.volumeType);
      expect(names('ConversionStatusNames')).toContain(v.volumeStatus);
      expect(names('ProtectionStatusNames')).toContain(v.protectionStatus);
      expect(names('LockStatusNames')).toContain(v.lockStatus);
      expect(names('EncryptionMethodNames')).toContain(v.encryptionMethod);
      for (const p of v.keyProtectors) expect(names('KeyProtectorTypeNames')).toContain(p.type);
    }
  });

  it('enrolls, checks in, uploads the requested keys, and the vault holds what the script reported', async () => {
    // Enrollment: the script's body with this test's token in place of the placeholder.
    const enrolled = await post('/agent/enroll', withMember(fixture('enroll-ps51.json'), 'enrollmentToken', token));
    expect(enrolled.status, enrolled.text).toBe(200);
    const { credential, deviceId, pendingApproval } = enrolled.json();
    expect(pendingApproval).toBe(false);
    // The recording was made against a server that handed out WIRE_SALT; the vault chose its own.
    // Give this device the recording's salt so that the fingerprints in the bytes are the ones
    // the script computed from the passwords it uploads.
    await t.container.database.db.updateTable('agent_credentials').set({ fingerprint_salt: WIRE_SALT }).where('device_id', '=', deviceId).execute();

    const checkinBytes = (seq: number) => withMember(withMember(fixture('checkin-ps51-names.json'), 'seq', seq), 'sentAt', roundTripNow());
    const first = await post('/agent/checkin', checkinBytes(1), credential);
    expect(first.status, first.text).toBe(200);
    const answer = first.json();
    expect(answer.requestPasswords.map((r: { mountPoint: string; protectorId: string }) => `${r.mountPoint} ${r.protectorId.toUpperCase()}`).sort()).toEqual([
      `C: ${C_RP}`,
      `D: ${D_RP}`,
    ]);
    expect(answer.jobs).toEqual([]);

    // Volumes and protectors, in the vault's vocabulary, from the names the script sent.
    const volumes = await t.container.database.db
      .selectFrom('volumes')
      .select(['id', 'mount_point', 'volume_type', 'volume_status', 'protection_status', 'lock_status', 'encryption_method', 'encryption_percentage'])
      .where('device_id', '=', deviceId)
      .orderBy('mount_point')
      .execute();
    expect(
      volumes.map((v) =>
        [v.mount_point, v.volume_type, v.volume_status, v.protection_status, v.lock_status, v.encryption_method, v.encryption_percentage].join('|'),
      ),
    ).toEqual([
      'C:|os|FullyEncrypted|On|Unlocked|XtsAes128|100',
      'D:|fixed|FullyEncrypted|On|Unlocked|XtsAes128|100',
      `${NO_LETTER}|fixed|FullyDecrypted|Off|Unlocked|None|0`,
    ]);
    const latestProtectors = async (volumeId: string) => {
      const row = await t.container.database.db
        .selectFrom('volume_states')
        .select('protectors')
        .where('volume_id', '=', volumeId)
        .orderBy('recorded_at', 'desc')
        .executeTakeFirstOrThrow();
      return (JSON.parse(row.protectors ?? '[]') as { id: string; type: unknown }[]).map(
        (p) =>
          `${String(p.id)
            .toUpperCase()
            .replace(/^\{?(.*?)\}?$/, '{$1}')} ${String(p.type)}`,
      );
    };
    expect(await latestProtectors(volumes[0]!.id)).toEqual(['{3F1C6A2E-8B4D-4E57-9A10-2C6E5B7D9F01} Tpm', `${C_RP} RecoveryPassword`]);
    expect(await latestProtectors(volumes[1]!.id)).toEqual([`${D_RP} RecoveryPassword`, '{E29B6C43-7F18-4A05-9C3E-D5B1A8F60E04} ExternalKey']);
    expect(await latestProtectors(volumes[2]!.id)).toEqual([]);

    // Events, with the protector IDs the script took from ProtectorGUID.
    const events = await t.container.database.db
      .selectFrom('device_events')
      .select(['event_id', 'protector_id', 'mount_point'])
      .where('device_id', '=', deviceId)
      .orderBy('event_id')
      .execute();
    expect(
      events.map(
        (e) =>
          `${e.event_id} ${String(e.protector_id)
            .toUpperCase()
            .replace(/^\{?(.*?)\}?$/, '{$1}')} ${e.mount_point}`,
      ),
    ).toEqual([`775 ${D_RP} D:`, `845 ${C_RP} C:`]);

    // Facts as the script gathered them.
    const device = (await t.app.inject({ method: 'GET', url: `${API}/devices/${deviceId}`, headers: owner.headers })).json();
    expect(device.facts).toMatchObject({
      os: { caption: 'Microsoft Windows 11 Enterprise', build: '26100' },
      entra: { joinType: 'HybridJoined' },
      tpm: { present: true, ready: true },
      secureBoot: true,
    });
    // Agent 1.2.0's primary user (the Entra join account) fills the device's empty one.
    expect(device.primaryUser).toBe('fake.user11@fakecorp.example.test');
    // Both passwords are unknown to the vault until uploaded; the unencrypted volume without a
    // letter is no finding under the default policy.
    expect(await openFindings(deviceId)).toEqual(['unescrowed_key:C:', 'unescrowed_key:D:']);

    // The upload Send-RequestedPasswords makes for that answer.
    const upload = await post('/agent/keys', withMember(withMember(fixture('keys-ps51.json'), 'seq', 2), 'sentAt', roundTripNow()), credential);
    expect(upload.status, upload.text).toBe(200);
    expect(
      upload
        .json()
        .stored.map((s: { protectorId: string; status: string }) => `${s.protectorId.toUpperCase()} ${s.status}`)
        .sort(),
    ).toEqual([`${C_RP} stored`, `${D_RP} stored`].sort());

    // Escrowed, readable, and tied to the protectors and volumes the check-in reported.
    const keys = await t.container.database.db
      .selectFrom('recovery_keys')
      .select(['id', 'key_id', 'volume_id', 'state'])
      .where('device_id', '=', deviceId)
      .orderBy('key_id')
      .execute();
    expect(
      keys.map((k) => [
        String(k.key_id)
          .toUpperCase()
          .replace(/^\{?(.*?)\}?$/, '{$1}'),
        k.volume_id,
        k.state,
      ]),
    ).toEqual([
      [C_RP, volumes[0]!.id, 'active'],
      [D_RP, volumes[1]!.id, 'active'],
    ]);
    const uploaded = JSON.parse(fixture('keys-ps51.json').toString('utf8')).keys as { protectorId: string; recoveryPassword: string }[];
    for (const key of uploaded) {
      const reveal = await t.app.inject({
        method: 'POST',
        url: `${API}/keys/${key.protectorId.replace(/[{}]/g, '')}/reveal`,
        headers: owner.headers,
        payload: { reason: 'lost-pin', ticket: 'T-1' },
      });
      expect(reveal.statusCode, reveal.body).toBe(200);
      expect(reveal.json().key.recoveryPassword).toBe(key.recoveryPassword);
    }

    // The next hourly run sends the same report: the fingerprints the script computed match the
    // escrowed passwords, so nothing is asked again and no key finding stays open.
    const second = await post('/agent/checkin', checkinBytes(3), credential);
    expect(second.status, second.text).toBe(200);
    expect(second.json().requestPasswords).toEqual([]);
    expect(await openFindings(deviceId)).toEqual([]);
  });
});

/** The text of `function Name { … }` in the script: from its line to the next `}` in column 0. */
function functionText(script: string, name: string): string {
  const start = script.indexOf(`\nfunction ${name} {`);
  expect(start, `function ${name} in the script`).toBeGreaterThanOrEqual(0);
  const end = script.indexOf('\n}', start + 1);
  return script.slice(start, end + 2);
}

/**
 * The member names of the n-th `[ordered]@{ … }` in a function, in order: names followed by `=`
 * at the top level of the literal (after `{`, `;` or a line break), skipping strings and nested
 * brackets.
 */
function orderedKeys(script: string, name: string, n: number): string[] {
  const text = functionText(script, name);
  let at = -1;
  for (let i = 0; i <= n; i++) {
    at = text.indexOf('[ordered]@{', at + 1);
    expect(at, `[ordered]@{ number ${n} in ${name}`).toBeGreaterThanOrEqual(0);
  }
  const keys: string[] = [];
  let depth = 0;
  let entryStart = true;
  for (let i = at + '[ordered]@{'.length; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "'" || ch === '"') {
      // PowerShell doubles a quote inside a string of the same kind.
      i = text.indexOf(ch, i + 1);
      while (text[i + 1] === ch) i = text.indexOf(ch, i + 2);
      entryStart = false;
      continue;
    }
    if ('({['.includes(ch)) depth++;
    else if (')}]'.includes(ch)) {
      if (depth === 0) break;
      depth--;
    } else if (depth === 0 && (ch === ';' || ch === '\n')) entryStart = true;
    else if (depth === 0 && entryStart && /\w/.test(ch)) {
      const m = /^(\w+)\s*=(?!=)/.exec(text.slice(i));
      if (m) keys.push(m[1]!);
      entryStart = false;
    }
  }
  return keys;
}
