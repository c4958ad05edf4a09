<#
.SYNOPSIS
    Installs the Keywarden agent as an hourly SYSTEM scheduled task, hands it the enrollment token
    in a protected one-shot file, runs it once, and can remove it again.

.DESCRIPTION
    For deployment tools that run something once (an Intune Win32 app, an RMM "install" script, a
    GPO startup script) rather than every hour. Safe to run again: a second run upgrades the agent
    file and re-registers the task.

      1. Started from a 32-bit host on 64-bit Windows (the Intune Management Extension, several RMM
         agents), it starts itself again in 64-bit Windows PowerShell and passes the exit code on.
      2. Copies Keywarden-Agent.ps1 to InstallPath: "<64-bit Program Files>\Keywarden"
         (%ProgramW6432%, or %ProgramFiles% on 32-bit Windows), writable by administrators only.
      3. Reads the enrollment token from (first found) -EnrollmentTokenFile, the environment
         variable KEYWARDEN_ENROLLMENT_TOKEN, or a file "enroll.token" next to this installer (for
         example packaged in the .intunewin), and writes it to %ProgramData%\Keywarden\enroll.token
         (SYSTEM and Administrators only). The agent reads it there and deletes it once the device
         is enrolled. The token is never put on a command line and never stored in the task.
         A device that is already enrolled with the same server gets no token file.
      4. Registers the scheduled task "Keywarden Agent": SYSTEM (S-1-5-18), highest privileges,
         every hour (random delay up to 30 minutes) and 5 minutes after start-up, also on battery,
         catches up a missed start, stops after 30 minutes, one instance at a time. The action is
         %SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe, whatever the host's bitness.
      5. Runs the agent once now and prints that run's last line ("Keywarden exit=<n>: ...").

    Exit codes of this installer (the first agent run does not change them: a server that is down
    during the install, or a failed job, is retried by the task):
      0  installed (files and task in place) or removed
      1  the installation failed (copying, folder permissions, scheduled task, 64-bit restart)
      2  configuration missing or invalid: Keywarden-Agent.ps1 not found, no server URL for a
         device that is not enrolled yet, no enrollment token, or a token that is not a kwe_ token
      3  not running as SYSTEM or as an elevated administrator
    The last output line is always "Keywarden install exit=<n>: <message>".

    -Uninstall removes the task, the installed script and a leftover enroll.token; with
    -RemoveState also %ProgramData%\Keywarden (the device credential). Revoke the device on the
    server as well.

.PARAMETER ServerUrl
    https://keywarden.example.com. Needed until the device is enrolled. Environment:
    KEYWARDEN_SERVER_URL. It is written into the task so that a device whose first run could not
    reach the server enrolls on a later run.

.PARAMETER EnrollmentTokenFile
    A file holding the kwe_ enrollment token (nothing else; surrounding white space is ignored).
    Without it: KEYWARDEN_ENROLLMENT_TOKEN, then enroll.token next to this installer or in the
    current folder.

.PARAMETER CertificatePin
    Optional pin(s) for -CertificatePin of the agent: sha256/<base64> (public key, recommended) or
    64 hex digits (certificate). Environment: KEYWARDEN_CERT_PIN.

.PARAMETER Proxy
    Optional http://proxy:8080 (no user name or password in it: it is visible in the task).
    Environment: KEYWARDEN_PROXY.

.PARAMETER AgentPath
    Keywarden-Agent.ps1 to install. Default: next to this installer, or in the current folder.

.PARAMETER InstallPath
    Default: %ProgramW6432%\Keywarden (C:\Program Files\Keywarden).

