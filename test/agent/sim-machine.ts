import { createHash, randomBytes, randomUUID } from 'node:crypto';

/**
 * A simulated Windows machine, as far as the Keywarden agent can see it: the
 * Win32_EncryptableVolume CIM class and its methods (numbers, HRESULTs), manage-bde's text output
 * (English or German) for the fallback, the BitLocker event logs, the TPM, device facts, a few
 * files in %ProgramData%\Keywarden, and the network. test/agent/test-agent.ts drives it the way
 * agent/Keywarden-Agent.ps1 drives Windows.
 *
 * What it deliberately does NOT do: refuse to remove the last recovery password. Windows does
 * not (it only refuses the last protector of any kind on an encrypted volume with protection on,
 * FVE_E_KEY_REQUIRED), so a test that proves "a volume always keeps an escrowed recovery
 * password" proves it of the agent's ordering, not of the simulator.
 *
 * Test-side helpers (addRecoveryPassword, removeProtector, logEvent, finishConversion) are what an
 * administrator or Windows itself does on the machine; they bypass failure injection and the
 * watchers, which see only what the agent does through CIM.
 */

// ------------------------------------------------------------------------------------------------
// Numbers as Windows reports them (Win32_EncryptableVolume docs), and the module names they stand
// for. The agent has its own copy of these tables (the script's); this one is the machine's.
// ------------------------------------------------------------------------------------------------

export const KEY_PROTECTOR_TYPES = [
  'Unknown',
  'Tpm',
  'ExternalKey',
  'RecoveryPassword',
  'TpmPin',
  'TpmStartupKey',
  'TpmPinStartupKey',
  'PublicKey',
  'Password',
  'TpmNetworkKey',
  'AdAccountOrGroup',
] as const;
export type KeyProtectorName = (typeof KEY_PROTECTOR_TYPES)[number];

/** GetConversionStatus: ConversionStatus 0-5 (WMI calls 4 and 5 "Paused", the module "Suspended"). */
export const CONVERSION_STATUS = ['FullyDecrypted', 'FullyEncrypted', 'EncryptionInProgress', 'DecryptionInProgress', 'EncryptionSuspended', 'DecryptionSuspended'] as const;
export type ConversionStatusName = (typeof CONVERSION_STATUS)[number];

export const ENCRYPTION_METHODS = ['None', 'Aes128Diffuser', 'Aes256Diffuser', 'Aes128', 'Aes256', 'Hardware', 'XtsAes128', 'XtsAes256'] as const;
export type EncryptionMethodName = (typeof ENCRYPTION_METHODS)[number];

/** Win32_EncryptableVolume.VolumeType. */
export const VOLUME_TYPE = { os: 0, fixed: 1, removable: 2 } as const;

/** HRESULTs the methods return (FACILITY_FVE 0x8031xxxx, from winerror.h and the method docs). */
export const HRESULT = {
  S_OK: 0,
  S_FALSE: 1,
  E_INVALIDARG: 0x80070057,
  FVE_E_LOCKED_VOLUME: 0x80310000,
  FVE_E_NOT_ENCRYPTED: 0x80310001,
  FVE_E_NO_TPM_BIOS: 0x80310002,
  FVE_E_SECURE_KEY_REQUIRED: 0x80310007,
  FVE_E_NOT_ACTIVATED: 0x80310008,
  FVE_E_TPM_NOT_OWNED: 0x80310018,
  FVE_E_KEY_REQUIRED: 0x8031001d,
  FVE_E_VOLUME_BOUND_ALREADY: 0x8031001f,
  FVE_E_OS_NOT_PROTECTED: 0x80310020,
  FVE_E_INVALID_PROTECTOR_TYPE: 0x8031003a,
  /** Not a FVE code: what a test injects for "the directory could not be reached". */
  HRESULT_FROM_WIN32_ERROR_NO_SUCH_DOMAIN: 0x8007054b,
} as const;

// ------------------------------------------------------------------------------------------------
// Machine state
// ------------------------------------------------------------------------------------------------

export type SimProtector = { id: string; type: KeyProtectorName; password?: string };

export type SimVolume = {
  /** `\\?\Volume{guid}\`: Win32_EncryptableVolume.DeviceID. */
  deviceId: string;
  /** `C:`, or null for a volume without a drive letter. */
  driveLetter: string | null;
  kind: 'os' | 'fixed' | 'removable';
  label: string;
  status: ConversionStatusName;
  /** Key protectors enabled (EnableKeyProtectors / Suspend-BitLocker). Reported "On" only once fully encrypted. */
  protection: 'On' | 'Off';
  locked: boolean;
  method: EncryptionMethodName;
  /** 0-100, may have a fraction (GetConversionStatus with a PrecisionFactor reports it). */
  percentage: number;
  /** Encrypt(..., flags 1): used space only. */
  usedSpaceOnly: boolean;
  autoUnlock: boolean;
  protectors: SimProtector[];
};

export type SimTpm = { present: boolean; ready: boolean; enabled: boolean; activated: boolean; specVersion: string; manufacturer: string };

/** One record as Get-WinEvent returns it: the agent reads Id, TimeCreated, the XML data fields and the message. */
export type SimEvent = {
  id: number;
  logName: string;
  provider: string;
  /** UTC, .NET round-trip format with 7 fractional digits. */
  time: string;
  data: { name: string; value: string }[];
  message: string;
};

/** One call the agent made through CIM or manage-bde, for assertions on what it did. */
export type SimCall = { via: 'cim' | 'manage-bde'; method: string; volume: string | null; args: Record<string, unknown>; returnValue: number };

/** What watchers (the escrow checker) are told after a call that changed a volume: the protectors as they were right after it. */
export type SimChange = { method: string; volume: SimVolume; protectors: SimProtector[]; args: Record<string, unknown> };

export class CimError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CimException';
  }
}

