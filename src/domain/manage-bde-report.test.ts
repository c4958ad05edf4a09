import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BITLOCKER_EVENTS,
  parseEncryptionMethod,
  parseKeyProtectorType,
  parseLockStatus,
  parseProtectionStatus,
  parsePsVolumeType,
  parseVolumeStatus,
} from './bitlocker.js';
import { parseKeyId } from './key-id.js';
import { parseManageBdeReport, type ReportedProtector, type ReportedVolume } from './manage-bde-report.js';
import { findRecoveryPasswordCandidates } from './recovery-password.js';

// ---------------------------------------------------------------------------------------------
// Builders: manage-bde lays out `    Label:   value` with the values in one column.
// ---------------------------------------------------------------------------------------------

const EN_BANNER = ['BitLocker Drive Encryption: Configuration Tool version 10.0.22631', 'Copyright (C) 2013 Microsoft Corporation. All rights reserved.', ''];
const DE_BANNER = [
  'BitLocker-Laufwerkverschlüsselung: Konfigurationstool, Version 10.0.19041',
  'Copyright (C) 2013 Microsoft Corporation. Alle Rechte vorbehalten.',
  '',
];

type Lang = 'en' | 'de';

/** One volume of `manage-bde -status`. `protectors` null means "None Found". */
function statusBlock(lang: Lang, header: string, typeLine: string, rows: [string, string][], protectors: string[] | null): string[] {
  const width = lang === 'en' ? 22 : 30;
  const row = (label: string, value: string) => `    ${`${label}:`.padEnd(width)}${value}`;
  const keyProtectors = lang === 'en' ? 'Key Protectors' : 'Schlüsselschutzvorrichtungen';
  const none = lang === 'en' ? 'None Found' : 'Keine gefunden';
  return [
    header,
    typeLine,
    '',
    ...rows.map(([l, v]) => row(l, v)),
    ...(protectors === null ? [row(keyProtectors, none)] : [`    ${keyProtectors}:`, ...protectors.map((p) => `        ${p}`)]),
    '',
  ];
}

/** One protector of `manage-bde -protectors -get`. */
const protectorBlock = (header: string, id: string, detail: string[] = []): string[] => [
  `    ${header}:`,
  `      ID: ${id}`,
  ...detail.map((d) => `      ${d}`),
  '',
];

const text = (...lines: string[][]) => lines.flat().join('\n');

// Random GUIDs and random 64-hex "fingerprints" (not HMACs of anything).
const ID = {
  tpm: '{0D6A9F57-2E11-4C0F-9B0B-6F3E8E7D4C21}',
  rp: '{5B4E8C1A-7D2F-4A63-8E90-1C2D3E4F5A6B}',
  rp2: '{C1F0E2D3-4B5A-4968-A7B6-C5D4E3F2A1B0}',
  ext: '{9E8D7C6B-5A49-4382-B1A0-F9E8D7C6B5A4}',
  pw: '{3C2B1A09-F8E7-4D6C-9B5A-493827161504}',
};
const FP = {
  rp: '3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b',
  rp2: 'b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c',
};
const low = (id: string) => id.slice(1, -1).toLowerCase();

const tpm: ReportedProtector = { id: low(ID.tpm), type: 'Tpm', fingerprint: null };
const rp: ReportedProtector = { id: low(ID.rp), type: 'RecoveryPassword', fingerprint: FP.rp };
const rp2: ReportedProtector = { id: low(ID.rp2), type: 'RecoveryPassword', fingerprint: FP.rp2 };
const ext: ReportedProtector = { id: low(ID.ext), type: 'ExternalKey', fingerprint: null };

const EN_TPM = protectorBlock('TPM', ID.tpm, ['PCR Validation Profile:', '  7, 11', '  (Uses Secure Boot for integrity validation)']);
const DE_TPM = protectorBlock('TPM', ID.tpm, ['PCR-Validierungsprofil:', '  7, 11', '  (Verwendet den sicheren Start für die Integritätsüberprüfung)']);
const EN_RP = (id = ID.rp, fp = FP.rp) => protectorBlock('Numerical Password', id, ['Password:', `  fp:${fp}`]);
const DE_RP = (id = ID.rp, fp = FP.rp) => protectorBlock('Numerisches Kennwort', id, ['Kennwort:', `  fp:${fp}`, 'Sicherungstyp: Microsoft-Kontosicherung']);

// ---------------------------------------------------------------------------------------------
// The six states, in English and German
// ---------------------------------------------------------------------------------------------

type Scenario = { name: string; en: [string, string]; de: [string, string]; expected: ReportedVolume };

const vol = (v: Partial<ReportedVolume> & Pick<ReportedVolume, 'mountPoint'>): ReportedVolume => ({
  volumeType: 'unknown',
  volumeStatus: null,
  protectionStatus: null,
  lockStatus: null,
  encryptionMethod: null,
  encryptionPercentage: null,
  protectors: [],
  ...v,
});

