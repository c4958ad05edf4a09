<#
.SYNOPSIS
    Detection / monitor script for the Keywarden agent: healthy when the agent checked in recently.

.DESCRIPTION
    Reads lastCheckinAt from %ProgramData%\Keywarden\agent.json, which the agent writes after each
    successful check-in (not merely after an attempt). Needs SYSTEM or an elevated administrator:
    the state folder is readable by nobody else.

      exit 0  the last check-in is at most MaxAgeMinutes old
      exit 1  not enrolled, state unreadable, never checked in, or the last check-in is older

    Intune Remediations: upload as the detection script (no parameters: the default of 55 minutes
    makes an hourly schedule run the agent every hour). Exit 1 makes Intune run the remediation
    script, which is Keywarden-Agent.ps1.

    RMM monitors (Datto RMM, N-able, NinjaOne, ...): run it every hour or so with a larger
    -MaxAgeMinutes (e.g. 180) and alert on exit code 1. KEYWARDEN_MAX_AGE_MINUTES overrides the
    default when the RMM passes environment variables instead of parameters. With -DattoMonitor
    (or KEYWARDEN_OUTPUT=datto) the status line is written between the <-Start Result-> and
    <-End Result-> markers that Datto RMM monitor components read.

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

function Write-Result {
    param([string]$Message, [int]$Code)
    if ($DattoMonitor) {
        Write-Output '<-Start Result->'
        Write-Output ('STATUS=' + $Message)
        Write-Output '<-End Result->'
    } else {
        Write-Output $Message
    }
    exit $Code
}

$stateFile = Join-Path ([Environment]::ExpandEnvironmentVariables($StatePath)) 'agent.json'
if (-not (Test-Path -LiteralPath $stateFile -PathType Leaf)) {
    Write-Result 'Keywarden: not enrolled (no agent.json)' 1
}
try {
    $state = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($stateFile))
} catch {
    Write-Result ('Keywarden: agent.json unreadable: ' + $_.Exception.Message) 1
}

$last = $state.lastCheckinAt
if ($null -eq $last -or [string]::IsNullOrWhiteSpace([string]$last)) {
    Write-Result ('Keywarden: device {0} enrolled but never checked in' -f $state.deviceId) 1
}
if ($last -isnot [datetime]) {
    $parsedTime = [datetime]::MinValue
    if (-not [datetime]::TryParse([string]$last, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind, [ref]$parsedTime)) {
        Write-Result ('Keywarden: unreadable lastCheckinAt "{0}"' -f $last) 1
    }
    $last = $parsedTime
}
$ageMinutes = [int][math]::Floor(((Get-Date).ToUniversalTime() - $last.ToUniversalTime()).TotalMinutes)
if ($ageMinutes -gt $MaxAgeMinutes) {
    Write-Result ('Keywarden: last check-in {0} minutes ago (limit {1}), device {2}' -f $ageMinutes, $MaxAgeMinutes, $state.deviceId) 1
}
Write-Result ('Keywarden: OK, last check-in {0} minutes ago, device {1}' -f $ageMinutes, $state.deviceId) 0