export function newRecoveryPassword(): string {
  const b = randomBytes(16);
  return Array.from({ length: 8 }, (_, i) => String(b.readUInt16LE(i * 2) * 11).padStart(6, '0')).join('-');
}
export const newProtectorId = (): string => `{${randomUUID().toUpperCase()}}`;
const newVolumeDeviceId = (): string => `\\\\?\\Volume{${randomUUID()}}\\`;

/** Protector IDs compare without braces and case, as the agent compares them. */
export const sameGuid = (a: string | null | undefined, b: string | null | undefined): boolean =>
  a != null && b != null && a.replace(/[{}\s]/g, '').toLowerCase() === b.replace(/[{}\s]/g, '').toLowerCase();

/** Windows' round-trip time format: `2026-12-06T09:41:07.1234567Z`. */
export function roundTrip(ms: number, ticks = 0): string {
  const iso = new Date(ms).toISOString(); // …T09:41:07.123Z
  return `${iso.slice(0, 23)}${String(ticks).padStart(4, '0')}Z`;
}

type Injected = { method: string; hresult: number; volume: string | null; times: number };
type InjectedNative = { args: RegExp; exitCode: number; output: string; times: number };
type InjectedNetwork = { path: RegExp; times: number; message: string };

/** Event templates: the EventData field names each event carries (see bitlocker-domain.md §4.6). */
const API_LOG = 'Microsoft-Windows-BitLocker/BitLocker Management';
const API_PROVIDER = 'Microsoft-Windows-BitLocker-API';
const DRIVER_PROVIDER = 'Microsoft-Windows-BitLocker-Driver';

export class SimMachine {
  volumes: SimVolume[] = [];
  tpm: SimTpm = { present: true, ready: true, enabled: true, activated: true, specVersion: '2.0, 0, 1.59', manufacturer: 'FAKE' };
  /** dsregcmd's DeviceId, or null when the machine is not Entra joined. */
  entraDeviceId: string | null = null;
  entraTenantId: string | null = null;
  /**
   * The account that joined the machine to Entra ID: UserEmail of the JoinInfo registry entry
   * (only on a joined machine). Windows writes `fooUser@…` on hybrid-joined and pre-provisioned
   * devices and `package_<guid>@…` for a bulk-enrolment package; null: the value is absent.
   */
  entraJoinUser: string | null = null;
  domainJoined = false;
  domain = 'WORKGROUP';
  secureBoot: boolean | null = true;
  os = { caption: 'Microsoft Windows 11 Pro', version: '10.0.22631', build: '22631' };
  /** manage-bde's language. */
  locale: 'en' | 'de' = 'en';
  /** The process runs as SYSTEM or an elevated administrator. */
  elevated = true;
  /** Another process holds %ProgramData%\Keywarden\agent.lock (FileShare.None). */
  lockHeldElsewhere = false;
  /** The whole CIM provider fails (broken WMI repository): every CIM call throws. */
  cimBroken = false;
  /** manage-bde.exe exists. */
  hasManageBde = true;
  /** Files the agent reads or deletes (enroll.token, -EnrollmentTokenFile), by full path. */
  files = new Map<string, string>();
  /** Environment variables of the agent's process. */
  env: Record<string, string | undefined> = {};
  eventLog: SimEvent[] = [];
  /** Every CIM method call and manage-bde run the agent made, in order. */
  calls: SimCall[] = [];
  /** Told after every change the agent makes through CIM (not after test-side helpers). */
  readonly watchers: ((change: SimChange) => void | Promise<void>)[] = [];
  private readonly pending: Promise<void>[] = [];
  private injected: Injected[] = [];
  private injectedNative: InjectedNative[] = [];
  private injectedNetwork: InjectedNetwork[] = [];
  private lastEventMs = 0;
  private lastEventTicks = 0;

  constructor(
    readonly hostname: string,
    readonly serial = `FAKE-SN-${randomBytes(4).toString('hex').toUpperCase()}`,
    readonly smbiosUuid = randomUUID().toUpperCase(),
  ) {
    this.addVolume({
      driveLetter: 'C:',
      kind: 'os',
      label: 'Windows',
      protectors: [
        { id: newProtectorId(), type: 'Tpm' },
        { id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() },
      ],
    });
  }

  // ---------------------------------------------------------------------------------- set-up

  /** Adds a volume; defaults: fixed, fully encrypted XtsAes128, protection on, unlocked, no protectors. */
  addVolume(v: Partial<SimVolume> & { driveLetter: string | null }): SimVolume {
    const volume: SimVolume = {
      deviceId: newVolumeDeviceId(),
      kind: 'fixed',
      label: '',
      status: 'FullyEncrypted',
      protection: 'On',
      locked: false,
      method: 'XtsAes128',
      percentage: 100,
      usedSpaceOnly: false,
      autoUnlock: false,
      protectors: [],
      ...v,
    };
    this.volumes.push(volume);
    return volume;
  }

  /** An unencrypted volume: what enable-encryption starts from. */
  addDecryptedVolume(driveLetter: string | null, kind: 'os' | 'fixed' | 'removable' = 'fixed'): SimVolume {
    return this.addVolume({ driveLetter, kind, status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0 });
  }

  /** A volume by drive letter (`C:`, `c`) or DeviceID. */
  volume(mountPoint: string): SimVolume {
    const v = this.findVolume(mountPoint);
    if (!v) throw new Error(`the simulated machine has no volume ${mountPoint}`);
    return v;
  }

  findVolume(mountPoint: string): SimVolume | undefined {
    const want = mountPoint.trim().toUpperCase().replace(/\\$/, '');
    return this.volumes.find((x) => (x.driveLetter && x.driveLetter.toUpperCase() === want.replace(/^([A-Z])$/, '$1:')) || x.deviceId.toUpperCase().replace(/\\$/, '') === want);
  }

