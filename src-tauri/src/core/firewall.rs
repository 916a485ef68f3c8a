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
//! The nginx rule names the program, not ports: nginx listens only on the apps' ports, and a rule
//! per port would need the administrator prompt again for every new app or port change.
//!
//! At start (with other devices allowed) the rules are read, without a prompt, so that a block
//! left from an earlier run is shown too, not only one from this run.
//!
//! macOS's application firewall (off by default) asks once per program as well; README's
//! Troubleshooting says where to allow SimpleOTP and nginx. Linux desktops have no such prompt.

// Only Windows runs the scripts; the tests check them on every OS.
#![cfg_attr(not(windows), allow(dead_code))]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use simpleotp_engine::nginx;

use super::Core;
use crate::sync::lock;

impl Core {
    /// At start, with other devices allowed: reads the firewall's rules (no prompt), so that a
    /// block left by an earlier run (a declined prompt, Cancel in Windows Security's own) is
    /// shown instead of "ready".
    pub(super) async fn check_firewall(&self) {
        if !*lock(&self.lan) {
            return;
        }
        let Some(nginx) = self.firewall_nginx(None) else { return };
        let firewall = self.firewall.clone();
        let outcome = tokio::task::spawn_blocking(move || firewall.check(&nginx)).await.unwrap_or_else(|e| Err(e.to_string()));
        self.firewall_outcome(outcome, "Windows Firewall may block other devices");
    }

    /// Asks the person (the system's administrator prompt) to let other devices through to the
    /// nginx at `nginx_path` (the config's, `None`: found on its own); `Some(warning)` when that
    /// did not happen, which the status, the tray and Other devices then show for as long as
    /// the apps face the network.
    pub(super) async fn open_firewall(&self, nginx_path: Option<&Path>) -> Option<String> {
        let nginx = self.firewall_nginx(nginx_path)?;
        let firewall = self.firewall.clone();
        let outcome = tokio::task::spawn_blocking(move || firewall.allow(&nginx)).await.unwrap_or_else(|e| Err(e.to_string()));
        self.firewall_outcome(outcome, "Windows Firewall was not opened for other devices")
    }

    /// "Ask Windows again" (Other devices, the tray): the prompt once more, while other devices
    /// are allowed. `Some(warning)` when they may still be blocked.
    pub async fn firewall_retry(&self) -> Option<String> {
        if !*lock(&self.lan) {
            return None;
        }
        let nginx_path = self.config().nginx.path;
        self.open_firewall(nginx_path.as_deref()).await
    }

    /// Other devices are no longer allowed: nothing to warn about.
    pub(super) fn forget_firewall(&self) {
        if lock(&self.firewall_blocked).take().is_some() {
            self.changed();
        }
    }

    /// Whether the firewall may block other devices (the tray and Other devices say so).
    pub(super) fn firewall_warning(&self) -> Option<String> {
        if *lock(&self.lan) {
            lock(&self.firewall_blocked).clone()
        } else {
            None
        }
    }

    /// The nginx to let through: not found, protection cannot run either, and says why itself.
    fn firewall_nginx(&self, nginx_path: Option<&Path>) -> Option<PathBuf> {
        let configured = self.config().nginx.path;
        nginx::discover(nginx_path.or(configured.as_deref())).ok()
    }

    fn firewall_outcome(&self, outcome: Result<(), String>, context: &str) -> Option<String> {
        let warning = outcome.err().map(|why| {
            tracing::warn!("{context}: {why}");
            BLOCKED_WARNING.to_string()
        });
        let before = std::mem::replace(&mut *lock(&self.firewall_blocked), warning.clone());
        if before != warning {
            self.changed();
        }
        warning
    }
}

/// What the window and the tray say while other devices may still be blocked.
pub const BLOCKED_WARNING: &str = "Windows Firewall may block other devices: SimpleOTP was not allowed through it. \
Press \"Ask Windows again\" (Other devices, or the tray menu) to be asked again, or allow nginx for private networks in \
Windows Security › Firewall & network protection › Allow an app through firewall.";

/// The firewall between other devices and the apps, as the core sees it (a stand-in in the tests).
pub trait Firewall: Send + Sync {
    /// Whether other devices get through to `nginx`; `Err(why)` when they may be blocked. Only
    /// reads the rules: no prompt, nothing changed.
    fn check(&self, nginx: &Path) -> Result<(), String>;
    /// Asks the person (the system's own administrator prompt) to let other devices through to
    /// `nginx` and to SimpleOTP's mDNS answers; `Err(why)` when that did not happen.
    fn allow(&self, nginx: &Path) -> Result<(), String>;
}

/// This computer's firewall: Windows Defender Firewall on Windows. Elsewhere there is nothing
/// SimpleOTP could or should change (macOS's application firewall asks by itself, once per
/// program; Linux desktops have no prompt), so both calls succeed.
pub struct SystemFirewall;

impl Firewall for SystemFirewall {
    #[cfg(windows)]
    fn check(&self, nginx: &Path) -> Result<(), String> {
        let output = simpleotp_engine::child::command("powershell")
            .args(encoded_args(&check_script(nginx)))
            .output()
            .map_err(|e| format!("cannot run PowerShell: {e}"))?;
        read_check(&String::from_utf8_lossy(&output.stdout))
    }

