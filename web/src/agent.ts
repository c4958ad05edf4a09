import type { Body, EncryptionMethodChoice, JobKind } from './api';

/**
 * The Windows agent as the console shows it: job kinds in plain words, which finding each kind
 * fixes, and the rollout snippets per deployment tool. The snippets follow agent/README.md and
 * never carry the enrollment token: it travels in the enroll.token file, an environment variable
 * or the RMM's secure field, never on a command line (Windows logs those: event 400, 4688, EDR).
 */

export const JOB_LABEL: Record<JobKind, string> = {
  rotate: 'Rotate recovery password',
  backup: 'Escrow the recovery password again',
  'backup-to-ad': 'Back up to Active Directory',
  'backup-to-entra': 'Back up to Entra ID',
  'enable-encryption': 'Turn on encryption',
  'resume-protection': 'Resume protection',
  'add-recovery-password': 'Add a recovery password',
  're-escrow': 'Escrow every recovery password again',
};
export const jobLabel = (kind: string) => JOB_LABEL[kind as JobKind] ?? kind;

/** What a job of each kind does, one line (the queue menu's descriptions). */
export const JOB_HINT: Record<JobKind, string> = {
  rotate: 'Adds a new recovery password, escrows it, then removes the old one.',
  backup: 'Uploads the recovery password again.',
  'backup-to-ad': 'Backs the recovery password up to Active Directory as well.',
  'backup-to-entra': 'Backs the recovery password up to Entra ID as well.',
  'enable-encryption': 'Escrows a recovery password first, then starts BitLocker.',
  'resume-protection': 'Escrows a recovery password first, then turns protection back on.',
  'add-recovery-password': 'Adds a recovery password protector and escrows it.',
  're-escrow': 'Uploads every recovery password of the drive again.',
};

/** Who queued a job, as the job list says it. */
export const JOB_ORIGIN: Record<string, string> = {
  manual: 'queued by hand',
  bulk: 'queued for the client',
  policy: "queued by the client's policy",
  disclosure: 'after a reveal',
  rotation: 'after a rotation',
};

/** Job states as the server names them, in words and colours. */
export const JOB_STATE: Record<string, { label: string; color: string }> = {
  pending: { label: 'waiting for the agent', color: 'blue' },
  sent: { label: 'sent to the agent', color: 'blue' },
  awaiting_removal: { label: 'new key escrowed, removing the old one', color: 'blue' },
  succeeded: { label: 'done', color: 'green' },
  failed: { label: 'failed', color: 'red' },
  expired: { label: 'expired', color: 'orange' },
  cancelled: { label: 'cancelled', color: 'gray' },
};
export const jobState = (state: string) => JOB_STATE[state] ?? { label: state, color: 'gray' };
export const jobActive = (state: string) => state === 'pending' || state === 'sent' || state === 'awaiting_removal';

/** The kinds a person queues on one volume from the device page, in menu order. */
export const VOLUME_KINDS: JobKind[] = ['rotate', 'add-recovery-password', 're-escrow', 'enable-encryption', 'resume-protection'];
/** The kinds a person queues for a whole client. */
export const BULK_KINDS: JobKind[] = [
  'enable-encryption',
  'resume-protection',
  'add-recovery-password',
  're-escrow',
  'rotate',
  'backup-to-entra',
  'backup-to-ad',
];