const SCENARIOS: Scenario[] = [
  {
    name: 'OS volume fully encrypted with TPM + numerical password',
    en: [
      text(
        EN_BANNER,
        ['Disk volumes that can be protected with', 'BitLocker Drive Encryption:'],
        statusBlock(
          'en',
          'Volume C: [Windows]',
          '[OS Volume]',
          [
            ['Size', '475.83 GB'],
            ['BitLocker Version', '2.0'],
            ['Conversion Status', 'Fully Encrypted'],
            ['Percentage Encrypted', '100.0%'],
            ['Encryption Method', 'XTS-AES 128'],
            ['Protection Status', 'Protection On'],
            ['Lock Status', 'Unlocked'],
            ['Identification Field', 'Unknown'],
          ],
          ['TPM', 'Numerical Password'],
        ),
      ),
      text(EN_BANNER, ['Volume C: [Windows]', 'All Key Protectors', ''], EN_TPM, EN_RP()),
    ],
    de: [
      text(
        DE_BANNER,
        ['Datenträgervolumes, die mit BitLocker-Laufwerkverschlüsselung', 'geschützt werden können:'],
        statusBlock(
          'de',
          'Volume "C:" [Windows]',
          '[Betriebssystemvolume]',
          [
            ['Größe', '475,83 GB'],
            ['BitLocker-Version', '2.0'],
            ['Konvertierungsstatus', 'Vollständig verschlüsselt'],
            ['Verschlüsselt (Prozent)', '100,0 %'],
            ['Verschlüsselungsmethode', 'XTS-AES 128'],
            ['Schutzstatus', 'Der Schutz ist aktiviert.'],
            ['Sperrungsstatus', 'Entsperrt'],
            ['ID-Feld', 'Unbekannt'],
          ],
          ['TPM', 'Numerisches Kennwort'],
        ),
      ),
      text(DE_BANNER, ['Volume "C:" [Windows]', 'Alle Schlüsselschutzvorrichtungen', ''], DE_TPM, DE_RP()),
    ],
    expected: vol({
      mountPoint: 'C:',
      volumeType: 'os',
      volumeStatus: 'FullyEncrypted',
      protectionStatus: 'On',
      lockStatus: 'Unlocked',
      encryptionMethod: 'XtsAes128',
      encryptionPercentage: 100,
      protectors: [tpm, rp],
    }),
  },
  {
    name: 'data volume with auto-unlock',
    en: [
      text(
        statusBlock(
          'en',
          'Volume D: [FAKE-DATA]',
          '[Data Volume]',
          [
            ['Conversion Status', 'Fully Encrypted'],
            ['Percentage Encrypted', '100.0%'],
            ['Encryption Method', 'XTS-AES 256'],
            ['Protection Status', 'Protection On'],
            ['Lock Status', 'Unlocked'],
            ['Automatic Unlock', 'Enabled'],
          ],
          ['Numerical Password', 'External Key (Required for automatic unlock)'],
        ),
      ),
      text(
        ['Volume D: [FAKE-DATA]', 'All Key Protectors', ''],
        EN_RP(ID.rp2, FP.rp2),
        protectorBlock('External Key (Required for automatic unlock)', ID.ext, ['External Key File Name:', `  ${ID.ext.slice(1, -1)}.BEK`]),
      ),
    ],
    de: [
      text(
        statusBlock(
          'de',
          'Volume "D:" [FAKE-DATEN]',
          '[Datenvolume]',
          [
            ['Konvertierungsstatus', 'Vollständig verschlüsselt'],
            ['Verschlüsselt (Prozent)', '100,0 %'],
            ['Verschlüsselungsmethode', 'XTS-AES 256'],
            ['Schutzstatus', 'Der Schutz ist aktiviert.'],
            ['Sperrungsstatus', 'Entsperrt'],
            ['Automatische Entsperrung', 'Aktiviert'],
          ],
          ['Numerisches Kennwort', 'Externer Schlüssel (für automatische Entsperrung erforderlich)'],
        ),
      ),
      text(
        ['Volume "D:" [FAKE-DATEN]', 'Alle Schlüsselschutzvorrichtungen', ''],
        DE_RP(ID.rp2, FP.rp2),
        protectorBlock('Externer Schlüssel (für automatische Entsperrung erforderlich)', ID.ext, [
          'Name der externen Schlüsseldatei:',
          `  ${ID.ext.slice(1, -1)}.BEK`,
        ]),
      ),
    ],
    expected: vol({
      mountPoint: 'D:',
      volumeType: 'fixed',
      volumeStatus: 'FullyEncrypted',
      protectionStatus: 'On',
      lockStatus: 'Unlocked',
      encryptionMethod: 'XtsAes256',
      encryptionPercentage: 100,
      protectors: [rp2, ext],
    }),
  },
  {
    name: 'unencrypted volume (Key Protectors: None Found)',
    en: [
      text(
        statusBlock(
          'en',
          'Volume E: [FAKE-BACKUP]',
          '[Data Volume]',
          [
            ['Size', '1863.01 GB'],
            ['BitLocker Version', 'None'],
            ['Conversion Status', 'Fully Decrypted'],
            ['Percentage Encrypted', '0.0%'],
            ['Encryption Method', 'None'],
            ['Protection Status', 'Protection Off'],
            ['Lock Status', 'Unlocked'],
            ['Identification Field', 'None'],
            ['Automatic Unlock', 'Disabled'],
          ],
          null,
        ),
      ),
      text(EN_BANNER, ['Volume E: [FAKE-BACKUP]', 'All Key Protectors', '', 'ERROR: No key protectors found.', '']),
    ],
    de: [
      // This block is the verified German capture, with the drive letter changed.
      text(
        statusBlock(
          'de',
          'Volume "E:" []',
          '[Datenvolume]',
          [
            ['Größe', '49,36 GB'],
            ['BitLocker-Version', 'Kein'],
            ['Konvertierungsstatus', 'Vollständig entschlüsselt'],
            ['Verschlüsselt (Prozent)', '0,0 %'],
            ['Verschlüsselungsmethode', 'Kein'],
            ['Schutzstatus', 'Der Schutz ist deaktiviert.'],
            ['Sperrungsstatus', 'Entsperrt'],
            ['ID-Feld', 'Kein'],
          ],
          null,
        ),
      ),
      text(DE_BANNER, ['Volume "E:" []', 'Alle Schlüsselschutzvorrichtungen', '', 'FEHLER: Es wurden keine Schlüsselschutzvorrichtungen gefunden.', '']),
    ],
    expected: vol({
      mountPoint: 'E:',
      volumeType: 'fixed',
      volumeStatus: 'FullyDecrypted',
      protectionStatus: 'Off',
      lockStatus: 'Unlocked',
      encryptionMethod: 'None',
      encryptionPercentage: 0,
      protectors: [],
    }),
  },
  {
    name: 'locked data volume',
    en: [
      // As captured on a locked volume: Unknown conversion status, percentage and protection.
      text(
        statusBlock(
          'en',
          'Volume F: [Label Unknown]',
          '[Data Volume]',
          [
            ['Size', 'Unknown GB'],
            ['BitLocker Version', '2.0'],
            ['Conversion Status', 'Unknown'],
            ['Percentage Encrypted', 'Unknown%'],
            ['Encryption Method', 'XTS-AES 128'],
            ['Protection Status', 'Unknown'],
            ['Lock Status', 'Locked'],
            ['Identification Field', 'Unknown'],
            ['Automatic Unlock', 'Disabled'],
          ],
          ['Numerical Password', 'Password'],
        ),
      ),
      // A locked volume cannot show its password, so there is no fp: line.
      text(['Volume F: [Label Unknown]', 'All Key Protectors', ''], protectorBlock('Numerical Password', ID.rp), protectorBlock('Password', ID.pw)),
    ],
    de: [
      text(
        statusBlock(
          'de',
          'Volume "F:" [Bezeichnung unbekannt]',
          '[Datenvolume]',
          [
            ['Größe', 'Unbekannt GB'],
            ['Konvertierungsstatus', 'Unbekannt'],
            ['Verschlüsselt (Prozent)', 'Unbekannt %'],
            ['Verschlüsselungsmethode', 'XTS-AES 128'],
            ['Schutzstatus', 'Unbekannt'],
            ['Sperrungsstatus', 'Gesperrt'],
          ],
          ['Numerisches Kennwort', 'Kennwort'],
        ),
      ),
      text(
        ['Volume "F:" [Bezeichnung unbekannt]', 'Alle Schlüsselschutzvorrichtungen', ''],
        protectorBlock('Numerisches Kennwort', ID.rp),
        protectorBlock('Kennwort', ID.pw),
      ),
    ],
    expected: vol({
      mountPoint: 'F:',
      volumeType: 'fixed',
      volumeStatus: null,
      protectionStatus: 'Unknown',
      lockStatus: 'Locked',
      encryptionMethod: 'XtsAes128',
      encryptionPercentage: null,
      protectors: [
        { id: low(ID.rp), type: 'RecoveryPassword', fingerprint: null },
        { id: low(ID.pw), type: 'Password', fingerprint: null },
      ],
    }),
  },
  {
    name: 'encryption in progress at 45.3%',
    en: [
      text(
        statusBlock(
          'en',
          'Volume C: []',
          '[OS Volume]',
          [
            ['Conversion Status', 'Encryption in Progress'],
            ['Percentage Encrypted', '45.3%'],
            ['Encryption Method', 'XTS-AES 128'],
            ['Protection Status', 'Protection On'],
            ['Lock Status', 'Unlocked'],
          ],
          ['TPM', 'Numerical Password'],
        ),
      ),
      text(['Volume C: []', 'All Key Protectors', ''], EN_TPM, EN_RP()),
    ],
    de: [
      text(
        statusBlock(
          'de',
          'Volume "C:" []',
          '[Betriebssystemvolume]',
          [
            ['Konvertierungsstatus', 'Verschlüsselung wird durchgeführt'],
            ['Verschlüsselt (Prozent)', '45,3 %'],
            ['Verschlüsselungsmethode', 'XTS-AES 128'],
            ['Schutzstatus', 'Der Schutz ist aktiviert.'],
            ['Sperrungsstatus', 'Entsperrt'],
          ],
          ['TPM', 'Numerisches Kennwort'],
        ),
      ),
      text(['Volume "C:" []', 'Alle Schlüsselschutzvorrichtungen', ''], DE_TPM, DE_RP()),
    ],
    expected: vol({
      mountPoint: 'C:',
      volumeType: 'os',
      volumeStatus: 'EncryptionInProgress',
      protectionStatus: 'On',
      lockStatus: 'Unlocked',
      encryptionMethod: 'XtsAes128',
      encryptionPercentage: 45.3,
      protectors: [tpm, rp],
    }),
  },
  {
    name: 'clear-key state (used space only, protection off, no protectors)',
    en: [
      text(
        statusBlock(
          'en',
          'Volume C: [Windows]',
          '[OS Volume]',
          [
            ['Conversion Status', 'Used Space Only Encrypted'],
            ['Percentage Encrypted', '100.0%'],
            ['Encryption Method', 'XTS-AES 128'],
            ['Protection Status', 'Protection Off'],
            ['Lock Status', 'Unlocked'],
          ],
          null,
        ),
      ),
      text(['Volume C: [Windows]', 'All Key Protectors', '', 'ERROR: No key protectors found.']),
    ],
    de: [
      text(
        statusBlock(
          'de',
          'Volume "C:" [Windows]',
          '[Betriebssystemvolume]',
          [
            ['Konvertierungsstatus', 'Nur verwendeter Speicherplatz verschlüsselt'],
            ['Verschlüsselt (Prozent)', '100,0 %'],
            ['Verschlüsselungsmethode', 'XTS-AES 128'],
            ['Schutzstatus', 'Der Schutz ist deaktiviert.'],
            ['Sperrungsstatus', 'Entsperrt'],
          ],
          null,
        ),
      ),
      text(['Volume "C:" [Windows]', 'Alle Schlüsselschutzvorrichtungen', '', 'FEHLER: Es wurden keine Schlüsselschutzvorrichtungen gefunden.']),
    ],
    expected: vol({
      mountPoint: 'C:',
      volumeType: 'os',
      volumeStatus: 'FullyEncrypted',
      protectionStatus: 'Off',
      lockStatus: 'Unlocked',
      encryptionMethod: 'XtsAes128',
      encryptionPercentage: 100,
      protectors: [],
    }),
  },
];

