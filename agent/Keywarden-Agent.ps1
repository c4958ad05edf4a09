<#
.SYNOPSIS
    Keywarden agent: reports the BitLocker state of this Windows device to a Keywarden server and
    escrows its recovery passwords when the server asks for them.

.DESCRIPTION
    One run of the agent:

      1. enrolls the device with an enrollment token when it has no credential yet
         (POST /api/v1/agent/enroll), and keeps the returned device credential and fingerprint salt
         in <StatePath>\agent.json (readable by SYSTEM and Administrators only);
      2. gathers device facts (Win32_ComputerSystem, Win32_BIOS, Win32_ComputerSystemProduct,
         Win32_OperatingSystem, dsregcmd /status, Get-Tpm, Win32_Tpm, Confirm-SecureBootUEFI), the
         fixed and operating-system volumes from Get-BitLockerVolume (or the text of manage-bde when
         the BitLocker module is missing) and the BitLocker events since the last run;
      3. checks in (POST /api/v1/agent/checkin). A routine check-in carries no recovery password:
         each recovery-password protector is identified by its ID and an HMAC-SHA256 fingerprint
         keyed with a per-device salt;
      4. uploads the passwords the server asks for (POST /api/v1/agent/keys), runs the jobs it hands
         out (rotate, backup, backup-to-ad, backup-to-entra) and, when a job ran, checks in again to
         report the results.

    The server makes every decision; the agent only gathers, serializes, posts and runs jobs.
    The protocol is described in docs/agent-protocol.md of the Keywarden repository.

    Run it as SYSTEM (RMM, Intune, scheduled task) once an hour. It needs Windows PowerShell 5.1,
    which every supported Windows version ships. A 32-bit PowerShell host (some RMM agents) is
    detected and the script restarts itself in 64-bit Windows PowerShell.

    Configuration comes, in this order, from the parameters, the environment variables
    KEYWARDEN_SERVER_URL, KEYWARDEN_ENROLLMENT_TOKEN, KEYWARDEN_CERT_PIN and KEYWARDEN_PROXY, and the
    "Embedded configuration" block below the parameters (for tools that cannot pass either).
    Once enrolled, the agent remembers the server URL, so later runs need no parameters at all.

.PARAMETER ServerUrl
    Base URL of the Keywarden server, e.g. https://keywarden.example.com (a path prefix such as
    https://example.com/keywarden is kept). Must be https; http is accepted only for
    http://localhost together with -AllowInsecureHttp. Environment: KEYWARDEN_SERVER_URL.

.PARAMETER EnrollmentToken
    Enrollment token (kwe_...) created for the client this device belongs to. Needed only when the
    device is not enrolled yet, or with -ForceReenroll. Environment: KEYWARDEN_ENROLLMENT_TOKEN.

.PARAMETER CertificatePin
    Optional SHA-256 of the server's TLS certificate (64 hex digits, colons optional; several pins
    may be separated by commas, e.g. the current and the next certificate). When set, only a server
    presenting exactly that certificate is accepted, even a self-signed one, and ordinary chain
    validation no longer applies. Environment: KEYWARDEN_CERT_PIN.

.PARAMETER Proxy
    Optional HTTP proxy, e.g. http://proxy.contoso.local:8080, used with the computer account's
    credentials. Environment: KEYWARDEN_PROXY.

.PARAMETER ForceReenroll
    Enroll again even though a credential exists (after the device was revoked, or to move it to
    another client). Needs an enrollment token. The credential it holds goes along as proof, so the
    server gives the same machine its existing device record back with a new credential; without
    one, a machine the server already knows waits for an administrator to approve the link.

.PARAMETER StatePath
    Folder for agent.json (credential, salt, sequence number) and agent.log.
    Default: %ProgramData%\Keywarden.

.PARAMETER AllowInsecureHttp
    Accept an http:// server URL, and only one pointing at this machine (localhost, 127.0.0.1, ::1).
    For testing against a local server; never use it in production.

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\Keywarden-Agent.ps1 -ServerUrl https://keywarden.example.com -EnrollmentToken kwe_xxxxxxxx

    First run on a device: enrolls and checks in.

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File "C:\Program Files\Keywarden\Keywarden-Agent.ps1"

    Hourly scheduled task as SYSTEM after enrollment: the server URL is remembered in agent.json.

.EXAMPLE
    $env:KEYWARDEN_SERVER_URL = 'https://keywarden.example.com'; $env:KEYWARDEN_ENROLLMENT_TOKEN = 'kwe_xxxxxxxx'; & .\Keywarden-Agent.ps1

    RMM style: configuration in environment variables (Datto RMM site variables, NinjaOne script
    variables and similar tools set these for the script).

.EXAMPLE
    Intune platform script or Remediation: fill in the "Embedded configuration" block of a copy of
    this script, upload it, and set "Run this script using the logged on credentials" = No and
    "Run script in 64 bit PowerShell" = Yes.

.EXAMPLE
    .\Keywarden-Agent.ps1 -ForceReenroll -EnrollmentToken kwe_xxxxxxxx -CertificatePin 3F:A1:...:9C

    Re-enroll a device whose credential was revoked, pinning the server certificate.

.NOTES
    Exit codes (also printed as the last output line, "Keywarden exit=<code>: <message>"):
      0  ok
      1  the server could not be reached or refused a request (network, DNS, proxy, TLS or
         certificate pin, HTTP 400/409/5xx), or an unexpected error
      2  enrollment failed, the agent is not configured (no server URL, no token), or the server
         rejected the device credential (HTTP 401: revoked; re-enroll with -ForceReenroll)
      3  neither the BitLocker PowerShell module nor manage-bde.exe could report the volumes, or
         the script does not run as SYSTEM or an elevated administrator
      4  at least one job (rotate, backup, backup-to-ad, backup-to-entra) failed

    Certificate pinning sets [System.Net.ServicePointManager]::ServerCertificateValidationCallback,
    which applies to the whole PowerShell process: run the agent in its own powershell.exe (as
    every example here does), not dot-sourced into a session that talks to other servers.
    Pinning needs Windows PowerShell 5.1 (powershell.exe) and Add-Type (not available in
    Constrained Language Mode).

    The agent never writes a recovery password, the device credential, the enrollment token or
    the fingerprint salt to its output or its log.

    Agent version 1.0.0, protocol v1.
#>
[CmdletBinding()]
param(
    [string]$ServerUrl,
    [string]$EnrollmentToken,
    [string]$CertificatePin,
    [string]$Proxy,
    [switch]$ForceReenroll,
    [string]$StatePath = "$env:ProgramData\Keywarden",
    [switch]$AllowInsecureHttp
)

# ==================================================================================================
# Embedded configuration
# Only for deployment tools that can pass neither parameters nor environment variables (Intune
# platform scripts and Remediations, scripts pasted into an RMM). Parameters and environment
# variables take precedence over these values. Leave them empty otherwise.
# ==================================================================================================
$EmbeddedServerUrl       = ''
$EmbeddedEnrollmentToken = ''
$EmbeddedCertificatePin  = ''
$EmbeddedProxy           = ''
# ==================================================================================================