.PARAMETER SkipFirstRun
    Do not run the agent now; the task runs it at the next hour or start-up.

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\Install-KeywardenAgent.ps1 -ServerUrl https://keywarden.example.com

    With enroll.token in the same folder (Intune Win32 app, RMM attachment), or with
    KEYWARDEN_ENROLLMENT_TOKEN set by the RMM.

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\Install-KeywardenAgent.ps1 -Uninstall -RemoveState
#>
[CmdletBinding()]
param(
    [string]$ServerUrl,
    [string]$EnrollmentTokenFile,
    [string]$CertificatePin,
    [string]$Proxy,
    [string]$AgentPath,
    [string]$InstallPath,
    [string]$TaskName = 'Keywarden Agent',
    [switch]$SkipFirstRun,
    [switch]$Uninstall,
    [switch]$RemoveState,
    # Kept so that install commands written for agent 1.0 still run; the token then sits in the
    # command line that Windows logs, so it is reported as a warning. Use a token file instead.
    [string]$EnrollmentToken
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Exit-Install {
    param([int]$Code, [string]$Message)
    Write-Output ('Keywarden install exit={0}: {1}' -f $Code, $Message)
    exit $Code
}

function Find-BesideInstaller {
    # A file next to this script, else in the current folder (RMMs put attachments there).
    param([string]$Name)
    foreach ($folder in @($PSScriptRoot, (Get-Location).Path)) {
        if ([string]::IsNullOrEmpty($folder)) { continue }
        $candidate = Join-Path $folder $Name
        if (Test-Path -LiteralPath $candidate -PathType Leaf) { return $candidate }
    }
    return $null
}

# RMMs that pass environment variables (Datto RMM site variables, NinjaOne script variables).
if (-not $ServerUrl) { $ServerUrl = $env:KEYWARDEN_SERVER_URL }
if (-not $CertificatePin) { $CertificatePin = $env:KEYWARDEN_CERT_PIN }
if (-not $Proxy) { $Proxy = $env:KEYWARDEN_PROXY }
if (-not $AgentPath) { $AgentPath = Find-BesideInstaller 'Keywarden-Agent.ps1' }
# Token sources, first found wins: -EnrollmentTokenFile, KEYWARDEN_ENROLLMENT_TOKEN, enroll.token
# next to the installer (for example packaged in the .intunewin).
$besideTokenFile = Find-BesideInstaller 'enroll.token'
# .NET resolves relative paths against the process folder, not PowerShell's location.
if ($EnrollmentTokenFile -and (Test-Path -LiteralPath $EnrollmentTokenFile -PathType Leaf)) {
    $EnrollmentTokenFile = (Resolve-Path -LiteralPath $EnrollmentTokenFile).ProviderPath
}

# --------------------------------------------------------------------------------------------------
# 32-bit host on 64-bit Windows: System32 and Program Files are redirected for this process, so
# everything below would land in the wrong place. Start this installer again in 64-bit PowerShell.
# Values go to the child in environment variables or as file paths, never a token on its command line.
# --------------------------------------------------------------------------------------------------
if ([Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess) {
    $powershell64 = Join-Path $env:SystemRoot 'SysNative\WindowsPowerShell\v1.0\powershell.exe'
    if (-not (Test-Path -LiteralPath $powershell64 -PathType Leaf)) {
        Exit-Install 1 'running as a 32-bit process and 64-bit Windows PowerShell was not found'
    }
    if ($ServerUrl) { $env:KEYWARDEN_SERVER_URL = $ServerUrl }
    if ($CertificatePin) { $env:KEYWARDEN_CERT_PIN = $CertificatePin }
    if ($Proxy) { $env:KEYWARDEN_PROXY = $Proxy }
    if ($EnrollmentToken) { $env:KEYWARDEN_ENROLLMENT_TOKEN = $EnrollmentToken }

    $scriptFile = $PSCommandPath
    $temporaryCopy = $null
    if ([string]::IsNullOrEmpty($scriptFile)) {
        # Started with -Command or from standard input: there is no file to start again, so write
        # this script's text to a new file that only SYSTEM and Administrators can touch.
        $text = $null
        if ($MyInvocation.MyCommand.ScriptBlock) { $text = $MyInvocation.MyCommand.ScriptBlock.ToString() }
        if ([string]::IsNullOrWhiteSpace($text)) {
            Exit-Install 1 'running as a 32-bit process without a script file; start it with powershell.exe -File'
        }
        $temporaryCopy = Join-Path ([System.IO.Path]::GetTempPath()) ('Install-KeywardenAgent-' + [guid]::NewGuid().ToString('N') + '.ps1')
        $copySecurity = [System.Security.AccessControl.FileSecurity]::new()
        $copySecurity.SetAccessRuleProtection($true, $false)
        foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
            $copySecurity.AddAccessRule([System.Security.AccessControl.FileSystemAccessRule]::new(
                [System.Security.Principal.SecurityIdentifier]::new($sid),
                [System.Security.AccessControl.FileSystemRights]::FullControl,
                [System.Security.AccessControl.AccessControlType]::Allow))
        }
        # With a byte order mark, as Windows PowerShell reads a file without one in the ANSI code page.
        $encoding = [System.Text.UTF8Encoding]::new($true)
        $bytes = [byte[]]($encoding.GetPreamble() + $encoding.GetBytes($text))
        $stream = [System.IO.FileStream]::new($temporaryCopy, [System.IO.FileMode]::CreateNew,
            [System.Security.AccessControl.FileSystemRights]::FullControl, [System.IO.FileShare]::None, 4096,
            [System.IO.FileOptions]::None, $copySecurity)
        try { $stream.Write($bytes, 0, $bytes.Length) } finally { $stream.Dispose() }
        $scriptFile = $temporaryCopy
    }

    $childArguments = @('-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', $scriptFile, '-TaskName', $TaskName)
    # Paths are made absolute: the child may run from a temporary copy in another folder.
    foreach ($pair in @(@('-AgentPath', $AgentPath), @('-EnrollmentTokenFile', $EnrollmentTokenFile))) {
        if (-not $pair[1]) { continue }
        $resolved = $pair[1]
        if (Test-Path -LiteralPath $resolved -PathType Leaf) { $resolved = (Resolve-Path -LiteralPath $resolved).ProviderPath }
        $childArguments += @($pair[0], $resolved)
    }
    if (-not $EnrollmentTokenFile -and -not $env:KEYWARDEN_ENROLLMENT_TOKEN -and $besideTokenFile) {
        $childArguments += @('-EnrollmentTokenFile', $besideTokenFile)
    }
    if ($InstallPath) { $childArguments += @('-InstallPath', $InstallPath) }
    if ($SkipFirstRun) { $childArguments += '-SkipFirstRun' }
    if ($Uninstall) { $childArguments += '-Uninstall' }
    if ($RemoveState) { $childArguments += '-RemoveState' }
    $childExit = $null
    $startError = ''
    try {
        $global:LASTEXITCODE = $null
        & $powershell64 @childArguments
        $childExit = $LASTEXITCODE
    } catch {
        $startError = ': ' + $_.Exception.Message
    } finally {
        if ($temporaryCopy) { Remove-Item -LiteralPath $temporaryCopy -Force -ErrorAction SilentlyContinue }
    }
    # No exit code means the 64-bit PowerShell did not run at all: a failure, not success.
    if ($null -eq $childExit) { Exit-Install 1 ('64-bit Windows PowerShell could not be started' + $startError) }
    exit $childExit
}

# From here on the process is 64-bit (or Windows itself is 32-bit).
$principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Exit-Install 3 'run the installer as SYSTEM or from an elevated PowerShell'
}

