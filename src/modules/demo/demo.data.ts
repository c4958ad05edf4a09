import type { Rng } from './demo.random.js';

/**
 * The fictional MSP the demo fills a vault with. Every name here is made up (Microsoft's sample
 * company names, .example domains from RFC 2606), so no screenshot ever shows a real customer.
 */

export type DemoSource = 'agent' | 'entra' | 'ad' | 'csv' | 'txt';

export type DemoClientProfile = {
  name: string;
  /** Device name prefix, as an MSP's naming convention would have it. */
  code: string;
  domain: string;
  devices: number;
  /** Where this client's keys come from; the first one is the main source. */
  sources: DemoSource[];
};

export const DEMO_MSP = 'Northwind IT Services';

export const DEMO_CLIENTS: readonly DemoClientProfile[] = [
  { name: 'Contoso Dental', code: 'CD', domain: 'contosodental.example', devices: 46, sources: ['agent', 'csv'] },
  { name: 'Fabrikam Logistics', code: 'FAB', domain: 'fabrikam-logistics.example', devices: 62, sources: ['entra', 'agent'] },
  { name: 'Tailspin Toys', code: 'TST', domain: 'tailspintoys.example', devices: 34, sources: ['csv'] },
  { name: 'Woodgrove Accounting', code: 'WGA', domain: 'woodgrove-accounting.example', devices: 48, sources: ['ad', 'agent'] },
  { name: 'Litware Legal', code: 'LWL', domain: 'litwarelegal.example', devices: 38, sources: ['entra'] },
  { name: 'Adventure Works Cycles', code: 'AWC', domain: 'adventure-works.example', devices: 42, sources: ['agent', 'txt'] },
  { name: 'Wide World Importers', code: 'WWI', domain: 'wideworldimporters.example', devices: 30, sources: ['ad'] },
];

const FIRST = [
  'Alex',
  'Sam',
  'Jordan',
  'Taylor',
  'Morgan',
  'Casey',
  'Riley',
  'Jamie',
  'Avery',
  'Quinn',
  'Robin',
  'Drew',
  'Kim',
  'Lee',
  'Noor',
  'Ana',
  'Mateo',
  'Yuki',
  'Priya',
  'Lars',
  'Ines',
  'Tomas',
  'Aiko',
  'Omar',
];
const LAST = [
  'Fischer',
  'Okafor',
  'Lindqvist',
  'Moreau',
  'Tanaka',
  'Novak',
  'Silva',
  'Kowalski',
  'Haddad',
  'Jansen',
  'Rossi',
  'Nguyen',
  'Berg',
  'Costa',
  'Duarte',
  'Ibrahim',
  'Keller',
  'Larsen',
  'Meyer',
  'Petrov',
];
const MODELS = [
  ['Dell Inc.', 'Latitude 5440'],
  ['Dell Inc.', 'OptiPlex 7010'],
  ['HP', 'EliteBook 840 G10'],
  ['HP', 'ProDesk 400 G9'],
  ['LENOVO', 'ThinkPad T14 Gen 4'],
  ['LENOVO', 'ThinkCentre M70q'],
  ['Microsoft Corporation', 'Surface Laptop 5'],
] as const;
const OS = [
  { caption: 'Microsoft Windows 11 Pro', version: '10.0.22631', build: '22631' },
  { caption: 'Microsoft Windows 11 Enterprise', version: '10.0.26100', build: '26100' },
  { caption: 'Microsoft Windows 10 Pro', version: '10.0.19045', build: '19045' },
] as const;

export type DemoKey = { keyId: string; password: string };
export type DemoVolume = {
  mountPoint: string;
  type: 'os' | 'fixed' | 'removable';
  status: 'FullyEncrypted' | 'FullyDecrypted' | 'EncryptionInProgress';
  protection: 'On' | 'Off';
  method: 'XtsAes128' | 'XtsAes256' | 'None';
  percentage: number;
  /** The TPM protector's id (OS volumes), null for data drives. */
  tpmId: string | null;
  keys: DemoKey[];
};