describe.each(['en', 'de'] as const)('parseManageBdeReport (%s)', (lang) => {
  it.each(SCENARIOS.map((s) => [s.name, s] as const))('%s', (_name, s) => {
    const [status, protectors] = s[lang];
    expect(parseManageBdeReport(status, protectors)).toEqual({ volumes: [s.expected], problems: [] });
  });

  it('a whole machine: the volumes of both texts joined by mount point, in status order', () => {
    const picked = SCENARIOS.slice(0, 4); // C:, D:, E:, F:
    const status = picked.map((s) => s[lang][0]).join('\n');
    const protectors = [...picked]
      .reverse()
      .map((s) => s[lang][1])
      .join('\n');
    expect(parseManageBdeReport(status, protectors)).toEqual({ volumes: picked.map((s) => s.expected), problems: [] });
  });

  it('Windows line ends (CRLF) and old Mac ones (CR) read the same', () => {
    for (const s of SCENARIOS) {
      const [status, protectors] = s[lang];
      for (const eol of ['\r\n', '\r']) {
        expect(parseManageBdeReport(status.replace(/\n/g, eol), protectors.replace(/\n/g, eol))).toEqual({
          volumes: [s.expected],
          problems: [],
        });
      }
    }
  });
});

describe('German output with broken encoding', () => {
  const [status, protectors] = SCENARIOS[0]?.de ?? ['', ''];
  const expected = SCENARIOS[0]?.expected;

  it('OEM code page 850 bytes read as Windows-1252', () => {
    const cp850as1252 = (s: string) => s.replace(/ü/g, '\u0081').replace(/ö/g, '\u201d').replace(/ä/g, '\u201e').replace(/ß/g, 'á');
    expect(parseManageBdeReport(cp850as1252(status), cp850as1252(protectors))).toEqual({
      volumes: [expected],
      problems: [],
    });
  });

  it('UTF-8 bytes read as Latin-1, and umlauts lost to "?"', () => {
    const utf8asLatin1 = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
    expect(parseManageBdeReport(utf8asLatin1(status), utf8asLatin1(protectors)).volumes).toEqual([expected]);
    // eslint-disable-next-line no-control-regex -- every character outside ASCII is lost
    const lost = (s: string) => s.replace(/[^\x00-\x7f]/g, '?');
    expect(parseManageBdeReport(lost(status), lost(protectors)).volumes).toEqual([expected]);
  });
});