if (-not $InstallPath) {
    $programFiles = $env:ProgramW6432
    if ([string]::IsNullOrEmpty($programFiles)) { $programFiles = $env:ProgramFiles }
    $InstallPath = Join-Path $programFiles 'Keywarden'
}
$installedAgent = Join-Path $InstallPath 'Keywarden-Agent.ps1'
$statePath = Join-Path $env:ProgramData 'Keywarden'
$stateFile = Join-Path $statePath 'agent.json'
$tokenTarget = Join-Path $statePath 'enroll.token'
# The task and the first run always use the 64-bit PowerShell in System32. The task keeps the
# variable form: Task Scheduler is a 64-bit service and expands it itself.
$taskPowerShell = '%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe'
$powershell = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
# Where the 1.0 installer put the agent when it ran 32-bit.
$legacyFolder = $null
if (${env:ProgramFiles(x86)}) { $legacyFolder = Join-Path ${env:ProgramFiles(x86)} 'Keywarden' }

function Get-AdminOnlyRules {
    param([bool]$ForFolder)
    $inheritance = [System.Security.AccessControl.InheritanceFlags]::None
    if ($ForFolder) { $inheritance = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit' }
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
        [System.Security.AccessControl.FileSystemAccessRule]::new(
            [System.Security.Principal.SecurityIdentifier]::new($sid),
            [System.Security.AccessControl.FileSystemRights]::FullControl, $inheritance,
            [System.Security.AccessControl.PropagationFlags]::None, [System.Security.AccessControl.AccessControlType]::Allow)
    }
}

