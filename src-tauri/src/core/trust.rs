//! "Trust on this computer": adds SimpleOTP's CA certificate to this computer's trust stores (and
//! "Remove" takes it out again), so this machine's own browsers accept the apps' HTTPS addresses.
//!
//! The OS asks for the change itself, with its own prompt: that prompt is the point (a program
//! that could add a root certificate silently could make the machine trust anyone), so nothing
//! here works around it. Where each OS keeps the trust:
//!
//! * **Linux**: the system store, through `pkexec` (polkit's password prompt) running one fixed
//!   shell script that copies the certificate into the distribution's anchor directory and
//!   refreshes the bundle (`update-ca-certificates` on Debian and Ubuntu, `update-ca-trust` on
//!   Fedora and Arch). Chromium and Firefox do not read that store on Linux: they keep their own
//!   NSS databases (`~/.pki/nssdb`, each Firefox profile), which the user owns, so `certutil`
//!   (libnss3-tools) updates them without a prompt.
//! * **macOS**: `security add-trusted-cert -r trustRoot` into the login keychain; macOS asks for
//!   the user's password. `security remove-trusted-cert` and `delete-certificate` undo it.
//! * **Windows**: `certutil -user -addstore Root`; Windows shows its own security warning.
//!   `-delstore` undoes it.
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
    #[error("SimpleOTP asks for the administrator password through pkexec, which is not installed (Debian and Ubuntu: `sudo apt install pkexec`). Or add {} to the system's certificates by hand.", .0.display())]
    NoPkexec(PathBuf),
    #[error("SimpleOTP does not know where this system keeps its trusted certificates (it knows update-ca-certificates and update-ca-trust). Add {} to them by hand.", .0.display())]
    UnknownSystemStore(PathBuf),
    #[error("certutil is not installed, so Chromium and Firefox (which keep their own certificate lists on Linux) were not changed. Install it (Debian and Ubuntu: `sudo apt install libnss3-tools`) and press the button again.")]
    NoCertutil,
    #[error("`{command}` failed: {detail}")]
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
}

impl TrustState {
    pub fn trusted(&self) -> bool {
        self.system && self.browsers.unwrap_or(true)
    }
}

/// The CA certificate to trust: its PEM file (what the OS tools read) and what it says.
#[derive(Debug, Clone, Copy)]
pub struct CaFile<'a> {
    pub path: &'a Path,
    pub certificate: &'a CaCertificate,
}

// What the Linux stores need to find and name the certificate (macOS and Windows find it by
// its file and its fingerprint or name).
#[cfg(target_os = "linux")]
impl CaFile<'_> {
    /// The certificate's base64 body without line breaks: how it is found in PEM bundles and in
    /// `certutil -a` output, whatever their line length.
    fn base64_body(&self) -> String {
        let pem = self.certificate.pem();
        pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()
    }

    /// The name it is stored under where a store wants one (NSS nickname, Windows lookup): its
    /// common name, which carries the date it was made, so a rotated CA has another one. NSS
    /// reads `a:b` as "nickname b on token a", so the time's colon becomes a dot.
    fn nickname(&self) -> String {
        self.certificate.common_name().replace(':', ".")
    }

    /// A file name that names this very certificate (the first 16 hex digits of its fingerprint).
    fn file_stem(&self) -> String {
        format!("simpleotp-{}", &self.certificate.fingerprint().to_hex()[..16])
    }
}

/// Where the CA is trusted now. `home` is the user's home (for the browsers' stores on Linux and
/// the login keychain on macOS).
pub fn state(ca: CaFile<'_>, home: Option<&Path>) -> TrustState {
    system::state(ca, home)
}

/// Adds the CA to the system's store (with the OS's prompt) and, on Linux, to the browsers'.
pub fn add(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
    system::add(ca, home)
}

/// Removes the CA from every store [`add`] put it in.
pub fn remove(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
    system::remove(ca, home)
}