# --------------------------------------------------------------------------------------------------
# A 32-bit host on 64-bit Windows (several RMM agents) sees neither manage-bde.exe nor the 64-bit
# WMI providers reliably: run this same file again in 64-bit Windows PowerShell and pass its exit
# code through. Secrets travel in environment variables (inherited by the child), not on its
# command line.
# --------------------------------------------------------------------------------------------------
if ([Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess -and $PSCommandPath) {
    $powershell64 = Join-Path $env:SystemRoot 'SysNative\WindowsPowerShell\v1.0\powershell.exe'
    if (Test-Path -LiteralPath $powershell64) {
        if ($ServerUrl) { $env:KEYWARDEN_SERVER_URL = $ServerUrl }
        if ($EnrollmentToken) { $env:KEYWARDEN_ENROLLMENT_TOKEN = $EnrollmentToken }
        if ($CertificatePin) { $env:KEYWARDEN_CERT_PIN = $CertificatePin }
        if ($Proxy) { $env:KEYWARDEN_PROXY = $Proxy }
        $childArguments = @('-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', $PSCommandPath, '-StatePath', $StatePath)
        if ($ForceReenroll) { $childArguments += '-ForceReenroll' }
        if ($AllowInsecureHttp) { $childArguments += '-AllowInsecureHttp' }
        if ($VerbosePreference -eq 'Continue') { $childArguments += '-Verbose' }
        & $powershell64 @childArguments
        exit $LASTEXITCODE
    }
}

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# Windows PowerShell 5.1 adds an extended "Count" property to arrays which makes ConvertTo-Json
# write some arrays as {"value":[...],"Count":n}. Removing it for this session is the documented
# workaround; it does not exist (and is not needed) in PowerShell 7.
Remove-TypeData -TypeName System.Array -ErrorAction SilentlyContinue

$AgentVersion = '1.0.0'
# A recovery password as Windows prints it: 8 groups of 6 digits joined by dashes.
$PasswordPattern = '\d{6}(-\d{6}){7}'
$GuidPattern = '[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}'

$script:StatePath = [Environment]::ExpandEnvironmentVariables($StatePath)
$script:StateFile = Join-Path $script:StatePath 'agent.json'
$script:LogFile = $null
$script:Utf8NoBom = [System.Text.UTF8Encoding]::new($false)
$script:Secrets = [System.Collections.Generic.List[string]]::new()
$script:SummaryLines = [System.Collections.Generic.List[string]]::new()
$script:ExitCode = 0
$script:FinalMessage = ''
$script:State = $null
$script:BaseUrl = $null
$script:ProxyUrl = $null
$script:PinsEnabled = $false
$script:Mutex = $null
$script:MutexHeld = $false
$script:StateFolderReset = $false
$script:HasBitLockerModule = $false
$script:HasManageBde = $false
$script:ManageBdePath = Join-Path $env:SystemRoot 'System32\manage-bde.exe'

# Certificate pinning helper. A scriptblock callback cannot be used: .NET may call the validation
# callback on a thread without a PowerShell runspace, so the check is compiled C#.
$script:PinHelperSource = @'
using System;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

public static class KeywardenCertificatePin
{
    private static string[] pins = new string[0];

    // SHA-256 of the last certificate that matched no pin (for the log); null when none.
    public static string LastRejected;

    public static void Enable(string pinList)
    {
        pins = pinList.Split(new char[] { ',' }, StringSplitOptions.RemoveEmptyEntries);
        ServicePointManager.ServerCertificateValidationCallback = new RemoteCertificateValidationCallback(Validate);
    }

    public static string Sha256Hex(byte[] data)
    {
        using (SHA256 sha = SHA256.Create())
        {
            return BitConverter.ToString(sha.ComputeHash(data)).Replace("-", "");
        }
    }

    private static bool Validate(object sender, X509Certificate certificate, X509Chain chain, SslPolicyErrors errors)
    {
        if (certificate == null) { return false; }
        string actual = Sha256Hex(certificate.GetRawCertData());
        foreach (string pin in pins)
        {
            if (string.Equals(pin, actual, StringComparison.OrdinalIgnoreCase)) { return true; }
        }
        LastRejected = actual;
        return false;
    }
}
'@

# ==================================================================================================
# Logging and secrets
# ==================================================================================================

function Add-Secret {
    # Remember a secret value so that Protect-Text removes it from anything logged or printed.
    param($Value)
    $text = [string]$Value
    if ($text.Length -ge 8 -and -not $script:Secrets.Contains($text)) {
        [void]$script:Secrets.Add($text)
    }
}

function Protect-Text {
    # Second line of defence: no recovery password, kwe_/kwd_ token or known secret leaves the
    # agent in a log line or in the output, whatever the message was built from.
    param($Text)
    if ($null -eq $Text) { return '' }
    $result = [string]$Text
    foreach ($secret in $script:Secrets) {
        $result = $result.Replace($secret, '[redacted]')
    }
    $result = [regex]::Replace($result, '\d{6}([ -]?\d{6}){7}', '[redacted-password]')
    $result = [regex]::Replace($result, 'kw[de]_[A-Za-z0-9_-]+', 'kw*_[redacted]')
    return $result
}

function Write-AgentLog {
    param([string]$Message, [string]$Level = 'INFO')
    $line = '{0} [{1}] {2}' -f (Get-Date).ToUniversalTime().ToString('o'), $Level, (Protect-Text $Message)
    Write-Verbose $line
    if ($script:LogFile) {
        try {
            [System.IO.File]::AppendAllText($script:LogFile, $line + "`r`n", $script:Utf8NoBom)
        } catch {
            Write-Verbose ('Cannot write the log file: ' + $_.Exception.Message)
        }
    }
}

function Add-Summary {
    # A line for the RMM / Intune output (printed at the end of the run) and for the log.
    param([string]$Line)
    $safe = Protect-Text $Line
    [void]$script:SummaryLines.Add($safe)
    Write-AgentLog $safe 'INFO'
}

function Initialize-AgentLog {
    $path = Join-Path $script:StatePath 'agent.log'
    try {
        if (Test-Path -LiteralPath $path -PathType Leaf) {
            if ((Get-Item -LiteralPath $path).Length -gt 1048576) {
                $previous = $path + '.1'
                if (Test-Path -LiteralPath $previous -PathType Leaf) {
                    Remove-Item -LiteralPath $previous -Force
                }
                Move-Item -LiteralPath $path -Destination $previous
            }
        }
    } catch {
        Write-Verbose ('Cannot rotate the log file: ' + $_.Exception.Message)
    }
    $script:LogFile = $path
}

# ==================================================================================================
# Errors and exit codes
# ==================================================================================================

function Stop-AgentRun {
    # Ends the run with one of the documented exit codes (caught at the bottom of the script).
    param([int]$ExitCode, [string]$Message)
    $exception = [System.Exception]::new($Message)
    $exception.Data['KeywardenExitCode'] = $ExitCode
    throw $exception
}

function Get-AgentExitCode {
    param($ErrorRecord)
    $exception = $ErrorRecord.Exception
    while ($null -ne $exception) {
        if ($null -ne $exception.Data -and $exception.Data.Contains('KeywardenExitCode')) {
            return [int]$exception.Data['KeywardenExitCode']
        }
        $exception = $exception.InnerException
    }
    return $null
}

function Get-ExceptionText {
    # The messages of an exception and its inner exceptions (TLS and proxy errors hide the cause
    # in an inner exception).
    param($Exception)
    $parts = @()
    $current = $Exception
    $depth = 0
    while ($null -ne $current -and $depth -lt 4) {
        $message = [string]$current.Message
        if ($message -and ($parts -notcontains $message)) { $parts += $message }
        $current = $current.InnerException
        $depth++
    }
    return ($parts -join ' | ')
}

function Test-ExceptionType {
    param($Exception, [string]$TypeName)
    $current = $Exception
    while ($null -ne $current) {
        if ($current.GetType().FullName -eq $TypeName) { return $true }
        $current = $current.InnerException
    }
    return $false
}

# ==================================================================================================
# Small helpers
# ==================================================================================================

function ConvertTo-CleanString {
    # Trimmed text, or $null for null/empty (parameters are left untyped on purpose: a [string]
    # parameter would turn $null into '').
    param($Value)
    if ($null -eq $Value) { return $null }
    $text = ([string]$Value).Trim()
    if ($text.Length -eq 0) { return $null }
    return $text
}

function ConvertTo-NullableBool {
    param($Value)
    if ($null -eq $Value) { return $null }
    if ($Value -is [bool]) { return $Value }
    $text = ([string]$Value).Trim()
    if ($text -eq 'True' -or $text -eq '1') { return $true }
    if ($text -eq 'False' -or $text -eq '0') { return $false }
    return $null
}

function ConvertTo-EnumValue {
    # BitLocker enums are sent by name ("FullyEncrypted"), exactly as PowerShell 7's
    # ConvertTo-Json -EnumsAsStrings writes them; a value without a name is sent as its number.
    param($Value)
    if ($null -eq $Value) { return $null }
    $text = $Value.ToString()
    $number = 0
    if ([int]::TryParse($text, [ref]$number)) { return $number }
    return $text
}

function Get-NormalizedId {
    # Protector IDs compare without braces and case: {802C7373-...} equals 802c7373-...
    param($Id)
    if ($null -eq $Id) { return '' }
    return (([string]$Id) -replace '[{}\s]', '').ToUpperInvariant()
}

function Get-GuidOrNull {
    param($Value)
    if ($null -eq $Value) { return $null }
    $match = [regex]::Match([string]$Value, $GuidPattern)
    if ($match.Success) { return $match.Value.ToLowerInvariant() }
    return $null
}

function Format-UtcTime {
    param([datetime]$Time)
    return $Time.ToUniversalTime().ToString('o', [System.Globalization.CultureInfo]::InvariantCulture)
}

function ConvertTo-UtcDate {
    # Reads a time written by Format-UtcTime (PowerShell 7's ConvertFrom-Json returns a DateTime,
    # Windows PowerShell 5.1 a string).
    param($Value)
    if ($null -eq $Value) { return $null }
    if ($Value -is [datetime]) { return $Value.ToUniversalTime() }
    $parsed = [datetime]::MinValue
    $styles = [System.Globalization.DateTimeStyles]::RoundtripKind
    if ([datetime]::TryParse([string]$Value, [System.Globalization.CultureInfo]::InvariantCulture, $styles, [ref]$parsed)) {
        return $parsed.ToUniversalTime()
    }
    return $null
}

function Get-SentAt {
    return (Get-Date).ToUniversalTime().ToString('o')
}

function Select-FirstValue {
    param([object[]]$Values)
    foreach ($value in $Values) {
        if (-not [string]::IsNullOrWhiteSpace([string]$value)) { return ([string]$value).Trim() }
    }
    return $null
}

function Get-ResponseItems {
    # The items of a JSON array from Invoke-RestMethod, without $null (so that @() of a missing
    # property is empty rather than one $null).
    param($Value)
    if ($null -eq $Value) { return }
    foreach ($item in $Value) {
        if ($null -ne $item) { $item }
    }
}

function Invoke-NativeCommand {
    # Runs an .exe and returns its exit code and its output (stdout and stderr) as one text.
    # Error preference is relaxed here: with 'Stop', Windows PowerShell turns stderr lines into
    # terminating errors.
    param([string]$FilePath, [string[]]$Arguments)
    $ErrorActionPreference = 'Continue'
    try {
        $lines = & $FilePath @Arguments 2>&1 | ForEach-Object { [string]$_ }
        $code = $LASTEXITCODE
    } catch {
        return @{ exitCode = -1; text = [string]$_.Exception.Message }
    }
    return @{ exitCode = $code; text = (@($lines) -join "`r`n") }
}

function Get-PasswordFingerprint {
    # hex(HMAC-SHA256(key = salt bytes, message = UTF-8 of the normalized password)), lower case.
    # The normalized password is the 48 digits as 8 groups of 6 joined by '-'.
    param([string]$Password, [byte[]]$Key)
    $digits = $Password -replace '[^0-9]', ''
    if ($digits.Length -ne 48) { return $null }
    $groups = @()
    for ($i = 0; $i -lt 8; $i++) { $groups += $digits.Substring($i * 6, 6) }
    $normalized = $groups -join '-'
    $hmac = [System.Security.Cryptography.HMACSHA256]::new($Key)
    try {
        $hash = $hmac.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($normalized))
    } finally {
        $hmac.Dispose()
    }
    return ([System.BitConverter]::ToString($hash) -replace '-', '').ToLowerInvariant()
}

# ==================================================================================================
# Process, state directory and state file
# ==================================================================================================

function Test-IsElevated {
    $identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
    if ($identity.IsSystem) { return $true }
    $principal = [System.Security.Principal.WindowsPrincipal]::new($identity)
    return $principal.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Enter-AgentMutex {
    # One run at a time per device (an RMM run and the scheduled task must not interleave their
    # sequence numbers or run the same job twice). Waits up to 2 minutes.
    try {
        $script:Mutex = [System.Threading.Mutex]::new($false, 'Global\KeywardenAgent')
    } catch {
        Write-Verbose ('Cannot create the agent mutex, continuing without it: ' + $_.Exception.Message)
        return $true
    }
    try {
        $script:MutexHeld = $script:Mutex.WaitOne([TimeSpan]::FromSeconds(120))
    } catch {
        # A run that was killed leaves an abandoned mutex: it now belongs to this run.
        if (Test-ExceptionType $_.Exception 'System.Threading.AbandonedMutexException') {
            $script:MutexHeld = $true
        } else {
            throw
        }
    }
    return $script:MutexHeld
}

function Exit-AgentMutex {
    if ($null -eq $script:Mutex) { return }
    if ($script:MutexHeld) {
        try { $script:Mutex.ReleaseMutex() } catch { Write-Verbose 'Mutex already released.' }
        $script:MutexHeld = $false
    }
    $script:Mutex.Dispose()
    $script:Mutex = $null
}

function Get-TrustedOwnerSids {
    # Owners whose files the agent trusts: SYSTEM, BUILTIN\Administrators and the account running
    # the agent (an administrator testing interactively may own what it created).
    return @('S-1-5-18', 'S-1-5-32-544', [System.Security.Principal.WindowsIdentity]::GetCurrent().User.Value)
}

function Get-OwnerSid {
    param([string]$Path)
    return (Get-Acl -LiteralPath $Path).GetOwner([System.Security.Principal.SecurityIdentifier]).Value
}

function Set-ProtectedAcl {
    # Explicit, non-inherited ACL: full control for SYSTEM (S-1-5-18) and BUILTIN\Administrators
    # (S-1-5-32-544), nobody else. Only the DACL is written; the owner is left as it is.
    param([string]$Path, [switch]$Directory)
    if ($Directory) {
        $security = [System.Security.AccessControl.DirectorySecurity]::new()
        $inheritance = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
    } else {
        $security = [System.Security.AccessControl.FileSecurity]::new()
        $inheritance = [System.Security.AccessControl.InheritanceFlags]::None
    }
    $security.SetAccessRuleProtection($true, $false)
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
        $rule = [System.Security.AccessControl.FileSystemAccessRule]::new(
            [System.Security.Principal.SecurityIdentifier]::new($sid),
            [System.Security.AccessControl.FileSystemRights]::FullControl,
            $inheritance,
            [System.Security.AccessControl.PropagationFlags]::None,
            [System.Security.AccessControl.AccessControlType]::Allow)
        $security.AddAccessRule($rule)
    }
    if ($PSVersionTable.PSEdition -eq 'Core') {
        Set-Acl -LiteralPath $Path -AclObject $security
    } elseif ($Directory) {
        [System.IO.Directory]::SetAccessControl($Path, $security)
    } else {
        [System.IO.File]::SetAccessControl($Path, $security)
    }
}

