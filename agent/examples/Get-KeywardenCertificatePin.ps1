<#
.SYNOPSIS
    Prints the SHA-256 of the TLS certificate a Keywarden server presents, for -CertificatePin.

.DESCRIPTION
    Connects to the server (TLS 1.2), accepts whatever certificate it presents (only to read it),
    and prints the SHA-256 of the certificate's DER bytes - the value the agent pins. It is the
    same value as "openssl x509 -noout -fingerprint -sha256" without the colons.

    Run it from a network you trust (ideally on the server itself with https://localhost:<port>,
    or compare with the openssl output on the server): a pin read through an intercepting proxy
    would pin the proxy.

.PARAMETER ServerUrl
    https://keywarden.example.com (a port may be given: https://host:8443).

.EXAMPLE
    .\Get-KeywardenCertificatePin.ps1 -ServerUrl https://keywarden.example.com
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [string]$ServerUrl
)
$ErrorActionPreference = 'Stop'
$uri = [Uri]$ServerUrl
$client = [System.Net.Sockets.TcpClient]::new($uri.Host, $uri.Port)
try {
    # Accept any certificate: this script only reads it. The callback runs synchronously here.
    $stream = [System.Net.Security.SslStream]::new($client.GetStream(), $false, { $true })
    try {
        $stream.AuthenticateAsClient($uri.Host, $null, [System.Security.Authentication.SslProtocols]::Tls12, $false)
        $certificate = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new($stream.RemoteCertificate)
        $sha = [System.Security.Cryptography.SHA256]::Create()
        $pin = [System.BitConverter]::ToString($sha.ComputeHash($certificate.RawData)).Replace('-', '')
        [pscustomobject]@{
            Subject  = $certificate.Subject
            Issuer   = $certificate.Issuer
            NotAfter = $certificate.NotAfter
            Pin      = $pin
        } | Format-List
        Write-Output ('-CertificatePin {0}' -f $pin)
    } finally {
        $stream.Dispose()
    }
} finally {
    $client.Dispose()
}