    #[cfg(windows)]
    fn allow(&self, nginx: &Path) -> Result<(), String> {
        let app = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
        allow(nginx, &app)
    }

    #[cfg(not(windows))]
    fn check(&self, _nginx: &Path) -> Result<(), String> {
        Ok(())
    }

    #[cfg(not(windows))]
    fn allow(&self, _nginx: &Path) -> Result<(), String> {
        Ok(())
    }
}

/// PowerShell's single-quoted string of `path` (a `'` doubled), so no path can end it early.
fn ps_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// The PowerShell script (no administrator needed) that says how the firewall treats inbound
/// connections to `nginx`: `blocked` (an enabled block rule, as a cancelled Windows Security
/// prompt leaves; block rules win), `allowed` (an enabled allow rule for private networks) or
/// `none` (no rule yet: Windows will prompt, and a Cancel there blocks).
pub fn check_script(nginx: &Path) -> String {
    let nginx = ps_quote(nginx);
    [
        format!(
            "$rules = @(Get-NetFirewallApplicationFilter -Program {nginx} -ErrorAction SilentlyContinue | Get-NetFirewallRule | \
             Where-Object {{ $_.Enabled.ToString() -eq 'True' -and $_.Direction.ToString() -eq 'Inbound' }})"
        ),
        "if ($rules | Where-Object { $_.Action.ToString() -eq 'Block' }) { 'blocked' } \
         elseif ($rules | Where-Object { $_.Action.ToString() -eq 'Allow' -and $_.Profile.ToString() -match 'Private|Any' }) { 'allowed' } \
         else { 'none' }"
            .to_string(),
    ]
    .join("\n")
}

/// PowerShell's arguments that run `script` as it is: base64 of its UTF-16LE text
/// (`-EncodedCommand`), so nothing in it needs quoting on a command line.
pub fn encoded_args(script: &str) -> [String; 4] {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(utf16);
    ["-NoProfile".into(), "-NonInteractive".into(), "-EncodedCommand".into(), encoded]
}

/// What [`check_script`] printed, as [`Firewall::check`] answers.
pub fn read_check(printed: &str) -> Result<(), String> {
    match printed.trim() {
        "allowed" => Ok(()),
        "blocked" => Err("a Windows Firewall rule blocks nginx".to_string()),
        "none" => Err("no Windows Firewall rule lets other devices reach nginx yet".to_string()),
        other => Err(format!("cannot read the Windows Firewall rules ({})", other.lines().next().unwrap_or("no answer"))),
    }
}

/// The PowerShell script, run as administrator, that allows `nginx` (TCP, the apps) and `app`
/// (UDP 5353, mDNS) in on private networks, replacing SimpleOTP's earlier rules and removing
/// block rules for that nginx. Paths go in single-quoted strings (a `'` doubled), so no path can
/// end a string early.
pub fn allow_script(nginx: &Path, app: &Path) -> String {
    let (nginx, app) = (ps_quote(nginx), ps_quote(app));
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
    let [no_profile, non_interactive, flag, encoded] = encoded_args(script);
    let outer = format!(
        "$p = Start-Process -FilePath powershell -Verb RunAs -Wait -PassThru -WindowStyle Hidden \
         -ArgumentList '{no_profile}','{non_interactive}','{flag}','{encoded}'; exit $p.ExitCode"
    );
    ("powershell".to_string(), ["-NoProfile", "-NonInteractive", "-Command", &outer].iter().map(|s| s.to_string()).collect())
}

/// Asks Windows to let other devices in (see the module docs). `Err` says why it did not happen.
#[cfg(windows)]
fn allow(nginx: &Path, app: &Path) -> Result<(), String> {
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
        assert_eq!(decode(encoded), script);
    }

    #[test]
    fn the_check_reads_nginx_rules_without_a_prompt() {
        let script = check_script(Path::new(r"C:\Users\Zoë O'Neil\nginx.exe"));
        assert!(script.contains(r"-Program 'C:\Users\Zoë O''Neil\nginx.exe'"), "{script}");
        assert!(!script.contains("RunAs") && !script.contains("New-NetFirewallRule") && !script.contains("Remove-"), "{script}");
        assert!(!script.contains('"'), "nothing a command line could split: {script}");
        assert_eq!(read_check("allowed\r\n"), Ok(()));
        assert!(read_check("blocked").unwrap_err().contains("blocks nginx"));
        assert!(read_check("none").unwrap_err().contains("no Windows Firewall rule"));
        assert!(read_check("").unwrap_err().contains("cannot read"));
        let args = encoded_args(&script);
        assert_eq!(&args[..3], ["-NoProfile", "-NonInteractive", "-EncodedCommand"]);
        assert_eq!(decode(&args[3]), script);
    }

    fn decode(encoded: &str) -> String {
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        let utf16: Vec<u16> = bytes.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        String::from_utf16(&utf16).unwrap()
    }
}
