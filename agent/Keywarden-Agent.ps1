<#
.SYNOPSIS
    Keywarden agent: reports the BitLocker state of this Windows device to a Keywarden server,
    escrows its recovery passwords and runs the BitLocker jobs the server hands out.

.DESCRIPTION
    One run of the agent:

      1. enrolls the device when it has no credential yet (POST /api/v1/agent/enroll) with an
         enrollment token read from a file or an environment variable (never needed on a command
         line), deletes the one-shot token file %ProgramData%\Keywarden\enroll.token afterwards, and
         keeps the returned device credential and fingerprint salt in <StatePath>\agent.json
         (readable by SYSTEM and Administrators only);
      2. gathers device facts (Win32_ComputerSystem, Win32_BIOS, Win32_ComputerSystemProduct,
         Win32_OperatingSystem, dsregcmd /status, Get-Tpm, Win32_Tpm, Confirm-SecureBootUEFI), the
         fixed and operating-system volumes from the Win32_EncryptableVolume WMI class (or the text
         of manage-bde.exe when that class cannot be read) and the BitLocker events since the last
         run;
      3. checks in (POST /api/v1/agent/checkin). A routine check-in carries no recovery password:
         each recovery-password protector is identified by its ID and an HMAC-SHA256 fingerprint
         keyed with a per-device salt;
      4. uploads the passwords the server asks for (POST /api/v1/agent/keys, at most 32 per
         request), runs the jobs it hands out (rotate, backup, re-escrow, backup-to-ad,
         backup-to-entra, add-recovery-password, resume-protection, enable-encryption) and, when a
         job ran, checks in again to report the results.

    The server makes every decision; the agent only gathers, serializes, posts and runs jobs.
    The protocol is described in docs/agent-protocol.md of the Keywarden repository.

    Jobs never leave a volume without an escrowed recovery password: a job that changes a volume
    first makes sure the server holds one of its recovery passwords (the server answered "stored"
    or "duplicate" to its upload), and only then removes an old one, turns protection on or starts
    encryption. Only recovery-password protectors are ever removed.

    Run it as SYSTEM (RMM, Intune, scheduled task) once an hour. It needs Windows PowerShell 5.1,
    which every supported Windows version ships. A 32-bit PowerShell host (some RMM agents) is
    detected and the script restarts itself in 64-bit Windows PowerShell; a script started without
    a file (-Command, -EncodedCommand) is written to a temporary file in the protected state folder
    for that.

    Configuration comes, in this order, from the parameters, the environment variables
    KEYWARDEN_SERVER_URL, KEYWARDEN_CERT_PIN and KEYWARDEN_PROXY, and the "Embedded configuration"
    block below the parameters (for tools that can pass neither). Once enrolled, the agent
    remembers the server URL, so later runs need no parameters at all.

    The enrollment token is read, in this order, from the file named by -EnrollmentTokenFile, the
    environment variable KEYWARDEN_ENROLLMENT_TOKEN, and the one-shot file
    %ProgramData%\Keywarden\enroll.token (written by Install-KeywardenAgent.ps1). It is read only
    when the device has to enroll.

.PARAMETER ServerUrl
    Base URL of the Keywarden server, e.g. https://keywarden.example.com (a path prefix such as
    https://example.com/keywarden is kept). Must be https; http is accepted only for
    http://localhost together with -AllowInsecureHttp. Environment: KEYWARDEN_SERVER_URL.

.PARAMETER EnrollmentToken
    Still accepted for older deployments, but do not use it: a token on a command line is
    recorded by Windows (Windows PowerShell event 400, process-creation event 4688, EDR and RMM
    logs). The agent logs a warning when it is used; revoke such a token after the rollout. Use
    -EnrollmentTokenFile or KEYWARDEN_ENROLLMENT_TOKEN instead.

.PARAMETER CertificatePin
    Optional pin of the server's TLS certificate; several pins may be separated by commas (the
    current and the next one). Either "sha256/<base64>": the SHA-256 of the certificate's public
    key (SubjectPublicKeyInfo), which survives renewals that keep the key (certbot --reuse-key);
    or 64 hex digits (colons optional): the SHA-256 of the certificate itself, which changes at
    every renewal. Get-KeywardenCertificatePin.ps1 prints both. When set, only a server presenting
    a pinned key or certificate is accepted, even a self-signed one, and ordinary chain validation
    no longer applies. Environment: KEYWARDEN_CERT_PIN.

.PARAMETER Proxy
    Optional HTTP proxy, e.g. http://proxy.contoso.local:8080, used with the computer account's
    credentials (or with user:password given in the URL, which is never logged). Environment:
    KEYWARDEN_PROXY.

.PARAMETER ForceReenroll
    Enroll again even though a credential exists (after the device was revoked, or to move it to
    another client). Needs an enrollment token. The credential it holds goes along as proof, so the
    server gives the same machine its existing device record back with a new credential; without
    one, a machine the server already knows waits for an administrator to approve the link.

.PARAMETER StatePath
    Folder for agent.json (credential, salt, sequence number, last run), agent.log, agent.lock,
    enroll.token and the compiled certificate-pinning helper. Default: %ProgramData%\Keywarden.

.PARAMETER AllowInsecureHttp
    Accept an http:// server URL, and only one pointing at this machine (localhost, 127.0.0.1, ::1).
    For testing against a local server; never use it in production.

.PARAMETER EnrollmentTokenFile
    A file holding the enrollment token (kwe_...), e.g. one an RMM or a deployment share drops.
    Deleted after a successful enrollment when it lies inside the state folder; a file elsewhere
    is left in place (the agent logs that it should be deleted).

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\Keywarden-Agent.ps1 -ServerUrl https://keywarden.example.com -EnrollmentTokenFile D:\Deploy\keywarden.token

    First run on a device: enrolls with the token in that file and checks in.

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File "C:\Program Files\Keywarden\Keywarden-Agent.ps1"

    Hourly scheduled task as SYSTEM after enrollment: the server URL is remembered in agent.json.
    Before the first enrollment the same command finds the token the installer wrote to
    %ProgramData%\Keywarden\enroll.token and deletes that file once enrolled.