  /** The mount point the agent reports: the drive letter, or the DeviceID for a volume without one. */
  static mountPointOf(v: SimVolume): string {
    return v.driveLetter ?? v.deviceId;
  }

  recoveryPasswords(mountPoint: string): SimProtector[] {
    return this.volume(mountPoint).protectors.filter((p) => p.type === 'RecoveryPassword');
  }

  /** manage-bde -protectors -add X: -RecoveryPassword by an administrator (logs 775). */
  addRecoveryPassword(mountPoint: string): SimProtector {
    const v = this.volume(mountPoint);
    const p: SimProtector = { id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() };
    v.protectors.push(p);
    this.logProtectorEvent(775, v, p);
    return p;
  }

  /** manage-bde -protectors -delete by an administrator (logs 776). No last-recovery-password guard. */
  removeProtector(mountPoint: string, id: string): void {
    const v = this.volume(mountPoint);
    const target = v.protectors.find((p) => sameGuid(p.id, id));
    if (!target) return;
    v.protectors = v.protectors.filter((p) => p !== target);
    this.logProtectorEvent(776, v, target);
  }

  /** Background conversion finished: an encrypting volume becomes fully encrypted. */
  finishConversion(mountPoint: string): void {
    const v = this.volume(mountPoint);
    if (v.status === 'EncryptionInProgress') Object.assign(v, { status: 'FullyEncrypted', percentage: 100 });
    if (v.status === 'DecryptionInProgress') Object.assign(v, { status: 'FullyDecrypted', percentage: 0, method: 'None' });
  }

  /**
   * Writes an event to the right log with the EventData field names Windows uses. 24652 (a
   * recovery password was used at boot) goes to the System log from the BitLocker driver.
   */
  logEvent(id: number, opts: { protectorId?: string | null; volume?: string | null; time?: string; message?: string } = {}): SimEvent {
    const v = opts.volume ? this.findVolume(opts.volume) : undefined;
    const mount = opts.volume ?? '';
    const volumeName = v?.deviceId ?? '';
    const guid = opts.protectorId ?? '';
    const driver = id === 24652;
    // The driver's 24652 names the volume by its GUID path only (the agent maps it to a letter
    // through Win32_Volume) and the protector OptionalGUID; its first field is a length.
    const data: { name: string; value: string }[] = driver
      ? [
          { name: 'VolumeNameLength', value: String(volumeName.length) },
          { name: 'Volume', value: volumeName },
          { name: 'RecoveryReason', value: '0' },
          { name: 'OptionalGUID', value: guid },
        ]
      : [
          { name: 'VolumeName', value: volumeName },
          { name: 'VolumeMountPoint', value: mount },
          { name: 'ProtectorGUID', value: guid },
          { name: 'ProtectorType', value: '3' },
        ];
    const e: SimEvent = {
      id,
      logName: driver ? 'System' : API_LOG,
      provider: driver ? DRIVER_PROVIDER : API_PROVIDER,
      time: opts.time ?? this.nextEventTime(),
      data: data.filter((d) => d.value !== ''),
      message: opts.message ?? `BitLocker event ${id} for volume ${mount}. Protector GUID: ${guid}`,
    };
    this.eventLog.push(e);
    return e;
  }

  /** Events newer than a 7-digit time string, oldest first (Get-WinEvent with a StartTime). */
  events(logName: string, ids: readonly number[], startTime: string): SimEvent[] {
    return this.eventLog.filter((e) => e.logName === logName && ids.includes(e.id) && e.time >= startTime).sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  }

  /** Strictly increasing event times with 100 ns ticks, so that a cursor never skips an event. */
  private nextEventTime(): string {
    const now = Date.now();
    if (now > this.lastEventMs) {
      this.lastEventMs = now;
      this.lastEventTicks = randomBytes(1)[0]! % 50;
    } else {
      this.lastEventTicks += 1;
      if (this.lastEventTicks > 9999) {
        this.lastEventMs += 1;
        this.lastEventTicks = 0;
      }
    }
    return roundTrip(this.lastEventMs, this.lastEventTicks);
  }

  private logProtectorEvent(id: 775 | 776, v: SimVolume, p: SimProtector): void {
    this.logEvent(id, { protectorId: p.id, volume: SimMachine.mountPointOf(v) });
  }

  // ---------------------------------------------------------------------------------- failure injection

  /** The next `times` calls of a CIM method (on one volume, or any) return this HRESULT and change nothing. */
  failMethod(method: string, hresult: number, opts: { volume?: string; times?: number } = {}): void {
    const volume = opts.volume ? this.volume(opts.volume).deviceId : null;
    this.injected.push({ method, hresult, volume, times: opts.times ?? 1 });
  }

  /** The next `times` manage-bde runs whose arguments match fail with this exit code and text. */
  failManageBde(args: RegExp, opts: { exitCode?: number; output?: string; times?: number } = {}): void {
    this.injectedNative.push({ args, exitCode: opts.exitCode ?? -2147024891, output: opts.output ?? 'ERROR: An attempt to access a required resource was denied.', times: opts.times ?? 1 });
  }

  /** The next `times` requests to a matching URL path fail before reaching the server (DNS, proxy, TLS…). */
  failNetwork(path: RegExp, opts: { times?: number; message?: string } = {}): void {
    this.injectedNetwork.push({ path, times: opts.times ?? 1, message: opts.message ?? 'Unable to connect to the remote server' });
  }

  /** Called by the agent's transport before each request: throws when a network failure is injected for it. */
  network(path: string): void {
    const hit = this.injectedNetwork.find((n) => n.times > 0 && n.path.test(path));
    if (!hit) return;
    hit.times -= 1;
    throw new Error(hit.message);
  }

  /** Waits until every watcher has looked at the changes so far (the agent calls it after each change). */
  async settle(): Promise<void> {
    while (this.pending.length) await this.pending.shift();
  }