// ---------------------------------------------------------------------------------------------
// Passwords, fingerprints, IDs
// ---------------------------------------------------------------------------------------------

const CLEAR_TEXT_PASSWORD_PROBLEM = 'a recovery password was sent in clear text and ignored';

// A valid recovery password (each group divisible by 11); it protects no disk.
const CLEAR_PW = '561924-100617-374253-627814-047179-187154-416867-012331';

describe('recovery passwords and fingerprints', () => {
  const status = text(statusBlock('en', 'Volume C: [Windows]', '[OS Volume]', [['Lock Status', 'Unlocked']], ['Numerical Password']));

  it('a password sent in clear text is dropped with a problem, and never echoed', () => {
    for (const pw of [CLEAR_PW, CLEAR_PW.replace(/-/g, ''), CLEAR_PW.replace(/-/g, ' '), `fp:${CLEAR_PW.replace(/-/g, '')}`]) {
      const protectors = text(['Volume C: [Windows]', ''], protectorBlock('Numerical Password', ID.rp, ['Password:', `  ${pw}`]));
      const r = parseManageBdeReport(status, protectors);
      expect(r.volumes[0]?.protectors).toEqual([{ id: low(ID.rp), type: 'RecoveryPassword', fingerprint: null }]);
      expect(r.problems).toContain(CLEAR_TEXT_PASSWORD_PROBLEM);
      const out = JSON.stringify(r);
      for (const group of CLEAR_PW.split('-')) expect(out).not.toContain(group);
      for (const p of r.problems) expect(p).not.toMatch(/[0-9]/);
    }
  });

  it('a clear-text password in an unknown language still marks a recovery password, and one next to a fingerprint is caught too', () => {
    const protectors = text(
      ['Volume C: [Windows]', ''],
      protectorBlock('Mot de passe numérique', ID.rp, ['Mot de passe :', `  ${CLEAR_PW}`]),
      protectorBlock('Numerical Password', ID.rp2, ['Password:', `  fp:${FP.rp2} ${CLEAR_PW}`]),
    );
    const r = parseManageBdeReport(status, protectors);
    expect(r.volumes[0]?.protectors).toEqual([{ id: low(ID.rp), type: 'RecoveryPassword', fingerprint: null }, rp2]);
    expect(r.problems).toEqual([CLEAR_TEXT_PASSWORD_PROBLEM]);
  });

  it('a clear-text password in the status text is reported too', () => {
    const r = parseManageBdeReport(`${status}\n    ${CLEAR_PW}\n`, text(['Volume C: [Windows]'], EN_RP()));
    expect(r.problems).toEqual([CLEAR_TEXT_PASSWORD_PROBLEM]);
    expect(JSON.stringify(r)).not.toContain(CLEAR_PW.slice(0, 6));
  });

  it('a block with an fp: line is a recovery password whatever its header says', () => {
    const protectors = text(
      ['Volume C: [Windows]', ''],
      protectorBlock('Mot de passe numérique', ID.rp, ['Mot de passe :', `  fp:${FP.rp}`]),
      protectorBlock('TPM', ID.rp2, [`fp:${FP.rp2}`]),
    );
    const r = parseManageBdeReport(status, protectors);
    expect(r.volumes[0]?.protectors).toEqual([rp, rp2]);
    expect(r.problems).toEqual([]);
  });

  it('GUIDs and fingerprints are normalized: lower case, no braces', () => {
    const protectors = text(
      ['Volume C: [Windows]', ''],
      protectorBlock('Numerical Password', ID.rp.slice(1, -1).toLowerCase(), ['Password:', `  FP:${FP.rp.toUpperCase()}`]),
      protectorBlock('TPM', ID.tpm.replace(/-/g, '')),
    );
    expect(parseManageBdeReport(status, protectors).volumes[0]?.protectors).toEqual([rp, tpm]);
  });

  it('a "fingerprint" made of a password-shaped digit run counts as clear text', () => {
    const digits = `${CLEAR_PW.replace(/-/g, '')}${'0'.repeat(16)}`; // 64 hex digits, all decimal
    const protectors = text(['Volume C: [Windows]', ''], protectorBlock('Numerical Password', ID.rp, [`fp:${digits}`]));
    const r = parseManageBdeReport(status, protectors);
    expect(r.volumes[0]?.protectors).toEqual([{ id: low(ID.rp), type: 'RecoveryPassword', fingerprint: null }]);
    expect(r.problems).toEqual([CLEAR_TEXT_PASSWORD_PROBLEM]);
    expect(JSON.stringify(r)).not.toContain(CLEAR_PW.slice(0, 6));
  });

  it('a malformed fingerprint is not kept, the protector stays a recovery password', () => {
    const protectors = text(['Volume C: [Windows]', ''], protectorBlock('TPM', ID.rp, [`fp:${FP.rp.slice(1)}`]));
    const r = parseManageBdeReport(status, protectors);
    expect(r.volumes[0]?.protectors).toEqual([{ id: low(ID.rp), type: 'RecoveryPassword', fingerprint: null }]);
    expect(r.problems).toEqual(['volume C: a malformed fingerprint was ignored']);
  });

  it('two different fingerprints under one protector: none is kept', () => {
    const protectors = text(['Volume C: [Windows]', ''], protectorBlock('Numerical Password', ID.rp, [`fp:${FP.rp}`, `fp:${FP.rp2}`]));
    const r = parseManageBdeReport(status, protectors);
    expect(r.volumes[0]?.protectors[0]?.fingerprint).toBeNull();
    expect(r.problems).toEqual(['volume C: a protector carried more than one fingerprint; none was kept']);
  });

  it('the same protector listed twice is merged; different fingerprints cancel out', () => {
    const once = text(['Volume C: [Windows]', ''], EN_TPM, EN_RP());
    expect(parseManageBdeReport(status, `${once}\n${once}`).volumes[0]?.protectors).toEqual([tpm, rp]);
    const other = text(['Volume C: [Windows]', ''], EN_RP(ID.rp, FP.rp2));
    const r = parseManageBdeReport(status, `${once}\n${other}`);
    expect(r.volumes[0]?.protectors).toEqual([tpm, { ...rp, fingerprint: null }]);
    expect(r.problems).toEqual(['volume C: a protector was listed twice with different fingerprints; none was kept']);
  });

  it('an ID that is not a GUID, a fingerprint without an ID, a protector outside a volume: ignored with problems', () => {
    const protectors = text(
      ['  ID: {0D6A9F57-2E11-4C0F-9B0B-6F3E8E7D4C21}', 'Volume C: [Windows]', '', `  fp:${FP.rp2}`],
      protectorBlock('Numerical Password', 'BitLocker', ['Password:', `  fp:${FP.rp}`]),
      EN_TPM,
    );
    const r = parseManageBdeReport(status, protectors);
    expect(r.volumes[0]?.protectors).toEqual([tpm]);
    expect(r.problems).toEqual([
      'a protector outside any volume was ignored',
      'volume C: a fingerprint without a protector ID above it was ignored',
      'volume C: a protector ID that is not a GUID was ignored',
    ]);
  });

  it('an unknown protector header gives type null and a problem', () => {
    const protectors = text(['Volume C: [Windows]', ''], protectorBlock('Clé de démarrage', ID.ext));
    const r = parseManageBdeReport(status, protectors);
    expect(r.volumes[0]?.protectors).toEqual([{ id: low(ID.ext), type: null, fingerprint: null }]);
    expect(r.problems).toEqual(['volume C: the type of a protector was not recognised']);
  });

  it.each([
    ['TPM And PIN', 'TpmPin'],
    ['TPM And Startup Key', 'TpmStartupKey'],
    ['TPM And PIN And Startup Key', 'TpmPinStartupKey'],
    ['External Key', 'ExternalKey'],
    ['Password', 'Password'],
    ['Data Recovery Agent (Certificate Based)', 'PublicKey'],
    ['TPM und PIN', 'TpmPin'],
    ['Externer Schlüssel', 'ExternalKey'],
    ['Kennwort', 'Password'],
    ['TpmPinStartupKey', 'TpmPinStartupKey'],
  ])('protector header %s → %s', (header, type) => {
    const r = parseManageBdeReport(status, text(['Volume C: [Windows]'], protectorBlock(header, ID.ext)));
    expect(r.volumes[0]?.protectors).toEqual([{ id: low(ID.ext), type, fingerprint: null }]);
  });
});