function Initialize-StateDirectory {
    # Creates the state folder and locks it down (SYSTEM and Administrators only). Standard users
    # may create folders under %ProgramData%, so a folder that is a junction, or that someone else
    # created first, is not trusted as it is: the agent refuses a junction, takes ownership of a
    # foreign folder for Administrators and empties it before use.
    param([string]$Path)
    if (-not (Test-Path -LiteralPath $Path -PathType Container)) {
        $null = New-Item -ItemType Directory -Path $Path -Force
    }
    $item = Get-Item -LiteralPath $Path -Force
    if ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) {
        throw ('{0} is a junction or symbolic link; remove it so that the agent can create a real folder' -f $Path)
    }
    $foreign = (Get-TrustedOwnerSids) -notcontains (Get-OwnerSid -Path $Path)
    if ($foreign) {
        $ownerOnly = [System.Security.AccessControl.DirectorySecurity]::new()
        $ownerOnly.SetOwner([System.Security.Principal.SecurityIdentifier]::new('S-1-5-32-544'))
        if ($PSVersionTable.PSEdition -eq 'Core') {
            Set-Acl -LiteralPath $Path -AclObject $ownerOnly
        } else {
            [System.IO.Directory]::SetAccessControl($Path, $ownerOnly)
        }
    }
    Set-ProtectedAcl -Path $Path -Directory
    if ($foreign) {
        # Delete the names the agent uses, each without recursion and without following links
        # (Remove-Item -Recurse in Windows PowerShell 5.1 can follow a planted junction).
        foreach ($name in @('agent.json', 'agent.json.tmp', 'agent.log', 'agent.log.1')) {
            $child = Join-Path $Path $name
            if ([System.IO.Directory]::Exists($child)) {
                [System.IO.Directory]::Delete($child, $false)
            } elseif ([System.IO.File]::Exists($child)) {
                [System.IO.File]::Delete($child)
            }
        }
        $script:StateFolderReset = $true
    }
}

function Read-AgentState {
    # The saved state, or $null when there is none or it is unusable (the agent then enrolls).
    if (-not (Test-Path -LiteralPath $script:StateFile -PathType Leaf)) { return $null }
    $owner = Get-OwnerSid -Path $script:StateFile
    if ((Get-TrustedOwnerSids) -notcontains $owner) {
        Write-AgentLog ('The state file is owned by {0}, not by SYSTEM or Administrators: deleted, the device will enroll again.' -f $owner) 'WARN'
        Remove-Item -LiteralPath $script:StateFile -Force
        return $null
    }
    try {
        $saved = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($script:StateFile))
    } catch {
        Write-AgentLog ('The state file {0} cannot be read ({1}); the device will enroll again.' -f $script:StateFile, $_.Exception.Message) 'WARN'
        return $null
    }
    $state = [ordered]@{
        deviceId           = ConvertTo-CleanString $saved.deviceId
        credential         = ConvertTo-CleanString $saved.credential
        fingerprintSalt    = ConvertTo-CleanString $saved.fingerprintSalt
        lastSeq            = [long]0
        lastEventTime      = $null
        serverUrl          = ConvertTo-CleanString $saved.serverUrl
        enrolledAt         = $null
        lastCheckinAt      = $null
        nextCheckinSeconds = $null
    }
    $seq = [long]0
    if ([long]::TryParse([string]$saved.lastSeq, [ref]$seq)) { $state.lastSeq = $seq }
    foreach ($name in @('lastEventTime', 'enrolledAt', 'lastCheckinAt')) {
        $time = ConvertTo-UtcDate $saved.$name
        if ($null -ne $time) { $state[$name] = Format-UtcTime $time }
    }
    $interval = 0
    if ([int]::TryParse([string]$saved.nextCheckinSeconds, [ref]$interval) -and $interval -gt 0) {
        $state.nextCheckinSeconds = $interval
    }
    Add-Secret $state.credential
    Add-Secret $state.fingerprintSalt

    if (-not $state.credential -or -not $state.credential.StartsWith('kwd_') -or -not $state.fingerprintSalt) {
        Write-AgentLog 'The state file has no usable credential; the device will enroll again.' 'WARN'
        return $null
    }
    try {
        $null = [Convert]::FromBase64String($state.fingerprintSalt)
    } catch {
        Write-AgentLog 'The fingerprint salt in the state file is not base64; the device will enroll again.' 'WARN'
        return $null
    }
    return $state
}

function Save-AgentState {
    # Written to a temporary file in the same (protected) folder, then swapped in, so that a
    # killed run never leaves a half-written agent.json.
    $json = ConvertTo-Json -InputObject $script:State -Depth 4
    $temporary = $script:StateFile + '.tmp'
    if (Test-Path -LiteralPath $temporary) { Remove-Item -LiteralPath $temporary -Force }
    [System.IO.File]::WriteAllText($temporary, $json, $script:Utf8NoBom)
    Set-ProtectedAcl -Path $temporary
    if (Test-Path -LiteralPath $script:StateFile -PathType Leaf) {
        try {
            # NullString: PowerShell would pass $null to a string parameter as "".
            [System.IO.File]::Replace($temporary, $script:StateFile, [System.Management.Automation.Language.NullString]::Value)
        } catch {
            Move-Item -LiteralPath $temporary -Destination $script:StateFile -Force
        }
    } else {
        Move-Item -LiteralPath $temporary -Destination $script:StateFile
    }
}

function Get-NextSeq {
    # Every request carries lastSeq + 1, saved before the request is sent: a sequence number is
    # never reused, even when the request fails.
    $script:State.lastSeq = [long]$script:State.lastSeq + 1
    Save-AgentState
    return $script:State.lastSeq
}

# ==================================================================================================
# Configuration, TLS and HTTP
# ==================================================================================================

function Get-ValidatedBaseUrl {
    param($Url, [bool]$AllowHttp)
    if ([string]::IsNullOrWhiteSpace([string]$Url)) {
        Stop-AgentRun 2 'No server URL: pass -ServerUrl or set KEYWARDEN_SERVER_URL.'
    }
    $uri = $null
    if (-not [Uri]::TryCreate(([string]$Url).Trim(), [UriKind]::Absolute, [ref]$uri)) {
        Stop-AgentRun 2 ('The server URL "{0}" is not an absolute URL such as https://keywarden.example.com.' -f $Url)
    }
    if ($uri.Scheme -eq 'https') {
        # ok
    } elseif ($uri.Scheme -eq 'http' -and $AllowHttp -and $uri.IsLoopback) {
        Write-AgentLog 'Using plain http to a local test server (-AllowInsecureHttp).' 'WARN'
    } elseif ($uri.Scheme -eq 'http' -and $AllowHttp) {
        Stop-AgentRun 2 '-AllowInsecureHttp accepts only http://localhost (or 127.0.0.1 / ::1).'
    } else {
        Stop-AgentRun 2 'The server URL must start with https:// (http:// only for http://localhost with -AllowInsecureHttp).'
    }
    $base = $uri.GetLeftPart([UriPartial]::Path).TrimEnd('/')
    # Accept a URL pasted with the API path.
    $base = $base -replace '(?i)/api/v1(/agent)?$', ''
    return $base
}

function ConvertTo-PinList {
    # "AB:CD:..." / "abcd..." / "SHA256 Fingerprint=AB:CD:..." (openssl) -> "ABCD...", comma
    # separated when several pins are given.
    param($Value)
    if ([string]::IsNullOrWhiteSpace([string]$Value)) { return '' }
    $text = ([string]$Value) -replace '(?i)sha-?256\s*fingerprint\s*=\s*', ''
    $pins = @()
    foreach ($part in ($text -split '[,;\s]+')) {
        $hex = ($part -replace '[:\-]', '').ToUpperInvariant()
        if ($hex.Length -eq 0) { continue }
        if ($hex -notmatch '^[0-9A-F]{64}$') {
            Stop-AgentRun 2 'CertificatePin must be the SHA-256 of the server certificate: 64 hex digits, colons optional.'
        }
        $pins += $hex
    }
    return ($pins -join ',')
}

function Initialize-Tls {
    param([string]$PinList)
    [System.Net.ServicePointManager]::SecurityProtocol = [System.Net.SecurityProtocolType]::Tls12
    [System.Net.ServicePointManager]::Expect100Continue = $false
    if ([string]::IsNullOrEmpty($PinList)) { return }
    if ($PSVersionTable.PSEdition -eq 'Core') {
        Stop-AgentRun 1 'Certificate pinning needs Windows PowerShell 5.1 (powershell.exe): PowerShell 7 ignores ServicePointManager callbacks.'
    }
    try {
        if (-not ('KeywardenCertificatePin' -as [type])) {
            Add-Type -TypeDefinition $script:PinHelperSource -Language CSharp
        }
        [KeywardenCertificatePin]::Enable($PinList)
    } catch {
        Stop-AgentRun 1 ('Certificate pinning could not be set up (Add-Type blocked, e.g. Constrained Language Mode?): {0}. The agent does not fall back to an unpinned connection.' -f $_.Exception.Message)
    }
    $script:PinsEnabled = $true
    Write-AgentLog ('Certificate pinning on ({0} pin(s)); this process accepts no other server certificate.' -f @($PinList -split ',').Count)
}