function Test-TrustedFolder {
    # A real folder (not a junction or link) owned by someone the agent trusts as well: SYSTEM,
    # Administrators, this account, or the built-in local Administrator (RID 500, whose files are
    # its own rather than Administrators' when UAC is off).
    param([string]$Path)
    try {
        $info = [System.IO.DirectoryInfo]::new($Path)
        if ($info.Attributes -band [System.IO.FileAttributes]::ReparsePoint) { return $false }
        $owner = $info.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Owner).GetOwner([System.Security.Principal.SecurityIdentifier])
        $trusted = @('S-1-5-18', 'S-1-5-32-544', [System.Security.Principal.WindowsIdentity]::GetCurrent().User.Value)
        if ($trusted -contains $owner.Value) { return $true }
        if ($owner.Value -match '-500$' -and $owner.IsAccountSid()) {
            return $owner.Translate([System.Security.Principal.NTAccount]).Value.StartsWith($env:COMPUTERNAME + '\', [System.StringComparison]::OrdinalIgnoreCase)
        }
        return $false
    } catch {
        return $false
    }
}

function Initialize-StateFolder {
    # The agent's state folder, readable by SYSTEM and Administrators only. A standard user can
    # create folders in %ProgramData%: one that an untrusted account created (or a link) is moved
    # aside, never used, so a token written into it cannot be read by that account.
    $security = [System.Security.AccessControl.DirectorySecurity]::new()
    $security.SetAccessRuleProtection($true, $false)
    foreach ($rule in (Get-AdminOnlyRules -ForFolder $true)) { $security.AddAccessRule($rule) }
    if ([System.IO.Directory]::Exists($statePath) -and -not (Test-TrustedFolder $statePath)) {
        $aside = $statePath + '.untrusted-' + [DateTime]::UtcNow.ToString('yyyyMMddHHmmss')
        [System.IO.Directory]::Move($statePath, $aside)
        Write-Output ('{0} was created by an account the agent does not trust (or is a link); moved to {1} and not used.' -f $statePath, $aside)
    }
    if (-not [System.IO.Directory]::Exists($statePath)) {
        $null = [System.IO.Directory]::CreateDirectory($statePath, $security)
    }
    if (-not (Test-TrustedFolder $statePath)) {
        throw ('{0} was created again by an untrusted account while installing; not used' -f $statePath)
    }
    [System.IO.DirectoryInfo]::new($statePath).SetAccessControl($security)
}

function Read-EnrollmentToken {
    # Returns the token, or $null. The token is handled with .NET calls only: it is never an
    # argument of a cmdlet or function, so Module Logging (event 4103) has nothing to record.
    $script:TokenSource = $null
    if ($EnrollmentToken) {
        $script:TokenSource = 'the -EnrollmentToken parameter'
        Write-Warning 'The enrollment token was on a command line: Windows logs command lines (event 400, 4688, EDR). Use a token file or KEYWARDEN_ENROLLMENT_TOKEN, and revoke this token after the rollout.'
        return $EnrollmentToken.Trim()
    }
    if ($EnrollmentTokenFile) {
        $script:TokenSource = $EnrollmentTokenFile
        return [System.IO.File]::ReadAllText($EnrollmentTokenFile).Trim()
    }
    if ($env:KEYWARDEN_ENROLLMENT_TOKEN) {
        $script:TokenSource = 'KEYWARDEN_ENROLLMENT_TOKEN'
        return $env:KEYWARDEN_ENROLLMENT_TOKEN.Trim()
    }
    if ($besideTokenFile) {
        $script:TokenSource = $besideTokenFile
        return [System.IO.File]::ReadAllText($besideTokenFile).Trim()
    }
    return $null
}

function Write-TokenFile {
    param([string]$Source)
    # Deleted first and created new (CreateNew), so an existing file or link is never written through.
    if ([System.IO.File]::Exists($tokenTarget)) { [System.IO.File]::Delete($tokenTarget) }
    $security = [System.Security.AccessControl.FileSecurity]::new()
    $security.SetAccessRuleProtection($true, $false)
    foreach ($rule in (Get-AdminOnlyRules -ForFolder $false)) { $security.AddAccessRule($rule) }
    $stream = [System.IO.FileStream]::new($tokenTarget, [System.IO.FileMode]::CreateNew,
        [System.Security.AccessControl.FileSystemRights]::FullControl, [System.IO.FileShare]::None, 4096,
        [System.IO.FileOptions]::None, $security)
    try {
        $bytes = [System.Text.Encoding]::ASCII.GetBytes($script:Token)
        $stream.Write($bytes, 0, $bytes.Length)
    } finally {
        $stream.Dispose()
    }
    Write-Output ('Enrollment token from {0} written to {1} (SYSTEM and Administrators only; the agent deletes it after enrolling).' -f $Source, $tokenTarget)
}