  private changed(method: string, volume: SimVolume, args: Record<string, unknown>): void {
    const protectors = volume.protectors.map((p) => ({ ...p }));
    for (const w of this.watchers) {
      const r = w({ method, volume, protectors, args });
      if (r) this.pending.push(r);
    }
  }

  // ---------------------------------------------------------------------------------- CIM: root/cimv2

  private cim(): void {
    if (this.cimBroken) throw new CimError('Provider load failure (0x80041013): the WMI repository is inconsistent.');
  }

  /** Get-CimInstance Win32_ComputerSystem / Win32_BIOS / Win32_ComputerSystemProduct / Win32_OperatingSystem. */
  computerSystem() {
    this.cim();
    return {
      Name: this.hostname.slice(0, 15),
      DNSHostName: this.hostname,
      PartOfDomain: this.domainJoined,
      Domain: this.domainJoined ? this.domain : 'WORKGROUP',
      Workgroup: this.domainJoined ? null : this.domain,
      Manufacturer: 'FAKE',
      Model: 'Simulator',
    };
  }
  bios() {
    this.cim();
    return { SerialNumber: this.serial };
  }
  computerSystemProduct() {
    this.cim();
    return { UUID: this.smbiosUuid };
  }
  operatingSystem() {
    this.cim();
    return { Caption: this.os.caption, Version: this.os.version, BuildNumber: this.os.build };
  }
  /** Win32_Volume (DriveType 2 = removable, 3 = fixed). */
  win32Volumes() {
    this.cim();
    return this.volumes.map((v) => ({ DriveLetter: v.driveLetter, DeviceID: v.deviceId, DriveType: v.kind === 'removable' ? 2 : 3 }));
  }
  /** [System.IO.DriveInfo]::GetDrives(): works without WMI. */
  driveInfo() {
    return this.volumes.filter((v) => v.driveLetter).map((v) => ({ Name: `${v.driveLetter}\\`, DriveType: v.kind === 'removable' ? 'Removable' : 'Fixed' }));
  }
  /** %SystemDrive%. */
  get systemDrive(): string {
    return this.volumes.find((v) => v.kind === 'os')?.driveLetter ?? 'C:';
  }
  /** Get-Tpm (throws when there is no TPM, as the cmdlet does on machines without one). */
  getTpm() {
    if (!this.tpm.present) throw new Error('TPM is not present or is disabled in the BIOS.');
    return { TpmPresent: true, TpmReady: this.tpm.ready, TpmEnabled: this.tpm.enabled, TpmActivated: this.tpm.activated, ManufacturerIdTxt: this.tpm.manufacturer };
  }
  /** root/cimv2/Security/MicrosoftTpm Win32_Tpm: no instance without a TPM. */
  win32Tpm() {
    this.cim();
    if (!this.tpm.present) return null;
    return { SpecVersion: this.tpm.specVersion, ManufacturerIdTxt: this.tpm.manufacturer, IsEnabled_InitialValue: this.tpm.enabled, IsActivated_InitialValue: this.tpm.activated };
  }
  /** dsregcmd /status, the lines the agent reads. */
  dsregStatus(): string {
    const joined = this.entraDeviceId !== null;
    return [
      '+----------------------------------------------------------------------+',
      '| Device State                                                         |',
      '+----------------------------------------------------------------------+',
      '',
      `             AzureAdJoined : ${joined ? 'YES' : 'NO'}`,
      `          EnterpriseJoined : NO`,
      `              DomainJoined : ${this.domainJoined ? 'YES' : 'NO'}`,
      ...(joined ? [`                  DeviceId : ${this.entraDeviceId}`, `                  TenantId : ${this.entraTenantId ?? '00000000-0000-4000-8000-000000000000'}`] : []),
      '',
      `           WorkplaceJoined : NO`,
    ].join('\r\n');
  }

  /**
   * Get-ChildItem HKLM:\SYSTEM\CurrentControlSet\Control\CloudDomainJoin\JoinInfo with each
   * subkey's UserEmail: one entry, named by the device certificate's thumbprint, on a joined machine.
   */
  joinInfo(): { name: string; UserEmail: string | null }[] {
    if (this.entraDeviceId === null) return [];
    const thumbprint = createHash('sha1').update(this.entraDeviceId).digest('hex').toUpperCase();
    return [{ name: thumbprint, UserEmail: this.entraJoinUser }];
  }

  // ---------------------------------------------------------------------------------- CIM: Win32_EncryptableVolume

  /** Get-CimInstance -Namespace root/cimv2/Security/MicrosoftVolumeEncryption -ClassName Win32_EncryptableVolume. */
  encryptableVolumes(): { DeviceID: string; DriveLetter: string | null; VolumeType: number; PersistentVolumeID: string }[] {
    this.cim();
    return this.volumes.map((v) => ({ DeviceID: v.deviceId, DriveLetter: v.driveLetter, VolumeType: VOLUME_TYPE[v.kind], PersistentVolumeID: v.deviceId.replace(/^\\\\\?\\Volume/, '').replace(/\\$/, '') }));
  }

  /**
   * Invoke-CimMethod on one Win32_EncryptableVolume instance. Returns the method's out parameters
   * with ReturnValue (an HRESULT); throws a CimError when the provider or the instance is gone.
   */
  invoke(deviceId: string, method: string, args: Record<string, unknown> = {}): Record<string, unknown> & { ReturnValue: number } {
    this.cim();
    const v = this.volumes.find((x) => x.deviceId === deviceId);
    if (!v) throw new CimError(`Not found: Win32_EncryptableVolume.DeviceID="${deviceId}"`);
    const injected = this.injected.find((i) => i.times > 0 && i.method === method && (i.volume === null || i.volume === v.deviceId));
    let out: Record<string, unknown> & { ReturnValue: number };
    if (injected) {
      injected.times -= 1;
      out = { ReturnValue: injected.hresult };
    } else {
      out = this.method(v, method, args);
    }
    this.calls.push({ via: 'cim', method, volume: SimMachine.mountPointOf(v), args, returnValue: out.ReturnValue });
    if (out.ReturnValue === 0 && MUTATING.has(method)) this.changed(method, v, args);
    return out;
  }