/// Runs a command and sorts out "not installed" from "failed".
fn run(mut command: Command, missing: impl FnOnce() -> TrustError) -> Result<Output, TrustError> {
    let name = format!("{}", command.get_program().to_string_lossy());
    match command.output() {
        Ok(output) => Ok(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(e) => Err(TrustError::Command { command: name, detail: e.to_string() }),
    }
}

/// What a failed command said, for a message (the last lines of its error output).
fn said(output: &Output) -> String {
    let text = String::from_utf8_lossy(if output.stderr.is_empty() { &output.stdout } else { &output.stderr }).trim().to_string();
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    if tail.is_empty() {
        format!("exit status {}", output.status)
    } else {
        tail.join(" ")
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

    use super::{nss, run, said, CaFile, TrustError, TrustState};

    pub(super) fn state(ca: CaFile<'_>, home: Option<&Path>) -> TrustState {
        let system = SystemStore::detect().is_some_and(|store| store.contains(ca));
        let (browsers, problem) = match home.map(|home| nss::all_contain(home, ca)).unwrap_or(Ok(false)) {
            Ok(all) => (Some(all), None),
            Err(e) => (Some(false), Some(e.to_string())),
        };
        TrustState { system, browsers, problem }
    }

    pub(super) fn add(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
        let store = SystemStore::detect().ok_or_else(|| TrustError::UnknownSystemStore(ca.path.to_owned()))?;
        if !store.contains(ca) {
            store.add(ca)?;
        }
        if let Some(home) = home {
            nss::add_everywhere(home, ca)?;
        }
        Ok(())
    }

    pub(super) fn remove(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
        if let Some(store) = SystemStore::detect() {
            if store.contains(ca) || store.anchor(ca).exists() {
                store.remove(ca)?;
            }
        }
        if let Some(home) = home {
            nss::remove_everywhere(home, ca)?;
        }
        Ok(())
    }

    /// A distribution's system trust store: a directory of anchors, the command that rebuilds
    /// the bundles from it, and the bundles programs read.
    #[derive(Debug, Clone)]
    pub(crate) struct SystemStore {
        pub anchors: PathBuf,
        pub suffix: &'static str,
        pub refresh: Vec<OsString>,
        pub bundles: Vec<PathBuf>,
        /// The program that runs the script as root (`pkexec`); `None` runs it as is (tests).
        pub elevate: Option<PathBuf>,
    }

    /// The script run as root: `$1` add or remove, `$2` the certificate, `$3` its place among
    /// the anchors, then the refresh command. Fixed text; every variable part is an argument.
    const SCRIPT: &str = r#"set -e
case "$1" in
  add) install -m 0644 -- "$2" "$3" ;;
  remove) rm -f -- "$3" ;;
  *) exit 2 ;;