function Remove-InstalledFiles {
    param([string]$Folder)
    if (-not $Folder -or -not (Test-Path -LiteralPath $Folder -PathType Container)) { return }
    $file = Join-Path $Folder 'Keywarden-Agent.ps1'
    if (Test-Path -LiteralPath $file -PathType Leaf) { Remove-Item -LiteralPath $file -Force }
    # Only our own folder is removed, and only when nothing else is in it.
    if (-not (Get-ChildItem -LiteralPath $Folder -Force)) { Remove-Item -LiteralPath $Folder -Force }
}

try {
    if ($Uninstall) {
        if (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue) {
            Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
        }
        Remove-InstalledFiles $InstallPath
        if ($legacyFolder -and $legacyFolder -ne $InstallPath) { Remove-InstalledFiles $legacyFolder }
        if ([System.IO.File]::Exists($tokenTarget)) { [System.IO.File]::Delete($tokenTarget) }
        if ($RemoveState -and [System.IO.Directory]::Exists($statePath)) {
            # Directory.Delete removes links inside the folder without following them.
            [System.IO.Directory]::Delete($statePath, $true)
        }
        Exit-Install 0 ('Keywarden agent removed (task "{0}", {1}{2}). Revoke the device on the server.' -f $TaskName, $InstallPath, $(if ($RemoveState) { ', ' + $statePath } else { '' }))
    }

    # ---- check the configuration before changing anything -----------------------------------
    if (-not $AgentPath -or -not (Test-Path -LiteralPath $AgentPath -PathType Leaf)) {
        Exit-Install 2 'Keywarden-Agent.ps1 not found next to the installer or in the current folder (use -AgentPath)'
    }
    $agentText = [System.IO.File]::ReadAllText((Resolve-Path -LiteralPath $AgentPath).ProviderPath)
    $versionMatch = [regex]::Match($agentText, "(?m)^\`$AgentVersion\s*=\s*'([^']+)'")
    if (-not $versionMatch.Success) { Exit-Install 2 ('{0} is not the Keywarden agent (no $AgentVersion line)' -f $AgentPath) }
    $agentVersion = $versionMatch.Groups[1].Value

    # The server URL the agent enrolled with, read with a pattern: agent.json also holds the device
    # credential, which must not become the argument of a logged cmdlet such as ConvertFrom-Json.
    $rememberedUrl = ''
    if ([System.IO.File]::Exists($stateFile)) {
        $match = [regex]::Match([System.IO.File]::ReadAllText($stateFile), '"serverUrl"\s*:\s*"((?:[^"\\]|\\.)*)"')
        if ($match.Success) { $rememberedUrl = [regex]::Unescape($match.Groups[1].Value).TrimEnd('/') }
    }
    $enrolled = -not [string]::IsNullOrEmpty($rememberedUrl)
    if ($ServerUrl) {
        $parsedUrl = $null
        if (-not [Uri]::TryCreate($ServerUrl, [UriKind]::Absolute, [ref]$parsedUrl) -or ($parsedUrl.Scheme -ne 'https' -and $parsedUrl.Scheme -ne 'http')) {
            Exit-Install 2 ('the server URL is not an https:// URL: ' + $ServerUrl)
        }
        $ServerUrl = $ServerUrl.TrimEnd('/')
    } elseif (-not $enrolled) {
        Exit-Install 2 'no server URL: pass -ServerUrl or set KEYWARDEN_SERVER_URL (needed until the device is enrolled)'
    }
    # A token is needed for a device that is not enrolled, or that moves to another server URL.
    $needsToken = (-not $enrolled) -or ($ServerUrl -and $ServerUrl -ne $rememberedUrl)
    if ($EnrollmentTokenFile -and -not [System.IO.File]::Exists($EnrollmentTokenFile)) {
        Exit-Install 2 ('enrollment token file not found: ' + $EnrollmentTokenFile)
    }
    $script:Token = Read-EnrollmentToken
    if ($script:Token -and $script:Token -notmatch '^kwe_[A-Za-z0-9_-]{16,256}$') {
        # The message names the source, never the value.
        Exit-Install 2 ('the enrollment token from {0} is not a kwe_ enrollment token' -f $script:TokenSource)
    }
    if ($needsToken -and -not $script:Token) {
        Exit-Install 2 'no enrollment token: put enroll.token next to the installer, or set KEYWARDEN_ENROLLMENT_TOKEN (never on the command line)'
    }

    # ---- files ------------------------------------------------------------------------------
    Initialize-StateFolder
    if ($needsToken) {
        Write-TokenFile -Source $script:TokenSource
    } elseif ($script:Token) {
        Write-Output ('Already enrolled with {0}: the enrollment token is not needed and was not written.' -f $rememberedUrl)
    }
    $script:Token = $null
    # The first run must read the token from the one-shot file only, so that it is deleted there.
    [Environment]::SetEnvironmentVariable('KEYWARDEN_ENROLLMENT_TOKEN', $null)

    $null = New-Item -ItemType Directory -Path $InstallPath -Force
    Copy-Item -LiteralPath $AgentPath -Destination $installedAgent -Force
    # A copy of a browser download keeps its "downloaded from the Internet" mark; drop it.
    Unblock-File -LiteralPath $installedAgent
    if ($legacyFolder -and $legacyFolder -ne $InstallPath) { Remove-InstalledFiles $legacyFolder }

    # ---- scheduled task ---------------------------------------------------------------------
    $agentArguments = @()
    if ($ServerUrl) { $agentArguments += ('-ServerUrl "{0}"' -f $ServerUrl) }
    if ($CertificatePin) { $agentArguments += ('-CertificatePin "{0}"' -f $CertificatePin) }
    if ($Proxy) { $agentArguments += ('-Proxy "{0}"' -f $Proxy) }
    $taskArguments = ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{0}" {1}' -f $installedAgent, ($agentArguments -join ' ')).TrimEnd()
    $action = New-ScheduledTaskAction -Execute $taskPowerShell -Argument $taskArguments -WorkingDirectory $InstallPath
    # Hourly: a daily trigger repeated every hour for a day works on every Windows 10/11 and
    # Server 2016+ build (an endless repetition is not accepted everywhere).
    $hourly = New-ScheduledTaskTrigger -Daily -At '00:05' -RandomDelay (New-TimeSpan -Minutes 30)
    $hourly.Repetition = (New-ScheduledTaskTrigger -Once -At '00:05' -RepetitionInterval (New-TimeSpan -Hours 1) -RepetitionDuration (New-TimeSpan -Days 1)).Repetition
    $startup = New-ScheduledTaskTrigger -AtStartup
    $startup.Delay = 'PT5M'
    # Battery: Task Scheduler's defaults would skip every run while a laptop is unplugged.
    # Not -RunOnlyIfNetworkAvailable: a start without network is skipped, not postponed, which
    # would drop the start-up run on Wi-Fi laptops; the agent itself fails fast (exit 1) offline.
    $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -StartWhenAvailable `
        -ExecutionTimeLimit (New-TimeSpan -Minutes 30) -MultipleInstances IgnoreNew
    $taskPrincipal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
    $null = Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger @($hourly, $startup) -Settings $settings `
        -Principal $taskPrincipal -Description 'Keywarden BitLocker recovery-key agent (agent/README.md)' -Force
    Write-Output ('Agent {0} installed in {1}; task "{2}" runs it hourly and at start-up, also on battery.' -f $agentVersion, $InstallPath, $TaskName)
} catch {
    Exit-Install 1 ($_.Exception.Message)
}