  private method(v: SimVolume, method: string, args: Record<string, unknown>): Record<string, unknown> & { ReturnValue: number } {
    const ok = (extra: Record<string, unknown> = {}) => ({ ReturnValue: 0, ...extra });
    const fail = (hr: number) => ({ ReturnValue: hr });
    const find = (id: unknown) => v.protectors.find((p) => sameGuid(p.id, String(id ?? '')));
    const typeNumber = (t: KeyProtectorName) => KEY_PROTECTOR_TYPES.indexOf(t);
    switch (method) {
      case 'GetKeyProtectors': {
        const want = Number(args.KeyProtectorType ?? 0);
        return ok({ VolumeKeyProtectorID: v.protectors.filter((p) => want === 0 || typeNumber(p.type) === want).map((p) => p.id) });
      }
      case 'GetKeyProtectorType': {
        const p = find(args.VolumeKeyProtectorID);
        return p ? ok({ KeyProtectorType: typeNumber(p.type) }) : fail(HRESULT.E_INVALIDARG);
      }
      case 'GetKeyProtectorNumericalPassword': {
        if (v.locked) return fail(HRESULT.FVE_E_LOCKED_VOLUME);
        const p = find(args.VolumeKeyProtectorID);
        if (!p) return fail(HRESULT.E_INVALIDARG);
        if (p.type !== 'RecoveryPassword') return fail(HRESULT.FVE_E_INVALID_PROTECTOR_TYPE);
        return ok({ NumericalPassword: p.password });
      }
      case 'GetConversionStatus': {
        if (v.locked) return fail(HRESULT.FVE_E_LOCKED_VOLUME);
        const precision = Math.min(Math.max(Number(args.PrecisionFactor ?? 0), 0), 4);
        return ok({
          ConversionStatus: CONVERSION_STATUS.indexOf(v.status),
          EncryptionPercentage: Math.round(v.percentage * 10 ** precision),
          EncryptionFlags: v.usedSpaceOnly ? 1 : 0,
          WipingStatus: 0,
          WipingPercentage: 0,
        });
      }
      case 'GetProtectionStatus':
        return ok({ ProtectionStatus: v.locked ? 2 : v.status === 'FullyEncrypted' && v.protection === 'On' ? 1 : 0 });
      case 'GetLockStatus':
        return ok({ LockStatus: v.locked ? 1 : 0 });
      case 'GetEncryptionMethod':
        return ok({ EncryptionMethod: ENCRYPTION_METHODS.indexOf(v.method), SelfEncryptionDriveEncryptionMethod: '' });
      case 'ProtectKeyWithNumericalPassword': {
        if (v.locked) return fail(HRESULT.FVE_E_LOCKED_VOLUME);
        // Without a NumericalPassword argument Windows generates one (the agent never passes one).
        const given = args.NumericalPassword == null ? null : String(args.NumericalPassword);
        const p: SimProtector = { id: newProtectorId(), type: 'RecoveryPassword', password: given ?? newRecoveryPassword() };
        v.protectors.push(p);
        this.logProtectorEvent(775, v, p);
        return ok({ VolumeKeyProtectorID: p.id });
      }
      case 'ProtectKeyWithTPM': {
        if (v.kind !== 'os') return fail(HRESULT.E_INVALIDARG);
        if (!this.tpm.present) return fail(HRESULT.FVE_E_NO_TPM_BIOS);
        if (!this.tpm.ready) return fail(HRESULT.FVE_E_TPM_NOT_OWNED);
        const p: SimProtector = { id: newProtectorId(), type: 'Tpm' };
        v.protectors.push(p);
        this.logProtectorEvent(775, v, p);
        return ok({ VolumeKeyProtectorID: p.id });
      }
      case 'ProtectKeyWithExternalKey': {
        if (v.locked) return fail(HRESULT.FVE_E_LOCKED_VOLUME);
        const p: SimProtector = { id: newProtectorId(), type: 'ExternalKey' };
        v.protectors.push(p);
        this.logProtectorEvent(775, v, p);
        return ok({ VolumeKeyProtectorID: p.id });
      }
      case 'DeleteKeyProtector': {
        if (v.locked) return fail(HRESULT.FVE_E_LOCKED_VOLUME);
        const p = find(args.VolumeKeyProtectorID);
        if (!p) return fail(HRESULT.E_INVALIDARG);
        // Windows keeps the last protector of an encrypted volume with protection on; it has no
        // opinion about recovery passwords.
        if (v.protectors.length === 1 && v.status !== 'FullyDecrypted' && v.protection === 'On') return fail(HRESULT.FVE_E_KEY_REQUIRED);
        if (p.type === 'ExternalKey' && v.autoUnlock) return fail(HRESULT.FVE_E_VOLUME_BOUND_ALREADY);
        v.protectors = v.protectors.filter((x) => x !== p);
        this.logProtectorEvent(776, v, p);
        return ok();
      }
      case 'Encrypt': {
        if (v.locked) return fail(HRESULT.FVE_E_LOCKED_VOLUME);
        if (v.protectors.length === 0) return fail(HRESULT.FVE_E_SECURE_KEY_REQUIRED);
        // The OS volume needs a protector that unlocks it at boot.
        if (v.kind === 'os' && !v.protectors.some((p) => p.type.startsWith('Tpm') || p.type === 'Password' || p.type === 'ExternalKey')) return fail(HRESULT.FVE_E_SECURE_KEY_REQUIRED);
        if (v.status === 'FullyDecrypted') {
          const m = Number(args.EncryptionMethod ?? 0);
          Object.assign(v, {
            status: 'EncryptionInProgress',
            method: m === 0 ? 'XtsAes128' : (ENCRYPTION_METHODS[m] ?? 'XtsAes128'),
            percentage: 0,
            usedSpaceOnly: (Number(args.EncryptionFlags ?? 0) & 1) === 1,
            protection: 'On',
          });
        } else if (v.status === 'EncryptionSuspended') {
          v.status = 'EncryptionInProgress';
        }
        return ok();
      }
      case 'ResumeConversion':
        if (v.locked) return fail(HRESULT.FVE_E_LOCKED_VOLUME);
        if (v.status === 'EncryptionSuspended') v.status = 'EncryptionInProgress';
        if (v.status === 'DecryptionSuspended') v.status = 'DecryptionInProgress';
        return ok();
      case 'EnableKeyProtectors':
        if (v.protectors.length === 0) return fail(HRESULT.FVE_E_SECURE_KEY_REQUIRED);
        if (v.status === 'FullyDecrypted') return fail(HRESULT.FVE_E_NOT_ACTIVATED);
        v.protection = 'On';
        return ok();
      case 'IsAutoUnlockEnabled': {
        const ext = v.protectors.find((p) => p.type === 'ExternalKey');
        return ok({ IsAutoUnlockEnabled: v.autoUnlock, VolumeKeyProtectorID: v.autoUnlock && ext ? ext.id : '' });
      }
      case 'EnableAutoUnlock': {
        const os = this.volumes.find((x) => x.kind === 'os');
        if (v.kind === 'os') return fail(HRESULT.E_INVALIDARG);
        if (!os || os.status !== 'FullyEncrypted' || os.protection !== 'On') return fail(HRESULT.FVE_E_OS_NOT_PROTECTED);
        const p = find(args.VolumeKeyProtectorID);
        if (!p || p.type !== 'ExternalKey') return fail(HRESULT.E_INVALIDARG);
        v.autoUnlock = true;
        return ok();
      }
      case 'BackupRecoveryInformationToActiveDirectory':
      case 'BackupRecoveryInformationToCloudDomain': {
        const ad = method === 'BackupRecoveryInformationToActiveDirectory';
        const p = find(args.VolumeKeyProtectorID);
        if (v.status === 'FullyDecrypted' && v.protectors.length === 0) return fail(HRESULT.FVE_E_NOT_ACTIVATED);
        if (!p) return fail(HRESULT.E_INVALIDARG);
        if (p.type !== 'RecoveryPassword') return fail(HRESULT.FVE_E_INVALID_PROTECTOR_TYPE);
        // A device not joined to that directory: Windows answers S_FALSE (AD) or an error (Entra).
        const joined = ad ? this.domainJoined : this.entraDeviceId !== null;
        if (!joined) {
          this.logEvent(ad ? 785 : 846, { protectorId: p.id, volume: SimMachine.mountPointOf(v) });
          return fail(ad ? HRESULT.S_FALSE : HRESULT.HRESULT_FROM_WIN32_ERROR_NO_SUCH_DOMAIN);
        }
        this.logEvent(ad ? 784 : 845, { protectorId: p.id, volume: SimMachine.mountPointOf(v) });
        return ok();
      }
      default:
        throw new CimError(`Method not found: Win32_EncryptableVolume.${method}`);
    }
  }