esac
shift 3
exec "$@"
"#;

    impl SystemStore {
        /// The store of the distribution this runs on, if it is one SimpleOTP knows.
        pub(crate) fn detect() -> Option<SystemStore> {
            let found =
                |program: &str| ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(|d| Path::new(d).join(program)).find(|p| p.exists());
            let elevate = Some(PathBuf::from("pkexec"));
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

        pub(crate) fn anchor(&self, ca: CaFile<'_>) -> PathBuf {
            self.anchors.join(format!("{}{}", ca.file_stem(), self.suffix))
        }

        /// Whether a bundle programs read holds the certificate.
        pub(crate) fn contains(&self, ca: CaFile<'_>) -> bool {
            let body = ca.base64_body();
            self.bundles
                .iter()
                .any(|bundle| std::fs::read_to_string(bundle).is_ok_and(|text| text.split_whitespace().collect::<String>().contains(&body)))
        }

        pub(crate) fn add(&self, ca: CaFile<'_>) -> Result<(), TrustError> {
            self.run_script("add", ca)?;
            if !self.contains(ca) {
                return Err(TrustError::NotApplied(format!("it is not in {}", self.bundles[0].display())));
            }
            Ok(())
        }

        pub(crate) fn remove(&self, ca: CaFile<'_>) -> Result<(), TrustError> {
            self.run_script("remove", ca)?;
            if self.contains(ca) {
                return Err(TrustError::NotApplied(format!("it is still in {}", self.bundles[0].display())));
            }
            Ok(())
        }

        /// The command line: `pkexec /bin/sh -c SCRIPT simpleotp-trust ACTION CERT ANCHOR REFRESH…`.
        pub(crate) fn command(&self, action: &str, ca: CaFile<'_>) -> Command {
            let mut args: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), SCRIPT.into(), "simpleotp-trust".into(), action.into()];
            args.push(ca.path.into());
            args.push(self.anchor(ca).into());
            args.extend(self.refresh.iter().cloned());
            let mut command = match &self.elevate {
                Some(elevate) => {
                    let mut command = simpleotp_engine::child::command(elevate);
                    command.args(&args);
                    command
                }
                None => {
                    let mut command = simpleotp_engine::child::command(&args[0]);
                    command.args(&args[1..]);
                    command
                }
            };
            command.stdin(std::process::Stdio::null());
            command
        }

        fn run_script(&self, action: &str, ca: CaFile<'_>) -> Result<(), TrustError> {
            let output = run(self.command(action, ca), || TrustError::NoPkexec(ca.path.to_owned()))?;
            match (self.elevate.is_some(), output.status.code()) {
                (_, Some(0)) => Ok(()),
                // pkexec: 126 when the person dismissed the prompt, 127 when not authorized.
                (true, Some(126)) => Err(TrustError::Cancelled),
                (true, Some(127)) => Err(TrustError::NotAuthorized(said(&output))),
                _ => {
                    Err(TrustError::Command { command: format!("{} ({action})", self.refresh[0].to_string_lossy()), detail: said(&output) })
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
pub(crate) mod nss {
    //! The NSS databases Chromium and Firefox read on Linux, changed with `certutil`.

    use std::path::{Path, PathBuf};
    use std::process::Command;

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

    /// Whether `db` holds this very certificate (by its nickname, then its contents).
    pub(crate) fn contains(db: &Path, ca: CaFile<'_>) -> Result<bool, TrustError> {
        if !db.join("cert9.db").exists() {
            return Ok(false);
        }
        let mut command = certutil(db);
        command.args(["-L", "-a", "-n", &ca.nickname()]);
        let output = run(command, || TrustError::NoCertutil)?;
        let text = String::from_utf8_lossy(&output.stdout).split_whitespace().collect::<String>();
        Ok(output.status.success() && text.contains(&ca.base64_body()))
    }

    /// Whether every database found holds it (false when there is none).
    pub(crate) fn all_contain(home: &Path, ca: CaFile<'_>) -> Result<bool, TrustError> {
        let mut all = true;
        for db in databases(home) {
            all &= contains(&db, ca)?;
        }
        Ok(all)
    }

    /// Adds it as a CA trusted for websites (`C,,`) to `db`, making the shared database first
    /// if there is none yet (Chromium reads it once it exists).
    pub(crate) fn add(db: &Path, ca: CaFile<'_>) -> Result<(), TrustError> {
        if contains(db, ca)? {
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
        command.args(["-A", "-t", "C,,", "-n", &ca.nickname(), "-i"]).arg(ca.path);
        certutil_run(command, "add")
    }

    pub(crate) fn remove(db: &Path, ca: CaFile<'_>) -> Result<(), TrustError> {
        // A nickname can hold more than one certificate: delete until it is gone (bounded).
        for _ in 0..8 {
            if !contains(db, ca)? {
                return Ok(());
            }
            let mut command = certutil(db);
            command.args(["-D", "-n", &ca.nickname()]);
            certutil_run(command, "remove")?;
        }
        Err(TrustError::NotApplied(format!("it is still in {}", db.display())))
    }

    pub(crate) fn add_everywhere(home: &Path, ca: CaFile<'_>) -> Result<(), TrustError> {
        databases(home).iter().try_for_each(|db| add(db, ca))
    }

    pub(crate) fn remove_everywhere(home: &Path, ca: CaFile<'_>) -> Result<(), TrustError> {
        databases(home).iter().try_for_each(|db| remove(db, ca))
    }
}

#[cfg(target_os = "macos")]
use macos as system;

#[cfg(target_os = "macos")]
mod macos {
    //! The login keychain, through `security`; macOS asks for the password itself.

    use std::path::{Path, PathBuf};
    use std::process::Command;

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

    pub(super) fn state(ca: CaFile<'_>, _home: Option<&Path>) -> TrustState {
        let mut command = security();
        command.args(["verify-cert", "-L", "-l", "-q", "-c"]).arg(ca.path);
        let system = run(command, missing).is_ok_and(|o| o.status.success());
        TrustState { system, browsers: None, problem: None }
    }

    pub(super) fn add(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
        let mut command = security();
        command.args(["add-trusted-cert", "-r", "trustRoot", "-k"]).arg(login_keychain(home)).arg(ca.path);
        check(run(command, missing)?, "add-trusted-cert")
    }

    pub(super) fn remove(ca: CaFile<'_>, home: Option<&Path>) -> Result<(), TrustError> {
        let mut command = security();
        command.arg("remove-trusted-cert").arg(ca.path);
        check(run(command, missing)?, "remove-trusted-cert")?;
        let mut command = security();
        command.args(["delete-certificate", "-Z"]).arg(ca.certificate.fingerprint().to_hex().to_uppercase()).arg(login_keychain(home));
        check(run(command, missing)?, "delete-certificate")
    }
}

#[cfg(windows)]
use windows as system;

#[cfg(windows)]
mod windows {
    //! The current user's Root store, through `certutil`; Windows shows its own warning.

    use std::path::Path;
    use std::process::Command;

    use super::{run, said, CaFile, TrustError, TrustState};

    /// ERROR_CANCELLED (0x800704C7) as certutil's exit code: the person said No.
    const CANCELLED: i32 = 0x800704C7_u32 as i32;
    fn certutil() -> Command {
        let mut command = simpleotp_engine::child::command("certutil");
        command.arg("-user");
        command
    }

    fn missing() -> TrustError {
        TrustError::Command { command: "certutil".into(), detail: "certutil.exe is missing".into() }
    }

    fn check(output: std::process::Output, what: &str) -> Result<(), TrustError> {
        match output.status.code() {
            Some(0) => Ok(()),
            Some(CANCELLED) => Err(TrustError::Cancelled),
            _ => Err(TrustError::Command { command: format!("certutil {what}"), detail: said(&output) }),
        }
    }

    pub(super) fn state(ca: CaFile<'_>, _home: Option<&Path>) -> TrustState {
        let mut command = certutil();
        command.args(["-store", "Root", ca.certificate.common_name()]);
        let system = run(command, missing).is_ok_and(|o| o.status.success());
        TrustState { system, browsers: None, problem: None }
    }

    pub(super) fn add(ca: CaFile<'_>, _home: Option<&Path>) -> Result<(), TrustError> {
        let mut command = certutil();
        command.args(["-addstore", "Root"]).arg(ca.path);
        check(run(command, missing)?, "-addstore")
    }

    pub(super) fn remove(ca: CaFile<'_>, _home: Option<&Path>) -> Result<(), TrustError> {
        let mut command = certutil();
        command.args(["-delstore", "Root", ca.certificate.common_name()]);
        check(run(command, missing)?, "-delstore")
    }
}

/// What runs for real here: certutil on NSS databases in a throw-away home, and the Linux
/// script with the real update-ca-certificates pointed at throw-away directories instead of
/// /etc (run without pkexec: a password prompt cannot run in a test, so that one step, and the
/// macOS and Windows tools, are not exercised here).
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::path::PathBuf;

    use simpleotp_engine::ca::{load_or_create, CaStore, MachineNames};
    use simpleotp_engine::secret::SecretStore;

    use super::linux::SystemStore;
    use super::*;

    /// A real CA, stored in files in `dir` (as on a server), and its certificate.
    fn ca_in(dir: &Path) -> (PathBuf, CaCertificate) {
        ca_for("box", dir)
    }

    fn ca_for(host: &str, dir: &Path) -> (PathBuf, CaCertificate) {
        let store = CaStore::beside(&SecretStore::file(dir.join("secret")), dir);
        load_or_create(&store, &MachineNames::from_host_name(host)).unwrap();
        let certificate = store.stored_certificate().unwrap().unwrap();
        (store.certificate_path().to_owned(), certificate)
    }

    fn certutil(args: &[&str]) -> std::process::Output {
        simpleotp_engine::child::command("certutil").args(args).output().expect("certutil (libnss3-tools) is installed: scripts/deps.sh")
    }

    #[test]
    fn the_browsers_nss_databases_get_the_ca_as_a_website_authority_and_lose_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let (path, certificate) = ca_in(dir.path());
        let ca = CaFile { path: &path, certificate: &certificate };
        let home = dir.path().join("home");
        // A Firefox profile with its own database; the shared one does not exist yet.
        let profile = home.join(".mozilla/firefox/abcd.default-release");
        std::fs::create_dir_all(&profile).unwrap();
        assert!(certutil(&["-N", "--empty-password", "-d", &format!("sql:{}", profile.display())]).status.success());
        assert_eq!(nss::databases(&home), [home.join(".pki/nssdb"), profile.clone()]);
        assert!(!nss::all_contain(&home, ca).unwrap());

        nss::add_everywhere(&home, ca).unwrap();
        assert!(nss::all_contain(&home, ca).unwrap());
        for db in nss::databases(&home) {
            // NSS itself says the certificate is a valid authority for websites (SSL CA, "L").
            let verified = certutil(&["-V", "-u", "L", "-n", &ca.nickname(), "-d", &format!("sql:{}", db.display())]);
            assert!(verified.status.success(), "{}: {}", db.display(), String::from_utf8_lossy(&verified.stdout));
        }
        // Adding twice adds nothing.
        nss::add_everywhere(&home, ca).unwrap();
        let listed = certutil(&["-L", "-d", &format!("sql:{}", home.join(".pki/nssdb").display())]);
        assert_eq!(String::from_utf8_lossy(&listed.stdout).matches(&ca.nickname()).count(), 1);

        // Another CA (a rotated one) is not taken for this one.
        let other_dir = tempfile::tempdir().unwrap();
        let (other_path, other) = ca_in(other_dir.path());
        assert!(!nss::all_contain(&home, CaFile { path: &other_path, certificate: &other }).unwrap());

        nss::remove_everywhere(&home, ca).unwrap();
        assert!(!nss::all_contain(&home, ca).unwrap());
        assert!(!nss::contains(&profile, ca).unwrap());
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
        let (shipped, _) = ca_for("shipped", &sub("shipped-ca"));
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
    fn the_linux_script_puts_the_ca_in_the_system_bundle_and_takes_it_out() {
        let dir = tempfile::tempdir().unwrap();
        let (path, certificate) = ca_in(dir.path());
        let ca = CaFile { path: &path, certificate: &certificate };
        let store = store_in(&dir.path().join("system"));
        assert!(!store.contains(ca));

        store.add(ca).unwrap();
        assert!(store.contains(ca), "the bundle holds the CA");
        let anchor = store.anchor(ca);
        assert!(anchor.file_name().unwrap().to_str().unwrap().starts_with("simpleotp-"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&anchor).unwrap().permissions().mode() & 0o777, 0o644, "a certificate is public");
        // openssl, reading only that bundle, accepts the CA as a trust anchor.
        let verify =
            simpleotp_engine::child::command("openssl").arg("verify").arg("-CAfile").arg(&store.bundles[0]).arg(&path).output().unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));

        store.remove(ca).unwrap();
        assert!(!store.contains(ca) && !anchor.exists());
    }

    #[test]
    fn the_system_change_goes_through_pkexec_and_a_missing_pkexec_says_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let (path, certificate) = ca_in(dir.path());
        let ca = CaFile { path: &path, certificate: &certificate };
        let mut store = store_in(&dir.path().join("system"));
        store.elevate = Some("pkexec".into());
        let command = store.command("add", ca);
        assert_eq!(command.get_program(), "pkexec");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(&args[..2], ["/bin/sh", "-c"]);
        // The certificate and its place are arguments, never part of the script's text.
        assert!(!args[2].to_string_lossy().contains(&path.display().to_string()));
        assert_eq!(args[5], path.as_os_str());

        // A machine without pkexec (this one has none; a program that is not there stands in
        // where it is installed, so the test never opens a password prompt).
        store.elevate = Some(dir.path().join("no-pkexec-here"));
        let err = store.add(ca).unwrap_err();
        assert!(matches!(err, TrustError::NoPkexec(_)), "{err:?}");
        assert!(err.to_string().contains("apt install pkexec") && err.to_string().contains(&path.display().to_string()), "{err}");
        assert!(!store.contains(ca), "nothing changed");
    }
}