/** Compliance findings a bulk job can be aimed at (src/domain/compliance/findings.ts titles). */
export const FINDING_TITLE: Record<string, string> = {
  os_volume_unprotected: 'Operating-system drive not encrypted',
  data_volume_unprotected: 'Fixed data drive not encrypted',
  protection_suspended: 'Protection suspended too long',
  recovery_password_missing: 'No recovery password',
  recovery_key_not_escrowed: 'Recovery password not escrowed',
  escrowed_key_mismatch: 'Escrowed password differs from the device',
  key_conflict: 'Conflicting recovery passwords',
  not_in_directory: 'Not escrowed in the directory',
  key_rotation_due: 'Recovery password due for rotation',
};
/** For each kind, the findings it fixes (the first one is the default aim). */
/** The findings a bulk job of each kind answers (the server checks the pairing too). */
export type BulkFinding = NonNullable<Body<'/api/v1/clients/{clientId}/agent-jobs', 'post'>['finding']>;
export const KIND_FINDINGS: Record<JobKind, BulkFinding[]> = {
  'enable-encryption': ['os_volume_unprotected', 'data_volume_unprotected'],
  'resume-protection': ['protection_suspended'],
  'add-recovery-password': ['recovery_password_missing'],
  're-escrow': ['recovery_key_not_escrowed', 'escrowed_key_mismatch'],
  rotate: ['key_rotation_due', 'key_conflict'],
  backup: ['recovery_key_not_escrowed'],
  'backup-to-ad': ['not_in_directory'],
  'backup-to-entra': ['not_in_directory'],
};

export const ENCRYPTION_METHODS: { value: EncryptionMethodChoice; label: string }[] = [
  { value: 'default', label: "Windows' default" },
  { value: 'XtsAes128', label: 'XTS-AES 128' },
  { value: 'XtsAes256', label: 'XTS-AES 256' },
  { value: 'Aes128', label: 'AES-CBC 128 (older Windows)' },
  { value: 'Aes256', label: 'AES-CBC 256 (older Windows)' },
];

// ------------------------------------------------------------------ rollout snippets

export type SnippetStep = {
  title: string;
  /** Plain text shown above the code (or alone). */
  text?: string;
  code?: string;
};
export type DeploymentRoute = { id: string; label: string; intro: string; steps: SnippetStep[] };

/** 64-bit Windows PowerShell from a 32-bit host (the Intune Management Extension). */
export const POWERSHELL_SYSNATIVE = '%SystemRoot%\\Sysnative\\WindowsPowerShell\\v1.0\\powershell.exe';
/** What a scheduled task starts: System32, never Sysnative (the Task Scheduler is 64-bit). */
const POWERSHELL_64 = '%SystemRoot%\\System32\\WindowsPowerShell\\v1.0\\powershell.exe';
const PS_ARGS = '-NoProfile -ExecutionPolicy Bypass -File';
const INSTALLED = 'C:\\Program Files\\Keywarden\\Keywarden-Agent.ps1';
const TOKEN_SHARE = '\\\\fs01\\KeywardenToken$\\enroll.token';
const NETLOGON = '\\\\contoso.local\\NETLOGON\\Keywarden';

/** `Get-FileHash` line that prints True when the downloaded file is the one the server lists. */
export const hashCheck = (name: string, sha256: string) => `(Get-FileHash -Algorithm SHA256 .\\${name}).Hash -eq '${sha256.toUpperCase()}'`;

/** Downloads every file of the kit from this server and stops at the first whose SHA-256 differs (agent/README.md). */
export const downloadAll = (serverUrl: string) =>
  [
    `$server = '${serverUrl}'`,
    '$list = Invoke-RestMethod -Uri "$server/api/v1/agent/files" -UseBasicParsing',
    'foreach ($f in $list.files) {',
    '    Invoke-WebRequest -Uri ($server + $f.url) -OutFile $f.name -UseBasicParsing',
    '    if ((Get-FileHash -LiteralPath $f.name -Algorithm SHA256).Hash -ne $f.sha256) { throw "$($f.name): SHA-256 does not match" }',
    '}',
    '"agent $($list.version) downloaded and checked"',
  ].join('\n');

/** The first lines of a copy of Syncro-Keywarden.ps1 for tools that cannot define its variables. */
const wrapperLines = (serverUrl: string, token: string) =>
  `if (-not $KeywardenServerUrl) { $KeywardenServerUrl = '${serverUrl}' }\nif (-not $KeywardenEnrollmentToken) { $KeywardenEnrollmentToken = ${token} }`;

