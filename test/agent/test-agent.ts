import { createHmac } from 'node:crypto';
import { SimMachine, type SimEvent } from './sim-machine.js';

export { SimMachine, newRecoveryPassword, newProtectorId, sameGuid, HRESULT } from './sim-machine.js';
export type { SimProtector, SimVolume } from './sim-machine.js';

/**
 * agent/Keywarden-Agent.ps1 in TypeScript, driving a simulated Windows machine (sim-machine.ts)
 * the way the script drives Windows. One method per script function, named like it in camelCase
 * and marked `// Keywarden-Agent.ps1 <Function-Name> <first>-<last line>`; the script's main
 * block is run(). script-map.test.ts fails when a name or a line range no longer matches the
 * script, and when a script function is neither here nor in its list of unmodelled functions.
 * README.md in this folder explains the mapping and every remaining difference.
 */

export type Transport = (req: {
  method: 'POST';
  url: string;
  /** The body as an object (for transports that serialize it themselves). */
  body: unknown;
  /** The exact JSON text the agent sends (ConvertTo-AgentJson), as UTF-8. */
  text?: string;
  headers?: Record<string, string>;
}) => Promise<{ status: number; json: any }>;

export const AGENT_VERSION = '1.2.0';
export const USER_AGENT = `Keywarden-Agent/${AGENT_VERSION}`;
export const STATE_PATH = 'C:\\ProgramData\\Keywarden';
export const STATE_FILE = `${STATE_PATH}\\agent.json`;
export const LOCK_FILE = `${STATE_PATH}\\agent.lock`;
export const LOG_FILE = `${STATE_PATH}\\agent.log`;
export const ENROLL_TOKEN_FILE = `${STATE_PATH}\\enroll.token`;

const PASSWORD_PATTERN = '\\d{6}(-\\d{6}){7}';
const GUID_PATTERN = '[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}';
const KEY_PROTECTOR_TYPE_NAMES = ['Unknown', 'Tpm', 'ExternalKey', 'RecoveryPassword', 'TpmPin', 'TpmStartupKey', 'TpmPinStartupKey', 'PublicKey', 'Password', 'TpmNetworkKey', 'AdAccountOrGroup'];
const CONVERSION_STATUS_NAMES = ['FullyDecrypted', 'FullyEncrypted', 'EncryptionInProgress', 'DecryptionInProgress', 'EncryptionSuspended', 'DecryptionSuspended'];
const PROTECTION_STATUS_NAMES = ['Off', 'On', 'Unknown'];
const LOCK_STATUS_NAMES = ['Unlocked', 'Locked'];
const ENCRYPTION_METHOD_NAMES = ['None', 'Aes128Diffuser', 'Aes256Diffuser', 'Aes128', 'Aes256', 'Hardware', 'XtsAes128', 'XtsAes256'];
const ENCRYPT_METHOD_NUMBERS: Record<string, number> = { Aes128: 3, Aes256: 4, XtsAes128: 6, XtsAes256: 7 };
const TPM_PROTECTOR_TYPES = ['Tpm', 'TpmPin', 'TpmStartupKey', 'TpmPinStartupKey'];
const JOB_KINDS = ['rotate', 'backup', 'backup-to-ad', 'backup-to-entra', 'enable-encryption', 'resume-protection', 'add-recovery-password', 're-escrow'];
const HRESULT_TEXT: Record<string, string> = {
  '0x00000001': 'S_FALSE: Windows did nothing (for a directory backup: group policy does not allow it, or the device is not joined)',
  '0x80070057': 'E_INVALIDARG: a parameter is not valid for this protector or volume',
  '0x80310000': 'FVE_E_LOCKED_VOLUME: the volume is locked',
  '0x80310008': 'FVE_E_NOT_ACTIVATED: BitLocker is not turned on for the volume',
};
const MANAGE_BDE_LETTER_HEADER = /^\s*\S+\s+["']?([A-Za-z]):["']?\s*\[/;
const MANAGE_BDE_GUID_HEADER = /^\s*\S+\s+["']?(\\\\\?\\Volume\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}\\?)["']?\s*\[/;
const DEFAULT_EVENT_FIELDS = { protector: ['ProtectorGUID'], volume: ['VolumeMountPoint', 'VolumeName'] };
const EVENT_FIELDS: Record<number, { protector: string[]; volume: string[] }> = {
  24652: { protector: ['OptionalGUID', 'ProtectorGUID'], volume: ['VolumeMountPoint', 'Volume', 'VolumeName', 'VolumeGUID'] },
};

export type AgentState = {
  deviceId: string | null;
  credential: string | null;
  fingerprintSalt: string | null;
  lastSeq: number;
  lastEventTime: string | null;
  serverUrl: string | null;
  enrolledAt: string | null;
  lastCheckinAt: string | null;
  nextCheckinSeconds: number | null;
  lastRunAt: string | null;
  lastExitCode: number | null;
  lastMessage: string | null;
};

export type Job = { id: string; kind: string; mountPoint: string | null; protectorId: string | null; encryptionMethod?: string | null; usedSpaceOnly?: boolean | null };
export type JobResult = { jobId: string; status: 'succeeded' | 'failed'; detail: string; newProtectorId?: string; removedProtectorId?: string };
export type RunResult = {
  /** 0 ok, 1 server/network/unexpected, 2 enrollment/credential, 3 BitLocker unreadable / not elevated, 4 a job failed, 5 another run holds the lock. */
  exitCode: number;
  /** What the script prints: the summary lines, then the final line. */
  lines: string[];
  finalLine: string;
  /** The answer to the run's first check-in (null when the run ended before it). */
  checkin: any;
  jobResults: JobResult[];
};
/** One request the agent sent and the answer (status null: it never reached the server). */
export type WireEntry = { path: string; headers: Record<string, string>; text: string; body: any; status: number | null; response: any };

/** Stop-AgentRun: ends the run with a documented exit code; `data` travels with it (KeywardenLastSeq). */
export class AgentStop extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    readonly data: Record<string, unknown> | null = null,
  ) {
    super(message);
  }
}
/** A fail point: the process dies here (no result, no final line, nothing saved beyond what was). */
export class AgentKilled extends Error {}
export type FailPoint = 'after-add-protector' | 'before-remove-protector' | null;

/** A Win32_EncryptableVolume instance as Get-CimInstance returns it. */
type CimInstance = { DeviceID: string; DriveLetter: string | null; VolumeType: number | null };
/** The script's volume hashtable. cim is null for a volume known only to manage-bde. */
export type Volume = { cim: CimInstance | null; mountPoint: string; driveLetter: string | null; deviceId: string | null; volumeType: 'OperatingSystem' | 'Data' };
export type Protector = { id: string; type: string | number | null; typeNumber: number };
type VolumeState = { lock: number | null; conversion: number | null; percentage: number | null; protection: number | null; method: number | null };
type Token = { value: string; source: string; path: string | null };
export type KeyItem = { mountPoint: string; protectorId: string; recoveryPassword: string; volumeType: string };
type Statuses = Map<string, { status: string; reason: string | null }>;
type UploadStatus = { status: string; reason: string | null; text: string };
type Escrow = { protectorId: string | null; added: boolean; text: string | null; tried: Set<string> };
type Identity = ReturnType<TestAgent['getDeviceIdentity']>;
type Entra = ReturnType<TestAgent['getEntraFacts']>;
type VolumePayload = ReturnType<TestAgent['convertToVolumePayload']>;
type VolumeReport = { volumes: VolumePayload[]; manageBde: { status: string; protectors: string } | null; source: string; skipped: string[] };
type EventPayload = { id: number; time: string; protectorId: string | null; volume: string | null };
type EventReport = { items: EventPayload[]; newest: string | null };

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** 100 ns ticks of a round-trip UTC time ("2026-12-06T09:41:07.1234567Z"): .NET DateTime precision. */
function ticksOf(s: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,7}))?Z$/.exec(s);
  if (!m) return BigInt(Date.parse(s)) * 10_000n;
  return BigInt(Date.parse(`${m[1]}Z`)) * 10_000n + BigInt((m[2] ?? '').padEnd(7, '0'));
}
function fromTicks(t: bigint): string {
  return `${new Date(Number(t / 10_000n)).toISOString().slice(0, 19)}.${String(t % 10_000_000n).padStart(7, '0')}Z`;
}
/** [math]::Round(x, 1): .NET rounds half to even. */
function roundHalfEven1(x: number): number {
  const scaled = x * 10;
  const floor = Math.floor(scaled);
  const diff = scaled - floor;
  const r = Math.abs(diff - 0.5) < 1e-9 ? (floor % 2 === 0 ? floor : floor + 1) : Math.round(scaled);
  return r / 10;
}

export class TestAgent {
  /** The script's parameters. */
  params: { serverUrl?: string; enrollmentToken?: string; enrollmentTokenFile?: string; forceReenroll?: boolean; allowInsecureHttp?: boolean } = {
    serverUrl: 'https://keywarden.example.test',
  };
  failPoint: FailPoint = null;
  /** agent.log: every Write-AgentLog line of every run. */
  log: string[] = [];
  /** Every request sent, with its exact text and headers, and the answer. */
  wire: WireEntry[] = [];
  /** The last body sent, for replay tests. */
  lastBody?: { url: string; body: any };
  /** Told about every job result before it is reported (the escrow checker listens here). */
  readonly resultWatchers: ((job: Job, result: JobResult) => void | Promise<void>)[] = [];

  // The script's $script: variables, per run.
  private secrets: string[] = [];
  private summaryLines: string[] = [];
  private exitCode = 0;
  private finalMessage = '';
  private state: AgentState | null = null;
  private stateOnDisk: AgentState | null = null;
  private stateReady = false;
  private baseUrl = '';
  private replayRecoveryUsed = false;
  private commandLineToken: string | null = null;
  private removableIds: Set<string> | null = null;
  private hasManageBde = false;
  private firstCheckin: any = null;
  private results: JobResult[] = [];

  constructor(
    private readonly send: Transport,
    readonly machine: SimMachine,
  ) {}

  // ================================================================================================
  // Test conveniences (not script functions)
  // ================================================================================================

  /** agent.json as it is on the machine, or null. */
  get savedState(): AgentState | null {
    const text = this.machine.files.get(STATE_FILE);
    return text ? (JSON.parse(text) as AgentState) : null;
  }
  get deviceId(): string | undefined {
    return this.savedState?.deviceId ?? undefined;
  }
  /** agent.json's deviceId is informational (the server goes by the credential). */
  set deviceId(id: string | undefined) {
    this.patchState({ deviceId: id ?? null });
  }
  get credential(): string | undefined {
    return this.savedState?.credential ?? undefined;
  }
  get salt(): string | undefined {
    return this.savedState?.fingerprintSalt ?? undefined;
  }
  /** lastSeq of agent.json (tests that hand-build bodies take the next one with ++agent.seq). */
  get seq(): number {
    return this.savedState?.lastSeq ?? 0;
  }
  set seq(n: number) {
    this.patchState({ lastSeq: n });
  }
  private patchState(patch: Partial<AgentState>): void {
    const s = this.savedState;
    if (s) this.machine.files.set(STATE_FILE, this.stateText({ ...s, ...patch }));
  }

  private beginRun(): void {
    this.secrets = [];
    this.summaryLines = [];
    this.exitCode = 0;
    this.finalMessage = '';
    this.state = null;
    this.stateOnDisk = null;
    this.stateReady = false;
    this.replayRecoveryUsed = false;
    this.commandLineToken = null;
    this.removableIds = null;
    this.firstCheckin = null;
    this.results = [];
  }

  /**
   * Enrollment alone, as a run with -ForceReenroll starts: the token goes where the installer
   * puts it (enroll.token), the held credential goes along as proof. Returns the server's answer.
   */
  async enroll(token: string): Promise<{ status: number; json: any }> {
    this.beginRun();
    this.machine.files.set(ENROLL_TOKEN_FILE, token);
    const state = this.readAgentState();
    this.baseUrl = this.getValidatedBaseUrl(this.selectFirstValue([this.params.serverUrl, this.machine.env.KEYWARDEN_SERVER_URL, state?.serverUrl]));
    const identity = this.getDeviceIdentity();
    const entra = this.getEntraFacts(this.getDsregStatus());
    const before = this.wire.length;
    try {
      await this.invokeEnrollment(identity, entra, this.getEnrollmentToken(), state, '-ForceReenroll');
    } catch (e) {
      if (!(e instanceof AgentStop)) throw e;
    }
    const sent = this.wire.slice(before).find((w) => w.path === '/api/v1/agent/enroll');
    if (!sent || sent.status === null) throw new Error('the enrollment request was not sent');
    return { status: sent.status, json: sent.response };
  }

