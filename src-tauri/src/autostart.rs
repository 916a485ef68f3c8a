//! Launch at login, through tauri-plugin-autostart: a LaunchAgent on macOS, an XDG autostart
//! entry on Linux, the `Run` key in the user's registry on Windows.
//!
//! One Windows fix on top: the plugin (auto-launch 0.6) writes the `Run` value as
//! `C:\Program Files\SimpleOTP\SimpleOTP.exe --autostart`, without quotes. Windows then splits
//! that command line at the first space and tries to run `C:\Program`: from the usual install
//! folder, launch at login silently never happens. So after the plugin has written its value
//! (it also marks the entry as allowed in Task Manager's list), the value is written again with
//! the program's path quoted; an existing unquoted value is mended at start.

use std::path::Path;

use tauri::AppHandle;
use tauri_plugin_autostart::ManagerExt as _;

use crate::core::LaunchAtLogin;

/// The flag the login entry launches with, so logging in does not pop the window up.
pub const AUTOSTART_FLAG: &str = "--autostart";

pub struct Autostart(pub AppHandle);

impl LaunchAtLogin for Autostart {
    fn is_enabled(&self) -> Result<bool, String> {
        self.0.autolaunch().is_enabled().map_err(|e| e.to_string())
    }
    fn set_enabled(&self, enabled: bool) -> Result<(), String> {
        let launcher = self.0.autolaunch();
        if enabled {
            launcher.enable().map_err(|e| e.to_string())?;
            self.quote_the_command()
        } else {
            launcher.disable().map_err(|e| e.to_string())
        }
    }
}

impl Autostart {
    /// Mends an entry an earlier version (or the plugin alone) wrote unquoted. Nothing to do
    /// when launch at login is off, or outside Windows.
    pub fn mend(&self) {
        if self.is_enabled().unwrap_or(false) {
            if let Err(e) = self.quote_the_command() {
                tracing::warn!("cannot mend the launch-at-login entry: {e}");
            }
        }
    }

    /// Writes the quoted command over the plugin's value, in whichever `Run` key holds it (the
    /// plugin tries the machine's first and falls back to the user's, where a per-user install
    /// always ends up; the machine's is only writable by an administrator, and skipped otherwise).
    #[cfg(windows)]
    fn quote_the_command(&self) -> Result<(), String> {
        use windows_registry::{CURRENT_USER, LOCAL_MACHINE};
        const RUN_KEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
        let wanted = run_key_command(&exe, &[AUTOSTART_FLAG]);
        let name = &self.0.package_info().name;
        let mut found = false;
        for root in [CURRENT_USER, LOCAL_MACHINE] {
            let Ok(key) = root.options().read().write().open(RUN_KEY) else { continue };
            let Ok(current) = key.get_string(name) else { continue };
            found = true;
            if current != wanted {
                key.set_string(name, &wanted).map_err(|e| format!("cannot write the launch-at-login entry: {e}"))?;
                tracing::info!("launch at login: the Run entry now quotes the program's path");
            }
        }
        if found {
            Ok(())
        } else {
            Err("the launch-at-login entry is not in the registry".to_string())
        }
    }

    #[cfg(not(windows))]
    fn quote_the_command(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The command line Windows runs at login: the program's path in quotes (it may hold spaces:
/// `C:\Program Files\…`, `C:\Users\Zoë Müller\…`), then the arguments, each quoted only where
/// Windows' own rules (CommandLineToArgvW) need it.
pub fn run_key_command(exe: &Path, args: &[&str]) -> String {
    // A path cannot contain `"` on Windows, so quoting it is enough.
    let mut line = format!("\"{}\"", exe.display());
    for arg in args {
        line.push(' ');
        line.push_str(&quote_arg(arg));
    }
    line
}

/// One argument as CommandLineToArgvW reads it back: as it is when it has no space, tab or
/// quote; else in quotes, with each `"` and the backslashes before it (or before the closing
/// quote) doubled up as those rules ask.
fn quote_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_string();
    }
    let mut quoted = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                quoted.push_str(&"\\".repeat(backslashes * 2 + 1));
                backslashes = 0;
            }
            _ => {
                quoted.push_str(&"\\".repeat(backslashes));
                backslashes = 0;
            }
        }
        if c != '\\' {
            quoted.push(c);
        }
    }
    quoted.push_str(&"\\".repeat(backslashes * 2));
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_path_is_quoted_so_spaces_do_not_split_it() {
        let exe = Path::new(r"C:\Program Files\SimpleOTP\SimpleOTP.exe");
        assert_eq!(run_key_command(exe, &[AUTOSTART_FLAG]), r#""C:\Program Files\SimpleOTP\SimpleOTP.exe" --autostart"#);
        let zoe = Path::new(r"C:\Users\Zoë Müller\AppData\Local\SimpleOTP\SimpleOTP.exe");
        assert_eq!(run_key_command(zoe, &[]), r#""C:\Users\Zoë Müller\AppData\Local\SimpleOTP\SimpleOTP.exe""#);
        assert_eq!(run_key_command(Path::new(r"C:\SimpleOTP\s.exe"), &[AUTOSTART_FLAG]), r#""C:\SimpleOTP\s.exe" --autostart"#);
    }

    #[test]
    fn arguments_are_quoted_as_windows_reads_them_back() {
        assert_eq!(quote_arg("--autostart"), "--autostart");
        assert_eq!(quote_arg("two words"), r#""two words""#);
        assert_eq!(quote_arg(""), r#""""#);
        assert_eq!(quote_arg(r#"say "hi""#), r#""say \"hi\"""#);
        // Backslashes are literal except before a quote (ours at the end included).
        assert_eq!(quote_arg(r"C:\a dir\"), r#""C:\a dir\\""#);
        assert_eq!(quote_arg(r#"a\"b c"#), r#""a\\\"b c""#);
        assert_eq!(run_key_command(Path::new(r"C:\p\s.exe"), &["--data-dir", r"D:\my data\"]), r#""C:\p\s.exe" --data-dir "D:\my data\\""#);
    }
}