/**
 * Every deployment route of agent/README.md, ready to paste. serverUrl is where this console runs
 * (the agent talks to the same origin). None of them carries the enrollment token: the person
 * puts it into the token file, the tool's variable or secure field, or the wrapper's one line.
 */
export function deploymentRoutes(serverUrl: string): DeploymentRoute[] {
  const insecure = serverUrl.startsWith('http://') ? ' -AllowInsecureHttp' : '';
  const url = `-ServerUrl ${serverUrl}${insecure}`;
  return [
    {
      id: 'intune-win32',
      label: 'Intune Win32 app',
      intro:
        'Recommended for Intune: installs the agent into C:\\Program Files\\Keywarden with an hourly SYSTEM task (also on battery and at start-up) and enrolls once. The token travels in enroll.token inside the encrypted package; the agent deletes it after enrolling.',
      steps: [
        {
          title: 'Package',
          text: 'One folder per client with Install-KeywardenAgent.ps1, Keywarden-Agent.ps1 (downloads above, hashes checked) and enroll.token ("Download enroll.token"), wrapped with the Win32 Content Prep Tool:',
          code: 'IntuneWinAppUtil.exe -c .\\keywarden -s Install-KeywardenAgent.ps1 -o .\\out',
        },
        {
          title: 'Install command',
          text: 'Sysnative starts the 64-bit PowerShell from the 32-bit Intune Management Extension. Add -CertificatePin or -Proxy if needed; never the token.',
          code: `${POWERSHELL_SYSNATIVE} ${PS_ARGS} Install-KeywardenAgent.ps1 ${url}`,
        },
        { title: 'Uninstall command', code: `${POWERSHELL_SYSNATIVE} ${PS_ARGS} Install-KeywardenAgent.ps1 -Uninstall` },
        {
          title: 'App settings',
          text: 'Install behavior: System. Return codes: the defaults (the installer returns 0 once the files and the task are in place, even if the server was unreachable). Detection rule: File, path C:\\Program Files\\Keywarden, file Keywarden-Agent.ps1, "File or folder exists", "Associated with a 32-bit app on 64-bit clients: No". Intune admins can download the package: use a token with a use limit and revoke it after the rollout.',
        },
      ],
    },
    {
      id: 'intune-remediations',
      label: 'Intune Remediations',
      intro:
        "The hourly run on devices the Win32 app enrolled (Windows Enterprise or Education licensing). No token: the devices are enrolled already, and a script's text can end up in the event log.",
      steps: [
        {
          title: 'Detection script',
          text: 'Detect-KeywardenCheckin.ps1, unchanged. It exits 1 when the last check-in is more than 55 minutes old and prints how the last run ended: Intune shows detection output, not remediation output.',
        },
        {
          title: 'Remediation script: Keywarden-Agent.ps1 with its embedded configuration',
          text: 'Fill in the block at the top of a copy of the agent (pin and proxy only if you need them):',
          code: `$EmbeddedServerUrl       = '${serverUrl}'\n$EmbeddedCertificatePin  = ''\n$EmbeddedProxy           = ''`,
        },
        {
          title: 'Settings',
          text: "Run this script using the logged-on credentials: No. Enforce script signature check: No (Yes with signed scripts). Run script in 64-bit PowerShell: Yes. Schedule: Hourly, every 1 hour. Running both this and the Win32 app's task is harmless but redundant.",
        },
      ],
    },
    {
      id: 'gpo',
      label: 'Group Policy',
      intro: 'The token stays out of SYSVOL and off command lines: it sits in enroll.token on a share only computers can read, and the task names the file.',
      steps: [
        {
          title: 'The token share',
          text: `A share such as ${TOKEN_SHARE.replace(/\\enroll\.token$/, '')} with share and NTFS permissions Domain Computers: Read and your admins, nothing for users. Put enroll.token ("Download enroll.token") in it; delete it and revoke the token when the rollout is done.`,
        },
        {
          title: 'Immediate Task (recommended): runs the installer once',
          text: `Put Install-KeywardenAgent.ps1 and Keywarden-Agent.ps1 in ${NETLOGON}. Computer Configuration > Preferences > Control Panel Settings > Scheduled Tasks > New > Immediate Task (At least Windows 7): user NT AUTHORITY\\System, run with highest privileges; Conditions: untick "Start the task only if the computer is on AC power"; Common: "Apply once and do not reapply". Program ${POWERSHELL_64}, arguments:`,
          code: `${PS_ARGS} "${NETLOGON}\\Install-KeywardenAgent.ps1" ${url} -EnrollmentTokenFile "${TOKEN_SHARE}"`,
        },
        {
          title: 'Or a scheduled task that runs the agent hourly',
          text: `Copy the agent to ${INSTALLED} with a GPP file item; Scheduled Task (At least Windows 7) as SYSTEM, daily repeating every hour plus at startup, AC-power condition unticked. Program ${POWERSHELL_64} (never Sysnative), arguments (remove -EnrollmentTokenFile after the rollout):`,
          code: `-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "${INSTALLED}" ${url} -EnrollmentTokenFile "${TOKEN_SHARE}"`,
        },
      ],
    },
    {
      id: 'ninjaone',
      label: 'NinjaOne',
      intro:
        "NinjaOne hands script variables to the script as environment variables. Never put the token in the script's Parameters field: parameters are a command line.",
      steps: [
        {
          title: 'Script',
          text: 'Administration > Library > Automation > Add > New Script: PowerShell, Windows, architecture All, run as System. Paste Keywarden-Agent.ps1 unchanged and add two script variables whose calculated names are exactly:',
          code: `KEYWARDEN_SERVER_URL = ${serverUrl}\nKEYWARDEN_ENROLLMENT_TOKEN = (that organization's token)`,
        },
        {
          title: 'Or: the token in a secure organization custom field',
          text: 'Paste Syncro-Keywarden.ps1 instead (it keeps the agent current from this server and runs it), with the two matching lines at its top replaced by these; the field is of type Secure, readable by scripts:',
          code: wrapperLines(serverUrl, 'Ninja-Property-Get keywardenEnrollmentToken'),
        },
        {
          title: 'Schedule and alerts',
          text: 'Policy > Scheduled automations: every hour. For alerts, a policy condition that runs Detect-KeywardenCheckin.ps1 (-MaxAgeMinutes 1440) and triggers on a non-zero result.',
        },
      ],
    },
    {
      id: 'datto',
      label: 'Datto RMM',
      intro:
        'Datto hands account, site and component variables to the script as environment variables of the same name, which the agent reads directly: the token is never in a command line or in script text.',
      steps: [
        { title: 'Account variable', code: `KEYWARDEN_SERVER_URL = ${serverUrl}` },
        {
          title: 'Site variable, per client',
          text: 'On each site, masked if your Datto version offers it:',
          code: "KEYWARDEN_ENROLLMENT_TOKEN = (that client's token)",
        },
        {
          title: 'Component and job',
          text: 'Component: category Scripts, type PowerShell, Keywarden-Agent.ps1 pasted unchanged; a recurring job, hourly. Or, once: a component that runs Install-KeywardenAgent.ps1 with Keywarden-Agent.ps1 attached (it reads the same variables) for the local hourly task. Monitor: Detect-KeywardenCheckin.ps1 with component variables KEYWARDEN_OUTPUT = datto and KEYWARDEN_MAX_AGE_MINUTES = 1440.',
        },
      ],
    },
    {
      id: 'syncro',
      label: 'Syncro',
      intro:
        'Syncro defines script variables in front of the script text. Syncro-Keywarden.ps1, unchanged, writes the token to the one-shot file, keeps the agent current from this server (SHA-256 checked) and runs it as its own 64-bit process.',
      steps: [
        { title: 'Customer custom field', text: 'Keywarden Enrollment Token, filled in per customer.' },
        {
          title: 'Script',
          text: 'Scripts > New Script: PowerShell, run as System, Windows, about 15 minutes maximum run time. Paste Syncro-Keywarden.ps1 unchanged. Script variables: KeywardenServerUrl (runtime, default below) and KeywardenEnrollmentToken (platform, bound to the custom field).',
          code: `KeywardenServerUrl = ${serverUrl}`,
        },
        {
          title: 'Schedule',
          text: 'In a policy, hourly if available. Syncro puts the token into the script text, so with full Script Block Logging it reaches the event log (4104): once the customer is enrolled, clear the field and revoke the token.',
        },
      ],
    },
    {
      id: 'n-able',
      label: 'N-able',
      intro:
        'N-able passes script input as command-line parameters, which is no place for a token: use a copy of Syncro-Keywarden.ps1 per client with the token in its first lines (N-sight), or Automation Manager input parameters (N-central).',
      steps: [
        {
          title: 'First lines of the wrapper copy (N-sight RMM)',
          text: 'Replace the two matching lines at the top of Syncro-Keywarden.ps1 and paste the token between the quotes:',
          code: wrapperLines(serverUrl, "''"),
        },
        {
          title: 'Run it',
          text: 'Settings > Script Manager: PowerShell, timeout about 15 minutes; an Automated Task (SYSTEM) on that client\'s devices, hourly. N-central: an Automation Manager "Run PowerShell Script" object with the wrapper and input parameters KeywardenServerUrl and KeywardenEnrollmentToken. After the rollout, empty the token again and revoke it.',
        },
        { title: 'Monitoring (Script Check command line, no secret in it)', code: '-MaxAgeMinutes 1440' },
      ],
    },
    {
      id: 'automate',
      label: 'ConnectWise Automate',
      intro:
        "The token sits in a client-level Extra Data Field; Automate fills it into the wrapper's text, never into a Shell command line (Automate and Windows log those).",
      steps: [
        {
          title: 'Script steps',
          text: 'Extra Data Field Get (client, "Keywarden Token") into @KeywardenToken@; then Execute Script, type PowerShell, with the text of Syncro-Keywarden.ps1 whose first lines read:',
          code: wrapperLines(serverUrl, "'@KeywardenToken@'"),
        },
        {
          title: 'Result and schedule',
          text: 'Store the result in @KeywardenResult@; IF it does not contain "Keywarden exit=0", create a ticket or alert. Schedule the script hourly on a group.',
        },
      ],
    },
    {
      id: 'manual',
      label: 'By hand',
      intro:
        'One device, from an elevated PowerShell in the folder with Install-KeywardenAgent.ps1 and Keywarden-Agent.ps1. The token is typed into a hidden prompt, not a command line.',
      steps: [
        {
          title: 'Install, enroll and create the hourly task',
          code: [
            "$secure = Read-Host 'Enrollment token' -AsSecureString",
            "$env:KEYWARDEN_ENROLLMENT_TOKEN = [Net.NetworkCredential]::new('', $secure).Password",
            `powershell.exe ${PS_ARGS} .\\Install-KeywardenAgent.ps1 ${url}`,
            'Remove-Item Env:\\KEYWARDEN_ENROLLMENT_TOKEN',
          ].join('\n'),
        },
        {
          title: 'Check',
          text: 'The installer ends with "Keywarden install exit=0", after the agent\'s own "Keywarden exit=<code>" line. Or save the token as enroll.token next to the installer instead of the prompt, and delete the file afterwards. The log is %ProgramData%\\Keywarden\\agent.log.',
        },
      ],
    },
  ];
}