function Invoke-AgentApi {
    # POSTs a JSON body and returns the parsed answer, or ends the run with the matching exit
    # code. Neither the body nor the Authorization header is ever logged.
    param(
        [string]$Path,
        $Body,
        [switch]$Authenticated,
        [string]$What,
        [int]$HttpErrorExitCode = 1
    )
    $json = ConvertTo-Json -InputObject $Body -Depth 8 -Compress
    $request = @{
        Uri             = $script:BaseUrl + $Path
        Method          = 'Post'
        # Bytes, not a string: Windows PowerShell would encode a string body as ISO-8859-1.
        Body            = [System.Text.Encoding]::UTF8.GetBytes($json)
        ContentType     = 'application/json; charset=utf-8'
        UserAgent       = 'Keywarden-Agent/' + $AgentVersion
        TimeoutSec      = 90
        UseBasicParsing = $true
        ErrorAction     = 'Stop'
    }
    if ($Authenticated) {
        $request['Headers'] = @{ Authorization = 'Bearer ' + [string]$script:State.credential }
    }
    if ($script:ProxyUrl) {
        $request['Proxy'] = $script:ProxyUrl
        $request['ProxyUseDefaultCredentials'] = $true
    }
    try {
        $response = Invoke-RestMethod @request
    } catch {
        $failure = $_
        $status = $null
        try {
            $httpResponse = $failure.Exception.Response
            if ($null -ne $httpResponse) { $status = [int]$httpResponse.StatusCode }
        } catch {
            $status = $null
        }
        $detail = ''
        if ($null -ne $failure.ErrorDetails -and -not [string]::IsNullOrEmpty($failure.ErrorDetails.Message)) {
            $detail = [string]$failure.ErrorDetails.Message
        } else {
            $detail = Get-ExceptionText $failure.Exception
        }
        if ($detail.Length -gt 600) { $detail = $detail.Substring(0, 600) }

        if ($null -eq $status) {
            $hint = ''
            if ($script:PinsEnabled -and ('KeywardenCertificatePin' -as [type])) {
                $rejected = [KeywardenCertificatePin]::LastRejected
                if ($rejected) { $hint = (' The server presented a certificate with SHA-256 {0}, which matches no configured pin.' -f $rejected) }
            }
            if ($script:ProxyUrl) { $hint += (' Proxy: {0}.' -f $script:ProxyUrl) }
            Stop-AgentRun 1 ('Cannot reach the Keywarden server at {0} ({1}): {2}.{3}' -f $script:BaseUrl, $What, $detail, $hint)
        }
        if ($status -eq 401) {
            if ($Authenticated) {
                Stop-AgentRun 2 ('The server rejected this device''s credential (HTTP 401) during the {0}: the device was revoked or deleted, or enrolled again from elsewhere. Run the agent once with -ForceReenroll -EnrollmentToken <token> to enroll it again.' -f $What)
            }
            Stop-AgentRun 2 'The server rejected the enrollment token (HTTP 401): it is unknown, expired, revoked or used up. Create a new one for this client.'
        }
        $hint = ''
        if ($status -eq 400) { $hint = ' (If the server mentions sentAt: the device clock must be within 15 minutes of the server clock.)' }
        if ($status -eq 409) { $hint = (' (The server refused sequence number {0} as a replay.)' -f $script:State.lastSeq) }
        Stop-AgentRun $HttpErrorExitCode ('The server refused the {0} with HTTP {1}: {2}{3}' -f $What, $status, $detail, $hint)
    }
    Write-AgentLog ('POST {0}: OK' -f $Path)
    return $response
}

# ==================================================================================================
# Device facts
# ==================================================================================================

function Get-DsregStatus {
    # "Name : Value" lines of dsregcmd /status (first occurrence of each name wins).
    $values = @{}
    $exe = Join-Path $env:SystemRoot 'System32\dsregcmd.exe'
    if (-not (Test-Path -LiteralPath $exe -PathType Leaf)) { return $values }
    $result = Invoke-NativeCommand -FilePath $exe -Arguments @('/status')
    foreach ($line in ($result.text -split "`r?`n")) {
        $match = [regex]::Match($line, '^\s*([A-Za-z][A-Za-z0-9]*)\s*:\s*(.*?)\s*$')
        if ($match.Success) {
            $name = $match.Groups[1].Value
            if (-not $values.ContainsKey($name)) { $values[$name] = $match.Groups[2].Value }
        }
    }
    return $values
}

function Get-EntraFacts {
    param([hashtable]$Dsreg)
    $azureAdJoined = ([string]$Dsreg['AzureAdJoined']) -eq 'YES'
    $domainJoined = ([string]$Dsreg['DomainJoined']) -eq 'YES'
    $workplaceJoined = ([string]$Dsreg['WorkplaceJoined']) -eq 'YES'
    if ($azureAdJoined -and $domainJoined) {
        $joinType = 'HybridJoined'
    } elseif ($azureAdJoined) {
        $joinType = 'AzureAdJoined'
    } elseif ($workplaceJoined) {
        $joinType = 'WorkplaceJoined'
    } else {
        $joinType = 'NotJoined'
    }
    $deviceId = $null
    $tenantId = $null
    if ($azureAdJoined) {
        $deviceId = Get-GuidOrNull $Dsreg['DeviceId']
        $tenantId = Get-GuidOrNull $Dsreg['TenantId']
    } elseif ($workplaceJoined) {
        $tenantId = Get-GuidOrNull $Dsreg['WorkplaceTenantId']
    }
    return [ordered]@{ joinType = $joinType; deviceId = $deviceId; tenantId = $tenantId }
}

function Get-DeviceIdentity {
    $identity = @{
        hostname     = $env:COMPUTERNAME
        netbiosName  = $env:COMPUTERNAME
        domain       = $null
        domainJoined = $false
        serialNumber = $null
        manufacturer = $null
        model        = $null
        smbiosUuid   = $null
    }
    try {
        $computer = Get-CimInstance -ClassName Win32_ComputerSystem -ErrorAction Stop
        $identity.domainJoined = [bool]$computer.PartOfDomain
        if ($identity.domainJoined) {
            $identity.domain = ConvertTo-CleanString $computer.Domain
        } else {
            $identity.domain = ConvertTo-CleanString $computer.Workgroup
            if (-not $identity.domain) { $identity.domain = ConvertTo-CleanString $computer.Domain }
        }
        $hostname = ConvertTo-CleanString $computer.DNSHostName
        if (-not $hostname) { $hostname = ConvertTo-CleanString $computer.Name }
        if ($hostname) { $identity.hostname = $hostname }
        $netbios = ConvertTo-CleanString $computer.Name
        if ($netbios) { $identity.netbiosName = $netbios }
        $identity.manufacturer = ConvertTo-CleanString $computer.Manufacturer
        $identity.model = ConvertTo-CleanString $computer.Model
    } catch {
        Write-AgentLog ('Win32_ComputerSystem failed: ' + $_.Exception.Message) 'WARN'
    }
    try {
        $bios = Get-CimInstance -ClassName Win32_BIOS -ErrorAction Stop | Select-Object -First 1
        if ($null -ne $bios) { $identity.serialNumber = ConvertTo-CleanString $bios.SerialNumber }
    } catch {
        Write-AgentLog ('Win32_BIOS failed: ' + $_.Exception.Message) 'WARN'
    }
    try {
        $product = Get-CimInstance -ClassName Win32_ComputerSystemProduct -ErrorAction Stop | Select-Object -First 1
        if ($null -ne $product) { $identity.smbiosUuid = ConvertTo-CleanString $product.UUID }
    } catch {
        Write-AgentLog ('Win32_ComputerSystemProduct failed: ' + $_.Exception.Message) 'WARN'
    }
    return $identity
}

function Get-OsFacts {
    $facts = [ordered]@{ caption = $null; version = $null; build = $null }
    try {
        $os = Get-CimInstance -ClassName Win32_OperatingSystem -ErrorAction Stop
        $facts.caption = ConvertTo-CleanString $os.Caption
        $facts.version = ConvertTo-CleanString $os.Version
        $facts.build = ConvertTo-CleanString $os.BuildNumber
    } catch {
        Write-AgentLog ('Win32_OperatingSystem failed: ' + $_.Exception.Message) 'WARN'
    }
    return $facts
}

function Get-TpmFacts {
    # $null when neither Get-Tpm nor Win32_Tpm answered.
    $tpm = [ordered]@{ present = $null; ready = $null; enabled = $null; activated = $null; specVersion = $null; manufacturer = $null }
    $answered = $false
    try {
        $info = Get-Tpm -ErrorAction Stop
        if ($null -ne $info) {
            $answered = $true
            $tpm.present = ConvertTo-NullableBool $info.TpmPresent
            $tpm.ready = ConvertTo-NullableBool $info.TpmReady
            $tpm.enabled = ConvertTo-NullableBool $info.TpmEnabled
            $tpm.activated = ConvertTo-NullableBool $info.TpmActivated
            $tpm.manufacturer = ConvertTo-CleanString $info.ManufacturerIdTxt
        }
    } catch {
        Write-AgentLog ('Get-Tpm failed: ' + $_.Exception.Message) 'DEBUG'
    }
    try {
        $wmi = Get-CimInstance -Namespace 'root/cimv2/Security/MicrosoftTpm' -ClassName Win32_Tpm -ErrorAction Stop | Select-Object -First 1
        $answered = $true
        if ($null -ne $wmi) {
            $tpm.specVersion = ConvertTo-CleanString $wmi.SpecVersion
            if ($null -eq $tpm.present) { $tpm.present = $true }
            if ($null -eq $tpm.manufacturer) { $tpm.manufacturer = ConvertTo-CleanString $wmi.ManufacturerIdTxt }
        } elseif ($null -eq $tpm.present) {
            $tpm.present = $false
        }
    } catch {
        Write-AgentLog ('Win32_Tpm failed: ' + $_.Exception.Message) 'DEBUG'
    }
    if (-not $answered) { return $null }
    return $tpm
}

function Get-SecureBootState {
    # $true / $false on UEFI; $null when the platform does not support Secure Boot (BIOS) or the
    # state cannot be read.
    try {
        return [bool](Confirm-SecureBootUEFI -ErrorAction Stop)
    } catch {
        Write-AgentLog ('Confirm-SecureBootUEFI: ' + $_.Exception.Message) 'DEBUG'
        return $null
    }
}

function Get-CheckinDevice {
    param($Identity, $Entra)
    $adComputerName = $null
    if ($Identity.domainJoined) { $adComputerName = $Identity.netbiosName }
    return [ordered]@{
        hostname       = $Identity.hostname
        domain         = $Identity.domain
        domainJoined   = $Identity.domainJoined
        serialNumber   = $Identity.serialNumber
        manufacturer   = $Identity.manufacturer
        model          = $Identity.model
        smbiosUuid     = $Identity.smbiosUuid
        os             = (Get-OsFacts)
        entra          = $Entra
        adComputerName = $adComputerName
        tpm            = (Get-TpmFacts)
        secureBoot     = (Get-SecureBootState)
    }
}

# ==================================================================================================
# Volumes
# ==================================================================================================

