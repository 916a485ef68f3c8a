//! "Trust on this computer": adds SimpleOTP's CA certificate to this computer's trust stores (and
//! "Remove" takes it out again), so this machine's own browsers accept the apps' HTTPS addresses.
//!
//! The OS asks for the change itself, with its own prompt: that prompt is the point (a program
//! that could add a root certificate silently could make the machine trust anyone), so nothing
//! here works around it. Where each OS keeps the trust:
//!
//! * **Linux**: the system store, through `/usr/bin/pkexec` (polkit's password prompt; the .deb
//!   installs the action `org.simpleotp.SimpleOTP.trust`, which names SimpleOTP) running one
//!   fixed script, `src-tauri/linux/simpleotp-trust`: it gets the certificate on standard input
//!   and only its SHA-256 fingerprint as an argument, writes it only if the bytes match, and
//!   refreshes the bundle (`update-ca-certificates` on Debian and Ubuntu, which has no
//!   per-purpose anchors: the CA's own EKU limits it there; `update-ca-trust` on Fedora and Arch,
//!   where the anchor is a "TRUSTED CERTIFICATE" for TLS servers only). Chromium and Firefox do
//!   not read that store on Linux: they keep their own NSS databases (`~/.pki/nssdb`, each
//!   Firefox profile), which the user owns, so `certutil` (libnss3-tools) updates them without a
//!   prompt, as a CA for websites only (`C,,`).
//! * **macOS**: `security add-trusted-cert -r trustRoot -p ssl` into the login keychain (TLS
//!   servers only); macOS asks for the user's password. `remove-trusted-cert` and
//!   `delete-certificate -Z <SHA-256>` undo it.
//! * **Windows**: the current user's Root store through crypt32 (`simpleotp_engine::os_trust`),
//!   with the certificate's enhanced-key-usage property set to server authentication only, so
//!   Windows trusts it for TLS servers and nothing else; Windows shows its own security warning.
//!   Entries are found and removed by fingerprint.
//!
//! Every CA the data directory had before the current one (renewed or rotated,
//! `ca-previous.pem`) is taken out of the same stores by its fingerprint whenever the current
//! one is trusted or removed (on Linux in the same pkexec run), and [`TrustState::earlier_trusted`]
//! tells the window when one is still trusted.
//!
//! The system part comes first, so that cancelling its prompt changes nothing. All of this
//! blocks while the prompt is open: call it off the async threads.
//!
//! The OS-specific code is the `system` module (one per OS, cfg-gated) and, on Linux, `nss`.
//! What can run in a test runs in one: the NSS part with a real `certutil` in a throw-away home,
//! and the Linux script with a real `update-ca-certificates` pointed at throw-away directories.
//! `pkexec` itself (a password prompt) cannot run in a test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Serialize;
use simpleotp_engine::ca::CaCertificate;

/// Why the CA could not be added or removed. Each message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("You cancelled the system's prompt, so nothing was changed.")]
    Cancelled,
    #[error(
        "The system did not allow the change (a wrong password, or nobody to ask: is a desktop session with a polkit agent running?). {0}"
    )]
    NotAuthorized(String),
    #[error("SimpleOTP asks for the administrator password through pkexec, which is not installed. Install the pkexec package (on Debian and Ubuntu: sudo apt install pkexec).")]
    NoPkexec,
    #[error("SimpleOTP does not know where this system keeps its trusted certificates (it knows update-ca-certificates and update-ca-trust). Add {} to them by hand.", .0.display())]
    UnknownSystemStore(PathBuf),
    #[error("certutil is not installed, so Chromium and Firefox (which keep their own certificate lists on Linux) were not changed. Install it (on Debian and Ubuntu: sudo apt install libnss3-tools) and press the button again.")]
    NoCertutil,
    #[error("Changing the trusted certificates did not work ({command}: {detail}).")]
    Command { command: String, detail: String },
    #[error("The change was made, but this computer still does not trust the certificate ({0}).")]
    NotApplied(String),
}

/// Where the CA certificate is trusted on this computer, as the window shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrustState {
    /// The OS's own store (what most programs, and Chromium on macOS and Windows, use).
    pub system: bool,
    /// The browsers' own stores (Linux: every NSS database found); `None` where browsers use the
    /// system's.
    pub browsers: Option<bool>,
    /// Why a store could not be read (for example, certutil is missing).
    pub problem: Option<String>,
    /// An earlier SimpleOTP CA (renewed or rotated) is still trusted in a store SimpleOTP
    /// manages: "Trust on this computer" replaces it, "Remove" takes it out.
    pub earlier_trusted: bool,
}

impl TrustState {
    pub fn trusted(&self) -> bool {
        self.system && self.browsers.unwrap_or(true)
    }
}

/// The CA certificate to trust: its PEM file (what the OS tools that run as the user read) and
/// what it says, with every CA this data directory had before it
/// ([`simpleotp_engine::ca::CaStore::previous_certificates`]): [`add`] and [`remove`] sweep those
/// out of every store, found by fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct CaFile<'a> {
    /// The PEM file, for the tools that read one (certutil, security); Windows uses the DER.
    #[cfg_attr(windows, allow(dead_code))]
    pub path: &'a Path,
    pub certificate: &'a CaCertificate,
    pub previous: &'a [CaCertificate],
}

impl CaFile<'_> {
    /// The earlier CAs, without the current one (a list could name it after a failed save).
    fn earlier(&self) -> impl Iterator<Item = &CaCertificate> {
        let current = self.certificate.fingerprint();
        self.previous.iter().filter(move |c| c.fingerprint() != current)
    }
}