/** What is (deliberately) wrong with a device, so the console has findings to show. */
export type DemoScenario =
  | 'healthy'
  | 'unescrowed' // the agent sees a recovery password the vault never received
  | 'mismatch' // the password on the device changed behind the vault's back
  | 'suspended' // BitLocker protection suspended on the OS drive
  | 'unprotected-data' // a data drive that is not encrypted at all
  | 'tpm-only' // encrypted, but no recovery password protector
  | 'encrypting' // encryption still in progress
  | 'stale'; // has not checked in for weeks

export type DemoDevice = {
  name: string;
  serial: string;
  user: string;
  manufacturer: string;
  model: string;
  os: (typeof OS)[number];
  smbiosUuid: string;
  entraDeviceId: string;
  scenario: DemoScenario;
  volumes: DemoVolume[];
};

const SCENARIO_WEIGHTS: [DemoScenario, number][] = [
  ['healthy', 0.8],
  ['unescrowed', 0.03],
  ['mismatch', 0.025],
  ['suspended', 0.03],
  ['unprotected-data', 0.03],
  ['tpm-only', 0.02],
  ['encrypting', 0.02],
  ['stale', 0.045],
];

function pickScenario(rng: Rng): DemoScenario {
  let x = rng.next();
  for (const [s, w] of SCENARIO_WEIGHTS) {
    if ((x -= w) < 0) return s;
  }
  return 'healthy';
}

/** The devices of one client, with volumes and keys, all derived from the seed. */
export function generateDevices(rng: Rng, profile: DemoClientProfile): DemoDevice[] {
  const out: DemoDevice[] = [];
  const usedUsers = new Set<string>();
  for (let i = 0; i < profile.devices; i++) {
    const [manufacturer, model] = rng.pick(MODELS);
    const laptop = /Latitude|EliteBook|ThinkPad|Surface/.test(model);
    const name = `${profile.code}-${laptop ? 'LT' : 'WS'}-${String(i + 1).padStart(4, '0')}`;
    let user: string;
    do {
      user = `${rng.pick(FIRST).toLowerCase()}.${rng.pick(LAST).toLowerCase()}@${profile.domain}`;
    } while (usedUsers.has(user) && usedUsers.size < FIRST.length * LAST.length);
    usedUsers.add(user);
    const scenario = pickScenario(rng);
    const volumes: DemoVolume[] = [
      {
        mountPoint: 'C:',
        type: 'os',
        status: scenario === 'encrypting' ? 'EncryptionInProgress' : 'FullyEncrypted',
        protection: scenario === 'suspended' || scenario === 'encrypting' ? 'Off' : 'On',
        method: rng.chance(0.7) ? 'XtsAes128' : 'XtsAes256',
        percentage: scenario === 'encrypting' ? rng.int(12, 88) : 100,
        tpmId: rng.guid(),
        keys: scenario === 'tpm-only' ? [] : [{ keyId: rng.guid(), password: rng.recoveryPassword() }],
      },
    ];
    if (!laptop || rng.chance(0.25) || scenario === 'unprotected-data') {
      const unprotected = scenario === 'unprotected-data';
      volumes.push({
        mountPoint: 'D:',
        type: 'fixed',
        status: unprotected ? 'FullyDecrypted' : 'FullyEncrypted',
        protection: unprotected ? 'Off' : 'On',
        method: unprotected ? 'None' : 'XtsAes128',
        percentage: unprotected ? 0 : 100,
        tpmId: null,
        keys: unprotected ? [] : [{ keyId: rng.guid(), password: rng.recoveryPassword() }],
      });
    }
    if (laptop && rng.chance(0.12)) {
      // A BitLocker To Go stick: escrowed by Entra or by the CSV export, not seen by the agent.
      volumes.push({
        mountPoint: 'E:',
        type: 'removable',
        status: 'FullyEncrypted',
        protection: 'On',
        method: 'XtsAes128',
        percentage: 100,
        tpmId: null,
        keys: [{ keyId: rng.guid(), password: rng.recoveryPassword() }],
      });
    }
    out.push({
      name,
      serial: `DEMO${rng.hex(8).toUpperCase()}`,
      user,
      manufacturer,
      model,
      os: rng.pick(OS),
      smbiosUuid: rng.guid().toUpperCase(),
      entraDeviceId: rng.guid(),
      scenario,
      volumes,
    });
  }
  return out;
}