  // ---------------------------------------------------------------------------------- manage-bde

  /**
   * manage-bde.exe run with these arguments: its exit code and stdout (English or German, as the
   * localized tool prints it). Read-only commands and -adbackup/-aadbackup are modelled.
   */
  manageBde(args: string[]): { exitCode: number; stdout: string } {
    const line = args.join(' ');
    const injected = this.injectedNative.find((n) => n.times > 0 && n.args.test(line));
    let result: { exitCode: number; stdout: string };
    if (!this.hasManageBde) throw new Error('The term manage-bde.exe is not recognized.');
    if (injected) {
      injected.times -= 1;
      result = { exitCode: injected.exitCode, stdout: `${this.bdeBanner()}\r\n${injected.output}\r\n` };
    } else {
      result = this.runManageBde(args);
    }
    this.calls.push({ via: 'manage-bde', method: line, volume: args[2] ?? null, args: { args }, returnValue: result.exitCode });
    return result;
  }

  private runManageBde(args: string[]): { exitCode: number; stdout: string } {
    const de = this.locale === 'de';
    const [cmd, sub, target, idFlag, id] = args.map((a) => a.toLowerCase());
    if (cmd === '-status') return { exitCode: 0, stdout: this.bdeStatus() };
    if (cmd === '-protectors' && (sub === '-get' || sub === '-adbackup' || sub === '-aadbackup') && target) {
      const v = this.findVolume(args[2]!);
      if (!v) return { exitCode: -1, stdout: `${this.bdeBanner()}\r\n${de ? 'FEHLER' : 'ERROR'}: ${de ? 'Ungültiges Volume' : 'An invalid volume was specified'} "${args[2]}".\r\n` };
      const wanted = idFlag === '-id' && id ? v.protectors.find((p) => sameGuid(p.id, id)) : undefined;
      if (idFlag === '-id' && !wanted) return { exitCode: -1, stdout: `${this.bdeBanner()}\r\n${de ? 'FEHLER: Die Schlüsselschutzvorrichtung wurde nicht gefunden.' : 'ERROR: The key protector cannot be found.'}\r\n` };
      if (sub === '-get') return { exitCode: 0, stdout: this.bdeProtectors(v, wanted) };
      const ad = sub === '-adbackup';
      const joined = ad ? this.domainJoined : this.entraDeviceId !== null;
      if (!wanted || wanted.type !== 'RecoveryPassword') return { exitCode: -1, stdout: `${this.bdeBanner()}\r\nERROR: ${HRESULT.FVE_E_INVALID_PROTECTOR_TYPE.toString(16)}\r\n` };
      this.logEvent(joined ? (ad ? 784 : 845) : ad ? 785 : 846, { protectorId: wanted.id, volume: SimMachine.mountPointOf(v) });
      if (!joined) return { exitCode: -1, stdout: `${this.bdeBanner()}\r\nERROR: Group Policy does not permit the storage of recovery information.\r\n` };
      return { exitCode: 0, stdout: `${this.bdeBanner()}\r\n${de ? 'Die Wiederherstellungsinformationen wurden gesichert.' : 'Recovery information was successfully backed up.'}\r\n` };
    }
    return { exitCode: -1, stdout: `${this.bdeBanner()}\r\nERROR: unsupported command line in the simulator: ${args.join(' ')}\r\n` };
  }