/// Where the CA is trusted now. `home` is the user's home (for the browsers' stores on Linux and
/// the login keychain on macOS).
pub fn state(ca: CaFile<'_>, home: Option<&Path>) -> TrustState {
    system::state(ca, home)
}

/// Trusts the CA for websites only, in the system's store (with the OS's prompt) and, on Linux,
/// the browsers'; takes every earlier CA out of them in the same step.
pub fn add(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
    system::add(ca, home)
}

/// Removes the CA, and every earlier one, from every store [`add`] put them in.
pub fn remove(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
    system::remove(ca, home)
}

/// The arguments of the one trust setting SimpleOTP makes on macOS: a root, for SSL (TLS
/// servers) only. Outside the macOS module so that it is tested on every OS.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn macos_add_arguments(keychain: &Path, certificate: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["add-trusted-cert", "-r", "trustRoot", "-p", "ssl", "-k"].map(Into::into).to_vec();
    args.push(keychain.into());
    args.push(certificate.into());
    args
}

/// Runs a command with `input` on its standard input (which the command must have piped).
#[cfg(target_os = "linux")]
fn run_with_input(mut command: Command, input: &[u8], missing: impl FnOnce() -> TrustError) -> Result<Output, TrustError> {
    use std::io::Write as _;
    let name = format!("{}", command.get_program().to_string_lossy());
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(TrustError::Command { command: name, detail: e.to_string() }),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A script that refuses early closes its end: that is its answer, not an error here.
        let _ = stdin.write_all(input);
    }
    child.wait_with_output().map_err(|e| TrustError::Command { command: name, detail: e.to_string() })
}