function Get-RemovableVolumeIds {
    # Drive letters and \\?\Volume{...}\ paths of removable volumes, which the agent skips.
    $ids = @{}
    try {
        $encryptable = @(Get-CimInstance -Namespace 'root/cimv2/Security/MicrosoftVolumeEncryption' -ClassName Win32_EncryptableVolume -ErrorAction Stop)
        foreach ($volume in $encryptable) {
            # VolumeType: 0 operating system, 1 fixed data, 2 removable data.
            if ($null -ne $volume -and $null -ne $volume.VolumeType -and [int]$volume.VolumeType -eq 2) {
                if ($volume.DriveLetter) { $ids[[string]$volume.DriveLetter] = $true }
                if ($volume.DeviceID) { $ids[[string]$volume.DeviceID] = $true }
            }
        }
    } catch {
        Write-AgentLog ('Win32_EncryptableVolume failed: ' + $_.Exception.Message) 'DEBUG'
    }
    try {
        $removable = @(Get-CimInstance -ClassName Win32_Volume -Filter 'DriveType = 2' -ErrorAction Stop)
        foreach ($volume in $removable) {
            if ($null -eq $volume) { continue }
            if ($volume.DriveLetter) { $ids[[string]$volume.DriveLetter] = $true }
            if ($volume.DeviceID) { $ids[[string]$volume.DeviceID] = $true }
        }
    } catch {
        Write-AgentLog ('Win32_Volume failed: ' + $_.Exception.Message) 'DEBUG'
    }
    return $ids
}

function Get-RecoveryPasswordProtectors {
    param($Volume)
    foreach ($protector in @($Volume.KeyProtector)) {
        if ($null -ne $protector -and [string]$protector.KeyProtectorType -eq 'RecoveryPassword') { $protector }
    }
}

function ConvertTo-VolumePayload {
    # One Get-BitLockerVolume object as the check-in sends it. The recovery password itself is
    # used only to compute the fingerprint.
    param($Volume, [byte[]]$SaltKey)
    $protectors = [System.Collections.Generic.List[object]]::new()
    foreach ($protector in @($Volume.KeyProtector)) {
        if ($null -eq $protector) { continue }
        if (-not [regex]::IsMatch([string]$protector.KeyProtectorId, $GuidPattern)) {
            # The server accepts GUIDs only (some hardware-encrypted drives report the ID
            # "BitLocker"); one such protector must not make every check-in fail.
            Write-AgentLog ('{0}: protector with ID "{1}" ({2}) is not reported: its ID is not a GUID.' -f $Volume.MountPoint, $protector.KeyProtectorId, $protector.KeyProtectorType) 'WARN'
            continue
        }
        $item = [ordered]@{
            id   = [string]$protector.KeyProtectorId
            type = (ConvertTo-EnumValue $protector.KeyProtectorType)
        }
        if ([string]$protector.KeyProtectorType -eq 'RecoveryPassword' -and -not [string]::IsNullOrEmpty([string]$protector.RecoveryPassword)) {
            $fingerprint = Get-PasswordFingerprint -Password ([string]$protector.RecoveryPassword) -Key $SaltKey
            if ($fingerprint) { $item['fingerprint'] = $fingerprint }
        }
        [void]$protectors.Add($item)
    }
    $percentage = $null
    if ($null -ne $Volume.EncryptionPercentage) { $percentage = [math]::Round([double]$Volume.EncryptionPercentage, 1) }
    return [ordered]@{
        mountPoint           = [string]$Volume.MountPoint
        volumeType           = (ConvertTo-EnumValue $Volume.VolumeType)
        volumeStatus         = (ConvertTo-EnumValue $Volume.VolumeStatus)
        protectionStatus     = (ConvertTo-EnumValue $Volume.ProtectionStatus)
        lockStatus           = (ConvertTo-EnumValue $Volume.LockStatus)
        encryptionMethod     = (ConvertTo-EnumValue $Volume.EncryptionMethod)
        encryptionPercentage = $percentage
        keyProtectors        = $protectors
    }
}

function Get-FixedDriveLetters {
    # Drive letters for "manage-bde -protectors -get": fixed and OS volumes with a letter.
    param([string]$StatusText, [hashtable]$Removable)
    $letters = [System.Collections.Generic.List[string]]::new()
    try {
        $encryptable = @(Get-CimInstance -Namespace 'root/cimv2/Security/MicrosoftVolumeEncryption' -ClassName Win32_EncryptableVolume -ErrorAction Stop)
        foreach ($volume in $encryptable) {
            if ($null -eq $volume -or -not $volume.DriveLetter) { continue }
            $letter = ([string]$volume.DriveLetter).ToUpperInvariant()
            if (-not $Removable.ContainsKey($letter) -and -not $letters.Contains($letter)) { [void]$letters.Add($letter) }
        }
    } catch {
        Write-AgentLog ('Win32_EncryptableVolume failed: ' + $_.Exception.Message) 'DEBUG'
    }
    if ($letters.Count -eq 0) {
        # "Volume C: [...]" headers of manage-bde -status.
        foreach ($match in [regex]::Matches($StatusText, '(?m)^\s*Volume\s+([A-Za-z]:)')) {
            $letter = $match.Groups[1].Value.ToUpperInvariant()
            if (-not $Removable.ContainsKey($letter) -and -not $letters.Contains($letter)) { [void]$letters.Add($letter) }
        }
    }
    foreach ($letter in $letters) { $letter }
}

function Protect-ManageBdeText {
    # Replaces every recovery password in manage-bde output with fp:<fingerprint>. Returns $null
    # if anything password-shaped would still remain (then nothing is sent).
    param([string]$Text, [byte[]]$SaltKey)
    $result = $Text
    $found = @{}
    foreach ($match in [regex]::Matches($Text, $PasswordPattern)) { $found[$match.Value] = $true }
    foreach ($password in @($found.Keys)) {
        $fingerprint = Get-PasswordFingerprint -Password $password -Key $SaltKey
        $result = $result.Replace($password, 'fp:' + $fingerprint)
    }
    if ([regex]::IsMatch($result, $PasswordPattern)) { return $null }
    return $result
}

function Get-ManageBdeReport {
    param([byte[]]$SaltKey, [hashtable]$Removable)
    $status = Invoke-NativeCommand -FilePath $script:ManageBdePath -Arguments @('-status')
    if ($status.exitCode -ne 0 -or [string]::IsNullOrWhiteSpace($status.text)) {
        Write-AgentLog ('manage-bde -status failed (exit {0}): {1}' -f $status.exitCode, $status.text) 'WARN'
        return $null
    }
    $builder = [System.Text.StringBuilder]::new()
    foreach ($letter in @(Get-FixedDriveLetters -StatusText $status.text -Removable $Removable)) {
        $protectors = Invoke-NativeCommand -FilePath $script:ManageBdePath -Arguments @('-protectors', '-get', $letter)
        [void]$builder.AppendLine($protectors.text)
        [void]$builder.AppendLine()
    }
    $statusText = Protect-ManageBdeText -Text $status.text -SaltKey $SaltKey
    $protectorsText = Protect-ManageBdeText -Text $builder.ToString() -SaltKey $SaltKey
    if ($null -eq $statusText -or $null -eq $protectorsText) {
        Write-AgentLog 'manage-bde output still looked like it held a recovery password after masking; not sent.' 'ERROR'
        return $null
    }
    return [ordered]@{ status = $statusText; protectors = $protectorsText }
}

function Get-VolumeReport {
    # @{ volumes = list; manageBde = $null or @{status; protectors}; source = text }
    param([byte[]]$SaltKey)
    $report = @{ volumes = [System.Collections.Generic.List[object]]::new(); manageBde = $null; source = '' }
    $removable = Get-RemovableVolumeIds
    if ($script:HasBitLockerModule) {
        try {
            foreach ($volume in @(Get-BitLockerVolume -ErrorAction Stop -WarningAction SilentlyContinue)) {
                if ($null -eq $volume) { continue }
                if ($removable.ContainsKey([string]$volume.MountPoint)) { continue }
                [void]$report.volumes.Add((ConvertTo-VolumePayload -Volume $volume -SaltKey $SaltKey))
            }
            $report.source = 'Get-BitLockerVolume'
            return $report
        } catch {
            Write-AgentLog ('Get-BitLockerVolume failed, trying manage-bde: ' + $_.Exception.Message) 'WARN'
            $report.volumes.Clear()
        }
    }
    if ($script:HasManageBde) {
        $text = Get-ManageBdeReport -SaltKey $SaltKey -Removable $removable
        if ($null -ne $text) {
            $report.manageBde = $text
            $report.source = 'manage-bde'
            return $report
        }
    }
    Stop-AgentRun 3 'Neither Get-BitLockerVolume nor manage-bde could report the volumes of this device (BitLocker feature not installed?).'
}

# ==================================================================================================
# Events
# ==================================================================================================

function ConvertTo-EventPayload {
    param($Record, [datetime]$TimeUtc)
    $protectorId = $null
    $volume = $null
    try {
        $xml = [xml]($Record.ToXml())
        $nodes = $xml.SelectNodes("//*[local-name()='EventData' or local-name()='UserData']//*[not(*)]")
        foreach ($node in $nodes) {
            $name = $node.GetAttribute('Name')
            if ([string]::IsNullOrEmpty($name)) { $name = $node.LocalName }
            $value = ([string]$node.InnerText).Trim()
            if ($value.Length -eq 0) { continue }
            if ($null -eq $protectorId -and $name -match 'protector') {
                $guid = [regex]::Match($value, $GuidPattern)
                if ($guid.Success) { $protectorId = '{' + $guid.Value.ToUpperInvariant() + '}' }
            } elseif ($null -eq $volume -and $name -match 'volume') {
                $volume = $value
                if ($volume.Length -gt 260) { $volume = $volume.Substring(0, 260) }
            }
        }
    } catch {
        Write-AgentLog ('Event {0}: cannot read its XML: {1}' -f $Record.Id, $_.Exception.Message) 'DEBUG'
    }
    if ($null -eq $protectorId) {
        # Fallback on the (English) message text: "Protector GUID: {...}" / "Protector ID: {...}".
        $message = ''
        try { $message = [string]$Record.Message } catch { $message = '' }
        $guid = [regex]::Match($message, '(?i)protector[^\r\n{]*\{?(' + $GuidPattern + ')')
        if ($guid.Success) { $protectorId = '{' + $guid.Groups[1].Value.ToUpperInvariant() + '}' }
    }
    return [ordered]@{
        id          = [int]$Record.Id
        time        = (Format-UtcTime $TimeUtc)
        protectorId = $protectorId
        volume      = $volume
    }
}