  private bdeBanner(): string {
    return this.locale === 'de'
      ? 'BitLocker-Laufwerkverschlüsselung: Konfigurationstool, Version 10.0.22631\r\nCopyright (C) 2013 Microsoft Corporation. Alle Rechte vorbehalten.\r\n'
      : 'BitLocker Drive Encryption: Configuration Tool version 10.0.22631\r\nCopyright (C) 2013 Microsoft Corporation. All rights reserved.\r\n';
  }

  private bdeHeader(v: SimVolume): string {
    const name = v.driveLetter ?? v.deviceId;
    return this.locale === 'de' ? `Volume "${name}" [${v.label}]` : `Volume ${name} [${v.label}]`;
  }

  private bdeStatus(): string {
    const de = this.locale === 'de';
    const W = de ? MBDE_DE : MBDE_EN;
    const out = [this.bdeBanner(), de ? 'Datenträgervolumes, die mit BitLocker-Laufwerkverschlüsselung\r\ngeschützt werden können:' : 'Disk volumes that can be protected with\r\nBitLocker Drive Encryption:'];
    for (const v of this.volumes) {
      const pct = v.locked ? W.unknown : `${v.percentage.toFixed(1).replace('.', de ? ',' : '.')}${de ? ' %' : '%'}`;
      const status = v.locked ? W.unknown : v.status === 'FullyEncrypted' && v.usedSpaceOnly ? W.usedSpaceOnly : W.status[v.status];
      const protection = v.locked ? W.unknown : v.status === 'FullyEncrypted' && v.protection === 'On' ? W.protectionOn : W.protectionOff;
      out.push(
        this.bdeHeader(v),
        `[${v.kind === 'os' ? W.osVolume : v.kind === 'removable' ? W.removableVolume : W.dataVolume}]`,
        '',
        `    ${W.labels.conversion}${status}`,
        `    ${W.labels.percentage}${pct}`,
        `    ${W.labels.method}${W.method[v.method]}`,
        `    ${W.labels.protection}${protection}`,
        `    ${W.labels.lock}${v.locked ? W.locked : W.unlocked}`,
        v.protectors.length ? `    ${W.labels.protectors}\r\n${v.protectors.map((p) => `        ${W.shortType[p.type]}`).join('\r\n')}` : `    ${W.labels.protectors}${W.noneFound}`,
        '',
      );
    }
    return out.join('\r\n');
  }

  private bdeProtectors(v: SimVolume, only?: SimProtector): string {
    const de = this.locale === 'de';
    const W = de ? MBDE_DE : MBDE_EN;
    const out = [this.bdeBanner(), this.bdeHeader(v), W.allProtectors, ''];
    const list = only ? [only] : v.protectors;
    if (list.length === 0) out.push(W.noProtectors);
    for (const p of list) {
      out.push(`    ${p.type === 'ExternalKey' && v.autoUnlock ? W.autoUnlockHeader : W.header[p.type]}:`, `      ID: ${p.id}`);
      // A locked volume's passwords cannot be read.
      if (p.type === 'RecoveryPassword' && !v.locked) out.push(`      ${W.passwordLabel}`, `        ${p.password}`);
      out.push('');
    }
    return out.join('\r\n');
  }
}

const MUTATING = new Set([
  'ProtectKeyWithNumericalPassword',
  'ProtectKeyWithTPM',
  'ProtectKeyWithExternalKey',
  'DeleteKeyProtector',
  'Encrypt',
  'ResumeConversion',
  'EnableKeyProtectors',
  'EnableAutoUnlock',
]);

type Words = {
  unknown: string;
  usedSpaceOnly: string;
  status: Record<ConversionStatusName, string>;
  method: Record<EncryptionMethodName, string>;
  protectionOn: string;
  protectionOff: string;
  locked: string;
  unlocked: string;
  osVolume: string;
  dataVolume: string;
  removableVolume: string;
  noneFound: string;
  labels: { conversion: string; percentage: string; method: string; protection: string; lock: string; protectors: string };
  shortType: Record<KeyProtectorName, string>;
  header: Record<KeyProtectorName, string>;
  autoUnlockHeader: string;
  allProtectors: string;
  noProtectors: string;
  passwordLabel: string;
};

