# Fetches the official nginx.org build of nginx for Windows, checks its SHA-256 against the pin in
# versions.env, and puts it where Tauri expects the externalBin sidecar:
#
#   src-tauri\binaries\nginx-x86_64-pc-windows-msvc.exe   bundled as nginx.exe next to the app
#   src-tauri\binaries\nginx-licenses\                    the zip's docs\ licence files
#
# Usage (PowerShell 5.1 or 7, from anywhere):
#   powershell -ExecutionPolicy Bypass -File nginx-bundle\fetch-windows.ps1
#   pwsh nginx-bundle/fetch-windows.ps1 -OutDir C:\somewhere -Triple x86_64-pc-windows-msvc
#
# Nothing it downloads is committed: the zip stays in target\nginx-bundle (gitignored) and the
# output directory gets a .gitignore of its own.
[CmdletBinding()]
param(
    [string]$OutDir = '',
    [string]$WorkDir = '',
    [string]$Triple = 'x86_64-pc-windows-msvc'
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'  # Invoke-WebRequest is very slow with the progress bar

$here = $PSScriptRoot
$root = Split-Path -Parent $here
if (-not $OutDir) { $OutDir = Join-Path $root 'src-tauri\binaries' }
if (-not $WorkDir) { $WorkDir = Join-Path $root 'target\nginx-bundle' }

# versions.env: KEY=VALUE lines, '#' comments; the same file the bash scripts source.
$pins = @{}
foreach ($line in Get-Content -LiteralPath (Join-Path $here 'versions.env')) {
    $t = $line.Trim()
    if ($t -eq '' -or $t.StartsWith('#')) { continue }
    if ($t -notmatch '^([A-Z0-9_]+)=(\S+)$') { throw "versions.env: cannot parse line: $line" }
    $pins[$Matches[1]] = $Matches[2]
}
foreach ($key in 'NGINX_VERSION', 'NGINX_WINDOWS_ZIP_URL', 'NGINX_WINDOWS_ZIP_SHA256') {
    if (-not $pins.ContainsKey($key)) { throw "versions.env: $key is missing" }
}
$version = $pins['NGINX_VERSION']
$url = $pins['NGINX_WINDOWS_ZIP_URL']
$want = $pins['NGINX_WINDOWS_ZIP_SHA256'].ToLowerInvariant()

New-Item -ItemType Directory -Force -Path $WorkDir, $OutDir | Out-Null
$ignore = Join-Path $OutDir '.gitignore'
if (-not (Test-Path -LiteralPath $ignore)) { Set-Content -LiteralPath $ignore -Value '*' -Encoding ascii }

$zip = Join-Path $WorkDir ([IO.Path]::GetFileName(([Uri]$url).AbsolutePath))
$have = if (Test-Path -LiteralPath $zip) { (Get-FileHash -LiteralPath $zip -Algorithm SHA256).Hash.ToLowerInvariant() } else { '' }
if ($have -ne $want) {
    Write-Host "==> downloading $url"
    [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
    Invoke-WebRequest -Uri $url -OutFile "$zip.part" -UseBasicParsing
    Move-Item -Force -LiteralPath "$zip.part" -Destination $zip
}
$got = (Get-FileHash -LiteralPath $zip -Algorithm SHA256).Hash.ToLowerInvariant()
if ($got -ne $want) {
    Remove-Item -Force -LiteralPath $zip
    throw "SHA-256 mismatch for ${url}: expected $want, got $got (file removed)"
}
Write-Host "==> verified $([IO.Path]::GetFileName($zip)) $got"

$unpacked = Join-Path $WorkDir "nginx-$version-windows"
if (Test-Path -LiteralPath $unpacked) { Remove-Item -Recurse -Force -LiteralPath $unpacked }
Expand-Archive -LiteralPath $zip -DestinationPath $unpacked
$top = Join-Path $unpacked "nginx-$version"
$exe = Join-Path $top 'nginx.exe'
if (-not (Test-Path -LiteralPath $exe)) { throw "the zip has no nginx-$version\nginx.exe" }

# Which machine the exe is for (the official build has long been 32-bit x86; it runs on x64
# Windows either way). The file name carries the app's triple because that is what Tauri matches.
$bytes = [IO.File]::ReadAllBytes($exe)
$pe = [BitConverter]::ToInt32($bytes, 0x3C)
$machine = [BitConverter]::ToUInt16($bytes, $pe + 4)
$machines = @{ 0x014C = 'x86 (32-bit)'; 0x8664 = 'x64'; 0xAA64 = 'arm64' }
$arch = if ($machines.ContainsKey([int]$machine)) { $machines[[int]$machine] } else { '0x{0:X}' -f $machine }
Write-Host "==> nginx.exe is a $arch executable"

# The engine needs auth_request; the official build has it, but check rather than assume.
# nginx -V prints to stderr, which Windows PowerShell 5.1 turns into errors under 'Stop'; a plain
# .NET process sidesteps that. -V only prints; it is run from the unpacked tree all the same.
$psi = New-Object System.Diagnostics.ProcessStartInfo
$psi.FileName = $exe
$psi.Arguments = '-V'
$psi.WorkingDirectory = $top
$psi.UseShellExecute = $false
$psi.RedirectStandardError = $true
$psi.RedirectStandardOutput = $true
$p = [System.Diagnostics.Process]::Start($psi)
$v = $p.StandardError.ReadToEnd() + $p.StandardOutput.ReadToEnd()
$p.WaitForExit()
if ($p.ExitCode -ne 0) { throw "nginx.exe -V failed ($($p.ExitCode)): $v" }
foreach ($module in 'http_auth_request_module', 'http_ssl_module') {
    if ($v -notmatch [regex]::Escape("--with-$module")) { throw "nginx.exe lacks ${module}: $v" }
}
Write-Host "==> nginx.exe -V: $($v.Split("`n")[0]); has auth_request and ssl"

$dest = Join-Path $OutDir "nginx-$Triple.exe"
Copy-Item -Force -LiteralPath $exe -Destination $dest
Write-Host "==> wrote $dest"

# Licences: docs\LICENSE (nginx) plus the OpenSSL, PCRE and zlib licences of the libraries the
# official build links in statically.
$licenses = Join-Path $OutDir 'nginx-licenses'
if (Test-Path -LiteralPath $licenses) { Remove-Item -Recurse -Force -LiteralPath $licenses }
New-Item -ItemType Directory -Force -Path $licenses | Out-Null
$found = @(Get-ChildItem -LiteralPath (Join-Path $top 'docs') -File | Where-Object { $_.Name -match 'LICEN[CS]E' })
if ($found.Count -eq 0) { throw "no licence files in nginx-$version\docs" }
foreach ($f in $found) {
    $name = if ($f.Name -eq 'LICENSE') { 'nginx.LICENSE' } else { $f.Name }
    Copy-Item -Force -LiteralPath $f.FullName -Destination (Join-Path $licenses $name)
}
Write-Host "==> licences in ${licenses}: $(($found | ForEach-Object { $_.Name }) -join ', ')"
