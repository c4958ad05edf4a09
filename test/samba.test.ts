/**
 * Self-test of the throwaway Samba AD DC harness (test/samba/samba-dc.ts, see test/samba/README.md).
 * Needs root + `apt-get install samba-ad-dc samba-ad-provision`; skipped with the reason otherwise,
 * and FAILS when CI is set and Samba is unavailable.
 */
import { Client, EqualityFilter, InvalidCredentialsError, type Entry } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import {
  addRecoveryObject,
  deleteComputer,
  escapeRdnValue,
  formatCreated,
  guidToWindowsBytes,
  recoveryObjectCn,
  sambaAvailable,
  seedDirectory,
  startSambaDc,
  windowsBytesToGuid,
  type SambaDc,
  type SeedComputer,
} from './samba/samba-dc.js';

// Reference test vector (docs: bitlocker-domain.md §3.3).
const VECTOR_ID = '4290b6c0-b17a-497a-8552-272cc30e80d4';
const VECTOR_BYTES = 'c0b690427ab17a498552272cc30e80d4';

describe('GUID byte order (Windows layout)', () => {
  it('matches the reference vector', () => {
    expect(guidToWindowsBytes(VECTOR_ID).toString('hex')).toBe(VECTOR_BYTES);
    expect(windowsBytesToGuid(Buffer.from(VECTOR_BYTES, 'hex'))).toBe(VECTOR_ID);
  });

  it('accepts braces and upper case, round-trips random GUIDs', () => {
    expect(guidToWindowsBytes(`{${VECTOR_ID.toUpperCase()}}`).toString('hex')).toBe(VECTOR_BYTES);
    // cauliflowervest vector: bytes 64 30 27 a3 b8 5b 73 4a 92 81 … ⇒ A3273064-5BB8-4A73-9281-…
    expect(windowsBytesToGuid(Buffer.from('643027a3b85b734a9281000000000000', 'hex'))).toBe('a3273064-5bb8-4a73-9281-000000000000');
    for (let i = 0; i < 50; i++) {
      const id = randomKeyId();
      const b = guidToWindowsBytes(id);
      expect(b).toHaveLength(16);
      expect(windowsBytesToGuid(b)).toBe(id);
      expect(b.toString('hex')).not.toBe(id.replace(/-/g, '')); // the naive hex dump is wrong
    }
  });

  it('rejects malformed input', () => {
    expect(() => guidToWindowsBytes('4290b6c0-b17a-497a-8552')).toThrow();
    expect(() => windowsBytesToGuid(Buffer.alloc(15))).toThrow();
  });

  it('builds the 63-character recovery CN with the UTC offset', () => {
    const created = new Date('2011-01-06T01:30:35Z');
    expect(recoveryObjectCn('19874adc-1b13-3e60-ba01-bbfafe18c794', created, -480)).toBe('2011-01-05T17:30:35-08:00{19874ADC-1B13-3E60-BA01-BBFAFE18C794}');
    expect(formatCreated(created, 330)).toBe('2011-01-06T07:00:35+05:30');
    expect(recoveryObjectCn(VECTOR_ID, created)).toHaveLength(63);
    expect(escapeRdnValue('2011-01-06T07:00:35+05:30{X}')).toBe('2011-01-06T07:00:35\\+05:30{X}');
  });
});

const avail = await sambaAvailable();
const unavailable = avail.ok ? undefined : avail.reason;

it.runIf(unavailable !== undefined && !!process.env.CI)('Samba AD DC harness is available (required when CI is set)', () => {
  throw new Error(`Samba AD DC harness unavailable on CI: ${unavailable}`);
});