  /** The check-in body Send-Checkin would send now (takes the next sequence number). */
  checkinBody(jobResults: JobResult[] = []) {
    this.beginRun();
    this.state = this.readAgentState();
    if (!this.state) throw new Error('not enrolled');
    this.hasManageBde = this.machine.hasManageBde;
    const salt = Buffer.from(this.state.fingerprintSalt!, 'base64');
    const device = this.getCheckinDevice(this.getDeviceIdentity(), this.getEntraFacts(this.getDsregStatus()));
    const volumes = this.getVolumeReport(salt);
    const events = this.getBitLockerEvents(this.state.lastEventTime);
    return {
      seq: this.getNextSeq(),
      sentAt: this.getSentAt(),
      agentVersion: AGENT_VERSION,
      device,
      volumes: volumes.volumes,
      manageBde: volumes.manageBde,
      events: events.items,
      jobResults,
    };
  }

  /** An authenticated POST of a hand-built body, without the script's error handling: for protocol tests. */
  async post(url: string, body: any): Promise<{ status: number; json: any }> {
    this.lastBody = { url, body };
    const headers = this.requestHeaders(true, this.credential ?? null);
    const text = this.convertToAgentJson(body);
    const r = await this.send({ method: 'POST', url, body, text, headers });
    this.wire.push({ path: url, headers, text, body, status: r.status, response: r.json });
    return r;
  }

  /** A hand-built upload as Send-Keys builds it, of any protector (also one not on the machine). */
  async upload(keys: { mountPoint: string; protector: { id: string; password?: string } }[], jobId: string | null = null) {
    const body = {
      seq: ++this.seq,
      sentAt: this.getSentAt(),
      jobId,
      keys: keys.map((k) => ({
        mountPoint: k.mountPoint,
        protectorId: k.protector.id,
        recoveryPassword: k.protector.password!,
        volumeType: this.machine.findVolume(k.mountPoint)?.kind === 'os' ? 'OperatingSystem' : 'Data',
      })),
    };
    return this.post('/api/v1/agent/keys', body);
  }

  /** The headers Invoke-RestMethod sends (ContentType, UserAgent, Headers.Authorization). */
  private requestHeaders(authenticated: boolean, credential: string | null): Record<string, string> {
    return {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': USER_AGENT,
      ...(authenticated ? { authorization: `Bearer ${credential}` } : {}),
    };
  }

  // ================================================================================================
  // Logging and secrets
  // ================================================================================================

  // Keywarden-Agent.ps1 Add-Secret 414-421
  private addSecret(value: string | null | undefined): void {
    const text = value ?? '';
    if (text.length >= 8 && !this.secrets.includes(text)) this.secrets.push(text);
  }

  // Keywarden-Agent.ps1 Protect-Text 423-435
  private protectText(text: string | null | undefined): string {
    if (text == null) return '';
    let result = text;
    for (const s of this.secrets) result = result.split(s).join('[redacted]');
    result = result.replace(/\d{6}([ -]?\d{6}){7}/g, '[redacted-password]');
    return result.replace(/kw[de]_[A-Za-z0-9_-]+/g, 'kw*_[redacted]');
  }

  // Keywarden-Agent.ps1 Limit-Text 437-443
  private limitText(text: string | null | undefined, max: number): string {
    const safe = this.protectText(text);
    return safe.length > max ? safe.slice(0, max) : safe;
  }

  // Keywarden-Agent.ps1 Write-AgentLog 445-456
  private writeAgentLog(msg: string, level = 'INFO'): void {
    this.log.push(`${this.formatUtcTime(new Date())} [${level}] ${this.protectText(msg)}`);
  }

  // Keywarden-Agent.ps1 Add-Summary 458-469
  private addSummary(line: string, level = 'INFO'): void {
    const safe = this.protectText(line);
    this.summaryLines.push(level === 'INFO' ? safe : `${level}: ${safe}`);
    this.writeAgentLog(safe, level);
  }

  // ================================================================================================
  // Errors and exit codes
  // ================================================================================================

  // Keywarden-Agent.ps1 Stop-AgentRun 493-503
  private stopAgentRun(exitCode: number, msg: string, data: Record<string, unknown> | null = null): never {
    throw new AgentStop(exitCode, msg, data);
  }

  // Keywarden-Agent.ps1 Get-AgentExitCode 518-523
  private getAgentExitCode(e: unknown): number | null {
    return e instanceof AgentStop ? e.exitCode : null;
  }

  // Keywarden-Agent.ps1 Format-HResult 553-562
  protected formatHResult(code: unknown): string {
    let n = Number(code);
    if (!Number.isFinite(n)) return String(code);
    if (n < 0) n += 4294967296;
    const hex = `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;
    return HRESULT_TEXT[hex] ? `${hex} (${HRESULT_TEXT[hex]})` : hex;
  }

  // ================================================================================================
  // Small helpers
  // ================================================================================================

  // Keywarden-Agent.ps1 ConvertTo-CleanString 568-576
  private convertToCleanString(value: unknown): string | null {
    if (value === null || value === undefined) return null;
    const text = String(value).trim();
    return text.length === 0 ? null : text;
  }

  // Keywarden-Agent.ps1 ConvertTo-NullableBool 578-586
  private convertToNullableBool(value: unknown): boolean | null {
    if (value === null || value === undefined) return null;
    if (typeof value === 'boolean') return value;
    const text = String(value).trim();
    if (text === 'True' || text === '1') return true;
    if (text === 'False' || text === '0') return false;
    return null;
  }

  // Keywarden-Agent.ps1 Get-EnumName 588-598
  private getEnumName(names: readonly string[], value: unknown): string | number | null {
    if (value === null || value === undefined) return null;
    const n = Number(value);
    if (!Number.isInteger(n)) return String(value);
    if (n >= 0 && n < names.length) return names[n]!;
    if (n >= 0 && n <= 1000) return n;
    return null;
  }

  // Keywarden-Agent.ps1 Get-NormalizedId 600-605
  protected getNormalizedId(id: unknown): string {
    if (id === null || id === undefined) return '';
    return String(id).replace(/[{}\s]/g, '').toUpperCase();
  }

  // Keywarden-Agent.ps1 Get-GuidOrNull 607-613
  private getGuidOrNull(value: unknown): string | null {
    if (value === null || value === undefined) return null;
    const m = new RegExp(GUID_PATTERN).exec(String(value));
    return m ? m[0].toLowerCase() : null;
  }

  // Keywarden-Agent.ps1 ConvertTo-MountKey 615-626
  private convertToMountKey(mountPoint: unknown): string {
    const text = this.convertToCleanString(mountPoint);
    if (text === null) return '';
    const letter = /^([A-Za-z]):?\\?$/.exec(text);
    if (letter) return `${letter[1]!.toUpperCase()}:`;
    let upper = text.toUpperCase();
    if (upper.startsWith('\\\\?\\VOLUME{') && !upper.endsWith('\\')) upper += '\\';
    return upper;
  }

  // Keywarden-Agent.ps1 ConvertTo-MountPoint 628-638
  private convertToMountPoint(mountPoint: unknown): string | null {
    const text = this.convertToCleanString(mountPoint);
    if (text === null) return null;
    const letter = /^([A-Za-z]):?\\?$/.exec(text);
    if (letter) return `${letter[1]!.toUpperCase()}:`;
    return text.toLowerCase().startsWith('\\\\?\\') && !text.endsWith('\\') ? `${text}\\` : text;
  }

  // Keywarden-Agent.ps1 Format-UtcTime 640-643
  /** ToString('o') of a UTC time: 7 fractional digits (JavaScript has milliseconds: the rest is 0). */
  private formatUtcTime(time: Date | string): string {
    return typeof time === 'string' ? fromTicks(ticksOf(time)) : `${time.toISOString().slice(0, 23)}0000Z`;
  }

  // Keywarden-Agent.ps1 ConvertTo-UtcDate 645-656
  private convertToUtcDate(value: unknown): string | null {
    if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) return null;
    return fromTicks(ticksOf(value));
  }

  // Keywarden-Agent.ps1 Get-SentAt 658-660
  private getSentAt(): string {
    return this.formatUtcTime(new Date());
  }

  // Keywarden-Agent.ps1 Select-FirstValue 662-668
  private selectFirstValue(values: unknown[]): string | null {
    for (const v of values) if (v !== null && v !== undefined && String(v).trim() !== '') return String(v).trim();
    return null;
  }

  // Keywarden-Agent.ps1 Test-PathInside 686-692
  private testPathInside(path: string, folder: string): boolean {
    return path.toLowerCase().startsWith(`${folder.replace(/\\+$/, '')}\\`.toLowerCase());
  }

  // ================================================================================================
  // JSON (the script writes its own: no cmdlet sees a password)
  // ================================================================================================

  // Keywarden-Agent.ps1 ConvertTo-JsonString 702-708
  private convertToJsonString(text: string): string {
    const escaped = text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
    // Any other control character, and everything outside ASCII, as \uXXXX (UTF-16 units, as .NET).
    return `"${escaped.replace(/[^\x20-\x7E]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
  }

