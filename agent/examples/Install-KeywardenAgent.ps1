<#
.SYNOPSIS
    Installs the Keywarden agent as an hourly SYSTEM scheduled task, enrolls the device once, and
    can remove it again.

.DESCRIPTION
    For deployment tools that run something once (an Intune Win32 app, an RMM "install" script, a
    GPO startup script) rather than every hour:

      1. copies Keywarden-Agent.ps1 to InstallPath (default %ProgramFiles%\Keywarden, writable by
         administrators only - a script that runs as SYSTEM must not be writable by users);
      2. runs it once with the server URL and enrollment token, so the device enrolls now (the
         token is handed over in an environment variable, and is not stored in the task);
      3. registers the scheduled task "Keywarden Agent": SYSTEM, highest privileges, every hour
         (with a random delay of up to 30 minutes so that devices do not all check in at once),
         runs when a start was missed, stops after 30 minutes. The task passes only the
         certificate pin and proxy, if any; the agent remembers the server URL after enrolling.

    Exit code: the agent's exit code from step 2 (0 ok, 1-4 see agent/README.md), or 2 when
    installing failed. -Uninstall removes the task and the installed script (and with
    -RemoveState also %ProgramData%\Keywarden, i.e. the device credential).

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\Install-KeywardenAgent.ps1 -ServerUrl https://keywarden.example.com -EnrollmentToken kwe_xxxxxxxx

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\Install-KeywardenAgent.ps1 -Uninstall -RemoveState
#>
[CmdletBinding()]
param(
    [string]$ServerUrl,
    [string]$EnrollmentToken,
    [string]$CertificatePin,
    [string]$Proxy,
    [string]$AgentPath = (Join-Path $PSScriptRoot 'Keywarden-Agent.ps1'),
    [string]$InstallPath = (Join-Path $env:ProgramFiles 'Keywarden'),
    [string]$TaskName = 'Keywarden Agent',
    [switch]$Uninstall,
    [switch]$RemoveState
)
$ErrorActionPreference = 'Stop'
# RMMs that pass environment variables (Datto RMM site variables, ...) instead of parameters.
if (-not $ServerUrl) { $ServerUrl = $env:KEYWARDEN_SERVER_URL }
if (-not $EnrollmentToken) { $EnrollmentToken = $env:KEYWARDEN_ENROLLMENT_TOKEN }
if (-not $CertificatePin) { $CertificatePin = $env:KEYWARDEN_CERT_PIN }
if (-not $Proxy) { $Proxy = $env:KEYWARDEN_PROXY }
if (-not (Test-Path -LiteralPath $AgentPath -PathType Leaf)) {
    # An RMM that attaches files usually puts them in the working directory.
    $candidate = Join-Path (Get-Location).Path 'Keywarden-Agent.ps1'
    if (Test-Path -LiteralPath $candidate -PathType Leaf) { $AgentPath = $candidate }
}
$powershell = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
if ([Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess) {
    # From a 32-bit host, System32 is redirected: point the task at the 64-bit PowerShell.
    $powershell = Join-Path $env:SystemRoot 'SysNative\WindowsPowerShell\v1.0\powershell.exe'
}
$installedAgent = Join-Path $InstallPath 'Keywarden-Agent.ps1'

try {
    if ($Uninstall) {
        if (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue) {
            Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
        }
        if (Test-Path -LiteralPath $InstallPath) { Remove-Item -LiteralPath $InstallPath -Recurse -Force }
        if ($RemoveState) {
            $state = Join-Path $env:ProgramData 'Keywarden'
            if (Test-Path -LiteralPath $state) { Remove-Item -LiteralPath $state -Recurse -Force }
        }
        Write-Output 'Keywarden agent removed.'
        exit 0
    }

    if (-not (Test-Path -LiteralPath $AgentPath -PathType Leaf)) {
        throw ('Keywarden-Agent.ps1 not found at {0} (use -AgentPath)' -f $AgentPath)
    }
    $null = New-Item -ItemType Directory -Path $InstallPath -Force
    Copy-Item -LiteralPath $AgentPath -Destination $installedAgent -Force

    # Enroll and check in once now.
    if ($ServerUrl) { $env:KEYWARDEN_SERVER_URL = $ServerUrl }
    if ($EnrollmentToken) { $env:KEYWARDEN_ENROLLMENT_TOKEN = $EnrollmentToken }
    if ($CertificatePin) { $env:KEYWARDEN_CERT_PIN = $CertificatePin }
    if ($Proxy) { $env:KEYWARDEN_PROXY = $Proxy }
    & $powershell -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $installedAgent
    $agentExit = $LASTEXITCODE

    # The hourly task: a daily trigger repeated every hour for a day works on every Windows 10/11
    # and Server 2016+ build (an endless repetition is not accepted everywhere).
    $arguments = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{0}"' -f $installedAgent
    if ($CertificatePin) { $arguments += (' -CertificatePin "{0}"' -f $CertificatePin) }
    if ($Proxy) { $arguments += (' -Proxy "{0}"' -f $Proxy) }
    $action = New-ScheduledTaskAction -Execute $powershell -Argument $arguments
    $trigger = New-ScheduledTaskTrigger -Daily -At '00:05' -RandomDelay (New-TimeSpan -Minutes 30)
    $hourly = New-ScheduledTaskTrigger -Once -At '00:05' -RepetitionInterval (New-TimeSpan -Hours 1) -RepetitionDuration (New-TimeSpan -Days 1)
    $trigger.Repetition = $hourly.Repetition
    $settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -ExecutionTimeLimit (New-TimeSpan -Minutes 30) -MultipleInstances IgnoreNew
    $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
    $null = Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Settings $settings -Principal $principal -Description 'Keywarden BitLocker recovery-key agent (agent/README.md)' -Force

    Write-Output ('Keywarden agent installed in {0}; scheduled task "{1}" runs it hourly. First run: exit {2}.' -f $InstallPath, $TaskName, $agentExit)
    exit $agentExit
} catch {
    Write-Output ('Keywarden install failed: ' + $_.Exception.Message)
    exit 2
}