/// Runs a command and sorts out "not installed" from "failed".
#[cfg_attr(windows, allow(dead_code))] // Windows changes its store through crypt32, no program
fn run(mut command: Command, missing: impl FnOnce() -> TrustError) -> Result<Output, TrustError> {
    let name = format!("{}", command.get_program().to_string_lossy());
    match command.output() {
        Ok(output) => Ok(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(e) => Err(TrustError::Command { command: name, detail: e.to_string() }),
    }
}

/// What a failed command said, for a message (the last lines of its error output).
#[cfg_attr(windows, allow(dead_code))]
fn said(output: &Output) -> String {
    let text = String::from_utf8_lossy(if output.stderr.is_empty() { &output.stdout } else { &output.stderr }).trim().to_string();
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    if tail.is_empty() {
        format!("exit status {}", output.status)
    } else {
        super::views::without_temp_paths(&tail.join(" "))
    }
}

#[cfg(target_os = "linux")]
use linux as system;

#[cfg(target_os = "linux")]
pub(crate) mod linux {
    //! The system store through pkexec and a fixed script; the browsers' through `nss`.

    use std::ffi::OsString;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use simpleotp_engine::ca::CaCertificate;

    use super::{nss, run_with_input, said, CaFile, TrustError, TrustState};

    pub(super) fn state(ca: CaFile<'_>, home: Option<&Path>) -> TrustState {
        let store = SystemStore::detect();
        let system = store.as_ref().is_some_and(|store| store.contains(ca.certificate));
        let (browsers, problem) = match home.map(|home| nss::all_contain(home, ca.certificate)).unwrap_or(Ok(false)) {
            Ok(all) => (Some(all), None),
            Err(e) => (Some(false), Some(e.to_string())),
        };
        let earlier_trusted = ca.earlier().any(|old| {
            store.as_ref().is_some_and(|store| store.holds(old)) || home.is_some_and(|home| nss::any_contains(home, old).unwrap_or(false))
        });
        TrustState { system, browsers, problem, earlier_trusted }
    }

    pub(super) fn add(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
        let store = SystemStore::detect().ok_or_else(|| TrustError::UnknownSystemStore(ca.path.to_owned()))?;
        let earlier: Vec<CaCertificate> = ca.earlier().filter(|old| store.holds(old)).cloned().collect();
        if !store.contains(ca.certificate) || !earlier.is_empty() {
            store.add(ca.certificate, &earlier)?;
        }
        if let Some(home) = home {
            nss::add_everywhere(home, ca)?;
            for old in ca.earlier() {
                nss::remove_everywhere(home, old)?;
            }
        }
        Ok(())
    }

    pub(super) fn remove(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
        if let Some(store) = SystemStore::detect() {
            let held: Vec<CaCertificate> =
                std::iter::once(ca.certificate).chain(ca.earlier()).filter(|c| store.holds(c)).cloned().collect();
            store.remove(&held)?;
        }
        if let Some(home) = home {
            for certificate in std::iter::once(ca.certificate).chain(ca.earlier()) {
                nss::remove_everywhere(home, certificate)?;
            }
        }
        Ok(())
    }

    /// A distribution's system trust store: a directory of anchors, the command that rebuilds
    /// the bundles from it, and the bundles programs read. The change itself is made by
    /// [`SCRIPT`], which knows the same places; `anchors`, `suffix` and `refresh` are passed to it
    /// only when it runs without elevation (tests, with throw-away directories).
    #[derive(Debug, Clone)]
    pub(crate) struct SystemStore {
        pub anchors: PathBuf,
        pub suffix: &'static str,
        pub refresh: Vec<OsString>,
        pub bundles: Vec<PathBuf>,
        /// The program that runs the script as root (`/usr/bin/pkexec`); `None` runs it as is
        /// (tests).
        pub elevate: Option<PathBuf>,
    }

    /// The script run as root (`src-tauri/linux/simpleotp-trust`): the certificate on standard
    /// input, checked against its SHA-256 on the command line; see the script's own comments.
    /// Installed by the .deb as [`INSTALLED_SCRIPT`], which the polkit action
    /// `org.simpleotp.SimpleOTP.trust` names; a build run from source runs the same text through
    /// `/bin/sh -c` (polkit's generic prompt).
    pub(crate) const SCRIPT: &str = include_str!("../../linux/simpleotp-trust");
    pub(crate) const INSTALLED_SCRIPT: &str = "/usr/lib/simpleotp/simpleotp-trust";
    const PKEXEC: &str = "/usr/bin/pkexec";

    impl SystemStore {
        /// The store of the distribution this runs on, if it is one SimpleOTP knows.
        pub(crate) fn detect() -> Option<SystemStore> {
            let found =
                |program: &str| ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(|d| Path::new(d).join(program)).find(|p| p.exists());
            let elevate = Some(PathBuf::from(PKEXEC));
            if let Some(refresh) = found("update-ca-certificates").filter(|_| Path::new("/usr/local/share/ca-certificates").is_dir()) {
                // Debian, Ubuntu: PEM files ending in .crt under /usr/local/share/ca-certificates.
                return Some(SystemStore {
                    anchors: "/usr/local/share/ca-certificates".into(),
                    suffix: ".crt",
                    refresh: vec![refresh.into()],
                    bundles: vec!["/etc/ssl/certs/ca-certificates.crt".into()],
                    elevate,
                });
            }
            if let Some(refresh) = found("update-ca-trust").filter(|_| Path::new("/etc/pki/ca-trust/source/anchors").is_dir()) {
                // Fedora, RHEL, and (through p11-kit's compatibility script) Arch.
                return Some(SystemStore {
                    anchors: "/etc/pki/ca-trust/source/anchors".into(),
                    suffix: ".pem",
                    refresh: vec![refresh.into(), "extract".into()],
                    bundles: vec!["/etc/pki/tls/certs/ca-bundle.crt".into(), "/etc/ssl/certs/ca-certificates.crt".into()],
                    elevate,
                });
            }
            None
        }

        /// Where the script puts `ca` (named by its fingerprint, as the script names it).
        pub(crate) fn anchor(&self, ca: &CaCertificate) -> PathBuf {
            self.anchors.join(format!("simpleotp-{}{}", &ca.fingerprint().to_hex()[..16], self.suffix))
        }

        /// Whether the store holds `ca` in any form (in a bundle, or an anchor not yet refreshed).
        pub(crate) fn holds(&self, ca: &CaCertificate) -> bool {
            self.contains(ca) || self.anchor(ca).exists()
        }

        /// Whether a bundle programs read holds the certificate.
        pub(crate) fn contains(&self, ca: &CaCertificate) -> bool {
            let body = base64_body(ca);
            self.bundles
                .iter()
                .any(|bundle| std::fs::read_to_string(bundle).is_ok_and(|text| text.split_whitespace().collect::<String>().contains(&body)))
        }

        /// Trusts `ca` and, in the same run (one prompt), takes out `old` ones.
        pub(crate) fn add(&self, ca: &CaCertificate, old: &[CaCertificate]) -> Result<(), TrustError> {
            self.run_script("add", ca, old)?;
            if !self.contains(ca) {
                return Err(TrustError::NotApplied(format!("it is not in {}", self.bundles[0].display())));
            }
            Ok(())
        }

        /// Takes `cas` out (one prompt).
        pub(crate) fn remove(&self, cas: &[CaCertificate]) -> Result<(), TrustError> {
            let Some((first, rest)) = cas.split_first() else { return Ok(()) };
            self.run_script("remove", first, rest)?;
            if let Some(still) = cas.iter().find(|ca| self.contains(ca)) {
                return Err(TrustError::NotApplied(format!("{} is still in {}", still.common_name(), self.bundles[0].display())));
            }
            Ok(())
        }

        /// The command line: `/usr/bin/pkexec /usr/lib/simpleotp/simpleotp-trust ACTION SHA256…`
        /// (or the same script through `/bin/sh -c` where it is not installed). Only hashes are
        /// arguments; the certificate goes to its standard input.
        pub(crate) fn command(&self, action: &str, ca: &CaCertificate, others: &[CaCertificate]) -> Command {
            let mut script_args: Vec<OsString> = vec![action.into(), ca.fingerprint().to_hex().into()];
            script_args.extend(others.iter().map(|c| OsString::from(c.fingerprint().to_hex())));
            let inline = |command: &mut Command| {
                command.args(["-c", SCRIPT, "simpleotp-trust"]).args(&script_args);
            };
            let mut command = match &self.elevate {
                Some(elevate) => {
                    let mut command = simpleotp_engine::child::command(elevate);
                    if Path::new(INSTALLED_SCRIPT).exists() {
                        command.arg(INSTALLED_SCRIPT).args(&script_args);
                    } else {
                        command.arg("/bin/sh");
                        inline(&mut command);
                    }
                    command
                }
                None => {
                    let mut command = simpleotp_engine::child::command("/bin/sh");
                    inline(&mut command);
                    command
                        .env("SIMPLEOTP_TRUST_ANCHORS", &self.anchors)
                        .env("SIMPLEOTP_TRUST_SUFFIX", self.suffix)
                        .env("SIMPLEOTP_TRUST_REFRESH", self.refresh.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
                    command
                }
            };
            command.stdin(std::process::Stdio::piped());
            command
        }

        fn run_script(&self, action: &str, ca: &CaCertificate, others: &[CaCertificate]) -> Result<(), TrustError> {
            let stdin = if action == "add" { ca.der() } else { &[] };
            let output = run_with_input(self.command(action, ca, others), stdin, || TrustError::NoPkexec)?;
            match (self.elevate.is_some(), output.status.code()) {
                (_, Some(0)) => Ok(()),
                // pkexec: 126 when the person dismissed the prompt, 127 when not authorized.
                (true, Some(126)) => Err(TrustError::Cancelled),
                (true, Some(127)) => Err(TrustError::NotAuthorized(said(&output))),
                _ => Err(TrustError::Command { command: format!("simpleotp-trust {action}"), detail: said(&output) }),
            }
        }
    }

    /// The certificate's base64 body without line breaks: how it is found in PEM bundles and in
    /// `certutil -a` output, whatever their line length.
    pub(crate) fn base64_body(ca: &CaCertificate) -> String {
        ca.pem().lines().filter(|l| !l.starts_with("-----")).collect::<String>()
    }
}

#[cfg(target_os = "linux")]
pub(crate) mod nss {
    //! The NSS databases Chromium and Firefox read on Linux, changed with `certutil`. NSS
    //! decides what an anchor is trusted for by the flags it is added with: `C,,` is a CA for
    //! websites only (not e-mail, not code), whatever the certificate itself says.

    use std::path::{Path, PathBuf};
    use std::process::Command;

    use simpleotp_engine::ca::CaCertificate;

    use super::linux::base64_body;
    use super::{run, said, CaFile, TrustError};

    /// The shared database (Chromium, and other NSS programs), then every Firefox profile's.
    pub(crate) fn databases(home: &Path) -> Vec<PathBuf> {
        let mut found = vec![home.join(".pki/nssdb")];
        for profiles in [home.join(".mozilla/firefox"), home.join("snap/firefox/common/.mozilla/firefox")] {
            let Ok(entries) = std::fs::read_dir(&profiles) else { continue };
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("cert9.db").exists()).collect();
            dirs.sort();
            found.extend(dirs);
        }
        found
    }

    /// The name it is stored under: its common name and the start of its fingerprint, unique
    /// per CA (two CAs made in the same minute share a common name, and `certutil -D` deletes
    /// by name). NSS reads `a:b` as "nickname b on token a", so the time's colon becomes a dot.
    pub(crate) fn nickname(ca: &CaCertificate) -> String {
        format!("{} {}", ca.common_name().replace(':', "."), &ca.fingerprint().to_hex()[..16])
    }

    /// Where versions before security round 3 stored it: the common name alone. Looked at when
    /// checking and removing, so their entries are swept too.
    fn old_nickname(ca: &CaCertificate) -> String {
        ca.common_name().replace(':', ".")
    }

    fn certutil(db: &Path) -> Command {
        let mut command = simpleotp_engine::child::command("certutil");
        command.arg("-d").arg(format!("sql:{}", db.display()));
        command
    }

    fn certutil_run(command: Command, what: &str) -> Result<(), TrustError> {
        let output = run(command, || TrustError::NoCertutil)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(TrustError::Command { command: format!("certutil ({what})"), detail: said(&output) })
        }
    }

    /// Whether `db` holds this very certificate (by its nickname, then its contents: another CA
    /// under the same nickname is not it).
    pub(crate) fn contains(db: &Path, ca: &CaCertificate) -> Result<bool, TrustError> {
        Ok(stored_under(db, ca)?.is_some())
    }

    /// The nickname under which `db` holds this very certificate, if it does.
    fn stored_under(db: &Path, ca: &CaCertificate) -> Result<Option<String>, TrustError> {
        if !db.join("cert9.db").exists() {
            return Ok(None);
        }
        for name in [nickname(ca), old_nickname(ca)] {
            let mut command = certutil(db);
            command.args(["-L", "-a", "-n", &name]);
            let output = run(command, || TrustError::NoCertutil)?;
            let text = String::from_utf8_lossy(&output.stdout).split_whitespace().collect::<String>();
            if output.status.success() && text.contains(&base64_body(ca)) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Whether every database found holds it (false when there is none).
    pub(crate) fn all_contain(home: &Path, ca: &CaCertificate) -> Result<bool, TrustError> {
        let mut all = true;
        for db in databases(home) {
            all &= contains(&db, ca)?;
        }
        Ok(all)
    }

    /// Whether any database found holds it.
    pub(crate) fn any_contains(home: &Path, ca: &CaCertificate) -> Result<bool, TrustError> {
        for db in databases(home) {
            if contains(&db, ca)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Adds it as a CA trusted for websites (`C,,`) to `db`, making the shared database first
    /// if there is none yet (Chromium reads it once it exists).
    pub(crate) fn add(db: &Path, ca: CaFile<'_>) -> Result<(), TrustError> {
        if contains(db, ca.certificate)? {
            return Ok(());
        }
        if !db.join("cert9.db").exists() {
            std::fs::create_dir_all(db)
                .map_err(|e| TrustError::Command { command: format!("mkdir {}", db.display()), detail: e.to_string() })?;
            let mut command = certutil(db);
            command.args(["-N", "--empty-password"]);
            certutil_run(command, "new database")?;
        }
        let mut command = certutil(db);
        command.args(["-A", "-t", "C,,", "-n", &nickname(ca.certificate), "-i"]).arg(ca.path);
        certutil_run(command, "add")
    }

    pub(crate) fn remove(db: &Path, ca: &CaCertificate) -> Result<(), TrustError> {
        // A nickname can hold more than one certificate: delete until it is gone (bounded).
        for _ in 0..8 {
            let Some(name) = stored_under(db, ca)? else { return Ok(()) };
            let mut command = certutil(db);
            command.args(["-D", "-n", &name]);
            certutil_run(command, "remove")?;
        }
        Err(TrustError::NotApplied(format!("it is still in {}", db.display())))
    }

    pub(crate) fn add_everywhere(home: &Path, ca: CaFile<'_>) -> Result<(), TrustError> {
        databases(home).iter().try_for_each(|db| add(db, ca))
    }

    pub(crate) fn remove_everywhere(home: &Path, ca: &CaCertificate) -> Result<(), TrustError> {
        databases(home).iter().try_for_each(|db| remove(db, ca))
    }
}

#[cfg(target_os = "macos")]
use macos as system;

#[cfg(target_os = "macos")]
mod macos {
    //! The login keychain, through `security`; macOS asks for the password itself. The trust
    //! setting is for SSL only (`-p ssl`), so macOS accepts the CA for nothing but TLS servers.

    use std::path::{Path, PathBuf};
    use std::process::Command;

    use simpleotp_engine::ca::CaCertificate;

    use super::{run, said, CaFile, TrustError, TrustState};

    fn security() -> Command {
        simpleotp_engine::child::command("/usr/bin/security")
    }

    fn login_keychain(home: Option<&Path>) -> PathBuf {
        home.unwrap_or(Path::new("~")).join("Library/Keychains/login.keychain-db")
    }

    fn missing() -> TrustError {
        TrustError::Command { command: "security".into(), detail: "/usr/bin/security is missing".into() }
    }

    fn check(output: std::process::Output, what: &str) -> Result<(), TrustError> {
        if output.status.success() {
            return Ok(());
        }
        let detail = said(&output);
        if detail.to_ascii_lowercase().contains("cancel") {
            Err(TrustError::Cancelled)
        } else {
            Err(TrustError::Command { command: format!("security {what}"), detail })
        }
    }

    /// Whether `certificate` (written to a file in `dir`) verifies as an SSL anchor.
    fn trusted(certificate: &CaCertificate, dir: &Path) -> bool {
        let path = dir.join(format!("{}.pem", certificate.fingerprint().to_hex()));
        if std::fs::write(&path, certificate.pem()).is_err() {
            return false;
        }
        let mut command = security();
        command.args(["verify-cert", "-L", "-l", "-q", "-p", "ssl", "-c"]).arg(&path);
        run(command, missing).is_ok_and(|o| o.status.success())
    }

    pub(super) fn state(ca: CaFile<'_>, _home: Option<&Path>) -> TrustState {
        let Ok(dir) = tempfile::tempdir() else {
            return TrustState { system: false, browsers: None, problem: Some("no temporary directory".into()), earlier_trusted: false };
        };
        let system = trusted(ca.certificate, dir.path());
        let earlier_trusted = ca.earlier().any(|old| trusted(old, dir.path()));
        TrustState { system, browsers: None, problem: None, earlier_trusted }
    }

    pub(super) fn add(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
        let mut command = security();
        command.args(super::macos_add_arguments(&login_keychain(home), ca.path));
        check(run(command, missing)?, "add-trusted-cert")?;
        let dir = tempfile::tempdir().map_err(|e| TrustError::Command { command: "mktemp".into(), detail: e.to_string() })?;
        for old in ca.earlier() {
            remove_one(old, dir.path(), home)?;
        }
        Ok(())
    }

    pub(super) fn remove(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
        let dir = tempfile::tempdir().map_err(|e| TrustError::Command { command: "mktemp".into(), detail: e.to_string() })?;
        for certificate in std::iter::once(ca.certificate).chain(ca.earlier()) {
            remove_one(certificate, dir.path(), home)?;
        }
        Ok(())
    }

    /// Takes one CA's trust setting and certificate out of the login keychain, found by its
    /// SHA-256 hash (never by name). One that is not there is not an error.
    fn remove_one(certificate: &CaCertificate, dir: &Path, home: Option<&Path>) -> Result<(), TrustError> {
        let path = dir.join(format!("{}.pem", certificate.fingerprint().to_hex()));
        std::fs::write(&path, certificate.pem()).map_err(|e| TrustError::Command { command: "write".into(), detail: e.to_string() })?;
        let mut command = security();
        command.arg("remove-trusted-cert").arg(&path);
        let _ = run(command, missing)?;
        let mut command = security();
        command.args(["delete-certificate", "-Z"]).arg(certificate.fingerprint().to_hex().to_uppercase()).arg(login_keychain(home));
        let output = run(command, missing)?;
        if output.status.success() || said(&output).contains("could not be found") {
            Ok(())
        } else {
            check(output, "delete-certificate")
        }
    }
}

#[cfg(windows)]
use windows as system;

#[cfg(windows)]
mod windows {
    //! The current user's Root store, through crypt32 (the engine's `os_trust`, whose tests run
    //! under Wine): the CA goes in trusted for server authentication only (the certificate's
    //! enhanced-key-usage property), and entries are found by fingerprint, never by name.
    //! Windows shows its own warning for adding a root.

    use std::path::Path;

    use simpleotp_engine::ca::CaCertificate;
    use simpleotp_engine::os_trust::{self, OsTrustError, ROOT};

    use super::{CaFile, TrustError, TrustState};

    fn convert(error: OsTrustError) -> TrustError {
        match error {
            OsTrustError::Cancelled => TrustError::Cancelled,
            other => TrustError::Command { command: "crypt32".into(), detail: other.to_string() },
        }
    }

    fn in_root(certificate: &CaCertificate) -> bool {
        os_trust::contains(ROOT, &certificate.fingerprint()).unwrap_or(false)
    }

    pub(super) fn state(ca: CaFile<'_>, _home: Option<&Path>) -> TrustState {
        let system = in_root(ca.certificate);
        let earlier_trusted = ca.earlier().any(in_root);
        TrustState { system, browsers: None, problem: None, earlier_trusted }
    }

    pub(super) fn add(ca: CaFile<'_>, _home: Option<&Path>) -> Result<(), TrustError> {
        os_trust::add_for_server_auth(ROOT, ca.certificate.der()).map_err(convert)?;
        for old in ca.earlier() {
            os_trust::remove(ROOT, &old.fingerprint()).map_err(convert)?;
        }
        Ok(())
    }

    pub(super) fn remove(ca: CaFile<'_>, _home: Option<&Path>) -> Result<(), TrustError> {
        for certificate in std::iter::once(ca.certificate).chain(ca.earlier()) {
            os_trust::remove(ROOT, &certificate.fingerprint()).map_err(convert)?;
        }
        Ok(())
    }
}

/// What runs for real here: certutil on NSS databases in a throw-away home, and the Linux
/// script with the real update-ca-certificates pointed at throw-away directories instead of
/// /etc (run without pkexec: a password prompt cannot run in a test, so that one step, and the
/// macOS and Windows tools, are not exercised here).
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::path::PathBuf;

    use simpleotp_engine::ca::{load_or_create, rotate, CaStore, MachineNames};
    use simpleotp_engine::secret::SecretStore;

    use super::linux::{SystemStore, INSTALLED_SCRIPT};
    use super::*;

    /// A real CA stored in files in `dir` (as on a server): its certificate's path, the
    /// certificate, and the CAs the directory had before (after `rotations` rotations).
    fn ca_in(dir: &Path, rotations: usize) -> (PathBuf, CaCertificate, Vec<CaCertificate>) {
        ca_for("box", dir, rotations)
    }

    fn ca_for(host: &str, dir: &Path, rotations: usize) -> (PathBuf, CaCertificate, Vec<CaCertificate>) {
        let store = CaStore::beside(&SecretStore::file(dir.join("secret")), dir);
        let machine = MachineNames::from_host_name(host);
        load_or_create(&store, &machine).unwrap();
        for _ in 0..rotations {
            rotate(&store, &machine).unwrap();
        }
        let certificate = store.stored_certificate().unwrap().unwrap();
        (store.certificate_path().to_owned(), certificate, store.previous_certificates().unwrap())
    }

    fn certutil(args: &[&str]) -> std::process::Output {
        simpleotp_engine::child::command("certutil").args(args).output().expect("certutil (libnss3-tools) is installed: scripts/deps.sh")
    }

    #[test]
    fn the_browsers_nss_databases_get_the_ca_for_websites_only_and_earlier_ones_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let (path, certificate, previous) = ca_in(dir.path(), 1);
        assert_eq!(previous.len(), 1);
        let old = &previous[0];
        let home = dir.path().join("home");
        // A Firefox profile with its own database; the shared one does not exist yet.
        let profile = home.join(".mozilla/firefox/abcd.default-release");
        std::fs::create_dir_all(&profile).unwrap();
        assert!(certutil(&["-N", "--empty-password", "-d", &format!("sql:{}", profile.display())]).status.success());
        assert_eq!(nss::databases(&home), [home.join(".pki/nssdb"), profile.clone()]);
        // The earlier CA, trusted the way versions before this one did (its name alone).
        let old_path = dir.path().join("old.pem");
        std::fs::write(&old_path, old.pem()).unwrap();
        let old_name = old.common_name().replace(':', ".");
        assert!(certutil(&[
            "-A",
            "-t",
            "C,,",
            "-n",
            &old_name,
            "-i",
            old_path.to_str().unwrap(),
            "-d",
            &format!("sql:{}", profile.display())
        ])
        .status
        .success());
        let ca = CaFile { path: &path, certificate: &certificate, previous: &previous };
        assert!(!nss::all_contain(&home, &certificate).unwrap());
        assert!(state(ca, Some(&home)).earlier_trusted, "the earlier CA in a browser's store is seen");

        nss::add_everywhere(&home, ca).unwrap();
        for old in ca.earlier() {
            nss::remove_everywhere(&home, old).unwrap();
        }
        assert!(nss::all_contain(&home, &certificate).unwrap());
        assert!(!nss::any_contains(&home, old).unwrap(), "the earlier CA is swept, found by its contents");
        for db in nss::databases(&home) {
            let db = format!("sql:{}", db.display());
            let name = nss::nickname(&certificate);
            // NSS itself says the certificate is a valid authority for websites (SSL CA, "L"),
            // and the trust flags say websites only: "C,," (no e-mail, no code signing).
            let verified = certutil(&["-V", "-u", "L", "-n", &name, "-d", &db]);
            assert!(verified.status.success(), "{db}: {}", String::from_utf8_lossy(&verified.stdout));
            let listed = String::from_utf8_lossy(&certutil(&["-L", "-d", &db]).stdout).to_string();
            let line = listed.lines().find(|l| l.starts_with(&name)).unwrap_or_else(|| panic!("{listed}"));
            assert!(line.trim_end().ends_with("C,,"), "{line}");
        }
        // Adding twice adds nothing.
        nss::add_everywhere(&home, ca).unwrap();
        let listed = certutil(&["-L", "-d", &format!("sql:{}", home.join(".pki/nssdb").display())]);
        assert_eq!(String::from_utf8_lossy(&listed.stdout).matches(&nss::nickname(&certificate)).count(), 1);

        // A CA from another data directory (another user's SimpleOTP, say) is neither this one
        // nor swept with it.
        let other_dir = tempfile::tempdir().unwrap();
        let (other_path, other, _) = ca_in(other_dir.path(), 0);
        nss::add(&home.join(".pki/nssdb"), CaFile { path: &other_path, certificate: &other, previous: &[] }).unwrap();
        nss::remove_everywhere(&home, &certificate).unwrap();
        assert!(!nss::any_contains(&home, &certificate).unwrap());
        assert!(nss::contains(&home.join(".pki/nssdb"), &other).unwrap(), "another CA is left alone");
    }

    /// The system store's script, for real, with update-ca-certificates working in `dir`.
    fn store_in(dir: &Path) -> SystemStore {
        let sub = |name: &str| {
            let path = dir.join(name);
            std::fs::create_dir_all(&path).unwrap();
            path
        };
        let (local, etc, share, hooks) = (sub("local"), sub("etc"), sub("share"), sub("hooks"));
        // One certificate the distribution ships, so the bundle is never empty (as on a real
        // system: update-ca-certificates leaves an empty bundle as it was).
        let (shipped, _, _) = ca_for("shipped", &sub("shipped-ca"), 0);
        std::fs::copy(shipped, share.join("shipped.crt")).unwrap();
        let conf = dir.join("ca-certificates.conf");
        std::fs::write(&conf, "shipped.crt\n").unwrap();
        let mut refresh: Vec<std::ffi::OsString> = vec!["/usr/sbin/update-ca-certificates".into()];
        for (flag, path) in
            [("--certsconf", &conf), ("--certsdir", &share), ("--localcertsdir", &local), ("--etccertsdir", &etc), ("--hooksdir", &hooks)]
        {
            refresh.push(flag.into());
            refresh.push(path.into());
        }
        SystemStore { anchors: local, suffix: ".crt", refresh, bundles: vec![etc.join("ca-certificates.crt")], elevate: None }
    }

    #[test]
    fn the_linux_script_trusts_what_it_was_shown_replaces_earlier_cas_and_takes_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let (path, certificate, previous) = ca_in(dir.path(), 1);
        let store = store_in(&dir.path().join("system"));
        let old = &previous[0];
        store.add(old, &[]).unwrap();
        assert!(store.contains(old));

        // One run: the new CA in, the earlier one out.
        store.add(&certificate, &previous).unwrap();
        assert!(store.contains(&certificate) && !store.contains(old) && !store.anchor(old).exists());
        let anchor = store.anchor(&certificate);
        assert!(anchor.file_name().unwrap().to_str().unwrap().starts_with("simpleotp-"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&anchor).unwrap().permissions().mode() & 0o777, 0o644, "a certificate is public");
        assert_eq!(std::fs::read_to_string(&anchor).unwrap(), certificate.pem(), "what was on stdin is what landed, as PEM");
        // openssl, reading only that bundle, accepts the CA as a trust anchor.
        let verify =
            simpleotp_engine::child::command("openssl").arg("verify").arg("-CAfile").arg(&store.bundles[0]).arg(&path).output().unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));

        store.remove(std::slice::from_ref(&certificate)).unwrap();
        assert!(!store.contains(&certificate) && !anchor.exists());
    }

    /// The script copies only what it was shown: bytes that do not hash to the SHA-256 on its
    /// command line are refused and nothing is written; a symbolic link planted at the anchor's
    /// name is replaced, not followed; arguments that are not hashes are refused.
    #[test]
    fn the_linux_script_refuses_other_bytes_and_follows_no_link() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let (_, certificate, _) = ca_in(dir.path(), 0);
        let (_, other, _) = ca_for("other", &dir.path().join("other"), 0);
        let store = store_in(&dir.path().join("system"));
        let run = |args: &[&str], stdin: &[u8]| {
            let mut command = store.command("add", &certificate, &[]);
            // The same command line the app builds, with its arguments replaced.
            let script_args: Vec<String> = command.get_args().take(3).map(|a| a.to_string_lossy().into_owned()).collect();
            let envs: Vec<(std::ffi::OsString, std::ffi::OsString)> =
                command.get_envs().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))).collect();
            command = simpleotp_engine::child::command("/bin/sh");
            command
                .args(&script_args)
                .args(args)
                .envs(envs)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = command.spawn().unwrap();
            let _ = child.stdin.take().unwrap().write_all(stdin);
            child.wait_with_output().unwrap()
        };
        let sum = certificate.fingerprint().to_hex();
        let refused = run(&["add", &sum], other.der());
        assert_eq!(refused.status.code(), Some(3), "{}", String::from_utf8_lossy(&refused.stderr));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("is not the one shown"));
        assert!(std::fs::read_dir(&store.anchors).unwrap().next().is_none(), "nothing was written");
        for bad in [vec!["add", "../../etc/shadow"], vec!["add", &sum[..63]], vec!["chmod", &sum], vec!["remove", "ABCDEF"]] {
            assert_eq!(run(&bad, b"").status.code(), Some(2), "{bad:?}");
        }
        // A link planted where the anchor will go (pointing at a file of the user's) is
        // replaced; the file it pointed to is untouched.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "mine").unwrap();
        std::os::unix::fs::symlink(&victim, store.anchor(&certificate)).unwrap();
        let added = run(&["add", &sum], certificate.der());
        assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine");
        assert!(!std::fs::symlink_metadata(store.anchor(&certificate)).unwrap().file_type().is_symlink());
    }

    /// Fedora's and Arch's p11-kit read an OpenSSL "TRUSTED CERTIFICATE" whose only trusted use
    /// is serverAuth, and put it into the TLS bundle alone: the script writes that form there
    /// (p11-kit's `update-ca-trust` itself is not on this Debian machine).
    #[test]
    fn for_p11_kit_the_script_writes_an_anchor_trusted_for_tls_servers_only() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let (_, certificate, _) = ca_in(dir.path(), 0);
        let anchors = dir.path().join("anchors");
        std::fs::create_dir(&anchors).unwrap();
        let mut child = simpleotp_engine::child::command("/bin/sh")
            .args(["-c", linux::SCRIPT, "simpleotp-trust", "add", &certificate.fingerprint().to_hex()])
            .env("SIMPLEOTP_TRUST_ANCHORS", &anchors)
            .env("SIMPLEOTP_TRUST_SUFFIX", ".pem")
            .env("SIMPLEOTP_TRUST_REFRESH", "true")
            .env("SIMPLEOTP_TRUST_FORMAT", "trusted")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(certificate.der()).unwrap();
        assert!(child.wait().unwrap().success());
        let anchor = anchors.join(format!("simpleotp-{}.pem", &certificate.fingerprint().to_hex()[..16]));
        let text = std::fs::read_to_string(&anchor).unwrap();
        assert!(text.starts_with("-----BEGIN TRUSTED CERTIFICATE-----"), "{text}");
        let shown = simpleotp_engine::child::command("openssl")
            .args(["x509", "-noout", "-text", "-trustout", "-in"])
            .arg(&anchor)
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        let uses = shown.split("Trusted Uses:").nth(1).unwrap_or_else(|| panic!("{shown}"));
        let uses = uses.lines().nth(1).unwrap_or_default().trim();
        assert_eq!(uses, "TLS Web Server Authentication", "{shown}");
    }

    #[test]
    fn the_system_change_goes_through_pkexec_with_hashes_only_and_a_missing_pkexec_says_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let (path, certificate, previous) = ca_in(dir.path(), 1);
        let mut store = store_in(&dir.path().join("system"));
        store.elevate = Some("/usr/bin/pkexec".into());
        let command = store.command("add", &certificate, &previous);
        assert_eq!(command.get_program(), "/usr/bin/pkexec", "by its absolute path");
        let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let hashes = [certificate.fingerprint().to_hex(), previous[0].fingerprint().to_hex()];
        if std::path::Path::new(INSTALLED_SCRIPT).exists() {
            assert_eq!(args, [INSTALLED_SCRIPT.to_string(), "add".into(), hashes[0].clone(), hashes[1].clone()]);
        } else {
            assert_eq!(&args[..2], ["/bin/sh", "-c"]);
            assert_eq!(&args[3..], ["simpleotp-trust".to_string(), "add".into(), hashes[0].clone(), hashes[1].clone()]);
        }
        // No path the user could swap is part of the command, and no environment is passed.
        assert!(!args.iter().any(|a| a.contains(&path.display().to_string()) || a.contains(&dir.path().display().to_string())));
        assert_eq!(command.get_envs().count(), 0);

        // A machine without pkexec (a program that is not there stands in, so the test never
        // opens a password prompt).
        store.elevate = Some(dir.path().join("no-pkexec-here"));
        let err = store.add(&certificate, &[]).unwrap_err();
        assert!(matches!(err, TrustError::NoPkexec), "{err:?}");
        assert!(err.to_string().contains("apt install pkexec"), "{err}");
        assert!(!store.contains(&certificate), "nothing changed");
    }

    #[test]
    fn macos_trusts_the_root_for_tls_servers_only() {
        let args = macos_add_arguments(Path::new("/Users/zoë/Library/Keychains/login.keychain-db"), Path::new("/tmp/ca.pem"));
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            ["add-trusted-cert", "-r", "trustRoot", "-p", "ssl", "-k", "/Users/zoë/Library/Keychains/login.keychain-db", "/tmp/ca.pem"]
        );
    }

    /// The policy that names SimpleOTP in the password prompt is well-formed, names the
    /// installed script, and asks for an administrator every time.
    #[test]
    fn the_polkit_action_names_simpleotp_and_the_installed_script() {
        let policy = include_str!("../../linux/org.simpleotp.SimpleOTP.trust.policy");
        let checked = simpleotp_engine::child::command("python3")
            .args(["-c", "import sys, xml.dom.minidom as m; m.parseString(sys.stdin.read())"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(policy.as_bytes())?;
                child.wait()
            })
            .unwrap();
        assert!(checked.success(), "the policy is not well-formed XML");
        assert!(policy.contains(&format!(">{INSTALLED_SCRIPT}</annotate>")));
        assert!(policy.contains("<allow_active>auth_admin</allow_active>") && !policy.contains("auth_admin_keep"));
        assert!(policy.contains("SimpleOTP wants to change which certificate authorities this computer trusts"));
    }
}