/** English manage-bde wording (test/fixtures/agent/checkin-manage-bde.json, verified strings). */
const MBDE_EN: Words = {
  unknown: 'Unknown',
  usedSpaceOnly: 'Used Space Only Encrypted',
  status: {
    FullyDecrypted: 'Fully Decrypted',
    FullyEncrypted: 'Fully Encrypted',
    EncryptionInProgress: 'Encryption in Progress',
    DecryptionInProgress: 'Decryption in Progress',
    EncryptionSuspended: 'Encryption Paused',
    DecryptionSuspended: 'Decryption Paused',
  },
  method: { None: 'None', Aes128Diffuser: 'AES 128 with Diffuser', Aes256Diffuser: 'AES 256 with Diffuser', Aes128: 'AES 128', Aes256: 'AES 256', Hardware: 'Hardware Encryption', XtsAes128: 'XTS-AES 128', XtsAes256: 'XTS-AES 256' },
  protectionOn: 'Protection On',
  protectionOff: 'Protection Off',
  locked: 'Locked',
  unlocked: 'Unlocked',
  osVolume: 'OS Volume',
  dataVolume: 'Data Volume',
  removableVolume: 'Data Volume',
  noneFound: 'None Found',
  labels: {
    conversion: 'Conversion Status:    ',
    percentage: 'Percentage Encrypted: ',
    method: 'Encryption Method:    ',
    protection: 'Protection Status:    ',
    lock: 'Lock Status:          ',
    protectors: 'Key Protectors:       ',
  },
  shortType: {
    Unknown: 'Unknown',
    Tpm: 'TPM',
    ExternalKey: 'External Key',
    RecoveryPassword: 'Numerical Password',
    TpmPin: 'TPM And PIN',
    TpmStartupKey: 'TPM And Startup Key',
    TpmPinStartupKey: 'TPM And PIN And Startup Key',
    PublicKey: 'Data Recovery Agent (Certificate Based)',
    Password: 'Password',
    TpmNetworkKey: 'TPM And Network Key',
    AdAccountOrGroup: 'Active Directory Account Or Group',
  },
  header: {
    Unknown: 'Unknown',
    Tpm: 'TPM',
    ExternalKey: 'External Key',
    RecoveryPassword: 'Numerical Password',
    TpmPin: 'TPM And PIN',
    TpmStartupKey: 'TPM And Startup Key',
    TpmPinStartupKey: 'TPM And PIN And Startup Key',
    PublicKey: 'Data Recovery Agent (Certificate Based)',
    Password: 'Password',
    TpmNetworkKey: 'TPM And Network Key',
    AdAccountOrGroup: 'Active Directory Account Or Group',
  },
  autoUnlockHeader: 'External Key (Required for automatic unlock)',
  allProtectors: 'All Key Protectors',
  noProtectors: 'ERROR: No key protectors found.',
  passwordLabel: 'Password:',
};

/** German manage-bde wording (test/fixtures/agent/checkin-manage-bde-de.json; verified where the parser says so). */
const MBDE_DE: Words = {
  unknown: 'Unbekannt',
  usedSpaceOnly: 'Nur verwendeter Speicherplatz verschlüsselt',
  status: {
    FullyDecrypted: 'Vollständig entschlüsselt',
    FullyEncrypted: 'Vollständig verschlüsselt',
    EncryptionInProgress: 'Verschlüsselung wird durchgeführt',
    DecryptionInProgress: 'Entschlüsselung wird durchgeführt',
    EncryptionSuspended: 'Verschlüsselung angehalten',
    DecryptionSuspended: 'Entschlüsselung angehalten',
  },
  method: {
    None: 'Kein',
    Aes128Diffuser: 'AES 128 mit Diffuser',
    Aes256Diffuser: 'AES 256 mit Diffuser',
    Aes128: 'AES 128',
    Aes256: 'AES 256',
    Hardware: 'Hardwareverschlüsselung',
    XtsAes128: 'XTS-AES 128',
    XtsAes256: 'XTS-AES 256',
  },
  protectionOn: 'Der Schutz ist aktiviert.',
  protectionOff: 'Der Schutz ist deaktiviert.',
  locked: 'Gesperrt',
  unlocked: 'Entsperrt',
  osVolume: 'Betriebssystemvolume',
  dataVolume: 'Datenvolume',
  removableVolume: 'Datenvolume',
  noneFound: 'Keine gefunden',
  labels: {
    conversion: 'Konvertierungsstatus:         ',
    percentage: 'Verschlüsselt (Prozent):      ',
    method: 'Verschlüsselungsmethode:      ',
    protection: 'Schutzstatus:                 ',
    lock: 'Sperrungsstatus:              ',
    protectors: 'Schlüsselschutzvorrichtungen: ',
  },
  shortType: {
    Unknown: 'Unbekannt',
    Tpm: 'TPM',
    ExternalKey: 'Externer Schlüssel',
    RecoveryPassword: 'Numerisches Kennwort',
    TpmPin: 'TPM und PIN',
    TpmStartupKey: 'TPM und Systemstartschlüssel',
    TpmPinStartupKey: 'TPM und PIN und Systemstartschlüssel',
    PublicKey: 'Datenwiederherstellungs-Agent (zertifikatbasiert)',
    Password: 'Kennwort',
    TpmNetworkKey: 'TPM und Netzwerkschlüssel',
    AdAccountOrGroup: 'Active Directory-Konto oder -Gruppe',
  },
  header: {
    Unknown: 'Unbekannt',
    Tpm: 'TPM',
    ExternalKey: 'Externer Schlüssel',
    RecoveryPassword: 'Numerisches Kennwort',
    TpmPin: 'TPM und PIN',
    TpmStartupKey: 'TPM und Systemstartschlüssel',
    TpmPinStartupKey: 'TPM und PIN und Systemstartschlüssel',
    PublicKey: 'Datenwiederherstellungs-Agent (zertifikatbasiert)',
    Password: 'Kennwort',
    TpmNetworkKey: 'TPM und Netzwerkschlüssel',
    AdAccountOrGroup: 'Active Directory-Konto oder -Gruppe',
  },
  autoUnlockHeader: 'Externer Schlüssel (für automatische Entsperrung erforderlich)',
  allProtectors: 'Alle Schlüsselschutzvorrichtungen',
  noProtectors: 'FEHLER: Es wurden keine Schlüsselschutzvorrichtungen gefunden.',
  passwordLabel: 'Kennwort:',
};
