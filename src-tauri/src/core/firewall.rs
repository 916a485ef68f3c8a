//! Windows Firewall, when other devices on the network may reach the apps.
//!
//! The first time nginx listens beyond this computer, Windows Defender Firewall asks whether to
//! allow it; "Cancel" quietly adds a rule that *blocks* nginx, and block rules win over allow
//! rules. Phones then cannot connect, while everything here looks ready. So when the person turns
//! "Other devices on my network" on, SimpleOTP asks Windows once (the system's own administrator
//! prompt) to allow exactly two things on private networks only: TCP to the bundled nginx (the
//! apps' ports) and UDP 5353 to SimpleOTP itself (`<computer>.local` over mDNS), and to drop any
//! block rule a cancelled prompt left for nginx. If the person says no, or it fails, the window
//! says that other devices may be blocked, and how to be asked again, instead of just "ready".
//!
//! macOS's application firewall (off by default) asks once per program as well; README's
//! Troubleshooting says where to allow SimpleOTP and nginx. Linux desktops have no such prompt.

// Only Windows runs these; the tests check them on every OS.
#![cfg_attr(not(windows), allow(dead_code))]

use std::path::Path;

use base64::Engine as _;

/// What the window says while other devices may still be blocked.
pub const BLOCKED_WARNING: &str = "Windows Firewall may block other devices: SimpleOTP was not allowed through it. \
Turn \"Other devices on my network\" off and on again to be asked again, or allow nginx for private networks in \
Windows Security › Firewall & network protection › Allow an app through firewall.";

/// The PowerShell script, run as administrator, that allows `nginx` (TCP, the apps) and `app`
/// (UDP 5353, mDNS) in on private networks, replacing SimpleOTP's earlier rules and removing
/// block rules for that nginx. Paths go in single-quoted strings (a `'` doubled), so no path can
/// end a string early.
pub fn allow_script(nginx: &Path, app: &Path) -> String {
    let quote = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', "''"));
    let (nginx, app) = (quote(nginx), quote(app));
    [
        "$ErrorActionPreference = 'Stop'".to_string(),
        format!("Remove-NetFirewallRule -Group '{GROUP}' -ErrorAction SilentlyContinue"),
        format!(
            "Get-NetFirewallApplicationFilter -Program {nginx} -ErrorAction SilentlyContinue | Get-NetFirewallRule | \
             Where-Object {{ $_.Direction -eq 'Inbound' -and $_.Action -eq 'Block' }} | Remove-NetFirewallRule"
        ),
        format!(
            "New-NetFirewallRule -Group '{GROUP}' -DisplayName 'SimpleOTP: apps for other devices (nginx)' -Direction Inbound \
             -Action Allow -Profile Private -Protocol TCP -Program {nginx} | Out-Null"
        ),
        format!(
            "New-NetFirewallRule -Group '{GROUP}' -DisplayName 'SimpleOTP: this computer''s .local name (mDNS)' -Direction Inbound \
             -Action Allow -Profile Private -Protocol UDP -LocalPort 5353 -Program {app} | Out-Null"
        ),
    ]
    .join("\n")
}

/// The rules' group, by which they are replaced and found (`Get-NetFirewallRule -Group`).
const GROUP: &str = "SimpleOTP";

/// The command that runs `script` as administrator: a hidden PowerShell that starts another one
/// with `-Verb RunAs` (Windows' own prompt) and exits with its exit code; "No" in the prompt makes
/// `Start-Process` fail, which is an exit code too. The script travels base64-encoded
/// (`-EncodedCommand`, UTF-16LE), so nothing in it needs quoting on a command line.
pub fn elevated_command(script: &str) -> (String, Vec<String>) {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(utf16);
    let outer = format!(
        "$p = Start-Process -FilePath powershell -Verb RunAs -Wait -PassThru -WindowStyle Hidden \
         -ArgumentList '-NoProfile','-NonInteractive','-EncodedCommand','{encoded}'; exit $p.ExitCode"
    );
    ("powershell".to_string(), ["-NoProfile", "-NonInteractive", "-Command", &outer].iter().map(|s| s.to_string()).collect())
}

/// Asks Windows to let other devices in (see the module docs). `Err` says why it did not happen.
#[cfg(windows)]
pub fn allow(nginx: &Path, app: &Path) -> Result<(), String> {
    let (program, args) = elevated_command(&allow_script(nginx, app));
    let output = simpleotp_engine::child::command(program).args(args).output().map_err(|e| format!("cannot run PowerShell: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let said = String::from_utf8_lossy(&output.stderr);
        Err(said.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("the administrator prompt was declined").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_allows_nginx_and_mdns_on_private_networks_only() {
        let nginx = Path::new(r"C:\Program Files\SimpleOTP\nginx.exe");
        let app = Path::new(r"C:\Users\Zoë O'Neil\AppData\Local\SimpleOTP\SimpleOTP.exe");
        let script = allow_script(nginx, app);
        assert!(script.contains(r"-Program 'C:\Program Files\SimpleOTP\nginx.exe'"), "{script}");
        // A quote in a path is doubled inside PowerShell's single-quoted string.
        assert!(script.contains(r"-Program 'C:\Users\Zoë O''Neil\AppData\Local\SimpleOTP\SimpleOTP.exe'"), "{script}");
        let rules: Vec<&str> = script.lines().filter(|l| l.starts_with("New-NetFirewallRule")).collect();
        assert_eq!(rules.len(), 2, "{script}");
        for rule in &rules {
            assert!(rule.contains("-Direction Inbound") && rule.contains("-Action Allow") && rule.contains("-Profile Private"), "{rule}");
            assert!(!rule.contains("Public") && !rule.contains("Any"), "{rule}");
        }
        assert!(rules[0].contains("-Protocol TCP") && rules[0].contains("nginx.exe"), "{}", rules[0]);
        assert!(rules[1].contains("-Protocol UDP -LocalPort 5353") && rules[1].contains("SimpleOTP.exe"), "{}", rules[1]);
        // A cancelled prompt's block rule for this nginx goes; our earlier rules are replaced.
        assert!(script.contains("$_.Action -eq 'Block'") && script.contains("Remove-NetFirewallRule -Group 'SimpleOTP'"), "{script}");
    }

    #[test]
    fn the_script_travels_encoded_to_an_elevated_powershell() {
        let script = allow_script(Path::new(r"C:\n\nginx.exe"), Path::new(r"C:\a\app.exe"));
        let (program, args) = elevated_command(&script);
        assert_eq!(program, "powershell");
        assert_eq!(&args[..3], ["-NoProfile", "-NonInteractive", "-Command"]);
        let outer = &args[3];
        assert!(outer.contains("-Verb RunAs") && outer.contains("exit $p.ExitCode"), "{outer}");
        let encoded = outer.split("'-EncodedCommand','").nth(1).unwrap().split('\'').next().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        let utf16: Vec<u16> = bytes.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(String::from_utf16(&utf16).unwrap(), script);
    }
}