.EXAMPLE
    $env:KEYWARDEN_SERVER_URL = 'https://keywarden.example.com'; $env:KEYWARDEN_ENROLLMENT_TOKEN = $TokenFromSecureField; & .\Keywarden-Agent.ps1

    RMM style: configuration in environment variables (Datto RMM site variables, NinjaOne script
    variables, an RMM's secure field read by a wrapper).

.EXAMPLE
    Intune platform script or Remediation: fill in the "Embedded configuration" block of a copy of
    this script (server URL, pin, proxy: it has no token field), deliver the token as
    %ProgramData%\Keywarden\enroll.token (Install-KeywardenAgent.ps1 does that), and set "Run this
    script using the logged on credentials" = No and "Run script in 64 bit PowerShell" = Yes.

.EXAMPLE
    .\Keywarden-Agent.ps1 -ForceReenroll -EnrollmentTokenFile .\keywarden.token -CertificatePin sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=

    Re-enroll a device whose credential was revoked, pinning the server's public key.

.NOTES
    Exit codes (also printed as the last output line, "Keywarden exit=<code>: <message>", and
    saved with the time of the run as lastExitCode, lastMessage and lastRunAt in agent.json):
      0  ok
      1  the server could not be reached or refused a request (network, DNS, proxy, TLS or
         certificate pin, HTTP 400/409/5xx), or an unexpected error (also when the 64-bit
         relaunch from a 32-bit host could not start)
      2  enrollment failed, the agent is not configured (no server URL, no token), or the server
         rejected the device credential (HTTP 401: revoked; re-enroll with -ForceReenroll)
      3  BitLocker could not be read (neither Win32_EncryptableVolume nor manage-bde.exe reported
         the volumes, or a manage-bde read failed and nothing was reported), or the script does
         not run as SYSTEM or an elevated administrator
      4  at least one job failed
      5  another run holds the lock (<StatePath>\agent.lock) and still did after 120 seconds

    What hardened Windows logging still records:
      - Script Block Logging (event 4104; Windows logs this script automatically, even without the
        policy, because it contains Add-Type): the script's text. It holds no secret: the embedded
        configuration has no token field. A deployment tool that prepends a token to the script
        puts the token into that log.
      - Module Logging (event 4103): the names of the CIM methods the agent calls
        (GetKeyProtectors, GetKeyProtectorNumericalPassword, ProtectKeyWithNumericalPassword,
        DeleteKeyProtector, ...) and protector IDs, but no recovery password: passwords come back
        as method results, which are not logged, and are never passed to a cmdlet, never piped and
        never written to an output stream. The BitLocker PowerShell module, which logs every
        password it reads, is not used.
      - Transcription: only the agent's own output, which is scrubbed of passwords and tokens.

    Certificate pinning sets [System.Net.ServicePointManager]::ServerCertificateValidationCallback,
    which applies to the whole PowerShell process: run the agent in its own powershell.exe (as
    every example here does), not dot-sourced into a session that talks to other servers.
    Pinning needs Windows PowerShell 5.1 (powershell.exe) and Add-Type (not available in
    Constrained Language Mode). The helper is compiled once per agent version into the state
    folder and loaded from there afterwards.

    The agent never writes a recovery password, the device credential, the enrollment token or
    the fingerprint salt to its output or its log.

    KEYWARDEN_ENROLLMENT_TOKEN_ARGUMENT is set by the agent itself for its 64-bit relaunch (it
    carries a -EnrollmentToken value to the child); do not set it.

    Agent version 1.2.0, protocol v1.
#>
[CmdletBinding()]
param(
    [string]$ServerUrl,
    [string]$EnrollmentToken,
    [string]$CertificatePin,
    [string]$Proxy,
    [switch]$ForceReenroll,
    [string]$StatePath = "$env:ProgramData\Keywarden",
    [switch]$AllowInsecureHttp,
    [string]$EnrollmentTokenFile
)

# ==================================================================================================
# Embedded configuration
# Only for deployment tools that can pass neither parameters nor environment variables (Intune
# platform scripts and Remediations, scripts pasted into an RMM). Parameters and environment
# variables take precedence over these values. Leave them empty otherwise. There is deliberately
# no token field: Windows logs the text of this script (event 4104). The enrollment token comes
# from a file or an environment variable (see the help above).
# ==================================================================================================
$EmbeddedServerUrl      = ''
$EmbeddedCertificatePin = ''
$EmbeddedProxy          = ''
# ==================================================================================================

# The script's own text, for the 64-bit relaunch of a script that was started without a file.
# Captured here: inside a function $MyInvocation describes the function.
$script:LaunchScriptBlock = $MyInvocation.MyCommand.ScriptBlock

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# Windows PowerShell 5.1 adds an extended "Count" property to arrays which makes ConvertTo-Json
# write some arrays as {"value":[...],"Count":n}. The agent writes its JSON itself, but nothing in
# this session should see that property; it does not exist (and is not needed) in PowerShell 7.
Remove-TypeData -TypeName System.Array -ErrorAction SilentlyContinue

$AgentVersion = '1.2.0'
# A recovery password as Windows prints it: 8 groups of 6 digits joined by dashes.
$PasswordPattern = '\d{6}(-\d{6}){7}'
$GuidPattern = '[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}'

$script:StatePath = [Environment]::ExpandEnvironmentVariables($StatePath)
$script:StateFile = Join-Path $script:StatePath 'agent.json'
$script:LockFile = Join-Path $script:StatePath 'agent.lock'
$script:OneShotTokenFile = Join-Path $script:StatePath 'enroll.token'
$script:LogFile = $null
$script:Utf8NoBom = [System.Text.UTF8Encoding]::new($false)
$script:Secrets = [System.Collections.Generic.List[string]]::new()
$script:SummaryLines = [System.Collections.Generic.List[string]]::new()
$script:ExitCode = 0
$script:FinalMessage = ''
$script:State = $null
$script:StateOnDisk = $null
$script:StateReady = $false
$script:BaseUrl = $null
$script:ProxySettings = $null
$script:PinsEnabled = $false
$script:LockStream = $null
$script:StateFolderReset = $false
$script:ReplayRecoveryUsed = $false
$script:CommandLineToken = $null
$script:RemovableIds = $null
$script:HasManageBde = $false

# A 32-bit process on 64-bit Windows sees SysWOW64 under the name System32, and there is no
# manage-bde.exe (nor dsregcmd.exe) in SysWOW64: SysNative is the 64-bit System32 for it.
$script:SystemFolder = Join-Path $env:SystemRoot 'System32'
if ([Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess) {
    $script:SystemFolder = Join-Path $env:SystemRoot 'SysNative'
}
$script:ManageBdePath = Join-Path $script:SystemFolder 'manage-bde.exe'

$script:EncryptionNamespace = 'root/cimv2/Security/MicrosoftVolumeEncryption'
# One subkey per Entra join (named by the device certificate's thumbprint); UserEmail is the account that joined.
$script:JoinInfoKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\CloudDomainJoin\JoinInfo'

# BitLocker numbers (Win32_EncryptableVolume) and the names the server expects (the vocabulary of
# the BitLocker PowerShell module).
$script:KeyProtectorTypeNames = @('Unknown', 'Tpm', 'ExternalKey', 'RecoveryPassword', 'TpmPin', 'TpmStartupKey', 'TpmPinStartupKey', 'PublicKey', 'Password', 'TpmNetworkKey', 'AdAccountOrGroup')
$script:ConversionStatusNames = @('FullyDecrypted', 'FullyEncrypted', 'EncryptionInProgress', 'DecryptionInProgress', 'EncryptionSuspended', 'DecryptionSuspended')
$script:ProtectionStatusNames = @('Off', 'On', 'Unknown')
$script:LockStatusNames = @('Unlocked', 'Locked')
$script:EncryptionMethodNames = @('None', 'Aes128Diffuser', 'Aes256Diffuser', 'Aes128', 'Aes256', 'Hardware', 'XtsAes128', 'XtsAes256')
# The methods an enable-encryption job may ask for (Win32_EncryptableVolume.Encrypt numbers).
$script:EncryptMethodNumbers = @{ 'Aes128' = 3; 'Aes256' = 4; 'XtsAes128' = 6; 'XtsAes256' = 7 }
# Protector types that use the TPM (an operating-system volume needs one to start unattended).
$script:TpmProtectorTypes = @('Tpm', 'TpmPin', 'TpmStartupKey', 'TpmPinStartupKey')
$script:JobKinds = @('rotate', 'backup', 'backup-to-ad', 'backup-to-entra', 'enable-encryption', 'resume-protection', 'add-recovery-password', 're-escrow')
$script:JsonIntegerTypes = @('SByte', 'Byte', 'Int16', 'UInt16', 'Int32', 'UInt32', 'Int64', 'UInt64')

# HRESULTs a BitLocker method commonly returns, for readable job details.
$script:HResultText = @{
    '0x00000001' = 'S_FALSE: Windows did nothing (for a directory backup: group policy does not allow it, or the device is not joined)'
    '0x80070057' = 'E_INVALIDARG: a parameter is not valid for this protector or volume'
    '0x80310000' = 'FVE_E_LOCKED_VOLUME: the volume is locked'
    '0x80310008' = 'FVE_E_NOT_ACTIVATED: BitLocker is not turned on for the volume'
}

# manage-bde volume headers, by structure (the words are localized, German quotes the letter):
# "Volume C: [Windows]", "Volume "C:" []", "Volume \\?\Volume{GUID}\ [Recovery]". The same
# patterns as the server's parser.
$script:ManageBdeLetterHeader = '^\s*\S+\s+["'']?([A-Za-z]):["'']?\s*\['
$script:ManageBdeGuidHeader = '^\s*\S+\s+["'']?(\\\\\?\\Volume\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}\\?)["'']?\s*\['

# BitLocker event fields by event ID (M11): the template's field names, so that neither the field
# order nor the (localized) message text decides. Management events (Microsoft-Windows-BitLocker-API)
# name the protector ProtectorGUID and the volume VolumeMountPoint ("C:") and VolumeName
# (\\?\Volume{...}); the driver's 24652 names the protector that started Windows OptionalGUID and
# the volume Volume / VolumeGUID.
$script:DefaultEventFields = @{ protector = @('ProtectorGUID'); volume = @('VolumeMountPoint', 'VolumeName') }
$script:EventFields = @{
    24652 = @{ protector = @('OptionalGUID', 'ProtectorGUID'); volume = @('VolumeMountPoint', 'Volume', 'VolumeName', 'VolumeGUID') }
}

# Certificate pinning helper. A scriptblock callback cannot be used: .NET may call the validation
# callback on a thread without a PowerShell runspace, so the check is compiled C# (C# 5, .NET
# Framework 4.x). It accepts a certificate whose SHA-256 (leaf pin, 64 hex digits) or whose public
# key's SHA-256 ("sha256/<base64>" of the DER SubjectPublicKeyInfo, as openssl and HPKP compute
# it) is in the pin list.
$script:PinHelperSource = @'
using System;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

public static class KeywardenCertificatePin
{
    private static string[] pins = new string[0];

    // The pins of the last certificate that matched none (for the log); null when none.
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

    // "sha256/" + base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo, or null when
    // the certificate cannot be parsed.
    public static string SpkiPin(byte[] certificate)
    {
        byte[] spki = FindSubjectPublicKeyInfo(certificate);
        if (spki == null) { return null; }
        using (SHA256 sha = SHA256.Create())
        {
            return "sha256/" + Convert.ToBase64String(sha.ComputeHash(spki));
        }
    }

    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    // signature, issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }
    private static byte[] FindSubjectPublicKeyInfo(byte[] der)
    {
        if (der == null) { return null; }
        int headerLength;
        int contentLength;
        if (!ReadHeader(der, 0, der.Length, 0x30, out headerLength, out contentLength)) { return null; }
        int tbs = headerLength;
        if (!ReadHeader(der, tbs, der.Length, 0x30, out headerLength, out contentLength)) { return null; }
        int position = tbs + headerLength;
        int end = position + contentLength;
        if (position < end && der[position] == 0xA0)
        {
            if (!ReadHeader(der, position, end, 0xA0, out headerLength, out contentLength)) { return null; }
            position += headerLength + contentLength;
        }
        for (int skipped = 0; skipped < 5; skipped++)
        {
            if (position >= end) { return null; }
            if (!ReadHeader(der, position, end, der[position], out headerLength, out contentLength)) { return null; }
            position += headerLength + contentLength;
        }
        if (position >= end) { return null; }
        if (!ReadHeader(der, position, end, 0x30, out headerLength, out contentLength)) { return null; }
        byte[] spki = new byte[headerLength + contentLength];
        Array.Copy(der, position, spki, 0, spki.Length);
        return spki;
    }

    // Reads the tag and length of the DER element at offset; false when it is not the expected
    // tag or does not fit before limit.
    private static bool ReadHeader(byte[] der, int offset, int limit, int expectedTag, out int headerLength, out int contentLength)
    {
        headerLength = 0;
        contentLength = 0;
        if (offset < 0 || offset + 2 > limit || der[offset] != expectedTag) { return false; }
        int first = der[offset + 1];
        if (first < 0x80)
        {
            headerLength = 2;
            contentLength = first;
        }
        else
        {
            int count = first & 0x7F;
            if (count < 1 || count > 3 || offset + 2 + count > limit) { return false; }
            int value = 0;
            for (int i = 0; i < count; i++)
            {
                value = (value << 8) | der[offset + 2 + i];
            }
            headerLength = 2 + count;
            contentLength = value;
        }
        return (long)offset + headerLength + contentLength <= limit;
    }

    private static bool Validate(object sender, X509Certificate certificate, X509Chain chain, SslPolicyErrors errors)
    {
        if (certificate == null) { return false; }
        byte[] der = certificate.GetRawCertData();
        string leaf = Sha256Hex(der);
        string spki = SpkiPin(der);
        foreach (string pin in pins)
        {
            if (pin.StartsWith("sha256/", StringComparison.Ordinal))
            {
                if (spki != null && string.Equals(pin, spki, StringComparison.Ordinal)) { return true; }
            }
            else if (string.Equals(pin, leaf, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        string keyPin = spki;
        if (keyPin == null) { keyPin = "(public key unreadable)"; }
        LastRejected = "certificate SHA-256 " + leaf + ", public key " + keyPin;
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

function Limit-Text {
    # Redacts first, then shortens: a cut through a password would hide it from the pattern.
    param($Text, [int]$MaxLength)
    $safe = Protect-Text $Text
    if ($safe.Length -gt $MaxLength) { $safe = $safe.Substring(0, $MaxLength) }
    return $safe
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
    # A line for the RMM / Intune output (printed at the end of the run, with "WARN: " in front
    # of a warning) and for the log.
    param([string]$Line, [string]$Level = 'INFO')
    $safe = Protect-Text $Line
    if ($Level -eq 'INFO') {
        [void]$script:SummaryLines.Add($safe)
    } else {
        [void]$script:SummaryLines.Add($Level + ': ' + $safe)
    }
    Write-AgentLog $safe $Level
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
    # $Data travels with the exception (e.g. the server's last sequence number on HTTP 409).
    param([int]$ExitCode, [string]$Message, [hashtable]$Data)
    $exception = [System.Exception]::new($Message)
    $exception.Data['KeywardenExitCode'] = $ExitCode
    if ($null -ne $Data) {
        foreach ($name in $Data.Keys) { $exception.Data[$name] = $Data[$name] }
    }
    throw $exception
}

function Get-ExceptionData {
    # A value that Stop-AgentRun attached to the exception of this error record, or $null.
    param($ErrorRecord, [string]$Name)
    $exception = $ErrorRecord.Exception
    while ($null -ne $exception) {
        if ($null -ne $exception.Data -and $exception.Data.Contains($Name)) {
            return $exception.Data[$Name]
        }
        $exception = $exception.InnerException
    }
    return $null
}

function Get-AgentExitCode {
    param($ErrorRecord)
    $code = Get-ExceptionData -ErrorRecord $ErrorRecord -Name 'KeywardenExitCode'
    if ($null -eq $code) { return $null }
    return [int]$code
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

function Test-ExceptionIs {
    # True when the exception or one of its inner exceptions is of this type (PowerShell wraps
    # .NET exceptions in MethodInvocationException).
    param($Exception, [type]$Type)
    $current = $Exception
    while ($null -ne $current) {
        if ($current -is $Type) { return $true }
        $current = $current.InnerException
    }
    return $false
}

function Format-HResult {
    # A method's return code as Windows documents it: 0x80310000 (with its meaning when known).
    param($Code)
    $number = [long]0
    if (-not [long]::TryParse([string]$Code, [ref]$number)) { return [string]$Code }
    if ($number -lt 0) { $number += 4294967296 }
    $hex = '0x{0:X8}' -f $number
    if ($script:HResultText.ContainsKey($hex)) { return ('{0} ({1})' -f $hex, $script:HResultText[$hex]) }
    return $hex
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

function Get-EnumName {
    # A BitLocker number as the name the server expects ("FullyEncrypted"); a number without a
    # name is sent as that number (the server keeps it out of its decisions).
    param([string[]]$Names, $Value)
    if ($null -eq $Value) { return $null }
    $number = [long]0
    if (-not [long]::TryParse([string]$Value, [ref]$number)) { return ([string]$Value) }
    if ($number -ge 0 -and $number -lt $Names.Count) { return $Names[[int]$number] }
    if ($number -ge 0 -and $number -le 1000) { return [int]$number }
    return $null
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

function ConvertTo-MountKey {
    # A mount point in the form used for comparisons: C: for any spelling of a drive letter,
    # \\?\VOLUME{GUID}\ for a volume GUID path.
    param($MountPoint)
    $text = ConvertTo-CleanString $MountPoint
    if ($null -eq $text) { return '' }
    $letter = [regex]::Match($text, '^([A-Za-z]):?\\?$')
    if ($letter.Success) { return ($letter.Groups[1].Value.ToUpperInvariant() + ':') }
    $text = $text.ToUpperInvariant()
    if ($text.StartsWith('\\?\VOLUME{') -and -not $text.EndsWith('\')) { $text += '\' }
    return $text
}

function ConvertTo-MountPoint {
    # A mount point as it is sent: C: for any spelling of a drive letter; a volume GUID path as
    # Windows spells it, with its trailing backslash.
    param($MountPoint)
    $text = ConvertTo-CleanString $MountPoint
    if ($null -eq $text) { return $null }
    $letter = [regex]::Match($text, '^([A-Za-z]):?\\?$')
    if ($letter.Success) { return ($letter.Groups[1].Value.ToUpperInvariant() + ':') }
    if ($text.StartsWith('\\?\', [System.StringComparison]::OrdinalIgnoreCase) -and -not $text.EndsWith('\')) { $text += '\' }
    return $text
}

function Format-UtcTime {
    param([datetime]$Time)
    return $Time.ToUniversalTime().ToString('o', [System.Globalization.CultureInfo]::InvariantCulture)
}

function ConvertTo-UtcDate {
    # Reads a time written by Format-UtcTime.
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
    return (Get-Date).ToUniversalTime().ToString('o', [System.Globalization.CultureInfo]::InvariantCulture)
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

function Resolve-InputPath {
    # A path given on the command line, relative to the current folder, as a full path.
    param([string]$Path)
    return $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
}

function Test-PathInside {
    # True when $Path lies inside the folder $Folder.
    param([string]$Path, [string]$Folder)
    $full = [System.IO.Path]::GetFullPath($Path)
    $root = [System.IO.Path]::GetFullPath($Folder).TrimEnd('\') + '\'
    return $full.StartsWith($root, [System.StringComparison]::OrdinalIgnoreCase)
}

# ==================================================================================================
# JSON
# Request bodies and agent.json are written and read here rather than with ConvertTo-Json and
# ConvertFrom-Json: Module Logging records the arguments of cmdlets, and these texts hold recovery
# passwords, the device credential and the enrollment token. Functions of this script are not
# module commands and are not logged.
# ==================================================================================================

function ConvertTo-JsonString {
    param([string]$Text)
    $escaped = $Text.Replace('\', '\\').Replace('"', '\"').Replace("`r", '\r').Replace("`n", '\n').Replace("`t", '\t')
    # Any other control character, and everything outside ASCII, as \uXXXX.
    $escaped = [regex]::Replace($escaped, '[^\x20-\x7E]', { param($match) '\u{0:x4}' -f [int][char]$match.Value })
    return '"' + $escaped + '"'
}

function ConvertTo-AgentJson {
    # Compact JSON of strings, numbers, booleans, null, dictionaries, lists and the objects
    # Invoke-RestMethod returns. Enums are written by name, times as ToString('o') in UTC.
    param($Value)
    if ($null -eq $Value) { return 'null' }
    if ($Value -is [string] -or $Value -is [char] -or $Value -is [guid]) { return (ConvertTo-JsonString ([string]$Value)) }
    if ($Value -is [bool]) {
        if ($Value) { return 'true' }
        return 'false'
    }
    if ($Value -is [System.Enum]) { return (ConvertTo-JsonString $Value.ToString()) }
    if ($Value -is [datetime]) { return (ConvertTo-JsonString (Format-UtcTime $Value)) }
    $typeCode = [System.Type]::GetTypeCode($Value.GetType()).ToString()
    if ($script:JsonIntegerTypes -contains $typeCode) {
        return $Value.ToString([System.Globalization.CultureInfo]::InvariantCulture)
    }
    if ($typeCode -eq 'Double' -or $typeCode -eq 'Single') {
        $number = [double]$Value
        if ([double]::IsNaN($number) -or [double]::IsInfinity($number)) { return 'null' }
        return $number.ToString('R', [System.Globalization.CultureInfo]::InvariantCulture)
    }
    if ($typeCode -eq 'Decimal') {
        return ([decimal]$Value).ToString([System.Globalization.CultureInfo]::InvariantCulture)
    }
    if ($Value -is [System.Collections.IDictionary]) {
        $members = [System.Collections.Generic.List[string]]::new()
        foreach ($name in @($Value.Keys)) {
            [void]$members.Add((ConvertTo-JsonString ([string]$name)) + ':' + (ConvertTo-AgentJson $Value[$name]))
        }
        return '{' + ($members -join ',') + '}'
    }
    if ($Value -is [System.Management.Automation.PSCustomObject]) {
        $members = [System.Collections.Generic.List[string]]::new()
        foreach ($property in $Value.PSObject.Properties) {
            [void]$members.Add((ConvertTo-JsonString ([string]$property.Name)) + ':' + (ConvertTo-AgentJson $property.Value))
        }
        return '{' + ($members -join ',') + '}'
    }
    if ($Value -is [System.Collections.IEnumerable]) {
        $items = [System.Collections.Generic.List[string]]::new()
        foreach ($item in $Value) {
            [void]$items.Add((ConvertTo-AgentJson $item))
        }
        return '[' + ($items -join ',') + ']'
    }
    return (ConvertTo-JsonString ([string]$Value))
}

function ConvertFrom-AgentJson {
    # Parses a JSON object (agent.json) into a hashtable with the .NET serializer of Windows
    # PowerShell. Throws on invalid JSON.
    param([string]$Text)
    $values = @{}
    $serializerLoaded = $false
    if ($PSVersionTable.PSEdition -ne 'Core') {
        try {
            [void][System.Reflection.Assembly]::Load('System.Web.Extensions, Version=4.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35')
            $serializerLoaded = $true
        } catch {
            Write-AgentLog ('System.Web.Extensions cannot be loaded ({0}); reading agent.json with ConvertFrom-Json, which Module Logging records.' -f $_.Exception.Message) 'WARN'
        }
    }
    if (-not $serializerLoaded) {
        # PowerShell 7 has no System.Web.Extensions (it is not a supported host of the agent:
        # certificate pinning refuses it).
        $parsed = ConvertFrom-Json -InputObject $Text
        foreach ($property in $parsed.PSObject.Properties) { $values[$property.Name] = $property.Value }
        return $values
    }
    $serializer = [System.Web.Script.Serialization.JavaScriptSerializer]::new()
    $parsed = $serializer.DeserializeObject($Text)
    if ($parsed -isnot [System.Collections.IDictionary]) { throw 'the file does not hold a JSON object' }
    foreach ($name in @($parsed.Keys)) { $values[[string]$name] = $parsed[$name] }
    return $values
}

# ==================================================================================================
# Native commands
# ==================================================================================================

function Get-SystemToolPath {
    # A tool of the 64-bit System32 folder, also from a 32-bit process (through SysNative).
    param([string]$Name)
    return (Join-Path $script:SystemFolder $Name)
}

function ConvertTo-ProcessArgument {
    # One argument for a Windows command line. Quoted only when needed: a quoted
    # \\?\Volume{...}\ would end in \" and lose its closing quote.
    param([string]$Value)
    if ($Value.Length -gt 0 -and $Value -notmatch '[\s"]') { return $Value }
    $escaped = [regex]::Replace($Value, '(\\*)"', '$1$1\"')
    $escaped = [regex]::Replace($escaped, '(\\+)$', '$1$1')
    return '"' + $escaped + '"'
}

function Invoke-NativeCommand {
    # Runs an .exe through System.Diagnostics.Process and returns its exit code and its output
    # (stdout, then stderr) as one string. Nothing goes through a cmdlet pipeline: the output of
    # manage-bde -protectors -get holds recovery passwords, and Module Logging records pipeline
    # input. The enrollment token is removed from the child's environment.
    param([string]$FilePath, [string[]]$Arguments, [int]$TimeoutSeconds = 300)
    $quoted = @()
    foreach ($argument in $Arguments) { $quoted += (ConvertTo-ProcessArgument $argument) }
    $startInfo = [System.Diagnostics.ProcessStartInfo]::new()
    $startInfo.FileName = $FilePath
    $startInfo.Arguments = ($quoted -join ' ')
    $startInfo.UseShellExecute = $false
    $startInfo.RedirectStandardOutput = $true
    $startInfo.RedirectStandardError = $true
    $startInfo.CreateNoWindow = $true
    try {
        # Console tools write redirected output in the OEM code page.
        $encoding = [System.Text.Encoding]::GetEncoding([System.Globalization.CultureInfo]::CurrentCulture.TextInfo.OEMCodePage)
        $startInfo.StandardOutputEncoding = $encoding
        $startInfo.StandardErrorEncoding = $encoding
    } catch {
        Write-Verbose ('OEM code page not available: ' + $_.Exception.Message)
    }
    foreach ($name in @('KEYWARDEN_ENROLLMENT_TOKEN', 'KEYWARDEN_ENROLLMENT_TOKEN_ARGUMENT')) {
        if ($startInfo.EnvironmentVariables.ContainsKey($name)) { $startInfo.EnvironmentVariables.Remove($name) }
    }
    $process = $null
    try {
        $process = [System.Diagnostics.Process]::Start($startInfo)
        # Both streams are read at the same time: a full stderr pipe would block the tool.
        $stdout = $process.StandardOutput.ReadToEndAsync()
        $stderr = $process.StandardError.ReadToEndAsync()
        if (-not $process.WaitForExit($TimeoutSeconds * 1000)) {
            try { $process.Kill() } catch { Write-Verbose ('Cannot stop {0}: {1}' -f $FilePath, $_.Exception.Message) }
            return @{ exitCode = -1; text = ('{0} did not finish within {1} seconds' -f [System.IO.Path]::GetFileName($FilePath), $TimeoutSeconds) }
        }
        $process.WaitForExit()
        $text = [string]$stdout.Result
        $errorText = [string]$stderr.Result
        if ($errorText.Trim().Length -gt 0) { $text = $text + "`r`n" + $errorText }
        return @{ exitCode = $process.ExitCode; text = $text }
    } catch {
        return @{ exitCode = -1; text = (Get-ExceptionText $_.Exception) }
    } finally {
        if ($null -ne $process) { $process.Dispose() }
    }
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
# Process, state directory, lock and state file
# ==================================================================================================

function Test-IsElevated {
    $identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
    if ($identity.IsSystem) { return $true }
    $principal = [System.Security.Principal.WindowsPrincipal]::new($identity)
    return $principal.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Enter-AgentLock {
    # One run at a time per device (an RMM run and the scheduled task must not interleave their
    # sequence numbers or run the same job twice). The lock is agent.lock opened without sharing
    # inside the state folder, which only SYSTEM and Administrators can write: unlike a named
    # mutex in Global\, a standard user cannot hold it and silently stop escrow. Waits up to 120 s;
    # $false when another run still holds it.
    $deadline = (Get-Date).AddSeconds(120)
    while ($true) {
        try {
            $script:LockStream = [System.IO.File]::Open($script:LockFile, [System.IO.FileMode]::OpenOrCreate, [System.IO.FileAccess]::ReadWrite, [System.IO.FileShare]::None)
            return $true
        } catch {
            # A sharing violation is an IOException; anything else (access denied) is a real error.
            if (-not (Test-ExceptionIs $_.Exception ([System.IO.IOException]))) { throw }
        }
        if ((Get-Date) -ge $deadline) { return $false }
        Start-Sleep -Seconds 2
    }
}

function Exit-AgentLock {
    # The file stays: deleting it could let a waiting run and a new one both "own" a lock.
    if ($null -eq $script:LockStream) { return }
    try { $script:LockStream.Dispose() } catch { Write-Verbose ('Cannot release the lock: ' + $_.Exception.Message) }
    $script:LockStream = $null
}

function Get-TrustedOwnerSids {
    # Owners whose files the agent trusts: SYSTEM, BUILTIN\Administrators and the account running
    # the agent (an administrator testing interactively may own what it created).
    return @('S-1-5-18', 'S-1-5-32-544', [System.Security.Principal.WindowsIdentity]::GetCurrent().User.Value)
}

function Test-TrustedOwner {
    # L7: besides the owners above, the built-in local Administrator (RID 500) is trusted: Windows
    # cannot remove it from Administrators, and with UAC off (or Admin Approval Mode off for it)
    # the files it creates belong to it rather than to Administrators. A first test run from that
    # account must not make every later SYSTEM run throw away the credential and need a new
    # token. Any other owner (a standard user who planted a file before the folder was locked
    # down) is not trusted.
    param([string]$Sid)
    if ((Get-TrustedOwnerSids) -contains $Sid) { return $true }
    if ($Sid -match '^S-1-5-21-\d+-\d+-\d+-500$') {
        try {
            $account = ([System.Security.Principal.SecurityIdentifier]::new($Sid)).Translate([System.Security.Principal.NTAccount]).Value
            if ($account.StartsWith($env:COMPUTERNAME + '\', [System.StringComparison]::OrdinalIgnoreCase)) { return $true }
        } catch {
            Write-Verbose ('Cannot resolve the owner {0}: {1}' -f $Sid, $_.Exception.Message)
        }
    }
    return $false
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
    # foreign folder for Administrators and empties it before use (a planted agent.json,
    # enroll.token or pinning helper must never be used).
    param([string]$Path)
    if (-not (Test-Path -LiteralPath $Path -PathType Container)) {
        $null = New-Item -ItemType Directory -Path $Path -Force
    }
    $item = Get-Item -LiteralPath $Path -Force
    if ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) {
        throw ('{0} is a junction or symbolic link; remove it so that the agent can create a real folder' -f $Path)
    }
    $foreign = -not (Test-TrustedOwner -Sid (Get-OwnerSid -Path $Path))
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
        # Delete every entry, each without recursion and without following links
        # (Remove-Item -Recurse in Windows PowerShell 5.1 can follow a planted junction).
        foreach ($child in [System.IO.Directory]::GetFileSystemEntries($Path)) {
            try {
                if ([System.IO.Directory]::Exists($child)) {
                    [System.IO.Directory]::Delete($child, $false)
                } else {
                    [System.IO.File]::SetAttributes($child, [System.IO.FileAttributes]::Normal)
                    [System.IO.File]::Delete($child)
                }
            } catch {
                Write-Verbose ('Cannot delete {0}: {1}' -f $child, $_.Exception.Message)
            }
        }
        $script:StateFolderReset = $true
    }
}

function Remove-StaleFiles {
    # Relaunch copies of the script left by a killed run, and pinning helpers of older versions
    # (a helper still loaded by a running process cannot be deleted; the next run tries again).
    $cutoff = (Get-Date).AddDays(-1)
    foreach ($file in [System.IO.Directory]::GetFiles($script:StatePath, 'relaunch-*.ps1')) {
        try {
            if ([System.IO.File]::GetLastWriteTime($file) -lt $cutoff) { [System.IO.File]::Delete($file) }
        } catch {
            Write-AgentLog ('Cannot delete {0}: {1}' -f $file, $_.Exception.Message) 'DEBUG'
        }
    }
    $current = Get-PinHelperPath
    foreach ($file in [System.IO.Directory]::GetFiles($script:StatePath, 'Keywarden.PinHelper.*.dll')) {
        if ([string]::Equals($file, $current, [System.StringComparison]::OrdinalIgnoreCase)) { continue }
        try { [System.IO.File]::Delete($file) } catch { Write-AgentLog ('Cannot delete {0}: {1}' -f $file, $_.Exception.Message) 'DEBUG' }
    }
}

function New-RelaunchScript {
    # M6: a 32-bit host started this script without a file (-Command, -EncodedCommand, stdin), so
    # the 64-bit Windows PowerShell has nothing to run. The script's own text goes to a file in the
    # protected state folder (nobody else can change it before it runs as SYSTEM), deleted after
    # the run. $null when that is not possible; the run then goes on in 32 bits.
    if ($null -eq $script:LaunchScriptBlock) { return $null }
    if (-not (Test-IsElevated)) { return $null }
    try {
        Initialize-StateDirectory -Path $script:StatePath
        $path = Join-Path $script:StatePath ('relaunch-{0}.ps1' -f [guid]::NewGuid().ToString('N'))
        # With a BOM: Windows PowerShell reads a file without one in the ANSI code page.
        [System.IO.File]::WriteAllText($path, $script:LaunchScriptBlock.ToString(), [System.Text.UTF8Encoding]::new($true))
        Set-ProtectedAcl -Path $path
        return $path
    } catch {
        Write-Verbose ('Cannot write the script for the 64-bit relaunch: ' + $_.Exception.Message)
        return $null
    }
}

function New-AgentState {
    # The fields of agent.json, in the order they are written.
    return [ordered]@{
        deviceId           = $null
        credential         = $null
        fingerprintSalt    = $null
        lastSeq            = [long]0
        lastEventTime      = $null
        serverUrl          = $null
        enrolledAt         = $null
        lastCheckinAt      = $null
        nextCheckinSeconds = $null
        lastRunAt          = $null
        lastExitCode       = $null
        lastMessage        = $null
    }
}

function Read-AgentState {
    # The saved state, or $null when there is none or it is unusable (the agent then enrolls).
    # $script:StateOnDisk keeps what could be read (sequence number, last run) even then.
    $script:StateOnDisk = $null
    if (-not [System.IO.File]::Exists($script:StateFile)) { return $null }
    $owner = Get-OwnerSid -Path $script:StateFile
    if (-not (Test-TrustedOwner -Sid $owner)) {
        # L7: set aside rather than deleted, so that an administrator who knows the file is
        # genuine can give it to Administrators and rename it back instead of enrolling again.
        $aside = $script:StateFile + '.untrusted'
        try {
            if ([System.IO.File]::Exists($aside)) { [System.IO.File]::Delete($aside) }
            [System.IO.File]::Move($script:StateFile, $aside)
        } catch {
            Stop-AgentRun 2 ('The state file {0} is owned by {1} and cannot be set aside: {2}' -f $script:StateFile, $owner, $_.Exception.Message)
        }
        Write-AgentLog ('The state file is owned by {0}, not by SYSTEM, Administrators or the built-in Administrator: it is not used and was renamed to {1}; the device will enroll again.' -f $owner, $aside) 'WARN'
        return $null
    }
    try {
        $saved = ConvertFrom-AgentJson -Text ([System.IO.File]::ReadAllText($script:StateFile))
    } catch {
        Write-AgentLog ('The state file {0} cannot be read ({1}); the device will enroll again.' -f $script:StateFile, $_.Exception.Message) 'WARN'
        return $null
    }
    $state = New-AgentState
    foreach ($name in @('deviceId', 'credential', 'fingerprintSalt', 'serverUrl', 'lastMessage')) {
        $state[$name] = ConvertTo-CleanString $saved[$name]
    }
    $seq = [long]0
    if ([long]::TryParse([string]$saved['lastSeq'], [ref]$seq) -and $seq -gt 0) { $state.lastSeq = $seq }
    foreach ($name in @('lastEventTime', 'enrolledAt', 'lastCheckinAt', 'lastRunAt')) {
        $time = ConvertTo-UtcDate $saved[$name]
        if ($null -ne $time) { $state[$name] = Format-UtcTime $time }
    }
    $number = 0
    if ([int]::TryParse([string]$saved['nextCheckinSeconds'], [ref]$number) -and $number -gt 0) {
        $state.nextCheckinSeconds = $number
    }
    if ([int]::TryParse([string]$saved['lastExitCode'], [ref]$number)) { $state.lastExitCode = $number }
    Add-Secret $state.credential
    Add-Secret $state.fingerprintSalt
    $script:StateOnDisk = $state

    if (-not $state.credential) {
        # Only the status of an earlier run that did not get as far as enrolling.
        return $null
    }
    if (-not $state.credential.StartsWith('kwd_') -or -not $state.fingerprintSalt) {
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
    # killed run never leaves a half-written agent.json. One field per line, for people reading it.
    param($State = $script:State)
    $lines = [System.Collections.Generic.List[string]]::new()
    foreach ($name in @($State.Keys)) {
        [void]$lines.Add('  ' + (ConvertTo-JsonString ([string]$name)) + ': ' + (ConvertTo-AgentJson $State[$name]))
    }
    $json = "{`r`n" + ($lines -join ",`r`n") + "`r`n}`r`n"
    $temporary = $script:StateFile + '.tmp'
    if ([System.IO.File]::Exists($temporary)) { [System.IO.File]::Delete($temporary) }
    [System.IO.File]::WriteAllText($temporary, $json, $script:Utf8NoBom)
    Set-ProtectedAcl -Path $temporary
    if ([System.IO.File]::Exists($script:StateFile)) {
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

function Save-RunStatus {
    # M10: lastRunAt, lastExitCode and lastMessage (scrubbed) in agent.json after every run that
    # got the lock, so that a detection script can show them (Intune shows detection output, not
    # the output of a remediation). Never fails the run.
    param([int]$ExitCode, [string]$Message)
    if (-not $script:StateReady) { return }
    try {
        $target = $script:State
        if ($null -eq $target) { $target = $script:StateOnDisk }
        if ($null -eq $target) { $target = New-AgentState }
        $target['lastRunAt'] = Format-UtcTime (Get-Date)
        $target['lastExitCode'] = $ExitCode
        $target['lastMessage'] = Limit-Text $Message 500
        Save-AgentState -State $target
    } catch {
        Write-AgentLog ('Cannot save the run status in {0}: {1}' -f $script:StateFile, $_.Exception.Message) 'WARN'
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
# Configuration, enrollment token, TLS and HTTP
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

function Get-ProxySettings {
    # @{ uri; credential; display }: credentials in the URL (user:password@) are taken out of it,
    # used as the proxy credential and never logged (L3).
    param([string]$Url)
    if ([string]::IsNullOrWhiteSpace($Url)) { return $null }
    $uri = $null
    if (-not [Uri]::TryCreate($Url.Trim(), [UriKind]::Absolute, [ref]$uri)) {
        Stop-AgentRun 2 'The proxy is not an absolute URL such as http://proxy.contoso.local:8080.'
    }
    $settings = @{ uri = $uri.AbsoluteUri; credential = $null; display = $uri.AbsoluteUri }
    if (-not [string]::IsNullOrEmpty($uri.UserInfo)) {
        Add-Secret $uri.UserInfo
        $parts = $uri.UserInfo.Split([char[]]@(':'), 2)
        $user = [Uri]::UnescapeDataString($parts[0])
        $password = ''
        if ($parts.Count -gt 1) { $password = [Uri]::UnescapeDataString($parts[1]) }
        Add-Secret $password
        $builder = [System.UriBuilder]::new($uri)
        $builder.UserName = ''
        $builder.Password = ''
        $settings.uri = $builder.Uri.AbsoluteUri
        $settings.display = $settings.uri + ' (with the credentials given in the URL)'
        $securePassword = [System.Net.NetworkCredential]::new($user, $password).SecurePassword
        $settings.credential = [System.Management.Automation.PSCredential]::new($user, $securePassword)
    }
    return $settings
}

function Read-TokenFile {
    # The first non-empty line of a token file (any encoding with a BOM, or ASCII).
    param([string]$Path)
    foreach ($line in ([System.IO.File]::ReadAllText($Path) -split "`r?`n")) {
        $value = ConvertTo-CleanString $line
        if ($null -ne $value) { return $value }
    }
    return $null
}

function Get-EnrollmentToken {
    # H2: the token, read only when the device has to enroll, from (in this order)
    # -EnrollmentTokenFile, KEYWARDEN_ENROLLMENT_TOKEN, the one-shot file <StatePath>\enroll.token
    # and -EnrollmentToken. Returns @{ value; source; path } or $null.
    if ($EnrollmentTokenFile) {
        $path = Resolve-InputPath $EnrollmentTokenFile
        if (-not [System.IO.File]::Exists($path)) {
            Stop-AgentRun 2 ('The enrollment token file {0} does not exist.' -f $path)
        }
        $value = Read-TokenFile $path
        Add-Secret $value
        if ($null -eq $value) { Stop-AgentRun 2 ('The enrollment token file {0} is empty.' -f $path) }
        return @{ value = $value; source = '-EnrollmentTokenFile'; path = $path }
    }
    $fromEnvironment = ConvertTo-CleanString $env:KEYWARDEN_ENROLLMENT_TOKEN
    if ($null -ne $fromEnvironment) {
        return @{ value = $fromEnvironment; source = 'KEYWARDEN_ENROLLMENT_TOKEN'; path = $null }
    }
    if ([System.IO.File]::Exists($script:OneShotTokenFile)) {
        $owner = Get-OwnerSid -Path $script:OneShotTokenFile
        if (Test-TrustedOwner -Sid $owner) {
            $value = Read-TokenFile $script:OneShotTokenFile
            Add-Secret $value
            if ($null -ne $value) {
                return @{ value = $value; source = 'enroll.token'; path = $script:OneShotTokenFile }
            }
        } else {
            # A token nobody trusted wrote would enroll the device into someone else's client.
            [System.IO.File]::Delete($script:OneShotTokenFile)
            Write-AgentLog ('{0} was owned by {1}, not by SYSTEM or Administrators: deleted unread.' -f $script:OneShotTokenFile, $owner) 'WARN'
        }
    }
    if ($null -ne $script:CommandLineToken) {
        return @{ value = $script:CommandLineToken; source = '-EnrollmentToken'; path = $null }
    }
    return $null
}

function Remove-EnrollmentTokenFiles {
    # After a successful enrollment: the one-shot enroll.token goes, and so does the
    # -EnrollmentTokenFile file when it lies inside the state folder (a file elsewhere may be a
    # share or an RMM's copy the agent does not own).
    param($Token)
    $paths = @()
    if ([System.IO.File]::Exists($script:OneShotTokenFile)) { $paths += $script:OneShotTokenFile }
    if ($null -ne $Token -and $Token.source -eq '-EnrollmentTokenFile' -and $Token.path) {
        if (Test-PathInside -Path $Token.path -Folder $script:StatePath) {
            if ($paths -notcontains $Token.path -and [System.IO.File]::Exists($Token.path)) { $paths += $Token.path }
        } else {
            Write-AgentLog ('The enrollment token file {0} is outside {1} and was left in place: delete it once the devices that use it have enrolled.' -f $Token.path, $script:StatePath) 'WARN'
        }
    }
    foreach ($path in $paths) {
        try {
            [System.IO.File]::Delete($path)
            Add-Summary ('Deleted the enrollment token file {0}.' -f $path)
        } catch {
            Write-AgentLog ('Cannot delete the enrollment token file {0}: {1}' -f $path, $_.Exception.Message) 'WARN'
        }
    }
}

function ConvertTo-PinList {
    # Pins, comma separated, each either "sha256/<base64>" (public key, M9) or 64 upper-case hex
    # digits (certificate). Accepts "AB:CD:...", "abcd...", "SHA256 Fingerprint=AB:CD:..."
    # (openssl), "sha256/..." and pin-sha256="..." (HPKP).
    param($Value)
    if ([string]::IsNullOrWhiteSpace([string]$Value)) { return '' }
    $text = ([string]$Value) -replace '(?i)sha-?256\s*fingerprint\s*=\s*', ''
    $pins = @()
    foreach ($part in ($text -split '[,;\s]+')) {
        $candidate = $part.Trim([char[]]@('"', "'"))
        if ($candidate.Length -eq 0) { continue }
        $spki = [regex]::Match($candidate, '^(?i:sha256/|pin-sha256=)["'']?([A-Za-z0-9+/=_-]+)["'']?$')
        if ($spki.Success) {
            $base64 = $spki.Groups[1].Value.Replace('-', '+').Replace('_', '/')
            $bytes = $null
            try { $bytes = [Convert]::FromBase64String($base64) } catch { $bytes = $null }
            if ($null -eq $bytes -or $bytes.Length -ne 32) {
                Stop-AgentRun 2 'A CertificatePin of the form sha256/<base64> must hold the base64 of a SHA-256 (44 characters ending in =).'
            }
            $pins += ('sha256/' + [Convert]::ToBase64String($bytes))
            continue
        }
        $hex = ($candidate -replace '[:\-]', '').ToUpperInvariant()
        if ($hex -notmatch '^[0-9A-F]{64}$') {
            Stop-AgentRun 2 'CertificatePin must be sha256/<base64> (the server''s public key) or the SHA-256 of the server certificate: 64 hex digits, colons optional.'
        }
        $pins += $hex
    }
    return ($pins -join ',')
}

function Get-PinHelperPath {
    # The compiled pinning helper of this agent version: named after the SHA-256 of its source,
    # so that a changed helper is compiled again.
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try {
        $hash = [System.BitConverter]::ToString($sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($script:PinHelperSource))).Replace('-', '')
    } finally {
        $sha.Dispose()
    }
    return (Join-Path $script:StatePath ('Keywarden.PinHelper.{0}.dll' -f $hash.Substring(0, 16)))
}

function Initialize-PinHelper {
    # M9: the helper is compiled once (csc.exe runs only then; EDRs flag PowerShell compiling C#)
    # into the protected state folder and loaded from there on later runs. A helper file that
    # someone other than SYSTEM or Administrators owns is never loaded.
    if ('KeywardenCertificatePin' -as [type]) { return }
    $path = Get-PinHelperPath
    if ([System.IO.File]::Exists($path)) {
        $owner = Get-OwnerSid -Path $path
        if (Test-TrustedOwner -Sid $owner) {
            try {
                Add-Type -Path $path -ErrorAction Stop
            } catch {
                Write-AgentLog ('The pinning helper {0} cannot be loaded ({1}); compiling it again.' -f $path, $_.Exception.Message) 'WARN'
            }
        } else {
            Write-AgentLog ('The pinning helper {0} is owned by {1}: deleted unused.' -f $path, $owner) 'WARN'
        }
    }
    if ('KeywardenCertificatePin' -as [type]) { return }
    if ([System.IO.File]::Exists($path)) { [System.IO.File]::Delete($path) }
    Add-Type -TypeDefinition $script:PinHelperSource -Language CSharp -OutputAssembly $path -OutputType Library -ErrorAction Stop
    Set-ProtectedAcl -Path $path
    if (-not ('KeywardenCertificatePin' -as [type])) {
        Add-Type -Path $path -ErrorAction Stop
    }
    Write-AgentLog ('Compiled the certificate pinning helper into {0} (once per agent version).' -f $path)
}

function Initialize-Tls {
    param([string]$PinList)
    # L2: add TLS 1.2 (and 1.3 where .NET knows it) to what the process allows, rather than
    # replacing it. SystemDefault (0) already lets Windows choose the best protocol; OR-ing into
    # it would narrow it to the listed ones.
    $protocols = [System.Net.ServicePointManager]::SecurityProtocol
    if ([int]$protocols -ne 0) {
        $protocols = $protocols -bor [System.Net.SecurityProtocolType]::Tls12
        $tls13 = 'Tls13' -as [System.Net.SecurityProtocolType]
        if ($null -ne $tls13) { $protocols = $protocols -bor $tls13 }
        [System.Net.ServicePointManager]::SecurityProtocol = $protocols
    }
    [System.Net.ServicePointManager]::Expect100Continue = $false
    if ([string]::IsNullOrEmpty($PinList)) { return }
    if ($PSVersionTable.PSEdition -eq 'Core') {
        Stop-AgentRun 1 'Certificate pinning needs Windows PowerShell 5.1 (powershell.exe): PowerShell 7 ignores ServicePointManager callbacks.'
    }
    try {
        Initialize-PinHelper
        [KeywardenCertificatePin]::Enable($PinList)
    } catch {
        Stop-AgentRun 1 ('Certificate pinning could not be set up (Add-Type blocked, e.g. Constrained Language Mode?): {0}. The agent does not fall back to an unpinned connection.' -f $_.Exception.Message)
    }
    $script:PinsEnabled = $true
    Write-AgentLog ('Certificate pinning on ({0} pin(s)); this process accepts no other server certificate.' -f @($PinList -split ',').Count)
}

function Invoke-AgentApi {
    # POSTs a JSON body and returns the parsed answer, or ends the run with the matching exit
    # code. Neither the body nor the Authorization header is ever logged; the body reaches
    # Invoke-RestMethod as bytes, which Module Logging records only as "System.Byte[]".
    param(
        [string]$Path,
        $Body,
        [switch]$Authenticated,
        [string]$What,
        [int]$HttpErrorExitCode = 1
    )
    $json = ConvertTo-AgentJson $Body
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
    $json = $null
    if ($Authenticated) {
        $request['Headers'] = @{ Authorization = 'Bearer ' + [string]$script:State.credential }
    }
    if ($null -ne $script:ProxySettings) {
        $request['Proxy'] = $script:ProxySettings.uri
        if ($null -ne $script:ProxySettings.credential) {
            $request['ProxyCredential'] = $script:ProxySettings.credential
        } else {
            $request['ProxyUseDefaultCredentials'] = $true
        }
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
        $rawDetail = ''
        if ($null -ne $failure.ErrorDetails -and -not [string]::IsNullOrEmpty($failure.ErrorDetails.Message)) {
            $rawDetail = [string]$failure.ErrorDetails.Message
        } else {
            $rawDetail = Get-ExceptionText $failure.Exception
        }
        # L8: redacted before it is shortened.
        $detail = Limit-Text $rawDetail 600

        if ($null -eq $status) {
            $hint = ''
            if ($script:PinsEnabled -and ('KeywardenCertificatePin' -as [type])) {
                $rejected = [KeywardenCertificatePin]::LastRejected
                if ($rejected) { $hint = (' The server presented a {0}, which matches no configured pin.' -f $rejected) }
            }
            if ($null -ne $script:ProxySettings) { $hint += (' Proxy: {0}.' -f $script:ProxySettings.display) }
            Stop-AgentRun 1 ('Cannot reach the Keywarden server at {0} ({1}): {2}.{3}' -f $script:BaseUrl, $What, $detail, $hint)
        }
        if ($status -eq 401) {
            if ($Authenticated) {
                Stop-AgentRun 2 ('The server rejected this device''s credential (HTTP 401) during the {0}: the device was revoked or deleted, or enrolled again from elsewhere. Run the agent once with -ForceReenroll and an enrollment token (-EnrollmentTokenFile or KEYWARDEN_ENROLLMENT_TOKEN) to enroll it again.' -f $What)
            }
            Stop-AgentRun 2 'The server rejected the enrollment token (HTTP 401): it is unknown, expired, revoked or used up. Create a new one for this client.'
        }
        $hint = ''
        $data = $null
        if ($status -eq 400) { $hint = ' (If the server mentions sentAt: the device clock must be within 15 minutes of the server clock.)' }
        if ($status -eq 409) {
            $hint = (' (The server refused sequence number {0} as a replay.)' -f $script:State.lastSeq)
            # "Request sequence 5 was already used (the last one seen is 12): ..."
            $last = [regex]::Match($rawDetail, '(?i)last one seen is (\d+)')
            if ($last.Success) { $data = @{ KeywardenLastSeq = [long]$last.Groups[1].Value } }
        }
        Stop-AgentRun $HttpErrorExitCode ('The server refused the {0} with HTTP {1}: {2}{3}' -f $What, $status, $detail, $hint) $data
    }
    Write-AgentLog ('POST {0}: OK' -f $Path)
    return $response
}

function Invoke-SequencedRequest {
    # A check-in or key upload: fills in seq and sentAt and posts. L9: when the server answers 409
    # because it has already seen a later sequence number (agent.json restored from an older
    # copy), the agent continues after the server's last number and retries, once per run.
    param([string]$Path, $Body, [string]$What)
    while ($true) {
        $Body['seq'] = Get-NextSeq
        $Body['sentAt'] = Get-SentAt
        try {
            return (Invoke-AgentApi -Path $Path -Body $Body -Authenticated -What $What)
        } catch {
            $last = Get-ExceptionData -ErrorRecord $_ -Name 'KeywardenLastSeq'
            if ($null -eq $last -or $script:ReplayRecoveryUsed) { throw }
            $script:ReplayRecoveryUsed = $true
            $refused = $script:State.lastSeq
            if ([long]$last -gt [long]$script:State.lastSeq) { $script:State.lastSeq = [long]$last }
            Write-AgentLog ('The server had already seen sequence numbers up to {0} (this run sent {1}; agent.json restored from an older copy?): continuing after {0}.' -f $last, $refused) 'WARN'
        }
    }
}

# ==================================================================================================
# Device facts
# ==================================================================================================

function Get-DsregStatus {
    # "Name : Value" lines of dsregcmd /status (first occurrence of each name wins).
    $values = @{}
    $exe = Get-SystemToolPath 'dsregcmd.exe'
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

function ConvertTo-PrimaryUpn {
    # $Value when it looks like a person's user principal name, else $null: one @ with text on
    # both sides, no whitespace or control characters, at most 256 characters, and not one of the
    # placeholders Windows records instead of a person (fooUser@... on hybrid-joined and
    # pre-provisioned devices, package_<guid>@... of a bulk-enrolment provisioning package). The
    # server checks the same again.
    param($Value)
    $text = ConvertTo-CleanString $Value
    if ($null -eq $text -or $text.Length -gt 256) { return $null }
    if ($text -notmatch '^[^@\s\p{Cc}]+@[^@\s\p{Cc}]+$') { return $null }
    if ($text -match '^(foouser|package_[^@]*)@') { return $null }
    return $text
}

function Get-PrimaryUser {
    # The device's primary user for self-service recovery: on an Entra-joined or hybrid-joined
    # device, the UPN of the account that joined it (UserEmail of the join's entry under
    # CloudDomainJoin\JoinInfo), or $null. Never the logged-on DOMAIN\sam: it is no UPN, and on a
    # shared or serviced machine it may be an administrator's. Entries naming different people
    # name nobody.
    param($Entra)
    if (@('AzureAdJoined', 'HybridJoined') -notcontains $Entra.joinType) { return $null }
    try {
        $entries = @(Get-ChildItem -LiteralPath $script:JoinInfoKey -ErrorAction Stop)
    } catch {
        Write-AgentLog ('The Entra join information could not be read: ' + $_.Exception.Message) 'DEBUG'
        return $null
    }
    $users = @()
    foreach ($entry in $entries) {
        $email = ConvertTo-CleanString (Get-ItemProperty -LiteralPath $entry.PSPath -Name 'UserEmail' -ErrorAction SilentlyContinue).UserEmail
        $upn = ConvertTo-PrimaryUpn $email
        if ($null -eq $upn) {
            if ($null -ne $email) { Write-AgentLog ('The Entra join user {0} is no person''s UPN: no primary user from it.' -f $email) 'DEBUG' }
        } elseif ($users -notcontains $upn) {
            $users += $upn
        }
    }
    if ($users.Count -gt 1) {
        Write-AgentLog ('The Entra join information names {0} different users: no primary user reported.' -f $users.Count) 'WARN'
        return $null
    }
    if ($users.Count -eq 0) { return $null }
    return $users[0]
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
        primaryUser    = (Get-PrimaryUser -Entra $Entra)
        adComputerName = $adComputerName
        tpm            = (Get-TpmFacts)
        secureBoot     = (Get-SecureBootState)
    }
}


# ==================================================================================================
# Volumes through Win32_EncryptableVolume (H3)
# The BitLocker PowerShell module is not used: its functions pass every recovery password through
# cmdlet arguments and warnings, which Module Logging records. The CIM methods return passwords as
# method results, which are not logged. A volume is a hashtable:
#   @{ cim = <Win32_EncryptableVolume instance, or $null in the manage-bde fallback>;
#      mountPoint = 'C:' or '\\?\Volume{GUID}\'; driveLetter; deviceId;
#      volumeType = 'OperatingSystem' | 'Data' }
# ==================================================================================================

function Get-RemovableVolumeIds {
    # Drive letters ("E:") and \\?\Volume{...}\ paths of removable volumes, which the agent skips.
    # Cached for the run.
    if ($null -ne $script:RemovableIds) { return $script:RemovableIds }
    $ids = @{}
    try {
        $encryptable = @(Get-CimInstance -Namespace $script:EncryptionNamespace -ClassName Win32_EncryptableVolume -ErrorAction Stop)
        foreach ($volume in $encryptable) {
            # VolumeType: 0 operating system, 1 fixed data, 2 removable data.
            if ($null -ne $volume -and $null -ne $volume.VolumeType -and [int]$volume.VolumeType -eq 2) {
                if ($volume.DriveLetter) { $ids[(ConvertTo-MountKey $volume.DriveLetter)] = $true }
                if ($volume.DeviceID) { $ids[(ConvertTo-MountKey $volume.DeviceID)] = $true }
            }
        }
    } catch {
        Write-AgentLog ('Win32_EncryptableVolume failed: ' + $_.Exception.Message) 'DEBUG'
    }
    try {
        $removable = @(Get-CimInstance -ClassName Win32_Volume -Filter 'DriveType = 2' -ErrorAction Stop)
        foreach ($volume in $removable) {
            if ($null -eq $volume) { continue }
            if ($volume.DriveLetter) { $ids[(ConvertTo-MountKey $volume.DriveLetter)] = $true }
            if ($volume.DeviceID) { $ids[(ConvertTo-MountKey $volume.DeviceID)] = $true }
        }
    } catch {
        Write-AgentLog ('Win32_Volume failed: ' + $_.Exception.Message) 'DEBUG'
    }
    # Without WMI (the manage-bde fallback usually means WMI is broken): the Win32 drive type.
    try {
        foreach ($drive in [System.IO.DriveInfo]::GetDrives()) {
            if ($drive.DriveType -eq [System.IO.DriveType]::Removable) { $ids[(ConvertTo-MountKey $drive.Name)] = $true }
        }
    } catch {
        Write-AgentLog ('Cannot list the drives: ' + $_.Exception.Message) 'DEBUG'
    }
    $script:RemovableIds = $ids
    return $ids
}

function Get-EncryptableVolumes {
    # Every fixed and operating-system volume (removable ones are skipped). Throws when
    # Win32_EncryptableVolume cannot be read at all (callers fall back to manage-bde or fail).
    $removable = Get-RemovableVolumeIds
    foreach ($cim in @(Get-CimInstance -Namespace $script:EncryptionNamespace -ClassName Win32_EncryptableVolume -ErrorAction Stop)) {
        if ($null -eq $cim) { continue }
        $typeNumber = $null
        if ($null -ne $cim.VolumeType) { $typeNumber = [int]$cim.VolumeType }
        if ($typeNumber -eq 2) { continue }
        $letter = $null
        if ($cim.DriveLetter) { $letter = ConvertTo-MountKey $cim.DriveLetter }
        $deviceId = ConvertTo-CleanString $cim.DeviceID
        if ($null -ne $letter -and $removable.ContainsKey($letter)) { continue }
        if ($null -ne $deviceId -and $removable.ContainsKey((ConvertTo-MountKey $deviceId))) { continue }
        $mountPoint = $letter
        if ($null -eq $mountPoint) { $mountPoint = $deviceId }
        if ($null -eq $mountPoint) { continue }
        $volumeType = 'Data'
        if ($typeNumber -eq 0) {
            $volumeType = 'OperatingSystem'
        } elseif ($null -eq $typeNumber -and $null -ne $letter -and $letter -eq (ConvertTo-MountKey $env:SystemDrive)) {
            $volumeType = 'OperatingSystem'
        }
        @{ cim = $cim; mountPoint = $mountPoint; driveLetter = $letter; deviceId = $deviceId; volumeType = $volumeType }
    }
}

function Get-EncryptableVolume {
    # The volume with this mount point (drive letter or volume GUID path), or $null.
    param([string]$MountPoint, $Volumes)
    $wanted = ConvertTo-MountKey $MountPoint
    if ($wanted -eq '') { return $null }
    if ($null -eq $Volumes) { $Volumes = @(Get-EncryptableVolumes) }
    foreach ($volume in $Volumes) {
        if ((ConvertTo-MountKey $volume.mountPoint) -eq $wanted) { return $volume }
        if ($null -ne $volume.deviceId -and (ConvertTo-MountKey $volume.deviceId) -eq $wanted) { return $volume }
    }
    return $null
}

function New-ManageBdeVolume {
    # A volume known only by its mount point, for the manage-bde fallback.
    param([string]$MountPoint)
    $mount = ConvertTo-MountPoint $MountPoint
    $volumeType = 'Data'
    if ((ConvertTo-MountKey $mount) -eq (ConvertTo-MountKey $env:SystemDrive)) { $volumeType = 'OperatingSystem' }
    $letter = $null
    if ($mount -match '^[A-Z]:$') { $letter = $mount }
    return @{ cim = $null; mountPoint = $mount; driveLetter = $letter; deviceId = $null; volumeType = $volumeType }
}

function Get-JobVolume {
    # The volume a job or a password request names, read fresh. Without Win32_EncryptableVolume
    # only the steps that manage-bde can do (-AllowManageBde) go on.
    param([string]$MountPoint, [switch]$AllowManageBde, $Volumes)
    try {
        $volume = Get-EncryptableVolume -MountPoint $MountPoint -Volumes $Volumes
    } catch {
        if ($AllowManageBde -and $script:HasManageBde) { return (New-ManageBdeVolume -MountPoint $MountPoint) }
        throw ('Win32_EncryptableVolume cannot be read on this device ({0}); this job needs it' -f $_.Exception.Message)
    }
    if ($null -eq $volume) { throw ('volume {0} not found on this device' -f $MountPoint) }
    return $volume
}

function Invoke-VolumeMethod {
    # Calls a Win32_EncryptableVolume method. ReturnValue 0 is success; anything else throws with
    # the HRESULT in hex, unless -AllowFailure (the caller then reads ReturnValue itself).
    param($Volume, [string]$Method, [hashtable]$Arguments, [switch]$AllowFailure)
    if ($null -eq $Volume.cim) {
        throw ('{0} needs Win32_EncryptableVolume, which could not be read for {1}' -f $Method, $Volume.mountPoint)
    }
    $call = @{ InputObject = $Volume.cim; MethodName = $Method; ErrorAction = 'Stop' }
    if ($null -ne $Arguments -and $Arguments.Count -gt 0) { $call['Arguments'] = $Arguments }
    try {
        $result = Invoke-CimMethod @call
    } catch {
        throw ('{0} on {1} failed: {2}' -f $Method, $Volume.mountPoint, (Get-ExceptionText $_.Exception))
    }
    $code = [long]0
    if ($null -ne $result -and $null -ne $result.ReturnValue) { $code = [long]$result.ReturnValue }
    if ($code -ne 0 -and -not $AllowFailure) {
        throw ('{0} on {1} returned {2}' -f $Method, $Volume.mountPoint, (Format-HResult $code))
    }
    return $result
}

function Test-MethodSucceeded {
    # ReturnValue 0, read the same way as Invoke-VolumeMethod reads it.
    param($Result)
    if ($null -eq $Result) { return $false }
    if ($null -eq $Result.ReturnValue) { return $true }
    return ([long]$Result.ReturnValue -eq 0)
}

function Get-VolumeState {
    # @{ lock; conversion; percentage; protection; method } as numbers ($null when unknown). A
    # locked volume has no conversion status or percentage (Windows cannot tell).
    param($Volume)
    $state = @{ lock = $null; conversion = $null; percentage = $null; protection = $null; method = $null }
    $lock = Invoke-VolumeMethod -Volume $Volume -Method 'GetLockStatus'
    $state.lock = [int]$lock.LockStatus
    $protection = Invoke-VolumeMethod -Volume $Volume -Method 'GetProtectionStatus'
    $state.protection = [int]$protection.ProtectionStatus
    $locked = ($state.lock -eq 1)
    if (-not $locked) {
        $conversion = $null
        $scale = 10.0
        try {
            $conversion = Invoke-VolumeMethod -Volume $Volume -Method 'GetConversionStatus' -Arguments @{ PrecisionFactor = [uint32]1 }
        } catch {
            # Windows 7 has no PrecisionFactor: whole percents.
            $conversion = Invoke-VolumeMethod -Volume $Volume -Method 'GetConversionStatus'
            $scale = 1.0
        }
        $state.conversion = [int]$conversion.ConversionStatus
        $state.percentage = [math]::Round([double]$conversion.EncryptionPercentage / $scale, 1)
    }
    $method = Invoke-VolumeMethod -Volume $Volume -Method 'GetEncryptionMethod' -AllowFailure:$locked
    if (Test-MethodSucceeded $method) { $state.method = [int]$method.EncryptionMethod }
    return $state
}

function Assert-VolumeUnlocked {
    # Jobs refuse locked volumes: their passwords cannot be read, and nothing on them may change.
    param($Volume)
    if ($null -eq $Volume.cim) { return }
    $lock = Invoke-VolumeMethod -Volume $Volume -Method 'GetLockStatus'
    if ([int]$lock.LockStatus -eq 1) { throw ('volume {0} is locked; unlock it first' -f $Volume.mountPoint) }
}

function Get-VolumeProtectors {
    # The key protectors of a volume as @{ id = '{GUID}'; type = name; typeNumber }, no passwords.
    # Throws when they cannot be read.
    param($Volume)
    $list = Invoke-VolumeMethod -Volume $Volume -Method 'GetKeyProtectors'
    foreach ($id in @($list.VolumeKeyProtectorID)) {
        if ([string]::IsNullOrEmpty([string]$id)) { continue }
        $type = Invoke-VolumeMethod -Volume $Volume -Method 'GetKeyProtectorType' -Arguments @{ VolumeKeyProtectorID = [string]$id }
        $typeNumber = [int]$type.KeyProtectorType
        @{ id = [string]$id; type = (Get-EnumName $script:KeyProtectorTypeNames $typeNumber); typeNumber = $typeNumber }
    }
}

function Find-VolumeProtector {
    # The protector with this ID (any brace or case spelling) among $Protectors, or $null.
    param($Protectors, [string]$ProtectorId)
    $wanted = Get-NormalizedId $ProtectorId
    foreach ($protector in $Protectors) {
        if ((Get-NormalizedId $protector.id) -eq $wanted) { return $protector }
    }
    return $null
}

function Test-ProtectorPresent {
    # Re-reads the volume: is this protector still on it?
    param($Volume, [string]$ProtectorId)
    return ($null -ne (Find-VolumeProtector -Protectors @(Get-VolumeProtectors -Volume $Volume) -ProtectorId $ProtectorId))
}

function Get-ProtectorPassword {
    # The recovery password of one protector. Through GetKeyProtectorNumericalPassword, or in the
    # manage-bde fallback through "manage-bde -protectors -get <volume> -id <ID>" read into a
    # string. Throws when it cannot be read. The password never goes to a cmdlet or an output.
    param($Volume, [string]$ProtectorId)
    if ($null -ne $Volume.cim) {
        $result = Invoke-VolumeMethod -Volume $Volume -Method 'GetKeyProtectorNumericalPassword' -Arguments @{ VolumeKeyProtectorID = $ProtectorId }
        $password = [string]$result.NumericalPassword
        if (-not [regex]::IsMatch($password, '^' + $PasswordPattern + '$')) {
            throw ('GetKeyProtectorNumericalPassword returned no recovery password for {0} on {1}' -f $ProtectorId, $Volume.mountPoint)
        }
        return $password
    }
    $braced = '{' + (Get-NormalizedId $ProtectorId) + '}'
    $native = Invoke-NativeCommand -FilePath $script:ManageBdePath -Arguments @('-protectors', '-get', $Volume.mountPoint, '-id', $braced)
    $found = [regex]::Matches($native.text, $PasswordPattern)
    if ($native.exitCode -ne 0 -or $found.Count -ne 1) {
        throw ('manage-bde could not read protector {0} on {1} (exit {2})' -f $braced, $Volume.mountPoint, $native.exitCode)
    }
    return $found[0].Value
}

function Add-RecoveryPasswordProtector {
    # Adds a recovery password that Windows generates (no password argument) and returns its ID,
    # identified by comparing the protector IDs before and after: exactly one must be new.
    param($Volume)
    $before = @{}
    foreach ($protector in @(Get-VolumeProtectors -Volume $Volume)) { $before[(Get-NormalizedId $protector.id)] = $true }
    $null = Invoke-VolumeMethod -Volume $Volume -Method 'ProtectKeyWithNumericalPassword'
    $added = @()
    foreach ($protector in @(Get-VolumeProtectors -Volume $Volume)) {
        if (-not $before.ContainsKey((Get-NormalizedId $protector.id))) { $added += $protector }
    }
    if ($added.Count -ne 1 -or $added[0].type -ne 'RecoveryPassword') {
        throw ('could not identify the new recovery password protector on {0} ({1} new protectors); nothing was removed' -f $Volume.mountPoint, $added.Count)
    }
    Write-AgentLog ('{0}: added recovery password protector {1}.' -f $Volume.mountPoint, $added[0].id)
    return $added[0].id
}

function Remove-Protector {
    # Deletes one protector, and only a recovery password: the type is read again right before.
    param($Volume, [string]$ProtectorId)
    $type = Invoke-VolumeMethod -Volume $Volume -Method 'GetKeyProtectorType' -Arguments @{ VolumeKeyProtectorID = $ProtectorId }
    if ([int]$type.KeyProtectorType -ne 3) {
        throw ('protector {0} on {1} is a {2} protector, not a recovery password; it is never removed' -f $ProtectorId, $Volume.mountPoint, (Get-EnumName $script:KeyProtectorTypeNames $type.KeyProtectorType))
    }
    $null = Invoke-VolumeMethod -Volume $Volume -Method 'DeleteKeyProtector' -Arguments @{ VolumeKeyProtectorID = $ProtectorId }
    Write-AgentLog ('{0}: removed recovery password protector {1}.' -f $Volume.mountPoint, $ProtectorId)
}

function ConvertTo-VolumePayload {
    # One volume as the check-in sends it. A recovery password is read only to compute its
    # fingerprint. Throws when the volume or its protectors cannot be read: the caller leaves the
    # volume out rather than send it with a partial protector list.
    param($Volume, [byte[]]$SaltKey)
    $state = Get-VolumeState -Volume $Volume
    $protectors = [System.Collections.Generic.List[object]]::new()
    foreach ($protector in @(Get-VolumeProtectors -Volume $Volume)) {
        if (-not [regex]::IsMatch($protector.id, $GuidPattern)) {
            # The server accepts GUIDs only (some hardware-encrypted drives report the ID
            # "BitLocker"); one such protector must not make every check-in fail.
            Write-AgentLog ('{0}: protector with ID "{1}" ({2}) is not reported: its ID is not a GUID.' -f $Volume.mountPoint, $protector.id, $protector.type) 'WARN'
            continue
        }
        $item = [ordered]@{ id = $protector.id; type = $protector.type }
        if ($protector.type -eq 'RecoveryPassword' -and $state.lock -ne 1) {
            try {
                $password = Get-ProtectorPassword -Volume $Volume -ProtectorId $protector.id
                $fingerprint = Get-PasswordFingerprint -Password $password -Key $SaltKey
                $password = $null
                if ($fingerprint) { $item['fingerprint'] = $fingerprint }
            } catch {
                Write-AgentLog ('{0}: the password of {1} cannot be read, sent without fingerprint: {2}' -f $Volume.mountPoint, $protector.id, $_.Exception.Message) 'WARN'
            }
        }
        [void]$protectors.Add($item)
    }
    return [ordered]@{
        mountPoint           = $Volume.mountPoint
        volumeType           = $Volume.volumeType
        volumeStatus         = (Get-EnumName $script:ConversionStatusNames $state.conversion)
        protectionStatus     = (Get-EnumName $script:ProtectionStatusNames $state.protection)
        lockStatus           = (Get-EnumName $script:LockStatusNames $state.lock)
        encryptionMethod     = (Get-EnumName $script:EncryptionMethodNames $state.method)
        encryptionPercentage = $state.percentage
        keyProtectors        = $protectors
    }
}

# ==================================================================================================
# manage-bde fallback (M1)
# ==================================================================================================

function Split-ManageBdeStatus {
    # The preamble and the volume sections of "manage-bde -status", found by the structural
    # header patterns: @{ preamble = text; sections = list of @{ mount; text } }.
    param([string]$Text)
    $preamble = [System.Text.StringBuilder]::new()
    $sections = [System.Collections.Generic.List[object]]::new()
    $current = $null
    foreach ($line in ($Text -split "`r?`n")) {
        $mount = $null
        $letter = [regex]::Match($line, $script:ManageBdeLetterHeader)
        if ($letter.Success) {
            $mount = $letter.Groups[1].Value.ToUpperInvariant() + ':'
        } else {
            $guidPath = [regex]::Match($line, $script:ManageBdeGuidHeader)
            if ($guidPath.Success) { $mount = ConvertTo-MountPoint $guidPath.Groups[1].Value }
        }
        if ($null -ne $mount) {
            $current = @{ mount = $mount; text = [System.Text.StringBuilder]::new() }
            [void]$sections.Add($current)
        }
        if ($null -eq $current) {
            [void]$preamble.AppendLine($line)
        } else {
            [void]$current.text.AppendLine($line)
        }
    }
    return @{ preamble = $preamble.ToString(); sections = $sections }
}

function Test-ManageBdeUnencrypted {
    # True when a -status section shows 0 % encrypted ("Percentage Encrypted: 0.0%",
    # "Verschluesselt (Prozent): 0,0 %"), judged by the value alone.
    param([string]$SectionText)
    return [regex]::IsMatch($SectionText, '(?m)^[^\r\n:]+:\s*0(?:[.,]0+)?\s*%\s*$')
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
    # The text of "manage-bde -status" and of "manage-bde -protectors -get" for every fixed and
    # operating-system volume (drive letters and \\?\Volume{...}\ paths), passwords masked.
    # All or nothing: if the protectors of any volume cannot be read, the run ends with exit 3 and
    # sends no volume report, because the server would take the missing protectors as removed.
    # The one exception is a volume with 0 % encrypted whose protector listing fails without
    # listing a protector: manage-bde reports "no key protectors" on such a volume as an error.
    param([byte[]]$SaltKey)
    $status = Invoke-NativeCommand -FilePath $script:ManageBdePath -Arguments @('-status')
    if ($status.exitCode -ne 0 -or [string]::IsNullOrWhiteSpace($status.text)) {
        Write-AgentLog ('manage-bde -status failed (exit {0}): {1}' -f $status.exitCode, $status.text) 'WARN'
        return $null
    }
    $removable = Get-RemovableVolumeIds
    $split = Split-ManageBdeStatus -Text $status.text
    $statusText = [System.Text.StringBuilder]::new()
    [void]$statusText.Append($split.preamble)
    $protectorsText = [System.Text.StringBuilder]::new()
    foreach ($section in $split.sections) {
        if ($removable.ContainsKey((ConvertTo-MountKey $section.mount))) { continue }
        $sectionText = $section.text.ToString()
        [void]$statusText.Append($sectionText)
        $protectors = Invoke-NativeCommand -FilePath $script:ManageBdePath -Arguments @('-protectors', '-get', $section.mount)
        if ($protectors.exitCode -ne 0) {
            $listsProtector = [regex]::IsMatch($protectors.text, '\{' + $GuidPattern + '\}')
            if (-not $listsProtector -and (Test-ManageBdeUnencrypted -SectionText $sectionText)) {
                Write-AgentLog ('manage-bde -protectors -get {0}: exit {1} on a volume that is not encrypted (no key protectors).' -f $section.mount, $protectors.exitCode) 'DEBUG'
            } else {
                Stop-AgentRun 3 ('manage-bde -protectors -get {0} failed (exit {1}): no volume report was sent, so that the server does not take the protectors it could not see as removed. Repair WMI (Win32_EncryptableVolume; winmgmt /verifyrepository) or check manage-bde -protectors -get {0} by hand.' -f $section.mount, $protectors.exitCode)
            }
        }
        [void]$protectorsText.AppendLine($protectors.text)
        [void]$protectorsText.AppendLine()
    }
    $maskedStatus = Protect-ManageBdeText -Text $statusText.ToString() -SaltKey $SaltKey
    $maskedProtectors = Protect-ManageBdeText -Text $protectorsText.ToString() -SaltKey $SaltKey
    if ($null -eq $maskedStatus -or $null -eq $maskedProtectors) {
        Write-AgentLog 'manage-bde output still looked like it held a recovery password after masking; not sent.' 'ERROR'
        return $null
    }
    return [ordered]@{ status = $maskedStatus; protectors = $maskedProtectors }
}

function Get-VolumeReport {
    # @{ volumes = list; manageBde = $null or @{status; protectors}; source = text; skipped = list }
    # L4: each volume is read on its own; one that fails is left out (and logged) while the
    # others are reported. The server leaves the keys of a volume that is not reported alone.
    param([byte[]]$SaltKey)
    $report = @{
        volumes   = [System.Collections.Generic.List[object]]::new()
        manageBde = $null
        source    = ''
        skipped   = [System.Collections.Generic.List[string]]::new()
    }
    $volumes = $null
    try {
        $volumes = @(Get-EncryptableVolumes)
    } catch {
        Write-AgentLog ('Win32_EncryptableVolume cannot be read, trying manage-bde: ' + (Get-ExceptionText $_.Exception)) 'WARN'
    }
    if ($null -ne $volumes) {
        foreach ($volume in $volumes) {
            try {
                [void]$report.volumes.Add((ConvertTo-VolumePayload -Volume $volume -SaltKey $SaltKey))
            } catch {
                [void]$report.skipped.Add($volume.mountPoint)
                Add-Summary ('Volume {0} could not be read and was left out of this report: {1}' -f $volume.mountPoint, (Get-ExceptionText $_.Exception)) 'WARN'
            }
        }
        if ($volumes.Count -eq 0 -or $report.volumes.Count -gt 0) {
            $report.source = 'Win32_EncryptableVolume'
            return $report
        }
        Write-AgentLog 'No volume could be read through Win32_EncryptableVolume; trying manage-bde.' 'WARN'
        $report.skipped.Clear()
    }
    $script:HasManageBde = [System.IO.File]::Exists($script:ManageBdePath)
    if ($script:HasManageBde) {
        $text = Get-ManageBdeReport -SaltKey $SaltKey
        if ($null -ne $text) {
            $report.manageBde = $text
            $report.source = 'manage-bde'
            return $report
        }
    }
    Stop-AgentRun 3 'Neither Win32_EncryptableVolume nor manage-bde.exe could report the volumes of this device (on Windows Server, install the BitLocker feature).'
}

# ==================================================================================================
# Events
# ==================================================================================================

function Get-VolumeNameMap {
    # Volume GUID (upper case, no braces) -> mount point ("C:", or the \\?\Volume{...}\ path of a
    # volume without a letter), to turn the volume paths in events into drive letters.
    $map = @{}
    try {
        foreach ($volume in @(Get-CimInstance -ClassName Win32_Volume -ErrorAction Stop)) {
            if ($null -eq $volume -or -not $volume.DeviceID) { continue }
            $guid = [regex]::Match([string]$volume.DeviceID, $GuidPattern)
            if (-not $guid.Success) { continue }
            $mount = ConvertTo-MountPoint $volume.DeviceID
            if ($volume.DriveLetter) { $mount = ConvertTo-MountPoint $volume.DriveLetter }
            $map[$guid.Value.ToUpperInvariant()] = $mount
        }
    } catch {
        Write-AgentLog ('Win32_Volume failed, event volumes stay as Windows wrote them: ' + $_.Exception.Message) 'DEBUG'
    }
    return $map
}

function ConvertTo-EventVolume {
    # M11: the volume of an event from its candidate field values, preferring a drive letter: a
    # value like "C:" first, then a volume path or GUID that Win32_Volume knows, then a volume GUID
    # path as it is. Anything else (lengths, empty fields) is not a volume.
    param([string[]]$Values, [hashtable]$VolumeNames)
    foreach ($value in $Values) {
        if ($value -match '^[A-Za-z]:\\?$') { return (ConvertTo-MountPoint $value) }
    }
    foreach ($value in $Values) {
        $guid = [regex]::Match($value, $GuidPattern)
        if ($guid.Success -and $VolumeNames.ContainsKey($guid.Value.ToUpperInvariant())) {
            return $VolumeNames[$guid.Value.ToUpperInvariant()]
        }
    }
    foreach ($value in $Values) {
        if ($value -match '^\\\\\?\\Volume\{') { return (ConvertTo-MountPoint $value) }
    }
    return $null
}

function ConvertTo-EventPayload {
    param($Record, [datetime]$TimeUtc, [hashtable]$VolumeNames)
    $fields = [ordered]@{}
    try {
        $xml = [xml]($Record.ToXml())
        $nodes = $xml.SelectNodes("//*[local-name()='EventData' or local-name()='UserData']//*[not(*)]")
        foreach ($node in $nodes) {
            $name = $node.GetAttribute('Name')
            if ([string]::IsNullOrEmpty($name)) { $name = $node.LocalName }
            $value = ([string]$node.InnerText).Trim()
            if ($value.Length -gt 0 -and -not $fields.Contains($name)) { $fields[$name] = $value }
        }
    } catch {
        Write-AgentLog ('Event {0}: cannot read its XML: {1}' -f $Record.Id, $_.Exception.Message) 'DEBUG'
    }
    $names = $script:DefaultEventFields
    if ($script:EventFields.ContainsKey([int]$Record.Id)) { $names = $script:EventFields[[int]$Record.Id] }

    # The protector: the event's own field first, then any field named like a protector.
    $protectorId = $null
    $candidates = @()
    foreach ($name in $names.protector) { if ($fields.Contains($name)) { $candidates += $fields[$name] } }
    foreach ($name in @($fields.Keys)) { if ($name -match 'protector') { $candidates += $fields[$name] } }
    foreach ($candidate in $candidates) {
        $guid = [regex]::Match([string]$candidate, $GuidPattern)
        if ($guid.Success) {
            $protectorId = '{' + $guid.Value.ToUpperInvariant() + '}'
            break
        }
    }
    if ($null -eq $protectorId) {
        # Last resort, the (English) message text: "Protector GUID: {...}" / "Protector ID: {...}".
        $message = ''
        try { $message = [string]$Record.Message } catch { $message = '' }
        $guid = [regex]::Match($message, '(?i)protector[^\r\n{]*\{?(' + $GuidPattern + ')')
        if ($guid.Success) { $protectorId = '{' + $guid.Groups[1].Value.ToUpperInvariant() + '}' }
    }

    # The volume: the event's own fields, then any field named like a volume.
    $values = @()
    foreach ($name in $names.volume) { if ($fields.Contains($name)) { $values += [string]$fields[$name] } }
    foreach ($name in @($fields.Keys)) { if ($name -match 'volume' -and $names.volume -notcontains $name) { $values += [string]$fields[$name] } }
    $volume = ConvertTo-EventVolume -Values $values -VolumeNames $VolumeNames
    if ($null -ne $volume -and $volume.Length -gt 260) { $volume = $volume.Substring(0, 260) }
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
        # Microsoft-Windows-BitLocker-API, "BitLocker Management" channel: 845/846/847 Entra backup
        # done/failed, 784/785/783 AD backup done/failed/already there, 775/776 protector
        # created/removed, 773/774 suspended/resumed.
        @{ LogName = 'Microsoft-Windows-BitLocker/BitLocker Management'; Id = @(845, 846, 847, 784, 785, 783, 775, 776, 773, 774); StartTime = $start },
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
    $volumeNames = @{}
    if ($selected.Count -gt 0) { $volumeNames = Get-VolumeNameMap }
    foreach ($record in $selected) {
        $timeUtc = $record.TimeCreated.ToUniversalTime()
        [void]$items.Add((ConvertTo-EventPayload -Record $record -TimeUtc $timeUtc -VolumeNames $volumeNames))
        if ($null -eq $newest -or $timeUtc -gt $newest) { $newest = $timeUtc }
    }
    return @{ items = $items; newest = $newest }
}

# ==================================================================================================
# Protocol requests
# ==================================================================================================

function Invoke-Enrollment {
    param($Identity, $Entra, $Token, $PreviousState, [string]$Reason)
    if ($null -eq $Token -or [string]::IsNullOrWhiteSpace([string]$Token.value)) {
        Stop-AgentRun 2 ('The device must enroll ({0}) but no enrollment token was found: pass -EnrollmentTokenFile <file>, set KEYWARDEN_ENROLLMENT_TOKEN, or let the installer write {1}.' -f $Reason, $script:OneShotTokenFile)
    }
    if ([string]$Token.value -notmatch '^kwe_[A-Za-z0-9_-]+$') {
        Stop-AgentRun 2 ('The enrollment token from {0} does not look like a Keywarden enrollment token (kwe_...).' -f $Token.source)
    }
    $body = [ordered]@{
        enrollmentToken = [string]$Token.value
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
    Write-AgentLog ('Enrolling {0} (serial {1}, Entra device {2}) with the token from {3}.' -f $Identity.hostname, $Identity.serialNumber, $Entra.deviceId, $Token.source)
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
    $state = New-AgentState
    $state.deviceId = $deviceId
    $state.credential = $credential
    $state.fingerprintSalt = $salt
    $state.serverUrl = $script:BaseUrl
    $state.enrolledAt = Format-UtcTime (Get-Date)
    if ($null -ne $script:StateOnDisk) {
        # Sequence numbers keep increasing across re-enrollment (the server may keep its counter).
        $state.lastSeq = [long]$script:StateOnDisk.lastSeq
        $state.lastEventTime = $script:StateOnDisk.lastEventTime
    }
    $interval = 0
    if ([int]::TryParse([string]$response.checkinIntervalSeconds, [ref]$interval) -and $interval -gt 0) { $state.nextCheckinSeconds = $interval }
    $script:State = $state
    Save-AgentState
    Add-Summary ('Enrolled with {0} as device {1}.' -f $script:BaseUrl, $deviceId)
    # H2: the token is spent once the credential is saved.
    Remove-EnrollmentTokenFiles -Token $Token
    if ($response.pendingApproval -eq $true) {
        Write-AgentLog 'The server already knows this machine as another device: until an administrator approves the link (keywarden agent approve), reports go to a device record of their own.' 'WARN'
        Add-Summary 'Waiting for an administrator to approve the link to the existing device.'
    }
}

function Send-Checkin {
    param($Device, $VolumeReport, $EventReport, $JobResults)
    $body = [ordered]@{
        seq          = [long]0
        sentAt       = ''
        agentVersion = $AgentVersion
        device       = $Device
        volumes      = $VolumeReport.volumes
        manageBde    = $VolumeReport.manageBde
        events       = $EventReport.items
        jobResults   = $JobResults
    }
    $response = Invoke-SequencedRequest -Path '/api/v1/agent/checkin' -Body $body -What 'check-in'
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
    # Uploads recovery passwords, at most 32 per request (the server's limit, M7); returns
    # @{ <normalized protector ID> = @{ status; reason } }. The JSON is built by this script, so
    # the passwords never pass through a cmdlet.
    param($Keys, $JobId)
    $jobIdValue = $null
    if (-not [string]::IsNullOrEmpty([string]$JobId)) { $jobIdValue = [string]$JobId }
    $all = @($Keys)
    $statuses = @{}
    for ($start = 0; $start -lt $all.Count; $start += 32) {
        $batch = [System.Collections.Generic.List[object]]::new()
        $end = [math]::Min($start + 32, $all.Count)
        for ($index = $start; $index -lt $end; $index++) { [void]$batch.Add($all[$index]) }
        $body = [ordered]@{
            seq    = [long]0
            sentAt = ''
            jobId  = $jobIdValue
            keys   = $batch
        }
        $response = Invoke-SequencedRequest -Path '/api/v1/agent/keys' -Body $body -What 'key upload'
        $body = $null
        foreach ($entry in @(Get-ResponseItems $response.stored)) {
            $statuses[(Get-NormalizedId $entry.protectorId)] = @{
                status = [string]$entry.status
                reason = ConvertTo-CleanString $entry.reason
            }
        }
    }
    foreach ($key in $all) {
        $entry = $statuses[(Get-NormalizedId $key.protectorId)]
        if ($null -eq $entry) {
            Write-AgentLog ('Key {0} on {1}: the server gave no status.' -f $key.protectorId, $key.mountPoint) 'WARN'
        } else {
            $level = 'INFO'
            if (-not (Test-Escrowed $entry.status)) { $level = 'WARN' }
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
    param($Volume, [string]$ProtectorId, [string]$Password)
    return [ordered]@{
        mountPoint       = $Volume.mountPoint
        protectorId      = $ProtectorId
        recoveryPassword = $Password
        volumeType       = $Volume.volumeType
    }
}

function Get-ProtectorKey {
    # The key item (mountPoint, protectorId, recoveryPassword, volumeType) of one
    # recovery-password protector; throws when it cannot be read. $Volumes and $ProtectorCache
    # (mount point -> protectors) let Send-RequestedPasswords read each volume once.
    param([string]$MountPoint, [string]$ProtectorId, $Volumes, [hashtable]$ProtectorCache)
    $volume = Get-JobVolume -MountPoint $MountPoint -AllowManageBde -Volumes $Volumes
    if ($null -eq $volume.cim) {
        # manage-bde fallback: the output for one protector ID holds exactly one password.
        $braced = '{' + (Get-NormalizedId $ProtectorId) + '}'
        return (New-KeyItem -Volume $volume -ProtectorId $braced -Password (Get-ProtectorPassword -Volume $volume -ProtectorId $braced))
    }
    $cacheKey = ConvertTo-MountKey $volume.mountPoint
    $protectors = $null
    if ($null -ne $ProtectorCache -and $ProtectorCache.ContainsKey($cacheKey)) { $protectors = $ProtectorCache[$cacheKey] }
    if ($null -eq $protectors) {
        Assert-VolumeUnlocked -Volume $volume
        $protectors = @(Get-VolumeProtectors -Volume $volume)
        if ($null -ne $ProtectorCache) { $ProtectorCache[$cacheKey] = $protectors }
    }
    $protector = Find-VolumeProtector -Protectors $protectors -ProtectorId $ProtectorId
    if ($null -eq $protector) { throw ('recovery password protector {0} not found on {1}' -f $ProtectorId, $volume.mountPoint) }
    if ($protector.type -ne 'RecoveryPassword') {
        throw ('protector {0} on {1} is a {2} protector, not a recovery password' -f $ProtectorId, $volume.mountPoint, $protector.type)
    }
    return (New-KeyItem -Volume $volume -ProtectorId $protector.id -Password (Get-ProtectorPassword -Volume $volume -ProtectorId $protector.id))
}

function Send-RequestedPasswords {
    # requestPasswords: the protectors whose password the server does not hold (or holds with
    # another fingerprint), at most 128 per answer. Returns how many were escrowed.
    param($Requests)
    $pending = @(Get-ResponseItems $Requests)
    if ($pending.Count -eq 0) { return 0 }
    $volumes = $null
    try { $volumes = @(Get-EncryptableVolumes) } catch { $volumes = $null }
    $cache = @{}
    $keys = [System.Collections.Generic.List[object]]::new()
    foreach ($request in $pending) {
        try {
            [void]$keys.Add((Get-ProtectorKey -MountPoint ([string]$request.mountPoint) -ProtectorId ([string]$request.protectorId) -Volumes $volumes -ProtectorCache $cache))
        } catch {
            Write-AgentLog ('Requested password {0} on {1}: {2}' -f $request.protectorId, $request.mountPoint, $_.Exception.Message) 'WARN'
        }
    }
    if ($keys.Count -eq 0) { return 0 }
    $statuses = Send-Keys -Keys $keys -JobId $null
    $keys.Clear()
    $escrowed = 0
    foreach ($entry in $statuses.Values) {
        if (Test-Escrowed $entry.status) { $escrowed++ }
    }
    return $escrowed
}

# ==================================================================================================
# Jobs
# Every job reads its volume fresh, refuses a locked volume and is idempotent: run again after a
# failure or a kill, it continues where the last attempt stopped. Only recovery-password
# protectors are ever removed. Uploads carry the job's ID; "escrowed" means the server answered
# stored or duplicate.
# ==================================================================================================

function Get-EscrowedRecoveryPassword {
    # The escrow-first step of rotate, add-recovery-password, resume-protection and
    # enable-encryption: a recovery password of this volume that the server holds.
    #   1. Spare: each recovery password of the volume (except those in $Exclude) is uploaded with
    #      the job's ID; the first one the server answers stored/duplicate for is the result.
    #   2. Otherwise (not with -SpareOnly) a new one is added (ProtectKeyWithNumericalPassword,
    #      identified by the before/after ID diff) and uploaded; not escrowed -> throws.
    # Returns @{ protectorId; added; text; tried = IDs uploaded in step 1 }; protectorId is $null
    # only with -SpareOnly when no spare is escrowed.
    param($Volume, [string]$JobId, [hashtable]$Exclude, [switch]$SpareOnly)
    $tried = @{}
    foreach ($protector in @(Get-VolumeProtectors -Volume $Volume)) {
        if ($protector.type -ne 'RecoveryPassword') { continue }
        $id = Get-NormalizedId $protector.id
        if ($null -ne $Exclude -and $Exclude.ContainsKey($id)) { continue }
        $tried[$id] = $true
        $password = $null
        try {
            $password = Get-ProtectorPassword -Volume $Volume -ProtectorId $protector.id
        } catch {
            Write-AgentLog ('{0}: the password of {1} cannot be read: {2}' -f $Volume.mountPoint, $protector.id, $_.Exception.Message) 'WARN'
            continue
        }
        $upload = Get-KeyUploadStatus -Key (New-KeyItem -Volume $Volume -ProtectorId $protector.id -Password $password) -JobId $JobId
        $password = $null
        if (Test-Escrowed $upload.status) {
            Write-AgentLog ('{0}: recovery password {1} is escrowed ({2}); using it.' -f $Volume.mountPoint, $protector.id, $upload.text)
            return @{ protectorId = $protector.id; added = $false; text = $upload.text; tried = $tried }
        }
        Write-AgentLog ('{0}: recovery password {1} is not escrowed ({2}).' -f $Volume.mountPoint, $protector.id, $upload.text) 'WARN'
    }
    if ($SpareOnly) { return @{ protectorId = $null; added = $false; text = $null; tried = $tried } }
    $newId = Add-RecoveryPasswordProtector -Volume $Volume
    $password = Get-ProtectorPassword -Volume $Volume -ProtectorId $newId
    $upload = Get-KeyUploadStatus -Key (New-KeyItem -Volume $Volume -ProtectorId $newId -Password $password) -JobId $JobId
    $password = $null
    if (-not (Test-Escrowed $upload.status)) {
        throw ('the server did not escrow the new recovery password {0} on {1} (status: {2}); nothing was removed' -f $newId, $Volume.mountPoint, $upload.text)
    }
    return @{ protectorId = $newId; added = $true; text = $upload.text; tried = $tried }
}

function Invoke-RotateJob {
    # Replaces a recovery password (protectorId), or every recovery password of the volume
    # (protectorId null):
    #   0. a protectorId that is not on the job's volume is looked for on every volume: found
    #      elsewhere (drive letters of data volumes change), the job moves to that volume (M2);
    #      on no volume, the job succeeds only if a recovery password of its volume is escrowed;
    #   1. spare: another recovery password of the volume that the server escrows is the new key;
    #   2. otherwise a new one is added and escrowed (not escrowed: fail, nothing removed);
    #   3. the volume is read again: only while the new key is still there are the replaced
    #      recovery passwords removed.
    param($Job, $Result)
    $oldId = Get-NormalizedId $Job.protectorId
    $replaceAll = ($oldId -eq '')
    try {
        $volume = Get-EncryptableVolume -MountPoint ([string]$Job.mountPoint)
    } catch {
        throw ('Win32_EncryptableVolume cannot be read on this device ({0}); rotation needs it' -f $_.Exception.Message)
    }
    $movedFrom = $null

    if (-not $replaceAll) {
        $onJobVolume = $false
        if ($null -ne $volume) {
            $onJobVolume = ($null -ne (Find-VolumeProtector -Protectors @(Get-VolumeProtectors -Volume $volume) -ProtectorId $oldId))
        }
        if (-not $onJobVolume) {
            # Throws when a volume cannot be read: "on no volume" must be certain.
            $elsewhere = Find-ProtectorMountPoint -ProtectorId ([string]$Job.protectorId)
            if ($null -ne $elsewhere) {
                $movedFrom = [string]$Job.mountPoint
                $volume = Get-EncryptableVolume -MountPoint $elsewhere
                Write-AgentLog ('Rotate: protector {0} is on {1}, not on {2}; rotating it there.' -f $Job.protectorId, $elsewhere, $movedFrom) 'WARN'
            } else {
                # Step 0: the old protector is on no volume (a previous run removed it but could
                # not report it, or someone else did).
                if ($null -eq $volume) {
                    throw ('recovery password protector {0} is on no volume of this device, and volume {1} does not exist' -f $Job.protectorId, $Job.mountPoint)
                }
                Assert-VolumeUnlocked -Volume $volume
                $spare = Get-EscrowedRecoveryPassword -Volume $volume -JobId $Job.id -SpareOnly
                if ($null -eq $spare.protectorId) {
                    throw ('recovery password protector {0} not found on any volume of this device, and no recovery password of {1} is escrowed' -f $Job.protectorId, $volume.mountPoint)
                }
                $Result.status = 'succeeded'
                $Result.newProtectorId = $spare.protectorId
                $Result.removedProtectorId = [string]$Job.protectorId
                $Result.detail = ('the old protector {0} is on no volume of this device (already removed); {1} on {2} is escrowed' -f $Job.protectorId, $spare.protectorId, $volume.mountPoint)
                return
            }
        }
    }
    if ($null -eq $volume) { throw ('volume {0} not found on this device' -f $Job.mountPoint) }
    $mountPoint = $volume.mountPoint
    Assert-VolumeUnlocked -Volume $volume

    # The recovery passwords this job replaces (normalized ID -> $true).
    $toReplace = @{}
    foreach ($protector in @(Get-VolumeProtectors -Volume $volume)) {
        $id = Get-NormalizedId $protector.id
        if (-not $replaceAll -and $id -eq $oldId -and $protector.type -ne 'RecoveryPassword') {
            throw ('protector {0} is a {1} protector, not a recovery password; refusing to rotate it' -f $Job.protectorId, $protector.type)
        }
        if ($protector.type -eq 'RecoveryPassword' -and ($replaceAll -or $id -eq $oldId)) { $toReplace[$id] = $true }
    }

    # Steps 1 and 2.
    $escrow = Get-EscrowedRecoveryPassword -Volume $volume -JobId $Job.id -Exclude $toReplace
    $newId = $escrow.protectorId

    # Step 3: re-read the volume; remove the replaced protectors only while the escrowed new one
    # is there.
    $newKey = Get-NormalizedId $newId
    $newStillThere = $false
    $removeIds = [System.Collections.Generic.List[string]]::new()
    foreach ($protector in @(Get-VolumeProtectors -Volume $volume)) {
        $id = Get-NormalizedId $protector.id
        if ($id -eq $newKey) {
            $newStillThere = $true
        } elseif ($toReplace.ContainsKey($id) -and $protector.type -eq 'RecoveryPassword') {
            [void]$removeIds.Add($protector.id)
        }
    }
    if (-not $newStillThere) {
        throw ('the escrowed protector {0} is no longer on {1}; nothing was removed' -f $newId, $mountPoint)
    }
    $removed = [System.Collections.Generic.List[string]]::new()
    foreach ($removeId in $removeIds) {
        try {
            Remove-Protector -Volume $volume -ProtectorId $removeId
        } catch {
            $done = 'none'
            if ($removed.Count -gt 0) { $done = ($removed -join ', ') }
            throw ('could not remove the old protector {0} from {1} ({2}); removed so far: {3}; new escrowed protector {4}' -f $removeId, $mountPoint, $_.Exception.Message, $done, $newId)
        }
        [void]$removed.Add($removeId)
    }
    $Result.status = 'succeeded'
    $Result.newProtectorId = $newId
    if ($removed.Count -gt 0) {
        # The protocol has one field; the detail lists every removed ID (L6).
        $Result.removedProtectorId = $removed[0]
    } elseif (-not $replaceAll) {
        # Gone between step 0 and step 3 (removed by someone else): it is not on the volume.
        $Result.removedProtectorId = [string]$Job.protectorId
    }
    if ($removed.Count -gt 0) {
        $Result.detail = ('recovery password rotated on {0}: new {1}, removed {2}' -f $mountPoint, $newId, ($removed -join ', '))
    } else {
        $Result.detail = ('recovery password added on {0}: new {1}, none to remove' -f $mountPoint, $newId)
    }
    if ($null -ne $movedFrom) { $Result.detail += (' (the protector was on {0}, not on {1})' -f $mountPoint, $movedFrom) }
}

function Invoke-BackupJob {
    # Uploads the named protector with the job's ID; succeeded only if escrowed (L10).
    param($Job, $Result)
    $key = Get-ProtectorKey -MountPoint ([string]$Job.mountPoint) -ProtectorId ([string]$Job.protectorId)
    $upload = Get-KeyUploadStatus -Key $key -JobId $Job.id
    $key = $null
    if (Test-Escrowed $upload.status) {
        $Result.status = 'succeeded'
        $Result.detail = ('escrowed: {0}' -f $upload.text)
    } else {
        $Result.status = 'failed'
        $Result.detail = ('the server answered {0}' -f $upload.text)
    }
}

function Invoke-ReEscrowJob {
    # Uploads the named protector, or with protectorId null every recovery password of the
    # volume, with the job's ID; succeeded only if all of them are escrowed.
    param($Job, $Result)
    if ($null -ne $Job.protectorId) {
        Invoke-BackupJob -Job $Job -Result $Result
        return
    }
    $volume = Get-JobVolume -MountPoint ([string]$Job.mountPoint)
    Assert-VolumeUnlocked -Volume $volume
    $keys = [System.Collections.Generic.List[object]]::new()
    foreach ($protector in @(Get-VolumeProtectors -Volume $volume)) {
        if ($protector.type -ne 'RecoveryPassword') { continue }
        [void]$keys.Add((New-KeyItem -Volume $volume -ProtectorId $protector.id -Password (Get-ProtectorPassword -Volume $volume -ProtectorId $protector.id)))
    }
    if ($keys.Count -eq 0) { throw ('{0} has no recovery password protector to escrow' -f $volume.mountPoint) }
    $ids = @()
    foreach ($key in $keys) { $ids += $key.protectorId }
    $statuses = Send-Keys -Keys $keys -JobId $Job.id
    $keys.Clear()
    $escrowed = @()
    $notEscrowed = @()
    foreach ($id in $ids) {
        $entry = $statuses[(Get-NormalizedId $id)]
        if ($null -ne $entry -and (Test-Escrowed $entry.status)) {
            $escrowed += ('{0} {1}' -f $id, $entry.status)
        } elseif ($null -ne $entry) {
            $notEscrowed += ('{0} {1} {2}' -f $id, $entry.status, $entry.reason).Trim()
        } else {
            $notEscrowed += ('{0} missing' -f $id)
        }
    }
    if ($notEscrowed.Count -eq 0) {
        $Result.status = 'succeeded'
        $Result.detail = ('escrowed {0} recovery password(s) of {1}: {2}' -f $escrowed.Count, $volume.mountPoint, ($escrowed -join ', '))
    } else {
        $Result.status = 'failed'
        $Result.detail = ('not escrowed on {0}: {1}' -f $volume.mountPoint, ($notEscrowed -join ', '))
    }
}

function Invoke-DirectoryBackupJob {
    # backup-to-ad (BackupRecoveryInformationToActiveDirectory) and backup-to-entra
    # (BackupRecoveryInformationToCloudDomain) for the named protector; manage-bde -adbackup /
    # -aadbackup when Win32_EncryptableVolume cannot be read.
    param($Job, $Result, [string]$Target)
    $volume = Get-JobVolume -MountPoint ([string]$Job.mountPoint) -AllowManageBde
    $wanted = Get-NormalizedId $Job.protectorId
    $targetName = 'Active Directory'
    if ($Target -ne 'ad') { $targetName = 'Microsoft Entra ID' }
    if ($null -ne $volume.cim) {
        Assert-VolumeUnlocked -Volume $volume
        $protector = Find-VolumeProtector -Protectors @(Get-VolumeProtectors -Volume $volume) -ProtectorId $wanted
        if ($null -eq $protector) { throw ('protector {0} not found on {1}' -f $Job.protectorId, $volume.mountPoint) }
        $method = 'BackupRecoveryInformationToActiveDirectory'
        if ($Target -ne 'ad') { $method = 'BackupRecoveryInformationToCloudDomain' }
        $backup = Invoke-VolumeMethod -Volume $volume -Method $method -Arguments @{ VolumeKeyProtectorID = $protector.id } -AllowFailure
        if (-not (Test-MethodSucceeded $backup)) {
            throw ('the backup of {0} on {1} to {2} failed: {3} returned {4}' -f $protector.id, $volume.mountPoint, $targetName, $method, (Format-HResult $backup.ReturnValue))
        }
    } else {
        $option = '-adbackup'
        if ($Target -ne 'ad') { $option = '-aadbackup' }
        $native = Invoke-NativeCommand -FilePath $script:ManageBdePath -Arguments @('-protectors', $option, $volume.mountPoint, '-id', ('{' + $wanted + '}'))
        if ($native.exitCode -ne 0) {
            $lastLine = ''
            foreach ($line in ($native.text -split "`r?`n")) { if ($line.Trim()) { $lastLine = $line.Trim() } }
            throw ('manage-bde {0} failed (exit {1}): {2}' -f $option, $native.exitCode, $lastLine)
        }
    }
    $Result.status = 'succeeded'
    $Result.detail = ('backed up to {0}' -f $targetName)
}

function Invoke-AddRecoveryPasswordJob {
    # A volume without an escrowed recovery password gets one: an existing one that uploads as
    # escrowed counts; otherwise one is added, escrowed and checked to be still there.
    param($Job, $Result)
    $volume = Get-JobVolume -MountPoint ([string]$Job.mountPoint)
    Assert-VolumeUnlocked -Volume $volume
    $escrow = Get-EscrowedRecoveryPassword -Volume $volume -JobId $Job.id
    if (-not $escrow.added) {
        $Result.status = 'succeeded'
        $Result.newProtectorId = $escrow.protectorId
        $Result.detail = ('{0} already has an escrowed recovery password ({1})' -f $volume.mountPoint, $escrow.protectorId)
        return
    }
    if (-not (Test-ProtectorPresent -Volume $volume -ProtectorId $escrow.protectorId)) {
        throw ('the new recovery password {0} is no longer on {1}' -f $escrow.protectorId, $volume.mountPoint)
    }
    $Result.status = 'succeeded'
    $Result.newProtectorId = $escrow.protectorId
    $Result.detail = ('recovery password {0} added to {1} and escrowed' -f $escrow.protectorId, $volume.mountPoint)
}

function Invoke-ResumeProtectionJob {
    # Turns protection back on (EnableKeyProtectors), after making sure the volume has an
    # escrowed recovery password (the add-recovery-password steps).
    param($Job, $Result)
    $volume = Get-JobVolume -MountPoint ([string]$Job.mountPoint)
    Assert-VolumeUnlocked -Volume $volume
    $escrow = Get-EscrowedRecoveryPassword -Volume $volume -JobId $Job.id
    if ($escrow.added -and -not (Test-ProtectorPresent -Volume $volume -ProtectorId $escrow.protectorId)) {
        throw ('the new recovery password {0} is no longer on {1}' -f $escrow.protectorId, $volume.mountPoint)
    }
    $Result.newProtectorId = $escrow.protectorId
    $state = Get-VolumeState -Volume $volume
    if ($state.protection -eq 1) {
        $Result.status = 'succeeded'
        $Result.detail = ('protection is already on for {0}; recovery password {1} is escrowed' -f $volume.mountPoint, $escrow.protectorId)
        return
    }
    $null = Invoke-VolumeMethod -Volume $volume -Method 'EnableKeyProtectors'
    $state = Get-VolumeState -Volume $volume
    if ($state.protection -ne 1) {
        throw ('protection of {0} is still {1} after EnableKeyProtectors ({2})' -f $volume.mountPoint, (Get-EnumName $script:ProtectionStatusNames $state.protection), (Get-EnumName $script:ConversionStatusNames $state.conversion))
    }
    $Result.status = 'succeeded'
    $Result.detail = ('protection turned on for {0}; recovery password {1} is escrowed' -f $volume.mountPoint, $escrow.protectorId)
}

function Enable-DataVolumeAutoUnlock {
    # A data volume opens at startup only with an auto-unlock key that the (encrypted)
    # operating-system drive keeps; without one the user would need the recovery password after
    # every restart. Adds an external key and enables auto-unlock with it, as manage-bde
    # -autounlock -enable does. Returns $true when it turned auto-unlock on.
    param($Volume)
    $check = Invoke-VolumeMethod -Volume $Volume -Method 'IsAutoUnlockEnabled' -AllowFailure
    if ((Test-MethodSucceeded $check) -and $check.IsAutoUnlockEnabled -eq $true) { return $false }
    $external = Invoke-VolumeMethod -Volume $Volume -Method 'ProtectKeyWithExternalKey'
    $externalId = [string]$external.VolumeKeyProtectorID
    $null = Invoke-VolumeMethod -Volume $Volume -Method 'EnableAutoUnlock' -Arguments @{ VolumeKeyProtectorID = $externalId }
    Write-AgentLog ('{0}: automatic unlocking turned on with external key {1}.' -f $Volume.mountPoint, $externalId)
    return $true
}

function Invoke-EnableEncryptionJob {
    # Turns BitLocker on, escrow first:
    #   1. fully encrypted, protection on and an escrowed recovery password: nothing to do;
    #   2. escrow: a spare or a new recovery password, stored/duplicate required;
    #   3. a data volume needs an encrypted, protected operating-system drive (auto-unlock); an
    #      operating-system volume needs a TPM protector (added when a ready TPM exists);
    #   4. the escrowed recovery password must still be on the volume;
    #   5. start encryption (FullyDecrypted), resume it (EncryptionSuspended) or turn protection
    #      on (encrypted or encrypting with protection off); a data volume gets auto-unlock.
    param($Job, $Result)
    $volume = Get-JobVolume -MountPoint ([string]$Job.mountPoint)
    Assert-VolumeUnlocked -Volume $volume
    $mountPoint = $volume.mountPoint
    $methodName = ConvertTo-CleanString $Job.encryptionMethod
    if ($methodName -eq 'default') { $methodName = $null }
    $methodNumber = $null
    if ($null -ne $methodName) {
        foreach ($name in @($script:EncryptMethodNumbers.Keys)) {
            if ($name -eq $methodName) {
                $methodName = $name
                $methodNumber = $script:EncryptMethodNumbers[$name]
            }
        }
        if ($null -eq $methodNumber) {
            throw ('unknown encryption method "{0}" (XtsAes128, XtsAes256, Aes128, Aes256, or null for the Windows default)' -f $methodName)
        }
    }
    $usedSpaceOnly = $true
    if ($null -ne $Job.usedSpaceOnly) { $usedSpaceOnly = [bool]$Job.usedSpaceOnly }

    # Step 1.
    $state = Get-VolumeState -Volume $volume
    $exclude = $null
    if ($state.conversion -eq 1 -and $state.protection -eq 1) {
        $spare = Get-EscrowedRecoveryPassword -Volume $volume -JobId $Job.id -SpareOnly
        if ($null -ne $spare.protectorId) {
            $Result.status = 'succeeded'
            $Result.newProtectorId = $spare.protectorId
            $Result.detail = ('already encrypted: {0} is fully encrypted with protection on; recovery password {1} is escrowed' -f $mountPoint, $spare.protectorId)
            return
        }
        # Those were just uploaded and are not escrowed: step 2 goes straight to a new one.
        $exclude = $spare.tried
    }

    # Step 2.
    $escrow = Get-EscrowedRecoveryPassword -Volume $volume -JobId $Job.id -Exclude $exclude
    $recoveryId = $escrow.protectorId

    # Step 3.
    if ($volume.volumeType -eq 'OperatingSystem') {
        $hasTpm = $false
        foreach ($protector in @(Get-VolumeProtectors -Volume $volume)) {
            if ($script:TpmProtectorTypes -contains $protector.type) { $hasTpm = $true }
        }
        if (-not $hasTpm) {
            $tpm = Get-TpmFacts
            if ($null -eq $tpm -or $tpm.present -ne $true -or $tpm.ready -ne $true) {
                throw ('no ready TPM: {0} cannot get a TPM protector, so encryption was not started; the recovery password {1} stays on it, escrowed' -f $mountPoint, $recoveryId)
            }
            $tpmProtector = Invoke-VolumeMethod -Volume $volume -Method 'ProtectKeyWithTPM'
            Write-AgentLog ('{0}: added TPM protector {1}.' -f $mountPoint, $tpmProtector.VolumeKeyProtectorID)
        }
    } else {
        $os = $null
        foreach ($candidate in @(Get-EncryptableVolumes)) {
            if ($candidate.volumeType -eq 'OperatingSystem') { $os = $candidate }
        }
        if ($null -eq $os) {
            throw ('encrypt the operating-system drive first: it was not found, and {0} can only unlock automatically from an encrypted operating-system drive' -f $mountPoint)
        }
        $osState = Get-VolumeState -Volume $os
        if ($osState.conversion -ne 1 -or $osState.protection -ne 1) {
            throw ('encrypt the operating-system drive first: {0} is {1} with protection {2}, and {3} can only unlock automatically from an encrypted, protected operating-system drive' -f $os.mountPoint, (Get-EnumName $script:ConversionStatusNames $osState.conversion), (Get-EnumName $script:ProtectionStatusNames $osState.protection), $mountPoint)
        }
    }

    # Step 4.
    if (-not (Test-ProtectorPresent -Volume $volume -ProtectorId $recoveryId)) {
        throw ('the escrowed recovery password {0} is no longer on {1}; encryption was not started' -f $recoveryId, $mountPoint)
    }

    # Step 5.
    $state = Get-VolumeState -Volume $volume
    $actions = [System.Collections.Generic.List[string]]::new()
    if ($state.conversion -eq 0) {
        $arguments = @{ EncryptionFlags = [uint32]0 }
        if ($usedSpaceOnly) { $arguments['EncryptionFlags'] = [uint32]1 }
        if ($null -ne $methodNumber) { $arguments['EncryptionMethod'] = [uint32]$methodNumber }
        $null = Invoke-VolumeMethod -Volume $volume -Method 'Encrypt' -Arguments $arguments
        $methodText = 'Windows default'
        if ($null -ne $methodName) { $methodText = $methodName }
        $spaceText = 'full volume'
        if ($usedSpaceOnly) { $spaceText = 'used space only' }
        [void]$actions.Add(('encryption started ({0}, {1})' -f $methodText, $spaceText))
    } elseif ($state.conversion -eq 4) {
        $null = Invoke-VolumeMethod -Volume $volume -Method 'ResumeConversion'
        [void]$actions.Add('encryption resumed')
    } elseif ($state.conversion -eq 1 -or $state.conversion -eq 2) {
        if ($state.protection -eq 1) {
            [void]$actions.Add('already encrypted')
        } else {
            $enable = Invoke-VolumeMethod -Volume $volume -Method 'EnableKeyProtectors' -AllowFailure
            if (Test-MethodSucceeded $enable) {
                [void]$actions.Add('protection turned on')
            } elseif ($state.conversion -eq 2) {
                # Windows reports protection off until the conversion ends; it turns it on then.
                Write-AgentLog ('{0}: EnableKeyProtectors returned {1} while encrypting.' -f $mountPoint, (Format-HResult $enable.ReturnValue)) 'WARN'
                [void]$actions.Add('encryption in progress')
            } else {
                throw ('EnableKeyProtectors on {0} returned {1}' -f $mountPoint, (Format-HResult $enable.ReturnValue))
            }
        }
    } else {
        throw ('{0} is {1}: encryption is not started while Windows decrypts the volume' -f $mountPoint, (Get-EnumName $script:ConversionStatusNames $state.conversion))
    }
    if ($volume.volumeType -ne 'OperatingSystem') {
        if (Enable-DataVolumeAutoUnlock -Volume $volume) { [void]$actions.Add('automatic unlocking turned on') }
    }
    $Result.status = 'succeeded'
    $Result.newProtectorId = $recoveryId
    $Result.detail = ('{0} on {1}; recovery password {2} is escrowed' -f ($actions -join '; '), $mountPoint, $recoveryId)
}

function Find-ProtectorMountPoint {
    # The mount point of the volume that has this protector, or $null when no volume has it.
    # Searches every volume, and throws when one cannot be read: "on no volume" must be certain.
    param([string]$ProtectorId)
    if ([string]::IsNullOrEmpty($ProtectorId)) { return $null }
    foreach ($volume in @(Get-EncryptableVolumes)) {
        try {
            $protectors = @(Get-VolumeProtectors -Volume $volume)
        } catch {
            throw ('cannot tell where protector {0} is: the protectors of {1} cannot be read ({2})' -f $ProtectorId, $volume.mountPoint, $_.Exception.Message)
        }
        if ($null -ne (Find-VolumeProtector -Protectors $protectors -ProtectorId $ProtectorId)) { return $volume.mountPoint }
    }
    return $null
}

function Invoke-AgentJob {
    # Runs one job and adds its result to $Results. A failing job never stops the run.
    param($Job, $Results)
    $result = [ordered]@{ jobId = [string]$Job.id; status = 'failed'; detail = '' }
    $kind = [string]$Job.kind
    $work = @{
        id               = [string]$Job.id
        kind             = $kind
        mountPoint       = ConvertTo-CleanString $Job.mountPoint
        protectorId      = ConvertTo-CleanString $Job.protectorId
        encryptionMethod = ConvertTo-CleanString $Job.encryptionMethod
        usedSpaceOnly    = ConvertTo-NullableBool $Job.usedSpaceOnly
    }
    Write-AgentLog ('Job {0}: {1} {2} {3}' -f $work.id, $kind, $work.mountPoint, $work.protectorId)
    try {
        if ([string]::IsNullOrEmpty($work.id)) { throw 'the job has no id' }
        if ($script:JobKinds -notcontains $kind) {
            throw ('unsupported job kind "{0}" (agent {1})' -f $kind, $AgentVersion)
        }
        if ($null -eq $work.protectorId -and @('backup', 'backup-to-ad', 'backup-to-entra') -contains $kind) {
            throw ('a {0} job needs a protectorId' -f $kind)
        }
        if ($null -eq $work.mountPoint) {
            # The server may not know the volume of a key (e.g. one imported from a file).
            if ($null -eq $work.protectorId) { throw 'the job has neither a mountPoint nor a protectorId' }
            $work.mountPoint = Find-ProtectorMountPoint -ProtectorId $work.protectorId
            if ($null -eq $work.mountPoint) { throw 'the job has no mountPoint and its protector is on no volume of this device' }
        }
        if ($kind -eq 'rotate') {
            Invoke-RotateJob -Job $work -Result $result
        } elseif ($kind -eq 'backup') {
            Invoke-BackupJob -Job $work -Result $result
        } elseif ($kind -eq 're-escrow') {
            Invoke-ReEscrowJob -Job $work -Result $result
        } elseif ($kind -eq 'backup-to-ad') {
            Invoke-DirectoryBackupJob -Job $work -Result $result -Target 'ad'
        } elseif ($kind -eq 'backup-to-entra') {
            Invoke-DirectoryBackupJob -Job $work -Result $result -Target 'entra'
        } elseif ($kind -eq 'add-recovery-password') {
            Invoke-AddRecoveryPasswordJob -Job $work -Result $result
        } elseif ($kind -eq 'resume-protection') {
            Invoke-ResumeProtectionJob -Job $work -Result $result
        } elseif ($kind -eq 'enable-encryption') {
            Invoke-EnableEncryptionJob -Job $work -Result $result
        }
    } catch {
        # Errors that must end the run (server unreachable, credential revoked) are passed on.
        if ($null -ne (Get-AgentExitCode $_)) { throw }
        $result.status = 'failed'
        $result.detail = Get-ExceptionText $_.Exception
    }
    # L8: redacted, then shortened.
    $result.detail = Limit-Text $result.detail 1000
    if ($result.status -eq 'succeeded') {
        Write-AgentLog ('Job {0} ({1}): succeeded: {2}' -f $work.id, $kind, $result.detail)
    } else {
        Add-Summary ('Job {0} ({1} {2}) failed: {3}' -f $work.id, $kind, $work.mountPoint, $result.detail) 'WARN'
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
    try {
        Initialize-StateDirectory -Path $script:StatePath
    } catch {
        Stop-AgentRun 2 ('Cannot create or protect the state folder {0}: {1}' -f $script:StatePath, $_.Exception.Message)
    }
    # The log is written from here on; it is rotated only by the run that holds the lock.
    $script:LogFile = Join-Path $script:StatePath 'agent.log'
    if (-not (Enter-AgentLock)) {
        Stop-AgentRun 5 ('another run holds the lock {0} (waited 120 seconds); this run did nothing' -f $script:LockFile)
    }
    $script:StateReady = $true
    Initialize-AgentLog
    if ($script:StateFolderReset) {
        Write-AgentLog ('{0} had been created by another account: it now belongs to Administrators and was emptied.' -f $script:StatePath) 'WARN'
    }
    Remove-StaleFiles
    $who = [System.Security.Principal.WindowsIdentity]::GetCurrent().Name
    $bits = 32
    if ([Environment]::Is64BitProcess) { $bits = 64 }
    Write-AgentLog ('Keywarden agent {0} starting: PowerShell {1}, {2}-bit, as {3}.' -f $AgentVersion, $PSVersionTable.PSVersion, $bits, $who)
    if ([Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess) {
        Write-AgentLog 'Running as a 32-bit process (the 64-bit relaunch was not possible): Win32_EncryptableVolume may be unreadable; manage-bde is used through SysNative.' 'WARN'
    }

    # Secrets that may appear anywhere are registered before anything is logged about them.
    Add-Secret $env:KEYWARDEN_ENROLLMENT_TOKEN
    $script:CommandLineToken = Select-FirstValue @($EnrollmentToken, $env:KEYWARDEN_ENROLLMENT_TOKEN_ARGUMENT)
    Add-Secret $script:CommandLineToken
    [Environment]::SetEnvironmentVariable('KEYWARDEN_ENROLLMENT_TOKEN_ARGUMENT', $null)
    if ($null -ne $script:CommandLineToken) {
        Add-Summary 'the token was on a command line: Windows logs it (event 400, 4688, EDR); revoke it after the rollout. Use -EnrollmentTokenFile, KEYWARDEN_ENROLLMENT_TOKEN or enroll.token instead.' 'WARN'
    }

    # Configuration: parameter > environment variable > embedded value (> saved server URL).
    $pinText = Select-FirstValue @($CertificatePin, $env:KEYWARDEN_CERT_PIN, $EmbeddedCertificatePin)
    $script:ProxySettings = Get-ProxySettings -Url (Select-FirstValue @($Proxy, $env:KEYWARDEN_PROXY, $EmbeddedProxy))
    $state = Read-AgentState
    $savedUrl = $null
    if ($null -ne $state) { $savedUrl = $state.serverUrl }
    $url = Select-FirstValue @($ServerUrl, $env:KEYWARDEN_SERVER_URL, $EmbeddedServerUrl, $savedUrl)
    $script:BaseUrl = Get-ValidatedBaseUrl -Url $url -AllowHttp ([bool]$AllowInsecureHttp)
    Initialize-Tls -PinList (ConvertTo-PinList $pinText)
    $script:HasManageBde = [System.IO.File]::Exists($script:ManageBdePath)

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
        Invoke-Enrollment -Identity $identity -Entra $entra -Token (Get-EnrollmentToken) -PreviousState $state -Reason $reason
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
    $volumeText = ('{0} volume(s) from Win32_EncryptableVolume' -f $volumeReport.volumes.Count)
    if ($volumeReport.source -eq 'manage-bde') { $volumeText = 'volumes from manage-bde' }
    if ($volumeReport.skipped.Count -gt 0) { $volumeText += (' ({0} left out: {1})' -f $volumeReport.skipped.Count, ($volumeReport.skipped -join ', ')) }
    Add-Summary ('Checked in as device {0}: {1}, {2} event(s).' -f $script:State.deviceId, $volumeText, $eventReport.items.Count)

    # Passwords the server asked for.
    $uploaded = Send-RequestedPasswords -Requests $response.requestPasswords

    # Jobs, then a second check-in that reports their results. The server offers no jobs in a
    # check-in that carries results (the agent would not run them in this run, and an offer
    # counts as an attempt); any there are left for the next run.
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
        $ignored = @(Get-ResponseItems $response.jobs).Count
        if ($ignored -gt 0) {
            Write-AgentLog ('{0} job(s) offered with the results were not run; they run on the next run.' -f $ignored)
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

# A 32-bit host on 64-bit Windows (several RMM agents) sees neither manage-bde.exe nor the 64-bit
# WMI providers reliably: run this same script again in 64-bit Windows PowerShell and pass its
# exit code through. Secrets travel in environment variables (inherited by the child), not on its
# command line. A script started without a file is written to the protected state folder first.
if ([Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess) {
    $powershell64 = Join-Path $env:SystemRoot 'SysNative\WindowsPowerShell\v1.0\powershell.exe'
    if (Test-Path -LiteralPath $powershell64 -PathType Leaf) {
        $scriptFile = $PSCommandPath
        $temporaryScript = $null
        if (-not $scriptFile) {
            $temporaryScript = New-RelaunchScript
            $scriptFile = $temporaryScript
        }
        if ($scriptFile) {
            if ($ServerUrl) { $env:KEYWARDEN_SERVER_URL = $ServerUrl }
            if ($EnrollmentToken) {
                # Kept apart from KEYWARDEN_ENROLLMENT_TOKEN so that the child ranks and warns
                # about it as a -EnrollmentToken value.
                $env:KEYWARDEN_ENROLLMENT_TOKEN_ARGUMENT = $EnrollmentToken
            }
            if ($CertificatePin) { $env:KEYWARDEN_CERT_PIN = $CertificatePin }
            if ($Proxy) { $env:KEYWARDEN_PROXY = $Proxy }
            $childArguments = @('-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', $scriptFile, '-StatePath', $StatePath)
            if ($EnrollmentTokenFile) { $childArguments += @('-EnrollmentTokenFile', (Resolve-InputPath $EnrollmentTokenFile)) }
            if ($ForceReenroll) { $childArguments += '-ForceReenroll' }
            if ($AllowInsecureHttp) { $childArguments += '-AllowInsecureHttp' }
            if ($VerbosePreference -eq 'Continue') { $childArguments += '-Verbose' }
            $childExitCode = $null
            $ErrorActionPreference = 'Continue'
            try {
                $global:LASTEXITCODE = $null
                & $powershell64 @childArguments
                $childExitCode = $LASTEXITCODE
            } catch {
                Write-Output (Protect-Text ('Keywarden exit=1: the 64-bit Windows PowerShell could not be started: {0}' -f $_.Exception.Message))
            } finally {
                if ($temporaryScript) {
                    try { [System.IO.File]::Delete($temporaryScript) } catch { Write-Verbose ('Cannot delete {0}: {1}' -f $temporaryScript, $_.Exception.Message) }
                }
            }
            # No exit code means the child never ran: that is a failure, not success.
            if ($null -eq $childExitCode) { $childExitCode = 1 }
            exit $childExitCode
        }
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
}
if ($script:ExitCode -ne 5) {
    # A run that did not get the lock leaves agent.json to the run that holds it.
    Save-RunStatus -ExitCode $script:ExitCode -Message $script:FinalMessage
}
Exit-AgentLock

foreach ($line in $script:SummaryLines) {
    Write-Output $line
}
$finalLine = Protect-Text ('Keywarden exit={0}: {1}' -f $script:ExitCode, $script:FinalMessage)
Write-AgentLog $finalLine
Write-Output $finalLine
exit $script:ExitCode
