# ps-lint: carries-secrets (an RMM puts the enrollment token into this text; tools/ps-lint.ts keeps it free of words that make Windows log whole scripts)
# Keywarden agent: wrapper for tools that run script text and put their variables into it
# (Syncro script variables, N-central Automation Manager inputs, ConnectWise Automate @variables@,
# Intune platform scripts). agent/README.md describes each tool.
#
# What it does, as SYSTEM:
#   1. While the device is not enrolled (or moves to another server), it writes the enrollment
#      token to %ProgramData%\Keywarden\enroll.token, readable by SYSTEM and Administrators only.
#      The agent reads it there and deletes it once enrolled.
#   2. It keeps Keywarden-Agent.ps1 in <64-bit Program Files>\Keywarden up to date from the server
#      (https://<server>/agent/Keywarden-Agent.ps1, accepted only when its SHA-256 matches the one in
#      https://<server>/api/v1/agent/files, or KeywardenAgentSha256 when you set it).
#   3. It runs that file as its own 64-bit powershell.exe -File process and ends with its exit code
#      (0-5, see agent/README.md); the agent's last line is "Keywarden exit=<n>: <message>".
#
# Why this way: the token never reaches a command line, an environment variable or the agent's
# text, and this text holds none of the words (C# compiling and the like) that make Windows
# PowerShell write a whole script to its event log on its own. What is left: when full Script
# Block Logging is turned on (event 4104), Windows logs the text of every script, this one with the
# token your tool put into it. Use short-lived enrollment tokens with a use limit, and revoke them
# once the devices are enrolled. Keep this file free of such words when you change it.
#
# Values: Syncro and similar tools define these variables in front of this text. Tools that
# cannot, fill in the quotes below (the tool's own placeholder, e.g. '@KeywardenToken@' in
# ConnectWise Automate, or the value itself).
#   KeywardenServerUrl        https://keywarden.example.com
#   KeywardenEnrollmentToken  kwe_... (per customer; a "platform" variable bound to a customer field)
#   KeywardenCertificatePin   optional, sha256/<base64> (see Get-KeywardenCertificatePin.ps1)
#   KeywardenProxy            optional, http://proxy:8080
#   KeywardenAgentSha256      optional, the SHA-256 (hex) the agent file must have
if (-not $KeywardenServerUrl) { $KeywardenServerUrl = '' }
if (-not $KeywardenEnrollmentToken) { $KeywardenEnrollmentToken = '' }
if (-not $KeywardenCertificatePin) { $KeywardenCertificatePin = '' }
if (-not $KeywardenProxy) { $KeywardenProxy = '' }
if (-not $KeywardenAgentSha256) { $KeywardenAgentSha256 = '' }

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Stop-Wrapper {
    param([int]$Code, [string]$Message)
    Write-Output ('Keywarden exit={0}: {1}' -f $Code, $Message)
    exit $Code
}

# Tools that hand their variables over as environment variables of the same names (NinjaOne
# script variables, whose calculated names are e.g. keywardenEnrollmentToken; names are not case
# sensitive), or the agent's own KEYWARDEN_* variables (Datto RMM). KeywardenEnrollmentToken is
# removed from the environment: the agent gets that token through the one-shot file only
# (KEYWARDEN_ENROLLMENT_TOKEN, which the agent reads itself, is left alone).
# Plain assignments and .NET calls only: a cmdlet such as Set-Variable would have the token as an
# argument, which Module Logging (event 4103) records.
if (-not $KeywardenServerUrl) { $KeywardenServerUrl = [Environment]::GetEnvironmentVariable('KeywardenServerUrl') }
if (-not $KeywardenEnrollmentToken) { $KeywardenEnrollmentToken = [Environment]::GetEnvironmentVariable('KeywardenEnrollmentToken') }
if (-not $KeywardenCertificatePin) { $KeywardenCertificatePin = [Environment]::GetEnvironmentVariable('KeywardenCertificatePin') }
if (-not $KeywardenProxy) { $KeywardenProxy = [Environment]::GetEnvironmentVariable('KeywardenProxy') }
if (-not $KeywardenAgentSha256) { $KeywardenAgentSha256 = [Environment]::GetEnvironmentVariable('KeywardenAgentSha256') }
[Environment]::SetEnvironmentVariable('KeywardenEnrollmentToken', $null)
if (-not $KeywardenServerUrl -and $env:KEYWARDEN_SERVER_URL) { $KeywardenServerUrl = $env:KEYWARDEN_SERVER_URL }
if (-not $KeywardenCertificatePin -and $env:KEYWARDEN_CERT_PIN) { $KeywardenCertificatePin = $env:KEYWARDEN_CERT_PIN }
if (-not $KeywardenProxy -and $env:KEYWARDEN_PROXY) { $KeywardenProxy = $env:KEYWARDEN_PROXY }

$principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Stop-Wrapper 3 'run this script as SYSTEM'
}

# Program Files is not redirected for 32-bit processes, only its variable is: take the 64-bit one.
$programFiles = $env:ProgramW6432
if ([string]::IsNullOrEmpty($programFiles)) { $programFiles = $env:ProgramFiles }
$installFolder = Join-Path $programFiles 'Keywarden'
$agentFile = Join-Path $installFolder 'Keywarden-Agent.ps1'
$statePath = Join-Path $env:ProgramData 'Keywarden'
$stateFile = Join-Path $statePath 'agent.json'
$tokenFile = Join-Path $statePath 'enroll.token'
$powershell = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
if ([Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess) {
    $powershell = Join-Path $env:SystemRoot 'SysNative\WindowsPowerShell\v1.0\powershell.exe'
}

# The server URL the agent enrolled with, read with a pattern: agent.json also holds the device
# credential, which must not become the argument of a logged cmdlet such as ConvertFrom-Json.
$rememberedUrl = ''
if ([System.IO.File]::Exists($stateFile)) {
    $match = [regex]::Match([System.IO.File]::ReadAllText($stateFile), '"serverUrl"\s*:\s*"((?:[^"\\]|\\.)*)"')
    if ($match.Success) { $rememberedUrl = [regex]::Unescape($match.Groups[1].Value).TrimEnd('/') }
}
if ($KeywardenServerUrl) { $KeywardenServerUrl = ([string]$KeywardenServerUrl).Trim().TrimEnd('/') }
$serverUrl = $KeywardenServerUrl
if (-not $serverUrl) { $serverUrl = $rememberedUrl }

# ---- 1. the one-shot token file ---------------------------------------------------------------
$needsToken = (-not $rememberedUrl) -or ($KeywardenServerUrl -and $KeywardenServerUrl -ne $rememberedUrl)
if ($needsToken -and $KeywardenEnrollmentToken) {
    # The token is handled with .NET calls and operators only, never as a cmdlet argument, so
    # Module Logging (event 4103) has nothing to record.
    $token = ([string]$KeywardenEnrollmentToken).Trim()
    if ($token -notmatch '^kwe_[A-Za-z0-9_-]{16,256}$') {
        Stop-Wrapper 2 'KeywardenEnrollmentToken does not hold a kwe_ enrollment token (is the variable or placeholder filled in?)'
    }
    try {
        $sids = @('S-1-5-18', 'S-1-5-32-544')
        $folderSecurity = [System.Security.AccessControl.DirectorySecurity]::new()
        $folderSecurity.SetAccessRuleProtection($true, $false)
        $fileSecurity = [System.Security.AccessControl.FileSecurity]::new()
        $fileSecurity.SetAccessRuleProtection($true, $false)
        foreach ($sid in $sids) {
            $identity = [System.Security.Principal.SecurityIdentifier]::new($sid)
            $full = [System.Security.AccessControl.FileSystemRights]::FullControl
            $allow = [System.Security.AccessControl.AccessControlType]::Allow
            $folderSecurity.AddAccessRule([System.Security.AccessControl.FileSystemAccessRule]::new($identity, $full,
                [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit', [System.Security.AccessControl.PropagationFlags]::None, $allow))
            $fileSecurity.AddAccessRule([System.Security.AccessControl.FileSystemAccessRule]::new($identity, $full, $allow))
        }
        # A standard user can create folders in %ProgramData%. A state folder that is a link, or whose
        # owner is not SYSTEM, Administrators, this account or the built-in local Administrator (the
        # owners the agent trusts), is moved aside and never written to.
        $trustedOwners = @($sids) + [System.Security.Principal.WindowsIdentity]::GetCurrent().User.Value
        $trusted = $false
        if ([System.IO.Directory]::Exists($statePath)) {
            try {
                $info = [System.IO.DirectoryInfo]::new($statePath)
                $owner = $info.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Owner).GetOwner([System.Security.Principal.SecurityIdentifier])
                $trusted = $trustedOwners -contains $owner.Value
                if (-not $trusted -and $owner.Value -match '-500$' -and $owner.IsAccountSid()) {
                    $trusted = $owner.Translate([System.Security.Principal.NTAccount]).Value.StartsWith($env:COMPUTERNAME + '\', [System.StringComparison]::OrdinalIgnoreCase)
                }
                $trusted = $trusted -and -not ($info.Attributes -band [System.IO.FileAttributes]::ReparsePoint)
            } catch {
                $trusted = $false
            }
            if (-not $trusted) {
                $aside = $statePath + '.untrusted-' + [DateTime]::UtcNow.ToString('yyyyMMddHHmmss')
                [System.IO.Directory]::Move($statePath, $aside)
                Write-Output ('{0} was created by an account the agent does not trust (or is a link); moved to {1} and not used.' -f $statePath, $aside)
            }
        }
        if (-not [System.IO.Directory]::Exists($statePath)) {
            $null = [System.IO.Directory]::CreateDirectory($statePath, $folderSecurity)
            $info = [System.IO.DirectoryInfo]::new($statePath)
            $owner = $info.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Owner).GetOwner([System.Security.Principal.SecurityIdentifier]).Value
            if (($trustedOwners -notcontains $owner) -or ($info.Attributes -band [System.IO.FileAttributes]::ReparsePoint)) {
                Stop-Wrapper 1 ('{0} was created again by someone else while this script ran; not used' -f $statePath)
            }
        }
        [System.IO.DirectoryInfo]::new($statePath).SetAccessControl($folderSecurity)
        # Deleted and created new, so an existing file or link is never written through.
        if ([System.IO.File]::Exists($tokenFile)) { [System.IO.File]::Delete($tokenFile) }
        $stream = [System.IO.FileStream]::new($tokenFile, [System.IO.FileMode]::CreateNew,
            [System.Security.AccessControl.FileSystemRights]::FullControl, [System.IO.FileShare]::None, 4096,
            [System.IO.FileOptions]::None, $fileSecurity)
        try {
            $bytes = [System.Text.Encoding]::ASCII.GetBytes($token)
            $stream.Write($bytes, 0, $bytes.Length)
        } finally {
            $stream.Dispose()
        }
        $token = $null
        $bytes = $null
    } catch {
        # File and folder errors name paths, never the token.
        Stop-Wrapper 1 ('Cannot write the enrollment token file {0}: {1}' -f $tokenFile, $_.Exception.Message)
    }
    Write-Output ('Enrollment token written to {0} for the agent (deleted after enrolling).' -f $tokenFile)
} elseif ($needsToken -and -not $env:KEYWARDEN_ENROLLMENT_TOKEN -and -not [System.IO.File]::Exists($tokenFile)) {
    Write-Output 'The device is not enrolled and no enrollment token was given (KeywardenEnrollmentToken).'
}
$KeywardenEnrollmentToken = $null

# ---- 2. the agent file, current with the server ------------------------------------------------
if ($serverUrl) {
    # Add TLS 1.2 to what the process allows; SystemDefault (0) already lets Windows choose.
    if ([int][Net.ServicePointManager]::SecurityProtocol -ne 0) {
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
    }
    $web = @{ UseBasicParsing = $true; TimeoutSec = 60 }
    if ($KeywardenProxy) { $web.Proxy = $KeywardenProxy; $web.ProxyUseDefaultCredentials = $true }
    $expected = ([string]$KeywardenAgentSha256).Trim()
    if (-not $expected) {
        try {
            $list = Invoke-RestMethod -Uri ($serverUrl + '/api/v1/agent/files') @web
            $entry = @($list.files) | Where-Object { $_.name -eq 'Keywarden-Agent.ps1' } | Select-Object -First 1
            if ($entry) { $expected = [string]$entry.sha256 }
        } catch {
            Write-Output ('Could not read the agent file list from the server: {0}' -f $_.Exception.Message)
        }
    }
    $current = ''
    if (Test-Path -LiteralPath $agentFile -PathType Leaf) { $current = (Get-FileHash -LiteralPath $agentFile -Algorithm SHA256).Hash }
    if ($expected -and $current -ne $expected) {
        $download = $agentFile + '.download'
        try {
            $null = New-Item -ItemType Directory -Path $installFolder -Force
            Invoke-WebRequest -Uri ($serverUrl + '/agent/Keywarden-Agent.ps1') -OutFile $download @web
            $downloaded = (Get-FileHash -LiteralPath $download -Algorithm SHA256).Hash
            if ($downloaded -ne $expected) { throw ('its SHA-256 is {0}, expected {1}' -f $downloaded, $expected) }
            Move-Item -LiteralPath $download -Destination $agentFile -Force
            Write-Output ('Keywarden-Agent.ps1 updated from {0} (SHA-256 {1}).' -f $serverUrl, $expected)
        } catch {
            Remove-Item -LiteralPath $download -Force -ErrorAction SilentlyContinue
            Write-Output ('Could not download Keywarden-Agent.ps1: {0}' -f $_.Exception.Message)
        }
    }
}
if (-not (Test-Path -LiteralPath $agentFile -PathType Leaf)) {
    if (-not $serverUrl) { Stop-Wrapper 2 'no server URL: set KeywardenServerUrl' }
    Stop-Wrapper 1 ('Keywarden-Agent.ps1 is not installed in {0} and could not be downloaded from {1}' -f $installFolder, $serverUrl)
}
if ($KeywardenAgentSha256 -and (Get-FileHash -LiteralPath $agentFile -Algorithm SHA256).Hash -ne ([string]$KeywardenAgentSha256).Trim()) {
    Stop-Wrapper 1 ('{0} does not have the SHA-256 given in KeywardenAgentSha256; not run' -f $agentFile)
}

# ---- 3. run the agent in its own 64-bit process ------------------------------------------------
if ($KeywardenServerUrl) { $env:KEYWARDEN_SERVER_URL = $KeywardenServerUrl }
if ($KeywardenCertificatePin) { $env:KEYWARDEN_CERT_PIN = ([string]$KeywardenCertificatePin).Trim() }
if ($KeywardenProxy) { $env:KEYWARDEN_PROXY = ([string]$KeywardenProxy).Trim() }
Unblock-File -LiteralPath $agentFile
# RemoteSigned runs this local, unsigned file; the usual value that skips every check is one of
# the words that would make this text logged as a whole (see the top of this file).
& $powershell -NoProfile -NonInteractive -ExecutionPolicy RemoteSigned -File $agentFile
$agentExit = $LASTEXITCODE
# No exit code means the 64-bit PowerShell did not start at all.
if ($null -eq $agentExit) { Stop-Wrapper 1 'the agent could not be started' }
exit $agentExit