function Get-BitLockerEvents {
    # Events newer than $SinceUtc (first run: the last 7 days), newest 200 at most, oldest first.
    # Returns @{ items = list; newest = UTC time of the newest event sent, or $null }.
    param($SinceUtc)
    if ($null -ne $SinceUtc) {
        $start = $SinceUtc.AddSeconds(-1).ToLocalTime()
    } else {
        $start = (Get-Date).AddDays(-7)
    }
    $filters = @(
        # Microsoft-Windows-BitLocker-API, "BitLocker Management" channel: 845/846 Entra backup,
        # 784/785 AD backup, 775/776 protector created/removed, 773/774 suspended/resumed.
        @{ LogName = 'Microsoft-Windows-BitLocker/BitLocker Management'; Id = @(845, 846, 784, 785, 775, 776, 773, 774); StartTime = $start },
        # Microsoft-Windows-BitLocker-Driver writes to the System log: 24652 = a recovery
        # password was used to start Windows.
        @{ LogName = 'System'; ProviderName = 'Microsoft-Windows-BitLocker-Driver'; Id = @(24652); StartTime = $start }
    )
    $records = [System.Collections.Generic.List[object]]::new()
    foreach ($filter in $filters) {
        try {
            foreach ($record in @(Get-WinEvent -FilterHashtable $filter -MaxEvents 200 -ErrorAction Stop)) {
                if ($null -eq $record -or $null -eq $record.TimeCreated) { continue }
                if ($null -ne $SinceUtc -and $record.TimeCreated.ToUniversalTime() -le $SinceUtc) { continue }
                [void]$records.Add($record)
            }
        } catch {
            # "No events were found that match the specified selection criteria" is an error too.
            Write-AgentLog ('No events read from {0}: {1}' -f $filter.LogName, $_.Exception.Message) 'DEBUG'
        }
    }
    $selected = @($records | Sort-Object -Property TimeCreated -Descending | Select-Object -First 200 | Sort-Object -Property TimeCreated)
    if ($records.Count -gt 200) {
        Write-AgentLog ('{0} BitLocker events since the last check-in; sending the newest 200.' -f $records.Count) 'WARN'
    }
    $items = [System.Collections.Generic.List[object]]::new()
    $newest = $null
    foreach ($record in $selected) {
        $timeUtc = $record.TimeCreated.ToUniversalTime()
        [void]$items.Add((ConvertTo-EventPayload -Record $record -TimeUtc $timeUtc))
        if ($null -eq $newest -or $timeUtc -gt $newest) { $newest = $timeUtc }
    }
    return @{ items = $items; newest = $newest }
}

# ==================================================================================================
# Protocol requests
# ==================================================================================================

function Invoke-Enrollment {
    param($Identity, $Entra, $Token, $PreviousState, [string]$Reason)
    if ([string]::IsNullOrWhiteSpace([string]$Token)) {
        Stop-AgentRun 2 ('The device must enroll ({0}) but no enrollment token was given (-EnrollmentToken or KEYWARDEN_ENROLLMENT_TOKEN).' -f $Reason)
    }
    if ([string]$Token -notmatch '^kwe_[A-Za-z0-9_-]+$') {
        Stop-AgentRun 2 'The enrollment token does not look like a Keywarden enrollment token (kwe_...).'
    }
    $body = [ordered]@{
        enrollmentToken = [string]$Token
        agentVersion    = $AgentVersion
        device          = [ordered]@{
            hostname      = $Identity.hostname
            domain        = $Identity.domain
            domainJoined  = $Identity.domainJoined
            serialNumber  = $Identity.serialNumber
            manufacturer  = $Identity.manufacturer
            model         = $Identity.model
            smbiosUuid    = $Identity.smbiosUuid
            entraDeviceId = $Entra.deviceId
        }
    }
    if ($null -ne $PreviousState -and $PreviousState.credential) {
        # The credential this machine already holds proves it is the device it says it is: the
        # server then gives it its device back without waiting for an administrator's approval.
        $body['previousCredential'] = [string]$PreviousState.credential
    }
    Write-AgentLog ('Enrolling {0} (serial {1}, Entra device {2}).' -f $Identity.hostname, $Identity.serialNumber, $Entra.deviceId)
    $response = Invoke-AgentApi -Path '/api/v1/agent/enroll' -Body $body -What 'enrollment' -HttpErrorExitCode 2
    $deviceId = ConvertTo-CleanString $response.deviceId
    $credential = ConvertTo-CleanString $response.credential
    $salt = ConvertTo-CleanString $response.fingerprintSalt
    Add-Secret $credential
    Add-Secret $salt
    if (-not $deviceId -or -not $credential -or -not $credential.StartsWith('kwd_') -or -not $salt) {
        Stop-AgentRun 2 'The server answered the enrollment without a device ID, credential or fingerprint salt.'
    }
    try {
        $null = [Convert]::FromBase64String($salt)
    } catch {
        Stop-AgentRun 2 'The fingerprint salt returned by the server is not base64.'
    }
    $lastSeq = [long]0
    $lastEventTime = $null
    if ($null -ne $PreviousState) {
        # Sequence numbers keep increasing across re-enrollment (the server may keep its counter).
        $lastSeq = [long]$PreviousState.lastSeq
        $lastEventTime = $PreviousState.lastEventTime
    }
    $interval = $null
    $parsed = 0
    if ([int]::TryParse([string]$response.checkinIntervalSeconds, [ref]$parsed) -and $parsed -gt 0) { $interval = $parsed }
    $script:State = [ordered]@{
        deviceId           = $deviceId
        credential         = $credential
        fingerprintSalt    = $salt
        lastSeq            = $lastSeq
        lastEventTime      = $lastEventTime
        serverUrl          = $script:BaseUrl
        enrolledAt         = (Format-UtcTime (Get-Date))
        lastCheckinAt      = $null
        nextCheckinSeconds = $interval
    }
    Save-AgentState
    Add-Summary ('Enrolled with {0} as device {1}.' -f $script:BaseUrl, $deviceId)
    if ($response.pendingApproval -eq $true) {
        Write-AgentLog 'The server already knows this machine as another device: until an administrator approves the link (keywarden agent approve), reports go to a device record of their own.' 'WARN'
        Add-Summary 'Waiting for an administrator to approve the link to the existing device.'
    }
}

function Send-Checkin {
    param($Device, $VolumeReport, $EventReport, $JobResults)
    $seq = Get-NextSeq
    $body = [ordered]@{
        seq          = $seq
        sentAt       = (Get-SentAt)
        agentVersion = $AgentVersion
        device       = $Device
        volumes      = $VolumeReport.volumes
        manageBde    = $VolumeReport.manageBde
        events       = $EventReport.items
        jobResults   = $JobResults
    }
    $response = Invoke-AgentApi -Path '/api/v1/agent/checkin' -Body $body -Authenticated -What 'check-in'
    if ($null -ne $EventReport.newest) { $script:State.lastEventTime = Format-UtcTime $EventReport.newest }
    $script:State.lastCheckinAt = Format-UtcTime (Get-Date)
    $interval = 0
    if ([int]::TryParse([string]$response.nextCheckinSeconds, [ref]$interval) -and $interval -gt 0) {
        $script:State.nextCheckinSeconds = $interval
    }
    Save-AgentState
    return $response
}

function Send-Keys {
    # Uploads recovery passwords; returns @{ <normalized protector ID> = @{ status; reason } }.
    param($Keys, $JobId)
    $jobIdValue = $null
    if (-not [string]::IsNullOrEmpty([string]$JobId)) { $jobIdValue = [string]$JobId }
    $seq = Get-NextSeq
    $body = [ordered]@{
        seq    = $seq
        sentAt = (Get-SentAt)
        jobId  = $jobIdValue
        keys   = $Keys
    }
    $response = Invoke-AgentApi -Path '/api/v1/agent/keys' -Body $body -Authenticated -What 'key upload'
    $statuses = @{}
    foreach ($entry in @(Get-ResponseItems $response.stored)) {
        $statuses[(Get-NormalizedId $entry.protectorId)] = @{
            status = [string]$entry.status
            reason = ConvertTo-CleanString $entry.reason
        }
    }
    foreach ($key in $Keys) {
        $entry = $statuses[(Get-NormalizedId $key.protectorId)]
        if ($null -eq $entry) {
            Write-AgentLog ('Key {0} on {1}: the server gave no status.' -f $key.protectorId, $key.mountPoint) 'WARN'
        } else {
            $level = 'INFO'
            if ($entry.status -ne 'stored' -and $entry.status -ne 'duplicate') { $level = 'WARN' }
            Write-AgentLog ('Key {0} on {1}: {2} {3}' -f $key.protectorId, $key.mountPoint, $entry.status, $entry.reason) $level
        }
    }
    return $statuses
}

function Get-KeyUploadStatus {
    # Uploads one key and returns @{ status; reason; text } for it (status 'missing' when the
    # server did not mention it).
    param($Key, $JobId)
    $keys = [System.Collections.Generic.List[object]]::new()
    [void]$keys.Add($Key)
    $statuses = Send-Keys -Keys $keys -JobId $JobId
    $entry = $statuses[(Get-NormalizedId $Key.protectorId)]
    if ($null -eq $entry) { $entry = @{ status = 'missing'; reason = $null } }
    $entry['text'] = $entry.status
    if ($entry.reason) { $entry['text'] = ('{0} ({1})' -f $entry.status, $entry.reason) }
    return $entry
}

function Test-Escrowed {
    # Only a key the server answered 'stored' or 'duplicate' for is escrowed.
    param([string]$Status)
    return ($Status -eq 'stored' -or $Status -eq 'duplicate')
}

function New-KeyItem {
    param($Volume, $Protector)
    return [ordered]@{
        mountPoint       = [string]$Volume.MountPoint
        protectorId      = [string]$Protector.KeyProtectorId
        recoveryPassword = [string]$Protector.RecoveryPassword
        volumeType       = (ConvertTo-EnumValue $Volume.VolumeType)
    }
}