  // Keywarden-Agent.ps1 ConvertTo-AgentJson 710-756
  convertToAgentJson(value: unknown): string {
    if (value === null || value === undefined) return 'null';
    if (typeof value === 'string') return this.convertToJsonString(value);
    if (typeof value === 'boolean') return value ? 'true' : 'false';
    if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
    if (Array.isArray(value)) return `[${value.map((v) => this.convertToAgentJson(v)).join(',')}]`;
    if (typeof value === 'object') {
      return `{${Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${this.convertToJsonString(k)}:${this.convertToAgentJson(v)}`)
        .join(',')}}`;
    }
    return this.convertToJsonString(String(value));
  }

  // ================================================================================================
  // Native commands
  // ================================================================================================

  // Keywarden-Agent.ps1 Invoke-NativeCommand 806-852
  /** manage-bde.exe through System.Diagnostics.Process: its exit code and output as one string. */
  private invokeNativeCommand(args: string[]): { exitCode: number; text: string } {
    try {
      const r = this.machine.manageBde(args);
      return { exitCode: r.exitCode, text: r.stdout };
    } catch (e) {
      return { exitCode: -1, text: message(e) };
    }
  }

  // Keywarden-Agent.ps1 Get-PasswordFingerprint 854-870
  private getPasswordFingerprint(password: string, key: Buffer): string | null {
    const digits = password.replace(/[^0-9]/g, '');
    if (digits.length !== 48) return null;
    const normalized = Array.from({ length: 8 }, (_, i) => digits.slice(i * 6, i * 6 + 6)).join('-');
    return createHmac('sha256', key).update(normalized, 'utf8').digest('hex');
  }

  // ================================================================================================
  // Process, lock and state file
  // ================================================================================================

  // Keywarden-Agent.ps1 Test-IsElevated 876-881
  private testIsElevated(): boolean {
    return this.machine.elevated;
  }

  // Keywarden-Agent.ps1 Enter-AgentLock 883-901
  /** agent.lock opened with FileShare.None; the script retries for 120 s, the simulated holder never lets go. */
  private enterAgentLock(): boolean {
    return !this.machine.lockHeldElsewhere;
  }

  // Keywarden-Agent.ps1 New-AgentState 1053-1069
  private newAgentState(): AgentState {
    return {
      deviceId: null,
      credential: null,
      fingerprintSalt: null,
      lastSeq: 0,
      lastEventTime: null,
      serverUrl: null,
      enrolledAt: null,
      lastCheckinAt: null,
      nextCheckinSeconds: null,
      lastRunAt: null,
      lastExitCode: null,
      lastMessage: null,
    };
  }

  // Keywarden-Agent.ps1 Read-AgentState 1071-1130
  private readAgentState(): AgentState | null {
    this.stateOnDisk = null;
    const text = this.machine.files.get(STATE_FILE);
    if (text === undefined) return null;
    let saved: Record<string, unknown>;
    try {
      saved = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      this.writeAgentLog(`The state file ${STATE_FILE} cannot be read (${message(e)}); the device will enroll again.`, 'WARN');
      return null;
    }
    const state = this.newAgentState();
    state.deviceId = this.convertToCleanString(saved.deviceId);
    state.credential = this.convertToCleanString(saved.credential);
    state.fingerprintSalt = this.convertToCleanString(saved.fingerprintSalt);
    state.serverUrl = this.convertToCleanString(saved.serverUrl);
    state.lastMessage = this.convertToCleanString(saved.lastMessage);
    const seq = Number(saved.lastSeq);
    if (Number.isSafeInteger(seq) && seq > 0) state.lastSeq = seq;
    state.lastEventTime = this.convertToUtcDate(saved.lastEventTime);
    state.enrolledAt = this.convertToUtcDate(saved.enrolledAt);
    state.lastCheckinAt = this.convertToUtcDate(saved.lastCheckinAt);
    state.lastRunAt = this.convertToUtcDate(saved.lastRunAt);
    const interval = Number(saved.nextCheckinSeconds);
    if (Number.isInteger(interval) && interval > 0) state.nextCheckinSeconds = interval;
    if (saved.lastExitCode !== null && Number.isInteger(Number(saved.lastExitCode))) state.lastExitCode = Number(saved.lastExitCode);
    this.addSecret(state.credential);
    this.addSecret(state.fingerprintSalt);
    this.stateOnDisk = state;
    if (!state.credential) return null;
    if (!state.credential.startsWith('kwd_') || !state.fingerprintSalt) {
      this.writeAgentLog('The state file has no usable credential; the device will enroll again.', 'WARN');
      return null;
    }
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(state.fingerprintSalt) || state.fingerprintSalt.length % 4 !== 0) {
      this.writeAgentLog('The fingerprint salt in the state file is not base64; the device will enroll again.', 'WARN');
      return null;
    }
    return state;
  }

  /** agent.json as Save-AgentState writes it: one field per line. */
  private stateText(state: AgentState): string {
    const lines = Object.entries(state).map(([k, v]) => `  ${this.convertToJsonString(k)}: ${this.convertToAgentJson(v)}`);
    return `{\r\n${lines.join(',\r\n')}\r\n}\r\n`;
  }

  // Keywarden-Agent.ps1 Save-AgentState 1132-1155
  private saveAgentState(state: AgentState | null = this.state): void {
    this.machine.files.set(STATE_FILE, this.stateText(state!));
  }

  // Keywarden-Agent.ps1 Save-RunStatus 1157-1174
  private saveRunStatus(exitCode: number, msg: string): void {
    if (!this.stateReady) return;
    const target = this.state ?? this.stateOnDisk ?? this.newAgentState();
    target.lastRunAt = this.formatUtcTime(new Date());
    target.lastExitCode = exitCode;
    target.lastMessage = this.limitText(msg, 500);
    this.saveAgentState(target);
  }

  // Keywarden-Agent.ps1 Get-NextSeq 1176-1182
  private getNextSeq(): number {
    this.state!.lastSeq += 1;
    this.saveAgentState();
    return this.state!.lastSeq;
  }

  // ================================================================================================
  // Configuration, enrollment token and HTTP
  // ================================================================================================

  // Keywarden-Agent.ps1 Get-ValidatedBaseUrl 1188-1210
  private getValidatedBaseUrl(url: string | null): string {
    if (!url?.trim()) this.stopAgentRun(2, 'No server URL: pass -ServerUrl or set KEYWARDEN_SERVER_URL.');
    let u: URL;
    try {
      u = new URL(url.trim());
    } catch {
      this.stopAgentRun(2, `The server URL "${url}" is not an absolute URL such as https://keywarden.example.com.`);
    }
    const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
    if (u.protocol === 'https:') {
      // ok
    } else if (u.protocol === 'http:' && this.params.allowInsecureHttp && loopback) {
      this.writeAgentLog('Using plain http to a local test server (-AllowInsecureHttp).', 'WARN');
    } else if (u.protocol === 'http:' && this.params.allowInsecureHttp) {
      this.stopAgentRun(2, '-AllowInsecureHttp accepts only http://localhost (or 127.0.0.1 / ::1).');
    } else {
      this.stopAgentRun(2, 'The server URL must start with https:// (http:// only for http://localhost with -AllowInsecureHttp).');
    }
    return `${u.origin}${u.pathname}`.replace(/\/+$/, '').replace(/\/api\/v1(\/agent)?$/i, '');
  }

  // Keywarden-Agent.ps1 Read-TokenFile 1240-1248
  private readTokenFile(path: string): string | null {
    for (const line of (this.machine.files.get(path) ?? '').split(/\r?\n/)) {
      const value = this.convertToCleanString(line);
      if (value !== null) return value;
    }
    return null;
  }

  // Keywarden-Agent.ps1 Get-EnrollmentToken 1250-1286
  private getEnrollmentToken(): Token | null {
    if (this.params.enrollmentTokenFile) {
      const path = this.params.enrollmentTokenFile;
      if (!this.machine.files.has(path)) this.stopAgentRun(2, `The enrollment token file ${path} does not exist.`);
      const value = this.readTokenFile(path);
      this.addSecret(value);
      if (value === null) this.stopAgentRun(2, `The enrollment token file ${path} is empty.`);
      return { value, source: '-EnrollmentTokenFile', path };
    }
    const fromEnvironment = this.convertToCleanString(this.machine.env.KEYWARDEN_ENROLLMENT_TOKEN);
    if (fromEnvironment !== null) return { value: fromEnvironment, source: 'KEYWARDEN_ENROLLMENT_TOKEN', path: null };
    if (this.machine.files.has(ENROLL_TOKEN_FILE)) {
      const value = this.readTokenFile(ENROLL_TOKEN_FILE);
      this.addSecret(value);
      if (value !== null) return { value, source: 'enroll.token', path: ENROLL_TOKEN_FILE };
    }
    if (this.commandLineToken !== null) return { value: this.commandLineToken, source: '-EnrollmentToken', path: null };
    return null;
  }

  // Keywarden-Agent.ps1 Remove-EnrollmentTokenFiles 1288-1310
  private removeEnrollmentTokenFiles(token: Token | null): void {
    const paths: string[] = [];
    if (this.machine.files.has(ENROLL_TOKEN_FILE)) paths.push(ENROLL_TOKEN_FILE);
    if (token?.source === '-EnrollmentTokenFile' && token.path) {
      if (this.testPathInside(token.path, STATE_PATH)) {
        if (!paths.includes(token.path) && this.machine.files.has(token.path)) paths.push(token.path);
      } else {
        this.writeAgentLog(`The enrollment token file ${token.path} is outside ${STATE_PATH} and was left in place: delete it once the devices that use it have enrolled.`, 'WARN');
      }
    }
    for (const path of paths) {
      this.machine.files.delete(path);
      this.addSummary(`Deleted the enrollment token file ${path}.`);
    }
  }

  // Keywarden-Agent.ps1 Invoke-AgentApi 1410-1493
  private async invokeAgentApi(path: string, body: unknown, opts: { authenticated?: boolean; what: string; httpErrorExitCode?: number }): Promise<any> {
    // The escrow checker has looked at every change the agent made before anything reaches the vault.
    await this.machine.settle();
    const text = this.convertToAgentJson(body);
    const headers = this.requestHeaders(opts.authenticated === true, this.state?.credential ?? null);
    const entry: WireEntry = { path, headers, text, body: JSON.parse(text), status: null, response: null };
    this.wire.push(entry);
    this.lastBody = { url: path, body: entry.body };
    let r: { status: number; json: any };
    try {
      this.machine.network(path);
      r = await this.send({ method: 'POST', url: path, body: entry.body, text, headers });
    } catch (e) {
      const detail = this.limitText(message(e), 600);
      this.stopAgentRun(1, `Cannot reach the Keywarden server at ${this.baseUrl} (${opts.what}): ${detail}.`);
    }
    entry.status = r.status;
    entry.response = r.json;
    if (r.status >= 200 && r.status < 300) {
      this.writeAgentLog(`POST ${path}: OK`);
      return r.json;
    }
    // What Invoke-RestMethod puts in ErrorDetails.Message: the response body.
    const rawDetail = typeof r.json === 'string' ? r.json : JSON.stringify(r.json);
    const detail = this.limitText(rawDetail, 600);
    if (r.status === 401) {
      if (opts.authenticated) {
        this.stopAgentRun(
          2,
          `The server rejected this device's credential (HTTP 401) during the ${opts.what}: the device was revoked or deleted, or enrolled again from elsewhere. Run the agent once with -ForceReenroll and an enrollment token (-EnrollmentTokenFile or KEYWARDEN_ENROLLMENT_TOKEN) to enroll it again.`,
        );
      }
      this.stopAgentRun(2, 'The server rejected the enrollment token (HTTP 401): it is unknown, expired, revoked or used up. Create a new one for this client.');
    }
    let hint = '';
    let data: Record<string, unknown> | null = null;
    if (r.status === 400) hint = ' (If the server mentions sentAt: the device clock must be within 15 minutes of the server clock.)';
    if (r.status === 409) {
      hint = ` (The server refused sequence number ${this.state?.lastSeq} as a replay.)`;
      const last = /last one seen is (\d+)/i.exec(rawDetail);
      if (last) data = { KeywardenLastSeq: Number(last[1]) };
    }
    this.stopAgentRun(opts.httpErrorExitCode ?? 1, `The server refused the ${opts.what} with HTTP ${r.status}: ${detail}${hint}`, data);
  }

  // Keywarden-Agent.ps1 Invoke-SequencedRequest 1495-1514
  /** Fills in seq and sentAt and posts; after one 409 with the server's last number it continues after that number (L9). */
  private async invokeSequencedRequest(path: string, body: Record<string, unknown>, what: string): Promise<any> {
    for (;;) {
      body.seq = this.getNextSeq();
      body.sentAt = this.getSentAt();
      try {
        return await this.invokeAgentApi(path, body, { authenticated: true, what });
      } catch (e) {
        const last = e instanceof AgentStop ? (e.data?.KeywardenLastSeq as number | undefined) : undefined;
        if (last === undefined || this.replayRecoveryUsed) throw e;
        this.replayRecoveryUsed = true;
        const refused = this.state!.lastSeq;
        if (last > this.state!.lastSeq) this.state!.lastSeq = last;
        this.writeAgentLog(`The server had already seen sequence numbers up to ${last} (this run sent ${refused}; agent.json restored from an older copy?): continuing after ${last}.`, 'WARN');
      }
    }
  }

  // ================================================================================================
  // Device facts
  // ================================================================================================

  // Keywarden-Agent.ps1 Get-DsregStatus 1520-1534
  private getDsregStatus(): Record<string, string> {
    const values: Record<string, string> = {};
    for (const line of this.machine.dsregStatus().split(/\r?\n/)) {
      const m = /^\s*([A-Za-z][A-Za-z0-9]*)\s*:\s*(.*?)\s*$/.exec(line);
      if (m && !Object.hasOwn(values, m[1]!)) values[m[1]!] = m[2]!;
    }
    return values;
  }

  // Keywarden-Agent.ps1 Get-EntraFacts 1536-1559
  private getEntraFacts(dsreg: Record<string, string>) {
    const azure = dsreg.AzureAdJoined === 'YES';
    const domain = dsreg.DomainJoined === 'YES';
    const workplace = dsreg.WorkplaceJoined === 'YES';
    const joinType = azure && domain ? 'HybridJoined' : azure ? 'AzureAdJoined' : workplace ? 'WorkplaceJoined' : 'NotJoined';
    let deviceId: string | null = null;
    let tenantId: string | null = null;
    if (azure) {
      deviceId = this.getGuidOrNull(dsreg.DeviceId);
      tenantId = this.getGuidOrNull(dsreg.TenantId);
    } else if (workplace) {
      tenantId = this.getGuidOrNull(dsreg.WorkplaceTenantId);
    }
    return { joinType, deviceId, tenantId };
  }

  // Keywarden-Agent.ps1 ConvertTo-PrimaryUpn 1561-1573
  private convertToPrimaryUpn(value: unknown): string | null {
    const text = this.convertToCleanString(value);
    if (text === null || text.length > 256) return null;
    // PowerShell's -match and -notmatch ignore case.
    if (!/^[^@\s\p{Cc}]+@[^@\s\p{Cc}]+$/iu.test(text)) return null;
    if (/^(foouser|package_[^@]*)@/i.test(text)) return null;
    return text;
  }

  // Keywarden-Agent.ps1 Get-PrimaryUser 1575-1605
  private getPrimaryUser(entra: Entra): string | null {
    if (!['AzureAdJoined', 'HybridJoined'].includes(entra.joinType)) return null;
    const entries = this.machine.joinInfo();
    const users: string[] = [];
    for (const entry of entries) {
      const email = this.convertToCleanString(entry.UserEmail);
      const upn = this.convertToPrimaryUpn(email);
      if (upn === null) {
        if (email !== null) this.writeAgentLog(`The Entra join user ${email} is no person's UPN: no primary user from it.`, 'DEBUG');
      } else if (!users.some((u) => u.toLowerCase() === upn.toLowerCase())) {
        // -notcontains compares without case.
        users.push(upn);
      }
    }
    if (users.length > 1) {
      this.writeAgentLog(`The Entra join information names ${users.length} different users: no primary user reported.`, 'WARN');
      return null;
    }
    return users[0] ?? null;
  }

  // Keywarden-Agent.ps1 Get-DeviceIdentity 1607-1650
  private getDeviceIdentity() {
    const identity = {
      hostname: this.machine.hostname.slice(0, 15),
      netbiosName: this.machine.hostname.slice(0, 15),
      domain: null as string | null,
      domainJoined: false,
      serialNumber: null as string | null,
      manufacturer: null as string | null,
      model: null as string | null,
      smbiosUuid: null as string | null,
    };
    try {
      const c = this.machine.computerSystem();
      identity.domainJoined = c.PartOfDomain;
      identity.domain = c.PartOfDomain ? this.convertToCleanString(c.Domain) : (this.convertToCleanString(c.Workgroup) ?? this.convertToCleanString(c.Domain));
      const hostname = this.convertToCleanString(c.DNSHostName) ?? this.convertToCleanString(c.Name);
      if (hostname) identity.hostname = hostname;
      const netbios = this.convertToCleanString(c.Name);
      if (netbios) identity.netbiosName = netbios;
      identity.manufacturer = this.convertToCleanString(c.Manufacturer);
      identity.model = this.convertToCleanString(c.Model);
    } catch (e) {
      this.writeAgentLog(`Win32_ComputerSystem failed: ${message(e)}`, 'WARN');
    }
    try {
      identity.serialNumber = this.convertToCleanString(this.machine.bios().SerialNumber);
    } catch (e) {
      this.writeAgentLog(`Win32_BIOS failed: ${message(e)}`, 'WARN');
    }
    try {
      identity.smbiosUuid = this.convertToCleanString(this.machine.computerSystemProduct().UUID);
    } catch (e) {
      this.writeAgentLog(`Win32_ComputerSystemProduct failed: ${message(e)}`, 'WARN');
    }
    return identity;
  }

  // Keywarden-Agent.ps1 Get-OsFacts 1652-1663
  private getOsFacts() {
    const facts = { caption: null as string | null, version: null as string | null, build: null as string | null };
    try {
      const os = this.machine.operatingSystem();
      facts.caption = this.convertToCleanString(os.Caption);
      facts.version = this.convertToCleanString(os.Version);
      facts.build = this.convertToCleanString(os.BuildNumber);
    } catch (e) {
      this.writeAgentLog(`Win32_OperatingSystem failed: ${message(e)}`, 'WARN');
    }
    return facts;
  }

  // Keywarden-Agent.ps1 Get-TpmFacts 1665-1697
  private getTpmFacts() {
    const tpm = { present: null as boolean | null, ready: null as boolean | null, enabled: null as boolean | null, activated: null as boolean | null, specVersion: null as string | null, manufacturer: null as string | null };
    let answered = false;
    try {
      const info = this.machine.getTpm();
      answered = true;
      tpm.present = this.convertToNullableBool(info.TpmPresent);
      tpm.ready = this.convertToNullableBool(info.TpmReady);
      tpm.enabled = this.convertToNullableBool(info.TpmEnabled);
      tpm.activated = this.convertToNullableBool(info.TpmActivated);
      tpm.manufacturer = this.convertToCleanString(info.ManufacturerIdTxt);
    } catch (e) {
      this.writeAgentLog(`Get-Tpm failed: ${message(e)}`, 'DEBUG');
    }
    try {
      const wmi = this.machine.win32Tpm();
      answered = true;
      if (wmi) {
        tpm.specVersion = this.convertToCleanString(wmi.SpecVersion);
        tpm.present ??= true;
        tpm.manufacturer ??= this.convertToCleanString(wmi.ManufacturerIdTxt);
      } else if (tpm.present === null) {
        tpm.present = false;
      }
    } catch (e) {
      this.writeAgentLog(`Win32_Tpm failed: ${message(e)}`, 'DEBUG');
    }
    return answered ? tpm : null;
  }

  // Keywarden-Agent.ps1 Get-SecureBootState 1699-1708
  private getSecureBootState(): boolean | null {
    return this.machine.secureBoot;
  }

  // Keywarden-Agent.ps1 Get-CheckinDevice 1710-1729
  private getCheckinDevice(identity: Identity, entra: Entra) {
    return {
      hostname: identity.hostname,
      domain: identity.domain,
      domainJoined: identity.domainJoined,
      serialNumber: identity.serialNumber,
      manufacturer: identity.manufacturer,
      model: identity.model,
      smbiosUuid: identity.smbiosUuid,
      os: this.getOsFacts(),
      entra,
      primaryUser: this.getPrimaryUser(entra),
      adComputerName: identity.domainJoined ? identity.netbiosName : null,
      tpm: this.getTpmFacts(),
      secureBoot: this.getSecureBootState(),
    };
  }

  // ================================================================================================
  // Volumes through Win32_EncryptableVolume
  // ================================================================================================

  // Keywarden-Agent.ps1 Get-RemovableVolumeIds 1742-1779
  private getRemovableVolumeIds(): Set<string> {
    if (this.removableIds !== null) return this.removableIds;
    const ids = new Set<string>();
    try {
      for (const v of this.machine.encryptableVolumes()) {
        if (v.VolumeType === 2) {
          if (v.DriveLetter) ids.add(this.convertToMountKey(v.DriveLetter));
          ids.add(this.convertToMountKey(v.DeviceID));
        }
      }
    } catch (e) {
      this.writeAgentLog(`Win32_EncryptableVolume failed: ${message(e)}`, 'DEBUG');
    }
    try {
      for (const v of this.machine.win32Volumes().filter((x) => x.DriveType === 2)) {
        if (v.DriveLetter) ids.add(this.convertToMountKey(v.DriveLetter));
        ids.add(this.convertToMountKey(v.DeviceID));
      }
    } catch (e) {
      this.writeAgentLog(`Win32_Volume failed: ${message(e)}`, 'DEBUG');
    }
    // Without WMI: the Win32 drive type.
    for (const d of this.machine.driveInfo()) if (d.DriveType === 'Removable') ids.add(this.convertToMountKey(d.Name));
    this.removableIds = ids;
    return ids;
  }

  // Keywarden-Agent.ps1 Get-EncryptableVolumes 1781-1806
  /** Every fixed and OS volume; throws when Win32_EncryptableVolume cannot be read at all. */
  private getEncryptableVolumes(): Volume[] {
    const removable = this.getRemovableVolumeIds();
    const out: Volume[] = [];
    for (const cim of this.machine.encryptableVolumes()) {
      const typeNumber = cim.VolumeType;
      if (typeNumber === 2) continue;
      const letter = cim.DriveLetter ? this.convertToMountKey(cim.DriveLetter) : null;
      const deviceId = this.convertToCleanString(cim.DeviceID);
      if (letter !== null && removable.has(letter)) continue;
      if (deviceId !== null && removable.has(this.convertToMountKey(deviceId))) continue;
      const mountPoint = letter ?? deviceId;
      if (mountPoint === null) continue;
      let volumeType: 'OperatingSystem' | 'Data' = 'Data';
      if (typeNumber === 0) volumeType = 'OperatingSystem';
      else if (typeNumber === null && letter !== null && letter === this.convertToMountKey(this.machine.systemDrive)) volumeType = 'OperatingSystem';
      out.push({ cim, mountPoint, driveLetter: letter, deviceId, volumeType });
    }
    return out;
  }

  // Keywarden-Agent.ps1 Get-EncryptableVolume 1808-1819
  protected getEncryptableVolume(mountPoint: string, volumes: Volume[] | null = null): Volume | null {
    const wanted = this.convertToMountKey(mountPoint);
    if (wanted === '') return null;
    for (const v of volumes ?? this.getEncryptableVolumes()) {
      if (this.convertToMountKey(v.mountPoint) === wanted) return v;
      if (v.deviceId !== null && this.convertToMountKey(v.deviceId) === wanted) return v;
    }
    return null;
  }

  // Keywarden-Agent.ps1 New-ManageBdeVolume 1821-1830
  private newManageBdeVolume(mountPoint: string): Volume {
    const mount = this.convertToMountPoint(mountPoint)!;
    const volumeType = this.convertToMountKey(mount) === this.convertToMountKey(this.machine.systemDrive) ? 'OperatingSystem' : 'Data';
    return { cim: null, mountPoint: mount, driveLetter: /^[A-Z]:$/.test(mount) ? mount : null, deviceId: null, volumeType };
  }

  // Keywarden-Agent.ps1 Get-JobVolume 1832-1844
  protected getJobVolume(mountPoint: string, opts: { allowManageBde?: boolean; volumes?: Volume[] | null } = {}): Volume {
    let volume: Volume | null;
    try {
      volume = this.getEncryptableVolume(mountPoint, opts.volumes ?? null);
    } catch (e) {
      if (opts.allowManageBde && this.hasManageBde) return this.newManageBdeVolume(mountPoint);
      throw new Error(`Win32_EncryptableVolume cannot be read on this device (${message(e)}); this job needs it`, { cause: e });
    }
    if (volume === null) throw new Error(`volume ${mountPoint} not found on this device`);
    return volume;
  }

  // Keywarden-Agent.ps1 Invoke-VolumeMethod 1846-1866
  /** Invoke-CimMethod; a non-zero ReturnValue throws with the HRESULT in hex unless allowFailure. */
  protected invokeVolumeMethod(volume: Volume, method: string, args: Record<string, unknown> | null = null, allowFailure = false): Record<string, unknown> & { ReturnValue: number } {
    if (volume.cim === null) throw new Error(`${method} needs Win32_EncryptableVolume, which could not be read for ${volume.mountPoint}`);
    let result: Record<string, unknown> & { ReturnValue: number };
    try {
      result = this.machine.invoke(volume.cim.DeviceID, method, args ?? {});
    } catch (e) {
      throw new Error(`${method} on ${volume.mountPoint} failed: ${message(e)}`, { cause: e });
    }
    const code = Number(result.ReturnValue ?? 0);
    if (code !== 0 && !allowFailure) throw new Error(`${method} on ${volume.mountPoint} returned ${this.formatHResult(code)}`);
    return result;
  }

  // Keywarden-Agent.ps1 Test-MethodSucceeded 1868-1874
  private testMethodSucceeded(result: { ReturnValue?: number } | null): boolean {
    if (result === null) return false;
    return result.ReturnValue === undefined || Number(result.ReturnValue) === 0;
  }

  // Keywarden-Agent.ps1 Get-VolumeState 1876-1902
  private getVolumeState(volume: Volume): VolumeState {
    const state: VolumeState = { lock: null, conversion: null, percentage: null, protection: null, method: null };
    state.lock = Number(this.invokeVolumeMethod(volume, 'GetLockStatus').LockStatus);
    state.protection = Number(this.invokeVolumeMethod(volume, 'GetProtectionStatus').ProtectionStatus);
    const locked = state.lock === 1;
    if (!locked) {
      let conversion: Record<string, unknown>;
      let scale = 10;
      try {
        conversion = this.invokeVolumeMethod(volume, 'GetConversionStatus', { PrecisionFactor: 1 });
      } catch {
        conversion = this.invokeVolumeMethod(volume, 'GetConversionStatus');
        scale = 1;
      }
      state.conversion = Number(conversion.ConversionStatus);
      state.percentage = roundHalfEven1(Number(conversion.EncryptionPercentage) / scale);
    }
    const method = this.invokeVolumeMethod(volume, 'GetEncryptionMethod', null, locked);
    if (this.testMethodSucceeded(method)) state.method = Number(method.EncryptionMethod);
    return state;
  }

  // Keywarden-Agent.ps1 Assert-VolumeUnlocked 1904-1910
  protected assertVolumeUnlocked(volume: Volume): void {
    if (volume.cim === null) return;
    if (Number(this.invokeVolumeMethod(volume, 'GetLockStatus').LockStatus) === 1) throw new Error(`volume ${volume.mountPoint} is locked; unlock it first`);
  }

  // Keywarden-Agent.ps1 Get-VolumeProtectors 1912-1923
  protected getVolumeProtectors(volume: Volume): Protector[] {
    const out: Protector[] = [];
    for (const id of (this.invokeVolumeMethod(volume, 'GetKeyProtectors').VolumeKeyProtectorID as string[] | undefined) ?? []) {
      if (!id) continue;
      const typeNumber = Number(this.invokeVolumeMethod(volume, 'GetKeyProtectorType', { VolumeKeyProtectorID: id }).KeyProtectorType);
      out.push({ id, type: this.getEnumName(KEY_PROTECTOR_TYPE_NAMES, typeNumber), typeNumber });
    }
    return out;
  }

  // Keywarden-Agent.ps1 Find-VolumeProtector 1925-1933
  protected findVolumeProtector(protectors: Protector[], protectorId: string | null): Protector | null {
    const wanted = this.getNormalizedId(protectorId);
    return protectors.find((p) => this.getNormalizedId(p.id) === wanted) ?? null;
  }

  // Keywarden-Agent.ps1 Test-ProtectorPresent 1935-1939
  private testProtectorPresent(volume: Volume, protectorId: string): boolean {
    return this.findVolumeProtector(this.getVolumeProtectors(volume), protectorId) !== null;
  }

  // Keywarden-Agent.ps1 Get-ProtectorPassword 1941-1961
  protected getProtectorPassword(volume: Volume, protectorId: string): string {
    if (volume.cim !== null) {
      const password = String(this.invokeVolumeMethod(volume, 'GetKeyProtectorNumericalPassword', { VolumeKeyProtectorID: protectorId }).NumericalPassword ?? '');
      if (!new RegExp(`^${PASSWORD_PATTERN}$`).test(password)) throw new Error(`GetKeyProtectorNumericalPassword returned no recovery password for ${protectorId} on ${volume.mountPoint}`);
      return password;
    }
    const braced = `{${this.getNormalizedId(protectorId)}}`;
    const native = this.invokeNativeCommand(['-protectors', '-get', volume.mountPoint, '-id', braced]);
    const found = native.text.match(new RegExp(PASSWORD_PATTERN, 'g')) ?? [];
    if (native.exitCode !== 0 || found.length !== 1) throw new Error(`manage-bde could not read protector ${braced} on ${volume.mountPoint} (exit ${native.exitCode})`);
    return found[0]!;
  }

  // Keywarden-Agent.ps1 Add-RecoveryPasswordProtector 1963-1979
  /** Windows generates the password; the new protector is the one ID that was not there before. */
  protected addRecoveryPasswordProtector(volume: Volume): string {
    const before = new Set(this.getVolumeProtectors(volume).map((p) => this.getNormalizedId(p.id)));
    this.invokeVolumeMethod(volume, 'ProtectKeyWithNumericalPassword');
    if (this.failPoint === 'after-add-protector') throw new AgentKilled('agent killed after adding a protector');
    const added = this.getVolumeProtectors(volume).filter((p) => !before.has(this.getNormalizedId(p.id)));
    if (added.length !== 1 || added[0]!.type !== 'RecoveryPassword') {
      throw new Error(`could not identify the new recovery password protector on ${volume.mountPoint} (${added.length} new protectors); nothing was removed`);
    }
    this.writeAgentLog(`${volume.mountPoint}: added recovery password protector ${added[0]!.id}.`);
    return added[0]!.id;
  }

  // Keywarden-Agent.ps1 Remove-Protector 1981-1990
  /** Deletes one protector, and only a recovery password: its type is read again right before. */
  protected removeProtector(volume: Volume, protectorId: string): void {
    const type = Number(this.invokeVolumeMethod(volume, 'GetKeyProtectorType', { VolumeKeyProtectorID: protectorId }).KeyProtectorType);
    if (type !== 3) {
      throw new Error(`protector ${protectorId} on ${volume.mountPoint} is a ${this.getEnumName(KEY_PROTECTOR_TYPE_NAMES, type)} protector, not a recovery password; it is never removed`);
    }
    this.invokeVolumeMethod(volume, 'DeleteKeyProtector', { VolumeKeyProtectorID: protectorId });
    this.writeAgentLog(`${volume.mountPoint}: removed recovery password protector ${protectorId}.`);
  }

  // Keywarden-Agent.ps1 ConvertTo-VolumePayload 1992-2029
  private convertToVolumePayload(volume: Volume, saltKey: Buffer) {
    const state = this.getVolumeState(volume);
    const keyProtectors: { id: string; type: string | number | null; fingerprint?: string }[] = [];
    for (const p of this.getVolumeProtectors(volume)) {
      if (!new RegExp(GUID_PATTERN).test(p.id)) {
        this.writeAgentLog(`${volume.mountPoint}: protector with ID "${p.id}" (${p.type}) is not reported: its ID is not a GUID.`, 'WARN');
        continue;
      }
      const item: { id: string; type: string | number | null; fingerprint?: string } = { id: p.id, type: p.type };
      if (p.type === 'RecoveryPassword' && state.lock !== 1) {
        try {
          const fp = this.getPasswordFingerprint(this.getProtectorPassword(volume, p.id), saltKey);
          if (fp) item.fingerprint = fp;
        } catch (e) {
          this.writeAgentLog(`${volume.mountPoint}: the password of ${p.id} cannot be read, sent without fingerprint: ${message(e)}`, 'WARN');
        }
      }
      keyProtectors.push(item);
    }
    return {
      mountPoint: volume.mountPoint,
      volumeType: volume.volumeType,
      volumeStatus: this.getEnumName(CONVERSION_STATUS_NAMES, state.conversion),
      protectionStatus: this.getEnumName(PROTECTION_STATUS_NAMES, state.protection),
      lockStatus: this.getEnumName(LOCK_STATUS_NAMES, state.lock),
      encryptionMethod: this.getEnumName(ENCRYPTION_METHOD_NAMES, state.method),
      encryptionPercentage: state.percentage,
      keyProtectors,
    };
  }

  // ================================================================================================
  // manage-bde fallback
  // ================================================================================================

  // Keywarden-Agent.ps1 Split-ManageBdeStatus 2035-2062
  private splitManageBdeStatus(text: string): { preamble: string; sections: { mount: string; text: string }[] } {
    let preamble = '';
    const sections: { mount: string; text: string }[] = [];
    let current: { mount: string; text: string } | null = null;
    for (const line of text.split(/\r?\n/)) {
      let mount: string | null = null;
      const letter = MANAGE_BDE_LETTER_HEADER.exec(line);
      if (letter) mount = `${letter[1]!.toUpperCase()}:`;
      else {
        const guidPath = MANAGE_BDE_GUID_HEADER.exec(line);
        if (guidPath) mount = this.convertToMountPoint(guidPath[1]);
      }
      if (mount !== null) {
        current = { mount, text: '' };
        sections.push(current);
      }
      // AppendLine: CR LF after every line.
      if (current === null) preamble += `${line}\r\n`;
      else current.text += `${line}\r\n`;
    }
    return { preamble, sections };
  }

  // Keywarden-Agent.ps1 Test-ManageBdeUnencrypted 2064-2069
  private testManageBdeUnencrypted(sectionText: string): boolean {
    return /^[^\r\n:]+:\s*0(?:[.,]0+)?\s*%\s*$/m.test(sectionText);
  }

  // Keywarden-Agent.ps1 Protect-ManageBdeText 2071-2084
  private protectManageBdeText(text: string, saltKey: Buffer): string | null {
    let result = text;
    for (const password of new Set(text.match(new RegExp(PASSWORD_PATTERN, 'g')) ?? [])) {
      result = result.split(password).join(`fp:${this.getPasswordFingerprint(password, saltKey)}`);
    }
    return new RegExp(PASSWORD_PATTERN).test(result) ? null : result;
  }

  // Keywarden-Agent.ps1 Get-ManageBdeReport 2086-2127
  private getManageBdeReport(saltKey: Buffer): { status: string; protectors: string } | null {
    const status = this.invokeNativeCommand(['-status']);
    if (status.exitCode !== 0 || !status.text.trim()) {
      this.writeAgentLog(`manage-bde -status failed (exit ${status.exitCode}): ${status.text}`, 'WARN');
      return null;
    }
    const removable = this.getRemovableVolumeIds();
    const split = this.splitManageBdeStatus(status.text);
    let statusText = split.preamble;
    let protectorsText = '';
    for (const section of split.sections) {
      if (removable.has(this.convertToMountKey(section.mount))) continue;
      statusText += section.text;
      const protectors = this.invokeNativeCommand(['-protectors', '-get', section.mount]);
      if (protectors.exitCode !== 0) {
        const listsProtector = new RegExp(`\\{${GUID_PATTERN}\\}`).test(protectors.text);
        if (!listsProtector && this.testManageBdeUnencrypted(section.text)) {
          this.writeAgentLog(`manage-bde -protectors -get ${section.mount}: exit ${protectors.exitCode} on a volume that is not encrypted (no key protectors).`, 'DEBUG');
        } else {
          this.stopAgentRun(
            3,
            `manage-bde -protectors -get ${section.mount} failed (exit ${protectors.exitCode}): no volume report was sent, so that the server does not take the protectors it could not see as removed. Repair WMI (Win32_EncryptableVolume; winmgmt /verifyrepository) or check manage-bde -protectors -get ${section.mount} by hand.`,
          );
        }
      }
      protectorsText += `${protectors.text}\r\n\r\n`;
    }
    const maskedStatus = this.protectManageBdeText(statusText, saltKey);
    const maskedProtectors = this.protectManageBdeText(protectorsText, saltKey);
    if (maskedStatus === null || maskedProtectors === null) {
      this.writeAgentLog('manage-bde output still looked like it held a recovery password after masking; not sent.', 'ERROR');
      return null;
    }
    return { status: maskedStatus, protectors: maskedProtectors };
  }

  // Keywarden-Agent.ps1 Get-VolumeReport 2129-2172
  private getVolumeReport(saltKey: Buffer): VolumeReport {
    const report: VolumeReport = { volumes: [], manageBde: null, source: '', skipped: [] };
    let volumes: Volume[] | null = null;
    try {
      volumes = this.getEncryptableVolumes();
    } catch (e) {
      this.writeAgentLog(`Win32_EncryptableVolume cannot be read, trying manage-bde: ${message(e)}`, 'WARN');
    }
    if (volumes !== null) {
      for (const volume of volumes) {
        try {
          report.volumes.push(this.convertToVolumePayload(volume, saltKey));
        } catch (e) {
          report.skipped.push(volume.mountPoint);
          this.addSummary(`Volume ${volume.mountPoint} could not be read and was left out of this report: ${message(e)}`, 'WARN');
        }
      }
      if (volumes.length === 0 || report.volumes.length > 0) {
        report.source = 'Win32_EncryptableVolume';
        return report;
      }
      this.writeAgentLog('No volume could be read through Win32_EncryptableVolume; trying manage-bde.', 'WARN');
      report.skipped = [];
    }
    this.hasManageBde = this.machine.hasManageBde;
    if (this.hasManageBde) {
      const text = this.getManageBdeReport(saltKey);
      if (text !== null) {
        report.manageBde = text;
        report.source = 'manage-bde';
        return report;
      }
    }
    this.stopAgentRun(3, 'Neither Win32_EncryptableVolume nor manage-bde.exe could report the volumes of this device (on Windows Server, install the BitLocker feature).');
  }

  // ================================================================================================
  // Events
  // ================================================================================================

  // Keywarden-Agent.ps1 Get-VolumeNameMap 2178-2195
  private getVolumeNameMap(): Map<string, string> {
    const map = new Map<string, string>();
    try {
      for (const v of this.machine.win32Volumes()) {
        const guid = new RegExp(GUID_PATTERN).exec(v.DeviceID);
        if (!guid) continue;
        map.set(guid[0].toUpperCase(), this.convertToMountPoint(v.DriveLetter ?? v.DeviceID)!);
      }
    } catch (e) {
      this.writeAgentLog(`Win32_Volume failed, event volumes stay as Windows wrote them: ${message(e)}`, 'DEBUG');
    }
    return map;
  }

  // Keywarden-Agent.ps1 ConvertTo-EventVolume 2197-2215
  private convertToEventVolume(values: string[], volumeNames: Map<string, string>): string | null {
    for (const v of values) if (/^[A-Za-z]:\\?$/.test(v)) return this.convertToMountPoint(v);
    for (const v of values) {
      const guid = new RegExp(GUID_PATTERN).exec(v);
      if (guid && volumeNames.has(guid[0].toUpperCase())) return volumeNames.get(guid[0].toUpperCase())!;
    }
    for (const v of values) if (/^\\\\\?\\Volume\{/.test(v)) return this.convertToMountPoint(v);
    return null;
  }

  // Keywarden-Agent.ps1 ConvertTo-EventPayload 2217-2267
  private convertToEventPayload(record: SimEvent, timeUtc: string, volumeNames: Map<string, string>): EventPayload {
    // The leaf elements of EventData, first value of each name.
    const fields = new Map<string, string>();
    for (const d of record.data) {
      const value = d.value.trim();
      if (value.length > 0 && !fields.has(d.name)) fields.set(d.name, value);
    }
    const names = EVENT_FIELDS[record.id] ?? DEFAULT_EVENT_FIELDS;
    let protectorId: string | null = null;
    const candidates: string[] = [];
    for (const n of names.protector) if (fields.has(n)) candidates.push(fields.get(n)!);
    for (const [n, v] of fields) if (/protector/i.test(n)) candidates.push(v);
    for (const c of candidates) {
      const guid = new RegExp(GUID_PATTERN).exec(c);
      if (guid) {
        protectorId = `{${guid[0].toUpperCase()}}`;
        break;
      }
    }
    if (protectorId === null) {
      const guid = new RegExp(`protector[^\\r\\n{]*\\{?(${GUID_PATTERN})`, 'i').exec(record.message);
      if (guid) protectorId = `{${guid[1]!.toUpperCase()}}`;
    }
    const values: string[] = [];
    for (const n of names.volume) if (fields.has(n)) values.push(fields.get(n)!);
    for (const [n, v] of fields) if (/volume/i.test(n) && !names.volume.includes(n)) values.push(v);
    let volume = this.convertToEventVolume(values, volumeNames);
    if (volume !== null && volume.length > 260) volume = volume.slice(0, 260);
    return { id: record.id, time: this.formatUtcTime(timeUtc), protectorId, volume };
  }

  // Keywarden-Agent.ps1 Get-BitLockerEvents 2269-2314
  /** Events newer than the cursor (first run: the last 7 days), newest 200 at most, oldest first. */
  private getBitLockerEvents(sinceUtc: string | null): EventReport {
    const since = sinceUtc === null ? null : ticksOf(sinceUtc);
    const start = since !== null ? fromTicks(since - 10_000_000n) : this.formatUtcTime(new Date(Date.now() - 7 * 86_400_000));
    const filters = [
      { log: 'Microsoft-Windows-BitLocker/BitLocker Management', ids: [845, 846, 847, 784, 785, 783, 775, 776, 773, 774] },
      { log: 'System', ids: [24652] },
    ];
    const records: SimEvent[] = [];
    for (const f of filters) {
      // Get-WinEvent -MaxEvents 200: the newest 200.
      for (const r of this.machine.events(f.log, f.ids, start).slice(-200)) {
        if (since !== null && ticksOf(r.time) <= since) continue;
        records.push(r);
      }
    }
    const selected = [...records].sort((a, b) => (ticksOf(a.time) < ticksOf(b.time) ? -1 : ticksOf(a.time) > ticksOf(b.time) ? 1 : 0)).slice(-200);
    if (records.length > 200) this.writeAgentLog(`${records.length} BitLocker events since the last check-in; sending the newest 200.`, 'WARN');
    const volumeNames = selected.length > 0 ? this.getVolumeNameMap() : new Map<string, string>();
    const items = selected.map((r) => this.convertToEventPayload(r, r.time, volumeNames));
    return { items, newest: selected.at(-1)?.time ?? null };
  }

  // ================================================================================================
  // Protocol requests
  // ================================================================================================

  // Keywarden-Agent.ps1 Invoke-Enrollment 2320-2384
  private async invokeEnrollment(identity: Identity, entra: Entra, token: Token | null, previous: AgentState | null, reason: string): Promise<void> {
    if (!token?.value.trim()) {
      this.stopAgentRun(
        2,
        `The device must enroll (${reason}) but no enrollment token was found: pass -EnrollmentTokenFile <file>, set KEYWARDEN_ENROLLMENT_TOKEN, or let the installer write ${ENROLL_TOKEN_FILE}.`,
      );
    }
    if (!/^kwe_[A-Za-z0-9_-]+$/.test(token.value)) this.stopAgentRun(2, `The enrollment token from ${token.source} does not look like a Keywarden enrollment token (kwe_...).`);
    const body: Record<string, unknown> = {
      enrollmentToken: token.value,
      agentVersion: AGENT_VERSION,
      device: {
        hostname: identity.hostname,
        domain: identity.domain,
        domainJoined: identity.domainJoined,
        serialNumber: identity.serialNumber,
        manufacturer: identity.manufacturer,
        model: identity.model,
        smbiosUuid: identity.smbiosUuid,
        entraDeviceId: entra.deviceId,
      },
    };
    if (previous?.credential) body.previousCredential = previous.credential;
    this.writeAgentLog(`Enrolling ${identity.hostname} (serial ${identity.serialNumber}, Entra device ${entra.deviceId}) with the token from ${token.source}.`);
    const response = await this.invokeAgentApi('/api/v1/agent/enroll', body, { what: 'enrollment', httpErrorExitCode: 2 });
    const deviceId = this.convertToCleanString(response.deviceId);
    const credential = this.convertToCleanString(response.credential);
    const salt = this.convertToCleanString(response.fingerprintSalt);
    this.addSecret(credential);
    this.addSecret(salt);
    if (!deviceId || !credential?.startsWith('kwd_') || !salt) this.stopAgentRun(2, 'The server answered the enrollment without a device ID, credential or fingerprint salt.');
    const state = this.newAgentState();
    state.deviceId = deviceId;
    state.credential = credential;
    state.fingerprintSalt = salt;
    state.serverUrl = this.baseUrl;
    state.enrolledAt = this.formatUtcTime(new Date());
    if (this.stateOnDisk !== null) {
      // Sequence numbers keep increasing across re-enrollment.
      state.lastSeq = this.stateOnDisk.lastSeq;
      state.lastEventTime = this.stateOnDisk.lastEventTime;
    }
    if (Number(response.checkinIntervalSeconds) > 0) state.nextCheckinSeconds = Number(response.checkinIntervalSeconds);
    this.state = state;
    this.saveAgentState();
    this.addSummary(`Enrolled with ${this.baseUrl} as device ${deviceId}.`);
    this.removeEnrollmentTokenFiles(token);
    if (response.pendingApproval === true) {
      this.writeAgentLog('The server already knows this machine as another device: until an administrator approves the link (keywarden agent approve), reports go to a device record of their own.', 'WARN');
      this.addSummary('Waiting for an administrator to approve the link to the existing device.');
    }
  }

  // Keywarden-Agent.ps1 Send-Checkin 2386-2407
  private async sendCheckin(device: unknown, volumeReport: VolumeReport, eventReport: EventReport, jobResults: JobResult[]): Promise<any> {
    const body = {
      seq: 0,
      sentAt: '',
      agentVersion: AGENT_VERSION,
      device,
      volumes: volumeReport.volumes,
      manageBde: volumeReport.manageBde,
      events: eventReport.items,
      jobResults,
    };
    const response = await this.invokeSequencedRequest('/api/v1/agent/checkin', body, 'check-in');
    // The event cursor moves only once the server has the events.
    if (eventReport.newest !== null) this.state!.lastEventTime = this.formatUtcTime(eventReport.newest);
    this.state!.lastCheckinAt = this.formatUtcTime(new Date());
    if (Number(response.nextCheckinSeconds) > 0) this.state!.nextCheckinSeconds = Number(response.nextCheckinSeconds);
    this.saveAgentState();
    return response;
  }

  // Keywarden-Agent.ps1 Send-Keys 2409-2448
  /** Uploads recovery passwords, at most 32 per request; returns the server's status per normalized protector ID. */
  protected async sendKeys(keys: KeyItem[], jobId: string | null): Promise<Statuses> {
    const statuses: Statuses = new Map();
    for (let start = 0; start < keys.length; start += 32) {
      const body = { seq: 0, sentAt: '', jobId: jobId || null, keys: keys.slice(start, start + 32) };
      const response = await this.invokeSequencedRequest('/api/v1/agent/keys', body, 'key upload');
      for (const e of (response?.stored ?? []) as { protectorId: string; status: string; reason?: string }[]) {
        statuses.set(this.getNormalizedId(e.protectorId), { status: String(e.status), reason: this.convertToCleanString(e.reason) });
      }
    }
    for (const k of keys) {
      const e = statuses.get(this.getNormalizedId(k.protectorId));
      if (!e) this.writeAgentLog(`Key ${k.protectorId} on ${k.mountPoint}: the server gave no status.`, 'WARN');
      else this.writeAgentLog(`Key ${k.protectorId} on ${k.mountPoint}: ${e.status} ${e.reason ?? ''}`, this.testEscrowed(e.status) ? 'INFO' : 'WARN');
    }
    return statuses;
  }

  // Keywarden-Agent.ps1 Get-KeyUploadStatus 2450-2462
  protected async getKeyUploadStatus(key: KeyItem, jobId: string | null): Promise<UploadStatus> {
    const statuses = await this.sendKeys([key], jobId);
    const e = statuses.get(this.getNormalizedId(key.protectorId)) ?? { status: 'missing', reason: null };
    return { ...e, text: e.reason ? `${e.status} (${e.reason})` : e.status };
  }

  // Keywarden-Agent.ps1 Test-Escrowed 2464-2468
  protected testEscrowed(status: string | undefined): boolean {
    return status === 'stored' || status === 'duplicate';
  }

  // Keywarden-Agent.ps1 New-KeyItem 2470-2478
  protected newKeyItem(volume: Volume, protectorId: string, password: string): KeyItem {
    return { mountPoint: volume.mountPoint, protectorId, recoveryPassword: password, volumeType: volume.volumeType };
  }

  // Keywarden-Agent.ps1 Get-ProtectorKey 2480-2505
  protected getProtectorKey(mountPoint: string, protectorId: string, volumes: Volume[] | null = null, cache: Map<string, Protector[]> | null = null): KeyItem {
    const volume = this.getJobVolume(mountPoint, { allowManageBde: true, volumes });
    if (volume.cim === null) {
      const braced = `{${this.getNormalizedId(protectorId)}}`;
      return this.newKeyItem(volume, braced, this.getProtectorPassword(volume, braced));
    }
    const cacheKey = this.convertToMountKey(volume.mountPoint);
    let protectors = cache?.get(cacheKey) ?? null;
    if (protectors === null) {
      this.assertVolumeUnlocked(volume);
      protectors = this.getVolumeProtectors(volume);
      cache?.set(cacheKey, protectors);
    }
    const protector = this.findVolumeProtector(protectors, protectorId);
    if (protector === null) throw new Error(`recovery password protector ${protectorId} not found on ${volume.mountPoint}`);
    if (protector.type !== 'RecoveryPassword') throw new Error(`protector ${protectorId} on ${volume.mountPoint} is a ${protector.type} protector, not a recovery password`);
    return this.newKeyItem(volume, protector.id, this.getProtectorPassword(volume, protector.id));
  }

  // Keywarden-Agent.ps1 Send-RequestedPasswords 2507-2532
  /** The passwords the server asked for (at most 128); a volume or protector that is gone is logged and skipped. */
  private async sendRequestedPasswords(requests: { mountPoint: string; protectorId: string }[] | null | undefined): Promise<number> {
    const pending = (requests ?? []).filter((r) => r !== null);
    if (pending.length === 0) return 0;
    let volumes: Volume[] | null;
    try {
      volumes = this.getEncryptableVolumes();
    } catch {
      volumes = null;
    }
    const cache = new Map<string, Protector[]>();
    const keys: KeyItem[] = [];
    for (const r of pending) {
      try {
        keys.push(this.getProtectorKey(String(r.mountPoint), String(r.protectorId), volumes, cache));
      } catch (e) {
        this.writeAgentLog(`Requested password ${r.protectorId} on ${r.mountPoint}: ${message(e)}`, 'WARN');
      }
    }
    if (keys.length === 0) return 0;
    const statuses = await this.sendKeys(keys, null);
    return [...statuses.values()].filter((e) => this.testEscrowed(e.status)).length;
  }

  // ================================================================================================
  // Jobs
  // ================================================================================================

  // Keywarden-Agent.ps1 Get-EscrowedRecoveryPassword 2542-2582
  /**
   * The escrow-first step: a spare recovery password of the volume (not in `exclude`) that the
   * server answers stored/duplicate for, uploaded with the job's ID; otherwise (not spareOnly) a
   * new one, added and escrowed, or a throw.
   */
  protected async getEscrowedRecoveryPassword(volume: Volume, jobId: string, exclude: Set<string> | null = null, spareOnly = false): Promise<Escrow> {
    const tried = new Set<string>();
    for (const p of this.getVolumeProtectors(volume)) {
      if (p.type !== 'RecoveryPassword') continue;
      const id = this.getNormalizedId(p.id);
      if (exclude?.has(id)) continue;
      tried.add(id);
      let password: string;
      try {
        password = this.getProtectorPassword(volume, p.id);
      } catch (e) {
        this.writeAgentLog(`${volume.mountPoint}: the password of ${p.id} cannot be read: ${message(e)}`, 'WARN');
        continue;
      }
      const upload = await this.getKeyUploadStatus(this.newKeyItem(volume, p.id, password), jobId);
      if (this.testEscrowed(upload.status)) {
        this.writeAgentLog(`${volume.mountPoint}: recovery password ${p.id} is escrowed (${upload.text}); using it.`);
        return { protectorId: p.id, added: false, text: upload.text, tried };
      }
      this.writeAgentLog(`${volume.mountPoint}: recovery password ${p.id} is not escrowed (${upload.text}).`, 'WARN');
    }
    if (spareOnly) return { protectorId: null, added: false, text: null, tried };
    const newId = this.addRecoveryPasswordProtector(volume);
    const password = this.getProtectorPassword(volume, newId);
    const upload = await this.getKeyUploadStatus(this.newKeyItem(volume, newId, password), jobId);
    if (!this.testEscrowed(upload.status)) {
      throw new Error(`the server did not escrow the new recovery password ${newId} on ${volume.mountPoint} (status: ${upload.text}); nothing was removed`);
    }
    return { protectorId: newId, added: true, text: upload.text, tried };
  }

  // Keywarden-Agent.ps1 Invoke-RotateJob 2584-2695
  protected async invokeRotateJob(job: Job, result: JobResult): Promise<void> {
    const oldId = this.getNormalizedId(job.protectorId);
    const replaceAll = oldId === '';
    let volume: Volume | null;
    try {
      volume = this.getEncryptableVolume(String(job.mountPoint));
    } catch (e) {
      throw new Error(`Win32_EncryptableVolume cannot be read on this device (${message(e)}); rotation needs it`, { cause: e });
    }
    let movedFrom: string | null = null;
    if (!replaceAll) {
      const onJobVolume = volume !== null && this.findVolumeProtector(this.getVolumeProtectors(volume), oldId) !== null;
      if (!onJobVolume) {
        // Step 0: drive letters of data volumes change; "on no volume" must be certain.
        const elsewhere = this.findProtectorMountPoint(job.protectorId!);
        if (elsewhere !== null) {
          movedFrom = String(job.mountPoint);
          volume = this.getEncryptableVolume(elsewhere);
          this.writeAgentLog(`Rotate: protector ${job.protectorId} is on ${elsewhere}, not on ${movedFrom}; rotating it there.`, 'WARN');
        } else {
          if (volume === null) throw new Error(`recovery password protector ${job.protectorId} is on no volume of this device, and volume ${job.mountPoint} does not exist`);
          this.assertVolumeUnlocked(volume);
          const spare = await this.getEscrowedRecoveryPassword(volume, job.id, null, true);
          if (spare.protectorId === null) {
            throw new Error(`recovery password protector ${job.protectorId} not found on any volume of this device, and no recovery password of ${volume.mountPoint} is escrowed`);
          }
          Object.assign(result, {
            status: 'succeeded',
            newProtectorId: spare.protectorId,
            removedProtectorId: job.protectorId!,
            detail: `the old protector ${job.protectorId} is on no volume of this device (already removed); ${spare.protectorId} on ${volume.mountPoint} is escrowed`,
          });
          return;
        }
      }
    }
    if (volume === null) throw new Error(`volume ${job.mountPoint} not found on this device`);
    const mountPoint = volume.mountPoint;
    this.assertVolumeUnlocked(volume);

    const toReplace = new Set<string>();
    for (const p of this.getVolumeProtectors(volume)) {
      const id = this.getNormalizedId(p.id);
      if (!replaceAll && id === oldId && p.type !== 'RecoveryPassword') {
        throw new Error(`protector ${job.protectorId} is a ${p.type} protector, not a recovery password; refusing to rotate it`);
      }
      if (p.type === 'RecoveryPassword' && (replaceAll || id === oldId)) toReplace.add(id);
    }

    // Steps 1 and 2.
    const escrow = await this.getEscrowedRecoveryPassword(volume, job.id, toReplace);
    const newId = escrow.protectorId!;
    if (this.failPoint === 'before-remove-protector') throw new AgentKilled('agent killed before removing the old protector');

    // Step 3: re-read; remove the replaced ones only while the escrowed new one is there.
    const newKey = this.getNormalizedId(newId);
    let newStillThere = false;
    const removeIds: string[] = [];
    for (const p of this.getVolumeProtectors(volume)) {
      const id = this.getNormalizedId(p.id);
      if (id === newKey) newStillThere = true;
      else if (toReplace.has(id) && p.type === 'RecoveryPassword') removeIds.push(p.id);
    }
    if (!newStillThere) throw new Error(`the escrowed protector ${newId} is no longer on ${mountPoint}; nothing was removed`);
    const removed: string[] = [];
    for (const removeId of removeIds) {
      try {
        this.removeProtector(volume, removeId);
      } catch (e) {
        throw new Error(
          `could not remove the old protector ${removeId} from ${mountPoint} (${message(e)}); removed so far: ${removed.length > 0 ? removed.join(', ') : 'none'}; new escrowed protector ${newId}`,
          { cause: e },
        );
      }
      removed.push(removeId);
    }
    result.status = 'succeeded';
    result.newProtectorId = newId;
    if (removed.length > 0) result.removedProtectorId = removed[0]!;
    else if (!replaceAll) result.removedProtectorId = job.protectorId!;
    result.detail =
      removed.length > 0 ? `recovery password rotated on ${mountPoint}: new ${newId}, removed ${removed.join(', ')}` : `recovery password added on ${mountPoint}: new ${newId}, none to remove`;
    if (movedFrom !== null) result.detail += ` (the protector was on ${mountPoint}, not on ${movedFrom})`;
  }

  // Keywarden-Agent.ps1 Invoke-BackupJob 2697-2710
  protected async invokeBackupJob(job: Job, result: JobResult): Promise<void> {
    const key = this.getProtectorKey(String(job.mountPoint), String(job.protectorId));
    const upload = await this.getKeyUploadStatus(key, job.id);
    if (this.testEscrowed(upload.status)) Object.assign(result, { status: 'succeeded', detail: `escrowed: ${upload.text}` });
    else Object.assign(result, { status: 'failed', detail: `the server answered ${upload.text}` });
  }

  // Keywarden-Agent.ps1 Invoke-ReEscrowJob 2712-2751
  protected async invokeReEscrowJob(job: Job, result: JobResult): Promise<void> {
    if (job.protectorId !== null) return this.invokeBackupJob(job, result);
    const volume = this.getJobVolume(String(job.mountPoint));
    this.assertVolumeUnlocked(volume);
    const keys: KeyItem[] = [];
    for (const p of this.getVolumeProtectors(volume)) {
      if (p.type === 'RecoveryPassword') keys.push(this.newKeyItem(volume, p.id, this.getProtectorPassword(volume, p.id)));
    }
    if (keys.length === 0) throw new Error(`${volume.mountPoint} has no recovery password protector to escrow`);
    const statuses = await this.sendKeys(keys, job.id);
    const escrowed: string[] = [];
    const notEscrowed: string[] = [];
    for (const k of keys) {
      const e = statuses.get(this.getNormalizedId(k.protectorId));
      if (e && this.testEscrowed(e.status)) escrowed.push(`${k.protectorId} ${e.status}`);
      else if (e) notEscrowed.push(`${k.protectorId} ${e.status} ${e.reason ?? ''}`.trim());
      else notEscrowed.push(`${k.protectorId} missing`);
    }
    if (notEscrowed.length === 0) Object.assign(result, { status: 'succeeded', detail: `escrowed ${escrowed.length} recovery password(s) of ${volume.mountPoint}: ${escrowed.join(', ')}` });
    else Object.assign(result, { status: 'failed', detail: `not escrowed on ${volume.mountPoint}: ${notEscrowed.join(', ')}` });
  }

  // Keywarden-Agent.ps1 Invoke-DirectoryBackupJob 2753-2784
  protected async invokeDirectoryBackupJob(job: Job, result: JobResult, target: 'ad' | 'entra'): Promise<void> {
    const volume = this.getJobVolume(String(job.mountPoint), { allowManageBde: true });
    const wanted = this.getNormalizedId(job.protectorId);
    const targetName = target === 'ad' ? 'Active Directory' : 'Microsoft Entra ID';
    if (volume.cim !== null) {
      this.assertVolumeUnlocked(volume);
      const protector = this.findVolumeProtector(this.getVolumeProtectors(volume), wanted);
      if (protector === null) throw new Error(`protector ${job.protectorId} not found on ${volume.mountPoint}`);
      const method = target === 'ad' ? 'BackupRecoveryInformationToActiveDirectory' : 'BackupRecoveryInformationToCloudDomain';
      const backup = this.invokeVolumeMethod(volume, method, { VolumeKeyProtectorID: protector.id }, true);
      if (!this.testMethodSucceeded(backup)) {
        throw new Error(`the backup of ${protector.id} on ${volume.mountPoint} to ${targetName} failed: ${method} returned ${this.formatHResult(backup.ReturnValue)}`);
      }
    } else {
      const option = target === 'ad' ? '-adbackup' : '-aadbackup';
      const native = this.invokeNativeCommand(['-protectors', option, volume.mountPoint, '-id', `{${wanted}}`]);
      if (native.exitCode !== 0) {
        const lastLine = native.text.split(/\r?\n/).filter((l) => l.trim()).at(-1)?.trim() ?? '';
        throw new Error(`manage-bde ${option} failed (exit ${native.exitCode}): ${lastLine}`);
      }
    }
    Object.assign(result, { status: 'succeeded', detail: `backed up to ${targetName}` });
  }

  // Keywarden-Agent.ps1 Invoke-AddRecoveryPasswordJob 2786-2805
  protected async invokeAddRecoveryPasswordJob(job: Job, result: JobResult): Promise<void> {
    const volume = this.getJobVolume(String(job.mountPoint));
    this.assertVolumeUnlocked(volume);
    const escrow = await this.getEscrowedRecoveryPassword(volume, job.id);
    if (!escrow.added) {
      Object.assign(result, { status: 'succeeded', newProtectorId: escrow.protectorId, detail: `${volume.mountPoint} already has an escrowed recovery password (${escrow.protectorId})` });
      return;
    }
    if (!this.testProtectorPresent(volume, escrow.protectorId!)) throw new Error(`the new recovery password ${escrow.protectorId} is no longer on ${volume.mountPoint}`);
    Object.assign(result, { status: 'succeeded', newProtectorId: escrow.protectorId, detail: `recovery password ${escrow.protectorId} added to ${volume.mountPoint} and escrowed` });
  }

  // Keywarden-Agent.ps1 Invoke-ResumeProtectionJob 2807-2831
  protected async invokeResumeProtectionJob(job: Job, result: JobResult): Promise<void> {
    const volume = this.getJobVolume(String(job.mountPoint));
    this.assertVolumeUnlocked(volume);
    const escrow = await this.getEscrowedRecoveryPassword(volume, job.id);
    if (escrow.added && !this.testProtectorPresent(volume, escrow.protectorId!)) throw new Error(`the new recovery password ${escrow.protectorId} is no longer on ${volume.mountPoint}`);
    result.newProtectorId = escrow.protectorId!;
    let state = this.getVolumeState(volume);
    if (state.protection === 1) {
      Object.assign(result, { status: 'succeeded', detail: `protection is already on for ${volume.mountPoint}; recovery password ${escrow.protectorId} is escrowed` });
      return;
    }
    this.invokeVolumeMethod(volume, 'EnableKeyProtectors');
    state = this.getVolumeState(volume);
    if (state.protection !== 1) {
      throw new Error(
        `protection of ${volume.mountPoint} is still ${this.getEnumName(PROTECTION_STATUS_NAMES, state.protection)} after EnableKeyProtectors (${this.getEnumName(CONVERSION_STATUS_NAMES, state.conversion)})`,
      );
    }
    Object.assign(result, { status: 'succeeded', detail: `protection turned on for ${volume.mountPoint}; recovery password ${escrow.protectorId} is escrowed` });
  }

  // Keywarden-Agent.ps1 Enable-DataVolumeAutoUnlock 2833-2846
  private enableDataVolumeAutoUnlock(volume: Volume): boolean {
    const check = this.invokeVolumeMethod(volume, 'IsAutoUnlockEnabled', null, true);
    if (this.testMethodSucceeded(check) && check.IsAutoUnlockEnabled === true) return false;
    const externalId = String(this.invokeVolumeMethod(volume, 'ProtectKeyWithExternalKey').VolumeKeyProtectorID);
    this.invokeVolumeMethod(volume, 'EnableAutoUnlock', { VolumeKeyProtectorID: externalId });
    this.writeAgentLog(`${volume.mountPoint}: automatic unlocking turned on with external key ${externalId}.`);
    return true;
  }

  // Keywarden-Agent.ps1 Invoke-EnableEncryptionJob 2848-2970
  protected async invokeEnableEncryptionJob(job: Job, result: JobResult): Promise<void> {
    const volume = this.getJobVolume(String(job.mountPoint));
    this.assertVolumeUnlocked(volume);
    const mountPoint = volume.mountPoint;
    let methodName = this.convertToCleanString(job.encryptionMethod);
    if (methodName === 'default') methodName = null;
    let methodNumber: number | null = null;
    if (methodName !== null) {
      if (!Object.hasOwn(ENCRYPT_METHOD_NUMBERS, methodName)) {
        throw new Error(`unknown encryption method "${methodName}" (XtsAes128, XtsAes256, Aes128, Aes256, or null for the Windows default)`);
      }
      methodNumber = ENCRYPT_METHOD_NUMBERS[methodName]!;
    }
    const usedSpaceOnly = job.usedSpaceOnly === null || job.usedSpaceOnly === undefined ? true : job.usedSpaceOnly;

    // Step 1.
    let state = this.getVolumeState(volume);
    let exclude: Set<string> | null = null;
    if (state.conversion === 1 && state.protection === 1) {
      const spare = await this.getEscrowedRecoveryPassword(volume, job.id, null, true);
      if (spare.protectorId !== null) {
        Object.assign(result, {
          status: 'succeeded',
          newProtectorId: spare.protectorId,
          detail: `already encrypted: ${mountPoint} is fully encrypted with protection on; recovery password ${spare.protectorId} is escrowed`,
        });
        return;
      }
      exclude = spare.tried;
    }

    // Step 2.
    const escrow = await this.getEscrowedRecoveryPassword(volume, job.id, exclude);
    const recoveryId = escrow.protectorId!;

    // Step 3.
    if (volume.volumeType === 'OperatingSystem') {
      const hasTpm = this.getVolumeProtectors(volume).some((p) => TPM_PROTECTOR_TYPES.includes(String(p.type)));
      if (!hasTpm) {
        const tpm = this.getTpmFacts();
        if (tpm === null || tpm.present !== true || tpm.ready !== true) {
          throw new Error(`no ready TPM: ${mountPoint} cannot get a TPM protector, so encryption was not started; the recovery password ${recoveryId} stays on it, escrowed`);
        }
        const tpmProtector = this.invokeVolumeMethod(volume, 'ProtectKeyWithTPM');
        this.writeAgentLog(`${mountPoint}: added TPM protector ${tpmProtector.VolumeKeyProtectorID}.`);
      }
    } else {
      let os: Volume | null = null;
      for (const candidate of this.getEncryptableVolumes()) if (candidate.volumeType === 'OperatingSystem') os = candidate;
      if (os === null) {
        throw new Error(`encrypt the operating-system drive first: it was not found, and ${mountPoint} can only unlock automatically from an encrypted operating-system drive`);
      }
      const osState = this.getVolumeState(os);
      if (osState.conversion !== 1 || osState.protection !== 1) {
        throw new Error(
          `encrypt the operating-system drive first: ${os.mountPoint} is ${this.getEnumName(CONVERSION_STATUS_NAMES, osState.conversion)} with protection ${this.getEnumName(PROTECTION_STATUS_NAMES, osState.protection)}, and ${mountPoint} can only unlock automatically from an encrypted, protected operating-system drive`,
        );
      }
    }

    // Step 4.
    if (!this.testProtectorPresent(volume, recoveryId)) throw new Error(`the escrowed recovery password ${recoveryId} is no longer on ${mountPoint}; encryption was not started`);

    // Step 5.
    state = this.getVolumeState(volume);
    const actions: string[] = [];
    if (state.conversion === 0) {
      const args: Record<string, unknown> = { EncryptionFlags: usedSpaceOnly ? 1 : 0 };
      if (methodNumber !== null) args.EncryptionMethod = methodNumber;
      this.invokeVolumeMethod(volume, 'Encrypt', args);
      actions.push(`encryption started (${methodName ?? 'Windows default'}, ${usedSpaceOnly ? 'used space only' : 'full volume'})`);
    } else if (state.conversion === 4) {
      this.invokeVolumeMethod(volume, 'ResumeConversion');
      actions.push('encryption resumed');
    } else if (state.conversion === 1 || state.conversion === 2) {
      if (state.protection === 1) {
        actions.push('already encrypted');
      } else {
        const enable = this.invokeVolumeMethod(volume, 'EnableKeyProtectors', null, true);
        if (this.testMethodSucceeded(enable)) {
          actions.push('protection turned on');
        } else if (state.conversion === 2) {
          this.writeAgentLog(`${mountPoint}: EnableKeyProtectors returned ${this.formatHResult(enable.ReturnValue)} while encrypting.`, 'WARN');
          actions.push('encryption in progress');
        } else {
          throw new Error(`EnableKeyProtectors on ${mountPoint} returned ${this.formatHResult(enable.ReturnValue)}`);
        }
      }
    } else {
      throw new Error(`${mountPoint} is ${this.getEnumName(CONVERSION_STATUS_NAMES, state.conversion)}: encryption is not started while Windows decrypts the volume`);
    }
    if (volume.volumeType !== 'OperatingSystem' && this.enableDataVolumeAutoUnlock(volume)) actions.push('automatic unlocking turned on');
    Object.assign(result, { status: 'succeeded', newProtectorId: recoveryId, detail: `${actions.join('; ')} on ${mountPoint}; recovery password ${recoveryId} is escrowed` });
  }

  // Keywarden-Agent.ps1 Find-ProtectorMountPoint 2972-2986
  /** Searches every volume; throws when one cannot be read ("on no volume" must be certain). */
  private findProtectorMountPoint(protectorId: string | null): string | null {
    if (!protectorId) return null;
    for (const volume of this.getEncryptableVolumes()) {
      let protectors: Protector[];
      try {
        protectors = this.getVolumeProtectors(volume);
      } catch (e) {
        throw new Error(`cannot tell where protector ${protectorId} is: the protectors of ${volume.mountPoint} cannot be read (${message(e)})`, { cause: e });
      }
      if (this.findVolumeProtector(protectors, protectorId) !== null) return volume.mountPoint;
    }
    return null;
  }

  // Keywarden-Agent.ps1 Invoke-AgentJob 2988-3047
  private async invokeAgentJob(job: Job, results: JobResult[]): Promise<void> {
    const result: JobResult = { jobId: String(job.id ?? ''), status: 'failed', detail: '' };
    const kind = String(job.kind);
    const work: Job = {
      id: String(job.id ?? ''),
      kind,
      mountPoint: this.convertToCleanString(job.mountPoint),
      protectorId: this.convertToCleanString(job.protectorId),
      encryptionMethod: this.convertToCleanString(job.encryptionMethod),
      usedSpaceOnly: this.convertToNullableBool(job.usedSpaceOnly),
    };
    this.writeAgentLog(`Job ${work.id}: ${kind} ${work.mountPoint ?? ''} ${work.protectorId ?? ''}`);
    try {
      if (!work.id) throw new Error('the job has no id');
      if (!JOB_KINDS.includes(kind)) throw new Error(`unsupported job kind "${kind}" (agent ${AGENT_VERSION})`);
      if (work.protectorId === null && ['backup', 'backup-to-ad', 'backup-to-entra'].includes(kind)) throw new Error(`a ${kind} job needs a protectorId`);
      if (work.mountPoint === null) {
        if (work.protectorId === null) throw new Error('the job has neither a mountPoint nor a protectorId');
        work.mountPoint = this.findProtectorMountPoint(work.protectorId);
        if (work.mountPoint === null) throw new Error('the job has no mountPoint and its protector is on no volume of this device');
      }
      if (kind === 'rotate') await this.invokeRotateJob(work, result);
      else if (kind === 'backup') await this.invokeBackupJob(work, result);
      else if (kind === 're-escrow') await this.invokeReEscrowJob(work, result);
      else if (kind === 'backup-to-ad') await this.invokeDirectoryBackupJob(work, result, 'ad');
      else if (kind === 'backup-to-entra') await this.invokeDirectoryBackupJob(work, result, 'entra');
      else if (kind === 'add-recovery-password') await this.invokeAddRecoveryPasswordJob(work, result);
      else if (kind === 'resume-protection') await this.invokeResumeProtectionJob(work, result);
      else if (kind === 'enable-encryption') await this.invokeEnableEncryptionJob(work, result);
    } catch (e) {
      // Errors that end the run (server unreachable, credential revoked) and kills pass through.
      if (this.getAgentExitCode(e) !== null || e instanceof AgentKilled) throw e;
      result.status = 'failed';
      result.detail = message(e);
    }
    result.detail = this.limitText(result.detail, 1000);
    await this.machine.settle();
    for (const watch of this.resultWatchers) await watch(work, result);
    if (result.status === 'succeeded') this.writeAgentLog(`Job ${work.id} (${kind}): succeeded: ${result.detail}`);
    else this.addSummary(`Job ${work.id} (${kind} ${work.mountPoint ?? ''}) failed: ${result.detail}`, 'WARN');
    results.push(result);
  }

  // ================================================================================================
  // Main
  // ================================================================================================

  // Keywarden-Agent.ps1 Invoke-AgentRun 3053-3170
  private async invokeAgentRun(): Promise<void> {
    if (!this.testIsElevated()) this.stopAgentRun(3, 'The agent must run as SYSTEM or as an elevated administrator: BitLocker information is not readable otherwise.');
    if (!this.enterAgentLock()) this.stopAgentRun(5, `another run holds the lock ${LOCK_FILE} (waited 120 seconds); this run did nothing`);
    this.stateReady = true;
    this.writeAgentLog(`Keywarden agent ${AGENT_VERSION} starting: PowerShell 5.1, 64-bit, as NT AUTHORITY\\SYSTEM.`);

    this.addSecret(this.machine.env.KEYWARDEN_ENROLLMENT_TOKEN);
    this.commandLineToken = this.selectFirstValue([this.params.enrollmentToken, this.machine.env.KEYWARDEN_ENROLLMENT_TOKEN_ARGUMENT]);
    this.addSecret(this.commandLineToken);
    if (this.commandLineToken !== null) {
      this.addSummary(
        'the token was on a command line: Windows logs it (event 400, 4688, EDR); revoke it after the rollout. Use -EnrollmentTokenFile, KEYWARDEN_ENROLLMENT_TOKEN or enroll.token instead.',
        'WARN',
      );
    }

    const state = this.readAgentState();
    const url = this.selectFirstValue([this.params.serverUrl, this.machine.env.KEYWARDEN_SERVER_URL, state?.serverUrl]);
    this.baseUrl = this.getValidatedBaseUrl(url);
    this.hasManageBde = this.machine.hasManageBde;

    const identity = this.getDeviceIdentity();
    const entra = this.getEntraFacts(this.getDsregStatus());

    let reason: string | null = null;
    if (state === null) reason = 'not enrolled yet';
    else if (this.params.forceReenroll) reason = '-ForceReenroll';
    else if (state.serverUrl && state.serverUrl.replace(/\/+$/, '') !== this.baseUrl) reason = `the server URL changed from ${state.serverUrl}`;
    if (reason !== null) {
      this.writeAgentLog(`Enrolling: ${reason}.`);
      await this.invokeEnrollment(identity, entra, this.getEnrollmentToken(), state, reason);
    } else {
      this.state = state;
      this.state!.serverUrl ??= this.baseUrl;
    }
    const saltKey = Buffer.from(this.state!.fingerprintSalt!, 'base64');

    const device = this.getCheckinDevice(identity, entra);
    let volumeReport = this.getVolumeReport(saltKey);
    let eventReport = this.getBitLockerEvents(this.state!.lastEventTime);
    let response = await this.sendCheckin(device, volumeReport, eventReport, []);
    this.firstCheckin = response;
    let volumeText = volumeReport.source === 'manage-bde' ? 'volumes from manage-bde' : `${volumeReport.volumes.length} volume(s) from Win32_EncryptableVolume`;
    if (volumeReport.skipped.length > 0) volumeText += ` (${volumeReport.skipped.length} left out: ${volumeReport.skipped.join(', ')})`;
    this.addSummary(`Checked in as device ${this.state!.deviceId}: ${volumeText}, ${eventReport.items.length} event(s).`);

    let uploaded = await this.sendRequestedPasswords(response.requestPasswords);

    const jobResults = this.results;
    for (const job of ((response.jobs ?? []) as Job[]).filter((j) => j !== null)) await this.invokeAgentJob(job, jobResults);
    const failed = jobResults.filter((r) => r.status !== 'succeeded').length;
    if (jobResults.length > 0) {
      volumeReport = this.getVolumeReport(saltKey);
      eventReport = this.getBitLockerEvents(this.state!.lastEventTime);
      response = await this.sendCheckin(device, volumeReport, eventReport, jobResults);
      uploaded += await this.sendRequestedPasswords(response.requestPasswords);
      const ignored = ((response.jobs ?? []) as Job[]).length;
      if (ignored > 0) this.writeAgentLog(`${ignored} job(s) offered with the results were not run; they run on the next run.`);
      this.addSummary(`Jobs: ${jobResults.length - failed} succeeded, ${failed} failed (results reported).`);
    }
    if (uploaded > 0) this.addSummary(`${uploaded} recovery password(s) escrowed at the server's request.`);
    if (failed > 0) {
      this.exitCode = 4;
      this.finalMessage = `${failed} job(s) failed; see ${LOG_FILE}`;
    } else {
      this.finalMessage = 'ok';
    }
  }

  // Keywarden-Agent.ps1 (main) 3219-3245
  /** One scheduled run: the script's main block. Rejects only at a fail point (the process was killed). */
  async run(): Promise<RunResult> {
    this.beginRun();
    try {
      await this.invokeAgentRun();
    } catch (e) {
      if (e instanceof AgentKilled) throw e;
      const code = this.getAgentExitCode(e);
      if (code === null) {
        this.exitCode = 1;
        this.finalMessage = `unexpected error: ${message(e)}`;
        this.writeAgentLog(`Unexpected error: ${e instanceof Error ? e.stack : String(e)}`, 'ERROR');
      } else {
        this.exitCode = code;
        this.finalMessage = message(e);
        this.writeAgentLog(this.finalMessage, 'ERROR');
      }
    }
    await this.machine.settle();
    // A run that did not get the lock leaves agent.json to the run that holds it.
    if (this.exitCode !== 5) this.saveRunStatus(this.exitCode, this.finalMessage);
    const finalLine = this.protectText(`Keywarden exit=${this.exitCode}: ${this.finalMessage}`);
    this.writeAgentLog(finalLine);
    return { exitCode: this.exitCode, lines: [...this.summaryLines, finalLine], finalLine, checkin: this.firstCheckin, jobResults: this.results };
  }
}

/** A transport over Fastify's inject(), for tests that drive the app in-process. */
export const injectTransport =
  (app: {
    inject(opts: { method: 'POST'; url: string; payload: string | object; headers?: Record<string, string> }): Promise<{ statusCode: number; body: string; json(): unknown }>;
  }): Transport =>
  async ({ method, url, body, text, headers }) => {
    const r = await app.inject({ method, url, payload: text ?? (body as object), headers: { 'content-type': 'application/json; charset=utf-8', ...headers } });
    let json: unknown;
    try {
      json = r.json();
    } catch {
      json = r.body;
    }
    return { status: r.statusCode, json };
  };

/** A transport over a real socket (app.listen): the bytes and headers Invoke-RestMethod sends. */
export const httpTransport =
  (baseUrl: string): Transport =>
  async ({ method, url, body, text, headers }) => {
    const r = await fetch(baseUrl + url, { method, headers, body: new Uint8Array(Buffer.from(text ?? JSON.stringify(body), 'utf8')) });
    const raw = await r.text();
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      json = raw;
    }
    return { status: r.status, json };
  };