// ---------------------------------------------------------------------------------------------
// Status details and problems
// ---------------------------------------------------------------------------------------------

describe('status values', () => {
  const one = (rows: [string, string][]) => parseManageBdeReport(text(statusBlock('en', 'Volume C: [Windows]', '[OS Volume]', rows, null)), '');

  it.each([
    ['Conversion Status', 'Encryption In Progress', 'volumeStatus', 'EncryptionInProgress'],
    ['Conversion Status', 'Decryption in progress', 'volumeStatus', 'DecryptionInProgress'],
    ['Conversion Status', 'Encryption Paused', 'volumeStatus', 'EncryptionSuspended'],
    ['Conversion Status', 'Decryption Paused', 'volumeStatus', 'DecryptionSuspended'],
    ['Conversion Status', 'FULLY ENCRYPTED', 'volumeStatus', 'FullyEncrypted'],
    ['Encryption Method', 'AES 128 with Diffuser', 'encryptionMethod', 'Aes128Diffuser'],
    ['Encryption Method', 'AES 256', 'encryptionMethod', 'Aes256'],
    ['Encryption Method', 'AES 128', 'encryptionMethod', 'Aes128'],
    ['Encryption Method', 'Hardware Encryption', 'encryptionMethod', 'Hardware'],
    ['Protection Status', 'Protection Off (1 reboots left)', 'protectionStatus', 'Off'],
    ['Protection Status', 'Protection Unknown', 'protectionStatus', 'Unknown'],
    ['Percentage Encrypted', '100%', 'encryptionPercentage', 100],
    ['Percentage Encrypted', '7,25 %', 'encryptionPercentage', 7.25],
  ] as const)('%s: %s → %s %s', (label, value, field, expected) => {
    const r = one([[label, value]]);
    expect(r.volumes[0]?.[field]).toBe(expected);
    expect(r.problems).toEqual([]);
  });

  it('unknown values become null with a problem that does not repeat them', () => {
    const r = one([
      ['Conversion Status', 'Frobnicating 12'],
      ['Percentage Encrypted', '120.0%'],
      ['Encryption Method', 'ROT13 2048'],
      ['Protection Status', 'Maybe'],
      ['Lock Status', '1'],
      ['Something New', 'whatever'],
    ]);
    expect(r.volumes).toEqual([vol({ mountPoint: 'C:', volumeType: 'os' })]);
    expect(r.problems).toEqual([
      'volume C: the conversion status was not recognised',
      'volume C: the encryption percentage was not recognised',
      'volume C: the encryption method was not recognised',
      'volume C: the protection status was not recognised',
      'volume C: the lock status was not recognised',
    ]);
  });

  it('a language we do not know: the volume is kept, with a problem', () => {
    const status = text([
      'Volume C: [Windows]',
      '[Volume du système d’exploitation]',
      '',
      '    État de la conversion :     Chiffrement intégral',
      '    Pourcentage chiffré :       100,0 %',
    ]);
    const r = parseManageBdeReport(status, text(['Volume C: [Windows]', ''], EN_TPM));
    expect(r.volumes).toEqual([vol({ mountPoint: 'C:', protectors: [tpm] })]);
    expect(r.problems).toEqual(['volume C: the volume type was not recognised', 'volume C: no status line was recognised (language not supported?)']);
  });

  it('a volume in only one of the texts still appears; a listed but missing protector list is noted', () => {
    const status = text(
      statusBlock('en', 'Volume C: [Windows]', '[OS Volume]', [['Lock Status', 'Unlocked']], ['TPM']),
      statusBlock('en', 'Volume D: [FAKE-DATA]', '[Data Volume]', [['Lock Status', 'Unlocked']], ['Numerical Password']),
    );
    const protectors = text(['Volume C: [Windows]', ''], EN_TPM, ['Volume X: [USB]', ''], EN_RP());
    const r = parseManageBdeReport(status, protectors);
    expect(r.volumes).toEqual([
      vol({ mountPoint: 'C:', volumeType: 'os', lockStatus: 'Unlocked', protectors: [tpm] }),
      vol({ mountPoint: 'D:', volumeType: 'fixed', lockStatus: 'Unlocked' }),
      vol({ mountPoint: 'X:', protectors: [rp] }),
    ]);
    expect(r.problems).toEqual(['volume D: the status lists key protectors but the protector text has none']);
  });

  it('a volume without a drive letter is keyed by its volume GUID path', () => {
    const path = '\\\\?\\Volume{cb96dd9a-4f54-11e0-8d6c-806e6f6e6963}\\';
    const r = parseManageBdeReport(
      text([`Volume ${path} [Recovery]`, '[Data Volume]', '    Lock Status:          Unlocked']),
      text([`Volume ${path} [Recovery]`, ''], EN_TPM),
    );
    expect(r.volumes).toEqual([vol({ mountPoint: path, volumeType: 'fixed', lockStatus: 'Unlocked', protectors: [tpm] })]);
  });

  it('a volume listed twice in the status text: the first is used', () => {
    const block = statusBlock('en', 'Volume C: [Windows]', '[OS Volume]', [['Lock Status', 'Unlocked']], null);
    const again = statusBlock('en', 'Volume c: [Windows]', '[OS Volume]', [['Lock Status', 'Locked']], null);
    const r = parseManageBdeReport(text(block, again), '');
    expect(r.volumes.map((v) => [v.mountPoint, v.lockStatus])).toEqual([['C:', 'Unlocked']]);
    expect(r.problems).toEqual(['volume C: listed twice in the status text; the first was used']);
  });

  it('empty, blank and non-text input', () => {
    expect(parseManageBdeReport('', '')).toEqual({ volumes: [], problems: ['the manage-bde status text is empty'] });
    expect(parseManageBdeReport('ERROR: An attempt to access a required resource was denied.', 'nothing here')).toEqual({
      volumes: [],
      problems: ['the manage-bde status text lists no volume', 'the manage-bde protectors text lists no volume'],
    });
    const weird = parseManageBdeReport(null as unknown as string, { a: 1 } as unknown as string);
    expect(weird.volumes).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

const GUID_CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function checkInvariants(r: { volumes: ReportedVolume[]; problems: string[] }): void {
  for (const v of r.volumes) {
    expect(v.mountPoint.trim()).not.toBe('');
    if (v.encryptionPercentage !== null) {
      expect(v.encryptionPercentage).toBeGreaterThanOrEqual(0);
      expect(v.encryptionPercentage).toBeLessThanOrEqual(100);
    }
    for (const p of v.protectors) {
      expect(p.id).toMatch(GUID_CANONICAL);
      if (p.fingerprint !== null) expect(p.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    }
  }
  for (const p of r.problems) expect(p).not.toMatch(/[0-9]/);
}

/** Lines that look like manage-bde output, for fuzzing the structure rather than only noise. */
const LINE_VOCABULARY = [
  ...SCENARIOS.flatMap((s) => [...s.en, ...s.de].flatMap((t) => t.split('\n'))),
  'Volume C: [',
  'Volume "Z:" [x',
  'ID:',
  'ID: {',
  'fp:',
  `fp:${FP.rp}${FP.rp}`,
  CLEAR_PW,
  '[]',
  ':',
  '    :   ',
];

const hex64 = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 });
const recoveryPassword = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
  .map((groups) => groups.map((g) => String(g * 11).padStart(6, '0')).join('-'));

describe('properties', () => {
  it('arbitrary strings never throw and keep the invariants', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string(), (a, b) => {
        checkInvariants(parseManageBdeReport(a, b));
        checkInvariants(parseManageBdeReport(b, a));
      }),
      { numRuns: 300 },
    );
  });

  it('shuffled manage-bde lines mixed with noise never throw and keep the invariants', () => {
    const line = fc.oneof(fc.constantFrom(...LINE_VOCABULARY), fc.string({ unit: 'binary', maxLength: 40 }));
    const doc = fc.tuple(fc.array(line, { maxLength: 60 }), fc.constantFrom('\n', '\r\n', '\r')).map(([ls, eol]) => ls.join(eol));
    fc.assert(
      fc.property(doc, doc, (s, p) => {
        checkInvariants(parseManageBdeReport(s, p));
      }),
      { numRuns: 300 },
    );
  });

  it('random GUIDs and fingerprints round-trip, in any case and with or without braces', () => {
    const protector = fc.record({
      id: fc.uuid(),
      upper: fc.boolean(),
      braces: fc.boolean(),
      fp: fc.option(hex64, { nil: null }),
      header: fc.constantFrom('TPM', 'Numerical Password', 'Numerisches Kennwort', 'Qualcosa'),
    });
    fc.assert(
      fc.property(fc.constantFrom('C', 'D', 'Q'), fc.array(protector, { minLength: 1, maxLength: 5 }), (letter, ps) => {
        const unique = ps.filter((p, i) => ps.findIndex((q) => q.id === p.id) === i);
        const lines = [`Volume ${letter}: [FAKE]`, 'All Key Protectors', ''];
        for (const p of unique) {
          const raw = p.upper ? p.id.toUpperCase() : p.id;
          lines.push(...protectorBlock(p.header, p.braces ? `{${raw}}` : raw, p.fp === null ? [] : ['Password:', `  fp:${p.fp}`]));
        }
        const r = parseManageBdeReport('', lines.join('\n'));
        const got = r.volumes.find((v) => v.mountPoint === `${letter}:`)?.protectors ?? [];
        expect(got.map((p) => [p.id, p.fingerprint])).toEqual(unique.map((p) => [p.id.toLowerCase(), p.fp]));
        for (const [i, p] of unique.entries()) {
          if (p.fp !== null) expect(got[i]?.type).toBe('RecoveryPassword');
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a clear-text password anywhere never comes out, and is always reported', () => {
    fc.assert(
      fc.property(recoveryPassword, fc.nat({ max: 40 }), fc.constantFrom('-', ' ', ''), (pw, at, sep) => {
        const shown = pw.replace(/-/g, sep);
        const lines = SCENARIOS[0]?.en[1].split('\n') ?? [];
        lines.splice(at % (lines.length + 1), 0, `        ${shown}`);
        const r = parseManageBdeReport(SCENARIOS[0]?.en[0] ?? '', lines.join('\n'));
        expect(r.problems).toContain(CLEAR_TEXT_PASSWORD_PROBLEM);
        const out = JSON.stringify(r);
        expect(out).not.toContain(pw);
        expect(out).not.toContain(pw.replace(/-/g, ''));
        checkInvariants(r);
      }),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Recorded check-ins in test/fixtures/agent
// ---------------------------------------------------------------------------------------------

const FIXTURES = new URL('../../test/fixtures/agent/', import.meta.url);
const readFixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Protector = { id: string; type: number | string; fingerprint?: string };
type CheckinVolume = {
  mountPoint: string;
  volumeType: number | string;
  volumeStatus: number | string | null;
  protectionStatus: number | string;
  lockStatus: number | string;
  encryptionMethod: number | string;
  encryptionPercentage: number | null;
  keyProtectors: Protector[];
};
type Checkin = { volumes: CheckinVolume[]; manageBde: { status: string; protectors: string } | null; sentAt: string };

const CHECKINS = [
  'checkin-ps51-integers.json',
  'checkin-ps7-names.json',
  'checkin-locked-volume.json',
  'checkin-unprotected.json',
  'checkin-manage-bde.json',
  'checkin-manage-bde-de.json',
];

/** A check-in volume in our vocabulary, whichever PowerShell wrote it. */
const normalized = (v: CheckinVolume) => ({
  mountPoint: v.mountPoint,
  volumeType: parsePsVolumeType(v.volumeType),
  volumeStatus: parseVolumeStatus(v.volumeStatus),
  protectionStatus: parseProtectionStatus(v.protectionStatus),
  lockStatus: parseLockStatus(v.lockStatus),
  encryptionMethod: parseEncryptionMethod(v.encryptionMethod),
  encryptionPercentage: v.encryptionPercentage,
  protectors: v.keyProtectors.map((p) => ({
    id: parseKeyId(p.id).ok ? p.id.slice(1, -1).toLowerCase() : null,
    type: parseKeyProtectorType(p.type),
    fingerprint: p.fingerprint ?? null,
  })),
});

function* strings(j: Json): Generator<string> {
  if (typeof j === 'string') yield j;
  else if (Array.isArray(j)) for (const x of j) yield* strings(x);
  else if (j !== null && typeof j === 'object') for (const x of Object.values(j)) yield* strings(x);
}

describe('agent fixtures', () => {
  it('the directory holds exactly the documented fixtures, each valid JSON without a password', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json'));
    expect(files.sort()).toEqual([...CHECKINS, 'events-sample.json'].sort());
    for (const f of files) {
      const raw = readFixture(f);
      const parsed = JSON.parse(raw) as Json;
      for (const s of [raw, ...strings(parsed)]) expect(findRecoveryPasswordCandidates(s)).toEqual([]);
    }
  });

  it('check-ins have the envelope of docs/agent-protocol.md', () => {
    for (const f of CHECKINS) {
      const c = JSON.parse(readFixture(f)) as Record<string, unknown>;
      expect(Object.keys(c), f).toEqual(['seq', 'sentAt', 'agentVersion', 'device', 'volumes', 'manageBde', 'events', 'jobResults']);
      expect(Number.isFinite(Date.parse(c.sentAt as string)), f).toBe(true);
      for (const v of (c as Checkin).volumes) {
        for (const p of v.keyProtectors) {
          expect(parseKeyId(p.id).ok).toBe(true);
          if (p.fingerprint !== undefined) expect(p.fingerprint).toMatch(/^[0-9a-f]{64}$/);
        }
      }
    }
  });

  it('PS 5.1 integers and PS 7 names describe the same machine', () => {
    const ps51 = JSON.parse(readFixture('checkin-ps51-integers.json')) as Checkin;
    const ps7 = JSON.parse(readFixture('checkin-ps7-names.json')) as Checkin;
    expect(typeof ps51.volumes[0]?.volumeStatus).toBe('number');
    expect(typeof ps7.volumes[0]?.volumeStatus).toBe('string');
    expect(ps51.volumes.map(normalized)).toEqual(ps7.volumes.map(normalized));
    expect(ps51.volumes.map(normalized)).toEqual([
      {
        mountPoint: 'C:',
        volumeType: 'os',
        volumeStatus: 'FullyEncrypted',
        protectionStatus: 'On',
        lockStatus: 'Unlocked',
        encryptionMethod: 'XtsAes128',
        encryptionPercentage: 100,
        protectors: [
          { id: '1e46f52e-27ca-42a6-b859-36122edf48d7', type: 'Tpm', fingerprint: null },
          {
            id: 'ba706bfd-c635-4f25-893b-76fc0eda6f8f',
            type: 'RecoveryPassword',
            fingerprint: '5fdd5edc1d78fd93d3d351fd999c3f99e7aa658bc4318329a6962ef563196fdd',
          },
        ],
      },
      {
        mountPoint: 'D:',
        volumeType: 'fixed',
        volumeStatus: 'FullyEncrypted',
        protectionStatus: 'On',
        lockStatus: 'Unlocked',
        encryptionMethod: 'XtsAes128',
        encryptionPercentage: 100,
        protectors: [
          {
            id: 'dcab84a3-072e-418d-89ac-699498f16a7f',
            type: 'RecoveryPassword',
            fingerprint: '2fb496ba791f39de477fdf8eb452d8b3607b4b34fb18e15926519f66f38bc8be',
          },
          { id: 'fb608daf-8657-4481-953c-0c62a9bfb90c', type: 'ExternalKey', fingerprint: null },
        ],
      },
    ]);
  });

  it('the locked and unprotected check-ins', () => {
    const locked = (JSON.parse(readFixture('checkin-locked-volume.json')) as Checkin).volumes.map(normalized);
    expect(locked[1]).toEqual({
      mountPoint: 'E:',
      volumeType: 'fixed',
      volumeStatus: null,
      protectionStatus: 'Unknown',
      lockStatus: 'Locked',
      encryptionMethod: 'XtsAes128',
      encryptionPercentage: null,
      protectors: [
        { id: 'd3b6e29a-db69-4fe2-b47f-4c5212f37d21', type: 'RecoveryPassword', fingerprint: null },
        { id: 'ff42a2eb-f375-4311-912c-7ccf1f22ce3e', type: 'Password', fingerprint: null },
      ],
    });
    const unprotected = (JSON.parse(readFixture('checkin-unprotected.json')) as Checkin).volumes.map(normalized);
    expect(unprotected.map((v) => [v.mountPoint, v.volumeStatus, v.protectors.map((p) => p.type)])).toEqual([
      ['C:', 'FullyEncrypted', ['Tpm']],
      ['D:', 'FullyDecrypted', []],
    ]);
  });

  const manageBdeExpected = (ids: { cTpm: string; cRp: string; cRpFp: string; dRp: string; dRpFp: string; dExt: string }) => [
    vol({
      mountPoint: 'C:',
      volumeType: 'os',
      volumeStatus: 'FullyEncrypted',
      protectionStatus: 'On',
      lockStatus: 'Unlocked',
      encryptionMethod: 'XtsAes128',
      encryptionPercentage: 100,
      protectors: [
        { id: ids.cTpm, type: 'Tpm', fingerprint: null },
        { id: ids.cRp, type: 'RecoveryPassword', fingerprint: ids.cRpFp },
      ],
    }),
    vol({
      mountPoint: 'D:',
      volumeType: 'fixed',
      volumeStatus: 'FullyEncrypted',
      protectionStatus: 'On',
      lockStatus: 'Unlocked',
      encryptionMethod: 'XtsAes128',
      encryptionPercentage: 100,
      protectors: [
        { id: ids.dRp, type: 'RecoveryPassword', fingerprint: ids.dRpFp },
        { id: ids.dExt, type: 'ExternalKey', fingerprint: null },
      ],
    }),
    vol({
      mountPoint: 'E:',
      volumeType: 'fixed',
      volumeStatus: 'FullyDecrypted',
      protectionStatus: 'Off',
      lockStatus: 'Unlocked',
      encryptionMethod: 'None',
      encryptionPercentage: 0,
    }),
  ];

  it.each([
    [
      'checkin-manage-bde.json',
      {
        cTpm: '4f0750c6-4b88-452f-b025-d7d5b3ea66a2',
        cRp: '6676ac39-1419-4f98-aaec-331cb9c9b736',
        cRpFp: 'e2df30758bf034a11d8a26030d6e84b00789d42855802b5b3a9e9a58230063e7',
        dRp: '94f1d015-b97c-4eb6-a47c-ab04883e8b0f',
        dRpFp: '495bc014ae1222c9e8352c2d9b2e637b347ddc73874931f42367c568ae22712d',
        dExt: 'd1344f05-0537-49d7-b1d5-f4c913f16272',
      },
    ],
    [
      'checkin-manage-bde-de.json',
      {
        cTpm: '2a665151-12ff-44c2-b433-dbf721376316',
        cRp: '2d4a4e86-0c05-4bb3-a359-35a953932c53',
        cRpFp: '8c582e1ade015ba895812133cb3ff7ee4d4e24cfc844e98903c118cb7bcf32ca',
        dRp: 'aa646f95-cd89-4bd1-8d0e-7580cd7ebbf0',
        dRpFp: '8c95f4fb2bd1849355274cd31492a28ec7f4fd9309d6a0e06b2d953a5c14d1d1',
        dExt: 'a508bf4d-af14-455e-9d58-006719e9bab0',
      },
    ],
  ])('%s parses into the expected volumes and protectors', (file, ids) => {
    const c = JSON.parse(readFixture(file)) as Checkin;
    expect(c.volumes).toEqual([]);
    expect(c.manageBde).not.toBeNull();
    const r = parseManageBdeReport(c.manageBde?.status ?? '', c.manageBde?.protectors ?? '');
    expect(r).toEqual({ volumes: manageBdeExpected(ids), problems: [] });
  });

  it('the README documents every protector ID and fingerprint in the fixtures', () => {
    const readme = readFixture('README.md');
    const pairs: [string, string][] = [];
    for (const f of CHECKINS) {
      const c = JSON.parse(readFixture(f)) as Checkin;
      for (const v of c.volumes) for (const p of v.keyProtectors) pairs.push([p.id.slice(1, -1), p.fingerprint ?? '—']);
      if (c.manageBde !== null) {
        for (const v of parseManageBdeReport(c.manageBde.status, c.manageBde.protectors).volumes) {
          for (const p of v.protectors) pairs.push([p.id.toUpperCase(), p.fingerprint ?? '—']);
        }
      }
    }
    const lines = readme.split('\n');
    for (const [id, fp] of pairs) {
      expect(
        lines.some((l) => l.includes(id) && l.includes(fp)),
        `${id} ${fp}`,
      ).toBe(true);
    }
  });

  it('events-sample.json: the forwarded event IDs, protector IDs where the event has one', () => {
    const events = JSON.parse(readFixture('events-sample.json')) as {
      id: number;
      time: string;
      protectorId: string | null;
      volume: string;
    }[];
    expect(events.map((e) => e.id).sort((a, b) => a - b)).toEqual([773, 774, 775, 776, 784, 845, 846, 24652]);
    for (const e of events) {
      expect(Object.keys(e)).toEqual(['id', 'time', 'protectorId', 'volume']);
      expect(BITLOCKER_EVENTS[e.id]).toBeDefined();
      expect(Number.isFinite(Date.parse(e.time))).toBe(true);
      const carriesProtector = ![846, 773, 774].includes(e.id);
      if (carriesProtector) expect(e.protectorId !== null && parseKeyId(e.protectorId).ok).toBe(true);
      else expect(e.protectorId).toBeNull();
    }
  });
});
