<#
.SYNOPSIS
    Prints the pins of the TLS certificate a Keywarden server presents (or of a certificate file),
    for the agent's -CertificatePin.

.DESCRIPTION
    Two kinds of pin, both accepted by the agent:

      sha256/<base64>  SHA-256 of the certificate's public key (the DER SubjectPublicKeyInfo),
                       as in HTTP public-key pinning. It stays the same when the certificate is
                       renewed with the same key: recommended, with certbot --reuse-key (or your
                       CA's "renew with the existing key").
      64 hex digits    SHA-256 of the whole certificate (its DER bytes). It changes at every
                       renewal; the same value as "openssl x509 -noout -fingerprint -sha256"
                       without the colons.

    With -ServerUrl it connects (TLS 1.2, or 1.3 where Windows offers it) and accepts whatever
    certificate the server presents, only to read it. Run it from a network you trust (ideally on
    the server itself with https://localhost:<port>, or compare with the openssl commands in
    agent/README.md): a pin read through an intercepting proxy would pin the proxy.

.PARAMETER ServerUrl
    https://keywarden.example.com (a port may be given: https://host:8443).

.PARAMETER CertificateFile
    A certificate file (.cer/.crt/.pem, DER or PEM) instead of a live server.

.EXAMPLE
    .\Get-KeywardenCertificatePin.ps1 -ServerUrl https://keywarden.example.com

.EXAMPLE
    .\Get-KeywardenCertificatePin.ps1 -CertificateFile C:\temp\keywarden.crt
#>
[CmdletBinding(DefaultParameterSetName = 'Server')]
param(
    [Parameter(Mandatory = $true, ParameterSetName = 'Server')]
    [string]$ServerUrl,
    [Parameter(Mandatory = $true, ParameterSetName = 'File')]
    [string]$CertificateFile
)
$ErrorActionPreference = 'Stop'

function ConvertTo-DerLength {
    # DER length octets: short form below 128, else 0x80 + number of length bytes, big-endian.
    param([int]$Length)
    if ($Length -lt 128) { return , [byte[]]@($Length) }
    $bytes = [System.Collections.Generic.List[byte]]::new()
    while ($Length -gt 0) { $bytes.Insert(0, [byte]($Length -band 0xFF)); $Length = $Length -shr 8 }
    return , [byte[]](@([byte](0x80 + $bytes.Count)) + $bytes.ToArray())
}

function New-DerElement {
    param([byte]$Tag, [byte[]]$Content)
    if ($null -eq $Content) { $Content = [byte[]]@() }
    return , [byte[]](@($Tag) + (ConvertTo-DerLength $Content.Length) + $Content)
}

function ConvertTo-DerOid {
    # "1.2.840.113549.1.1.1" -> 06 09 2A 86 48 86 F7 0D 01 01 01
    param([string]$Dotted)
    $arcs = @($Dotted.Split('.') | ForEach-Object { [long]$_ })
    $content = [System.Collections.Generic.List[byte]]::new()
    $content.Add([byte](40 * $arcs[0] + $arcs[1]))
    for ($i = 2; $i -lt $arcs.Count; $i++) {
        $value = $arcs[$i]
        $chunk = [System.Collections.Generic.List[byte]]::new()
        $chunk.Add([byte]($value -band 0x7F))
        $value = $value -shr 7
        while ($value -gt 0) { $chunk.Insert(0, [byte](0x80 -bor ($value -band 0x7F))); $value = $value -shr 7 }
        $content.AddRange($chunk)
    }
    return New-DerElement 0x06 $content.ToArray()
}

function Get-SpkiDer {
    # SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING subjectPublicKey }
    # built from the parts .NET Framework exposes (it has no ExportSubjectPublicKeyInfo).
    param([System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate)
    $key = $Certificate.PublicKey
    $algorithm = ConvertTo-DerOid $key.Oid.Value
    # RSA: NULL (05 00); EC: the curve OID; some algorithms: no parameters at all.
    $parameters = [byte[]]@()
    if ($key.EncodedParameters -and $key.EncodedParameters.RawData) { $parameters = [byte[]]$key.EncodedParameters.RawData }
    $algorithmIdentifier = New-DerElement 0x30 ([byte[]]($algorithm + $parameters))
    # BIT STRING content: the number of unused bits (0), then the key bytes.
    $bitString = New-DerElement 0x03 ([byte[]](@([byte]0) + [byte[]]$key.EncodedKeyValue.RawData))
    return New-DerElement 0x30 ([byte[]]($algorithmIdentifier + $bitString))
}

function Get-Sha256 {
    param([byte[]]$Data)
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { return , $sha.ComputeHash($Data) } finally { $sha.Dispose() }
}

function Read-ServerCertificate {
    param([string]$Url)
    $uri = [Uri]$Url
    $protocols = [System.Security.Authentication.SslProtocols]::Tls12
    if ([enum]::GetNames([System.Security.Authentication.SslProtocols]) -contains 'Tls13') {
        $protocols = $protocols -bor [System.Security.Authentication.SslProtocols]'Tls13'
    }
    foreach ($attempt in @($protocols, [System.Security.Authentication.SslProtocols]::Tls12)) {
        $client = [System.Net.Sockets.TcpClient]::new($uri.Host, $uri.Port)
        try {
            # Accept any certificate: this script only reads it. The callback runs synchronously here.
            $stream = [System.Net.Security.SslStream]::new($client.GetStream(), $false, { $true })
            try {
                $stream.AuthenticateAsClient($uri.Host, $null, $attempt, $false)
                return [System.Security.Cryptography.X509Certificates.X509Certificate2]::new($stream.RemoteCertificate)
            } catch {
                # Windows builds without TLS 1.3 refuse the combined setting: try TLS 1.2 alone.
                if ($attempt -eq [System.Security.Authentication.SslProtocols]::Tls12) { throw }
            } finally {
                $stream.Dispose()
            }
        } finally {
            $client.Dispose()
        }
    }
}

if ($PSCmdlet.ParameterSetName -eq 'File') {
    $path = (Resolve-Path -LiteralPath $CertificateFile).ProviderPath
    $certificate = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new($path)
} else {
    $certificate = Read-ServerCertificate $ServerUrl
}

$spkiPin = 'sha256/' + [Convert]::ToBase64String((Get-Sha256 (Get-SpkiDer $certificate)))
$certificatePin = [System.BitConverter]::ToString((Get-Sha256 $certificate.RawData)).Replace('-', '')

[pscustomobject]@{
    Subject        = $certificate.Subject
    Issuer         = $certificate.Issuer
    NotAfter       = $certificate.NotAfter
    PublicKey      = $certificate.PublicKey.Oid.FriendlyName
    PublicKeyPin   = $spkiPin
    CertificatePin = $certificatePin
} | Format-List

Write-Output 'Recommended (public key; survives renewals made with certbot --reuse-key):'
Write-Output ('  -CertificatePin "{0}"' -f $spkiPin)
Write-Output 'Certificate (changes at every renewal):'
Write-Output ('  -CertificatePin "{0}"' -f $certificatePin)