function Get-ProtectorKey {
    # The key item (mountPoint, protectorId, recoveryPassword, volumeType) of one
    # recovery-password protector; throws when it cannot be read.
    param([string]$MountPoint, [string]$ProtectorId)
    $wanted = Get-NormalizedId $ProtectorId
    if ($script:HasBitLockerModule) {
        $volume = Get-BitLockerVolume -MountPoint $MountPoint -ErrorAction Stop -WarningAction SilentlyContinue
        if ($null -eq $volume) { throw ('volume {0} not found' -f $MountPoint) }
        foreach ($protector in @(Get-RecoveryPasswordProtectors $volume)) {
            if ((Get-NormalizedId $protector.KeyProtectorId) -eq $wanted) {
                if ([string]::IsNullOrEmpty([string]$protector.RecoveryPassword)) {
                    throw ('the password of protector {0} on {1} cannot be read (volume locked?)' -f $ProtectorId, $MountPoint)
                }
                return (New-KeyItem -Volume $volume -Protector $protector)
            }
        }
        throw ('recovery password protector {0} not found on {1}' -f $ProtectorId, $MountPoint)
    }
    # manage-bde fallback: the output for one protector ID holds exactly one password.
    $braced = '{' + $wanted + '}'
    $result = Invoke-NativeCommand -FilePath $script:ManageBdePath -Arguments @('-protectors', '-get', $MountPoint, '-id', $braced)
    $found = [regex]::Matches($result.text, $PasswordPattern)
    if ($result.exitCode -ne 0 -or $found.Count -ne 1) {
        throw ('manage-bde could not read protector {0} on {1} (exit {2})' -f $ProtectorId, $MountPoint, $result.exitCode)
    }
    $volumeType = 'Data'
    if ($MountPoint.TrimEnd('\') -ieq $env:SystemDrive) { $volumeType = 'OperatingSystem' }
    return [ordered]@{
        mountPoint       = $MountPoint
        protectorId      = $braced
        recoveryPassword = $found[0].Value
        volumeType       = $volumeType
    }
}

function Send-RequestedPasswords {
    # requestPasswords: the protectors whose password the server does not hold (or holds with
    # another fingerprint). Returns how many were escrowed.
    param($Requests)
    $keys = [System.Collections.Generic.List[object]]::new()
    foreach ($request in @(Get-ResponseItems $Requests)) {
        try {
            [void]$keys.Add((Get-ProtectorKey -MountPoint ([string]$request.mountPoint) -ProtectorId ([string]$request.protectorId)))
        } catch {
            Write-AgentLog ('Requested password {0} on {1}: {2}' -f $request.protectorId, $request.mountPoint, $_.Exception.Message) 'WARN'
        }
    }
    if ($keys.Count -eq 0) { return 0 }
    $statuses = Send-Keys -Keys $keys -JobId $null
    $escrowed = 0
    foreach ($entry in $statuses.Values) {
        if (Test-Escrowed $entry.status) { $escrowed++ }
    }
    return $escrowed
}

# ==================================================================================================
# Jobs
# ==================================================================================================

function Invoke-RotateJob {
    # Replaces a recovery password:
    #   1. add a recovery-password protector (unless an escrowed spare already exists, e.g. left
    #      by an interrupted rotation);
    #   2. upload it with the job ID;
    #   3. only when the server answered stored/duplicate, and while the new protector is on the
    #      volume, remove the old recovery-password protector.
    # The job names the old protector; a rotate job without one replaces every recovery password
    # the volume had when the job started. Only recovery-password protectors are ever removed
    # (never TPM, PIN, startup key or others), and the volume always keeps a recovery password.
    param($Job, $Result)
    if (-not $script:HasBitLockerModule) {
        throw 'rotation needs the BitLocker PowerShell module, which is not available on this device'
    }
    $mountPoint = [string]$Job.mountPoint
    $oldId = Get-NormalizedId $Job.protectorId
    $replaceAll = ($oldId -eq '')
    $volume = Get-BitLockerVolume -MountPoint $mountPoint -ErrorAction Stop -WarningAction SilentlyContinue
    if ($null -eq $volume) { throw ('volume {0} not found' -f $mountPoint) }
    if ([string]$volume.LockStatus -ne 'Unlocked') { throw ('volume {0} is locked' -f $mountPoint) }
    foreach ($protector in @($volume.KeyProtector)) {
        if ($null -ne $protector -and -not $replaceAll -and (Get-NormalizedId $protector.KeyProtectorId) -eq $oldId -and [string]$protector.KeyProtectorType -ne 'RecoveryPassword') {
            throw ('protector {0} is a {1} protector, not a recovery password; refusing to rotate it' -f $Job.protectorId, $protector.KeyProtectorType)
        }
    }
    # The recovery passwords this job replaces (normalized ID -> $true).
    $toReplace = @{}
    foreach ($protector in @(Get-RecoveryPasswordProtectors $volume)) {
        $id = Get-NormalizedId $protector.KeyProtectorId
        if ($replaceAll -or $id -eq $oldId) { $toReplace[$id] = $true }
    }

    $newId = $null
    if (-not $replaceAll) {
        # Step 0: an escrowed spare? Upload each other recovery password; stored/duplicate means
        # the server holds it.
        foreach ($protector in @(Get-RecoveryPasswordProtectors $volume)) {
            if ($null -ne $newId) { break }
            if ((Get-NormalizedId $protector.KeyProtectorId) -eq $oldId) { continue }
            if ([string]::IsNullOrEmpty([string]$protector.RecoveryPassword)) { continue }
            $upload = Get-KeyUploadStatus -Key (New-KeyItem -Volume $volume -Protector $protector) -JobId $Job.id
            if (Test-Escrowed $upload.status) {
                $newId = [string]$protector.KeyProtectorId
                Write-AgentLog ('Rotate {0}: protector {1} is already escrowed ({2}); using it.' -f $mountPoint, $newId, $upload.text)
            } else {
                Write-AgentLog ('Rotate {0}: spare protector {1} is not escrowed ({2}).' -f $mountPoint, $protector.KeyProtectorId, $upload.text) 'WARN'
            }
        }
        if ($toReplace.Count -eq 0) {
            if ($null -ne $newId) {
                # A previous run removed the old protector but could not report it.
                $Result.status = 'succeeded'
                $Result.detail = ('the old protector was already gone; {0} is escrowed' -f $newId)
                $Result.newProtectorId = $newId
                $Result.removedProtectorId = [string]$Job.protectorId
                return
            }
            throw ('recovery password protector {0} not found on {1}' -f $Job.protectorId, $mountPoint)
        }
    }

    if ($null -eq $newId) {
        # Step 1: add a protector and find it by comparing the protector IDs before and after.
        $before = @{}
        foreach ($protector in @($volume.KeyProtector)) {
            if ($null -ne $protector) { $before[(Get-NormalizedId $protector.KeyProtectorId)] = $true }
        }
        # The cmdlet writes the new password in a warning: silenced and discarded (stream 3).
        $null = Add-BitLockerKeyProtector -MountPoint $mountPoint -RecoveryPasswordProtector -ErrorAction Stop -WarningAction SilentlyContinue -Confirm:$false 3>$null
        $volume = Get-BitLockerVolume -MountPoint $mountPoint -ErrorAction Stop -WarningAction SilentlyContinue
        $added = @(Get-RecoveryPasswordProtectors $volume | Where-Object { -not $before.ContainsKey((Get-NormalizedId $_.KeyProtectorId)) })
        if ($added.Count -ne 1) {
            throw ('could not identify the new recovery password protector on {0} ({1} new protectors); nothing was removed' -f $mountPoint, $added.Count)
        }
        $newId = [string]$added[0].KeyProtectorId
        Write-AgentLog ('Rotate {0}: added recovery password protector {1}.' -f $mountPoint, $newId)
        # Step 2: escrow it.
        $upload = Get-KeyUploadStatus -Key (New-KeyItem -Volume $volume -Protector $added[0]) -JobId $Job.id
        if (-not (Test-Escrowed $upload.status)) {
            throw ('the server did not escrow the new protector {0} (status: {1}); nothing was removed' -f $newId, $upload.text)
        }
    }

    # Step 3: re-read the volume; remove the replaced protectors only while the escrowed new one
    # is there.
    $newKey = Get-NormalizedId $newId
    $volume = Get-BitLockerVolume -MountPoint $mountPoint -ErrorAction Stop -WarningAction SilentlyContinue
    $newStillThere = $false
    $removeIds = @()
    foreach ($protector in @(Get-RecoveryPasswordProtectors $volume)) {
        $id = Get-NormalizedId $protector.KeyProtectorId
        if ($id -eq $newKey) {
            $newStillThere = $true
        } elseif ($toReplace.ContainsKey($id)) {
            $removeIds += [string]$protector.KeyProtectorId
        }
    }
    if (-not $newStillThere) {
        throw ('the escrowed protector {0} is no longer on {1}; nothing was removed' -f $newId, $mountPoint)
    }
    foreach ($removeId in $removeIds) {
        $null = Remove-BitLockerKeyProtector -MountPoint $mountPoint -KeyProtectorId $removeId -ErrorAction Stop -WarningAction SilentlyContinue -Confirm:$false 3>$null
        Write-AgentLog ('Rotate {0}: removed the old protector {1}.' -f $mountPoint, $removeId)
    }
    $Result.status = 'succeeded'
    $Result.newProtectorId = $newId
    if ($removeIds.Count -gt 0) {
        $Result.removedProtectorId = $removeIds[0]
    } elseif (-not $replaceAll) {
        # Gone between step 0 and step 3 (removed by someone else): it is not on the volume.
        $Result.removedProtectorId = [string]$Job.protectorId
    }
    $Result.detail = ('recovery password rotated on {0}: new {1}, removed {2}' -f $mountPoint, $newId, (@($removeIds) -join ', '))
    if ($removeIds.Count -eq 0) {
        $Result.detail = ('recovery password added on {0}: new {1}, none to remove' -f $mountPoint, $newId)
    }
}

function Invoke-BackupJob {
    param($Job, $Result)
    $key = Get-ProtectorKey -MountPoint ([string]$Job.mountPoint) -ProtectorId ([string]$Job.protectorId)
    $upload = Get-KeyUploadStatus -Key $key -JobId $Job.id
    if (Test-Escrowed $upload.status) {
        $Result.status = 'succeeded'
        $Result.detail = ('escrowed: {0}' -f $upload.text)
    } else {
        $Result.status = 'failed'
        $Result.detail = ('the server answered {0}' -f $upload.text)
    }
}

function Invoke-DirectoryBackupJob {
    # backup-to-ad (Backup-BitLockerKeyProtector) and backup-to-entra
    # (BackupToAAD-BitLockerKeyProtector); manage-bde -adbackup / -aadbackup without the module.
    param($Job, $Result, [string]$Target)
    $mountPoint = [string]$Job.mountPoint
    $wanted = Get-NormalizedId $Job.protectorId
    if ($script:HasBitLockerModule) {
        $volume = Get-BitLockerVolume -MountPoint $mountPoint -ErrorAction Stop -WarningAction SilentlyContinue
        if ($null -eq $volume) { throw ('volume {0} not found' -f $mountPoint) }
        $protectorId = $null
        foreach ($protector in @($volume.KeyProtector)) {
            if ($null -ne $protector -and (Get-NormalizedId $protector.KeyProtectorId) -eq $wanted) { $protectorId = [string]$protector.KeyProtectorId }
        }
        if ($null -eq $protectorId) { throw ('protector {0} not found on {1}' -f $Job.protectorId, $mountPoint) }
        if ($Target -eq 'ad') {
            $null = Backup-BitLockerKeyProtector -MountPoint $mountPoint -KeyProtectorId $protectorId -ErrorAction Stop -WarningAction SilentlyContinue -Confirm:$false 3>$null
        } else {
            if (-not (Get-Command -Name 'BackupToAAD-BitLockerKeyProtector' -ErrorAction SilentlyContinue)) {
                throw 'BackupToAAD-BitLockerKeyProtector is not available on this Windows version'
            }
            $null = BackupToAAD-BitLockerKeyProtector -MountPoint $mountPoint -KeyProtectorId $protectorId -ErrorAction Stop -WarningAction SilentlyContinue -Confirm:$false 3>$null
        }
    } else {
        $option = '-adbackup'
        if ($Target -ne 'ad') { $option = '-aadbackup' }
        $native = Invoke-NativeCommand -FilePath $script:ManageBdePath -Arguments @('-protectors', $option, $mountPoint, '-id', ('{' + $wanted + '}'))
        if ($native.exitCode -ne 0) {
            $lastLine = @($native.text -split "`r?`n" | Where-Object { $_.Trim() }) | Select-Object -Last 1
            throw ('manage-bde {0} failed (exit {1}): {2}' -f $option, $native.exitCode, $lastLine)
        }
    }
    $Result.status = 'succeeded'
    if ($Target -eq 'ad') {
        $Result.detail = 'backed up to Active Directory'
    } else {
        $Result.detail = 'backed up to Microsoft Entra ID'
    }
}

function Find-ProtectorMountPoint {
    # The mount point of the volume that has this protector, or $null.
    param([string]$ProtectorId)
    if (-not $script:HasBitLockerModule -or [string]::IsNullOrEmpty($ProtectorId)) { return $null }
    $wanted = Get-NormalizedId $ProtectorId
    foreach ($volume in @(Get-BitLockerVolume -ErrorAction Stop -WarningAction SilentlyContinue)) {
        if ($null -eq $volume) { continue }
        foreach ($protector in @($volume.KeyProtector)) {
            if ($null -ne $protector -and (Get-NormalizedId $protector.KeyProtectorId) -eq $wanted) {
                return [string]$volume.MountPoint
            }
        }
    }
    return $null
}

function Invoke-AgentJob {
    # Runs one job and adds its result to $Results. A failing job never stops the run.
    param($Job, $Results)
    $result = [ordered]@{ jobId = [string]$Job.id; status = 'failed'; detail = '' }
    $kind = [string]$Job.kind
    $work = @{
        id          = [string]$Job.id
        kind        = $kind
        mountPoint  = ConvertTo-CleanString $Job.mountPoint
        protectorId = ConvertTo-CleanString $Job.protectorId
    }
    Write-AgentLog ('Job {0}: {1} {2} {3}' -f $work.id, $kind, $work.mountPoint, $work.protectorId)
    try {
        if ([string]::IsNullOrEmpty($work.id)) { throw 'the job has no id' }
        if ($null -eq $work.protectorId -and $kind -ne 'rotate') { throw ('a {0} job needs a protectorId' -f $kind) }
        if ($null -eq $work.mountPoint) {
            # The server may not know the volume of a key (e.g. one imported from a file).
            $work.mountPoint = Find-ProtectorMountPoint -ProtectorId $work.protectorId
            if ($null -eq $work.mountPoint) { throw 'the job has no mountPoint and its protector is on no volume of this device' }
        }
        if ($kind -eq 'rotate') {
            Invoke-RotateJob -Job $work -Result $result
        } elseif ($kind -eq 'backup') {
            Invoke-BackupJob -Job $work -Result $result
        } elseif ($kind -eq 'backup-to-ad') {
            Invoke-DirectoryBackupJob -Job $work -Result $result -Target 'ad'
        } elseif ($kind -eq 'backup-to-entra') {
            Invoke-DirectoryBackupJob -Job $work -Result $result -Target 'entra'
        } else {
            $result.detail = ('unsupported job kind "{0}" (agent {1})' -f $kind, $AgentVersion)
        }
    } catch {
        # Errors that must end the run (server unreachable, credential revoked) are passed on.
        if ($null -ne (Get-AgentExitCode $_)) { throw }
        $result.status = 'failed'
        $result.detail = Protect-Text (Get-ExceptionText $_.Exception)
    }
    if ($result.detail.Length -gt 1000) { $result.detail = $result.detail.Substring(0, 1000) }
    if ($result.status -eq 'succeeded') {
        Write-AgentLog ('Job {0} ({1}): succeeded: {2}' -f $work.id, $kind, $result.detail)
    } else {
        Add-Summary ('Job {0} ({1} {2}) failed: {3}' -f $work.id, $kind, $work.mountPoint, $result.detail)
    }
    [void]$Results.Add($result)
}

# ==================================================================================================
# Main
# ==================================================================================================

function Invoke-AgentRun {
    if (-not (Test-IsElevated)) {
        Stop-AgentRun 3 'The agent must run as SYSTEM or as an elevated administrator: BitLocker information is not readable otherwise.'
    }
    if (-not (Enter-AgentMutex)) {
        $script:FinalMessage = 'another Keywarden agent run is in progress on this device; skipped'
        return
    }
    try {
        Initialize-StateDirectory -Path $script:StatePath
    } catch {
        Stop-AgentRun 2 ('Cannot create or protect the state folder {0}: {1}' -f $script:StatePath, $_.Exception.Message)
    }
    Initialize-AgentLog
    if ($script:StateFolderReset) {
        Write-AgentLog ('{0} had been created by another account: it now belongs to Administrators and was emptied.' -f $script:StatePath) 'WARN'
    }
    $who = [System.Security.Principal.WindowsIdentity]::GetCurrent().Name
    $bits = 32
    if ([Environment]::Is64BitProcess) { $bits = 64 }
    Write-AgentLog ('Keywarden agent {0} starting: PowerShell {1}, {2}-bit, as {3}.' -f $AgentVersion, $PSVersionTable.PSVersion, $bits, $who)

    # Configuration: parameter > environment variable > embedded value (> saved server URL).
    $token = Select-FirstValue @($EnrollmentToken, $env:KEYWARDEN_ENROLLMENT_TOKEN, $EmbeddedEnrollmentToken)
    Add-Secret $token
    $pinText = Select-FirstValue @($CertificatePin, $env:KEYWARDEN_CERT_PIN, $EmbeddedCertificatePin)
    $script:ProxyUrl = Select-FirstValue @($Proxy, $env:KEYWARDEN_PROXY, $EmbeddedProxy)
    $state = Read-AgentState
    $savedUrl = $null
    if ($null -ne $state) { $savedUrl = $state.serverUrl }
    $url = Select-FirstValue @($ServerUrl, $env:KEYWARDEN_SERVER_URL, $EmbeddedServerUrl, $savedUrl)
    $script:BaseUrl = Get-ValidatedBaseUrl -Url $url -AllowHttp ([bool]$AllowInsecureHttp)
    Initialize-Tls -PinList (ConvertTo-PinList $pinText)

    $script:HasBitLockerModule = $null -ne (Get-Command -Name 'Get-BitLockerVolume' -ErrorAction SilentlyContinue)
    $script:HasManageBde = Test-Path -LiteralPath $script:ManageBdePath -PathType Leaf
    if (-not $script:HasBitLockerModule -and -not $script:HasManageBde) {
        Stop-AgentRun 3 'Neither the BitLocker PowerShell module nor manage-bde.exe is available (on Windows Server, install the BitLocker feature).'
    }

    $identity = Get-DeviceIdentity
    $entra = Get-EntraFacts -Dsreg (Get-DsregStatus)

    # Enrollment.
    $reason = $null
    if ($null -eq $state) {
        $reason = 'not enrolled yet'
    } elseif ($ForceReenroll) {
        $reason = '-ForceReenroll'
    } elseif ($state.serverUrl -and ($state.serverUrl.TrimEnd('/') -ne $script:BaseUrl)) {
        $reason = ('the server URL changed from {0}' -f $state.serverUrl)
    }
    if ($null -ne $reason) {
        Write-AgentLog ('Enrolling: {0}.' -f $reason)
        Invoke-Enrollment -Identity $identity -Entra $entra -Token $token -PreviousState $state -Reason $reason
    } else {
        $script:State = $state
        if (-not $script:State.serverUrl) {
            $script:State.serverUrl = $script:BaseUrl
        }
    }
    $saltKey = [Convert]::FromBase64String([string]$script:State.fingerprintSalt)

    # Gather and check in.
    $device = Get-CheckinDevice -Identity $identity -Entra $entra
    $volumeReport = Get-VolumeReport -SaltKey $saltKey
    $eventReport = Get-BitLockerEvents -SinceUtc (ConvertTo-UtcDate $script:State.lastEventTime)
    $noResults = [System.Collections.Generic.List[object]]::new()
    $response = Send-Checkin -Device $device -VolumeReport $volumeReport -EventReport $eventReport -JobResults $noResults
    $volumeCount = $volumeReport.volumes.Count
    $volumeText = ('{0} volume(s) from Get-BitLockerVolume' -f $volumeCount)
    if ($volumeReport.source -eq 'manage-bde') { $volumeText = 'volumes from manage-bde' }
    Add-Summary ('Checked in as device {0}: {1}, {2} event(s).' -f $script:State.deviceId, $volumeText, $eventReport.items.Count)

    # Passwords the server asked for.
    $uploaded = Send-RequestedPasswords -Requests $response.requestPasswords

    # Jobs, then a second check-in that reports their results.
    $jobResults = [System.Collections.Generic.List[object]]::new()
    foreach ($job in @(Get-ResponseItems $response.jobs)) {
        Invoke-AgentJob -Job $job -Results $jobResults
    }
    $failed = 0
    foreach ($jobResult in $jobResults) {
        if ($jobResult.status -ne 'succeeded') { $failed++ }
    }
    if ($jobResults.Count -gt 0) {
        $volumeReport = Get-VolumeReport -SaltKey $saltKey
        $eventReport = Get-BitLockerEvents -SinceUtc (ConvertTo-UtcDate $script:State.lastEventTime)
        $response = Send-Checkin -Device $device -VolumeReport $volumeReport -EventReport $eventReport -JobResults $jobResults
        $uploaded += Send-RequestedPasswords -Requests $response.requestPasswords
        $pending = @(Get-ResponseItems $response.jobs).Count
        if ($pending -gt 0) {
            Write-AgentLog ('{0} more job(s) offered; they run on the next run.' -f $pending)
        }
        Add-Summary ('Jobs: {0} succeeded, {1} failed (results reported).' -f ($jobResults.Count - $failed), $failed)
    }
    if ($uploaded -gt 0) {
        Add-Summary ('{0} recovery password(s) escrowed at the server''s request.' -f $uploaded)
    }

    if ($failed -gt 0) {
        $script:ExitCode = 4
        $script:FinalMessage = ('{0} job(s) failed; see {1}' -f $failed, $script:LogFile)
    } else {
        $script:FinalMessage = 'ok'
    }
}

try {
    $null = Invoke-AgentRun
} catch {
    $code = Get-AgentExitCode $_
    if ($null -eq $code) {
        $code = 1
        $script:FinalMessage = 'unexpected error: ' + (Get-ExceptionText $_.Exception)
        Write-AgentLog ('Unexpected error: {0} {1}' -f (Get-ExceptionText $_.Exception), $_.InvocationInfo.PositionMessage) 'ERROR'
    } else {
        $script:FinalMessage = [string]$_.Exception.Message
        Write-AgentLog $script:FinalMessage 'ERROR'
    }
    $script:ExitCode = $code
} finally {
    Exit-AgentMutex
}

foreach ($line in $script:SummaryLines) {
    Write-Output $line
}
$finalLine = Protect-Text ('Keywarden exit={0}: {1}' -f $script:ExitCode, $script:FinalMessage)
Write-AgentLog $finalLine
Write-Output $finalLine
exit $script:ExitCode
