<#
.SYNOPSIS
    Detection / monitor script for the Keywarden agent: healthy when the agent checked in recently.
    It also prints how the agent's last run ended.

.DESCRIPTION
    Reads %ProgramData%\Keywarden\agent.json, which the agent writes:
      lastCheckinAt                          after each successful check-in (not merely an attempt);
      lastRunAt, lastExitCode, lastMessage   at the end of every run, successful or not.
    Needs SYSTEM or an elevated administrator: the state folder is readable by nobody else.

      exit 0  the last check-in is at most MaxAgeMinutes old
      exit 1  not enrolled, state unreadable, never checked in, or the last check-in is older

    The output is one line: the verdict, then the last run, e.g.
      Keywarden: OK, last check-in 12 minutes ago, device 0f3c...; last run 2026-11-26T10:00:03Z exit 4: rotate C: failed: ...

    Intune Remediations: upload as the detection script (no parameters: the default of 55 minutes
    makes an hourly schedule run the agent every hour). Exit 1 makes Intune run the remediation.
    Intune shows the output of this script ("Pre-remediation detection output" and
    "Post-remediation detection output"), but not the remediation's own output: this line is how
    the agent's result reaches the Intune report.

    RMM monitors (Datto RMM, N-able, NinjaOne, ...): run it every hour or so with a larger
    -MaxAgeMinutes (e.g. 1440) and alert on exit code 1. KEYWARDEN_MAX_AGE_MINUTES overrides the
    default when the RMM passes environment variables instead of parameters. With -DattoMonitor
    (or KEYWARDEN_OUTPUT=datto) the line is written between the <-Start Result-> and
    <-End Result-> markers that Datto RMM monitor components read.

    agent.json also holds the device credential. It is read with .NET calls and a pattern, never
    handed to a cmdlet such as ConvertFrom-Json, whose arguments Module Logging (event 4103) would
    record.

.PARAMETER MaxAgeMinutes
    Oldest acceptable check-in, in minutes. Default 55.

.PARAMETER StatePath
    The agent's state folder. Default %ProgramData%\Keywarden.

.PARAMETER DattoMonitor
    Write the result between Datto RMM's <-Start Result-> / <-End Result-> markers.
#>
[CmdletBinding()]
param(
    [int]$MaxAgeMinutes = 55,
    [string]$StatePath = "$env:ProgramData\Keywarden",
    [switch]$DattoMonitor
)

if (-not $PSBoundParameters.ContainsKey('MaxAgeMinutes') -and $env:KEYWARDEN_MAX_AGE_MINUTES) {
    $parsed = 0
    if ([int]::TryParse($env:KEYWARDEN_MAX_AGE_MINUTES, [ref]$parsed) -and $parsed -gt 0) { $MaxAgeMinutes = $parsed }
}
if ($env:KEYWARDEN_OUTPUT -eq 'datto') { $DattoMonitor = $true }

$script:LastRun = ''

function Write-Result {
    param([string]$Message, [int]$Code)
    $line = $Message + $script:LastRun
    # Intune keeps at most 2048 characters of detection output.
    if ($line.Length -gt 1500) { $line = $line.Substring(0, 1500) + '...' }
    if ($DattoMonitor) {
        Write-Output '<-Start Result->'
        Write-Output ('STATUS=' + $line)
        Write-Output '<-End Result->'
    } else {
        Write-Output $line
    }
    exit $Code
}

$stateFile = Join-Path ([Environment]::ExpandEnvironmentVariables($StatePath)) 'agent.json'
if (-not [System.IO.File]::Exists($stateFile)) {
    Write-Result 'Keywarden: not enrolled (no agent.json)' 1
}
try {
    $text = [System.IO.File]::ReadAllText($stateFile)
} catch {
    Write-Result ('Keywarden: agent.json unreadable: ' + $_.Exception.Message) 1
}

# Top-level values of agent.json: strings (JSON-escaped), numbers or null.
$state = @{}
foreach ($name in @('deviceId', 'lastCheckinAt', 'lastRunAt', 'lastExitCode', 'lastMessage')) {
    $match = [regex]::Match($text, '"' + $name + '"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
    if (-not $match.Success) { continue }
    $raw = $match.Groups[1].Value
    if ($raw.StartsWith('"')) { $raw = [regex]::Unescape($raw.Substring(1, $raw.Length - 2)) }
    $state[$name] = $raw
}
$text = $null

if ($state.ContainsKey('lastRunAt') -or $state.ContainsKey('lastExitCode')) {
    $message = [string]$state['lastMessage']
    # lastMessage is scrubbed by the agent already; this is a second line of defence for a log
    # line that leaves the device (no 48-digit password, no token).
    $message = [regex]::Replace($message, '\d{6}([^\d]?\d{6}){7}', '[redacted]')
    $message = [regex]::Replace($message, 'kw[de]?_[A-Za-z0-9_-]{8,}', '[redacted]')
    $message = [regex]::Replace($message, '[\r\n]+', ' ')
    $script:LastRun = '; last run {0} exit {1}: {2}' -f $state['lastRunAt'], $state['lastExitCode'], $message
}

$device = $state['deviceId']
$last = $state['lastCheckinAt']
if ([string]::IsNullOrWhiteSpace($device)) {
    # agent.json also records runs that have not enrolled yet (no token, server unreachable).
    Write-Result 'Keywarden: not enrolled yet' 1
}
if ([string]::IsNullOrWhiteSpace($last)) {
    Write-Result ('Keywarden: device {0} enrolled but never checked in' -f $device) 1
}
$parsedTime = [datetime]::MinValue
if (-not [datetime]::TryParse($last, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind, [ref]$parsedTime)) {
    Write-Result ('Keywarden: unreadable lastCheckinAt "{0}"' -f $last) 1
}
$ageMinutes = [int][math]::Floor(((Get-Date).ToUniversalTime() - $parsedTime.ToUniversalTime()).TotalMinutes)
if ($ageMinutes -gt $MaxAgeMinutes) {
    Write-Result ('Keywarden: last check-in {0} minutes ago (limit {1}), device {2}' -f $ageMinutes, $MaxAgeMinutes, $device) 1
}
Write-Result ('Keywarden: OK, last check-in {0} minutes ago, device {1}' -f $ageMinutes, $device) 0