# ---- first run: informational, it never fails the install (the task retries) ------------------
if ($SkipFirstRun) {
    Exit-Install 0 ('installed agent {0}; first run skipped, the task runs it within the hour' -f $agentVersion)
}
$lastLine = ''
$firstExit = $null
try {
    $runArguments = @('-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', $installedAgent)
    if ($ServerUrl) { $runArguments += @('-ServerUrl', $ServerUrl) }
    if ($CertificatePin) { $runArguments += @('-CertificatePin', $CertificatePin) }
    if ($Proxy) { $runArguments += @('-Proxy', $Proxy) }
    # Native stderr lines must not become terminating errors here.
    $ErrorActionPreference = 'Continue'
    $output = & $powershell @runArguments 2>&1
    $firstExit = $LASTEXITCODE
    foreach ($line in @($output)) {
        $text = [string]$line
        if (-not [string]::IsNullOrWhiteSpace($text)) { $lastLine = $text.Trim() }
    }
} catch {
    $lastLine = 'could not start the agent: ' + $_.Exception.Message
}
if ($null -eq $firstExit) { $firstExit = 1 }
Write-Output ('First agent run: exit {0}. {1}' -f $firstExit, $lastLine)
Exit-Install 0 ('installed agent {0}; first run exit {1} (the hourly task retries; see {2}\agent.log)' -f $agentVersion, $firstExit, $statePath)