describe.skipIf(!avail.ok)(avail.ok ? 'Samba AD DC harness' : `Samba AD DC harness (skipped: ${unavailable})`, () => {
  const ATTRS = ['msFVE-RecoveryGuid', 'msFVE-RecoveryPassword', 'msFVE-VolumeGuid', 'name', 'whenCreated'];
  const BINARY = ['msFVE-RecoveryGuid', 'msFVE-VolumeGuid'];
  const OFFSETS = [60, -480, 0, 330, 120, -300];
  let dc: SambaDc;
  let computers: SeedComputer[];
  let computerDns: Map<string, string>;
  /** key id → expected values */
  const expected = new Map<string, { password: string; volumeGuid?: string; computer: string; cn: string }>();

  beforeAll(async () => {
    dc = await startSambaDc();
    const base = Date.UTC(2024, 2, 1, 8, 0, 0);
    computers = Array.from({ length: 20 }, (_, i) => ({
      name: `PC-${String(i).padStart(3, '0')}`,
      os: i % 2 ? 'Windows 11 Enterprise' : 'Windows 10 Pro',
      keys: Array.from({ length: 1 + (i % 3) }, (_, j) => ({
        id: i === 0 && j === 0 ? VECTOR_ID : randomKeyId(),
        password: randomRecoveryPassword(),
        volumeGuid: j === 1 ? undefined : randomKeyId(),
        created: new Date(base + i * 86_400_000 + j * 61_000),
        tzOffsetMinutes: OFFSETS[(i + j) % OFFSETS.length]!,
      })),
    }));
    for (const c of computers)
      for (const k of c.keys)
        expected.set(k.id, { password: k.password, volumeGuid: k.volumeGuid, computer: c.name, cn: recoveryObjectCn(k.id, k.created, k.tzOffsetMinutes) });
    const t = Date.now();
    ({ computerDns } = await seedDirectory(dc, { ou: 'OU=Contoso,OU=Clients', computers }));
    console.info(`samba harness: ${dc.ldapsUrl} start ${JSON.stringify(dc.timings)}, seeded 20 computers + ${expected.size} keys in ${Date.now() - t} ms`);
  });

  afterAll(async () => {
    await dc?.stop();
  });

  async function ldaps(who: { upn: string; password: string }): Promise<Client> {
    const c = new Client({ url: dc.ldapsUrl, tlsOptions: { ca: [dc.caCertPem] } });
    await c.bind(who.upn, who.password);
    return c;
  }

  async function startTls(who: { bindDn: string; password: string }): Promise<Client> {
    // No tlsOptions here: in ldapts any tlsOptions means implicit TLS, even on ldap://.
    const c = new Client({ url: dc.ldapUrl });
    await c.startTLS({ ca: [dc.caCertPem] });
    await c.bind(who.bindDn, who.password);
    return c;
  }

  async function recoveryObjects(c: Client, base = dc.baseDn): Promise<Entry[]> {
    const { searchEntries } = await c.search(base, {
      scope: 'sub',
      filter: '(objectClass=msFVE-RecoveryInformation)',
      attributes: ATTRS,
      explicitBufferAttributes: BINARY,
      paged: { pageSize: 7 },
    });
    return searchEntries;
  }

  function checkAll(entries: Entry[]): void {
    expect(entries).toHaveLength(expected.size);
    const seen = new Set<string>();
    for (const e of entries) {
      const guid = e['msFVE-RecoveryGuid'] as Buffer;
      expect(Buffer.isBuffer(guid) && guid.length).toBe(16);
      const id = windowsBytesToGuid(guid);
      const exp = expected.get(id);
      expect(exp, `unexpected key ${id} at ${e.dn}`).toBeDefined();
      seen.add(id);
      expect(e['msFVE-RecoveryPassword']).toBe(exp!.password);
      expect(e.name).toBe(exp!.cn);
      expect((e.name as string).length).toBe(63);
      expect((e.name as string).slice(26, 62)).toBe(id.toUpperCase()); // the CN carries the same GUID
      expect(e.dn.toLowerCase()).toBe(`CN=${escapeRdnValue(exp!.cn)},${computerDns.get(exp!.computer)}`.toLowerCase());
      const vol = e['msFVE-VolumeGuid'];
      // ldapts returns [] for an absent attribute listed in explicitBufferAttributes.
      if (exp!.volumeGuid) expect(windowsBytesToGuid(vol as Buffer)).toBe(exp!.volumeGuid);
      else expect(vol).toEqual([]);
    }
    expect(seen.size).toBe(expected.size);
  }

  it('Administrator reads every recovery object over LDAPS with the right binary GUID', async () => {
    const c = await ldaps(dc.admin);
    try {
      checkAll(await recoveryObjects(c));
      // Binary equality lookup by key ID (a Buffer value: ldapts' string filter would UTF-8-encode \c0 etc.).
      const { searchEntries } = await c.search(dc.baseDn, {
        filter: new EqualityFilter({ attribute: 'msFVE-RecoveryGuid', value: guidToWindowsBytes(VECTOR_ID) }),
        attributes: ['msFVE-RecoveryPassword'],
      });
      expect(searchEntries.map((e) => e['msFVE-RecoveryPassword'])).toEqual([expected.get(VECTOR_ID)!.password]);
      // Computers look like domain members.
      const pcs = await c.search(`OU=Contoso,OU=Clients,${dc.baseDn}`, {
        filter: '(objectClass=computer)',
        attributes: ['sAMAccountName', 'dNSHostName', 'operatingSystem'],
      });
      expect(pcs.searchEntries).toHaveLength(20);
      const pc0 = pcs.searchEntries.find((e) => e.sAMAccountName === 'PC-000$');
      expect(pc0?.dNSHostName).toBe('pc-000.test.lan');
      expect(pc0?.operatingSystem).toBe('Windows 10 Pro');
    } finally {
      await c.unbind();
    }
  });

  it('Administrator reads the same over StartTLS on 389; plain 389 simple bind is refused', async () => {
    const c = await startTls(dc.admin);
    try {
      checkAll(await recoveryObjects(c));
    } finally {
      await c.unbind();
    }
    const plain = new Client({ url: dc.ldapUrl });
    await expect(plain.bind(dc.admin.bindDn, dc.admin.password)).rejects.toThrow(/Strong\(er\) authentication required|Transport encryption required/i);
    await plain.unbind().catch(() => undefined);
  });

  it('a plain domain user binds and sees the computers but ZERO recovery objects', async () => {
    for (const open of [() => ldaps(dc.reader), () => startTls(dc.reader)]) {
      const c = await open();
      try {
        expect(await recoveryObjects(c)).toHaveLength(0);
        const pcs = await c.search(`OU=Contoso,OU=Clients,${dc.baseDn}`, { filter: '(objectClass=computer)', attributes: ['cn'] });
        expect(pcs.searchEntries).toHaveLength(20);
        const direct = await c.search(dc.baseDn, {
          filter: new EqualityFilter({ attribute: 'msFVE-RecoveryGuid', value: guidToWindowsBytes(VECTOR_ID) }),
          attributes: ['msFVE-RecoveryPassword'],
        });
        expect(direct.searchEntries).toHaveLength(0);
      } finally {
        await c.unbind();
      }
    }
    await expect(ldaps({ upn: dc.reader.upn, password: 'wrong-Passw0rd!' })).rejects.toBeInstanceOf(InvalidCredentialsError);
  });

  it('addRecoveryObject adds a key under a computer; deleteComputer removes the subtree', async () => {
    const dn5 = computerDns.get('PC-005')!;
    const id = randomKeyId();
    const password = randomRecoveryPassword();
    const created = new Date(Date.UTC(2025, 5, 1, 12, 0, 0));
    const newDn = await addRecoveryObject(dc, dn5, { id, password, created, tzOffsetMinutes: 120 });
    expect(newDn).toBe(`CN=2025-06-01T14:00:00\\+02:00{${id.toUpperCase()}},${dn5}`);
    const c = await ldaps(dc.admin);
    try {
      const under5 = await recoveryObjects(c, dn5);
      expect(under5.map((e) => windowsBytesToGuid(e['msFVE-RecoveryGuid'] as Buffer))).toContain(id);
      expect(under5).toHaveLength(computers[5]!.keys.length + 1);

      await deleteComputer(dc, dn5);
      const after = await recoveryObjects(c);
      expect(after).toHaveLength(expected.size - computers[5]!.keys.length);
      await expect(c.search(dn5, { scope: 'base' })).rejects.toThrow(/no such object|0x20/i);
    } finally {
      await c.unbind();
    }
  });
});
