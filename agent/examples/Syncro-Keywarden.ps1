# Keywarden agent: wrapper for RMMs that define script variables inside the script (Syncro) or
# cannot pass parameters.
#
# Why a wrapper: Keywarden-Agent.ps1 starts with a param() block, which must be the first statement
# of a script. An RMM that puts variable assignments in front of the script text would break it.
# This file has no param() block: it copies the RMM's variables into the environment variables the
# agent reads, then runs the agent text pasted between the braces below.
#
# Syncro: Scripts > New Script, language PowerShell, run as System. Define these script variables
# (use "platform" variables bound to customer custom fields for values that differ per customer,
# such as the enrollment token):
#   KeywardenServerUrl        https://keywarden.example.com
#   KeywardenEnrollmentToken  kwe_... (one per customer)
#   KeywardenCertificatePin   optional, SHA-256 of the server certificate
#   KeywardenProxy            optional, http://proxy:8080
# See agent/README.md, section Syncro.

if ($KeywardenServerUrl) { $env:KEYWARDEN_SERVER_URL = [string]$KeywardenServerUrl }
if ($KeywardenEnrollmentToken) { $env:KEYWARDEN_ENROLLMENT_TOKEN = [string]$KeywardenEnrollmentToken }
if ($KeywardenCertificatePin) { $env:KEYWARDEN_CERT_PIN = [string]$KeywardenCertificatePin }
if ($KeywardenProxy) { $env:KEYWARDEN_PROXY = [string]$KeywardenProxy }

$KeywardenAgent = {
# ----- paste the complete contents of Keywarden-Agent.ps1 below this line (keep the braces) -----

# ----- end of Keywarden-Agent.ps1 -----
}

if ($null -eq $KeywardenAgent.Ast.ParamBlock) {
    Write-Output 'Keywarden exit=2: Keywarden-Agent.ps1 was not pasted into this wrapper.'
    exit 2
}
# The agent ends with "exit <code>", which ends this script with the agent's exit code.
& $KeywardenAgent
exit $LASTEXITCODE
